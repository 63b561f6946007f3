//! Why a connection could not be built ([`SetupError`]): local mistakes
//! of the caller, never sent to the peer. Apart from [`crate::error`] so
//! that the protocol's error codes depend on nothing, and the digests
//! (whose algorithms these name) on those codes only.

use core::fmt;

use crate::error::Error;

/// Which caller-owned buffer an [`InsufficientSize`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BufferKind {
    /// The input buffer (the peer's bytes, one whole frame at least).
    Input,
    /// The output buffer (the hello and one whole frame at least).
    Output,
}

impl BufferKind {
    /// `"input"` or `"output"`.
    pub const fn name(self) -> &'static str {
        match self {
            BufferKind::Input => "input",
            BufferKind::Output => "output",
        }
    }
}

/// A caller-owned buffer too short for the call, with the size that
/// works, as rustls's `InsufficientSizeError { required_size }`: grow
/// that buffer to `required` bytes and call again. Nothing was kept.
///
/// Converts into [`Error::BadUsage`] for callers that only use `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsufficientSize {
    /// The buffer that was short.
    pub buffer: BufferKind,
    /// The smallest length it may have, in bytes
    /// ([`MIN_INPUT_BUFFER`](crate::MIN_INPUT_BUFFER) or
    /// [`MIN_OUTPUT_BUFFER`](crate::MIN_OUTPUT_BUFFER) for a connection's).
    pub required: usize,
}

impl fmt::Display for InsufficientSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} buffer too small: {} bytes needed",
            self.buffer.name(),
            self.required
        )
    }
}

impl core::error::Error for InsufficientSize {}

impl From<InsufficientSize> for Error {
    fn from(_: InsufficientSize) -> Error {
        Error::BadUsage
    }
}

/// Why [`Client::new`](crate::Client::new) or
/// [`Server::new`](crate::Server::new) built no connection: a local
/// mistake, never sent. Converts into [`Error::BadUsage`] (what these
/// constructors returned before), so `?` still works in a function that
/// returns [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupError {
    /// A buffer cannot hold one frame: which, and the size it needs. The
    /// input buffer is checked first.
    InsufficientSize(InsufficientSize),
    /// [`Config::chunk_size`](crate::Config::chunk_size) is 0.
    ZeroChunkSize,
    /// The configuration offers a digest this build cannot compute (its
    /// feature is off): the two sides would choose differently.
    DigestUnavailable(crate::digest::Algorithm),
    /// The window (the role's `W`) is 0 or above
    /// [`MAX_WINDOW`](crate::frame::MAX_WINDOW).
    Window,
}

impl From<InsufficientSize> for SetupError {
    fn from(e: InsufficientSize) -> SetupError {
        SetupError::InsufficientSize(e)
    }
}

impl From<SetupError> for Error {
    fn from(_: SetupError) -> Error {
        Error::BadUsage
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::InsufficientSize(e) => e.fmt(f),
            SetupError::ZeroChunkSize => f.write_str("chunk size is 0"),
            SetupError::DigestUnavailable(a) => {
                write!(f, "digest {a} is not in this build")
            }
            SetupError::Window => f.write_str("window is 0 or above 4096"),
        }
    }
}

impl core::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SetupError::InsufficientSize(e) => Some(e),
            _ => None,
        }
    }
}
