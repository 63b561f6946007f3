//! Errors of the std runtime, and the exit codes scripts rely on.

use std::io;

use ferry_core::Error as Proto;

/// Exit codes, documented in README and `--help`.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// Login failed.
    pub const LOGIN: i32 = 3;
    /// Remote file or directory not found.
    pub const NOT_FOUND: i32 = 4;
    /// The digest check failed.
    pub const CHECKSUM: i32 = 5;
    /// Refused: exists, permission, read-only, outside root, no space.
    pub const REFUSED: i32 = 6;
    /// Connection or protocol error.
    pub const CONNECTION: i32 = 7;
}

/// Everything a `ferry` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FerryError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// The peer or the protocol reported a typed error.
    #[error("{}", describe(*.0))]
    Protocol(Proto),
    /// A typed error from the peer, with a hint that fits the command
    /// better than [`FerryError::Protocol`]'s (`mv` has no keep-both).
    #[error("{}{hint}", .error.message())]
    Hinted {
        /// The error.
        error: Proto,
        /// Appended to its message.
        hint: &'static str,
    },
    /// A refusal that says when to try again (a version-3 server's
    /// `Retry`: busy, or too many failed logins from this address).
    #[error("{}, retry in {seconds} s", describe_short(*.error))]
    Retry {
        /// Why the server refused.
        error: Proto,
        /// Seconds until it may accept.
        seconds: u32,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Local {
        /// The local path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A failure on one path: remote (as the server names it, e.g. the
    /// file of a `-r` transfer that failed) or local. The CLI renders a
    /// remote path in the form of the URL the user gave.
    #[error("{path}: {source}")]
    At {
        /// The path that failed.
        path: String,
        /// Whether `path` is on the server.
        remote: bool,
        /// The cause.
        source: Box<FerryError>,
    },
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(io::Error),
    /// Something else, with a message.
    #[error("{0}")]
    Other(String),
}

impl FerryError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            FerryError::Usage(_) => exit::USAGE,
            FerryError::Protocol(e)
            | FerryError::Hinted { error: e, .. }
            | FerryError::Retry { error: e, .. } => code_for(*e),
            FerryError::Local { source, .. } => match source.kind() {
                io::ErrorKind::AlreadyExists | io::ErrorKind::PermissionDenied => exit::REFUSED,
                io::ErrorKind::StorageFull => exit::REFUSED,
                io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CONNECTION,
            },
            FerryError::At { source, .. } => source.exit_code(),
            FerryError::Connection(_) | FerryError::Other(_) => exit::CONNECTION,
        }
    }

    /// The protocol error inside, if any.
    pub fn protocol(&self) -> Option<Proto> {
        match self {
            FerryError::Protocol(e)
            | FerryError::Hinted { error: e, .. }
            | FerryError::Retry { error: e, .. } => Some(*e),
            FerryError::At { source, .. } => source.protocol(),
            _ => None,
        }
    }

    /// A local I/O error on `path`.
    pub fn local(path: impl AsRef<std::path::Path>, source: io::Error) -> Self {
        FerryError::Local {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl FerryError {
    /// `e`, as a failure on the remote path `path`; an error that already
    /// names a path keeps it (the innermost path is the one that failed).
    pub fn remote(path: &str, e: impl Into<FerryError>) -> Self {
        Self::at(path.to_string(), true, e.into())
    }

    /// `e`, as a failure caused by the local path `path` (kept if `e`
    /// already names one).
    pub fn at_local(path: impl AsRef<std::path::Path>, e: impl Into<FerryError>) -> Self {
        Self::at(path.as_ref().display().to_string(), false, e.into())
    }

    fn at(path: String, remote: bool, e: FerryError) -> Self {
        match e {
            FerryError::At { .. } | FerryError::Local { .. } => e,
            e => FerryError::At {
                path,
                remote,
                source: Box::new(e),
            },
        }
    }
}

impl From<Proto> for FerryError {
    fn from(e: Proto) -> Self {
        FerryError::Protocol(e)
    }
}

impl From<ferry_core::driver::DriverError<io::Error>> for FerryError {
    fn from(e: ferry_core::driver::DriverError<io::Error>) -> Self {
        match e {
            ferry_core::driver::DriverError::Io(e) => FerryError::Connection(e),
            ferry_core::driver::DriverError::Protocol(e) => FerryError::Protocol(e),
        }
    }
}

/// `hint` on an `Exists` refusal; any other error as it is.
pub fn on_exists(hint: &'static str) -> impl Fn(FerryError) -> FerryError {
    move |e| match e {
        FerryError::Protocol(Proto::Exists) => FerryError::Hinted {
            error: Proto::Exists,
            hint,
        },
        e => e,
    }
}

/// The exit code for a protocol error.
pub fn code_for(e: Proto) -> i32 {
    match e {
        Proto::AuthFailed
        | Proto::AnonymousNotAllowed
        | Proto::TooManyFailures
        | Proto::ServerAuthFailed
        | Proto::IterationsTooHigh
        | Proto::NotLoggedIn => exit::LOGIN,
        Proto::NotFound => exit::NOT_FOUND,
        Proto::ChecksumMismatch => exit::CHECKSUM,
        Proto::Exists
        | Proto::NoSpace
        | Proto::TooLarge
        | Proto::Permission
        | Proto::OutsideRoot
        | Proto::ReadOnly
        | Proto::NotADirectory
        | Proto::IsADirectory
        | Proto::NotEmpty
        | Proto::InvalidPath
        | Proto::BadOffset
        | Proto::InUse
        | Proto::ExecDisabled
        | Proto::ExecFailed
        | Proto::DigestRefused => exit::REFUSED,
        _ => exit::CONNECTION,
    }
}

/// What a refusal with a retry time says before "retry in N s".
fn describe_short(e: Proto) -> String {
    match e {
        Proto::Busy => "server busy (too many connections)".into(),
        Proto::Penalised => "too many failed logins from this address".into(),
        e => e.message().into(),
    }
}

/// A message for people, with a hint where one helps.
pub fn describe(e: Proto) -> String {
    match e {
        Proto::Exists => "already exists (use --overwrite replace or keep-both)".into(),
        Proto::ChecksumMismatch => "checksum mismatch: the file was not accepted".into(),
        Proto::ExecDisabled => "exec disabled on this server (start it with --allow-exec)".into(),
        Proto::Busy => "server busy (too many connections), try again later".into(),
        Proto::Penalised => {
            "too many failed logins from this address: the server refuses it for a while, try again later"
                .into()
        }
        Proto::AuthFailed => "login failed: wrong user or password".into(),
        Proto::DigestRefused => {
            "the server does not support the digest given with --digest (leave it out to negotiate)"
                .into()
        }
        e => e.message().into(),
    }
}
