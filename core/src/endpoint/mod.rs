//! What both roles share, written once: [`Endpoint`] is the connection of
//! either side, generic over its role (`Client` and `Server` are
//! `Endpoint<B, ClientRole>` and `Endpoint<B, ServerRole>`, as rustls
//! shares `ConnectionCommon<Data>`). The input and output paths, the
//! hello, deadlines, closing and the sending half of a transfer live here;
//! each role adds its own state and commands.
//!
//! - [`buffers`]: the caller-owned input and output buffers.
//! - [`handshake`]: the hello and the pure negotiation of sizes and digest.
//! - [`deadline`]: handshake, login and idle deadlines.

mod buffers;
mod deadline;
mod handshake;

use core::ops::Range;

use serde::Serialize;

use crate::brief::Brief;
use crate::config::Config;
use crate::digest::{Algorithm, Sum};
use crate::error::Error;
use crate::frame::{self, FrameKind, Hello, HEADER_LEN, HELLO_LEN};
use crate::message::{Message, MIN_FRAME};
use crate::setup::{BufferKind, InsufficientSize, SetupError};
use crate::time::Instant;
use crate::transfer::Transfer;

pub use buffers::Buffer;
pub(crate) use deadline::Phase;
pub use handshake::Negotiated;
pub(crate) use handshake::Side;

use buffers::{Input, Output};
use deadline::Deadlines;
use handshake::{negotiate, LocalHello};

/// The smallest input buffer: one frame of [`MIN_FRAME`] bytes. A shorter
/// one is refused with this size in
/// [`SetupError::InsufficientSize`](crate::SetupError::InsufficientSize).
pub const MIN_INPUT_BUFFER: usize = HEADER_LEN + MIN_FRAME as usize;
/// The smallest output buffer: the hello and one frame of [`MIN_FRAME`]
/// bytes. A shorter one is refused with this size in
/// [`SetupError::InsufficientSize`](crate::SetupError::InsufficientSize).
pub const MIN_OUTPUT_BUFFER: usize = HELLO_LEN + HEADER_LEN + MIN_FRAME as usize;

/// Room kept behind the last chunk so the trailer always fits: a frame
/// header, the message tag, the algorithm id, a length and 32 digest bytes.
const TRAILER_RESERVE: usize = 48;

/// One unit of input.
pub(crate) enum Incoming {
    Hello,
    Frame(FrameKind, Range<usize>),
}

/// The role-independent machinery: buffers, hello, deadlines, close.
pub(crate) struct Link<B> {
    input: Input<B>,
    output: Output<B>,
    pub config: Config,
    local: LocalHello,
    pub negotiated: Option<Negotiated>,
    timers: Deadlines,
    pub closed: Option<Error>,
    close_reported: bool,
}

impl<B: Buffer> Link<B> {
    pub fn new(
        now: Instant,
        config: Config,
        side: Side,
        flags: u16,
        window: usize,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, SetupError> {
        let (in_len, out_len) = (inbuf.as_ref().len(), outbuf.as_ref().len());
        let window = match usize::from(config.window) {
            0 => window,
            w => w.min(window),
        };
        let local = LocalHello::new(side, &config, flags, window, in_len, out_len)?;
        let mut link = Link {
            input: Input::new(inbuf),
            output: Output::new(outbuf),
            config,
            local,
            negotiated: None,
            timers: Deadlines::new(now),
            closed: None,
            close_reported: false,
        };
        link.push_hello()?;
        Ok(link)
    }

    /// The hello, first in the output. Fits: the output buffer holds at
    /// least the hello and a frame.
    fn push_hello(&mut self) -> Result<(), InsufficientSize> {
        self.output
            .push_raw(&self.local.hello.encode())
            .map_err(|_| InsufficientSize {
                buffer: BufferKind::Output,
                required: MIN_OUTPUT_BUFFER,
            })
    }

    /// A new connection in this one's place, with the same settings and
    /// buffers: as [`Self::new`] made them, without a second link beside
    /// this one.
    pub fn restart(&mut self, now: Instant) {
        self.input.reset();
        self.output.reset();
        self.negotiated = None;
        self.timers = Deadlines::new(now);
        self.closed = None;
        self.close_reported = false;
        // It fitted when the link was made, into the same buffer.
        let _ = self.push_hello();
    }

    /// Login completed: the idle deadline applies from now on.
    pub fn logged_in(&mut self) {
        self.timers.phase = Phase::Session;
    }

    #[cfg(test)]
    pub fn set_phase(&mut self, phase: Phase) {
        self.timers.phase = phase;
    }

    /// Copies as much of `data` as fits into the input buffer.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.closed {
            return Err(e);
        }
        let room = self.input.room();
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.input_filled(now, n);
        Ok(n)
    }

    pub fn input_buf(&mut self) -> &mut [u8] {
        self.input.room()
    }

    pub fn input_filled(&mut self, now: Instant, n: usize) {
        self.input.filled(n);
        if n > 0 {
            self.timers.received(now);
        } else {
            self.timers.observe(now);
        }
    }

    pub fn set_eof(&mut self) {
        self.input.set_eof();
    }

    pub fn eof(&self) -> bool {
        self.input.eof()
    }

    pub fn eof_mid_frame(&self) -> bool {
        self.input.eof_mid_frame()
    }

    /// The next hello or complete frame in the input buffer.
    pub fn next_frame(&mut self) -> Result<Option<Incoming>, Error> {
        let (at, avail) = self.input.unread();
        if self.negotiated.is_none() {
            let Some(bytes) = avail.get(..HELLO_LEN) else {
                // Check the magic early so a stray client fails fast, and
                // the version as soon as it is here: an older peer's hello
                // is shorter, and waiting for the rest would only time out.
                let n = avail.len().min(4);
                if avail[..n] != frame::MAGIC[..n] {
                    return Err(Error::BadMagic);
                }
                if let [_, _, _, _, hi, lo, ..] = *avail {
                    if u16::from_be_bytes([hi, lo]) != frame::VERSION {
                        return Err(Error::VersionMismatch);
                    }
                }
                return Ok(None);
            };
            let bytes: &[u8; HELLO_LEN] = bytes.try_into().map_err(|_| Error::Internal)?;
            let peer = Hello::decode(bytes)?;
            self.input.take(HELLO_LEN);
            self.negotiated = Some(negotiate(&self.local, &peer)?);
            self.timers.hello_received();
            return Ok(Some(Incoming::Hello));
        }
        let Some(head) = avail.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let head: &[u8; HEADER_LEN] = head.try_into().map_err(|_| Error::Internal)?;
        let (kind, len) = frame::read_header(head, self.local.hello.max_frame)?;
        let total = HEADER_LEN + len as usize;
        if avail.len() < total {
            return Ok(None);
        }
        self.input.take(total);
        let start = at + HEADER_LEN;
        Ok(Some(Incoming::Frame(kind, start..start + len as usize)))
    }

    /// Whether the next complete frame is a request (which a server
    /// leaves unread while a body it sends is in progress); with `echo`,
    /// an `Echo` counts as one (it is one when pipelined).
    pub fn next_is_request(&mut self, echo: bool) -> bool {
        if self.negotiated.is_none() {
            return false;
        }
        let (_, avail) = self.input.unread();
        let Some(head) = avail.get(..HEADER_LEN) else {
            return false;
        };
        let Ok(head) = <&[u8; HEADER_LEN]>::try_from(head) else {
            return false;
        };
        match frame::read_header(head, self.local.hello.max_frame) {
            Ok((FrameKind::Msg, len)) => avail
                .get(HEADER_LEN..HEADER_LEN + len as usize)
                .is_some_and(|p| match frame::decode_message(p) {
                    Ok(
                        Message::Request(_) | Message::GetAgreed { .. } | Message::PutAgreed { .. },
                    ) => true,
                    Ok(Message::Echo { .. }) => echo,
                    _ => false,
                }),
            _ => false,
        }
    }

    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        self.input.payload(range)
    }

    /// The negotiated digest (MD5 before the hello).
    pub fn digest(&self) -> Algorithm {
        self.negotiated.map_or(Algorithm::Md5, |n| n.digest)
    }

    /// Ends a body this side gave up on, so the peer can resync: a trailer
    /// that never verifies.
    pub fn send_resync_trailer(&mut self) -> Result<(), Error> {
        self.send_msg(&Brief::Trailer {
            sum: Sum::zero(self.digest()),
        })
    }

    pub fn chunk(&self) -> usize {
        self.negotiated.map_or(0, |n| n.chunk as usize)
    }

    fn max_out(&self) -> usize {
        self.negotiated.map_or(MIN_FRAME, |n| n.max_frame) as usize
    }

    /// Whether a whole control message surely fits in the output buffer.
    pub fn can_send_msg(&mut self) -> bool {
        self.output.room() >= HEADER_LEN + MIN_FRAME as usize
    }

    /// Queues a control message.
    pub fn send_msg<M: Serialize>(&mut self, msg: &M) -> Result<(), Error> {
        if self.closed.is_some() {
            return Err(Error::Closed);
        }
        let max = self.max_out();
        self.output.push_message(msg, max)?;
        self.timers.sent();
        Ok(())
    }

    /// Writes one frame of `kind` in place: `fill` gets room for at most
    /// `max` bytes (and one chunk), `reserve` bytes kept free behind it,
    /// and says how many it wrote; `check` sees them before they are
    /// framed. Nothing is queued when `fill` writes nothing.
    fn write_frame<R>(
        &mut self,
        kind: FrameKind,
        max: usize,
        reserve: usize,
        fill: impl FnOnce(&mut [u8]) -> (usize, R),
        check: impl FnOnce(&[u8]) -> Result<(), Error>,
    ) -> Result<(usize, R), Error> {
        let space = self.output.frame_space(max.min(self.chunk()), reserve);
        let room = space.len();
        let (n, r) = fill(self.output.space_mut(space.clone()));
        if n > room {
            return Err(Error::BadUsage);
        }
        if n > 0 {
            check(self.output.space(space.start..space.start + n))?;
            self.output.commit_frame(kind, n)?;
            self.timers.sent();
        }
        Ok((n, r))
    }

    /// Copies up to one chunk of `data` into a frame; returns how much.
    pub fn send_frame(&mut self, kind: FrameKind, data: &[u8]) -> Result<usize, Error> {
        let (n, ()) = self.write_frame(
            kind,
            data.len(),
            0,
            |buf| {
                let n = buf.len().min(data.len());
                buf[..n].copy_from_slice(&data[..n]);
                (n, ())
            },
            |_| Ok(()),
        )?;
        if n == 0 && !data.is_empty() {
            return Err(Error::BufferFull);
        }
        Ok(n)
    }

    pub fn transmit_buf(&self) -> &[u8] {
        self.output.pending()
    }

    pub fn transmit_done(&mut self, n: usize) {
        self.output.consume(n);
    }

    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.output.poll(buf)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    pub fn deadline(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        self.timers.next(&self.config)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.timers.observe(now);
        if self.deadline().is_some_and(|d| now >= d) {
            self.fail(Error::Timeout);
        }
    }

    /// Closes the connection because of `err`, telling the peer if there is
    /// room. Input still buffered is dropped.
    pub fn fail(&mut self, err: Error) {
        if self.closed.is_some() {
            return;
        }
        // Best effort: the peer may never read it.
        let _ = self.send_msg(&Brief::Error {
            code: err.closing_code(),
        });
        self.closed = Some(err);
        self.input.clear();
    }

    /// Closes because the peer reported a fatal error: nothing is sent back.
    pub fn fail_quietly(&mut self, err: Error) {
        if self.closed.is_none() {
            self.closed = Some(err);
            self.input.clear();
        }
    }

    /// The close error, once, for the `Closed` event.
    pub fn take_close(&mut self) -> Option<Error> {
        match self.closed {
            Some(e) if !self.close_reported => {
                self.close_reported = true;
                Some(e)
            }
            _ => None,
        }
    }

    /// Closed and every queued byte handed to the driver.
    pub fn is_drained_and_closed(&self) -> bool {
        self.closed.is_some() && !self.has_output()
    }
}

/// What the shared methods need to see of a role's state. Sealed: the
/// trait is public only so it can bound [`Endpoint`]'s shared impl, in a
/// module no one outside the crate can name.
pub trait Role {
    /// The hello arrived: leave the handshake state; false if not in it.
    #[doc(hidden)]
    fn hello_received(&mut self) -> bool;
    /// The transfer in progress, either direction.
    #[doc(hidden)]
    fn transfer(&self) -> Option<&Transfer>;
    /// The transfer this side is sending.
    #[doc(hidden)]
    fn sending(&mut self) -> Option<&mut Transfer>;
    /// The transfer this side is receiving.
    #[doc(hidden)]
    fn receiving(&mut self) -> Option<&mut Transfer>;
    /// This side cancelled a receive and drops body frames.
    #[doc(hidden)]
    fn discarding(&self) -> bool;
    /// The trailer of the body being sent is queued: wait for `Done`.
    #[doc(hidden)]
    fn body_sent(&mut self, sum: Sum);
}

/// A Ferry connection of either role, sans-IO: [`Client`](crate::Client)
/// and [`Server`](crate::Server) are this type with their role's state.
/// The methods here are the ones both roles share: see the crate docs for
/// the driving contract.
pub struct Endpoint<B, R> {
    pub(crate) link: Link<B>,
    pub(crate) role: R,
}

impl<B: Buffer, R> Endpoint<B, R> {
    pub(crate) fn from_parts(link: Link<B>, role: R) -> Self {
        Endpoint { link, role }
    }
}

impl<B: Buffer, R: Role> Endpoint<B, R> {
    /// Sizes agreed in the handshake, once the peer's hello arrived.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.link.negotiated
    }

    /// The protocol version both sides speak: 3 or 2 (2 until the peer's
    /// hello arrived).
    pub fn version(&self) -> u16 {
        self.link.negotiated.map_or(2, |n| n.version)
    }

    /// How many requests may be in flight at once (1 until the peer's
    /// hello arrived, and with a version-2 peer).
    pub fn window(&self) -> usize {
        usize::from(self.link.negotiated.map_or(1, |n| n.window))
    }

    /// Whether the connection is over and every queued byte was handed
    /// to the driver: it may close the socket.
    pub fn is_closed(&self) -> bool {
        self.link.is_drained_and_closed()
    }

    /// Body bytes still to send or receive in the transfer in progress.
    pub fn remaining(&self) -> u64 {
        self.role.transfer().map_or(0, Transfer::remaining)
    }

    /// Feeds bytes from the peer; returns how many were taken (fewer
    /// when the input buffer is full: drain `poll_event`, then offer the
    /// rest again). Fails once the connection is closed.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
        self.link.handle_input(now, data)
    }

    /// Free space in the input buffer, to read the socket straight into
    /// (saves a copy); report what was read with [`Self::input_filled`].
    pub fn input_buf(&mut self) -> &mut [u8] {
        self.link.input_buf()
    }

    /// Marks `n` bytes read into [`Self::input_buf`] as received.
    pub fn input_filled(&mut self, now: Instant, n: usize) {
        self.link.input_filled(now, n);
    }

    /// The peer closed the stream. Mid-frame or mid-exchange this
    /// becomes a `Closed(Truncated)` event, otherwise `Closed(Closed)`.
    pub fn handle_eof(&mut self, _now: Instant) {
        self.link.set_eof();
    }

    /// Checks deadlines; call when `poll_timeout`'s instant has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
    }

    /// Copies queued bytes for the peer into `buf`; `None` when nothing
    /// is queued.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.link.poll_transmit(buf)
    }

    /// The queued bytes, to write without a copy; then call
    /// [`Self::transmit_done`] with how many were written.
    pub fn transmit_buf(&self) -> &[u8] {
        self.link.transmit_buf()
    }

    /// Drops `n` bytes written from [`Self::transmit_buf`].
    pub fn transmit_done(&mut self, n: usize) {
        self.link.transmit_done(n);
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link.deadline()
    }

    /// Adds the bytes `0..offset` this side already holds to the
    /// digest, in order and before any body byte, so the MD5 trailer
    /// covers the whole file (resume, either direction).
    pub fn feed_prefix(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(t) = self.role.receiving() {
            return t.feed_prefix(data);
        }
        let t = self.role.sending().ok_or(Error::BadUsage)?;
        t.feed_prefix(data)?;
        self.after_send()
    }

    /// Bytes of the held prefix (`0..offset`) still to pass to
    /// [`Self::feed_prefix`]; 0 outside a transfer, and for a get whose
    /// digest the server vouched for.
    #[must_use]
    pub fn prefix_needed(&self) -> u64 {
        self.role.transfer().map_or(0, Transfer::prefix_needed)
    }

    /// Sends body bytes written in place: `fill` gets room for the next
    /// chunk straight in the output buffer and returns how many bytes it
    /// wrote and a value of its own, handed back. The room is empty when
    /// nothing can go now: the output is full (transmit first), the held
    /// prefix is not fed yet, or no body is being sent. The MD5
    /// trailer follows the last byte by itself. As smoltcp's
    /// `TcpSocket::send`: nothing can be queued between the writing and
    /// the sending, so there is nothing to get wrong.
    ///
    /// ```
    /// # use ferry_core::*;
    /// # fn pump(server: &mut Server<Vec<u8>>, file: &[u8], pos: &mut usize) -> Result<(), Error> {
    /// let sent = server.send_with(|buf| {
    ///     let n = buf.len().min(file.len() - *pos);
    ///     buf[..n].copy_from_slice(&file[*pos..*pos + n]);
    ///     (n, n)
    /// })?;
    /// *pos += sent;
    /// # Ok(()) }
    /// ```
    ///
    /// Fails with [`Error::BadUsage`] if `fill` claims more bytes than it
    /// was given.
    pub fn send_with<T>(&mut self, fill: impl FnOnce(&mut [u8]) -> (usize, T)) -> Result<T, Error> {
        let Some(t) = self.role.sending() else {
            return match fill(&mut []) {
                (0, value) => Ok(value),
                _ => Err(Error::BadUsage),
            };
        };
        let max = match t.prefix_done() {
            true => usize::try_from(t.remaining()).unwrap_or(usize::MAX),
            false => 0,
        };
        let (_, value) =
            self.link
                .write_frame(FrameKind::Data, max, TRAILER_RESERVE, fill, |data| {
                    t.body(data)
                })?;
        self.after_send()?;
        Ok(value)
    }

    /// Sends from `data` (copying); returns how many bytes were taken
    /// (at most one chunk; [`Error::BufferFull`] when nothing fits).
    pub fn send_body(&mut self, data: &[u8]) -> Result<usize, Error> {
        if data.len() as u64 > self.remaining() || self.role.sending().is_none() {
            return Err(Error::BadUsage);
        }
        let n = self.send_with(|buf| {
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            (n, n)
        })?;
        if n == 0 && !data.is_empty() {
            return Err(Error::BufferFull);
        }
        Ok(n)
    }

    /// The peer's hello arrived: the sizes agreed.
    pub(crate) fn on_hello(&mut self) -> Result<Negotiated, Error> {
        if !self.role.hello_received() {
            return Err(Error::UnexpectedFrame);
        }
        self.link.negotiated.ok_or(Error::Internal)
    }

    /// A body frame: counted and hashed, then handed out (`Some`) or
    /// dropped after this side cancelled (`None`).
    pub(crate) fn on_body(&mut self, range: Range<usize>) -> Result<Option<Range<usize>>, Error> {
        if let Some(t) = self.role.receiving() {
            t.body(self.link.payload(range.clone()))?;
            return Ok(Some(range));
        }
        if self.role.discarding() {
            return Ok(None);
        }
        Err(Error::UnexpectedFrame)
    }

    /// Queues the trailer once the body and prefix are complete, then
    /// waits for `Done`.
    pub(crate) fn after_send(&mut self) -> Result<(), Error> {
        let Some(t) = self.role.sending() else {
            return Ok(());
        };
        if !t.complete() {
            return Ok(());
        }
        let sum = t.digest();
        self.link.send_msg(&Brief::Trailer { sum })?;
        self.role.body_sent(sum);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
