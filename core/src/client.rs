//! The client state machine: handshake, login, one request at a time, and
//! the receiving half of `get` / sending half of `put`.

use crate::auth::{nonce_from_random, ScramClient};
use crate::config::Config;
use crate::digest::Sum;
use crate::endpoint::{Buffer, Endpoint, Incoming, Link, Negotiated, Role, Side};
use crate::error::{Error, SetupError};
use crate::frame::{decode_message, FrameKind};
use crate::message::{bounded, Entry, Message, Overwrite, Path, Request, Stream, Text};
use crate::time::Instant;
use crate::transfer::Transfer;

/// What a [`Client`] reports to its driver.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Event<'a> {
    /// The server's hello arrived; sizes are negotiated. Log in next.
    Connected(Negotiated),
    /// Login succeeded (and, with SCRAM, the server proved itself).
    LoggedIn,
    /// Login was refused; the connection stays open for another try unless a
    /// `Closed` event follows.
    LoginFailed(Error),
    /// The echoed text.
    Echo(Text),
    /// mkdir, remove or rename succeeded.
    Done,
    /// The session's directory (answer to cd and pwd).
    Cwd(Path),
    /// An entry: the answer to stat, or one item of a listing.
    Entry(Entry),
    /// digest: the remote file's digest.
    Sum(Sum),
    /// The listing is complete.
    ListEnd,
    /// get: the server will send a file of `size` bytes. Answer with
    /// [`Client::accept`] (with a resume offset) or [`Client::refuse`].
    Offer {
        /// Size of the whole file.
        size: u64,
    },
    /// put: the server accepted; feed the prefix if `offset > 0`, then send
    /// the body from `offset` with [`Client::send_with`] or
    /// [`Client::send_body`].
    Accepted {
        /// Resume offset: the server already holds bytes `0..offset`.
        offset: u64,
        /// The name the file is stored under (differs with keep-both).
        name: Option<Path>,
    },
    /// get: body bytes, borrowed from the input buffer; valid until the next
    /// call on the client.
    Data(&'a [u8]),
    /// get or put finished: `verified` tells whether the trailer's digest
    /// matched. For put, `true` also means the server stored the file.
    TransferEnd {
        /// The digests matched.
        verified: bool,
        /// This side's digest of the whole file (algorithm and bytes).
        sum: Sum,
    },
    /// exec: a piece of the command's output.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes.
        data: &'a [u8],
    },
    /// exec: the command ended.
    ExecEnd {
        /// Exit status.
        status: i32,
        /// It ran and printed nothing (never a hang).
        no_output: bool,
    },
    /// The request failed with a typed error; the session goes on.
    Failed(Error),
    /// The connection is over; transmit what is left, then close the socket.
    Closed(Error),
}

enum Pending {
    Echo,
    Simple,
    Cwd,
    Stat,
    Sum,
    List,
    Get,
    Put { size: u64 },
    Exec { output: bool },
}

enum State {
    Handshake,
    LoggedOut,
    Scram(ScramClient, bool),
    Anonymous,
    Idle,
    Await(Pending),
    Offered {
        size: u64,
    },
    Receiving(Transfer),
    Sending(Transfer),
    /// The trailer is out; waiting for `Done`. Holds this side's digest.
    AwaitDone(Sum),
    /// Our side cancelled a get: drop body frames until the trailer.
    Discarding,
    /// Our side cancelled a put: wait for the server's error that
    /// acknowledges it.
    CancelWait,
    Closed,
}

/// What one frame produced, before it is turned into an [`Event`].
enum Step {
    Nothing,
    Event(Event<'static>),
    Data(core::ops::Range<usize>),
    Output(Stream, core::ops::Range<usize>),
}

/// A Ferry client connection, sans-IO: an [`Endpoint`] in the client role.
/// See the crate docs for the driving contract.
pub type Client<B> = Endpoint<B, ClientRole>;

/// The client's own state inside an [`Endpoint`].
pub struct ClientRole {
    state: State,
    /// The server's hello arrived (the login may have gone out before it).
    hello: bool,
}

impl Role for ClientRole {
    fn hello_received(&mut self) -> bool {
        if core::mem::replace(&mut self.hello, true) {
            return false;
        }
        if matches!(self.state, State::Handshake) {
            self.state = State::LoggedOut;
        }
        true
    }

    fn transfer(&self) -> Option<&Transfer> {
        match &self.state {
            State::Receiving(t) | State::Sending(t) => Some(t),
            _ => None,
        }
    }

    fn sending(&mut self) -> Option<&mut Transfer> {
        match &mut self.state {
            State::Sending(t) => Some(t),
            _ => None,
        }
    }

    fn receiving(&mut self) -> Option<&mut Transfer> {
        match &mut self.state {
            State::Receiving(t) => Some(t),
            _ => None,
        }
    }

    fn discarding(&self) -> bool {
        matches!(self.state, State::Discarding)
    }

    fn body_sent(&mut self, sum: Sum) {
        self.state = State::AwaitDone(sum);
    }
}

impl<B: Buffer> Client<B> {
    /// A client that will send its hello at the first transmit. `inbuf`
    /// bounds the largest frame accepted, `outbuf` the largest sent; each
    /// must be at least [`MIN_INPUT_BUFFER`](crate::MIN_INPUT_BUFFER) /
    /// [`MIN_OUTPUT_BUFFER`](crate::MIN_OUTPUT_BUFFER) bytes.
    ///
    /// A shorter buffer is [`SetupError::InsufficientSize`], saying which
    /// and the size it needs; a config that cannot work (chunk size 0, a
    /// digest not in this build) is the matching [`SetupError`]. Every
    /// one converts into [`Error::BadUsage`] for `?`.
    pub fn new(now: Instant, config: Config, inbuf: B, outbuf: B) -> Result<Self, SetupError> {
        let link = Link::new(now, config, Side::Client, 0, inbuf, outbuf)?;
        let role = ClientRole {
            state: State::Handshake,
            hello: false,
        };
        Ok(Endpoint::from_parts(link, role))
    }

    // ---- getters ----

    /// Whether login has completed.
    pub fn is_logged_in(&self) -> bool {
        !matches!(
            self.role.state,
            State::Handshake
                | State::LoggedOut
                | State::Scram(..)
                | State::Anonymous
                | State::Closed
        ) && self.link.closed.is_none()
    }

    /// Whether a new request may be sent now.
    pub fn is_idle(&self) -> bool {
        matches!(self.role.state, State::Idle) && self.link.closed.is_none()
    }

    /// The next event, if the buffered input completes one.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if matches!(self.role.state, State::Closed) {
            return None;
        }
        loop {
            if self.link.closed.is_some() {
                return self.closed_event();
            }
            // Backpressure: a frame may need an answer (a SCRAM step, Done,
            // a resync trailer), so only take one when an answer fits.
            if !self.link.can_send_msg() {
                return None;
            }
            let incoming = match self.link.next_frame() {
                Ok(Some(i)) => i,
                Ok(None) => {
                    if self.link.eof() {
                        let err = if self.link.eof_mid_frame() || self.mid_exchange() {
                            Error::Truncated
                        } else {
                            Error::Closed
                        };
                        self.link.fail_quietly(err);
                        continue;
                    }
                    return None;
                }
                Err(e) => {
                    self.link.fail(e);
                    continue;
                }
            };
            let step = match incoming {
                Incoming::Hello => self.on_hello().map(|n| Step::Event(Event::Connected(n))),
                Incoming::Frame(kind, range) => self.on_frame(kind, range),
            };
            match step {
                Ok(Step::Nothing) => continue,
                Ok(Step::Event(e)) => return Some(e),
                Ok(Step::Data(r)) => return Some(Event::Data(self.link.payload(r))),
                Ok(Step::Output(stream, r)) => {
                    return Some(Event::Output {
                        stream,
                        data: self.link.payload(r),
                    })
                }
                Err(Error::Closed) => continue,
                Err(e) => {
                    self.link.fail(e);
                    continue;
                }
            }
        }
    }

    fn closed_event(&mut self) -> Option<Event<'static>> {
        let e = self.link.take_close()?;
        self.role.state = State::Closed;
        Some(Event::Closed(e))
    }

    fn mid_exchange(&self) -> bool {
        !matches!(self.role.state, State::Idle | State::LoggedOut)
    }

    // ---- commands: each queues a request and returns at once ----

    /// Logs in with SCRAM-SHA-256. `random` is 8–32 fresh random bytes for
    /// the client nonce. May be called before the server's hello arrived:
    /// the client-first message then follows this side's hello at once,
    /// saving a round trip (the server reads it after its own hello).
    pub fn login(&mut self, user: &str, password: &str, random: &[u8]) -> Result<(), Error> {
        self.expect_state(matches!(
            self.role.state,
            State::LoggedOut | State::Handshake
        ))?;
        let nonce = nonce_from_random(random)?;
        let (scram, first) = ScramClient::start(user, password, &nonce)?;
        self.link.send_msg(&Message::ClientFirst(first))?;
        self.role.state = State::Scram(scram, false);
        Ok(())
    }

    /// Logs in anonymously (the server must allow it; if it does not, the
    /// answer is `AnonymousNotAllowed`). May be called before the server's
    /// hello arrived, as [`Self::login`].
    pub fn login_anonymous(&mut self) -> Result<(), Error> {
        self.expect_state(matches!(
            self.role.state,
            State::LoggedOut | State::Handshake
        ))?;
        self.link.send_msg(&Message::Anonymous)?;
        self.role.state = State::Anonymous;
        Ok(())
    }

    /// Echoes `text` (upper-cased by the server if `upper`).
    pub fn echo(&mut self, text: &str, upper: bool) -> Result<(), Error> {
        let text = bounded(text, Error::TooLarge)?;
        self.request(Message::Echo { text, upper }, Pending::Echo)
    }

    /// Downloads `path`: an [`Event::Offer`] follows.
    pub fn get(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        self.request(Message::Request(Request::Get { path }), Pending::Get)
    }

    /// Uploads `size` bytes to `path`: [`Event::Accepted`] follows.
    pub fn put(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        resume: bool,
    ) -> Result<(), Error> {
        let path = to_path(path)?;
        let req = Request::Put {
            path,
            size,
            overwrite,
            resume,
        };
        self.request(Message::Request(req), Pending::Put { size })
    }

    /// Lists a directory: [`Event::Entry`] per item, then [`Event::ListEnd`].
    pub fn list(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path_or_empty(path)?;
        self.request(Message::Request(Request::List { path }), Pending::List)
    }

    /// Describes one path: one [`Event::Entry`].
    pub fn stat(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        self.request(Message::Request(Request::Stat { path }), Pending::Stat)
    }

    /// The digest of a remote file with the negotiated algorithm: one
    /// [`Event::Sum`].
    pub fn digest(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        self.request(Message::Request(Request::Digest { path }), Pending::Sum)
    }

    /// Changes the session's directory: [`Event::Cwd`] with the new one.
    pub fn cd(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path_or_empty(path)?;
        self.request(Message::Request(Request::Cd { path }), Pending::Cwd)
    }

    /// Asks for the session's directory: [`Event::Cwd`].
    pub fn pwd(&mut self) -> Result<(), Error> {
        self.request(Message::Request(Request::Pwd), Pending::Cwd)
    }

    /// Creates a directory: [`Event::Done`].
    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        self.request(Message::Request(Request::Mkdir { path }), Pending::Simple)
    }

    /// Removes a file or empty directory: [`Event::Done`].
    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        self.request(Message::Request(Request::Remove { path }), Pending::Simple)
    }

    /// Renames `from` to `to`: [`Event::Done`]; an existing `to` fails
    /// with [`Error::Exists`].
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let req = Request::Rename {
            from: to_path(from)?,
            to: to_path(to)?,
        };
        self.request(Message::Request(req), Pending::Simple)
    }

    /// Renames `from` to `to`, replacing `to` if it exists:
    /// [`Event::Done`]. A server older than this request closes the
    /// connection as `Malformed`.
    pub fn rename_replacing(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let req = Request::RenameReplace {
            from: to_path(from)?,
            to: to_path(to)?,
        };
        self.request(Message::Request(req), Pending::Simple)
    }

    /// Runs a command: [`Event::Output`]s, then [`Event::ExecEnd`].
    pub fn exec(&mut self, command: &str) -> Result<(), Error> {
        if command.trim().is_empty() {
            return Err(Error::BadUsage);
        }
        let command = bounded(command, Error::TooLarge)?;
        self.request(
            Message::Request(Request::Exec { command }),
            Pending::Exec { output: false },
        )
    }

    fn request(&mut self, msg: Message, pending: Pending) -> Result<(), Error> {
        self.expect_state(matches!(self.role.state, State::Idle))?;
        self.link.send_msg(&msg)?;
        self.role.state = State::Await(pending);
        Ok(())
    }

    fn expect_state(&self, ok: bool) -> Result<(), Error> {
        if let Some(_e) = self.link.closed {
            return Err(Error::Closed);
        }
        if ok {
            Ok(())
        } else {
            Err(Error::BadUsage)
        }
    }

    // ---- get: receiving ----

    /// Answers an [`Event::Offer`]: send the body from `offset` (bytes the
    /// caller already holds; feed them with [`Self::feed_prefix`] before
    /// polling further events so the MD5 covers the whole file).
    pub fn accept(&mut self, offset: u64) -> Result<(), Error> {
        let State::Offered { size } = self.role.state else {
            return Err(Error::BadUsage);
        };
        if offset > size {
            return Err(Error::BadOffset);
        }
        let t = Transfer::new(size, offset, self.link.digest())?;
        self.link
            .send_msg(&Message::Accept { offset, name: None })?;
        self.role.state = State::Receiving(t);
        Ok(())
    }

    /// Refuses an [`Event::Offer`] (e.g. the local file exists): the server
    /// sends no body and the session goes on.
    pub fn refuse(&mut self, err: Error) -> Result<(), Error> {
        self.expect_state(matches!(self.role.state, State::Offered { .. }))?;
        self.link.send_msg(&Message::Error {
            code: err.request_code(),
        })?;
        self.role.state = State::Idle;
        Ok(())
    }

    /// Cancels a transfer in progress (a local write failed, the user
    /// pressed ^C): the peer is told `err`, the session goes on, and no file
    /// is marked verified.
    pub fn cancel(&mut self, err: Error) -> Result<(), Error> {
        match self.role.state {
            State::Receiving(_) => {
                self.link.send_msg(&Message::Error {
                    code: err.request_code(),
                })?;
                self.role.state = State::Discarding;
            }
            State::Sending(_) => {
                // The error follows every body frame sent, so it also marks
                // the body's end; the server acknowledges with an error.
                self.link.send_msg(&Message::Error {
                    code: err.request_code(),
                })?;
                self.role.state = State::CancelWait;
            }
            _ => return Err(Error::BadUsage),
        }
        Ok(())
    }

    // ---- frame handling ----

    fn on_frame(&mut self, kind: FrameKind, range: core::ops::Range<usize>) -> Result<Step, Error> {
        match kind {
            FrameKind::Msg => {
                let msg = decode_message(self.link.payload(range))?;
                self.on_message(msg)
            }
            FrameKind::Data => Ok(self.on_body(range)?.map_or(Step::Nothing, Step::Data)),
            FrameKind::Stdout | FrameKind::Stderr => {
                let State::Await(Pending::Exec { output }) = &mut self.role.state else {
                    return Err(Error::UnexpectedFrame);
                };
                *output = true;
                let stream = if kind == FrameKind::Stdout {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                Ok(Step::Output(stream, range))
            }
        }
    }

    fn on_message(&mut self, msg: Message) -> Result<Step, Error> {
        if let Message::Error { code } = msg {
            return self.on_error(Error::from_wire(code));
        }
        let state = core::mem::replace(&mut self.role.state, State::Idle);
        let (state, event) = match (state, msg) {
            (State::Scram(mut scram, false), Message::ServerFirst(text)) => {
                let last = scram.server_first(&text)?;
                self.link.send_msg(&Message::ClientFinal(last))?;
                (State::Scram(scram, true), None)
            }
            (State::Scram(scram, true), Message::ServerFinal(text)) => {
                scram.server_final(&text)?;
                self.link.logged_in();
                (State::Idle, Some(Event::LoggedIn))
            }
            (State::Anonymous, Message::LoginOk) => {
                self.link.logged_in();
                (State::Idle, Some(Event::LoggedIn))
            }
            (State::Await(Pending::Echo), Message::EchoReply(t)) => {
                (State::Idle, Some(Event::Echo(t)))
            }
            (State::Await(Pending::Simple), Message::Ok) => (State::Idle, Some(Event::Done)),
            (State::Await(Pending::Cwd), Message::Cwd(p)) => (State::Idle, Some(Event::Cwd(p))),
            (State::Await(Pending::Stat), Message::Entry(e)) => {
                (State::Idle, Some(Event::Entry(e)))
            }
            // Only the negotiated algorithm: a digest labelled MD5 must be one.
            (State::Await(Pending::Sum), Message::Sum(sum)) => {
                if sum.algorithm() != self.link.digest() {
                    return Err(Error::Malformed);
                }
                (State::Idle, Some(Event::Sum(sum)))
            }
            (State::Await(Pending::List), Message::Entry(e)) => {
                (State::Await(Pending::List), Some(Event::Entry(e)))
            }
            (State::Await(Pending::List), Message::ListEnd { .. }) => {
                (State::Idle, Some(Event::ListEnd))
            }
            (State::Await(Pending::Get), Message::Offer { size }) => {
                (State::Offered { size }, Some(Event::Offer { size }))
            }
            (State::Await(Pending::Put { size }), Message::Accept { offset, name }) => {
                if offset > size {
                    // A server bug: cancel this put, keep the session.
                    self.link.send_msg(&Message::Error {
                        code: Error::BadOffset.code(),
                    })?;
                    self.role.state = State::CancelWait;
                    return Ok(Step::Event(Event::Failed(Error::BadOffset)));
                }
                self.role.state = State::Sending(Transfer::new(size, offset, self.link.digest())?);
                // An empty file (or a complete resume) needs no body.
                if offset == 0 {
                    self.after_send()?;
                }
                return Ok(Step::Event(Event::Accepted { offset, name }));
            }
            (State::AwaitDone(sum), Message::Done { verified }) => {
                (State::Idle, Some(Event::TransferEnd { verified, sum }))
            }
            (State::Receiving(t), Message::Trailer { sum }) => {
                let verified = t.check_trailer(&sum)?;
                let sum = t.digest();
                self.link.send_msg(&Message::Done { verified })?;
                (State::Idle, Some(Event::TransferEnd { verified, sum }))
            }
            (State::Discarding, Message::Trailer { .. }) => (State::Idle, None),
            (State::Await(Pending::Exec { output }), Message::ExecEnd { status, no_output }) => {
                // Trust what we saw, not only what the server says.
                let no_output = no_output && !output;
                (State::Idle, Some(Event::ExecEnd { status, no_output }))
            }
            _ => return Err(Error::UnexpectedFrame),
        };
        self.role.state = state;
        Ok(event.map_or(Step::Nothing, Step::Event))
    }

    fn on_error(&mut self, err: Error) -> Result<Step, Error> {
        if err.is_fatal() {
            self.link.fail_quietly(err);
            return Err(Error::Closed);
        }
        let state = core::mem::replace(&mut self.role.state, State::Idle);
        match state {
            State::Scram(..) | State::Anonymous => {
                self.role.state = State::LoggedOut;
                Ok(Step::Event(Event::LoginFailed(err)))
            }
            State::Await(_) | State::AwaitDone(_) | State::Receiving(_) => {
                Ok(Step::Event(Event::Failed(err)))
            }
            State::Sending(_) => {
                // The server gave up mid-body; end the body so it can resync.
                self.link.send_resync_trailer()?;
                Ok(Step::Event(Event::Failed(err)))
            }
            // Our cancel was acknowledged, or crossed the server's own
            // cancel (which then serves as the acknowledgement).
            State::CancelWait | State::Discarding => Ok(Step::Nothing),
            other => {
                self.role.state = other;
                Err(Error::UnexpectedFrame)
            }
        }
    }
}

fn to_path(p: &str) -> Result<Path, Error> {
    if p.is_empty() {
        return Err(Error::InvalidPath);
    }
    to_path_or_empty(p)
}

fn to_path_or_empty(p: &str) -> Result<Path, Error> {
    if p.contains('\0') {
        return Err(Error::InvalidPath);
    }
    bounded(p, Error::InvalidPath)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Server, ServerConfig, ServerEvent};

    /// A login may go out before the server's hello arrives: the first
    /// transmit carries the hello and the login together (one round trip
    /// less), and the server, reading its peer's hello first, logs it in.
    #[test]
    fn a_login_goes_out_with_the_hello() {
        let now = Instant::ZERO;
        let mut c = Client::new(now, Config::default(), [0u8; 2048], [0u8; 2048]).unwrap();
        c.login_anonymous().unwrap();
        let first = c.transmit_buf().to_vec();
        let login = crate::frame::encode_message(&Message::Anonymous, &mut [0u8; 64]).unwrap();
        assert_eq!(
            first.len(),
            crate::frame::HELLO_LEN + login,
            "hello and login at once"
        );

        let cfg = ServerConfig {
            allow_anonymous: true,
            ..ServerConfig::new([1; 32])
        };
        let mut s = Server::new(now, cfg, [0u8; 2048], [0u8; 2048]).unwrap();
        assert_eq!(s.handle_input(now, &first), Ok(first.len()));
        let mut logged_in = false;
        while let Some(ev) = s.poll_event() {
            logged_in |= matches!(ev, ServerEvent::LoggedIn { user: None });
        }
        assert!(logged_in);
        let answer = s.transmit_buf().to_vec();
        assert_eq!(c.handle_input(now, &answer), Ok(answer.len()));
        assert!(matches!(c.poll_event(), Some(Event::Connected(_))));
        assert!(matches!(c.poll_event(), Some(Event::LoggedIn)));
        assert!(c.is_logged_in());
    }
}
