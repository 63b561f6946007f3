//! Ready-made drivers over `embedded-io` transports: a UART, a TCP socket,
//! an embassy-net socket. [`blocking`] works on `embedded_io::{Read, Write}`,
//! [`asynch`] on `embedded_io_async::{Read, Write}`; both are generated from
//! one definition so they cannot drift apart.
//!
//! The client side is a request/response API ([`blocking::BlockingClient`]):
//! each call runs the exchange to its end. The server side (`serve`) runs
//! one connection to its close over an [`app::Store`](crate::app::Store),
//! pumping the core's one [`Session`].
//!
//! A blocking transport cannot wake for timers: deadlines are checked after
//! every read, so give the transport a read timeout if idle peers must be
//! dropped promptly. A read that fails with `TimedOut` or `Interrupted` is
//! not an error: the driver checks the deadlines and reads again.

use crate::app::{Progress, Session, Store};
use crate::client::Event as ClientEvent;
use crate::digest::Sum;
use crate::error::Error;
use crate::message::{Entry, Overwrite, Stream, Text};
use crate::server::Server;
use crate::time::Instant;
use crate::Path;

/// A failure while driving: the transport's, or the protocol's.
#[derive(Debug, PartialEq, Eq)]
pub enum DriverError<E> {
    /// The transport failed.
    Io(E),
    /// The protocol failed or the peer refused: a typed error.
    Protocol(Error),
}

impl<E> DriverError<E> {
    /// The protocol error, if that is what this is.
    pub fn protocol(&self) -> Option<Error> {
        match self {
            DriverError::Protocol(e) => Some(*e),
            DriverError::Io(_) => None,
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for DriverError<E> {}

impl<E> From<Error> for DriverError<E> {
    fn from(e: Error) -> Self {
        DriverError::Protocol(e)
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "transport error: {e:?}"),
            DriverError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

/// A verified download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    /// Size of the whole file.
    pub size: u64,
    /// Its digest, with the negotiated algorithm; both sides agreed on it.
    pub sum: Sum,
}

/// A verified, stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The name the server stored it under, when that differs from the one
    /// asked for (keep-both).
    pub name: Option<Path>,
    /// Its digest, with the negotiated algorithm; both sides agreed on it.
    pub sum: Sum,
}

/// Many puts on one connection, pipelined (`docs/PROTOCOL.md#pipelining`):
/// the items of [`blocking::BlockingClient::put_many`], numbered from 0.
pub trait Puts {
    /// Sends the request for item `i` (`client.put(…)`, never resumed).
    /// An error ends item `i` with it (nothing was sent) and the batch goes
    /// on.
    fn request<B: crate::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut crate::Client<B, W>,
    ) -> Result<(), Error>;
    /// The server accepted item `i`, to be stored as `name` when that
    /// differs from the name asked for.
    fn accepted(&mut self, i: usize, name: Option<&str>) {
        let _ = (i, name);
    }
    /// Body bytes of item `i`, in order from its start; 0 at the end.
    fn read(&mut self, i: usize, buf: &mut [u8]) -> Result<usize, Error>;
    /// Item `i` ended: stored and verified, or why not.
    fn done(&mut self, i: usize, result: Result<Sum, Error>);
    /// Whether item `i` is not to go ahead (checked before its request
    /// and before its body): it is then not sent, or cancelled before any
    /// byte of its body, and ends with `Error::Cancelled`. A shell batch's
    /// stop-at-first-error: every item after a failed one.
    fn skip(&self, i: usize) -> bool {
        let _ = i;
        false
    }
}

/// Many gets on one connection, pipelined: the items of
/// [`blocking::BlockingClient::get_many`], numbered from 0.
pub trait Gets {
    /// Sends the request for item `i` (`client.get(…)`). An error ends
    /// item `i` with it and the batch goes on.
    fn request<B: crate::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut crate::Client<B, W>,
    ) -> Result<(), Error>;
    /// The server offers item `i` with `size` bytes; an error refuses it.
    fn offered(&mut self, i: usize, size: u64) -> Result<(), Error>;
    /// Body bytes of item `i`, in order.
    fn write(&mut self, i: usize, data: &[u8]) -> Result<(), Error>;
    /// Item `i` ended: received whole and verified (its size and digest),
    /// or why not.
    fn done(&mut self, i: usize, result: Result<Got, Error>);
    /// Whether item `i` is not to go ahead: not sent, or its offer
    /// refused (`Error::Cancelled`), as [`Puts::skip`].
    fn skip(&self, i: usize) -> bool {
        let _ = i;
        false
    }
}

/// Many listings on one connection, pipelined: the items of
/// [`blocking::BlockingClient::list_many`], numbered from 0.
pub trait Lists {
    /// The directory item `i` lists (or the path it describes).
    fn path(&self, i: usize) -> &str;
    /// Whether item `i` is a `stat` rather than a listing: one entry
    /// answers it. Stats and listings go in one batch (`ls -l` of many
    /// names: each name's stat and listing, one turn).
    fn stat(&self, i: usize) -> bool {
        let _ = i;
        false
    }
    /// One entry of item `i`'s listing.
    fn entry(&mut self, i: usize, entry: &Entry);
    /// Item `i` ended: listed whole, or why not.
    fn done(&mut self, i: usize, result: Result<(), Error>);
}

/// Item numbers in flight, oldest first (fixed capacity, no allocation).
struct Items<const W: usize>(heapless::Vec<usize, W>);

impl<const W: usize> Items<W> {
    fn push(&mut self, i: usize) -> Result<(), Error> {
        self.0.push(i).map_err(|_| Error::Internal)
    }
    fn pop_front(&mut self) -> Option<usize> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }
    /// Removes `i`; whether it was there.
    fn remove(&mut self, i: usize) -> bool {
        let at = self.0.iter().position(|&x| x == i);
        if let Some(at) = at {
            self.0.remove(at);
        }
        at.is_some()
    }
    fn front(&self) -> Option<usize> {
        self.0.first().copied()
    }
}

/// Sends the body of put item `body` (if any) as far as the output buffer
/// takes it; whether any of it went. A local read that fails cancels
/// it: the item ends there (the server acknowledges the cancel), and
/// `body` is cleared.
fn send_put_body<B: crate::Buffer, const W: usize>(
    client: &mut crate::Client<B, W>,
    puts: &mut impl Puts,
    body: &mut Option<usize>,
    bodies: &mut Items<W>,
) -> Result<bool, Error> {
    let Some(i) = *body else {
        return Ok(false);
    };
    let mut moved = false;
    while client.remaining() > 0 {
        let read = client.send_with(|buf| {
            if buf.is_empty() {
                return (0, Ok(0));
            }
            match puts.read(i, buf) {
                Ok(0) => (0, Err(Error::Io)),
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            }
        })?;
        match read {
            // The output buffer is full.
            Ok(0) => break,
            Ok(_) => moved = true,
            Err(e) => {
                let _ = client.cancel(e);
                bodies.remove(i);
                puts.done(i, Err(e));
                *body = None;
                return Ok(true);
            }
        }
    }
    Ok(moved)
}

/// What a client exchange waits for.
enum Flow<R> {
    Continue,
    Done(R),
    /// get: accept from this offset, hashing the held prefix first.
    Accept(u64),
    /// get: refuse the offer.
    Refuse(Error),
    /// put: hash the prefix the server holds, then send the rest.
    Send(u64),
}

/// Reads from the start of a local file into the buffer given; returns how
/// many bytes it wrote (0 at the end).
type ReadFn<'f> = dyn FnMut(&mut [u8]) -> Result<usize, Error> + 'f;

/// Reads `len` bytes from the start of the local file through `read` and
/// adds them to the transfer's digest, a small stack buffer at a time.
fn feed_prefix<'f, B: crate::Buffer, const W: usize>(
    client: &mut crate::Client<B, W>,
    read: Option<&mut ReadFn<'f>>,
    len: u64,
) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    let read = read.ok_or(Error::BadUsage)?;
    let mut left = len;
    let mut buf = [0u8; 256];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = read(&mut buf[..want])?;
        if got == 0 || got > want {
            // The local file is shorter than it was: give up this transfer.
            return Err(Error::Io);
        }
        client.feed_prefix(&buf[..got])?;
        left -= got as u64;
    }
    Ok(())
}

macro_rules! drivers {
    ($name:ident, $doc:literal, $client:ident, $serve:ident, $read:path, $write:path,
     [$($async:ident)?], [$($await:tt)*]) => {
        #[doc = $doc]
        pub mod $name {
            use super::*;
            use crate::client::Client;
            use crate::endpoint::Buffer;
            use embedded_io::ErrorType;

            /// A client connection driven over a transport, one exchange
            /// per call.
            pub struct $client<T, B, C, const W: usize = 1> {
                io: T,
                client: Client<B, W>,
                clock: C,
                /// The body source of a put in progress.
                sending: bool,
            }

            impl<T, B, C, const W: usize> $client<T, B, C, W>
            where
                T: $read + $write,
                B: Buffer,
                C: FnMut() -> Instant,
            {
                /// Sends the hello and waits for the server's.
                pub $($async)? fn connect(io: T, client: Client<B, W>, clock: C)
                    -> Result<Self, DriverError<T::Error>> {
                    let mut me = Self { io, client, clock, sending: false };
                    me.run(None, None, |ev| match ev {
                        ClientEvent::Connected(_) => Ok(Flow::Done(())),
                        other => unexpected(other),
                    }) $($await)* ?;
                    Ok(me)
                }

                /// Queues the hello without waiting for the server's: the
                /// next exchange (a login) goes out with it, one round trip
                /// sooner than after [`Self::connect`].
                pub fn start(io: T, client: Client<B, W>, clock: C) -> Self {
                    Self { io, client, clock, sending: false }
                }

                /// The state machine, for getters.
                pub fn client(&self) -> &Client<B, W> {
                    &self.client
                }

                /// Gives back the transport (e.g. to shut it down).
                pub fn into_inner(self) -> T {
                    self.io
                }

                /// SCRAM login; `random` is 8–32 fresh random bytes.
                pub $($async)? fn login(&mut self, user: &str, password: &str, random: &[u8])
                    -> Result<(), DriverError<T::Error>> {
                    self.client.login(user, password, random)?;
                    self.run(None, None, login_flow) $($await)*
                }

                /// Anonymous login.
                pub $($async)? fn login_anonymous(&mut self) -> Result<(), DriverError<T::Error>> {
                    self.client.login_anonymous()?;
                    self.run(None, None, login_flow) $($await)*
                }

                /// Starts an anonymous login without waiting for its
                /// answer: any request may follow at once (one round trip
                /// less). A refused login fails the exchange that sees it
                /// with the login's own error (`Client::login_sent`).
                pub fn start_login_anonymous(&mut self) -> Result<(), DriverError<T::Error>> {
                    self.client.login_anonymous()?;
                    Ok(())
                }

                /// Starts a SCRAM login and runs it until its last message
                /// is out, without waiting for the server's answer to it,
                /// as [`Self::start_login_anonymous`].
                pub $($async)? fn start_login(&mut self, user: &str, password: &str, random: &[u8])
                    -> Result<(), DriverError<T::Error>> {
                    self.client.login(user, password, random)?;
                    loop {
                        self.flush() $($await)* ?;
                        while let Some(ev) = self.client.poll_event() {
                            match ev {
                                ClientEvent::Connected(_) | ClientEvent::LoggedIn => {}
                                ClientEvent::LoginFailed(e) | ClientEvent::Closed(e) => return Err(e.into()),
                                _ => return Err(Error::UnexpectedFrame.into()),
                            }
                        }
                        if self.client.login_sent() || self.client.is_logged_in() {
                            return self.flush() $($await)*;
                        }
                        if self.client.is_closed() {
                            return Err(Error::Closed.into());
                        }
                        self.read_some() $($await)* ?;
                    }
                }

                /// Waits for the answer to a login started with
                /// [`Self::start_login_anonymous`] or [`Self::start_login`]
                /// (at once if it already came).
                pub $($async)? fn finish_login(&mut self) -> Result<(), DriverError<T::Error>> {
                    if self.client.is_logged_in() {
                        return Ok(());
                    }
                    self.run(None, None, login_flow) $($await)*
                }

                /// Echo (upper-cased if `upper`).
                pub $($async)? fn echo(&mut self, text: &str, upper: bool)
                    -> Result<Text, DriverError<T::Error>> {
                    self.client.echo(text, upper)?;
                    self.run(None, None, |ev| match ev {
                        ClientEvent::Echo(t) => Ok(Flow::Done(t)),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// Downloads `path`, handing body bytes to `sink` in order.
                /// Returns the size and digest once the digest is verified;
                /// `ChecksumMismatch` otherwise.
                pub $($async)? fn get(&mut self, path: &str, sink: impl FnMut(&[u8]) -> Result<(), Error>)
                    -> Result<Got, DriverError<T::Error>> {
                    self.get_resume(path, 0, |_| Ok(0), sink) $($await)*
                }

                /// Downloads `path` when the first `held` bytes are already
                /// here: `prefix` reads them back from the start (they are
                /// hashed, so the digest covers the whole file), `sink` gets
                /// the rest in order. A `held` larger than the remote file
                /// is refused with `BadOffset` and nothing is sent.
                pub $($async)? fn get_resume(
                    &mut self,
                    path: &str,
                    held: u64,
                    prefix: impl FnMut(&mut [u8]) -> Result<usize, Error>,
                    sink: impl FnMut(&[u8]) -> Result<(), Error>,
                ) -> Result<Got, DriverError<T::Error>> {
                    self.get_offered(path, |_| Ok(held), prefix, sink) $($await)*
                }

                /// As [`Self::get_resume`], with the bytes held decided once
                /// the file's size is known: `offered(size)` answers the
                /// server's offer with how many bytes are already here (a
                /// local partial no longer than `size`), or refuses it. A
                /// caller that needs the size first (to pick a resume, size
                /// a progress bar) so spends no `stat` round trip.
                pub $($async)? fn get_offered(
                    &mut self,
                    path: &str,
                    mut offered: impl FnMut(u64) -> Result<u64, Error>,
                    mut prefix: impl FnMut(&mut [u8]) -> Result<usize, Error>,
                    mut sink: impl FnMut(&[u8]) -> Result<(), Error>,
                ) -> Result<Got, DriverError<T::Error>> {
                    self.client.get(path)?;
                    let mut size = 0;
                    self.run(None, Some(&mut prefix), |ev| match ev {
                        ClientEvent::Offer { size: s } => {
                            size = s;
                            match offered(s) {
                                Ok(held) if held > s => Ok(Flow::Refuse(Error::BadOffset)),
                                Ok(held) => Ok(Flow::Accept(held)),
                                Err(e) => Ok(Flow::Refuse(e)),
                            }
                        }
                        ClientEvent::Data(d) => sink(d).map(|_| Flow::Continue),
                        ClientEvent::TransferEnd { verified: true, sum } => Ok(Flow::Done(Got { size, sum })),
                        ClientEvent::TransferEnd { verified: false, .. } => Err(Error::ChecksumMismatch),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// Uploads `size` bytes pulled from `source`, which reads the
                /// file from its start (fills the buffer it is given, returns
                /// how much). With `resume`, the server may already hold a
                /// prefix: those bytes are read and hashed but not sent.
                /// Returns the name stored under and the digest once the
                /// server verified and stored the file.
                pub $($async)? fn put(
                    &mut self,
                    path: &str,
                    size: u64,
                    overwrite: Overwrite,
                    resume: bool,
                    mut source: impl FnMut(&mut [u8]) -> Result<usize, Error>,
                ) -> Result<Stored, DriverError<T::Error>> {
                    self.client.put(path, size, overwrite, resume)?;
                    let mut stored = None;
                    let sum = self.run(Some(&mut source), None, |ev| match ev {
                        ClientEvent::Accepted { name, offset } => {
                            stored = name;
                            // With a window the body starts at `SendBody`.
                            Ok(if W == 1 { Flow::Send(offset) } else { Flow::Continue })
                        }
                        ClientEvent::SendBody { offset } => Ok(Flow::Send(offset)),
                        ClientEvent::TransferEnd { verified: true, sum } => Ok(Flow::Done(sum)),
                        ClientEvent::TransferEnd { verified: false, .. } => Err(Error::ChecksumMismatch),
                        other => unexpected(other),
                    }) $($await)* ?;
                    Ok(Stored { name: stored, sum })
                }

                /// Lists a directory, handing each entry to `each`; returns
                /// the count.
                pub $($async)? fn list(&mut self, path: &str, mut each: impl FnMut(&Entry))
                    -> Result<u32, DriverError<T::Error>> {
                    self.client.list(path)?;
                    let mut n = 0;
                    self.run(None, None, |ev| match ev {
                        ClientEvent::Entry(e) => {
                            n += 1;
                            each(&e);
                            Ok(Flow::Continue)
                        }
                        ClientEvent::ListEnd => Ok(Flow::Done(n)),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// Lists items `0..count` of `lists`, up to the negotiated
                /// window in flight at once (version 3; one at a time
                /// otherwise): each answer follows the one before, so a
                /// batch costs one turn, not one per directory
                /// (`docs/PROTOCOL.md#pipelining`). A connection that
                /// closes ends every item not ended with its error, which
                /// is returned.
                pub $($async)? fn list_many(&mut self, count: usize, lists: &mut impl Lists)
                    -> Result<(), DriverError<T::Error>> {
                    let (mut next, mut sent) = (0, Items::<W>(heapless::Vec::new()));
                    let mut closed = None;
                    loop {
                        while next < count
                            && (sent.0.is_empty() || self.client.can_queue())
                        {
                            let sent_ok = if lists.stat(next) {
                                self.client.stat(lists.path(next))
                            } else {
                                self.client.list(lists.path(next))
                            };
                            match sent_ok {
                                Ok(()) => sent.push(next)?,
                                Err(e) => lists.done(next, Err(e)),
                            }
                            next += 1;
                        }
                        self.flush() $($await)* ?;
                        while let Some(ev) = self.client.poll_event() {
                            match ev {
                                ClientEvent::Entry(e) => {
                                    let i = sent.front().ok_or(Error::Internal)?;
                                    lists.entry(i, &e);
                                    if lists.stat(i) {
                                        sent.pop_front();
                                        lists.done(i, Ok(()));
                                    }
                                }
                                ClientEvent::ListEnd => {
                                    let i = sent.pop_front().ok_or(Error::Internal)?;
                                    lists.done(i, Ok(()));
                                }
                                ClientEvent::Failed(e) => {
                                    let i = sent.pop_front().ok_or(Error::Internal)?;
                                    lists.done(i, Err(e));
                                }
                                ClientEvent::Closed(e) => {
                                    closed = Some(e);
                                    break;
                                }
                                _ => {}
                            }
                        }
                        if closed.is_some() || (next == count && sent.0.is_empty()) {
                            break;
                        }
                        if !sent.0.is_empty() {
                            self.read_some() $($await)* ?;
                        }
                    }
                    match closed {
                        Some(e) => {
                            for i in sent.0.iter().copied().chain(next..count) {
                                lists.done(i, Err(e));
                            }
                            Err(e.into())
                        }
                        None => self.flush() $($await)*,
                    }
                }

                /// Describes one path.
                pub $($async)? fn stat(&mut self, path: &str) -> Result<Entry, DriverError<T::Error>> {
                    self.client.stat(path)?;
                    self.run(None, None, |ev| match ev {
                        ClientEvent::Entry(e) => Ok(Flow::Done(e)),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// The digest of a remote file, with the negotiated
                /// algorithm.
                pub $($async)? fn digest(&mut self, path: &str) -> Result<Sum, DriverError<T::Error>> {
                    self.client.digest(path)?;
                    self.run(None, None, |ev| match ev {
                        ClientEvent::Sum(s) => Ok(Flow::Done(s)),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// Runs a command, handing output to `out`; returns the exit
                /// status and whether it printed nothing.
                pub $($async)? fn exec(&mut self, command: &str, mut out: impl FnMut(Stream, &[u8]))
                    -> Result<(i32, bool), DriverError<T::Error>> {
                    self.client.exec(command)?;
                    self.run(None, None, |ev| match ev {
                        ClientEvent::Output { stream, data } => {
                            out(stream, data);
                            Ok(Flow::Continue)
                        }
                        ClientEvent::ExecEnd { status, no_output } => Ok(Flow::Done((status, no_output))),
                        other => unexpected(other),
                    }) $($await)*
                }

                /// Changes directory; returns the new one.
                pub $($async)? fn cd(&mut self, path: &str) -> Result<Path, DriverError<T::Error>> {
                    self.client.cd(path)?;
                    self.run(None, None, cwd_flow) $($await)*
                }

                /// The session's directory.
                pub $($async)? fn pwd(&mut self) -> Result<Path, DriverError<T::Error>> {
                    self.client.pwd()?;
                    self.run(None, None, cwd_flow) $($await)*
                }

                /// Creates a directory.
                pub $($async)? fn mkdir(&mut self, path: &str) -> Result<(), DriverError<T::Error>> {
                    self.client.mkdir(path)?;
                    self.run(None, None, done_flow) $($await)*
                }

                /// Removes a file or empty directory.
                pub $($async)? fn remove(&mut self, path: &str) -> Result<(), DriverError<T::Error>> {
                    self.client.remove(path)?;
                    self.run(None, None, done_flow) $($await)*
                }

                /// Renames; an existing `to` is refused (`Exists`).
                pub $($async)? fn rename(&mut self, from: &str, to: &str) -> Result<(), DriverError<T::Error>> {
                    self.client.rename(from, to)?;
                    self.run(None, None, done_flow) $($await)*
                }

                /// Renames, replacing `to` if it exists.
                pub $($async)? fn rename_replacing(&mut self, from: &str, to: &str) -> Result<(), DriverError<T::Error>> {
                    self.client.rename_replacing(from, to)?;
                    self.run(None, None, done_flow) $($await)*
                }

                /// Uploads items `0..count` of `puts` on this connection,
                /// up to the negotiated window in flight at once
                /// (`docs/PROTOCOL.md#pipelining`): one round trip for
                /// many small files instead of two each. Each item ends
                /// through [`Puts::done`]; a refusal or failure of one
                /// leaves the others going. Returns once every item ended,
                /// or the connection failed (items not yet ended then end
                /// with that error).
                pub $($async)? fn put_many(&mut self, count: usize, puts: &mut impl Puts)
                    -> Result<(), DriverError<T::Error>> {
                    let mut next = 0;
                    // Items sent without an answer; accepted and not ended;
                    // accepted whose body has not started.
                    let (mut heads, mut bodies, mut ready) =
                        (Items::<W>(heapless::Vec::new()), Items::<W>(heapless::Vec::new()), Items::<W>(heapless::Vec::new()));
                    // Pre-agreed puts whose request is not answered yet:
                    // in `heads`, and in `bodies` until they end.
                    let mut agreed = Items::<W>(heapless::Vec::new());
                    // The item whose body goes out now.
                    let mut body: Option<usize> = None;
                    let mut closed = None;
                    let r = loop {
                        while next < count && puts.skip(next) {
                            puts.done(next, Err(Error::Cancelled));
                            next += 1;
                        }
                        while next < count && !puts.skip(next) && self.client.can_pipeline(false) {
                            let before = self.client.agreed_puts_unanswered();
                            match puts.request(next, &mut self.client) {
                                Ok(()) => heads.push(next)?,
                                // The output buffer is full (bodies sent
                                // behind requests): again once it drained.
                                Err(Error::BufferFull) => break,
                                Err(e) => puts.done(next, Err(e)),
                            }
                            next += 1;
                            // Sent as `PutAgreed`: its body goes now
                            // (`docs/PROTOCOL.md#pre-agreed-puts`), and
                            // the next request behind it if it all fit.
                            if self.client.agreed_puts_unanswered() > before {
                                agreed.push(next - 1)?;
                                bodies.push(next - 1)?;
                                body = Some(next - 1);
                                send_put_body(&mut self.client, puts, &mut body, &mut bodies)?;
                            }
                        }
                        if next == count && self.client.is_idle() {
                            break Ok(());
                        }
                        self.client.handle_timeout((self.clock)());
                        // Whether this turn did anything: an event, body
                        // bytes, output written.
                        let mut moved = false;
                        while let Some(ev) = self.client.poll_event() {
                            moved = true;
                            match ev {
                                ClientEvent::Accepted { name, .. } => {
                                    let i = heads.pop_front().ok_or(Error::Internal)?;
                                    // Its body went with the request (and
                                    // may have been cancelled since).
                                    if agreed.remove(i) {
                                        if bodies.0.contains(&i) {
                                            puts.accepted(i, name.as_deref());
                                        }
                                        continue;
                                    }
                                    puts.accepted(i, name.as_deref());
                                    bodies.push(i)?;
                                    if W == 1 {
                                        body = Some(i);
                                    } else {
                                        ready.push(i)?;
                                    }
                                }
                                ClientEvent::SendBody { .. } => body = ready.pop_front(),
                                ClientEvent::TransferEnd { verified, sum } => {
                                    let i = bodies.pop_front().ok_or(Error::Internal)?;
                                    puts.done(i, if verified { Ok(sum) } else { Err(Error::ChecksumMismatch) });
                                }
                                // The oldest in flight failed.
                                ClientEvent::Failed(e) => {
                                    let i = bodies.pop_front().or_else(|| heads.pop_front()).ok_or(Error::Internal)?;
                                    ready.remove(i);
                                    if body == Some(i) {
                                        body = None;
                                    }
                                    puts.done(i, Err(e));
                                }
                                ClientEvent::Refused(e) => {
                                    let i = heads.pop_front().ok_or(Error::Internal)?;
                                    // A pre-agreed put cancelled already
                                    // has ended.
                                    if agreed.remove(i) && !bodies.remove(i) {
                                        continue;
                                    }
                                    puts.done(i, Err(e));
                                }
                                ClientEvent::Closed(e) => {
                                    closed = Some(e);
                                    break;
                                }
                                _ => {}
                            }
                        }
                        // Stopped: a body not started yet is cancelled
                        // before any byte of it.
                        if let Some(i) = body.filter(|&i| puts.skip(i)) {
                            if self.client.cancel(Error::Cancelled).is_ok() {
                                bodies.remove(i);
                                puts.done(i, Err(Error::Cancelled));
                                body = None;
                            }
                        }
                        moved |= send_put_body(&mut self.client, puts, &mut body, &mut bodies)?;
                        if self.client.remaining() == 0 {
                            body = None;
                        }
                        moved |= !self.client.transmit_buf().is_empty();
                        self.flush() $($await)* ?;
                        if let Some(e) = closed {
                            break Err(e);
                        }
                        // More bodies to send: the server reads them all, so
                        // no deadlock; answers are read after. Accepted
                        // bodies waiting while nothing moves wait for the
                        // server (the acknowledgement of a cancel): read.
                        if body.is_some() || (!ready.0.is_empty() && moved) {
                            continue;
                        }
                        if next == count && self.client.is_idle() {
                            break Ok(());
                        }
                        // Items ended and the window has room: send more
                        // before waiting (the server may have answered
                        // everything, and then nothing more would come).
                        if next < count && self.client.can_pipeline(false) {
                            continue;
                        }
                        self.read_some() $($await)* ?;
                    };
                    if let Err(e) = r {
                        // A pre-agreed put in `heads` is in `bodies` too,
                        // or has ended.
                        let unanswered = heads.0.iter().filter(|i| !agreed.0.contains(i));
                        for i in bodies.0.iter().chain(unanswered) {
                            puts.done(*i, Err(e));
                        }
                        return Err(e.into());
                    }
                    Ok(())
                }

                /// Downloads items `0..count` of `gets` on this connection,
                /// up to the negotiated window in flight at once, as
                /// [`Self::put_many`] uploads.
                pub $($async)? fn get_many(&mut self, count: usize, gets: &mut impl Gets)
                    -> Result<(), DriverError<T::Error>> {
                    let (mut next, mut heads, mut bodies) = (0, Items::<W>(heapless::Vec::new()), Items::<W>(heapless::Vec::new()));
                    let mut sizes: heapless::Vec<u64, W> = heapless::Vec::new();
                    let mut closed = None;
                    let r = loop {
                        while next < count && gets.skip(next) {
                            gets.done(next, Err(Error::Cancelled));
                            next += 1;
                        }
                        while next < count && !gets.skip(next) && self.client.can_pipeline(true) {
                            match gets.request(next, &mut self.client) {
                                Ok(()) => heads.push(next)?,
                                Err(e) => gets.done(next, Err(e)),
                            }
                            next += 1;
                        }
                        if next == count && self.client.is_idle() {
                            break Ok(());
                        }
                        self.client.handle_timeout((self.clock)());
                        while let Some(ev) = self.client.poll_event() {
                            match ev {
                                ClientEvent::Offer { size } => {
                                    let i = heads.pop_front().ok_or(Error::Internal)?;
                                    let answer = if gets.skip(i) {
                                        Err(Error::Cancelled)
                                    } else {
                                        gets.offered(i, size)
                                    };
                                    match answer {
                                        Ok(()) => {
                                            self.client.accept(0)?;
                                            bodies.push(i)?;
                                            sizes.push(size).map_err(|_| Error::Internal)?;
                                        }
                                        Err(e) => {
                                            self.client.refuse(e)?;
                                            gets.done(i, Err(e));
                                        }
                                    }
                                }
                                ClientEvent::Data(d) => {
                                    let i = bodies.front().ok_or(Error::Internal)?;
                                    if let Err(e) = gets.write(i, d) {
                                        let _ = self.client.cancel(e);
                                        bodies.pop_front();
                                        if !sizes.is_empty() {
                                            sizes.remove(0);
                                        }
                                        gets.done(i, Err(e));
                                    }
                                }
                                ClientEvent::TransferEnd { verified, sum } => {
                                    let i = bodies.pop_front().ok_or(Error::Internal)?;
                                    let size = if sizes.is_empty() { 0 } else { sizes.remove(0) };
                                    gets.done(i, if verified { Ok(Got { size, sum }) } else { Err(Error::ChecksumMismatch) });
                                }
                                ClientEvent::Failed(e) => {
                                    let i = match bodies.pop_front() {
                                        Some(i) => {
                                            if !sizes.is_empty() {
                                                sizes.remove(0);
                                            }
                                            i
                                        }
                                        None => heads.pop_front().ok_or(Error::Internal)?,
                                    };
                                    gets.done(i, Err(e));
                                }
                                ClientEvent::Refused(e) => {
                                    let i = heads.pop_front().ok_or(Error::Internal)?;
                                    gets.done(i, Err(e));
                                }
                                ClientEvent::Closed(e) => {
                                    closed = Some(e);
                                    break;
                                }
                                _ => {}
                            }
                        }
                        self.flush() $($await)* ?;
                        if let Some(e) = closed {
                            break Err(e);
                        }
                        if next == count && self.client.is_idle() {
                            break Ok(());
                        }
                        if next < count && self.client.can_pipeline(true) {
                            continue;
                        }
                        self.read_some() $($await)* ?;
                    };
                    if let Err(e) = r {
                        for i in bodies.0.iter().chain(heads.0.iter()) {
                            gets.done(*i, Err(e));
                        }
                        return Err(e.into());
                    }
                    Ok(())
                }

                /// Waits for input (or a deadline) and hands it to the core.
                $($async)? fn read_some(&mut self) -> Result<(), DriverError<T::Error>> {
                    let now = (self.clock)();
                    self.client.handle_timeout(now);
                    let buf = self.client.input_buf();
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let n = match self.io.read(buf) $($await)* {
                        Ok(n) => n,
                        Err(e) if peer_gone(&e) => 0,
                        Err(e) if no_data_yet(&e) => return Ok(()),
                        Err(e) => return Err(DriverError::Io(e)),
                    };
                    if n == 0 {
                        self.client.handle_eof(now);
                    } else {
                        self.client.input_filled(now, n);
                    }
                    Ok(())
                }

                $($async)? fn flush(&mut self) -> Result<(), DriverError<T::Error>> {
                    let mut wrote = false;
                    loop {
                        let pending = self.client.transmit_buf();
                        if pending.is_empty() {
                            break;
                        }
                        let n = self.io.write(pending) $($await)* .map_err(DriverError::Io)?;
                        if n == 0 {
                            return Err(Error::Closed.into());
                        }
                        self.client.transmit_done(n);
                        wrote = true;
                    }
                    if wrote {
                        self.io.flush() $($await)* .map_err(DriverError::Io)?;
                    }
                    Ok(())
                }

                /// Pumps until `on` says done; `source` feeds a put body.
                $($async)? fn run<R>(
                    &mut self,
                    mut source: Option<&mut dyn FnMut(&mut [u8]) -> Result<usize, Error>>,
                    mut prefix: Option<&mut dyn FnMut(&mut [u8]) -> Result<usize, Error>>,
                    mut on: impl FnMut(ClientEvent<'_>) -> Result<Flow<R>, Error>,
                ) -> Result<R, DriverError<T::Error>> {
                    // A local failure (the sink or source failed): the
                    // transfer is cancelled and the exchange drained to its
                    // end, so the session stays usable; then it is returned.
                    let mut failed: Option<Error> = None;
                    loop {
                        self.client.handle_timeout((self.clock)());
                        self.flush() $($await)* ?;
                        while let Some(ev) = self.client.poll_event() {
                            if let ClientEvent::Closed(e) = ev {
                                self.flush() $($await)* ?;
                                return Err(failed.unwrap_or(e).into());
                            }
                            if let ClientEvent::Failed(e) | ClientEvent::LoginFailed(e) = ev {
                                self.sending = false;
                                return Err(failed.unwrap_or(e).into());
                            }
                            if failed.is_some() {
                                continue;
                            }
                            let step = match on(ev) {
                                Ok(Flow::Continue) => Ok(()),
                                Ok(Flow::Done(r)) => {
                                    self.flush() $($await)* ?;
                                    return Ok(r);
                                }
                                Ok(Flow::Accept(offset)) => {
                                    self.client.accept(offset)?;
                                    feed_prefix(&mut self.client, prefix.as_deref_mut(), offset)
                                }
                                Ok(Flow::Refuse(e)) => {
                                    self.client.refuse(e)?;
                                    self.flush() $($await)* ?;
                                    return Err(e.into());
                                }
                                Ok(Flow::Send(offset)) => {
                                    self.sending = true;
                                    feed_prefix(&mut self.client, source.as_deref_mut(), offset)
                                }
                                Err(e) => Err(e),
                            };
                            if let Err(e) = step {
                                self.sending = false;
                                let _ = self.client.cancel(e);
                                failed = Some(e);
                            }
                        }
                        if let Some(e) = failed {
                            if self.client.is_idle() {
                                self.flush() $($await)* ?;
                                return Err(e.into());
                            }
                        }
                        if self.sending && self.client.remaining() > 0 {
                            // Body first: the server reads it all, so no
                            // deadlock; its answer is read after the trailer.
                            if let Some(src) = source.as_mut() {
                                let read = self.client.send_with(|buf| {
                                    if buf.is_empty() {
                                        return (0, Ok(usize::MAX));
                                    }
                                    match src(buf) {
                                        Ok(n) => (n, Ok(n)),
                                        Err(e) => (0, Err(e)),
                                    }
                                })?;
                                match read {
                                    // The source ended early: the file shrank.
                                    Ok(0) => failed = Some(Error::Io),
                                    Ok(_) => {}
                                    Err(e) => failed = Some(e),
                                }
                                if let Some(e) = failed {
                                    self.sending = false;
                                    let _ = self.client.cancel(e);
                                }
                                continue;
                            }
                        }
                        self.sending = false;
                        // Events may have queued output (a SCRAM answer).
                        self.flush() $($await)* ?;
                        let now = (self.clock)();
                        self.client.handle_timeout(now);
                        if self.client.poll_timeout().is_none() && !self.client.is_logged_in() && failed.is_none() {
                            // Closed by a deadline: report it.
                            continue;
                        }
                        let buf = self.client.input_buf();
                        if buf.is_empty() {
                            return Err(Error::Internal.into());
                        }
                        let n = match self.io.read(buf) $($await)* {
                            Ok(n) => n,
                            // A reset is a peer that vanished: end of input.
                            Err(e) if peer_gone(&e) => 0,
                            // The transport's read timeout: a chance to
                            // check deadlines, then wait again.
                            Err(e) if no_data_yet(&e) => continue,
                            Err(e) => return Err(DriverError::Io(e)),
                        };
                        if n == 0 {
                            self.client.handle_eof(now);
                        } else {
                            self.client.input_filled(now, n);
                        }
                    }
                }
            }

            /// Runs one server connection over `io` until it closes, the
            /// application being `store` behind the core's one
            /// [`Session`]; returns why it closed (`Error::Closed` for a
            /// clean close). `scratch` is lent to
            /// [`Session::progress`] for hashing resumed transfers' held
            /// prefixes: any size of one byte or more (larger is fewer
            /// reads); an empty one fails at once with
            /// `DriverError::Protocol(Error::BadUsage)`. A store whose commands answer
            /// [`ExecPoll::Pending`](crate::app::ExecPoll::Pending) needs a
            /// driver that can wait on them too: this one only waits for
            /// input. A server with a window above 1
            /// ([`Server::with_window`]) serves pipelined requests
            /// (`docs/PROTOCOL.md#pipelining`).
            pub $($async)? fn $serve<T, B, S, const W: usize>(
                io: &mut T,
                server: &mut Server<B, W>,
                store: &mut S,
                scratch: &mut [u8],
                mut clock: impl FnMut() -> Instant,
            ) -> Result<Error, DriverError<<T as ErrorType>::Error>>
            where
                T: $read + $write,
                B: Buffer,
                S: Store,
            {
                let mut session = Session::<S, W>::new();
                let out = 'conn: loop {
                    server.handle_timeout(clock());
                    let next = match session.progress(server, store, scratch) {
                        Ok(p) => p,
                        Err(e) => break Err(e.into()),
                    };
                    // Write everything queued.
                    let mut wrote = false;
                    while !server.transmit_buf().is_empty() {
                        match io.write(server.transmit_buf()) $($await)* {
                            Ok(0) => break 'conn Ok(Error::Closed),
                            Ok(n) => server.transmit_done(n),
                            Err(e) => break 'conn Err(DriverError::Io(e)),
                        }
                        wrote = true;
                    }
                    if wrote {
                        if let Err(e) = io.flush() $($await)* {
                            break Err(DriverError::Io(e));
                        }
                    }
                    match next {
                        Progress::Closed(e) => break Ok(e),
                        // Keep streaming a get body without waiting to read.
                        Progress::Transmit => continue,
                        Progress::Wait => {}
                    }
                    let now = clock();
                    if server.poll_timeout().is_some_and(|d| now >= d) {
                        // A deadline passed: the top of the loop closes.
                        continue;
                    }
                    let buf = server.input_buf();
                    if buf.is_empty() {
                        break Err(Error::Internal.into());
                    }
                    let n = match io.read(buf) $($await)* {
                        Ok(n) => n,
                        // A reset is a client that vanished: end of input,
                        // and the session ends with a typed `Truncated`.
                        Err(e) if peer_gone(&e) => 0,
                        Err(e) if no_data_yet(&e) => continue,
                        Err(e) => break Err(DriverError::Io(e)),
                    };
                    if n == 0 {
                        server.handle_eof(now);
                    } else {
                        server.input_filled(now, n);
                    }
                };
                session.end(store);
                out
            }
        }
    };
}

/// Whether a transport error means the peer went away (reset, aborted).
fn peer_gone<E: embedded_io::Error>(e: &E) -> bool {
    matches!(
        e.kind(),
        embedded_io::ErrorKind::ConnectionReset | embedded_io::ErrorKind::ConnectionAborted
    )
}

/// A read that timed out (the transport's own read timeout) or was
/// interrupted: not a failure, just no bytes yet. This is how a blocking
/// transport lets the driver enforce the core's deadlines.
fn no_data_yet<E: embedded_io::Error>(e: &E) -> bool {
    matches!(
        e.kind(),
        embedded_io::ErrorKind::TimedOut | embedded_io::ErrorKind::Interrupted
    )
}

fn unexpected<R>(ev: ClientEvent<'_>) -> Result<Flow<R>, Error> {
    match ev {
        // A login started without waiting ends during the first exchange.
        ClientEvent::Connected(_) | ClientEvent::LoggedIn => Ok(Flow::Continue),
        _ => Err(Error::UnexpectedFrame),
    }
}

fn login_flow(ev: ClientEvent<'_>) -> Result<Flow<()>, Error> {
    match ev {
        // A login sent before the server's hello sees the hello first.
        ClientEvent::Connected(_) => Ok(Flow::Continue),
        ClientEvent::LoggedIn => Ok(Flow::Done(())),
        other => unexpected(other),
    }
}

fn cwd_flow(ev: ClientEvent<'_>) -> Result<Flow<Path>, Error> {
    match ev {
        ClientEvent::Cwd(p) => Ok(Flow::Done(p)),
        other => unexpected(other),
    }
}

fn done_flow(ev: ClientEvent<'_>) -> Result<Flow<()>, Error> {
    match ev {
        ClientEvent::Done => Ok(Flow::Done(())),
        other => unexpected(other),
    }
}

drivers!(
    blocking,
    "Blocking drivers over `embedded_io::{Read, Write}`.",
    BlockingClient,
    serve,
    embedded_io::Read,
    embedded_io::Write,
    [],
    []
);

drivers!(
    asynch,
    "Async drivers over `embedded_io_async::{Read, Write}` (embassy-net sockets, async UARTs).",
    AsyncClient,
    serve,
    embedded_io_async::Read,
    embedded_io_async::Write,
    [async],
    [.await]
);
