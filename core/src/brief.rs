//! Control messages written without building a [`Message`]: the short
//! ones, and those whose strings can be borrowed.
//!
//! A `Message` is 976 bytes, whatever its variant: its texts are inline
//! (`heapless`), so `send_msg(&Message::Error { code })` keeps a 976-byte
//! temporary in the caller's stack frame, and a chain of such callers
//! (a failed login that closes the connection) stacked one per call on a
//! Cortex-M4 (`-Z emit-stack-sizes`, embedded-demo/firmware-serial). A
//! [`Brief`] is at most 40 bytes, borrows its strings, and encodes to the
//! very bytes its `Message` twin does (`core/tests/it/decode.rs` checks
//! each, through [`Brief::twin`]). Its strings are the caller's to keep
//! within their bounds, as the receiver checks them.

use serde::ser::{Serialize, SerializeTuple, Serializer};

use crate::digest::Sum;
use crate::error::Error;
use crate::message::{bounded, Entry, Message};

/// A message as its [`Message`] variant's fields, strings borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brief<'a> {
    /// [`Message::ServerFirst`].
    ServerFirst(&'a str),
    /// [`Message::ServerFinal`].
    ServerFinal(&'a str),
    /// [`Message::EchoReply`].
    EchoReply(&'a str),
    /// [`Message::Cwd`].
    Cwd(&'a str),
    /// [`Message::Entry`].
    Entry(&'a Entry),
    /// [`Message::Sum`].
    Sum(Sum),
    /// [`Message::LoginOk`].
    LoginOk,
    /// [`Message::Ok`].
    Ok,
    /// [`Message::ListEnd`].
    ListEnd {
        /// Entries sent.
        count: u32,
    },
    /// [`Message::Offer`].
    Offer {
        /// Size in bytes.
        size: u64,
    },
    /// [`Message::Accept`].
    Accept {
        /// Resume offset.
        offset: u64,
        /// The name a put is stored under, if not the one asked for.
        name: Option<&'a str>,
    },
    /// [`Message::Trailer`].
    Trailer {
        /// The digest.
        sum: Sum,
    },
    /// [`Message::Done`].
    Done {
        /// Whether the digest matched.
        verified: bool,
    },
    /// [`Message::ExecEnd`].
    ExecEnd {
        /// Exit status.
        status: i32,
        /// True if it printed nothing.
        no_output: bool,
    },
    /// [`Message::Error`].
    Error {
        /// The error's code.
        code: u16,
    },
    /// [`Message::Refuse`].
    Refuse {
        /// The error's code.
        code: u16,
    },
    /// [`Message::Retry`].
    Retry {
        /// The error's code.
        code: u16,
        /// Seconds until a new connection may succeed.
        seconds: u32,
    },
}

impl Brief<'_> {
    /// The same message as a [`Message`] (for tests and logs);
    /// [`Error::TooLarge`] if a string is over its bound.
    pub fn twin(self) -> Result<Message, Error> {
        let e = Error::TooLarge;
        Ok(match self {
            Brief::ServerFirst(s) => Message::ServerFirst(bounded(s, e)?),
            Brief::ServerFinal(s) => Message::ServerFinal(bounded(s, e)?),
            Brief::EchoReply(s) => Message::EchoReply(bounded(s, e)?),
            Brief::Cwd(s) => Message::Cwd(bounded(s, e)?),
            Brief::Entry(entry) => Message::Entry(entry.clone()),
            Brief::Sum(sum) => Message::Sum(sum),
            Brief::LoginOk => Message::LoginOk,
            Brief::Ok => Message::Ok,
            Brief::ListEnd { count } => Message::ListEnd { count },
            Brief::Offer { size } => Message::Offer { size },
            Brief::Accept { offset, name } => Message::Accept {
                offset,
                name: match name {
                    Some(n) => Some(bounded(n, e)?),
                    None => None,
                },
            },
            Brief::Trailer { sum } => Message::Trailer { sum },
            Brief::Done { verified } => Message::Done { verified },
            Brief::ExecEnd { status, no_output } => Message::ExecEnd { status, no_output },
            Brief::Error { code } => Message::Error { code },
            Brief::Refuse { code } => Message::Refuse { code },
            Brief::Retry { code, seconds } => Message::Retry { code, seconds },
        })
    }
}

impl Brief<'_> {
    /// The variant's index in [`Message`], its tag on the wire.
    const fn tag(&self) -> u32 {
        match self {
            Brief::ServerFirst(_) => 2,
            Brief::ServerFinal(_) => 4,
            Brief::LoginOk => 5,
            Brief::EchoReply(_) => 7,
            Brief::Ok => 9,
            Brief::Cwd(_) => 10,
            Brief::Entry(_) => 11,
            Brief::ListEnd { .. } => 12,
            Brief::Offer { .. } => 13,
            Brief::Accept { .. } => 14,
            Brief::Trailer { .. } => 15,
            Brief::Done { .. } => 16,
            Brief::ExecEnd { .. } => 17,
            Brief::Error { .. } => 18,
            Brief::Sum(_) => 19,
            Brief::Refuse { .. } => 20,
            Brief::Retry { .. } => 21,
        }
    }
}

/// Postcard's form of an enum variant: the variant's index as a varint
/// (a `u32`), then its fields in order, which is what a tuple of them is.
impl Serialize for Brief<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.tag())?;
        match *self {
            Brief::ServerFirst(s) | Brief::ServerFinal(s) | Brief::EchoReply(s) | Brief::Cwd(s) => {
                t.serialize_element(s)?
            }
            Brief::Entry(entry) => t.serialize_element(entry)?,
            Brief::Sum(sum) | Brief::Trailer { sum } => t.serialize_element(&sum)?,
            Brief::LoginOk | Brief::Ok => {}
            Brief::ListEnd { count } => t.serialize_element(&count)?,
            Brief::Offer { size } => t.serialize_element(&size)?,
            Brief::Accept { offset, name } => {
                t.serialize_element(&offset)?;
                t.serialize_element(&name)?;
            }
            Brief::Done { verified } => t.serialize_element(&verified)?,
            Brief::ExecEnd { status, no_output } => {
                t.serialize_element(&status)?;
                t.serialize_element(&no_output)?;
            }
            Brief::Error { code } | Brief::Refuse { code } => t.serialize_element(&code)?,
            Brief::Retry { code, seconds } => {
                t.serialize_element(&code)?;
                t.serialize_element(&seconds)?;
            }
        }
        t.end()
    }
}
