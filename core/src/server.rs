//! The server state machine: handshake, login checks, and the protocol side
//! of every request. The driver owns files and processes: it answers each
//! [`Event::Request`] with one of the reply methods.

use crate::auth::{self, parse_client_first_into, ClientFirst, ScramServer, Verifier};
use crate::brief::Brief;
use crate::config::ServerConfig;
use crate::digest::Sum;
use crate::endpoint::{Buffer, Endpoint, Incoming, Link, Negotiated, Role, Side};
use crate::error::Error;
use crate::frame::{FrameKind, FLAG_ANONYMOUS, FLAG_EXEC, FLAG_READ_ONLY};
use crate::message::{Entry, Message, Request, ScramText, Stream, Text, User, MAX_PATH};
use crate::setup::SetupError;
use crate::time::Instant;
use crate::transfer::Transfer;
use heapless::Deque;
use serde::Serialize;

/// What a [`Server`] reports to its driver.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Event<'a> {
    /// The client's hello arrived.
    Connected(Negotiated),
    /// A SCRAM login for `user`: answer with [`Server::login_verifier`]
    /// (`None` for an unknown user; the exchange then fails the same way a
    /// wrong password does).
    LoginRequest {
        /// The user name.
        user: User,
    },
    /// Login succeeded; `None` for anonymous.
    LoggedIn {
        /// Who logged in.
        user: Option<User>,
    },
    /// A login failed; `failures` counts them on this connection.
    LoginFailed {
        /// Who tried (`None` for anonymous).
        user: Option<User>,
        /// Why.
        error: Error,
        /// Failures so far on this connection.
        failures: u8,
    },
    /// A request: answer with the matching reply method or [`Server::refuse`].
    Request(Request),
    /// get: the client accepted the offer; feed the prefix if `offset > 0`,
    /// then send the body from `offset`.
    SendBody {
        /// Resume offset.
        offset: u64,
    },
    /// put: body bytes, borrowed from the input buffer.
    Data(&'a [u8]),
    /// put: the body is complete. If `verified`, store the file and answer
    /// [`Server::finish_put`] (or [`Server::refuse`]); if not, the client has
    /// been told of the mismatch: discard what was received.
    PutEnd {
        /// The digests matched.
        verified: bool,
        /// This side's digest of the whole file (algorithm and bytes).
        sum: Sum,
    },
    /// get: the client received everything and checked the digest.
    GetEnd {
        /// The digests matched on the client.
        verified: bool,
        /// This side's digest of the whole file.
        sum: Sum,
    },
    /// The client cancelled the oldest transfer in flight (the one in
    /// progress); discard partial state (or keep it for a resume).
    Cancelled(Error),
    /// The client refused an offer: that get ends without a body. With
    /// several gets in flight it need not be the oldest: `index` counts
    /// the gets in flight before it (0 with one at a time).
    Declined {
        /// Gets in flight ahead of it.
        index: usize,
        /// The client's reason.
        error: Error,
    },
    /// The connection is over; transmit what is left, then close the socket.
    Closed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Put { size: u64 },
    List,
    Stat,
    Sum,
    Cwd,
    Simple,
    Exec,
}

enum State {
    Handshake,
    LoggedOut,
    Lookup(ClientFirst, ScramText),
    Scram(ScramServer, User),
    Idle,
    Request(Kind),
    Listing(u32),
    Sending(Transfer),
    Receiving(Transfer),
    Storing,
    Discarding,
    /// A pre-agreed put refused: its body (`left` bytes more) and trailer
    /// are read and dropped, then the refusal `code` goes out
    /// (`docs/PROTOCOL.md#pre-agreed-puts`).
    Refusing {
        code: u16,
        left: u64,
    },
    Exec(bool),
    Closed,
}

/// A get or put in flight that has not started its body: offered gets
/// (answered or not) and accepted puts, in request order.
#[derive(Debug)]
enum Ahead {
    Get {
        size: u64,
        /// The file's digest, if the store vouched for it.
        vouched: Option<Sum>,
        answer: Answer,
    },
    Put {
        size: u64,
    },
}

/// The client's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Waiting,
    Accept(u64),
    /// An offset past the size: the get ends with `BadOffset` where its
    /// body would go (`docs/PROTOCOL.md#get-server-sends`).
    BadOffset,
}

pub(crate) enum Step {
    Nothing,
    Event(Event<'static>),
    Data(core::ops::Range<usize>),
}

/// A Ferry server connection, sans-IO, one per client: an [`Endpoint`]
/// in the server role. `W` is how many requests it holds in flight at
/// once (`docs/PROTOCOL.md#pipelining`): each costs a few dozen bytes
/// here; 1 serves one request at a time, as a version-2 server does.
pub type Server<B, const W: usize = 1> = Endpoint<B, ServerRole<W>>;

/// The server's own state inside an [`Endpoint`].
pub struct ServerRole<const W: usize> {
    state: State,
    config: ServerConfig,
    failures: u8,
    /// We cancelled a get; a version-2 client's own cancel may still be on
    /// the way and is then dropped.
    cancel_may_cross: bool,
    /// Gets we cancelled whose acknowledgement (the client's `Error`) a
    /// version-3 client still owes.
    owed_acks: u16,
    /// A request read while others are in flight, waiting for the store's
    /// answer (the session's state stays as it was).
    answering: Option<Kind>,
    /// Gets and puts in flight whose body has not started, oldest first.
    ahead: Deque<Ahead, W>,
    /// Gets whose body went out, waiting for `Done`: this side's digests,
    /// oldest first.
    sent: Deque<Sum, W>,
    /// A refused connection's error and retry-after, sent once the
    /// client's hello says which form it reads.
    refusal: Option<(Error, u32)>,
    /// The get being answered came as `GetAgreed`: the offset and the
    /// largest size its client accepts without an `Accept`. One is
    /// enough: a request is read only once the one before is answered.
    agreed: Option<(u64, u64)>,
    /// The put being answered came as `PutAgreed`: its body follows the
    /// request at once, so a refusal waits until it has been read.
    put_agreed: bool,
}

impl<const W: usize> ServerRole<W> {
    /// Requests in flight: bodies waiting, in progress or awaiting `Done`.
    fn in_flight(&self) -> usize {
        let current = matches!(
            self.state,
            State::Sending(_)
                | State::Receiving(_)
                | State::Storing
                | State::Discarding
                | State::Refusing { .. }
        );
        self.ahead.len() + self.sent.len() + usize::from(current)
    }

    /// Where the oldest offer the client has not answered stands among
    /// those ahead; none is a protocol error.
    fn first_unanswered(&self) -> Result<usize, Error> {
        self.ahead
            .iter()
            .position(|a| {
                matches!(
                    a,
                    Ahead::Get {
                        answer: Answer::Waiting,
                        ..
                    }
                )
            })
            .ok_or(Error::UnexpectedFrame)
    }

    /// Whether an answer the driver gives, or one the session streams,
    /// is still to go out for the request read last.
    fn owes_answer(&self) -> bool {
        self.answering.is_some()
            || matches!(
                self.state,
                State::Request(_) | State::Listing(_) | State::Exec(_) | State::Storing
            )
    }

    fn puts_in_flight(&self) -> bool {
        matches!(
            self.state,
            State::Receiving(_) | State::Storing | State::Discarding | State::Refusing { .. }
        ) || self.ahead.iter().any(|a| matches!(a, Ahead::Put { .. }))
    }
}

impl<const W: usize> Role for ServerRole<W> {
    fn hello_received(&mut self) -> bool {
        if !matches!(self.state, State::Handshake) {
            return false;
        }
        self.state = State::LoggedOut;
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
        self.state = State::Idle;
        // Room: the get was counted in flight while its body streamed.
        let _ = self.sent.push_back(sum);
    }
}

impl<B: Buffer> Server<B> {
    /// A server connection; its hello goes out at the first transmit.
    /// `inbuf` and `outbuf` must be at least
    /// [`MIN_INPUT_BUFFER`](crate::MIN_INPUT_BUFFER) /
    /// [`MIN_OUTPUT_BUFFER`](crate::MIN_OUTPUT_BUFFER) bytes: a shorter
    /// one is [`SetupError::InsufficientSize`] with the size it needs (as
    /// for [`Client::new`](crate::Client::new)).
    pub fn new(
        now: Instant,
        config: ServerConfig,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, SetupError> {
        Self::with_window(now, config, inbuf, outbuf)
    }

    /// A connection that only tells the client the server is full, then
    /// closes: for the session over the limit.
    pub fn new_busy(
        now: Instant,
        config: ServerConfig,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, SetupError> {
        Self::new_refused(now, config, inbuf, outbuf, Error::Busy)
    }

    /// A connection that only tells the client `err` (a fatal error such
    /// as [`Error::Busy`] or [`Error::Penalised`]) after the hello, then
    /// closes: the driver refused it before any login.
    pub fn new_refused(
        now: Instant,
        config: ServerConfig,
        inbuf: B,
        outbuf: B,
        err: Error,
    ) -> Result<Self, SetupError> {
        let mut s = Self::with_window(now, config, inbuf, outbuf)?;
        s.link.fail(err);
        Ok(s)
    }

    /// As [`Self::new_refused`], saying when to try again: a version-3
    /// client is told `retry_after` seconds (`Retry`), a version-2 one
    /// only `err`. The refusal waits for the client's hello, which every
    /// client sends at once, so it knows which form to use; a client that
    /// sends none gets the version-2 form at the handshake deadline.
    pub fn new_refused_retry(
        now: Instant,
        config: ServerConfig,
        inbuf: B,
        outbuf: B,
        err: Error,
        retry_after: u32,
    ) -> Result<Self, SetupError> {
        let mut s = Self::with_window(now, config, inbuf, outbuf)?;
        s.role.refusal = Some((err, retry_after));
        Ok(s)
    }
}

impl<const W: usize> ServerRole<W> {
    const fn new(config: ServerConfig) -> Self {
        ServerRole {
            state: State::Handshake,
            config,
            failures: 0,
            cancel_may_cross: false,
            owed_acks: 0,
            answering: None,
            ahead: Deque::new(),
            sent: Deque::new(),
            refusal: None,
            agreed: None,
            put_agreed: false,
        }
    }
}

impl<B: Buffer, const W: usize> Server<B, W> {
    /// As [`Server::new`], holding up to `W` gets or puts in flight
    /// (`docs/PROTOCOL.md#pipelining`); `W` of 0 or above
    /// [`MAX_WINDOW`](crate::frame::MAX_WINDOW) is [`SetupError::Window`].
    pub fn with_window(
        now: Instant,
        config: ServerConfig,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, SetupError> {
        let mut flags = 0;
        if config.allow_anonymous {
            flags |= FLAG_ANONYMOUS;
        }
        if config.allow_exec {
            flags |= FLAG_EXEC;
        }
        if config.read_only {
            flags |= FLAG_READ_ONLY;
        }
        let link = Link::new(now, config.conn, Side::Server, flags, W, inbuf, outbuf)?;
        Ok(Endpoint::from_parts(link, ServerRole::new(config)))
    }

    /// Starts a new connection in this one's place, with the same
    /// configuration and buffers: as [`Server::with_window`] made it (a
    /// server made to refuse, [`Server::new_refused`], comes back one that
    /// accepts), the old connection forgotten (its driver ends its session
    /// first). A device
    /// serving one connection at a time keeps one server this way:
    /// building a new one by value and moving it into place took 4.7 KB
    /// of stack on a Cortex-M4, as much as serving a request.
    pub fn restart(&mut self, now: Instant) {
        self.link.restart(now);
        self.role = ServerRole::new(self.role.config);
    }

    /// Closes the connection with `err`, sent to the client if the output
    /// has room: for the driver's own decisions (a connection evicted to
    /// make room, an address refused mid-login). The next
    /// [`Server::poll_event`] reports [`Event::Closed`].
    pub fn close(&mut self, err: Error) {
        self.link.fail(err);
    }

    /// As [`Self::close`], telling a version-3 client after how many
    /// seconds to try again (`Retry`, `seconds` 0 when unknown; a
    /// version-2 client, or one whose hello has not been read, hears
    /// `err`). For fatal refusals ([`Error::Busy`], [`Error::Penalised`]):
    /// a version-3 client hears every refusal in one form, whenever it
    /// comes (`docs/PROTOCOL.md#refused-connections`).
    pub fn close_retry(&mut self, err: Error, seconds: u32) {
        if matches!(err, Error::Busy | Error::Penalised) && self.version() >= 3 {
            let code = err.code();
            if self.link.send_msg(&Brief::Retry { code, seconds }).is_ok() {
                self.link.fail_quietly(err);
                return;
            }
        }
        self.link.fail(err);
    }

    // ---- getters ----

    /// The next event, if the buffered input completes one. Returns `None`
    /// while a reply the driver owes is pending output room: transmit, then
    /// poll again.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        match self.poll_step()? {
            Step::Data(r) => Some(Event::Data(self.link.payload(r))),
            Step::Event(e) => Some(e),
            Step::Nothing => None,
        }
    }

    /// Body bytes of a [`Step::Data`].
    pub(crate) fn data(&self, range: core::ops::Range<usize>) -> &[u8] {
        self.link.payload(range)
    }

    /// [`Self::poll_event`] with body bytes as their place in the input:
    /// an event that borrows nothing, which [`crate::app::Session`]
    /// handles without copying it out of the borrow first (a request is
    /// 976 bytes). Never [`Step::Nothing`].
    ///
    /// Not inlined: its temporaries then take stack only while it runs,
    /// not under the handling of the event (a Cortex-M4 session's stack:
    /// 21.9 -> 18.5 KB).
    #[inline(never)]
    pub(crate) fn poll_step(&mut self) -> Option<Step> {
        if matches!(self.role.state, State::Closed) {
            return None;
        }
        loop {
            if self.link.closed.is_some() {
                let e = self.link.take_close()?;
                self.role.state = State::Closed;
                return Some(Step::Event(Event::Closed(e)));
            }
            // Backpressure: a request may need an answer, so only take one
            // when an answer surely fits.
            if !self.link.can_send_msg() {
                return None;
            }
            match self.next_in_flight() {
                Ok(Some(e)) => return Some(Step::Event(e)),
                Ok(None) => {}
                Err(e) => {
                    self.link.fail(e);
                    continue;
                }
            }
            // No answer goes out inside a body: a request waits in the
            // input until the body in progress has ended.
            let pipelining = self.window() > 1;
            if matches!(self.role.state, State::Sending(_)) && self.link.next_is_request(pipelining)
            {
                return None;
            }
            // With a window above 1, nothing more is read while this side
            // still owes an answer (the driver's reply, a listing, a
            // command's output, a put's commit): whatever the client sent
            // next is answered after it, so answers leave in request order
            // (`docs/PROTOCOL.md#pipelining`). Window 1 reads on, and a
            // request there is `UnexpectedFrame`, as in version 2. A
            // client gone (end of input) is noticed at once, so a command
            // it left running is stopped.
            if self.role.owes_answer() && pipelining && !self.link.eof() {
                return None;
            }
            let incoming = match self.link.next_frame() {
                Ok(Some(i)) => i,
                Ok(None) => {
                    if self.link.eof() {
                        let mid = self.link.eof_mid_frame()
                            || !matches!(self.role.state, State::Idle | State::LoggedOut);
                        self.link
                            .fail_quietly(if mid { Error::Truncated } else { Error::Closed });
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
                Incoming::Hello => self.on_hello().and_then(|n| {
                    if let Some((err, seconds)) = self.role.refusal.take() {
                        if n.version >= 3 {
                            let code = err.code();
                            self.link.send_msg(&Brief::Retry { code, seconds })?;
                            self.link.fail_quietly(err);
                        } else {
                            self.link.fail(err);
                        }
                    }
                    Ok(Step::Event(Event::Connected(n)))
                }),
                Incoming::Frame(kind, range) => self.on_frame(kind, range),
            };
            match step {
                Ok(Step::Nothing) => continue,
                Ok(Step::Event(e)) => return Some(Step::Event(e)),
                Ok(Step::Data(r)) => return Some(Step::Data(r)),
                Err(Error::Closed) => continue,
                Err(e) => {
                    self.link.fail(e);
                    continue;
                }
            }
        }
    }

    /// Moves the gets and puts in flight along before more input is read:
    /// ends a refused get at the front, starts the next accepted body.
    /// Ends are reported oldest first, so a store holding its handles in
    /// request order always ends the front one.
    fn next_in_flight(&mut self) -> Result<Option<Event<'static>>, Error> {
        if !matches!(self.role.state, State::Idle) || self.role.answering.is_some() {
            return Ok(None);
        }
        let role = &mut self.role;
        match role.ahead.front() {
            Some(Ahead::Get {
                size,
                vouched,
                answer: Answer::Accept(offset),
            }) => {
                let (size, vouched, offset) = (*size, *vouched, *offset);
                role.ahead.pop_front();
                let mut t = Transfer::new(size, offset, self.link.digest())?;
                if let Some(sum) = vouched {
                    t.vouch(sum);
                }
                self.role.state = State::Sending(t);
                // Nothing left to hash or send (an empty file, or a resume
                // at the end whose digest is vouched for): the trailer goes
                // now, else nothing would ever send it.
                self.after_send()?;
                Ok(Some(Event::SendBody { offset }))
            }
            // Its body's turn, but the offset was past the size: the get
            // ends as one this side cancelled before its body would
            // (`docs/PROTOCOL.md#get-server-sends`).
            Some(Ahead::Get {
                answer: Answer::BadOffset,
                ..
            }) => {
                role.ahead.pop_front();
                let index = role.sent.len();
                self.link.send_msg(&Brief::Error {
                    code: Error::BadOffset.code(),
                })?;
                self.get_ended_here();
                Ok(Some(Event::Declined {
                    index,
                    error: Error::BadOffset,
                }))
            }
            Some(Ahead::Put { size }) => {
                let t = Transfer::new(*size, 0, self.link.digest())?;
                role.ahead.pop_front();
                self.role.state = State::Receiving(t);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Whether one more reply (a control message) fits the output buffer
    /// now; when not, transmit first.
    pub fn can_reply(&mut self) -> bool {
        self.link.can_send_msg()
    }

    // ---- replies ----

    /// Answers [`Event::LoginRequest`]: the user's verifier, or `None` if
    /// there is no such user. `random` is 8–32 fresh random bytes for the
    /// server nonce.
    #[inline(never)]
    pub fn login_verifier(
        &mut self,
        verifier: Option<&Verifier>,
        random: &[u8],
    ) -> Result<(), Error> {
        let State::Lookup(first, raw) = &self.role.state else {
            return Err(Error::BadUsage);
        };
        // The state changes before the answer is written: room first, so
        // `BufferFull` leaves the lookup to answer again.
        if !self.link.can_send_msg() {
            return Err(Error::BufferFull);
        }
        let nonce = auth::nonce_from_random(random)?;
        let fake = auth::fake_salt(&self.role.config.secret, &first.user);
        let stand_in = (&fake[..], self.role.config.unknown_user_iterations);
        // What the exchange needs of the client-first, taken out before
        // the state that holds it becomes the exchange, which is begun
        // where it lies (`ScramServer::begin`).
        let (user, bare, client_nonce) =
            (first.user.clone(), first.bare.clone(), first.nonce.clone());
        let y = raw.starts_with("y,,");
        self.role.state = State::Scram(ScramServer::new(), user);
        let State::Scram(scram, _) = &mut self.role.state else {
            return Err(Error::Internal);
        };
        scram.begin((&bare, &client_nonce, y), verifier, stand_in, &nonce)?;
        self.link
            .send_msg(&Brief::ServerFirst(scram.server_first()))?;
        Ok(())
    }

    /// Refuses the pending request (or a put whose body arrived but cannot
    /// be stored) with a typed error; the session goes on.
    pub fn refuse(&mut self, err: Error) -> Result<(), Error> {
        let pipelined = self.role.answering.is_some();
        if !pipelined
            && !matches!(
                self.role.state,
                State::Request(_) | State::Listing(_) | State::Storing
            )
        {
            return Err(Error::BadUsage);
        }
        if !pipelined && matches!(self.role.state, State::Request(Kind::Put { .. })) {
            return self.refuse_request(err);
        }
        self.link.send_msg(&Brief::Error {
            code: err.request_code(),
        })?;
        if pipelined {
            self.role.answering = None;
        } else {
            self.role.state = State::Idle;
        }
        Ok(())
    }

    /// Refuses the request read last with nothing in flight: at once, or,
    /// a pre-agreed put's, once its body and trailer (which follow it
    /// regardless) have been read and dropped: the refusal is then its
    /// only answer (`docs/PROTOCOL.md#pre-agreed-puts`).
    fn refuse_request(&mut self, err: Error) -> Result<(), Error> {
        let code = err.request_code();
        let agreed = core::mem::take(&mut self.role.put_agreed);
        self.role.state = match self.role.state {
            State::Request(Kind::Put { size }) if agreed => State::Refusing { code, left: size },
            _ => {
                self.link.send_msg(&Brief::Error { code })?;
                State::Idle
            }
        };
        Ok(())
    }

    /// Takes the request being answered if it is of `kind` (`size` for a
    /// put): a pipelined one, or the only one.
    fn answer(&mut self, get: bool) -> Result<Option<u64>, Error> {
        let matches = |k: Option<Kind>| match k {
            Some(Kind::Get) if get => Some(None),
            Some(Kind::Put { size }) if !get => Some(Some(size)),
            _ => None,
        };
        if let Some(r) = matches(self.role.answering) {
            self.role.answering = None;
            return Ok(r);
        }
        let State::Request(k) = self.role.state else {
            return Err(Error::BadUsage);
        };
        let r = matches(Some(k)).ok_or(Error::BadUsage)?;
        self.role.state = State::Idle;
        Ok(r)
    }

    /// mkdir, remove, rename succeeded.
    pub fn reply_ok(&mut self) -> Result<(), Error> {
        self.reply(Kind::Simple, &Brief::Ok)
    }

    /// cd or pwd: the session's directory.
    pub fn reply_cwd(&mut self, path: &str) -> Result<(), Error> {
        if path.len() > MAX_PATH {
            return Err(Error::InvalidPath);
        }
        self.reply(Kind::Cwd, &Brief::Cwd(path))
    }

    /// digest: the file's digest, made with the negotiated algorithm
    /// ([`Server::negotiated`]); another algorithm is [`Error::BadUsage`].
    pub fn reply_sum(&mut self, sum: &Sum) -> Result<(), Error> {
        if sum.algorithm() != self.link.digest() {
            return Err(Error::BadUsage);
        }
        self.reply(Kind::Sum, &Brief::Sum(*sum))
    }

    /// stat: the entry.
    pub fn reply_entry(&mut self, entry: &Entry) -> Result<(), Error> {
        self.reply(Kind::Stat, &Brief::Entry(entry))
    }

    fn reply<M: Serialize>(&mut self, kind: Kind, msg: &M) -> Result<(), Error> {
        if !matches!(self.role.state, State::Request(k) if k == kind) {
            return Err(Error::BadUsage);
        }
        self.link.send_msg(msg)?;
        self.role.state = State::Idle;
        Ok(())
    }

    /// list: one entry. `BufferFull` means transmit, then call again.
    pub fn list_entry(&mut self, entry: &Entry) -> Result<(), Error> {
        let count = match self.role.state {
            State::Request(Kind::List) => 0,
            State::Listing(n) => n,
            _ => return Err(Error::BadUsage),
        };
        if !self.link.can_send_msg() {
            return Err(Error::BufferFull);
        }
        self.link.send_msg(&Brief::Entry(entry))?;
        self.role.state = State::Listing(count.saturating_add(1));
        Ok(())
    }

    /// list: no more entries.
    pub fn list_end(&mut self) -> Result<(), Error> {
        let count = match self.role.state {
            State::Request(Kind::List) => 0,
            State::Listing(n) => n,
            _ => return Err(Error::BadUsage),
        };
        self.link.send_msg(&Brief::ListEnd { count })?;
        self.role.state = State::Idle;
        Ok(())
    }

    /// get: announce the file's exact size; the client answers with a
    /// resume offset ([`Event::SendBody`]) or a refusal.
    pub fn offer(&mut self, size: u64) -> Result<(), Error> {
        self.offer_vouched(size, None)
    }

    /// get: as [`Self::offer`], vouching for the whole file's digest, which
    /// the handler kept from when it last verified the file (stored by a
    /// put, or hashed by a get or a digest request, and unchanged since).
    /// The body then goes out without being hashed again and the trailer
    /// carries `sum`; the client still hashes every byte it receives, so a
    /// file that changed since — even a bit flipped on the server's storage
    /// — fails its check instead of passing. A `sum` in another algorithm
    /// than the negotiated one is ignored (the body is hashed as usual).
    pub fn offer_vouched(&mut self, size: u64, sum: Option<Sum>) -> Result<(), Error> {
        if !self.link.can_send_msg() || self.role.ahead.is_full() {
            return Err(Error::BufferFull);
        }
        self.answer(true)?;
        self.link.send_msg(&Brief::Offer { size })?;
        // Within what a `GetAgreed` agreed to, the offer is accepted
        // already: its body goes out in its turn, without an `Accept`.
        let answer = match self.role.agreed.take() {
            Some((offset, max)) if offset <= size && size <= max => Answer::Accept(offset),
            _ => Answer::Waiting,
        };
        let get = Ahead::Get {
            size,
            vouched: sum,
            answer,
        };
        self.role.ahead.push_back(get).map_err(|_| Error::Internal)
    }

    /// put: accept the upload from `offset` (the length of a partial upload
    /// kept from before, or 0), optionally naming where it will be stored.
    pub fn accept_put(&mut self, offset: u64, name: Option<&str>) -> Result<(), Error> {
        let (pipelined, size) = match (self.role.answering, &self.role.state) {
            (Some(Kind::Put { size }), _) => (true, size),
            (None, State::Request(Kind::Put { size })) => (false, *size),
            _ => return Err(Error::BadUsage),
        };
        // A pipelined put never resumes: its prefix could not be hashed
        // before the bodies ahead of it; a pre-agreed one is sent whole.
        if offset > size || ((pipelined || self.role.put_agreed) && offset > 0) {
            return Err(Error::BadOffset);
        }
        if name.is_some_and(|n| n.len() > MAX_PATH) {
            return Err(Error::InvalidPath);
        }
        let t = Transfer::new(size, offset, self.link.digest())?;
        self.link.send_msg(&Brief::Accept { offset, name })?;
        self.answer(false)?;
        self.role.put_agreed = false;
        if pipelined {
            let put = Ahead::Put { size };
            self.role
                .ahead
                .push_back(put)
                .map_err(|_| Error::Internal)?;
        } else {
            self.role.state = State::Receiving(t);
        }
        Ok(())
    }

    /// put: the verified file is stored; tell the client.
    pub fn finish_put(&mut self) -> Result<(), Error> {
        if !matches!(self.role.state, State::Storing) {
            return Err(Error::BadUsage);
        }
        self.link.send_msg(&Brief::Done { verified: true })?;
        self.role.state = State::Idle;
        Ok(())
    }

    /// Gives up on the transfer in progress (a disk error, no space): the
    /// client is told `err` and the session goes on.
    pub fn cancel(&mut self, err: Error) -> Result<(), Error> {
        let next = match self.role.state {
            State::Sending(_) => State::Idle,
            State::Receiving(_) => State::Discarding,
            _ => return Err(Error::BadUsage),
        };
        self.link.send_msg(&Brief::Error {
            code: err.request_code(),
        })?;
        if matches!(next, State::Idle) {
            self.get_ended_here();
        }
        self.role.state = next;
        Ok(())
    }

    /// This side ended a get with an `Error`: a version-3 client
    /// acknowledges it with an `Error` of its own; a version-2 one may
    /// cross it with its own.
    fn get_ended_here(&mut self) {
        if self.version() >= 3 {
            self.role.owed_acks = self.role.owed_acks.saturating_add(1);
        } else {
            self.role.cancel_may_cross = true;
        }
    }

    /// exec: a piece of output; returns how many bytes were taken (at most
    /// one chunk; `BufferFull` when the output buffer is full).
    pub fn exec_output(&mut self, stream: Stream, data: &[u8]) -> Result<usize, Error> {
        let seen = match self.role.state {
            State::Request(Kind::Exec) => false,
            State::Exec(seen) => seen,
            _ => return Err(Error::BadUsage),
        };
        if data.is_empty() {
            return Ok(0);
        }
        let kind = match stream {
            Stream::Stdout => FrameKind::Stdout,
            Stream::Stderr => FrameKind::Stderr,
        };
        let n = self.link.send_frame(kind, data)?;
        self.role.state = State::Exec(seen || n > 0);
        Ok(n)
    }

    /// exec: the command ended with `status`.
    pub fn exec_end(&mut self, status: i32) -> Result<(), Error> {
        let seen = match self.role.state {
            State::Request(Kind::Exec) => false,
            State::Exec(seen) => seen,
            _ => return Err(Error::BadUsage),
        };
        self.link.send_msg(&Brief::ExecEnd {
            status,
            no_output: !seen,
        })?;
        self.role.state = State::Idle;
        Ok(())
    }

    // ---- frame handling ----

    fn on_frame(&mut self, kind: FrameKind, range: core::ops::Range<usize>) -> Result<Step, Error> {
        match kind {
            FrameKind::Msg => {
                let mut msg = Message::Ok;
                crate::decode::message_into(self.link.payload(range), &mut msg)?;
                self.take_agreement(&mut msg);
                self.on_message(&mut msg)
            }
            FrameKind::Data => {
                if let State::Refusing { left, .. } = &mut self.role.state {
                    *left = left
                        .checked_sub(range.len() as u64)
                        .ok_or(Error::Malformed)?;
                    return Ok(Step::Nothing);
                }
                Ok(self.on_body(range)?.map_or(Step::Nothing, Step::Data))
            }
            FrameKind::Stdout | FrameKind::Stderr => Err(Error::UnexpectedFrame),
        }
    }

    fn login_failed(&mut self, user: Option<User>, error: Error) -> Result<Step, Error> {
        self.role.failures = self.role.failures.saturating_add(1);
        self.role.state = State::LoggedOut;
        if self.role.failures >= self.role.config.max_login_failures.max(1) {
            self.link.fail(Error::TooManyFailures);
        } else {
            self.link.send_msg(&Brief::Error {
                code: error.request_code(),
            })?;
        }
        Ok(Step::Event(Event::LoginFailed {
            user,
            error,
            failures: self.role.failures,
        }))
    }

    /// A pre-agreed get is a get to the store: rewritten in place, its
    /// agreement kept until the offer (`docs/PROTOCOL.md#pre-agreed-gets`).
    /// Any other request clears it. Kept out of line: inlined, it let the
    /// compiler copy all of [`Self::on_message`] for the rewritten case
    /// (8.5 KB of flash).
    #[inline(never)]
    fn take_agreement(&mut self, msg: &mut Message) {
        if let Message::GetAgreed { path, offset, max } = msg {
            if self.version() >= 3 {
                self.role.agreed = Some((*offset, *max));
                let path = core::mem::take(path);
                *msg = Message::Request(Request::Get { path });
            }
        } else if let Message::PutAgreed {
            path,
            size,
            overwrite,
        } = msg
        {
            // Only where its body can be read as it comes: logged in, a
            // window above 1 and nothing in flight (the one before is
            // stored by now). Anything else stays `PutAgreed`, which no
            // state takes: `UnexpectedFrame`.
            let window = self.link.negotiated.map_or(1, |n| n.window);
            if self.version() >= 3
                && window > 1
                && matches!(self.role.state, State::Idle)
                && self.role.in_flight() == 0
            {
                self.role.agreed = None;
                self.role.put_agreed = true;
                *msg = Message::Request(Request::Put {
                    path: core::mem::take(path),
                    size: *size,
                    overwrite: *overwrite,
                    resume: false,
                });
            }
        } else if let Message::Request(_) = msg {
            self.role.agreed = None;
            self.role.put_agreed = false;
        }
    }

    /// One control message. Taken by reference, and each kind of message
    /// handled in a function of its own that is not inlined: moved by
    /// value through one `match`, the message, the session state and the
    /// event each left a ~1 KB copy in one stack frame (9 KB on a
    /// Cortex-M4, `-Z emit-stack-sizes`), the deepest of the serial
    /// firmware.
    fn on_message(&mut self, msg: &mut Message) -> Result<Step, Error> {
        match *msg {
            Message::Error { code } => return self.on_error(Error::from_wire(code)),
            Message::Refuse { code } => return self.on_refusal(Error::from_wire(code)),
            Message::Accept { offset, .. } if !matches!(self.role.state, State::LoggedOut) => {
                return self.on_accept(offset)
            }
            Message::Done { verified } => {
                let sum = self.role.sent.pop_front().ok_or(Error::UnexpectedFrame)?;
                self.role.cancel_may_cross = false;
                return Ok(Step::Event(Event::GetEnd { verified, sum }));
            }
            _ => {}
        }
        if self.role.in_flight() > 0 {
            match msg {
                Message::Request(req @ (Request::Get { .. } | Request::Put { .. })) => {
                    return self.pipelined(req)
                }
                Message::Request(_) => self.pipelined_other()?,
                // Window 1 answers an echo whenever it comes, as version 2.
                Message::Echo { .. } if self.window() > 1 => self.pipelined_other()?,
                _ => {}
            }
        }
        self.role.cancel_may_cross = false;
        // A request or an echo is handed on to be taken or changed in
        // place (`on_request`, `on_echo`).
        match (&self.role.state, &mut *msg) {
            (State::Idle, Message::Request(req)) => return self.on_request(req),
            (State::Idle, Message::Echo { text, upper }) => {
                let upper = *upper;
                self.on_echo(text, upper)?;
                return Ok(Step::Nothing);
            }
            _ => {}
        }
        match (&self.role.state, &*msg) {
            (State::LoggedOut, Message::Anonymous | Message::ClientFirst(_))
            | (State::Scram(..), Message::ClientFinal(_)) => self.on_login(msg),
            (State::LoggedOut, Message::Echo { .. } | Message::Request(_)) => {
                self.link.send_msg(&Brief::Error {
                    code: Error::NotLoggedIn.code(),
                })?;
                Ok(Step::Nothing)
            }
            (State::Receiving(t), Message::Trailer { sum }) => {
                let verified = t.check_trailer(sum)?;
                let sum = t.digest();
                if verified {
                    self.role.state = State::Storing;
                } else {
                    self.role.state = State::Idle;
                    self.link.send_msg(&Brief::Error {
                        code: Error::ChecksumMismatch.code(),
                    })?;
                }
                Ok(Step::Event(Event::PutEnd { verified, sum }))
            }
            (State::Discarding, Message::Trailer { .. }) => {
                self.role.state = State::Idle;
                Ok(Step::Nothing)
            }
            (&State::Refusing { code, left }, Message::Trailer { .. }) => {
                if left > 0 {
                    return Err(Error::Truncated);
                }
                self.role.state = State::Idle;
                self.link.send_msg(&Brief::Error { code })?;
                Ok(Step::Nothing)
            }
            _ => {
                self.role.state = State::Idle;
                Err(Error::UnexpectedFrame)
            }
        }
    }

    /// Anonymous, client-first or client-final, in the state that takes it.
    /// Each arm returns its step itself: an `Event` local is 976 bytes.
    #[inline(never)]
    fn on_login(&mut self, msg: &Message) -> Result<Step, Error> {
        match (&self.role.state, msg) {
            (_, Message::Anonymous) => {
                if !self.role.config.allow_anonymous {
                    return self.login_failed(None, Error::AnonymousNotAllowed);
                }
                self.link.send_msg(&Brief::LoginOk)?;
                self.link.logged_in();
                self.role.state = State::Idle;
                Ok(Step::Event(Event::LoggedIn { user: None }))
            }
            (_, Message::ClientFirst(text)) => {
                // Parsed where the state keeps it, not built and moved.
                self.role.state = State::Lookup(ClientFirst::new(), ScramText::new());
                let State::Lookup(first, raw) = &mut self.role.state else {
                    return Err(Error::Internal);
                };
                parse_client_first_into(text, first)?;
                raw.clone_from(text);
                let user = first.user.clone();
                Ok(Step::Event(Event::LoginRequest { user }))
            }
            (State::Scram(scram, user), Message::ClientFinal(text)) => {
                let user = user.clone();
                let last = scram.client_final(text);
                self.role.state = State::Idle;
                match last {
                    Ok(server_final) => {
                        self.link.send_msg(&Brief::ServerFinal(&server_final))?;
                        self.link.logged_in();
                        Ok(Step::Event(Event::LoggedIn { user: Some(user) }))
                    }
                    Err(Error::AuthFailed) => self.login_failed(Some(user), Error::AuthFailed),
                    Err(e) => Err(e),
                }
            }
            _ => Err(Error::UnexpectedFrame),
        }
    }

    /// An echo, answered at once.
    #[inline(never)]
    fn on_echo(&mut self, text: &mut Text, upper: bool) -> Result<(), Error> {
        if upper {
            if let Err(e) = uppercase(text) {
                return self.link.send_msg(&Brief::Error {
                    code: e.request_code(),
                });
            }
        }
        self.link.send_msg(&Brief::EchoReply(text))
    }

    /// A request with nothing in flight: refused at once (a put to a
    /// directory name, one the configuration forbids) or handed to the
    /// driver.
    #[inline(never)]
    fn on_request(&mut self, req: &mut Request) -> Result<Step, Error> {
        let kind = match req {
            Request::Get { .. } => Kind::Get,
            Request::Put { size, .. } => Kind::Put { size: *size },
            Request::List { .. } => Kind::List,
            Request::Stat { .. } => Kind::Stat,
            Request::Digest { .. } => Kind::Sum,
            Request::Cd { .. } | Request::Pwd => Kind::Cwd,
            Request::Mkdir { .. }
            | Request::Remove { .. }
            | Request::Rename { .. }
            | Request::RenameReplace { .. } => Kind::Simple,
            Request::Exec { .. } => Kind::Exec,
        };
        self.role.state = State::Request(kind);
        let refused = match req {
            Request::Put { path, .. } if crate::message::names_directory(path) => {
                Some(Error::IsADirectory)
            }
            _ => refused_by_config(&self.role.config, req),
        };
        if let Some(err) = refused {
            self.refuse_request(err)?;
            return Ok(Step::Nothing);
        }
        // Moved out of the decoded message, not cloned: a clone was a
        // second 976-byte request on the stack.
        Ok(Step::Event(Event::Request(core::mem::replace(
            req,
            Request::Pwd,
        ))))
    }

    /// A request read while others are in flight (`docs/PROTOCOL.md#pipelining`):
    /// only a get behind gets, or a put (not resumed) behind puts, within
    /// the window and never inside a body it sends; anything else breaks
    /// the protocol.
    fn pipelined(&mut self, req: &mut Request) -> Result<Step, Error> {
        // A server of window 1 never has room (and drops this code).
        if W == 1 {
            return Err(Error::UnexpectedFrame);
        }
        let role = &self.role;
        let window = usize::from(self.link.negotiated.map_or(1, |n| n.window));
        if role.in_flight() >= window || role.answering.is_some() {
            return Err(Error::UnexpectedFrame);
        }
        let kind = match req {
            Request::Get { .. } if !role.puts_in_flight() => Kind::Get,
            Request::Put {
                size,
                resume: false,
                path,
                ..
            } if role.sent.is_empty()
                && role.ahead.iter().all(|a| matches!(a, Ahead::Put { .. }))
                && match &role.state {
                    State::Idle => true,
                    // Not behind a resumed put (`docs/PROTOCOL.md#pipelining`).
                    State::Receiving(t) => t.untouched() && t.offset == 0,
                    _ => false,
                } =>
            {
                if crate::message::names_directory(path) {
                    self.link.send_msg(&Brief::Error {
                        code: Error::IsADirectory.code(),
                    })?;
                    return Ok(Step::Nothing);
                }
                Kind::Put { size: *size }
            }
            _ => return Err(Error::UnexpectedFrame),
        };
        if let Some(err) = refused_by_config(&self.role.config, req) {
            self.link.send_msg(&Brief::Error {
                code: err.request_code(),
            })?;
            return Ok(Step::Nothing);
        }
        self.role.answering = Some(kind);
        // Moved out of the decoded message, not cloned: a clone was a
        // second 976-byte request on the stack.
        Ok(Step::Event(Event::Request(core::mem::replace(
            req,
            Request::Pwd,
        ))))
    }

    /// Any other request (or an echo) read while gets or puts are in
    /// flight (`docs/PROTOCOL.md#pipelining`): within the window it is
    /// answered at once, in its turn, as when nothing is in flight. A put
    /// accepted but not begun steps back into the queue meanwhile, unless
    /// it resumed (its held prefix is already hashed: nothing may follow
    /// it).
    fn pipelined_other(&mut self) -> Result<(), Error> {
        let window = usize::from(self.link.negotiated.map_or(1, |n| n.window));
        if W == 1 || self.role.in_flight() >= window || self.role.answering.is_some() {
            return Err(Error::UnexpectedFrame);
        }
        match &self.role.state {
            State::Idle => Ok(()),
            State::Receiving(t) if t.untouched() && t.offset == 0 => {
                let put = Ahead::Put { size: t.size };
                // Room: it was counted in flight as the current body.
                self.role
                    .ahead
                    .push_front(put)
                    .map_err(|_| Error::Internal)?;
                self.role.state = State::Idle;
                Ok(())
            }
            _ => Err(Error::UnexpectedFrame),
        }
    }

    /// The client accepted the oldest offer it had not answered.
    fn on_accept(&mut self, offset: u64) -> Result<Step, Error> {
        let at = self.role.first_unanswered()?;
        self.role.cancel_may_cross = false;
        if let Some(Ahead::Get { size, answer, .. }) = self.role.ahead.iter_mut().nth(at) {
            // An offset past the size is a client bug (its own core checks
            // it). The get still keeps its place: its error goes out in
            // body order ([`Self::next_in_flight`]), so the client can
            // place it at any window and the session goes on.
            *answer = if offset <= *size {
                Answer::Accept(offset)
            } else {
                Answer::BadOffset
            };
        }
        Ok(Step::Nothing)
    }

    /// The client refused the oldest offer it had not answered: that get
    /// ends now, out of order, wherever it is among those in flight
    /// ([`Event::Declined`] says which).
    fn on_refusal(&mut self, error: Error) -> Result<Step, Error> {
        let at = self.role.first_unanswered()?;
        let role = &mut self.role;
        // Remove it from the middle: rotate the rest past it (window 1:
        // it is the only one, and the rotation compiles away).
        if W == 1 {
            role.ahead.pop_front();
        } else {
            for i in 0..role.ahead.len() {
                let Some(a) = role.ahead.pop_front() else {
                    break;
                };
                if i != at {
                    let _ = role.ahead.push_back(a);
                }
            }
        }
        let before = role.sent.len() + usize::from(matches!(role.state, State::Sending(_)));
        role.cancel_may_cross = false;
        Ok(Step::Event(Event::Declined {
            index: before + at,
            error,
        }))
    }

    fn on_error(&mut self, err: Error) -> Result<Step, Error> {
        if err.is_fatal() {
            self.link.fail_quietly(err);
            return Err(Error::Closed);
        }
        // The acknowledgement of a get we cancelled.
        if self.role.owed_acks > 0 {
            self.role.owed_acks -= 1;
            return Ok(Step::Nothing);
        }
        // A get the client cancelled: the oldest it accepted and has not
        // answered with `Done` (`docs/PROTOCOL.md#pipelining`).
        if self.role.sent.pop_front().is_some() {
            self.role.cancel_may_cross = false;
            return Ok(Step::Event(Event::Cancelled(err)));
        }
        if !matches!(self.role.state, State::Sending(_)) {
            match self.role.ahead.front() {
                // Accepted, its body not started: nothing went out for it.
                Some(Ahead::Get {
                    answer: Answer::Accept(_),
                    ..
                }) => {
                    // The client drops frames until a trailer, as for a
                    // body in progress: send it one.
                    self.role.ahead.pop_front();
                    self.link.send_resync_trailer()?;
                    return Ok(Step::Event(Event::Cancelled(err)));
                }
                // A version-2 client's refusal of the offer; a version-3
                // one refuses with `Refuse` only, so an `Error` with no
                // accepted get to end breaks the protocol.
                Some(Ahead::Get { .. }) if self.version() < 3 => return self.on_refusal(err),
                _ => {}
            }
        }
        let state = core::mem::replace(&mut self.role.state, State::Idle);
        match state {
            // The client cancelled a get: end the body so it can resync.
            State::Sending(_) => {
                self.link.send_resync_trailer()?;
                Ok(Step::Event(Event::Cancelled(err)))
            }
            // The client cancelled its put: acknowledge, so it can go on.
            State::Receiving(_) => {
                self.link.send_msg(&Brief::Error {
                    code: Error::Cancelled.code(),
                })?;
                Ok(Step::Event(Event::Cancelled(err)))
            }
            // Our cancel of a put crossed the client's: our error is its
            // acknowledgement, and nothing more comes.
            State::Discarding => Ok(Step::Nothing),
            // The client ended the body of a pre-agreed put this side
            // refused: the refusal is the one answer, as after a trailer.
            State::Refusing { code, .. } => {
                self.link.send_msg(&Brief::Error { code })?;
                Ok(Step::Nothing)
            }
            // Our cancel of a get crossed the client's.
            State::Idle if core::mem::take(&mut self.role.cancel_may_cross) => Ok(Step::Nothing),
            other => {
                self.role.state = other;
                Err(Error::UnexpectedFrame)
            }
        }
    }
}

/// What the server's configuration refuses outright, before any store
/// sees the request: every write on a read-only server, every command
/// where exec is off. The hello's flags advertise both; here they are
/// enforced, so no driver (std, device, test store) can forget them.
fn refused_by_config(config: &ServerConfig, req: &Request) -> Option<Error> {
    let writes = matches!(
        req,
        Request::Put { .. }
            | Request::Mkdir { .. }
            | Request::Remove { .. }
            | Request::Rename { .. }
            | Request::RenameReplace { .. }
    );
    if writes && config.read_only {
        Some(Error::ReadOnly)
    } else if matches!(req, Request::Exec { .. }) && !config.allow_exec {
        Some(Error::ExecDisabled)
    } else {
        None
    }
}

/// Upper-cases text (Unicode-aware, as the original echo server's
/// `str.upper()`), failing if it outgrows the message bound.
#[cfg(not(ferry_ascii_echo))]
fn uppercase(text: &mut Text) -> Result<(), Error> {
    let mut out = Text::new();
    for c in text.chars().flat_map(char::to_uppercase) {
        out.push(c).map_err(|_| Error::TooLarge)?;
    }
    *text = out;
    Ok(())
}

/// Upper-cases ASCII text; other text is `Unsupported`. Built with
/// `--cfg ferry_ascii_echo` (the serial firmware): Unicode's case tables
/// are 13.6 KB of a 64 KiB flash budget (docs/PROTOCOL.md#echo).
/// In place: a device keeps no second text on its stack.
#[cfg(ferry_ascii_echo)]
fn uppercase(text: &mut Text) -> Result<(), Error> {
    if !text.is_ascii() {
        return Err(Error::Unsupported);
    }
    text.make_ascii_uppercase();
    Ok(())
}
