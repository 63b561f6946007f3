//! One error enum for the whole protocol, with stable numeric codes.
//!
//! The same codes travel on the wire in `Message::Error` (see
//! `docs/PROTOCOL.md#error-codes`), so a refusal the server decides is the very
//! value the client's caller matches on. Codes never change meaning; new ones
//! are only added.

use core::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $msg:literal; )*) => {
        /// Every failure Ferry can report, locally or from the peer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[repr(u16)]
        pub enum Error {
            $( $(#[$doc])* $name = $code, )*
        }

        impl Error {
            /// The stable numeric code sent on the wire.
            pub const fn code(self) -> u16 {
                self as u16
            }

            /// The error for a wire code; unknown codes map to [`Error::Unknown`].
            pub const fn from_code(code: u16) -> Error {
                match code {
                    $( $code => Error::$name, )*
                    _ => Error::Unknown,
                }
            }

            /// A short, lower-case message for people.
            pub const fn message(self) -> &'static str {
                match self {
                    $( Error::$name => $msg, )*
                }
            }

            /// Every error, in code order (for documentation and tests).
            pub const ALL: &'static [Error] = &[ $( Error::$name, )* ];
        }
    };
}

error_codes! {
    /// A frame or message could not be decoded.
    Malformed = 1, "malformed frame";
    /// The peer speaks another protocol version.
    VersionMismatch = 2, "protocol version mismatch";
    /// The stream does not start with Ferry's magic bytes.
    BadMagic = 3, "not a ferry peer";
    /// A frame is larger than the negotiated maximum.
    FrameTooLarge = 4, "frame too large";
    /// A frame arrived in a state where it is not allowed.
    UnexpectedFrame = 5, "unexpected frame";
    /// A deadline passed (handshake, login or idle).
    Timeout = 6, "timed out";
    /// The stream ended in the middle of a frame or transfer.
    Truncated = 7, "connection closed mid-transfer";
    /// The peer announced sizes this side cannot work with.
    Unsupported = 8, "unsupported parameters";
    /// The server does not support the digest the client insists on.
    DigestRefused = 9, "digest not supported by the server";
    /// Wrong user name or password.
    AuthFailed = 10, "login failed";
    /// The server does not allow anonymous sessions.
    AnonymousNotAllowed = 11, "anonymous login not allowed";
    /// The server asked for more PBKDF2 iterations than a client accepts.
    IterationsTooHigh = 12, "scram iteration count too high";
    /// The server could not prove it knows the verifier.
    ServerAuthFailed = 13, "server authentication failed";
    /// Too many failed logins on this connection.
    TooManyFailures = 14, "too many failed logins";
    /// A request arrived before login.
    NotLoggedIn = 15, "not logged in";
    /// Too many failed logins from this address lately: the server refuses
    /// it for a while, before any password check.
    Penalised = 16, "too many failed logins from this address";
    /// No such file or directory.
    NotFound = 20, "not found";
    /// The target exists and the overwrite policy forbids replacing it.
    Exists = 21, "already exists";
    /// The receiver has no room for the announced size.
    NoSpace = 22, "no space";
    /// The announced size is above the receiver's limit.
    TooLarge = 23, "too large";
    /// Permission denied.
    Permission = 24, "permission denied";
    /// The path resolves outside the served root.
    OutsideRoot = 25, "path outside root";
    /// The server is read-only.
    ReadOnly = 26, "read-only";
    /// A directory was expected.
    NotADirectory = 27, "not a directory";
    /// A file was expected.
    IsADirectory = 28, "is a directory";
    /// The directory is not empty.
    NotEmpty = 29, "directory not empty";
    /// The path is too long or not valid (NUL, a reserved part-file name;
    /// the client also refuses an empty one).
    InvalidPath = 30, "invalid path";
    /// The resume offset is past the end of the file.
    BadOffset = 31, "bad resume offset";
    /// The resource is in use by another session; try again later.
    InUse = 32, "in use, try again later";
    /// Remote commands are disabled on this server.
    ExecDisabled = 40, "exec disabled";
    /// The command could not be started or is unknown.
    ExecFailed = 41, "command failed to start";
    /// The body's digest did not match the trailer.
    ChecksumMismatch = 50, "checksum mismatch";
    /// The server has no free session.
    Busy = 60, "server busy";
    /// An I/O error on the far side.
    Io = 61, "i/o error";
    /// The transfer was cancelled by the driver.
    Cancelled = 62, "cancelled";
    /// A bug or an unforeseen state; the connection is closed.
    Internal = 63, "internal error";
    /// The driver called a method in the wrong state (local only: never
    /// sent; received, it is `Malformed`).
    BadUsage = 64, "call not valid in this state";
    /// The output buffer is full: transmit, then retry (local only: never
    /// sent; received, it is `Malformed`).
    BufferFull = 65, "output buffer full";
    /// The connection is closed (local only: never sent; received, it is
    /// `Malformed`).
    Closed = 66, "connection closed";
    /// A code this version does not know.
    Unknown = 255, "unknown error";
}

impl Error {
    /// Whether this error only reports a local call's outcome
    /// ([`BadUsage`](Error::BadUsage), [`BufferFull`](Error::BufferFull),
    /// [`Closed`](Error::Closed)): it means nothing to the peer, so it
    /// never goes on the wire and a peer that sends one is
    /// [`Malformed`](Error::Malformed).
    pub const fn is_local(self) -> bool {
        matches!(self, Error::BadUsage | Error::BufferFull | Error::Closed)
    }

    /// The error a peer's `Error { code }` stands for: as
    /// [`Error::from_code`], but a local-only code is
    /// [`Malformed`](Error::Malformed) (which closes the connection).
    pub const fn from_wire(code: u16) -> Error {
        let e = Error::from_code(code);
        if e.is_local() {
            Error::Malformed
        } else {
            e
        }
    }

    /// The code sent when this error ends a request (a refusal, a
    /// cancel): a local-only error goes out as [`Io`](Error::Io), the far
    /// side's failure as the peer sees it.
    pub(crate) const fn request_code(self) -> u16 {
        if self.is_local() {
            Error::Io.code()
        } else {
            self.code()
        }
    }

    /// The code sent when this error closes the connection: a local-only
    /// error goes out as [`Internal`](Error::Internal).
    pub(crate) const fn closing_code(self) -> u16 {
        if self.is_local() {
            Error::Internal.code()
        } else {
            self.code()
        }
    }

    /// Whether this error ends the connection (as opposed to failing one
    /// request, after which the session goes on).
    pub const fn is_fatal(self) -> bool {
        matches!(
            self,
            Error::Malformed
                | Error::VersionMismatch
                | Error::BadMagic
                | Error::FrameTooLarge
                | Error::UnexpectedFrame
                | Error::Timeout
                | Error::Truncated
                | Error::Unsupported
                | Error::DigestRefused
                | Error::IterationsTooHigh
                | Error::ServerAuthFailed
                | Error::TooManyFailures
                | Error::Penalised
                | Error::Busy
                | Error::Internal
                | Error::Closed
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for Error {}

/// Result with the protocol's error.
pub type Result<T, E = Error> = core::result::Result<T, E>;
