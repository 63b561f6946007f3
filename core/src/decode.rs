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
use crate::message::{Entry, Kind, Message, Overwrite, Path, Request, ScramText, Text};

/// Decodes a whole message payload; anything else (trailing bytes, an
/// unknown tag, a string over its bound) is [`Error::Malformed`].
pub(crate) fn message(payload: &[u8]) -> Result<Message, Error> {
    let mut msg = Message::Ok;
    message_into(payload, &mut msg)?;
    Ok(msg)
}

/// Decodes a whole message payload into `out`, in place: the way a
/// device decodes, with one message's room and no copies of it. On an
/// error `out` holds some message, not a meaningful one.
pub(crate) fn message_into(payload: &[u8], out: &mut Message) -> Result<(), Error> {
    let mut r = Reader(payload);
    r.message_into(out)?;
    if !r.0.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(())
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

    /// The next string, into `dst` (whatever it held is replaced).
    fn string_into<const N: usize>(&mut self, dst: &mut String<N>) -> Result<(), Error> {
        let s = core::str::from_utf8(self.bytes()?).map_err(|_| Error::Malformed)?;
        dst.clear();
        dst.push_str(s).map_err(|_| Error::Malformed)
    }

    fn sum(&mut self) -> Result<Sum, Error> {
        let algorithm = Algorithm::from_id(self.byte()?).ok_or(Error::Malformed)?;
        Sum::new(algorithm, self.bytes()?).ok_or(Error::Malformed)
    }

    fn kind(&mut self) -> Result<Kind, Error> {
        Ok(match self.u32()? {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            3 => Kind::Other,
            _ => return Err(Error::Malformed),
        })
    }

    fn overwrite(&mut self) -> Result<Overwrite, Error> {
        Ok(match self.u32()? {
            0 => Overwrite::Fail,
            1 => Overwrite::KeepBoth,
            2 => Overwrite::Replace,
            _ => return Err(Error::Malformed),
        })
    }

    /// Each variant is set with empty strings, then its strings are
    /// copied in where they lie: built whole and then moved, a request
    /// was a ~1 KB temporary per layer.
    fn request_into(&mut self, out: &mut Request) -> Result<(), Error> {
        let p = Path::new;
        match self.u32()? {
            0 => *out = Request::Get { path: p() },
            1 => {
                *out = Request::Put {
                    path: p(),
                    size: 0,
                    overwrite: Overwrite::Fail,
                    resume: false,
                }
            }
            2 => *out = Request::List { path: p() },
            3 => *out = Request::Stat { path: p() },
            4 => *out = Request::Cd { path: p() },
            5 => *out = Request::Pwd,
            6 => *out = Request::Mkdir { path: p() },
            7 => *out = Request::Remove { path: p() },
            8 => *out = Request::Rename { from: p(), to: p() },
            9 => {
                *out = Request::Exec {
                    command: String::new(),
                }
            }
            10 => *out = Request::Digest { path: p() },
            11 => *out = Request::RenameReplace { from: p(), to: p() },
            _ => return Err(Error::Malformed),
        }
        match out {
            Request::Get { path }
            | Request::List { path }
            | Request::Stat { path }
            | Request::Cd { path }
            | Request::Mkdir { path }
            | Request::Remove { path }
            | Request::Digest { path } => self.string_into(path),
            Request::Put {
                path,
                size,
                overwrite,
                resume,
            } => {
                self.string_into(path)?;
                *size = self.u64()?;
                *overwrite = self.overwrite()?;
                *resume = self.flag()?;
                Ok(())
            }
            Request::Rename { from, to } | Request::RenameReplace { from, to } => {
                self.string_into(from)?;
                self.string_into(to)
            }
            Request::Exec { command } => self.string_into(command),
            Request::Pwd => Ok(()),
        }
    }

    /// The tags are [`Message`]'s variant order. As for requests, the
    /// variant is set first and its strings copied in after.
    fn message_into(&mut self, out: &mut Message) -> Result<(), Error> {
        let scram = ScramText::new;
        let text = Text::new;
        *out = match self.u32()? {
            0 => Message::Anonymous,
            1 => Message::ClientFirst(scram()),
            2 => Message::ServerFirst(scram()),
            3 => Message::ClientFinal(scram()),
            4 => Message::ServerFinal(scram()),
            5 => Message::LoginOk,
            6 => Message::Echo {
                text: text(),
                upper: false,
            },
            7 => Message::EchoReply(text()),
            8 => Message::Request(Request::Pwd),
            9 => Message::Ok,
            10 => Message::Cwd(Path::new()),
            11 => Message::Entry(Entry {
                name: String::new(),
                kind: Kind::File,
                size: 0,
                modified: 0,
                mode: 0,
            }),
            12 => Message::ListEnd { count: self.u32()? },
            13 => Message::Offer { size: self.u64()? },
            14 => Message::Accept {
                offset: self.u64()?,
                name: None,
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
            22 => Message::GetAgreed {
                path: Path::new(),
                offset: 0,
                max: 0,
            },
            23 => Message::PutAgreed {
                path: Path::new(),
                size: 0,
                overwrite: Overwrite::Fail,
            },
            _ => return Err(Error::Malformed),
        };
        match out {
            Message::ClientFirst(s)
            | Message::ServerFirst(s)
            | Message::ClientFinal(s)
            | Message::ServerFinal(s) => self.string_into(s),
            Message::Echo { text, upper } => {
                self.string_into(text)?;
                *upper = self.flag()?;
                Ok(())
            }
            Message::EchoReply(text) => self.string_into(text),
            Message::Request(req) => self.request_into(req),
            Message::Cwd(path) => self.string_into(path),
            Message::Entry(e) => {
                self.string_into(&mut e.name)?;
                e.kind = self.kind()?;
                e.size = self.u64()?;
                e.modified = self.u64()?;
                e.mode = self.u32()?;
                Ok(())
            }
            Message::GetAgreed { path, offset, max } => {
                self.string_into(path)?;
                *offset = self.u64()?;
                *max = self.u64()?;
                Ok(())
            }
            Message::PutAgreed {
                path,
                size,
                overwrite,
            } => {
                self.string_into(path)?;
                *size = self.u64()?;
                *overwrite = self.overwrite()?;
                Ok(())
            }
            Message::Accept { name, .. } => {
                if self.flag()? {
                    let mut path = Path::new();
                    self.string_into(&mut path)?;
                    *name = Some(path);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    /// A 32-bit target reads lengths as `varint::<32>` (postcard's `usize`
    /// there is its `u32`), which a 64-bit host's message tests never use:
    /// held to postcard's `u32` here, on the edge cases of its width.
    #[test]
    fn a_32_bit_varint_is_postcards_u32() {
        let cases: [&[u8]; 9] = [
            &[0x00],
            &[0x7f],
            &[0x80, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
            &[0x80, 0x80, 0x80, 0x80, 0x00],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0x80, 0x80],
            &[],
        ];
        for bytes in cases {
            let ours = Reader(bytes).varint::<32>().ok();
            let postcard = postcard::take_from_bytes::<u32>(bytes)
                .ok()
                .map(|(v, _)| u64::from(v));
            assert_eq!(ours, postcard, "{bytes:02x?}");
        }
    }
}
