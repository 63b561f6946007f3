//! Control messages: what travels in `Msg` frames, postcard-encoded.
//!
//! Every string is UTF-8 in a bounded [`heapless::String`]; bounds are bytes,
//! never characters, so `测试文件.txt` costs 16 bytes of a path's budget and
//! decoding rejects anything longer before it reaches the caller. The bounds
//! are chosen so every message fits a frame of [`MIN_FRAME`] bytes, which lets
//! a device with a 1 KiB buffer talk to any server. Wire layout:
//! `docs/PROTOCOL.md#messages`.

use heapless::String;
use serde::{Deserialize, Serialize};

use crate::digest::Sum;
use crate::error::Error;

/// The smallest frame payload any peer must accept.
pub const MIN_FRAME: u32 = 1024;
/// Longest path, in bytes.
pub const MAX_PATH: usize = 480;
/// Longest directory-entry name, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest echo text or exec command line, in bytes.
pub const MAX_TEXT: usize = 960;
/// Longest user name, in bytes.
pub const MAX_USER: usize = 64;
/// Longest SCRAM message, in bytes.
pub const MAX_SCRAM: usize = 320;

/// A path as sent on the wire (relative to the session's directory, or
/// absolute from the served root).
pub type Path = String<MAX_PATH>;
/// A directory entry's name.
pub type Name = String<MAX_NAME>;
/// Echo text or an exec command line.
pub type Text = String<MAX_TEXT>;
/// A user name.
pub type User = String<MAX_USER>;
/// A SCRAM exchange message (RFC 5802 syntax).
pub type ScramText = String<MAX_SCRAM>;

/// Copies `s` into a bounded string, or fails with `err` if it is too long.
pub fn bounded<const N: usize>(s: &str, err: Error) -> Result<String<N>, Error> {
    let mut out = String::new();
    out.push_str(s).map_err(|_| err)?;
    Ok(out)
}

/// What `put` does when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Overwrite {
    /// Refuse with [`Error::Exists`] (the default).
    #[default]
    Fail,
    /// Store beside it as `<name>.new`, then `<name>.new.1`, `<name>.new.2`, …
    KeepBoth,
    /// Replace it atomically.
    Replace,
}

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// One directory entry, the answer to `stat` and each item of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name (for `stat`, the last path component).
    pub name: Name,
    /// What it is.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified: u64,
    /// Unix permission bits (0 when unknown).
    pub mode: u32,
}

/// Which output stream a chunk of exec output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A request from client to server, as the server's driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Send a file: answer with an offer (its size) or a refusal.
    Get {
        /// File to read.
        path: Path,
    },
    /// Receive a file: answer with accept (resume offset) or a refusal.
    Put {
        /// Where to store it.
        path: Path,
        /// Exact size of the whole file.
        size: u64,
        /// What to do if `path` exists.
        overwrite: Overwrite,
        /// Continue a partial upload kept from an earlier attempt.
        resume: bool,
    },
    /// List a directory: entries, then end.
    List {
        /// Directory to list.
        path: Path,
    },
    /// Describe one path.
    Stat {
        /// Path to describe.
        path: Path,
    },
    /// Change the session's directory; answer with the new one.
    Cd {
        /// New directory.
        path: Path,
    },
    /// Report the session's directory.
    Pwd,
    /// Create a directory.
    Mkdir {
        /// Directory to create.
        path: Path,
    },
    /// Remove a file or an empty directory.
    Remove {
        /// Path to remove.
        path: Path,
    },
    /// Rename or move; an existing `to` is refused with [`Error::Exists`]
    /// (`ferry mv` without `--overwrite replace`).
    Rename {
        /// Existing path.
        from: Path,
        /// New path.
        to: Path,
    },
    /// Run a command; stream its output, then its exit status.
    Exec {
        /// The command line.
        command: Text,
    },
    /// The digest of a file, with the negotiated algorithm (`ferry stat
    /// --digest`), so a user can compare it with `md5sum` or `b3sum`.
    Digest {
        /// File to hash.
        path: Path,
    },
    /// Rename or move, replacing `to` atomically if it exists (`ferry mv
    /// --overwrite replace`). A separate request rather than a field of
    /// `Rename`, so `Rename` keeps its wire form for older peers.
    RenameReplace {
        /// Existing path.
        from: Path,
        /// New path, replaced if it exists.
        to: Path,
    },
}

/// Whether a put path names a directory rather than a file: it ends in
/// `/`, `.` or `..` as a component, or is empty (`docs/PROTOCOL.md#messages`).
/// Stored as a file, `x/` would quietly become `x`.
pub fn names_directory(path: &str) -> bool {
    matches!(path.rsplit('/').next(), Some("" | "." | ".."))
}

/// Every control message. The variant order is the wire tag: append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// C→S: log in without credentials.
    Anonymous,
    /// C→S: SCRAM client-first-message.
    ClientFirst(ScramText),
    /// S→C: SCRAM server-first-message.
    ServerFirst(ScramText),
    /// C→S: SCRAM client-final-message.
    ClientFinal(ScramText),
    /// S→C: SCRAM server-final-message (`v=…`): login succeeded.
    ServerFinal(ScramText),
    /// S→C: anonymous login accepted.
    LoginOk,
    /// C→S: echo `text` back, upper-cased if asked (the original echo server).
    Echo {
        /// Text to echo.
        text: Text,
        /// Upper-case it first.
        upper: bool,
    },
    /// S→C: the echoed text.
    EchoReply(Text),
    /// C→S: a file or directory request.
    Request(Request),
    /// S→C: the request succeeded (mkdir, remove, rename).
    Ok,
    /// S→C: a directory path (answer to cd and pwd).
    Cwd(Path),
    /// S→C: one entry (answer to stat, or an item of a listing).
    Entry(Entry),
    /// S→C: the listing is complete; `count` entries were sent.
    ListEnd {
        /// Number of entries sent.
        count: u32,
    },
    /// Sender→receiver: the exact size of the whole file, before any body.
    Offer {
        /// Size in bytes.
        size: u64,
    },
    /// Receiver→sender: send the body starting at `offset`.
    Accept {
        /// Resume offset (0 for a fresh transfer).
        offset: u64,
        /// For put: the name the file will be stored under (differs from
        /// the request with `Overwrite::KeepBoth`).
        name: Option<Path>,
    },
    /// Sender→receiver: the whole file's digest, after the last body byte,
    /// with the negotiated algorithm named.
    Trailer {
        /// The digest.
        sum: Sum,
    },
    /// Receiver→sender: the transfer is complete (and stored, for put).
    Done {
        /// Whether the digest matched.
        verified: bool,
    },
    /// S→C: the command ended.
    ExecEnd {
        /// Exit status (negative: killed by a signal).
        status: i32,
        /// True if it printed nothing at all.
        no_output: bool,
    },
    /// Either way: a typed failure; fatal codes close the connection.
    Error {
        /// [`Error::code`].
        code: u16,
    },
    /// S→C: a file's digest (answer to a digest request).
    Sum(Sum),
    /// C→S, version 3: refuses the oldest offer not yet answered (with
    /// several gets in flight an `Error` would cancel the body in
    /// progress instead, so a refusal has its own message).
    Refuse {
        /// [`Error::code`].
        code: u16,
    },
    /// S→C, version 3: a fatal refusal ([`Error::Busy`],
    /// [`Error::Penalised`]) that says when to try again.
    Retry {
        /// [`Error::code`].
        code: u16,
        /// Seconds until a new connection may succeed (0: unknown).
        seconds: u32,
    },
    /// C→S, version 3, to a server whose hello lists
    /// [`AGREED`](crate::frame::AGREED): a get whose answer
    /// is agreed in advance. An offer of `offset ≤ size ≤ max` counts as
    /// accepted from `offset`, so its body follows the offer without a
    /// turn; any other offer waits for `Accept` or `Refuse` as after a
    /// `Request(Get)` (`docs/PROTOCOL.md#pre-agreed-gets`).
    GetAgreed {
        /// File to read.
        path: Path,
        /// Bytes already held (resume), as `Accept.offset`.
        offset: u64,
        /// The largest size accepted without seeing it first.
        max: u64,
    },
    /// C→S, version 3, to a server whose hello lists
    /// [`AGREED`](crate::frame::AGREED): a put whose body and trailer
    /// follow at once, without waiting for the `Accept`. The server
    /// answers `Accept` then `Done` as for `Request(Put)`, or, refusing
    /// it, reads and drops the body and answers one `Error` after the
    /// trailer (`docs/PROTOCOL.md#pre-agreed-puts`). Never resumed.
    PutAgreed {
        /// Where to store it.
        path: Path,
        /// The exact size of the body that follows.
        size: u64,
        /// What to do if `path` exists.
        overwrite: Overwrite,
    },
}

impl Message {
    /// A short name for logs and `UnexpectedFrame` diagnostics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Anonymous => "anonymous",
            Message::ClientFirst(_) => "client-first",
            Message::ServerFirst(_) => "server-first",
            Message::ClientFinal(_) => "client-final",
            Message::ServerFinal(_) => "server-final",
            Message::LoginOk => "login-ok",
            Message::Echo { .. } => "echo",
            Message::EchoReply(_) => "echo-reply",
            Message::Request(_) => "request",
            Message::Ok => "ok",
            Message::Cwd(_) => "cwd",
            Message::Entry(_) => "entry",
            Message::ListEnd { .. } => "list-end",
            Message::Offer { .. } => "offer",
            Message::Accept { .. } => "accept",
            Message::Trailer { .. } => "trailer",
            Message::Done { .. } => "done",
            Message::ExecEnd { .. } => "exec-end",
            Message::Error { .. } => "error",
            Message::Sum(_) => "sum",
            Message::Refuse { .. } => "refuse",
            Message::Retry { .. } => "retry",
            Message::GetAgreed { .. } => "get-agreed",
            Message::PutAgreed { .. } => "put-agreed",
        }
    }
}
