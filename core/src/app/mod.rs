//! The server application, written once: a [`Store`] trait for what a
//! server serves (files, listings, commands, users), and one generic
//! [`Session`] whose pump, [`Session::progress`], does the whole request
//! sequencing over a [`Server`](crate::Server), as sunset's
//! `Runner::progress` does for its servers.
//!
//! A server is then a `Store` implementation plus socket and clock glue:
//! the std server (a directory, kept digests, a writer thread, `sh -c`),
//! the device (a RAM store, built-in commands) and the test stores all
//! share this module's login, dispatch, resume prefix hashing, commit or
//! refusal, cancels and the listing and exec pumps.
//!
//! No allocation: handles are the store's own types, listings and command
//! output are pulled a piece at a time into caller slots, and file bytes
//! are read straight into the connection's output buffer
//! ([`Store::read_at`]). Prefix hashing reads into a scratch buffer the
//! driver lends to [`Session::progress`]: any size of one byte or more.

use crate::auth::Verifier;
use crate::digest::{Algorithm, Hasher, Sum};
use crate::error::Error;
use crate::message::{Entry, Overwrite, Path, Request, Stream};
use crate::server::Event;

mod session;

pub use session::{Progress, Session};

/// An upload the store agreed to receive ([`Store::begin_upload`]).
#[derive(Debug)]
pub struct Accepted<U> {
    /// The store's handle for it.
    pub upload: U,
    /// Bytes already held from an earlier attempt (a resume), else 0; the
    /// body starts here. Must not pass the announced size.
    pub offset: u64,
    /// The name it will be stored under, when that differs from the one
    /// asked for (keep-both: `docs/PROTOCOL.md#put`).
    pub stored_as: Option<Path>,
}

/// Why an upload ends without being stored; the store keeps what arrived
/// for a resume (or drops it, if it keeps no partial uploads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// The client cancelled it.
    Cancelled(Error),
    /// The connection closed mid-upload.
    Closed(Error),
    /// The store failed to write (no space, an I/O error); the client was
    /// told this error.
    Failed(Error),
}

/// How a get ended, for [`Store::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetEnd {
    /// The client received everything and checked the digest.
    Done {
        /// The digests matched on the client.
        verified: bool,
        /// The body was sent with a kept digest instead of being hashed.
        vouched: bool,
        /// The whole file's digest as sent.
        sum: Sum,
    },
    /// The client refused the offer or cancelled, or the connection closed.
    Cancelled(Error),
    /// Reading failed (`Error::Io` when the file shrank); the client was
    /// told.
    Failed(Error),
}

/// A piece of a running command's state, from [`Store::exec_poll`].
#[derive(Debug, PartialEq, Eq)]
pub enum ExecPoll<'a> {
    /// Output to send; report how much was taken with
    /// [`Store::exec_consume`].
    Output(Stream, &'a [u8]),
    /// Nothing yet: the command runs on. The driver waits for the store's
    /// own wake-up (or input), then calls `progress` again.
    Pending,
    /// All output was taken and the command ended with this status.
    Exit(i32),
}

/// What it costs to run a piece of store work, for [`Store::blocking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// File-system calls: open, read, list, rename, commit…
    Storage,
    /// Hashing a resume's held prefix: reads (and hashes) up to a whole
    /// file, so a store may bound how many run at once.
    PrefixHash,
}

/// What a server serves: files, listings, commands and users.
///
/// Paths arrive as the client sent them (relative to the session's
/// directory, or absolute from the served root); resolving them, and the
/// session's directory, are the store's. Every method that fails answers
/// the request with that error; the session goes on. Handles
/// (`File`, `Upload`, `Listing`, `Exec`) are held by the [`Session`] between
/// calls and given back to the method that ends them.
///
/// Only the methods a minimal read-write store needs are required; the
/// others default to refusing (`Permission`, `NotFound`, `ExecFailed`) or
/// doing nothing.
pub trait Store {
    /// A file open for a get.
    type File;
    /// An upload being received.
    type Upload;
    /// A directory listing in progress.
    type Listing;
    /// A running command.
    type Exec;

    // ---- login ----

    /// The SCRAM verifier of `user`, `None` for an unknown user (the login
    /// then fails as a wrong password does).
    fn verifier(&self, user: &str) -> Option<&Verifier> {
        let _ = user;
        None
    }

    /// Fills `buf` with fresh random bytes (server nonces).
    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error>;

    /// Sees every event but body bytes before the session acts on it:
    /// for logs, admission and per-user set-up. `Err(e)` closes the
    /// connection with `e` instead (the event is not acted on).
    fn on_event(&mut self, event: &Event<'_>) -> Result<(), Error> {
        let _ = event;
        Ok(())
    }

    /// When [`Self::on_event`] refused with `err` ([`Error::Busy`],
    /// [`Error::Penalised`]): the seconds after which a new attempt may
    /// succeed, told to a version-3 client (`Retry`); 0 for unknown.
    fn retry_after(&self, err: Error) -> u32 {
        let _ = err;
        0
    }

    /// A request was answered: `Ok` when it succeeded or its transfer,
    /// listing or command started, else the refusal sent. For logs.
    fn answered(&mut self, request: &Request, result: Result<(), Error>) {
        let _ = (request, result);
    }

    /// Runs `f`, which does store work of `cost`. A store on an async
    /// runtime moves it off the runtime's workers here; the default just
    /// runs it.
    fn blocking<R>(&mut self, cost: Cost, f: impl FnOnce(&mut Self) -> R) -> R
    where
        Self: Sized,
    {
        let _ = cost;
        f(self)
    }

    // ---- get ----

    /// Opens `path` for reading; returns the handle and the file's size.
    fn open(&mut self, path: &str) -> Result<(Self::File, u64), Error>;

    /// Reads from `offset` into `buf` (straight into the connection's
    /// output buffer for a body); returns how many bytes, 0 at the end.
    fn read_at(
        &mut self,
        file: &mut Self::File,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error>;

    /// A digest of this file with `algorithm` kept from when it was last
    /// verified, if the file has not changed since: the body is then sent
    /// without hashing (`Server::offer_vouched`).
    fn kept_digest(&mut self, file: &Self::File, algorithm: Algorithm) -> Option<Sum> {
        let _ = (file, algorithm);
        None
    }

    /// Keep `sum` as the file's digest: a client verified it, or it was
    /// just computed. Keep it only if the file is unchanged since opened.
    fn keep_digest(&mut self, file: &Self::File, sum: Sum) {
        let _ = (file, sum);
    }

    /// A kept digest failed the client's check: never offer it again.
    fn forget_digest(&mut self, file: &Self::File) {
        let _ = file;
    }

    /// The get of `file` ended.
    fn close(&mut self, file: Self::File, end: GetEnd) {
        let _ = (file, end);
    }

    /// The digest of a whole file. The default opens it, hashes it
    /// through `scratch` (the driver's, never empty: see
    /// [`Session::progress`]) and keeps the result ([`Self::keep_digest`]).
    fn digest(&mut self, path: &str, algorithm: Algorithm, scratch: &mut [u8]) -> Result<Sum, Error>
    where
        Self: Sized,
    {
        let (mut file, size) = self.open(path)?;
        let mut hasher = Hasher::new(algorithm).ok_or(Error::Internal)?;
        let r = feed(
            |at, buf| self.read_at(&mut file, at, buf),
            0,
            size,
            scratch,
            |d| {
                hasher.update(d);
                Ok(())
            },
        )
        .map(|()| hasher.finish());
        if let Ok(sum) = r {
            self.keep_digest(&file, sum);
        }
        self.close(file, GetEnd::Cancelled(Error::Closed));
        r
    }

    // ---- put ----

    /// Prepares to receive `size` bytes for `path`: applies `overwrite`,
    /// refuses before any body byte what cannot be stored, and with
    /// `resume` picks up a partial upload kept from before. `digest` is
    /// the transfer's algorithm.
    fn begin_upload(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        resume: bool,
        digest: Algorithm,
    ) -> Result<Accepted<Self::Upload>, Error>;

    /// Reads back held bytes of a resumed upload (`offset` below the
    /// accepted offset), to hash them.
    fn read_part_at(
        &mut self,
        upload: &mut Self::Upload,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let _ = (upload, offset, buf);
        Err(Error::Io)
    }

    /// Appends body bytes.
    fn write(&mut self, upload: &mut Self::Upload, data: &[u8]) -> Result<(), Error>;

    /// The body arrived and its digest `sum` matched: store the file (and
    /// keep `sum` as its digest). An error refuses the put.
    fn commit(&mut self, upload: Self::Upload, sum: Sum) -> Result<(), Error>;

    /// The upload ends unstored: keep what arrived for a resume.
    fn keep(&mut self, upload: Self::Upload, why: Abort) {
        let _ = (upload, why);
    }

    /// The body failed its digest check: drop what arrived.
    fn discard(&mut self, upload: Self::Upload) {
        let _ = upload;
    }

    // ---- listings and paths ----

    /// Starts listing the directory `path`.
    fn list(&mut self, path: &str) -> Result<Self::Listing, Error> {
        let _ = path;
        Err(Error::NotFound)
    }

    /// Writes the next entry into `slot`: `Ok(true)`, or `Ok(false)` at
    /// the end. Called only when the entry can be sent at once.
    fn next_entry(&mut self, listing: &mut Self::Listing, slot: &mut Entry) -> Result<bool, Error> {
        let _ = (listing, slot);
        Ok(false)
    }

    /// Describes one path.
    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        let _ = path;
        Err(Error::NotFound)
    }

    /// Moves the session into directory `path`; writes the new directory
    /// (absolute, as the client sees it) into `cwd`.
    fn cd(&mut self, path: &str, cwd: &mut Path) -> Result<(), Error> {
        match path {
            "" | "/" | "." => self.pwd(cwd),
            _ => Err(Error::NotFound),
        }
    }

    /// Writes the session's directory into `cwd`.
    fn pwd(&mut self, cwd: &mut Path) -> Result<(), Error> {
        cwd.clear();
        cwd.push('/').map_err(|_| Error::InvalidPath)
    }

    /// Creates a directory.
    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let _ = path;
        Err(Error::Permission)
    }

    /// Removes a file or an empty directory.
    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let _ = path;
        Err(Error::Permission)
    }

    /// Renames `from` to `to`; an existing `to` is refused with `Exists`
    /// unless `replace`.
    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        let _ = (from, to, replace);
        Err(Error::Permission)
    }

    // ---- exec ----

    /// Starts a command.
    fn exec(&mut self, command: &str) -> Result<Self::Exec, Error> {
        let _ = command;
        Err(Error::ExecFailed)
    }

    /// The command's next output, or its end.
    fn exec_poll<'a>(&'a mut self, exec: &'a mut Self::Exec) -> ExecPoll<'a> {
        let _ = exec;
        ExecPoll::Exit(-1)
    }

    /// `n` bytes of the output [`Self::exec_poll`] gave were sent.
    fn exec_consume(&mut self, exec: &mut Self::Exec, n: usize) {
        let _ = (exec, n);
    }

    /// The command's end went out with `status` (after
    /// [`ExecPoll::Exit`], which is returned until then).
    fn exec_end(&mut self, exec: Self::Exec, status: i32) {
        let _ = (exec, status);
    }
}

/// Reads `offset..end` through `read` into `scratch`, handing each piece
/// to `each`; a source shorter than `end` is `Error::Io`, an empty
/// `scratch` with something to read `Error::BadUsage`.
pub(crate) fn feed(
    mut read: impl FnMut(u64, &mut [u8]) -> Result<usize, Error>,
    offset: u64,
    end: u64,
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    if scratch.is_empty() && end > offset {
        return Err(Error::BadUsage);
    }
    let mut pos = offset;
    while pos < end {
        let want = scratch
            .len()
            .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
        let n = read(pos, &mut scratch[..want])?;
        if n == 0 || n > want {
            return Err(Error::Io);
        }
        each(&scratch[..n])?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
