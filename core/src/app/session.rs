//! The one server session: login, request dispatch, resume prefix
//! hashing, commit or refusal, cancels, and the get, listing and exec
//! pumps, over any [`Store`].

use crate::app::{feed, Abort, Cost, ExecPoll, GetEnd, Store};
use crate::endpoint::Buffer;
use crate::error::Error;
use crate::message::{Entry, Kind, Name, Path, Request};
use crate::server::{Event, Server, Step};

/// What the driver does after [`Session::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Progress {
    /// Output is queued: transmit it (`transmit_buf` + `transmit_done`, or
    /// `poll_transmit`), then call `progress` again. A get body keeps
    /// coming back here while it streams; a driver that can should look
    /// for input now and then meanwhile (a cancel).
    Transmit,
    /// Nothing is queued and nothing moves without news: wait for input,
    /// for `poll_timeout`'s instant (then `handle_timeout`), or for the
    /// store's own wake-up (a command's output), then call again.
    Wait,
    /// The connection is over: transmit what is still queued, then close
    /// the transport. Every handle went back to the store; `progress`
    /// returns this from now on.
    Closed(Error),
}

/// The listing or command in progress and the store's handle for it.
enum Work<S: Store> {
    Idle,
    List(S::Listing),
    Exec(S::Exec),
    Closed(Error),
}

/// A get or put in flight and the store's handle for it.
enum Open<S: Store> {
    Get {
        file: S::File,
        /// Next body byte to read.
        pos: u64,
        /// The client accepted the offer; the body streams (or went out).
        started: bool,
        /// Offered with a kept digest.
        vouched: bool,
    },
    Put(S::Upload),
}

/// One connection's server application over a [`Store`]: holds the
/// handles of the requests in progress between calls to
/// [`Self::progress`] — a listing or a command, or up to `W` gets or puts
/// in flight (the [`Server`]'s window, in request order).
///
/// ```text
/// loop {
///     server.handle_timeout(now);
///     match session.progress(&mut server, &mut store, &mut scratch)? {
///         Progress::Transmit => write server.transmit_buf(), then transmit_done,
///         Progress::Wait => read into server.input_buf() (input_filled,
///                           handle_eof) or wait until server.poll_timeout(),
///         Progress::Closed(why) => { write what is left; close; break }
///     }
/// }
/// ```
pub struct Session<S: Store, const W: usize = 1> {
    work: Work<S>,
    flight: heapless::Vec<Open<S>, W>,
}

impl<S: Store, const W: usize> Default for Session<S, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Store, const W: usize> Session<S, W> {
    /// A session for a new connection.
    pub const fn new() -> Self {
        Session {
            work: Work::Idle,
            flight: heapless::Vec::new(),
        }
    }

    /// Whether the connection closed (a [`Progress::Closed`] came out).
    pub fn is_closed(&self) -> bool {
        matches!(self.work, Work::Closed(_))
    }

    /// Drives the session as far as it goes without new input: takes
    /// every event the server has, answers it from `store`, and streams
    /// what is in progress (a get body, a listing, command output) until
    /// the output buffer is full. Says what the driver does next.
    ///
    /// `scratch` is lent for hashing held prefixes of resumed transfers
    /// and for digest requests: any size of at least one byte works,
    /// larger is fewer reads. An empty one is [`Error::BadUsage`] at the
    /// first call, before any event is taken, rather than at the first
    /// resume.
    ///
    /// An `Err` is a bug in the driver, the store or the session: the
    /// application cannot go on; drop the connection (call [`Self::end`]).
    pub fn progress<B: Buffer>(
        &mut self,
        server: &mut Server<B, W>,
        store: &mut S,
        scratch: &mut [u8],
    ) -> Result<Progress, Error> {
        if scratch.is_empty() {
            return Err(Error::BadUsage);
        }
        loop {
            if let Work::Closed(e) = self.work {
                return Ok(Progress::Closed(e));
            }
            let mut moved = false;
            loop {
                // Matched by reference: moved out of the step, an event
                // (up to 976 bytes) was a second copy in this frame.
                let step = server.poll_step();
                let ev = match &step {
                    None | Some(Step::Nothing) => break,
                    Some(Step::Data(range)) => {
                        moved = true;
                        let d = server.data(range.clone());
                        let failed = match self.flight.first_mut() {
                            Some(Open::Put(up)) => store.write(up, d).err(),
                            _ => None,
                        };
                        if let Some(e) = failed {
                            self.abort_put(server, store, e)?;
                        }
                        continue;
                    }
                    Some(Step::Event(ev)) => ev,
                };
                moved = true;
                if let Some(p) = self.event(ev, server, store, scratch)? {
                    return Ok(p);
                }
            }
            moved |= self.pump(server, store)?;
            if !server.transmit_buf().is_empty() {
                return Ok(Progress::Transmit);
            }
            if !moved {
                return Ok(Progress::Wait);
            }
        }
    }

    /// Ends the session without a `Closed` event (the transport failed, or
    /// the driver dropped the connection): hands every handle back to the
    /// store, an upload kept for a resume.
    pub fn end(&mut self, store: &mut S) {
        if !self.is_closed() {
            self.release(store, Error::Closed);
            self.work = Work::Closed(Error::Closed);
        }
    }

    fn release(&mut self, store: &mut S, why: Error) {
        self.work = Work::Idle;
        while !self.flight.is_empty() {
            match self.flight.remove(0) {
                Open::Put(up) => store.keep(up, Abort::Closed(why)),
                Open::Get { file, .. } => store.close(file, GetEnd::Cancelled(why)),
            }
        }
    }

    /// Takes the get or put at `index` in flight (0: the oldest).
    fn take(&mut self, index: usize) -> Option<Open<S>> {
        (index < self.flight.len()).then(|| self.flight.remove(index))
    }

    /// The get whose body is streaming: the last one started.
    fn sending(&self) -> Option<usize> {
        self.flight
            .iter()
            .rposition(|o| matches!(o, Open::Get { started: true, .. }))
    }

    /// One event (never `Data`); `Some` ends `progress`.
    // Not inlined, nor is `pump`: inlined into `progress`, their
    // temporaries (messages, entries, texts of up to 960 bytes) took a
    // 12 KB stack frame on a Cortex-M4 (embedded-demo/firmware-serial).
    #[inline(never)]
    fn event<B: Buffer>(
        &mut self,
        ev: &Event<'_>,
        server: &mut Server<B, W>,
        store: &mut S,
        scratch: &mut [u8],
    ) -> Result<Option<Progress>, Error> {
        if let &Event::Closed(e) = ev {
            let _ = store.on_event(ev);
            self.release(store, e);
            self.work = Work::Closed(e);
            return Ok(Some(Progress::Closed(e)));
        }
        if let Err(e) = store.on_event(ev) {
            server.close_retry(e, store.retry_after(e));
            return Ok(None);
        }
        // By reference: a request bound by value is a 976-byte copy.
        match ev {
            Event::LoginRequest { user } => {
                let mut nonce = [0u8; 18];
                store.random(&mut nonce)?;
                server.login_verifier(store.verifier(user), &nonce)?;
            }
            Event::Request(req) => self.request(req, server, store, scratch)?,
            &Event::SendBody { offset } => self.send_body(offset, server, store, scratch)?,
            &Event::PutEnd { verified, sum } => match self.take(0) {
                Some(Open::Put(up)) if verified => {
                    match store.blocking(Cost::Storage, |st| st.commit(up, sum)) {
                        Ok(()) => server.finish_put()?,
                        Err(e) => server.refuse(e)?,
                    }
                }
                Some(Open::Put(up)) => store.discard(up),
                Some(other) => self.restore(other)?,
                None => {}
            },
            &Event::GetEnd { verified, sum } => match self.take(0) {
                Some(Open::Get { file, vouched, .. }) => {
                    match (vouched, verified) {
                        // The client hashed what this side read: keep it.
                        (false, true) => store.keep_digest(&file, sum),
                        // A kept digest failed: never offer it again.
                        (true, false) => store.forget_digest(&file),
                        _ => {}
                    }
                    let end = GetEnd::Done {
                        verified,
                        vouched,
                        sum,
                    };
                    store.close(file, end);
                }
                Some(other) => self.restore(other)?,
                None => {}
            },
            &Event::Cancelled(e) => match self.take(0) {
                Some(Open::Put(up)) => store.keep(up, Abort::Cancelled(e)),
                Some(Open::Get { file, .. }) => store.close(file, GetEnd::Cancelled(e)),
                None => {}
            },
            &Event::Declined { index, error } => match self.take(index) {
                Some(Open::Get { file, .. }) => store.close(file, GetEnd::Cancelled(error)),
                Some(Open::Put(up)) => store.keep(up, Abort::Cancelled(error)),
                None => {}
            },
            _ => {}
        }
        Ok(None)
    }

    /// Puts back what an event did not end (never, with a server that
    /// keeps its order): as the oldest in flight.
    fn restore(&mut self, open: Open<S>) -> Result<(), Error> {
        self.flight.insert(0, open).map_err(|_| Error::Internal)
    }

    /// The store failed to write: keep what arrived, tell the client.
    fn abort_put<B: Buffer>(
        &mut self,
        server: &mut Server<B, W>,
        store: &mut S,
        e: Error,
    ) -> Result<(), Error> {
        match self.take(0) {
            Some(Open::Put(up)) => {
                store.keep(up, Abort::Failed(e));
                server.cancel(e)
            }
            Some(other) => self.restore(other),
            None => Ok(()),
        }
    }

    /// Reading a get's file failed: tell the client, give the file back.
    fn fail_get<B: Buffer>(
        &mut self,
        server: &mut Server<B, W>,
        store: &mut S,
        e: Error,
    ) -> Result<(), Error> {
        match self.sending().and_then(|i| self.take(i)) {
            Some(Open::Get { file, .. }) => {
                store.close(file, GetEnd::Failed(e));
                server.cancel(e)
            }
            Some(other) => self.restore(other),
            None => Ok(()),
        }
    }

    /// One request, answered from the store. Not inlined into `event`
    /// either: its locals (a path, a command's first output) are only
    /// live while it runs.
    #[inline(never)]
    fn request<B: Buffer>(
        &mut self,
        req: &Request,
        server: &mut Server<B, W>,
        store: &mut S,
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        let alg = server.negotiated().ok_or(Error::Internal)?.digest;
        let (work, flight) = (&mut self.work, &mut self.flight);
        let outcome = store.blocking(Cost::Storage, |st| -> Result<_, Error> {
            let mut cwd = Path::new();
            Ok(match req {
                Request::Get { path } => match st.open(path) {
                    Ok((file, size)) => {
                        let kept = st.kept_digest(&file, alg).filter(|s| s.algorithm() == alg);
                        if let Err(e) = server.offer_vouched(size, kept) {
                            st.close(file, GetEnd::Failed(e));
                            return Err(e);
                        }
                        let vouched = kept.is_some();
                        let get = Open::Get {
                            file,
                            pos: 0,
                            started: false,
                            vouched,
                        };
                        // Room: the server holds no more than `W` either.
                        if let Err(Open::Get { file, .. }) = flight.push(get) {
                            st.close(file, GetEnd::Failed(Error::Internal));
                            return Err(Error::Internal);
                        }
                        Ok(0)
                    }
                    Err(e) => Err(e),
                },
                Request::Put {
                    path,
                    size,
                    overwrite,
                    resume,
                } => match st.begin_upload(path, *size, *overwrite, *resume, alg) {
                    Ok(acc) => {
                        let name = acc.stored_as.as_deref();
                        if let Err(e) = server.accept_put(acc.offset, name) {
                            st.keep(acc.upload, Abort::Failed(e));
                            return Err(e);
                        }
                        if let Err(Open::Put(up)) = flight.push(Open::Put(acc.upload)) {
                            st.keep(up, Abort::Failed(Error::Internal));
                            return Err(Error::Internal);
                        }
                        Ok(acc.offset)
                    }
                    Err(e) => Err(e),
                },
                Request::List { path } => st.list(path).map(|l| {
                    *work = Work::List(l);
                    0
                }),
                Request::Stat { path } => match st.stat(path) {
                    Ok(e) => {
                        server.reply_entry(&e)?;
                        Ok(0)
                    }
                    Err(e) => Err(e),
                },
                Request::Digest { path } => match st.digest(path, alg, scratch) {
                    Ok(sum) => {
                        server.reply_sum(&sum)?;
                        Ok(0)
                    }
                    Err(e) => Err(e),
                },
                Request::Cd { path } => match st.cd(path, &mut cwd) {
                    Ok(()) => {
                        server.reply_cwd(&cwd)?;
                        Ok(0)
                    }
                    Err(e) => Err(e),
                },
                Request::Pwd => match st.pwd(&mut cwd) {
                    Ok(()) => {
                        server.reply_cwd(&cwd)?;
                        Ok(0)
                    }
                    Err(e) => Err(e),
                },
                Request::Mkdir { path } => simple(server, st.mkdir(path))?,
                Request::Remove { path } => simple(server, st.remove(path))?,
                Request::Rename { from, to } => simple(server, st.rename(from, to, false))?,
                Request::RenameReplace { from, to } => simple(server, st.rename(from, to, true))?,
                Request::Exec { command } => st.exec(command).map(|x| {
                    *work = Work::Exec(x);
                    0
                }),
            })
        })?;
        if let Err(e) = outcome {
            server.refuse(e)?;
        }
        store.answered(req, outcome.map(|_| ()));
        // A resumed put: hash what the store already holds, so the digest
        // covers the whole file.
        if let (Ok(offset @ 1..), Some(Open::Put(up))) = (outcome, self.flight.first_mut()) {
            let r = store.blocking(Cost::PrefixHash, |st| {
                let read = |at, buf: &mut [u8]| st.read_part_at(up, at, buf);
                feed(read, 0, offset, scratch, |d| server.feed_prefix(d))
            });
            if let Err(e) = r {
                self.abort_put(server, store, e)?;
            }
        }
        Ok(())
    }

    /// The client accepted a get from `offset`: hash the prefix it holds
    /// (unless the digest is kept), then let the body stream.
    fn send_body<B: Buffer>(
        &mut self,
        offset: u64,
        server: &mut Server<B, W>,
        store: &mut S,
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        let first = self
            .flight
            .iter()
            .position(|o| matches!(o, Open::Get { started: false, .. }));
        let Some(Open::Get {
            file, pos, started, ..
        }) = first.and_then(|i| self.flight.get_mut(i))
        else {
            return Ok(());
        };
        let need = server.prefix_needed();
        if need > 0 {
            let from = offset.saturating_sub(need);
            let r = store.blocking(Cost::PrefixHash, |st| {
                let read = |at, buf: &mut [u8]| st.read_at(file, at, buf);
                feed(read, from, offset, scratch, |d| server.feed_prefix(d))
            });
            if let Err(e) = r {
                return self.fail_get(server, store, e);
            }
        }
        *pos = offset;
        *started = true;
        Ok(())
    }

    /// Streams what is in progress as far as output room allows; whether
    /// anything moved.
    #[inline(never)]
    fn pump<B: Buffer>(&mut self, server: &mut Server<B, W>, store: &mut S) -> Result<bool, Error> {
        let sending = self.sending().filter(|_| server.remaining() > 0);
        if let Some(Open::Get { file, pos, .. }) = sending.and_then(|i| self.flight.get_mut(i)) {
            {
                let r = store.blocking(Cost::Storage, |st| -> Result<_, Error> {
                    let mut moved = false;
                    while server.remaining() > 0 {
                        // Read straight into the output buffer.
                        let read = server.send_with(|buf| {
                            if buf.is_empty() {
                                return (0, None);
                            }
                            match st.read_at(file, *pos, buf) {
                                // The file shrank under us: give up rather
                                // than send a lie.
                                Ok(0) => (0, Some(Err(Error::Io))),
                                Ok(n) => (n, Some(Ok(n))),
                                Err(e) => (0, Some(Err(e))),
                            }
                        })?;
                        match read {
                            None => break,
                            Some(Err(e)) => return Ok(Err(e)),
                            Some(Ok(n)) => *pos += n as u64,
                        }
                        moved = true;
                    }
                    Ok(Ok(moved))
                })?;
                return match r {
                    Ok(moved) => Ok(moved),
                    Err(e) => self.fail_get(server, store, e).map(|()| true),
                };
            }
        }
        match &mut self.work {
            Work::List(listing) => {
                let (moved, done) = store.blocking(Cost::Storage, |st| -> Result<_, Error> {
                    let mut moved = false;
                    // Only take an entry when it can be sent at once.
                    while server.can_reply() {
                        let mut slot = Entry {
                            name: Name::new(),
                            kind: Kind::File,
                            size: 0,
                            modified: 0,
                            mode: 0,
                        };
                        match st.next_entry(listing, &mut slot) {
                            Ok(true) => server.list_entry(&slot)?,
                            Ok(false) => {
                                server.list_end()?;
                                return Ok((true, true));
                            }
                            Err(e) => {
                                server.refuse(e)?;
                                return Ok((true, true));
                            }
                        }
                        moved = true;
                    }
                    Ok((moved, false))
                })?;
                if done {
                    self.work = Work::Idle;
                }
                Ok(moved)
            }
            Work::Exec(exec) => {
                let mut moved = false;
                loop {
                    match store.exec_poll(exec) {
                        ExecPoll::Output(stream, data) => {
                            let n = match server.exec_output(stream, data) {
                                Ok(n) => n,
                                Err(Error::BufferFull) => break,
                                Err(e) => return Err(e),
                            };
                            store.exec_consume(exec, n);
                            if n == 0 {
                                break;
                            }
                            moved = true;
                        }
                        ExecPoll::Pending => break,
                        ExecPoll::Exit(status) => {
                            if !server.can_reply() {
                                break;
                            }
                            server.exec_end(status)?;
                            if let Work::Exec(x) = core::mem::replace(&mut self.work, Work::Idle) {
                                store.exec_end(x, status);
                            }
                            return Ok(true);
                        }
                    }
                }
                Ok(moved)
            }
            _ => Ok(false),
        }
    }
}

/// mkdir, remove, rename: `Ok` on the wire, or the refusal.
fn simple<B: Buffer, const W: usize>(
    server: &mut Server<B, W>,
    r: Result<(), Error>,
) -> Result<Result<u64, Error>, Error> {
    match r {
        Ok(()) => server.reply_ok().map(|()| Ok(0)),
        Err(e) => Ok(Err(e)),
    }
}
