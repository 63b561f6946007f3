//! What both roles share: the caller-owned buffers, the hello, frame
//! splitting, deadlines and closing. [`Client`](crate::Client) and
//! [`Server`](crate::Server) add their own state on top.

use core::ops::Range;

use crate::config::Config;
use crate::digest::{self, Algorithm, Digests, Sum};
use crate::error::Error;
use crate::frame::{self, FrameKind, Hello, HEADER_LEN, HELLO_LEN, VERSION};
use crate::message::{Message, MIN_FRAME};
use crate::time::Instant;

/// Storage a connection can use as its input or output buffer: an array,
/// a `&mut [u8]`, a `Vec<u8>` or a `Box<[u8]>`.
pub trait Buffer: AsRef<[u8]> + AsMut<[u8]> {}
impl<T: AsRef<[u8]> + AsMut<[u8]>> Buffer for T {}

/// The smallest input buffer: one frame of [`MIN_FRAME`] bytes.
pub const MIN_INPUT_BUFFER: usize = HEADER_LEN + MIN_FRAME as usize;
/// The smallest output buffer: the hello and one frame of [`MIN_FRAME`] bytes.
pub const MIN_OUTPUT_BUFFER: usize = HELLO_LEN + HEADER_LEN + MIN_FRAME as usize;

/// Which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Handshake,
    Login,
    Session,
}

/// One unit of input.
pub(crate) enum Incoming {
    Hello,
    Frame(FrameKind, Range<usize>),
}

/// Sizes both sides agreed on in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's hello flags.
    pub peer_flags: u16,
    /// Largest frame payload this side may send.
    pub max_frame: u32,
    /// Body chunk size both sides use.
    pub chunk: u32,
    /// The digest every transfer on this connection uses.
    pub digest: Algorithm,
    /// What the peer offered, in its order (MD5 implied).
    pub peer_digests: Digests,
}

pub(crate) struct Conn<B> {
    inbuf: B,
    in_start: usize,
    in_end: usize,
    /// Bytes of the last frame handed out; dropped at the next call, so an
    /// event can borrow them until then.
    release: usize,
    outbuf: B,
    out_start: usize,
    out_end: usize,
    pub config: Config,
    local: Hello,
    pub negotiated: Option<Negotiated>,
    pub phase: Phase,
    start: Instant,
    last_activity: Instant,
    pub closed: Option<Error>,
    close_reported: bool,
    eof: bool,
    /// A data frame is being written behind `out_end` (between `frame_buf`
    /// and `commit_frame`): nothing may move the buffer meanwhile.
    staged: bool,
    /// The latest `now` the driver passed in. Sending counts as activity
    /// at this time, so a side that only sends (a long put or get) is not
    /// idle.
    now: Instant,
    is_client: bool,
}

impl<B: Buffer> Conn<B> {
    /// `is_client` decides whose digest preference wins.
    pub fn new(
        now: Instant,
        config: Config,
        is_client: bool,
        flags: u16,
        inbuf: B,
        outbuf: B,
    ) -> Result<Self, Error> {
        let in_len = inbuf.as_ref().len();
        let out_len = outbuf.as_ref().len();
        if in_len < MIN_INPUT_BUFFER || out_len < MIN_OUTPUT_BUFFER || config.chunk_size == 0 {
            return Err(Error::BadUsage);
        }
        // Offering a digest this build cannot compute would make the two
        // sides choose differently.
        if config.digests.iter().any(|a| !a.is_available()) {
            return Err(Error::BadUsage);
        }
        let max_frame = u32::try_from(in_len - HEADER_LEN).unwrap_or(u32::MAX);
        let out_room = u32::try_from(out_len - HEADER_LEN).unwrap_or(u32::MAX);
        let local = Hello {
            version: VERSION,
            flags,
            max_frame,
            chunk: config.chunk_size.min(max_frame).min(out_room),
            digests: config.digests,
        };
        let mut conn = Conn {
            inbuf,
            in_start: 0,
            in_end: 0,
            release: 0,
            outbuf,
            out_start: 0,
            out_end: 0,
            config,
            local,
            negotiated: None,
            phase: Phase::Handshake,
            start: now,
            last_activity: now,
            closed: None,
            close_reported: false,
            eof: false,
            staged: false,
            now,
            is_client,
        };
        conn.outbuf.as_mut()[..HELLO_LEN].copy_from_slice(&local.encode());
        conn.out_end = HELLO_LEN;
        Ok(conn)
    }

    fn apply_release(&mut self) {
        self.in_start += self.release;
        self.release = 0;
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
    }

    /// Copies as much of `data` as fits into the input buffer.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.closed {
            return Err(e);
        }
        let room = self.input_buf();
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.input_filled(now, n);
        Ok(n)
    }

    /// Free space at the end of the input buffer, for reading straight into.
    pub fn input_buf(&mut self) -> &mut [u8] {
        self.apply_release();
        let cap = self.inbuf.as_ref().len();
        if self.in_start > 0 && self.in_end == cap {
            self.inbuf
                .as_mut()
                .copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        let end = self.in_end;
        &mut self.inbuf.as_mut()[end..]
    }

    /// Marks `n` bytes written into [`Self::input_buf`] as received.
    pub fn input_filled(&mut self, now: Instant, n: usize) {
        let cap = self.inbuf.as_ref().len();
        self.in_end = (self.in_end + n).min(cap);
        self.now = self.now.max(now);
        if n > 0 {
            self.touch(now);
        }
    }

    /// The peer closed its side of the stream.
    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the peer closed its side while bytes of an incomplete frame
    /// (or of the hello) are still buffered.
    pub fn eof_mid_frame(&self) -> bool {
        self.eof && self.in_end - self.in_start > self.release
    }

    pub fn eof(&self) -> bool {
        self.eof
    }

    /// The next hello or complete frame in the input buffer.
    pub fn next_frame(&mut self) -> Result<Option<Incoming>, Error> {
        self.apply_release();
        let avail = &self.inbuf.as_ref()[self.in_start..self.in_end];
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
                    if u16::from_be_bytes([hi, lo]) != VERSION {
                        return Err(Error::VersionMismatch);
                    }
                }
                return Ok(None);
            };
            let bytes: &[u8; HELLO_LEN] = bytes.try_into().map_err(|_| Error::Internal)?;
            let hello = Hello::decode(bytes)?;
            self.release = HELLO_LEN;
            let max_frame = hello.max_frame.min(self.local.max_frame);
            let out_room = self.outbuf.as_ref().len() - HEADER_LEN;
            let max_frame = max_frame.min(u32::try_from(out_room).unwrap_or(u32::MAX));
            let chunk = hello.chunk.min(self.local.chunk).min(max_frame);
            let digest = if self.is_client {
                let d = digest::choose(self.local.digests, hello.digests);
                // A client whose list leaves MD5 out pinned something better:
                // falling back would silently weaken the check.
                if self.local.digests.pins() && !self.local.digests.lists(d) {
                    return Err(Error::DigestRefused);
                }
                d
            } else {
                digest::choose(hello.digests, self.local.digests)
            };
            self.negotiated = Some(Negotiated {
                peer_flags: hello.flags,
                max_frame,
                chunk,
                digest,
                peer_digests: hello.digests,
            });
            if self.phase == Phase::Handshake {
                self.phase = Phase::Login;
            }
            return Ok(Some(Incoming::Hello));
        }
        let Some(head) = avail.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let head: &[u8; HEADER_LEN] = head.try_into().map_err(|_| Error::Internal)?;
        let (kind, len) = frame::read_header(head, self.local.max_frame)?;
        let total = HEADER_LEN + len as usize;
        if avail.len() < total {
            return Ok(None);
        }
        self.release = total;
        let start = self.in_start + HEADER_LEN;
        Ok(Some(Incoming::Frame(kind, start..start + len as usize)))
    }

    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        self.inbuf.as_ref().get(range).unwrap_or(&[])
    }

    /// The negotiated digest (MD5 before the hello).
    pub fn digest(&self) -> Algorithm {
        self.negotiated.map_or(Algorithm::Md5, |n| n.digest)
    }

    /// Ends a body this side gave up on, so the peer can resync: a trailer
    /// that never verifies.
    pub fn send_resync_trailer(&mut self) -> Result<(), Error> {
        self.send_msg(&Message::Trailer {
            sum: Sum::zero(self.digest()),
        })
    }

    pub fn chunk(&self) -> usize {
        self.negotiated.map_or(0, |n| n.chunk as usize)
    }

    fn max_out(&self) -> usize {
        self.negotiated.map_or(MIN_FRAME, |n| n.max_frame) as usize
    }

    /// Free space at the end of the output buffer, compacting first.
    fn out_room(&mut self) -> usize {
        let cap = self.outbuf.as_ref().len();
        if self.out_start > 0 && !self.staged {
            self.outbuf
                .as_mut()
                .copy_within(self.out_start..self.out_end, 0);
            self.out_end -= self.out_start;
            self.out_start = 0;
        }
        cap - self.out_end
    }

    /// Whether a whole control message surely fits in the output buffer.
    pub fn can_send_msg(&mut self) -> bool {
        self.out_room() >= HEADER_LEN + MIN_FRAME as usize
    }

    /// Queues a control message.
    pub fn send_msg(&mut self, msg: &Message) -> Result<(), Error> {
        if self.closed.is_some() {
            return Err(Error::Closed);
        }
        self.out_room();
        let max = HEADER_LEN + self.max_out();
        let end = self.out_end;
        let out = &mut self.outbuf.as_mut()[end..];
        let limit = out.len().min(max);
        let n = frame::encode_message(msg, &mut out[..limit])?;
        self.out_end += n;
        // The message took the place of any staged chunk.
        self.staged = false;
        self.touch(self.now);
        Ok(())
    }

    /// Space for the payload of one data frame of at most `max` bytes,
    /// leaving `reserve` bytes free behind it.
    pub fn frame_buf(&mut self, max: usize, reserve: usize) -> &mut [u8] {
        // Asking again abandons an earlier staging, so compaction is safe.
        self.staged = false;
        let room = self.out_room().saturating_sub(HEADER_LEN + reserve);
        let n = room.min(max).min(self.chunk());
        // An empty slice stages nothing: left set, the flag would stop
        // compaction, so no reply (not even to a cancel) could be queued
        // until the body ended.
        self.staged = n > 0;
        let start = self.out_end + HEADER_LEN;
        self.outbuf
            .as_mut()
            .get_mut(start..start + n)
            .unwrap_or(&mut [])
    }

    /// The first `n` bytes written into [`Self::frame_buf`]; empty if the
    /// staging was invalidated (a message was queued in between).
    pub fn written_frame(&self, n: usize) -> &[u8] {
        if !self.staged {
            return &[];
        }
        let start = self.out_end + HEADER_LEN;
        self.outbuf.as_ref().get(start..start + n).unwrap_or(&[])
    }

    /// Frames `n` bytes written into [`Self::frame_buf`].
    pub fn commit_frame(&mut self, kind: FrameKind, n: usize) -> Result<(), Error> {
        let cap = self.outbuf.as_ref().len();
        if !self.staged || n > self.chunk() || self.out_end + HEADER_LEN + n > cap {
            return Err(Error::BadUsage);
        }
        self.staged = false;
        self.touch(self.now);
        let end = self.out_end;
        let head: &mut [u8; HEADER_LEN] = (&mut self.outbuf.as_mut()[end..end + HEADER_LEN])
            .try_into()
            .map_err(|_| Error::Internal)?;
        frame::write_header(head, kind, n as u32);
        self.out_end += HEADER_LEN + n;
        Ok(())
    }

    /// Copies up to one chunk of `data` into a frame; returns how much.
    pub fn send_frame(&mut self, kind: FrameKind, data: &[u8]) -> Result<usize, Error> {
        let buf = self.frame_buf(data.len(), 0);
        let n = buf.len();
        if n == 0 && !data.is_empty() {
            return Err(Error::BufferFull);
        }
        buf.copy_from_slice(&data[..n]);
        self.commit_frame(kind, n)?;
        Ok(n)
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    pub fn transmit_buf(&self) -> &[u8] {
        &self.outbuf.as_ref()[self.out_start..self.out_end]
    }

    pub fn transmit_done(&mut self, n: usize) {
        // No reset to zero here: a frame may be half-written behind
        // `out_end`; compaction happens only when room is asked for.
        self.out_start = (self.out_start + n).min(self.out_end);
    }

    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        let pending = self.transmit_buf();
        if pending.is_empty() || buf.is_empty() {
            return None;
        }
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.transmit_done(n);
        Some(n)
    }

    pub fn has_output(&self) -> bool {
        self.out_end > self.out_start
    }

    pub fn deadline(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        match self.phase {
            Phase::Handshake => Some(self.start + self.config.handshake_timeout),
            Phase::Login => Some(self.start + self.config.login_timeout),
            Phase::Session => self.config.idle_timeout.map(|d| self.last_activity + d),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
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
        let _ = self.send_msg(&Message::Error { code: err.code() });
        self.closed = Some(err);
        self.in_start = 0;
        self.in_end = 0;
        self.release = 0;
    }

    /// Closes because the peer reported a fatal error: nothing is sent back.
    pub fn fail_quietly(&mut self, err: Error) {
        if self.closed.is_none() {
            self.closed = Some(err);
            self.in_start = 0;
            self.in_end = 0;
            self.release = 0;
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

/// Methods `Client` and `Server` share word for word: the input and output
/// paths and the sending half of a transfer. Expanded inside each `impl`, so
/// `State` is that role's own state enum (both have `Sending`, `Receiving`
/// `AwaitDone`, `Discarding`, `Handshake`, `LoggedOut`, and a `Step` with
/// `Data`, `Nothing` and `Event`).
macro_rules! endpoint_common {
    () => {
        /// Sizes agreed in the handshake, once the peer's hello arrived.
        pub fn negotiated(&self) -> Option<Negotiated> {
            self.conn.negotiated
        }

        /// Whether the connection is over and every queued byte was handed
        /// to the driver: it may close the socket.
        pub fn is_closed(&self) -> bool {
            self.conn.is_drained_and_closed()
        }

        /// Body bytes still to send or receive in the transfer in progress.
        pub fn remaining(&self) -> u64 {
            match &self.state {
                State::Receiving(t) | State::Sending(t) => t.remaining(),
                _ => 0,
            }
        }

        /// Feeds bytes from the peer; returns how many were taken (fewer
        /// when the input buffer is full: drain `poll_event`, then offer the
        /// rest again). Fails once the connection is closed.
        pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
            self.conn.handle_input(now, data)
        }

        /// Free space in the input buffer, to read the socket straight into
        /// (saves a copy); report what was read with [`Self::input_filled`].
        pub fn input_buf(&mut self) -> &mut [u8] {
            self.conn.input_buf()
        }

        /// Marks `n` bytes read into [`Self::input_buf`] as received.
        pub fn input_filled(&mut self, now: Instant, n: usize) {
            self.conn.input_filled(now, n);
        }

        /// The peer closed the stream. Mid-frame or mid-exchange this
        /// becomes a `Closed(Truncated)` event, otherwise `Closed(Closed)`.
        pub fn handle_eof(&mut self, _now: Instant) {
            self.conn.set_eof();
        }

        /// Checks deadlines; call when `poll_timeout`'s instant has come.
        pub fn handle_timeout(&mut self, now: Instant) {
            self.conn.handle_timeout(now);
        }

        /// Copies queued bytes for the peer into `buf`; `None` when nothing
        /// is queued.
        #[must_use]
        pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
            self.conn.poll_transmit(buf)
        }

        /// The queued bytes, to write without a copy; then call
        /// [`Self::transmit_done`] with how many were written.
        pub fn transmit_buf(&self) -> &[u8] {
            self.conn.transmit_buf()
        }

        /// Drops `n` bytes written from [`Self::transmit_buf`].
        pub fn transmit_done(&mut self, n: usize) {
            self.conn.transmit_done(n);
        }

        /// The next deadline, if any.
        #[must_use]
        pub fn poll_timeout(&self) -> Option<Instant> {
            self.conn.deadline()
        }

        /// Adds the bytes `0..offset` this side already holds to the
        /// digest, in order and before any body byte, so the MD5 trailer
        /// covers the whole file (resume, either direction).
        pub fn feed_prefix(&mut self, data: &[u8]) -> Result<(), Error> {
            match &mut self.state {
                State::Receiving(t) => t.feed_prefix(data),
                State::Sending(t) => {
                    t.feed_prefix(data)?;
                    self.after_send(false)
                }
                _ => Err(Error::BadUsage),
            }
        }

        /// Bytes of the held prefix (`0..offset`) still to pass to
        /// [`Self::feed_prefix`]; 0 outside a transfer, and for a get whose
        /// digest the server vouched for.
        #[must_use]
        pub fn prefix_needed(&self) -> u64 {
            match &self.state {
                State::Receiving(t) | State::Sending(t) => t.prefix_needed(),
                _ => 0,
            }
        }

        /// Space for the next body chunk, straight in the output buffer
        /// (empty when it is full: transmit first). Write into it, then
        /// [`Self::commit_send`].
        pub fn send_buffer(&mut self) -> &mut [u8] {
            match &mut self.state {
                State::Sending(t) => crate::transfer::Sender {
                    conn: &mut self.conn,
                    transfer: t,
                }
                .buffer(),
                _ => &mut [],
            }
        }

        /// Sends `n` bytes written into [`Self::send_buffer`]. The MD5
        /// trailer follows the last byte by itself.
        pub fn commit_send(&mut self, n: usize) -> Result<(), Error> {
            let State::Sending(t) = &mut self.state else {
                return Err(Error::BadUsage);
            };
            let done = crate::transfer::Sender {
                conn: &mut self.conn,
                transfer: t,
            }
            .commit(n)?;
            self.after_send(done)
        }

        /// Sends from `data` (copying); returns how many bytes were taken
        /// (at most one chunk).
        pub fn send_body(&mut self, data: &[u8]) -> Result<usize, Error> {
            let State::Sending(t) = &mut self.state else {
                return Err(Error::BadUsage);
            };
            let (n, done) = crate::transfer::Sender {
                conn: &mut self.conn,
                transfer: t,
            }
            .send(data)?;
            self.after_send(done)?;
            Ok(n)
        }

        /// The peer's hello arrived.
        fn on_hello(&mut self) -> Result<Step, Error> {
            if !matches!(self.state, State::Handshake) {
                return Err(Error::UnexpectedFrame);
            }
            self.state = State::LoggedOut;
            let n = self.conn.negotiated.ok_or(Error::Internal)?;
            Ok(Step::Event(Event::Connected(n)))
        }

        /// A body frame: counted and hashed, then handed out (or dropped
        /// after this side cancelled).
        fn on_body(&mut self, range: core::ops::Range<usize>) -> Result<Step, Error> {
            match &mut self.state {
                State::Receiving(t) => {
                    t.body(self.conn.payload(range.clone()))?;
                    Ok(Step::Data(range))
                }
                State::Discarding => Ok(Step::Nothing),
                _ => Err(Error::UnexpectedFrame),
            }
        }

        /// Moves on to waiting for `Done` once the trailer is queued.
        fn after_send(&mut self, trailer_sent: bool) -> Result<(), Error> {
            let mut done = trailer_sent;
            if let (false, State::Sending(t)) = (done, &mut self.state) {
                done = crate::transfer::Sender {
                    conn: &mut self.conn,
                    transfer: t,
                }
                .finish_if_complete()?;
            }
            if done {
                let State::Sending(t) = &self.state else {
                    return Err(Error::Internal);
                };
                self.state = State::AwaitDone(t.digest());
            }
            Ok(())
        }
    };
}
pub(crate) use endpoint_common;

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn<[u8; 2048]> {
        let mut c = Conn::new(
            Instant::ZERO,
            Config::default(),
            true,
            0,
            [0u8; 2048],
            [0u8; 2048],
        )
        .unwrap();
        c.negotiated = Some(Negotiated {
            peer_flags: 0,
            max_frame: 1024,
            chunk: 512,
            digest: Algorithm::Md5,
            peer_digests: Digests::MD5_ONLY,
        });
        c
    }

    #[test]
    fn a_message_queued_while_a_chunk_is_staged_invalidates_it() {
        let mut c = conn();
        let buf = c.frame_buf(100, 0);
        buf[..3].copy_from_slice(b"abc");
        c.send_msg(&Message::Ok).unwrap();
        assert_eq!(c.written_frame(3), b"");
        assert_eq!(c.commit_frame(FrameKind::Data, 3), Err(Error::BadUsage));
    }

    #[test]
    fn nothing_moves_a_staged_chunk() {
        let mut c = conn();
        // Some output, partly transmitted, so compaction would move bytes.
        let n = c.send_frame(FrameKind::Data, &[7u8; 300]).unwrap();
        assert_eq!(n, 300);
        c.transmit_done(100);
        let buf = c.frame_buf(10, 0);
        buf.copy_from_slice(b"0123456789");
        assert!(c.can_send_msg() || !c.can_send_msg()); // asks for room: must not compact
        assert_eq!(c.written_frame(10), b"0123456789");
        c.commit_frame(FrameKind::Data, 10).unwrap();
        let out = c.transmit_buf();
        assert_eq!(&out[out.len() - 10..], b"0123456789");
    }

    #[test]
    fn a_full_buffer_stages_nothing_so_a_reply_fits_once_transmitted() {
        let mut c = conn();
        // Fill the output buffer with body frames, as a get's pump does,
        // until no chunk fits: that last, empty ask stages nothing.
        while !c.frame_buf(512, 0).is_empty() {
            c.commit_frame(FrameKind::Data, 1).unwrap();
        }
        // Everything goes out; room for a reply (a cancel's trailer) must
        // come back without another chunk being asked for.
        c.transmit_done(usize::MAX);
        assert!(c.can_send_msg());
    }

    #[test]
    fn sending_counts_as_activity_for_the_idle_timer() {
        let mut c = conn();
        c.phase = Phase::Session;
        let idle = c.config.idle_timeout.unwrap().as_millis() as u64;
        let mut now = 0;
        for _ in 0..5 {
            now += idle - 1;
            c.handle_timeout(Instant::from_millis(now));
            assert!(c.closed.is_none());
            c.send_frame(FrameKind::Data, b"x").unwrap();
            c.transmit_done(usize::MAX);
        }
        c.handle_timeout(Instant::from_millis(now + idle));
        assert_eq!(c.closed, Some(Error::Timeout));
    }
}
