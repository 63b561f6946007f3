//! The client state machine: handshake, login, one request at a time, and
//! the receiving half of `get` / sending half of `put`.

use crate::auth::{nonce_from_random, ScramClient};
use crate::brief::Brief;
use crate::config::Config;
use crate::digest::Sum;
use crate::endpoint::{Buffer, Endpoint, Incoming, Link, Negotiated, Role, Side};
use crate::error::Error;
use crate::frame::{decode_message, FrameKind};
use crate::message::{bounded, Entry, Message, Overwrite, Path, Request, Stream, Text};
use crate::setup::SetupError;
use crate::time::Instant;
use crate::transfer::Transfer;
use heapless::Deque;

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
    /// For a [`Client::get_agreed`] whose agreement the size meets, the
    /// answer was given in the request: `accept` takes the agreed offset
    /// only and sends nothing, and `refuse` takes the body and cancels it
    /// when it starts.
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
    /// put, with a window above 1: the body of the oldest accepted put
    /// starts now (feed the prefix if `offset > 0`, then send it).
    /// [`Event::Accepted`] only reported the answer.
    SendBody {
        /// Resume offset.
        offset: u64,
    },
    /// With several requests in flight: a get or put that is not the
    /// oldest in flight (the oldest still without an answer) was refused.
    /// The oldest in flight failing is [`Event::Failed`]. A pre-agreed
    /// put's refusal ([`Client::put_agreed`]) is always this event, the
    /// answer to its request.
    Refused(Error),
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
    Exec { output: bool },
}

/// A get accepted whose body has not started (window above 1).
#[derive(Debug, Clone, Copy)]
struct AcceptedGet {
    size: u64,
    seq: u32,
    /// This side cancelled it already: its body (or the trailer ending
    /// it) is dropped when it comes.
    cancelled: bool,
    /// A pre-agreed get the driver refused: cancelled with this code when
    /// its body starts, the one moment an `Error` surely names it.
    refused: Option<u16>,
}

/// A get or put sent, its answer not yet here.
#[derive(Debug, Clone, Copy)]
enum Head {
    /// `agreed`: sent as `GetAgreed` with this offset and largest size.
    Get { agreed: Option<(u64, u64)> },
    /// `agreed`: sent as `PutAgreed`, its body right behind it.
    Put { size: u64, agreed: bool },
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
        /// Accepted in the request (`GetAgreed`): the offset, and the
        /// request's sequence number, which is where its body stands in
        /// the server's answers.
        agreed: Option<(u64, u32)>,
    },
    Receiving(Transfer),
    Sending(Transfer),
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
/// See the crate docs for the driving contract. `W` is how many gets or
/// puts it may have in flight at once (`docs/PROTOCOL.md#pipelining`);
/// with 1 every request waits for the one before, as in version 2.
pub type Client<B, const W: usize = 1> = Endpoint<B, ClientRole<W>>;

/// The client's own state inside an [`Endpoint`].
///
/// What is in flight, in the order the server answers it: every server
/// message answers the earliest of these by sequence number — a request
/// (its head: offer, accept, refusal) or a body (a put's tail, a get's
/// body) — because the server handles this side's stream in order and a
/// request never goes out inside a body.
pub struct ClientRole<const W: usize> {
    state: State,
    /// The server's hello arrived (the login may have gone out before it).
    hello: bool,
    /// Gets and puts sent, their answer not here yet; with sequence numbers.
    heads: Deque<(Head, u32), W>,
    /// Of those, pre-agreed puts: they hold no place in the window.
    agreed_heads: usize,
    /// Puts accepted whose body has not started (window above 1).
    ready: Deque<(u64, u64), W>,
    /// Put bodies sent, waiting for `Done`: this side's digests.
    tails: Deque<(Sum, u32), W>,
    /// Gets accepted whose body has not started.
    accepted: Deque<AcceptedGet, W>,
    /// Sequence number of the body in progress (or of the offer being
    /// answered).
    body_seq: u32,
    next_seq: u32,
    /// A version-3 server's `Retry`: seconds to wait.
    retry_after: Option<u32>,
    /// The request in flight first is a resumed put: nothing may follow
    /// it until it ends (`docs/PROTOCOL.md#pipelining`).
    alone: bool,
    /// A request other than get or put sent behind the login, before its
    /// answer: it is awaited once the login succeeds.
    behind: Option<Pending>,
    /// Requests other than get and put sent behind the one awaited
    /// (version 3, window above 1, no get or put in flight), oldest
    /// first: the server answers them in order, each once the one
    /// before has ended (`docs/PROTOCOL.md#pipelining`).
    queued: Deque<Pending, W>,
    /// The login was refused with this error while requests were behind
    /// it: their `NotLoggedIn` is reported as it
    /// ([`Client::login_sent`]).
    refused_login: Option<Error>,
}

impl<const W: usize> ClientRole<W> {
    fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn body_in_progress(&self) -> bool {
        matches!(
            self.state,
            State::Sending(_)
                | State::Receiving(_)
                | State::Discarding
                | State::CancelWait
                | State::Offered { .. }
        )
    }

    /// Gets and puts in flight.
    fn in_flight(&self) -> usize {
        self.heads.len()
            + self.ready.len()
            + self.tails.len()
            + self.accepted.len()
            + usize::from(self.body_in_progress())
    }

    /// What counts against the window: a put stops counting once its
    /// trailer is out (the server commits it before reading on), so the
    /// next window's requests overlap the last one's `Done`s, and a
    /// pre-agreed put, whose trailer follows its request at once, never
    /// counts. Up to `W` such tails wait here; a version-2 session, or a
    /// window of 1 (this side's or the negotiated one), counts them as
    /// before: one request at a time, the next after `Done`.
    fn window_used(&self, v3: bool, window: usize) -> usize {
        if v3 && W > 1 && window > 1 {
            self.in_flight() - self.tails.len() - self.agreed_heads
        } else {
            self.in_flight()
        }
    }

    /// Whether the server's next answer is for the oldest head (rather
    /// than a body or tail).
    fn head_first(&self) -> bool {
        let Some(&(_, head)) = self.heads.front() else {
            return false;
        };
        let earliest = [
            self.body_in_progress().then_some(self.body_seq),
            self.tails.front().map(|t| t.1),
            self.accepted.front().map(|a| a.seq),
        ]
        .into_iter()
        .flatten()
        .reduce(seq_min);
        earliest.is_none_or(|e| seq_before(head, e))
    }

    /// Whether the head at the front belongs to the oldest request in
    /// flight (its failure is then `Failed`, not `Refused`).
    /// The state once the login succeeded: awaiting the request sent
    /// behind it, if any.
    fn after_login(&mut self) -> State {
        self.refused_login = None;
        self.behind.take().map_or(State::Idle, State::Await)
    }

    fn head_is_oldest(&self) -> bool {
        self.ready.is_empty()
            && self.tails.is_empty()
            && self.accepted.is_empty()
            && !self.body_in_progress()
    }
}

/// Sequence order that survives wrapping (at most 2^31 apart).
fn seq_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

fn seq_min(a: u32, b: u32) -> u32 {
    if seq_before(a, b) {
        a
    } else {
        b
    }
}

impl<const W: usize> Role for ClientRole<W> {
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
        self.state = State::Idle;
        // Room: the put was counted in flight while its body went out.
        let _ = self.tails.push_back((sum, self.body_seq));
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
        Self::with_window(now, config, inbuf, outbuf)
    }
}

impl<B: Buffer, const W: usize> Client<B, W> {
    /// As [`Client::new`], with up to `W` gets or puts in flight
    /// (`docs/PROTOCOL.md#pipelining`): `Client::<_, 64>::with_window(…)`.
    /// A `W` of 0 or above [`MAX_WINDOW`](crate::frame::MAX_WINDOW) is
    /// [`SetupError::Window`].
    pub fn with_window(
        now: Instant,
        config: Config,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, SetupError> {
        let link = Link::new(now, config, Side::Client, 0, W, inbuf, outbuf)?;
        // Built where it is returned: at a large `W` each copy of the role
        // on the way is a copy of all its queues on the stack (a debug
        // build of a 2 048-slot client needed 2.6 MB through `connect`).
        Ok(Endpoint {
            link,
            role: ClientRole {
                state: State::Handshake,
                hello: false,
                heads: Deque::new(),
                agreed_heads: 0,
                ready: Deque::new(),
                tails: Deque::new(),
                accepted: Deque::new(),
                body_seq: 0,
                next_seq: 0,
                retry_after: None,
                alone: false,
                behind: None,
                refused_login: None,
                queued: Deque::new(),
            },
        })
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

    /// Whether the login went out whole and only its answer is awaited
    /// (anonymous, or SCRAM's final message sent): any request may follow
    /// it at once (`docs/PROTOCOL.md#login`), one until the server's
    /// hello says the window, and gets and puts up to the window after.
    ///
    /// **A refused login and the requests behind it.** The server answers
    /// the login first, then each request behind it with
    /// `Error(NotLoggedIn)`. So [`Event::LoginFailed`] always comes first,
    /// and each request behind it then fails ([`Event::Failed`] or
    /// [`Event::Refused`]) with the login's own error, not
    /// `NotLoggedIn`: whichever event a driver reports, the user reads
    /// why the login failed. A new login may be sent once they have.
    pub fn login_sent(&self) -> bool {
        matches!(self.role.state, State::Anonymous | State::Scram(_, true))
            && self.link.closed.is_none()
    }

    /// Whether nothing is in flight: any request may be sent now.
    pub fn is_idle(&self) -> bool {
        matches!(self.role.state, State::Idle)
            && self.role.in_flight() == 0
            && self.link.closed.is_none()
    }

    /// Whether one more get (`get`) or put (`put`) may be sent now,
    /// behind those in flight: within the window (1 until the server's
    /// hello arrived), in one direction, never inside a body this side
    /// sends, and never behind a resumed put.
    pub fn can_pipeline(&self, get: bool) -> bool {
        let r = &self.role;
        let sent = self.login_sent();
        if self.link.closed.is_some() || !(self.is_logged_in() || sent) || r.behind.is_some() {
            return false;
        }
        if r.in_flight() == 0 || W == 1 {
            return r.in_flight() == 0 && (matches!(r.state, State::Idle) || sent);
        }
        let puts = !r.ready.is_empty()
            || !r.tails.is_empty()
            || matches!(r.state, State::Sending(_) | State::CancelWait)
            || r.heads.iter().any(|h| matches!(h.0, Head::Put { .. }));
        let gets = !r.accepted.is_empty()
            || matches!(
                r.state,
                State::Receiving(_) | State::Discarding | State::Offered { .. }
            )
            || r.heads.iter().any(|h| matches!(h.0, Head::Get { .. }));
        // Room for its answer too (pre-agreed puts hold heads and tails
        // beyond the window), and for a put's digest once its body is out.
        !r.alone
            && !r.heads.is_full()
            && (get || !r.tails.is_full())
            && r.window_used(self.version() >= 3, self.window()) < self.window().min(W)
            && if get {
                !puts
            } else {
                !gets && !matches!(r.state, State::Sending(_) | State::CancelWait)
            }
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
            // An offer waits for its answer before anything else is read.
            if matches!(self.role.state, State::Offered { .. }) {
                return None;
            }
            match self.next_body() {
                Ok(Some(e)) => return Some(e),
                Ok(None) => {}
                Err(e) => {
                    self.link.fail(e);
                    continue;
                }
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
        !matches!(self.role.state, State::Idle | State::LoggedOut) || self.role.in_flight() > 0
    }

    /// After a [`Error::Busy`] or [`Error::Penalised`] refusal from a
    /// version-3 server: the seconds it asked to wait before trying again.
    pub fn retry_after(&self) -> Option<u32> {
        self.role.retry_after
    }

    // ---- commands: each queues a request and returns at once ----

    /// Logs in with SCRAM-SHA-256. `random` is 8–32 fresh random bytes for
    /// the client nonce. May be called before the server's hello arrived:
    /// the client-first message then follows this side's hello at once,
    /// saving a round trip (the server reads it after its own hello).
    pub fn login(&mut self, user: &str, password: &str, random: &[u8]) -> Result<(), Error> {
        self.expect_state(self.may_log_in())?;
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
        self.expect_state(self.may_log_in())?;
        self.link.send_msg(&Message::Anonymous)?;
        self.role.state = State::Anonymous;
        Ok(())
    }

    /// Echoes `text` (upper-cased by the server if `upper`).
    pub fn echo(&mut self, text: &str, upper: bool) -> Result<(), Error> {
        let text = bounded(text, Error::TooLarge)?;
        self.request(Message::Echo { text, upper }, Pending::Echo)
    }

    /// Downloads `path`: an [`Event::Offer`] follows. May be sent while
    /// other gets are in flight when [`Self::can_pipeline`] says so.
    pub fn get(&mut self, path: &str) -> Result<(), Error> {
        let path = to_path(path)?;
        let head = Head::Get { agreed: None };
        self.transfer_request(Message::Request(Request::Get { path }), head, false)
    }

    /// Downloads `path`, agreeing in advance to any size from `offset` up
    /// to `max` (`docs/PROTOCOL.md#pre-agreed-gets`): an offer within it
    /// is followed by its body with no turn for the `Accept`. Only when
    /// [`Negotiated::agreed_gets`](crate::Negotiated::agreed_gets) says
    /// the server takes it (else [`Error::Unsupported`], sending nothing:
    /// use [`Self::get`]); an `offset` above 0 goes alone, as a resumed
    /// put does, so its prefix can be hashed before its body.
    pub fn get_agreed(&mut self, path: &str, offset: u64, max: u64) -> Result<(), Error> {
        let path = to_path(path)?;
        if !self.link.negotiated.is_some_and(|n| n.agreed()) {
            return Err(Error::Unsupported);
        }
        if offset > 0 && self.role.in_flight() > 0 {
            return Err(Error::BadUsage);
        }
        let head = Head::Get {
            agreed: Some((offset, max)),
        };
        let msg = Message::GetAgreed { path, offset, max };
        self.transfer_request(msg, head, offset > 0)
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
        // A resumed put goes alone: its held prefix is hashed before its
        // body, which a put behind others cannot do on the server.
        if resume && self.role.in_flight() > 0 {
            return Err(Error::BadUsage);
        }
        let req = Request::Put {
            path,
            size,
            overwrite,
            resume,
        };
        let head = Head::Put {
            size,
            agreed: false,
        };
        self.transfer_request(Message::Request(req), head, resume)
    }

    /// Uploads `size` bytes to `path` with the body right behind the
    /// request (`docs/PROTOCOL.md#pre-agreed-puts`): the body is to be sent
    /// now ([`Self::send_with`], [`Self::send_body`]), without waiting for
    /// [`Event::Accepted`]. The server then answers `Accepted` and
    /// [`Event::TransferEnd`], or refuses it after reading the body: one
    /// [`Event::Refused`], always that event (its body went out, so it
    /// never stands as the oldest thing in flight). Only when
    /// [`Self::can_put_agreed`] says so, else [`Error::Unsupported`] where
    /// the server does not take them and [`Error::BadUsage`] when they
    /// may not go now; nothing is sent then. Never resumed.
    pub fn put_agreed(&mut self, path: &str, size: u64, overwrite: Overwrite) -> Result<(), Error> {
        let path = to_path(path)?;
        if !self.agreed_puts() {
            return Err(Error::Unsupported);
        }
        if !self.can_put_agreed() {
            return Err(Error::BadUsage);
        }
        let t = Transfer::new(size, 0, self.link.digest())?;
        let msg = Message::PutAgreed {
            path,
            size,
            overwrite,
        };
        self.link.send_msg(&msg)?;
        let r = &mut self.role;
        let seq = r.seq();
        let head = Head::Put { size, agreed: true };
        r.heads
            .push_back((head, seq))
            .map_err(|_| Error::Internal)?;
        r.agreed_heads += 1;
        // Its body stands right behind its request: a refusal, which
        // answers both, finds it by this number.
        r.body_seq = r.seq();
        r.state = State::Sending(t);
        // An empty file: the trailer goes now.
        self.after_send()
    }

    /// Pre-agreed puts sent whose request has not been answered yet
    /// (`Accept` or the refusal): a driver that lets its items choose
    /// between [`Self::put`] and [`Self::put_agreed`] tells by this
    /// count which one went, and so whether its body goes now.
    pub fn agreed_puts_unanswered(&self) -> usize {
        self.role.agreed_heads
    }

    /// Whether this session may send pre-agreed puts at all: version 3,
    /// a window above 1 on both sides, a server that listed them.
    fn agreed_puts(&self) -> bool {
        W > 1
            && self
                .link
                .negotiated
                .is_some_and(|n| n.agreed() && n.window > 1)
    }

    /// Whether a [`Self::put_agreed`] may go now: logged in, nothing
    /// being sent, no get and no other request in flight, and no put
    /// waiting for its `Accept` or to start its body (the server reads a
    /// pre-agreed put's body as soon as it reads the request; the puts
    /// before it must have sent theirs). Room for its answer and its
    /// digest too: up to `W` wait, whatever the negotiated window.
    pub fn can_put_agreed(&self) -> bool {
        let r = &self.role;
        self.agreed_puts()
            && self.link.closed.is_none()
            && matches!(r.state, State::Idle)
            && self.is_logged_in()
            && r.behind.is_none()
            && r.queued.is_empty()
            && r.ready.is_empty()
            && r.accepted.is_empty()
            && r.heads.len() == r.agreed_heads
            && !r.alone
            && !r.heads.is_full()
            && !r.tails.is_full()
    }

    /// Sends a get or put (`resume`: a resumed put, which goes alone).
    fn transfer_request(&mut self, msg: Message, head: Head, resume: bool) -> Result<(), Error> {
        if let Some(_e) = self.link.closed {
            return Err(Error::Closed);
        }
        if !self.can_pipeline(matches!(head, Head::Get { .. })) {
            return Err(Error::BadUsage);
        }
        self.link.send_msg(&msg)?;
        if self.role.in_flight() == 0 {
            self.role.alone = resume;
        }
        let seq = self.role.seq();
        self.role
            .heads
            .push_back((head, seq))
            .map_err(|_| Error::Internal)
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
        let r = &self.role;
        let behind = self.login_sent() && r.behind.is_none();
        let queue = self.can_queue();
        self.expect_state(
            (matches!(r.state, State::Idle) || behind || queue) && self.role.in_flight() == 0,
        )?;
        self.link.send_msg(&msg)?;
        if behind {
            self.role.behind = Some(pending);
        } else if queue {
            let _ = self.role.queued.push_back(pending);
        } else {
            self.role.state = State::Await(pending);
        }
        Ok(())
    }

    /// Whether a request other than get or put may go now behind the
    /// one awaited (`docs/PROTOCOL.md#pipelining`): version 3, within
    /// the window, no get or put in flight. [`Self::is_idle`] says
    /// whether one may go at all.
    pub fn can_queue(&self) -> bool {
        let r = &self.role;
        matches!(r.state, State::Await(_))
            && r.in_flight() == 0
            && self.version() >= 3
            && r.queued.len() + 1 < self.window().min(W)
            && self.link.closed.is_none()
    }

    /// Logged out (or not yet), with no answer to a refused login's
    /// requests still to come: their `NotLoggedIn` must not be read as
    /// the new login's failure.
    fn may_log_in(&self) -> bool {
        let r = &self.role;
        matches!(r.state, State::LoggedOut | State::Handshake)
            && r.in_flight() == 0
            && r.behind.is_none()
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
        let State::Offered { size, agreed } = self.role.state else {
            return Err(Error::BadUsage);
        };
        if offset > size {
            return Err(Error::BadOffset);
        }
        if agreed.is_some_and(|(o, _)| o != offset) {
            return Err(Error::BadUsage);
        }
        // Only a get alone in flight starts at once (and may resume: its
        // prefix is hashed before any body byte); behind others it starts
        // when its first body frame arrives, which no prefix can precede.
        let alone = W == 1 || self.role.in_flight() == 1;
        if offset > 0 && !alone {
            return Err(Error::BadUsage);
        }
        let t = Transfer::new(size, offset, self.link.digest())?;
        let seq = match agreed {
            Some((_, seq)) => seq,
            None => {
                self.link.send_msg(&Brief::Accept { offset, name: None })?;
                self.role.seq()
            }
        };
        if alone {
            self.role.body_seq = seq;
            self.role.state = State::Receiving(t);
        } else {
            self.role.state = State::Idle;
            let get = AcceptedGet {
                size,
                seq,
                cancelled: false,
                refused: None,
            };
            let _ = self.role.accepted.push_back(get);
        }
        Ok(())
    }

    /// Refuses an [`Event::Offer`] (e.g. the local file exists): the server
    /// sends no body and the session goes on.
    pub fn refuse(&mut self, err: Error) -> Result<(), Error> {
        self.expect_state(matches!(self.role.state, State::Offered { .. }))?;
        // Agreed already: the body comes; it is cancelled when it starts
        // (`docs/PROTOCOL.md#pre-agreed-gets`).
        if let State::Offered {
            agreed: Some((offset, _)),
            ..
        } = self.role.state
        {
            self.accept(offset)?;
            if let Some(a) = self.role.accepted.back_mut() {
                a.refused = Some(err.request_code());
                return Ok(());
            }
            return self.cancel(err);
        }
        let code = err.request_code();
        // Version 3 has a message of its own: with several gets in flight
        // an `Error` would cancel the body in progress.
        if self.version() >= 3 {
            self.link.send_msg(&Brief::Refuse { code })?;
        } else {
            self.link.send_msg(&Brief::Error { code })?;
        }
        self.role.state = State::Idle;
        Ok(())
    }

    /// Cancels a transfer in progress (a local write failed, the user
    /// pressed ^C): the peer is told `err`, the session goes on, and no file
    /// is marked verified.
    pub fn cancel(&mut self, err: Error) -> Result<(), Error> {
        match self.role.state {
            State::Receiving(_) => {
                self.link.send_msg(&Brief::Error {
                    code: err.request_code(),
                })?;
                self.role.state = State::Discarding;
            }
            State::Sending(_) => {
                // The error follows every body frame sent, so it also marks
                // the body's end; the server acknowledges with an error.
                self.link.send_msg(&Brief::Error {
                    code: err.request_code(),
                })?;
                self.role.state = State::CancelWait;
            }
            // The oldest accepted get not cancelled yet, its body not here:
            // the server ends it with a trailer whether or not it had
            // started. It stays queued, so that answers to the requests
            // sent before it (offers, refusals) are still read as such;
            // its body is dropped when it comes.
            State::Idle if self.role.accepted.iter().any(|a| !a.cancelled) => {
                self.link.send_msg(&Brief::Error {
                    code: err.request_code(),
                })?;
                if let Some(a) = self.role.accepted.iter_mut().find(|a| !a.cancelled) {
                    a.cancelled = true;
                }
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
            FrameKind::Data => {
                self.start_get_body()?;
                Ok(self.on_body(range)?.map_or(Step::Nothing, Step::Data))
            }
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

    /// The first frame of the oldest accepted get's body arrived (window
    /// above 1): it becomes the body in progress.
    fn start_get_body(&mut self) -> Result<(), Error> {
        // Window 1: a get starts at its accept, never here.
        if W > 1 && matches!(self.role.state, State::Idle) && !self.role.head_first() {
            if let Some(a) = self.role.accepted.pop_front() {
                self.role.body_seq = a.seq;
                if let Some(code) = a.refused {
                    self.link.send_msg(&Message::Error { code })?;
                }
                self.role.state = if a.cancelled || a.refused.is_some() {
                    State::Discarding
                } else {
                    State::Receiving(Transfer::new(a.size, 0, self.link.digest())?)
                };
            }
        }
        Ok(())
    }

    /// Starts the next accepted put's body (window above 1).
    fn next_body(&mut self) -> Result<Option<Event<'static>>, Error> {
        // A full `tails` waits for a `Done` first (its digest goes there).
        if W == 1 || !matches!(self.role.state, State::Idle) || self.role.tails.is_full() {
            return Ok(None);
        }
        let Some((size, offset)) = self.role.ready.pop_front() else {
            return Ok(None);
        };
        self.role.body_seq = self.role.seq();
        self.role.state = State::Sending(Transfer::new(size, offset, self.link.digest())?);
        if offset == 0 {
            self.after_send()?;
        }
        Ok(Some(Event::SendBody { offset }))
    }

    fn on_message(&mut self, msg: Message) -> Result<Step, Error> {
        if let Message::Error { code } = msg {
            return self.on_error(Error::from_wire(code));
        }
        if let Message::Retry { code, seconds } = msg {
            let err = Error::from_wire(code);
            if !err.is_fatal() {
                return Err(Error::Malformed);
            }
            self.role.retry_after = Some(seconds);
            self.link.fail_quietly(err);
            return Err(Error::Closed);
        }
        match msg {
            Message::Offer { size } => {
                let head = self.role.head_first().then(|| self.role.heads.front());
                let Some(Some(&(Head::Get { agreed }, seq))) = head else {
                    return Err(Error::UnexpectedFrame);
                };
                if !matches!(self.role.state, State::Idle) {
                    return Err(Error::UnexpectedFrame);
                }
                self.role.heads.pop_front();
                let agreed = agreed
                    .filter(|&(offset, max)| offset <= size && size <= max)
                    .map(|(offset, _)| (offset, seq));
                self.role.state = State::Offered { size, agreed };
                return Ok(Step::Event(Event::Offer { size }));
            }
            Message::Accept { offset, name } => {
                let Some(&(Head::Put { size, agreed }, _)) = self.role.heads.front() else {
                    return Err(Error::UnexpectedFrame);
                };
                if !self.role.head_first() {
                    return Err(Error::UnexpectedFrame);
                }
                self.role.heads.pop_front();
                // Its body went out with the request: only the answer.
                if agreed {
                    self.role.agreed_heads -= 1;
                    if offset != 0 {
                        return Err(Error::BadOffset);
                    }
                    return Ok(Step::Event(Event::Accepted { offset, name }));
                }
                if offset > size {
                    // A server bug: it accepted past the end.
                    return Err(Error::BadOffset);
                }
                if W > 1 {
                    let _ = self.role.ready.push_back((size, offset));
                    return Ok(Step::Event(Event::Accepted { offset, name }));
                }
                self.role.body_seq = self.role.seq();
                self.role.state = State::Sending(Transfer::new(size, offset, self.link.digest())?);
                // An empty file (or a complete resume) needs no body.
                if offset == 0 {
                    self.after_send()?;
                }
                return Ok(Step::Event(Event::Accepted { offset, name }));
            }
            Message::Done { verified } if !self.role.tails.is_empty() => {
                if self.role.head_first() {
                    return Err(Error::UnexpectedFrame);
                }
                let Some((sum, _)) = self.role.tails.pop_front() else {
                    return Err(Error::UnexpectedFrame);
                };
                return Ok(Step::Event(Event::TransferEnd { verified, sum }));
            }
            Message::Trailer { .. } => self.start_get_body()?,
            _ => {}
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
                (self.role.after_login(), Some(Event::LoggedIn))
            }
            (State::Anonymous, Message::LoginOk) => {
                self.link.logged_in();
                (self.role.after_login(), Some(Event::LoggedIn))
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
            (State::Receiving(t), Message::Trailer { sum }) => {
                let verified = t.check_trailer(&sum)?;
                let sum = t.digest();
                self.link.send_msg(&Brief::Done { verified })?;
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
        // An answer ended: the next request queued behind it is awaited.
        self.role.state = match state {
            State::Idle => self
                .role
                .queued
                .pop_front()
                .map_or(State::Idle, State::Await),
            other => other,
        };
        Ok(event.map_or(Step::Nothing, Step::Event))
    }

    fn on_error(&mut self, err: Error) -> Result<Step, Error> {
        if err.is_fatal() {
            self.link.fail_quietly(err);
            return Err(Error::Closed);
        }
        let r = &mut self.role;
        if matches!(r.state, State::Scram(..) | State::Anonymous) {
            r.state = State::LoggedOut;
            r.refused_login = Some(err);
            return Ok(Step::Event(Event::LoginFailed(err)));
        }
        // A request behind a refused login (`Client::login_sent`).
        let err = match r.refused_login {
            Some(login) if err == Error::NotLoggedIn => login,
            _ => err,
        };
        if matches!(r.state, State::LoggedOut) && r.behind.take().is_some() {
            return Ok(Step::Event(Event::Failed(err)));
        }
        if matches!(r.state, State::Await(_)) {
            r.state = r.queued.pop_front().map_or(State::Idle, State::Await);
            return Ok(Step::Event(Event::Failed(err)));
        }
        // A refusal of the oldest get or put still without an answer.
        if r.head_first() {
            let oldest = r.head_is_oldest();
            if let Some(&(Head::Put { agreed: true, .. }, seq)) = r.heads.front() {
                return self.on_agreed_refusal(seq, err);
            }
            r.heads.pop_front();
            return Ok(Step::Event(if oldest {
                Event::Failed(err)
            } else {
                Event::Refused(err)
            }));
        }
        // Else the end of the oldest body: a put's tail, or the body in
        // progress, or a get accepted whose body had not come yet.
        let tail = r.tails.front().map(|t| t.1);
        let body = r.body_in_progress().then_some(r.body_seq);
        let tail_first = match (tail, body) {
            (Some(t), Some(b)) => seq_before(t, b),
            (t, _) => t.is_some(),
        };
        if tail_first {
            r.tails.pop_front();
            return Ok(Step::Event(Event::Failed(err)));
        }
        let v3 = self.version() >= 3;
        let state = core::mem::replace(&mut self.role.state, State::Idle);
        match state {
            State::Sending(_) => {
                // The server gave up mid-body; end the body so it can resync.
                self.link.send_resync_trailer()?;
                Ok(Step::Event(Event::Failed(err)))
            }
            // Our cancel was acknowledged, or crossed the server's own
            // cancel (which then serves as the acknowledgement; ours
            // serves as the server's).
            State::CancelWait | State::Discarding => Ok(Step::Nothing),
            State::Receiving(_) => {
                self.ack_cancel(v3)?;
                Ok(Step::Event(Event::Failed(err)))
            }
            State::Idle if !self.role.accepted.is_empty() => {
                // The server cancelled a get this side had cancelled too:
                // each cancel acknowledges the other.
                if self.role.accepted.pop_front().is_some_and(|a| a.cancelled) {
                    return Ok(Step::Nothing);
                }
                self.ack_cancel(v3)?;
                Ok(Step::Event(Event::Failed(err)))
            }
            other => {
                self.role.state = other;
                Err(Error::UnexpectedFrame)
            }
        }
    }

    /// The refusal of the pre-agreed put whose request has sequence
    /// number `seq`: its one answer, sent after its body
    /// (`docs/PROTOCOL.md#pre-agreed-puts`), which stands right behind
    /// it. It ends that body's wait for `Done`, or acknowledges this
    /// side's cancel of it (reported already: the event then only keeps
    /// a driver's count of answers).
    fn on_agreed_refusal(&mut self, seq: u32, err: Error) -> Result<Step, Error> {
        let r = &mut self.role;
        let body = seq.wrapping_add(1);
        if r.tails.front().is_some_and(|t| t.1 == body) {
            r.tails.pop_front();
        } else if matches!(r.state, State::CancelWait) && r.body_seq == body {
            r.state = State::Idle;
        } else {
            return Err(Error::UnexpectedFrame);
        }
        r.heads.pop_front();
        r.agreed_heads -= 1;
        Ok(Step::Event(Event::Refused(err)))
    }

    /// The server cancelled a get: a version-3 server waits for this
    /// side's acknowledgement, so it can tell a cancel of the next get
    /// from one that crossed its own.
    fn ack_cancel(&mut self, v3: bool) -> Result<(), Error> {
        if v3 {
            self.link.send_msg(&Brief::Error {
                code: Error::Cancelled.code(),
            })?;
        }
        Ok(())
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
