//! The caller-owned input and output buffers of an endpoint: where peer
//! bytes wait to become whole frames, and where frames wait to be
//! transmitted. Nothing here knows the protocol's states.

use core::ops::Range;

use serde::Serialize;

use crate::error::Error;
use crate::frame::{self, FrameKind, HEADER_LEN};

/// Storage an endpoint can use as its input or output buffer: an array,
/// a `&mut [u8]`, a `Vec<u8>` or a `Box<[u8]>`.
pub trait Buffer: AsRef<[u8]> + AsMut<[u8]> {}
impl<T: AsRef<[u8]> + AsMut<[u8]>> Buffer for T {}

/// Bytes from the peer: `start..end` is unread, and the first `release`
/// of them belong to the frame last handed out, dropped at the next call
/// so an event can borrow them until then.
pub(crate) struct Input<B> {
    buf: B,
    start: usize,
    end: usize,
    release: usize,
    eof: bool,
}

impl<B: Buffer> Input<B> {
    pub fn new(buf: B) -> Self {
        Input {
            buf,
            start: 0,
            end: 0,
            release: 0,
            eof: false,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Drops the frame last handed out.
    fn apply_release(&mut self) {
        self.start += self.release;
        self.release = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space at the end, compacting first when the end is reached.
    pub fn room(&mut self) -> &mut [u8] {
        self.apply_release();
        let cap = self.capacity();
        if self.start > 0 && self.end == cap {
            self.buf.as_mut().copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        &mut self.buf.as_mut()[end..]
    }

    /// Marks `n` bytes written into [`Self::room`] as received.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.capacity());
    }

    /// The unread bytes, after dropping the frame last handed out, and
    /// where they start in the buffer.
    pub fn unread(&mut self) -> (usize, &[u8]) {
        self.apply_release();
        (self.start, &self.buf.as_ref()[self.start..self.end])
    }

    /// Hands out the next `n` unread bytes: they stay readable through
    /// [`Self::payload`] until the next call.
    pub fn take(&mut self, n: usize) {
        self.release = n;
    }

    /// Bytes of the buffer, by position; empty if out of range.
    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        self.buf.as_ref().get(range).unwrap_or(&[])
    }

    /// Drops everything buffered (the endpoint closed).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.release = 0;
    }

    /// Empty and open again, for a new connection in the same buffer.
    pub fn reset(&mut self) {
        self.clear();
        self.eof = false;
    }

    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Whether the peer closed its side while bytes of an incomplete frame
    /// (or of the hello) are still buffered.
    pub fn eof_mid_frame(&self) -> bool {
        self.eof && self.end - self.start > self.release
    }
}

/// Bytes for the peer: `start..end` is queued. Frames are always written
/// whole, so compaction may run whenever room is asked for.
pub(crate) struct Output<B> {
    buf: B,
    start: usize,
    end: usize,
}

impl<B: Buffer> Output<B> {
    pub fn new(buf: B) -> Self {
        Output {
            buf,
            start: 0,
            end: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Empty, for a new connection in the same buffer.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Free space at the end, compacting first.
    pub fn room(&mut self) -> usize {
        if self.start > 0 {
            self.buf.as_mut().copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.capacity() - self.end
    }

    /// Queues raw bytes (the hello); they must fit.
    pub fn push_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.room();
        let end = self.end;
        let dst = self
            .buf
            .as_mut()
            .get_mut(end..end + bytes.len())
            .ok_or(Error::Internal)?;
        dst.copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    /// Queues a control message as one frame of at most `max_frame`
    /// payload bytes.
    pub fn push_message<M: Serialize>(&mut self, msg: &M, max_frame: usize) -> Result<(), Error> {
        self.room();
        let end = self.end;
        let out = &mut self.buf.as_mut()[end..];
        let limit = out.len().min(HEADER_LEN + max_frame);
        let n = frame::encode_message(msg, &mut out[..limit])?;
        self.end += n;
        Ok(())
    }

    /// Where the payload of the next frame goes, and how long it may be:
    /// at most `max` bytes, leaving `reserve` bytes free behind it.
    pub fn frame_space(&mut self, max: usize, reserve: usize) -> Range<usize> {
        let room = self.room().saturating_sub(HEADER_LEN + reserve);
        let start = self.end + HEADER_LEN;
        start..start + room.min(max)
    }

    /// The payload space of [`Self::frame_space`], to write into.
    pub fn space_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        self.buf.as_mut().get_mut(range).unwrap_or(&mut [])
    }

    /// The payload space of [`Self::frame_space`], as written.
    pub fn space(&self, range: Range<usize>) -> &[u8] {
        self.buf.as_ref().get(range).unwrap_or(&[])
    }

    /// Frames `n` payload bytes already written behind the queue, at the
    /// start of [`Self::frame_space`].
    pub fn commit_frame(&mut self, kind: FrameKind, n: usize) -> Result<(), Error> {
        let end = self.end;
        let len = u32::try_from(n).map_err(|_| Error::Internal)?;
        if end + HEADER_LEN + n > self.capacity() {
            return Err(Error::Internal);
        }
        let head: &mut [u8; HEADER_LEN] = (&mut self.buf.as_mut()[end..end + HEADER_LEN])
            .try_into()
            .map_err(|_| Error::Internal)?;
        frame::write_header(head, kind, len);
        self.end += HEADER_LEN + n;
        Ok(())
    }

    /// The queued bytes.
    pub fn pending(&self) -> &[u8] {
        &self.buf.as_ref()[self.start..self.end]
    }

    /// Drops `n` transmitted bytes. Compaction waits until room is asked
    /// for, so a queue drained in pieces is not moved each time.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Copies queued bytes into `buf`; `None` when nothing is queued.
    pub fn poll(&mut self, buf: &mut [u8]) -> Option<usize> {
        let pending = self.pending();
        if pending.is_empty() || buf.is_empty() {
            return None;
        }
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.consume(n);
        Some(n)
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}
