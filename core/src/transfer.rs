//! One file body in flight, from either end: byte accounting and the running
//! digest. Client (put, get) and server (get, put) share it, so the rules of
//! `docs/PROTOCOL.md#transfers` live in one place.

use crate::digest::{Algorithm, Hasher, Sum};
use crate::error::Error;

/// A body in flight (crate-internal: public only to appear in the sealed
/// `Role` trait).
#[derive(Debug)]
pub struct Transfer {
    /// Size of the whole file.
    pub size: u64,
    /// Where the body starts (resume offset).
    pub offset: u64,
    /// Prefix bytes fed into the digest so far.
    prefix: u64,
    /// Body bytes moved so far.
    moved: u64,
    hasher: Hasher,
    /// The sender's vouched-for digest of the whole file (see
    /// [`Self::vouch`]); then nothing is hashed here.
    vouched: Option<Sum>,
}

impl Transfer {
    /// Fails with `BadOffset` if `offset` is past `size` (every later
    /// subtraction relies on it), and if `digest` is not compiled in,
    /// which negotiation rules out.
    pub fn new(size: u64, offset: u64, digest: Algorithm) -> Result<Self, Error> {
        if offset > size {
            return Err(Error::BadOffset);
        }
        Ok(Transfer {
            size,
            offset,
            prefix: 0,
            moved: 0,
            hasher: Hasher::new(digest).ok_or(Error::Internal)?,
            vouched: None,
        })
    }

    /// Sender: the whole file's digest is already known (the server kept
    /// the one it verified when the file was stored), so the body is sent
    /// without hashing and the trailer carries `sum`. The receiver still
    /// hashes what it gets, so a stale `sum` is caught there as a mismatch,
    /// never accepted. Ignored unless `sum` uses the negotiated algorithm
    /// and nothing has been hashed yet.
    pub fn vouch(&mut self, sum: Sum) {
        if sum.algorithm() == self.hasher.algorithm() && self.prefix == 0 && self.moved == 0 {
            self.prefix = self.offset;
            self.vouched = Some(sum);
        }
    }

    /// Prefix bytes (`0..offset`) still to feed.
    pub fn prefix_needed(&self) -> u64 {
        self.offset - self.prefix
    }

    /// Whether no body byte has moved yet (a receiver between bodies).
    pub fn untouched(&self) -> bool {
        self.moved == 0
    }

    /// Body bytes still to move.
    pub fn remaining(&self) -> u64 {
        self.size - self.offset - self.moved
    }

    pub fn prefix_done(&self) -> bool {
        self.prefix == self.offset
    }

    /// Adds bytes of the part already held (`0..offset`) to the digest, so the
    /// trailer covers the whole file. Allowed only before any body byte.
    pub fn feed_prefix(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.moved > 0 || data.len() as u64 > self.offset - self.prefix {
            return Err(Error::BadUsage);
        }
        self.hasher.update(data);
        self.prefix += data.len() as u64;
        Ok(())
    }

    /// Accounts for body bytes sent or received.
    pub fn body(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.len() as u64 > self.remaining() {
            return Err(Error::Malformed);
        }
        if self.vouched.is_none() {
            self.hasher.update(data);
        }
        self.moved += data.len() as u64;
        Ok(())
    }

    /// Whether every byte has moved and the digest is complete.
    pub fn complete(&self) -> bool {
        self.remaining() == 0 && self.prefix_done()
    }

    /// The whole file's digest; valid once [`Self::complete`].
    pub fn digest(&self) -> Sum {
        self.vouched.unwrap_or_else(|| self.hasher.finish())
    }

    /// Receiver: checks the trailer. A short body is a protocol error, a
    /// different digest is a mismatch (`Ok(false)`).
    pub fn check_trailer(&self, sum: &Sum) -> Result<bool, Error> {
        if self.remaining() != 0 {
            return Err(Error::Truncated);
        }
        if sum.algorithm() != self.hasher.algorithm() {
            return Err(Error::Malformed);
        }
        // A prefix the driver did not feed makes the digest wrong: report it
        // as a mismatch rather than accept an unchecked file.
        Ok(self.prefix_done() && self.digest() == *sum)
    }
}
