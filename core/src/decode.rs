//! Control messages decoded from their postcard bytes by hand.
//!
//! The wire form is postcard's (`docs/PROTOCOL.md#messages`), and
//! [`crate::frame::encode_message`] still writes it through serde. Reading
//! it through serde cost a device more stack than everything else it does:
//! serde's visitors build every string in a local, wrap it in an `Option`
//! and move it up a layer at a time, so decoding one 960-byte echo text
//! took 6.4 KB of stack on a Cortex-M4 (`-Z emit-stack-sizes`: the
//! decoder's frame 3 432 B, `next_element` 1 960 B, the string's visitor
//! 984 B), the deepest chain in the serial firmware. Here each string is
//! copied once, from the frame into the message.
//!
//! What is accepted is exactly what postcard accepts, byte for byte:
//! varints up to their type's width (a non-canonical one included), a
//! `bool` of 0 or 1, an `Option` tag of 0 or 1, UTF-8 strings within
//! their bound, no trailing bytes. `core/tests/it/decode.rs` holds the two
//! decoders to that on every message and on arbitrary bytes.

use heapless::String;

use crate::digest::{Algorithm, Sum};
use crate::error::Error;
use crate::message::{Entry, Kind, Message, Overwrite, Path, Request};

/// Decodes a whole message payload; anything else (trailing bytes, an
/// unknown tag, a string over its bound) is [`Error::Malformed`].
pub(crate) fn message(payload: &[u8]) -> Result<Message, Error> {
    let mut r = Reader(payload);
    let msg = r.message()?;
    if !r.0.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(msg)
}

/// The unread rest of a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.0.len() {
            return Err(Error::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    /// A LEB128 varint of a `BITS`-bit integer, as postcard reads it: at
    /// most `ceil(BITS / 7)` bytes, the last of them holding only the
    /// bits left.
    fn varint<const BITS: u32>(&mut self) -> Result<u64, Error> {
        let bytes = BITS.div_ceil(7);
        let last_max = (1u8 << (BITS % 7)) - 1;
        let mut out = 0u64;
        for i in 0..bytes {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == bytes - 1 && b > last_max {
                    break;
                }
                return Ok(out);
            }
        }
        Err(Error::Malformed)
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(self.varint::<16>()? as u16)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(self.varint::<32>()? as u32)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        self.varint::<64>()
    }

    /// Zigzag, as postcard writes signed integers.
    fn i32(&mut self) -> Result<i32, Error> {
        let z = self.u32()?;
        Ok((z >> 1) as i32 ^ -((z & 1) as i32))
    }

    /// A length: postcard's `usize`, as wide as this target's.
    fn len(&mut self) -> Result<usize, Error> {
        let n = self.varint::<{ usize::BITS }>()?;
        usize::try_from(n).map_err(|_| Error::Malformed)
    }

    /// A 0/1 tag (a `bool`, or an `Option`'s).
    fn flag(&mut self) -> Result<bool, Error> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Malformed),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.len()?;
        self.take(n)
    }

    fn string<const N: usize>(&mut self) -> Result<String<N>, Error> {
        let s = core::str::from_utf8(self.bytes()?).map_err(|_| Error::Malformed)?;
        let mut out = String::new();
        out.push_str(s).map_err(|_| Error::Malformed)?;
        Ok(out)
    }

    fn path(&mut self) -> Result<Path, Error> {
        self.string()
    }

    fn sum(&mut self) -> Result<Sum, Error> {
        let algorithm = Algorithm::from_id(self.byte()?).ok_or(Error::Malformed)?;
        Sum::new(algorithm, self.bytes()?).ok_or(Error::Malformed)
    }

    fn entry(&mut self) -> Result<Entry, Error> {
        Ok(Entry {
            name: self.string()?,
            kind: match self.u32()? {
                0 => Kind::File,
                1 => Kind::Dir,
                2 => Kind::Symlink,
                3 => Kind::Other,
                _ => return Err(Error::Malformed),
            },
            size: self.u64()?,
            modified: self.u64()?,
            mode: self.u32()?,
        })
    }

    fn request(&mut self) -> Result<Request, Error> {
        Ok(match self.u32()? {
            0 => Request::Get { path: self.path()? },
            1 => Request::Put {
                path: self.path()?,
                size: self.u64()?,
                overwrite: match self.u32()? {
                    0 => Overwrite::Fail,
                    1 => Overwrite::KeepBoth,
                    2 => Overwrite::Replace,
                    _ => return Err(Error::Malformed),
                },
                resume: self.flag()?,
            },
            2 => Request::List { path: self.path()? },
            3 => Request::Stat { path: self.path()? },
            4 => Request::Cd { path: self.path()? },
            5 => Request::Pwd,
            6 => Request::Mkdir { path: self.path()? },
            7 => Request::Remove { path: self.path()? },
            8 => Request::Rename {
                from: self.path()?,
                to: self.path()?,
            },
            9 => Request::Exec {
                command: self.string()?,
            },
            10 => Request::Digest { path: self.path()? },
            11 => Request::RenameReplace {
                from: self.path()?,
                to: self.path()?,
            },
            _ => return Err(Error::Malformed),
        })
    }

    /// The tags are [`Message`]'s variant order.
    fn message(&mut self) -> Result<Message, Error> {
        Ok(match self.u32()? {
            0 => Message::Anonymous,
            1 => Message::ClientFirst(self.string()?),
            2 => Message::ServerFirst(self.string()?),
            3 => Message::ClientFinal(self.string()?),
            4 => Message::ServerFinal(self.string()?),
            5 => Message::LoginOk,
            6 => Message::Echo {
                text: self.string()?,
                upper: self.flag()?,
            },
            7 => Message::EchoReply(self.string()?),
            8 => Message::Request(self.request()?),
            9 => Message::Ok,
            10 => Message::Cwd(self.path()?),
            11 => Message::Entry(self.entry()?),
            12 => Message::ListEnd { count: self.u32()? },
            13 => Message::Offer { size: self.u64()? },
            14 => Message::Accept {
                offset: self.u64()?,
                name: match self.flag()? {
                    true => Some(self.path()?),
                    false => None,
                },
            },
            15 => Message::Trailer { sum: self.sum()? },
            16 => Message::Done {
                verified: self.flag()?,
            },
            17 => Message::ExecEnd {
                status: self.i32()?,
                no_output: self.flag()?,
            },
            18 => Message::Error { code: self.u16()? },
            19 => Message::Sum(self.sum()?),
            20 => Message::Refuse { code: self.u16()? },
            21 => Message::Retry {
                code: self.u16()?,
                seconds: self.u32()?,
            },
            _ => return Err(Error::Malformed),
        })
    }
}
