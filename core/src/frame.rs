//! The byte layout on the wire: the hello that opens each direction, then
//! length-prefixed frames.
//!
//! A frame is `kind: u8, len: u32 big-endian, payload: [u8; len]`. The length
//! prefix is what kills "sticky packets": the reader never guesses where one
//! send ends and the next begins. Layout: `docs/PROTOCOL.md#frames`.

use serde::Serialize;

use crate::digest::Digests;
use crate::error::Error;
use crate::message::{Message, MIN_FRAME};

/// Magic bytes opening every Ferry stream.
pub const MAGIC: [u8; 4] = *b"FRRY";
/// The protocol version this crate speaks (2 added the digest list).
pub const VERSION: u16 = 2;
/// Size of the hello on the wire.
pub const HELLO_LEN: usize = 20;
/// Size of a frame header on the wire.
pub const HEADER_LEN: usize = 5;

/// Hello flag: the server accepts anonymous logins.
pub const FLAG_ANONYMOUS: u16 = 1 << 0;
/// Hello flag: the server runs `exec` requests.
pub const FLAG_EXEC: u16 = 1 << 1;
/// Hello flag: the server refuses writes.
pub const FLAG_READ_ONLY: u16 = 1 << 2;
/// Hello flag, either side: this side speaks protocol version 3
/// (pipelined requests, `Refuse`, `Retry`), and the flags' bits 4–15
/// ([`WINDOW_SHIFT`]) hold its window minus one. The hello's version
/// field stays 2: version-2 peers refuse any other value, and ignore
/// flags they do not know, so a version-3 side talks to them unchanged
/// (`docs/PROTOCOL.md#versions`).
pub const FLAG_V3: u16 = 1 << 3;
/// Where a version-3 hello keeps its window minus one (bits 4–15).
pub const WINDOW_SHIFT: u16 = 4;
/// The largest window a hello can state.
pub const MAX_WINDOW: usize = 4096;
/// Not a digest: an id a version-3 server with a window above 1 lists in
/// its hello's digest slots to say it takes pre-agreed transfers,
/// [`Message::GetAgreed`] and [`Message::PutAgreed`]
/// (`docs/PROTOCOL.md#pre-agreed-gets`, `#pre-agreed-puts`). Every flag
/// bit is taken, and peers skip digest ids they do not know, so an older
/// client reads this hello as before and never sends either message.
///
/// [`Message::GetAgreed`]: crate::message::Message::GetAgreed
/// [`Message::PutAgreed`]: crate::message::Message::PutAgreed
pub const AGREED: u8 = 0x80;

/// What each side announces before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// `FLAG_*` bits (meaningful from the server).
    pub flags: u16,
    /// Largest frame payload this side accepts.
    pub max_frame: u32,
    /// Body chunk size this side prefers.
    pub chunk: u32,
    /// Digests this side supports, in preference order (MD5 implied).
    pub digests: Digests,
}

impl Hello {
    /// Serializes to the [`HELLO_LEN`] wire bytes.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.max_frame.to_be_bytes());
        b[12..16].copy_from_slice(&self.chunk.to_be_bytes());
        b[16..20].copy_from_slice(&self.digests.to_bytes());
        b
    }

    /// Parses the [`HELLO_LEN`] wire bytes, checking magic, version and
    /// sizes. Digest ids this version does not know are kept, never chosen.
    pub fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, Error> {
        if b[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let hello = Hello {
            version: u16::from_be_bytes([b[4], b[5]]),
            flags: u16::from_be_bytes([b[6], b[7]]),
            max_frame: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            chunk: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            digests: Digests::from_bytes([b[16], b[17], b[18], b[19]]),
        };
        if hello.version != VERSION {
            return Err(Error::VersionMismatch);
        }
        if hello.max_frame < MIN_FRAME || hello.chunk == 0 {
            return Err(Error::Unsupported);
        }
        Ok(hello)
    }
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A postcard-encoded [`Message`].
    Msg = 1,
    /// File body bytes.
    Data = 2,
    /// Exec standard output.
    Stdout = 3,
    /// Exec standard error.
    Stderr = 4,
}

impl FrameKind {
    /// The kind for a wire byte.
    pub fn from_byte(b: u8) -> Result<FrameKind, Error> {
        Ok(match b {
            1 => FrameKind::Msg,
            2 => FrameKind::Data,
            3 => FrameKind::Stdout,
            4 => FrameKind::Stderr,
            _ => return Err(Error::Malformed),
        })
    }
}

/// Writes a frame header.
pub fn write_header(out: &mut [u8; HEADER_LEN], kind: FrameKind, len: u32) {
    out[0] = kind as u8;
    out[1..5].copy_from_slice(&len.to_be_bytes());
}

/// Reads a frame header, rejecting unknown kinds and payloads above `max`.
pub fn read_header(b: &[u8; HEADER_LEN], max: u32) -> Result<(FrameKind, u32), Error> {
    let kind = FrameKind::from_byte(b[0])?;
    let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
    if len > max {
        return Err(Error::FrameTooLarge);
    }
    Ok((kind, len))
}

/// Encodes `msg` (a [`Message`], or a [`Brief`](crate::brief::Brief)) as
/// a whole frame at the start of `out`; returns the frame's length, or
/// `BufferFull` if it does not fit.
pub fn encode_message<M: Serialize>(msg: &M, out: &mut [u8]) -> Result<usize, Error> {
    if out.len() < HEADER_LEN {
        return Err(Error::BufferFull);
    }
    let (head, body) = out.split_at_mut(HEADER_LEN);
    let n = encode_payload(msg, body)?;
    let len = u32::try_from(n).map_err(|_| Error::Internal)?;
    let head: &mut [u8; HEADER_LEN] = head.try_into().map_err(|_| Error::Internal)?;
    write_header(head, FrameKind::Msg, len);
    Ok(HEADER_LEN + n)
}

fn encode_payload<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize, Error> {
    postcard::to_slice(value, out)
        .map(|s| s.len())
        .map_err(|_| Error::BufferFull)
}

/// Decodes a message payload; trailing bytes are an error. By hand, not
/// through serde, for the stack's sake (`crate::decode`).
pub fn decode_message(payload: &[u8]) -> Result<Message, Error> {
    crate::decode::message(payload)
}
