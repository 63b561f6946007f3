//! The one error enum of the C API: `FERRY_OK`, every protocol error with
//! its wire code (`docs/PROTOCOL.md#error-codes`, stable: codes never
//! change meaning), and the C API's own failures from 256 up.

use core::ffi::{c_char, c_int, CStr};

use ferry_core::{Error, SetupError};

/// What every entry point returns: `FERRY_OK` (0) or why not. Codes
/// 1–255 are ferry-core's protocol errors with their wire codes; 256 and
/// up are the C API's own. Written out (not by a macro) so cbindgen sees
/// every value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerryError {
    /// Success.
    FERRY_OK = 0,
    /// A frame or message could not be decoded.
    FERRY_ERROR_MALFORMED = 1,
    /// The peer speaks another protocol version.
    FERRY_ERROR_VERSION_MISMATCH = 2,
    /// The stream does not start with Ferry's magic bytes.
    FERRY_ERROR_BAD_MAGIC = 3,
    /// A frame is larger than the negotiated maximum.
    FERRY_ERROR_FRAME_TOO_LARGE = 4,
    /// A frame arrived in a state where it is not allowed.
    FERRY_ERROR_UNEXPECTED_FRAME = 5,
    /// A deadline passed (handshake, login or idle).
    FERRY_ERROR_TIMEOUT = 6,
    /// The stream ended in the middle of a frame or transfer.
    FERRY_ERROR_TRUNCATED = 7,
    /// The peer announced sizes this side cannot work with.
    FERRY_ERROR_UNSUPPORTED = 8,
    /// The server does not support the digest the client insists on.
    FERRY_ERROR_DIGEST_REFUSED = 9,
    /// Wrong user name or password.
    FERRY_ERROR_AUTH_FAILED = 10,
    /// The server does not allow anonymous sessions.
    FERRY_ERROR_ANONYMOUS_NOT_ALLOWED = 11,
    /// The server asked for more PBKDF2 iterations than a client accepts.
    FERRY_ERROR_ITERATIONS_TOO_HIGH = 12,
    /// The server could not prove it knows the verifier.
    FERRY_ERROR_SERVER_AUTH_FAILED = 13,
    /// Too many failed logins on this connection.
    FERRY_ERROR_TOO_MANY_FAILURES = 14,
    /// A request arrived before login.
    FERRY_ERROR_NOT_LOGGED_IN = 15,
    /// Too many failed logins from this address lately.
    FERRY_ERROR_PENALISED = 16,
    /// No such file or directory.
    FERRY_ERROR_NOT_FOUND = 20,
    /// The target exists and the overwrite policy forbids replacing it.
    FERRY_ERROR_EXISTS = 21,
    /// The receiver has no room for the announced size.
    FERRY_ERROR_NO_SPACE = 22,
    /// The announced size is above the receiver's limit.
    FERRY_ERROR_TOO_LARGE = 23,
    /// Permission denied.
    FERRY_ERROR_PERMISSION = 24,
    /// The path resolves outside the served root.
    FERRY_ERROR_OUTSIDE_ROOT = 25,
    /// The server is read-only.
    FERRY_ERROR_READ_ONLY = 26,
    /// A directory was expected.
    FERRY_ERROR_NOT_A_DIRECTORY = 27,
    /// A file was expected.
    FERRY_ERROR_IS_A_DIRECTORY = 28,
    /// The directory is not empty.
    FERRY_ERROR_NOT_EMPTY = 29,
    /// The path is too long or not valid.
    FERRY_ERROR_INVALID_PATH = 30,
    /// The resume offset is past the end of the file.
    FERRY_ERROR_BAD_OFFSET = 31,
    /// The resource is in use by another session; try again later.
    FERRY_ERROR_IN_USE = 32,
    /// Remote commands are disabled on this server.
    FERRY_ERROR_EXEC_DISABLED = 40,
    /// The command could not be started or is unknown.
    FERRY_ERROR_EXEC_FAILED = 41,
    /// The body's digest did not match the trailer.
    FERRY_ERROR_CHECKSUM_MISMATCH = 50,
    /// The server has no free session.
    FERRY_ERROR_BUSY = 60,
    /// An I/O error on the far side (or in a store callback).
    FERRY_ERROR_IO = 61,
    /// The transfer was cancelled by the driver.
    FERRY_ERROR_CANCELLED = 62,
    /// A bug or an unforeseen state; the connection is closed.
    FERRY_ERROR_INTERNAL = 63,
    /// The call is not valid in this state (local only).
    FERRY_ERROR_BAD_USAGE = 64,
    /// The output buffer is full: transmit, then retry (local only).
    FERRY_ERROR_BUFFER_FULL = 65,
    /// The connection is closed (local only).
    FERRY_ERROR_CLOSED = 66,
    /// A code this version does not know.
    FERRY_ERROR_UNKNOWN = 255,
    /// A pointer argument that must not be NULL was NULL.
    FERRY_ERROR_NULL_POINTER = 256,
    /// Object memory is not aligned to `ferry_*_align()`.
    FERRY_ERROR_MISALIGNED = 257,
    /// Object memory or a buffer is shorter than needed (`ferry_*_size()`,
    /// `FERRY_MIN_INPUT_BUFFER`, `FERRY_MIN_OUTPUT_BUFFER`).
    FERRY_ERROR_TOO_SMALL = 258,
    /// An argument is out of range: a string not UTF-8 or too long, an
    /// unknown enum value, overlapping buffers, a configuration that cannot
    /// work, a store without a required callback.
    FERRY_ERROR_INVALID_ARGUMENT = 259,
    /// The object pointer does not point at an initialised object (never
    /// initialised, or already deinitialised).
    FERRY_ERROR_NOT_INITIALIZED = 260,
    /// The library hit a bug and caught it: this object is unusable
    /// (deinitialise it); other objects are unaffected.
    FERRY_ERROR_PANIC = 261,
}

/// Each value with the core error it stands for and its message, in code
/// order.
const TABLE: &[(FerryError, Option<Error>, &CStr)] = &[
    (FerryError::FERRY_OK, None, c"ok"),
    (
        FerryError::FERRY_ERROR_MALFORMED,
        Some(Error::Malformed),
        c"malformed frame",
    ),
    (
        FerryError::FERRY_ERROR_VERSION_MISMATCH,
        Some(Error::VersionMismatch),
        c"protocol version mismatch",
    ),
    (
        FerryError::FERRY_ERROR_BAD_MAGIC,
        Some(Error::BadMagic),
        c"not a ferry peer",
    ),
    (
        FerryError::FERRY_ERROR_FRAME_TOO_LARGE,
        Some(Error::FrameTooLarge),
        c"frame too large",
    ),
    (
        FerryError::FERRY_ERROR_UNEXPECTED_FRAME,
        Some(Error::UnexpectedFrame),
        c"unexpected frame",
    ),
    (
        FerryError::FERRY_ERROR_TIMEOUT,
        Some(Error::Timeout),
        c"timed out",
    ),
    (
        FerryError::FERRY_ERROR_TRUNCATED,
        Some(Error::Truncated),
        c"connection closed mid-transfer",
    ),
    (
        FerryError::FERRY_ERROR_UNSUPPORTED,
        Some(Error::Unsupported),
        c"unsupported parameters",
    ),
    (
        FerryError::FERRY_ERROR_DIGEST_REFUSED,
        Some(Error::DigestRefused),
        c"digest not supported by the server",
    ),
    (
        FerryError::FERRY_ERROR_AUTH_FAILED,
        Some(Error::AuthFailed),
        c"login failed",
    ),
    (
        FerryError::FERRY_ERROR_ANONYMOUS_NOT_ALLOWED,
        Some(Error::AnonymousNotAllowed),
        c"anonymous login not allowed",
    ),
    (
        FerryError::FERRY_ERROR_ITERATIONS_TOO_HIGH,
        Some(Error::IterationsTooHigh),
        c"scram iteration count too high",
    ),
    (
        FerryError::FERRY_ERROR_SERVER_AUTH_FAILED,
        Some(Error::ServerAuthFailed),
        c"server authentication failed",
    ),
    (
        FerryError::FERRY_ERROR_TOO_MANY_FAILURES,
        Some(Error::TooManyFailures),
        c"too many failed logins",
    ),
    (
        FerryError::FERRY_ERROR_NOT_LOGGED_IN,
        Some(Error::NotLoggedIn),
        c"not logged in",
    ),
    (
        FerryError::FERRY_ERROR_PENALISED,
        Some(Error::Penalised),
        c"too many failed logins from this address",
    ),
    (
        FerryError::FERRY_ERROR_NOT_FOUND,
        Some(Error::NotFound),
        c"not found",
    ),
    (
        FerryError::FERRY_ERROR_EXISTS,
        Some(Error::Exists),
        c"already exists",
    ),
    (
        FerryError::FERRY_ERROR_NO_SPACE,
        Some(Error::NoSpace),
        c"no space",
    ),
    (
        FerryError::FERRY_ERROR_TOO_LARGE,
        Some(Error::TooLarge),
        c"too large",
    ),
    (
        FerryError::FERRY_ERROR_PERMISSION,
        Some(Error::Permission),
        c"permission denied",
    ),
    (
        FerryError::FERRY_ERROR_OUTSIDE_ROOT,
        Some(Error::OutsideRoot),
        c"path outside root",
    ),
    (
        FerryError::FERRY_ERROR_READ_ONLY,
        Some(Error::ReadOnly),
        c"read-only",
    ),
    (
        FerryError::FERRY_ERROR_NOT_A_DIRECTORY,
        Some(Error::NotADirectory),
        c"not a directory",
    ),
    (
        FerryError::FERRY_ERROR_IS_A_DIRECTORY,
        Some(Error::IsADirectory),
        c"is a directory",
    ),
    (
        FerryError::FERRY_ERROR_NOT_EMPTY,
        Some(Error::NotEmpty),
        c"directory not empty",
    ),
    (
        FerryError::FERRY_ERROR_INVALID_PATH,
        Some(Error::InvalidPath),
        c"invalid path",
    ),
    (
        FerryError::FERRY_ERROR_BAD_OFFSET,
        Some(Error::BadOffset),
        c"bad resume offset",
    ),
    (
        FerryError::FERRY_ERROR_IN_USE,
        Some(Error::InUse),
        c"in use, try again later",
    ),
    (
        FerryError::FERRY_ERROR_EXEC_DISABLED,
        Some(Error::ExecDisabled),
        c"exec disabled",
    ),
    (
        FerryError::FERRY_ERROR_EXEC_FAILED,
        Some(Error::ExecFailed),
        c"command failed to start",
    ),
    (
        FerryError::FERRY_ERROR_CHECKSUM_MISMATCH,
        Some(Error::ChecksumMismatch),
        c"checksum mismatch",
    ),
    (
        FerryError::FERRY_ERROR_BUSY,
        Some(Error::Busy),
        c"server busy",
    ),
    (FerryError::FERRY_ERROR_IO, Some(Error::Io), c"i/o error"),
    (
        FerryError::FERRY_ERROR_CANCELLED,
        Some(Error::Cancelled),
        c"cancelled",
    ),
    (
        FerryError::FERRY_ERROR_INTERNAL,
        Some(Error::Internal),
        c"internal error",
    ),
    (
        FerryError::FERRY_ERROR_BAD_USAGE,
        Some(Error::BadUsage),
        c"call not valid in this state",
    ),
    (
        FerryError::FERRY_ERROR_BUFFER_FULL,
        Some(Error::BufferFull),
        c"output buffer full",
    ),
    (
        FerryError::FERRY_ERROR_CLOSED,
        Some(Error::Closed),
        c"connection closed",
    ),
    (
        FerryError::FERRY_ERROR_UNKNOWN,
        Some(Error::Unknown),
        c"unknown error",
    ),
    (FerryError::FERRY_ERROR_NULL_POINTER, None, c"null pointer"),
    (
        FerryError::FERRY_ERROR_MISALIGNED,
        None,
        c"misaligned object memory",
    ),
    (
        FerryError::FERRY_ERROR_TOO_SMALL,
        None,
        c"memory or buffer too small",
    ),
    (
        FerryError::FERRY_ERROR_INVALID_ARGUMENT,
        None,
        c"invalid argument",
    ),
    (
        FerryError::FERRY_ERROR_NOT_INITIALIZED,
        None,
        c"object not initialized",
    ),
    (
        FerryError::FERRY_ERROR_PANIC,
        None,
        c"internal panic (object unusable)",
    ),
];

impl FerryError {
    /// Every value, in code order (for tests).
    pub const ALL: [FerryError; TABLE.len()] = {
        let mut all = [FerryError::FERRY_OK; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static (FerryError, Option<Error>, &'static CStr) {
        const UNKNOWN: (FerryError, Option<Error>, &CStr) = (
            FerryError::FERRY_ERROR_UNKNOWN,
            Some(Error::Unknown),
            c"unknown error",
        );
        // A value missing from the table (a bug the tests look for)
        // reads as unknown rather than panicking.
        TABLE.iter().find(|r| r.0 == self).unwrap_or(&UNKNOWN)
    }

    /// The value with code `code`, if any.
    pub fn from_code(code: c_int) -> Option<FerryError> {
        TABLE.iter().map(|r| r.0).find(|&f| f as c_int == code)
    }

    /// The ferry-core error this stands for (`None` for `FERRY_OK` and
    /// the C API's own errors).
    pub fn to_core(self) -> Option<Error> {
        self.row().1
    }

    /// A short, lower-case message, NUL-terminated.
    pub fn message(self) -> &'static CStr {
        self.row().2
    }
}

impl From<Error> for FerryError {
    fn from(e: Error) -> FerryError {
        // Codes 1–255 are the wire codes; an error added to the core but
        // not here yet reads as unknown (the mapping test catches it).
        match FerryError::from_code(c_int::from(e.code())) {
            Some(f) if f.to_core() == Some(e) => f,
            _ => FerryError::FERRY_ERROR_UNKNOWN,
        }
    }
}

impl From<SetupError> for FerryError {
    fn from(e: SetupError) -> FerryError {
        match e {
            SetupError::InsufficientSize(_) => FerryError::FERRY_ERROR_TOO_SMALL,
            _ => FerryError::FERRY_ERROR_INVALID_ARGUMENT,
        }
    }
}

impl FerryError {
    /// The core error a C caller passes as a reason (`ferry_*_cancel`,
    /// `ferry_client_refuse`, a store callback's return): a protocol code,
    /// else `Io` (a C failure means nothing to the peer).
    pub fn core_from_c(code: c_int) -> Error {
        FerryError::from_code(code)
            .and_then(FerryError::to_core)
            .unwrap_or(Error::Io)
    }
}

/// A `Result` whose error is a [`FerryError`].
pub(crate) type CResult<T = ()> = Result<T, FerryError>;

/// A static, NUL-terminated English message for `code` (any `int`: an
/// unknown code gives "unknown error"). Never NULL.
#[no_mangle]
pub extern "C" fn ferry_error_str(code: c_int) -> *const c_char {
    FerryError::from_code(code)
        .unwrap_or(FerryError::FERRY_ERROR_UNKNOWN)
        .message()
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every core error has its value here, with the same code and
    /// message: a new core error fails this until it is added.
    #[test]
    fn every_core_error_maps_with_its_code_and_message() {
        for &e in Error::ALL {
            let f = FerryError::from(e);
            assert_eq!(f as c_int, c_int::from(e.code()), "{e:?}");
            assert_eq!(f.to_core(), Some(e));
            assert_eq!(f.message().to_str().unwrap(), e.message(), "{e:?}");
        }
        let ours = FerryError::ALL.iter().filter(|f| f.to_core().is_some());
        assert_eq!(ours.count(), Error::ALL.len());
        // In code order, no repeats.
        assert!(FerryError::ALL
            .windows(2)
            .all(|w| (w[0] as i32) < (w[1] as i32)));
    }

    #[test]
    fn unknown_codes_read_as_unknown_and_c_reasons_as_io() {
        // SAFETY: ferry_error_str returns a static C string.
        let s = |c| {
            unsafe { CStr::from_ptr(ferry_error_str(c)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(s(-1), "unknown error");
        assert_eq!(s(17), "unknown error");
        assert_eq!(s(0), "ok");
        assert_eq!(s(258), "memory or buffer too small");
        assert_eq!(FerryError::core_from_c(20), Error::NotFound);
        assert_eq!(FerryError::core_from_c(0), Error::Io);
        assert_eq!(FerryError::core_from_c(256), Error::Io);
        assert_eq!(FerryError::core_from_c(-5), Error::Io);
    }
}
