//! The server: ferry-core's one server application (`app::Session`) over
//! a store of C callbacks ([`FerryStore`], mirroring the Rust `Store`
//! trait). Feed the client's bytes with `ferry_server_input`, then call
//! `ferry_server_progress` and do what it says: transmit
//! (`ferry_server_transmit`) and call again, wait for input or the next
//! deadline, or close.
//!
//! Handles (`file`, `upload`, `listing`) are the store's own `void *`,
//! opaque to the library: it hands each back to the callback that ends it
//! (`close`, `commit` or `abort`, `end_list`), also at
//! `ferry_server_deinit`.

use core::ffi::{c_char, c_int, c_void};
use core::mem::{align_of, offset_of, size_of};

use ferry_core::app::{Abort, Accepted, GetEnd, Progress, Session, Store};
use ferry_core::auth::Verifier;
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::message::Name;
use ferry_core::{Entry, Error, Instant, Kind, Overwrite, Server, ServerEvent, User};

use crate::client::{FERRY_OVERWRITE_FAIL, FERRY_OVERWRITE_KEEP_BOTH, FERRY_OVERWRITE_REPLACE};
use crate::config::FerryServerConfig;
use crate::error::FerryError;
use crate::ffi::{self, bytes, bytes_mut, put, with, Header, Object, RawBuf};
use crate::{FERRY_MAX_NAME, FERRY_MAX_PATH};

/// A regular file.
pub const FERRY_KIND_FILE: u8 = 0;
/// A directory.
pub const FERRY_KIND_DIR: u8 = 1;
/// A symbolic link.
pub const FERRY_KIND_SYMLINK: u8 = 2;
/// Anything else.
pub const FERRY_KIND_OTHER: u8 = 3;

const _: () = assert!(FERRY_MAX_NAME + 1 == 256);

/// A directory entry: an ENTRY event's, or one a store fills.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryEntry {
    /// The name, UTF-8, NUL-terminated (at most `FERRY_MAX_NAME` bytes
    /// before the NUL). A literal length: cbindgen prints it as written.
    pub name: [c_char; 256],
    /// `FERRY_KIND_*`.
    pub kind: u8,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified: u64,
    /// Unix permission bits (0 when unknown).
    pub mode: u32,
}

impl FerryEntry {
    pub(crate) const EMPTY: FerryEntry = FerryEntry {
        name: [0; 256],
        kind: FERRY_KIND_FILE,
        size: 0,
        modified: 0,
        mode: 0,
    };

    /// The core entry, or `Io` for one C filled badly (no NUL, not
    /// UTF-8, an unknown kind).
    fn to_core(self) -> Result<Entry, Error> {
        let len = self.name.iter().position(|&c| c == 0).ok_or(Error::Io)?;
        let mut raw = [0u8; FERRY_MAX_NAME];
        for (d, &s) in raw.iter_mut().zip(&self.name[..len]) {
            *d = s.to_ne_bytes()[0];
        }
        let s = core::str::from_utf8(&raw[..len]).map_err(|_| Error::Io)?;
        let mut name = Name::new();
        name.push_str(s).map_err(|_| Error::Io)?;
        let kind = match self.kind {
            FERRY_KIND_FILE => Kind::File,
            FERRY_KIND_DIR => Kind::Dir,
            FERRY_KIND_SYMLINK => Kind::Symlink,
            FERRY_KIND_OTHER => Kind::Other,
            _ => return Err(Error::Io),
        };
        Ok(Entry {
            name,
            kind,
            size: self.size,
            modified: self.modified,
            mode: self.mode,
        })
    }
}

/// A digest: the algorithm's wire id and its bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FerrySum {
    /// 1 MD5, 2 SHA-256, 3 BLAKE3; 0 for none.
    pub algorithm: u8,
    /// Bytes used in `bytes` (16 or 32).
    pub len: u8,
    /// The digest.
    pub bytes: [u8; 32],
}

impl FerrySum {
    pub(crate) const EMPTY: FerrySum = FerrySum {
        algorithm: 0,
        len: 0,
        bytes: [0; 32],
    };
}

/// The store a `ferry_server` serves: C callbacks and their context, as
/// ferry-core's `Store` trait. Each returns `FERRY_OK` (0) or a
/// `ferry_error` that answers the request (a code that is not a protocol
/// error goes to the client as IO); the session goes on. Paths are
/// NUL-terminated UTF-8, as the client sent them (at most
/// `FERRY_MAX_PATH` bytes), valid during the call only.
///
/// Required: `random`, `open`, `read_at`, `begin_upload`, `write`,
/// `commit`. The others may be NULL: `verifier` NULL means no user can
/// log in with a password; `list`, `stat` NULL answer NOT_FOUND;
/// `mkdir`, `remove`, `rename` NULL answer PERMISSION; `read_part_at`
/// NULL fails a resume with IO.
///
/// Callbacks are called only from inside `ferry_server_progress` and
/// `ferry_server_deinit`, on the caller's thread; a call back into the
/// same server from one is refused (BAD_USAGE). They must return (no
/// `longjmp` out).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FerryStore {
    /// Passed to every callback.
    pub ctx: *mut c_void,
    /// Fills `buf` with `len` fresh random bytes (nonces).
    pub random: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: usize) -> c_int>,
    /// Writes the SCRAM verifier of `user` (the text `ferry passwd`
    /// stores: `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`),
    /// NUL-terminated, into `out` (`cap` bytes); NOT_FOUND for an unknown
    /// user (the login then fails as a wrong password does).
    pub verifier: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            user: *const c_char,
            out: *mut c_char,
            cap: usize,
        ) -> c_int,
    >,
    /// Opens `path` for a get: stores a handle in `*file` and the size in
    /// `*size`.
    pub open: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            path: *const c_char,
            file: *mut *mut c_void,
            size: *mut u64,
        ) -> c_int,
    >,
    /// Reads from `offset` into `buf` (`len` bytes, straight into the
    /// connection's output buffer); stores how many in `*n` (0 at the end).
    pub read_at: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            file: *mut c_void,
            offset: u64,
            buf: *mut u8,
            len: usize,
            n: *mut usize,
        ) -> c_int,
    >,
    /// The get of `file` ended: the handle is the store's again.
    pub close: Option<unsafe extern "C" fn(ctx: *mut c_void, file: *mut c_void)>,
    /// Prepares to receive `size` bytes for `path` under the overwrite
    /// policy (`FERRY_OVERWRITE_*`); refuse here what cannot be stored.
    /// Stores a handle in `*upload` and, when `resume` is 1 and part of the
    /// file is held from before, its length in `*offset` (else leave 0).
    pub begin_upload: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            path: *const c_char,
            size: u64,
            overwrite: u32,
            resume: u8,
            upload: *mut *mut c_void,
            offset: *mut u64,
        ) -> c_int,
    >,
    /// Reads back held bytes of a resumed upload (below its offset) to
    /// hash them; as `read_at`.
    pub read_part_at: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            upload: *mut c_void,
            offset: u64,
            buf: *mut u8,
            len: usize,
            n: *mut usize,
        ) -> c_int,
    >,
    /// Appends `len` body bytes.
    pub write: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            upload: *mut c_void,
            data: *const u8,
            len: usize,
        ) -> c_int,
    >,
    /// The body arrived and its digest `sum` matched: store the file. An
    /// error refuses the put. Either way the handle is the store's again.
    pub commit: Option<
        unsafe extern "C" fn(ctx: *mut c_void, upload: *mut c_void, sum: *const FerrySum) -> c_int,
    >,
    /// The upload ends unstored, for `why`: CHECKSUM_MISMATCH (drop what
    /// arrived), or a cancel, a closed connection or a failed write (keep
    /// it for a resume, or drop it). The handle is the store's again.
    pub abort: Option<unsafe extern "C" fn(ctx: *mut c_void, upload: *mut c_void, why: c_int)>,
    /// Starts listing the directory `path`: a handle in `*listing`.
    pub list: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            path: *const c_char,
            listing: *mut *mut c_void,
        ) -> c_int,
    >,
    /// Writes the next entry into `*entry` and 1 into `*more`, or 0 into
    /// `*more` at the end.
    pub next_entry: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            listing: *mut c_void,
            entry: *mut FerryEntry,
            more: *mut u8,
        ) -> c_int,
    >,
    /// The listing ended: the handle is the store's again.
    pub end_list: Option<unsafe extern "C" fn(ctx: *mut c_void, listing: *mut c_void)>,
    /// Describes `path` in `*entry`.
    pub stat: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            path: *const c_char,
            entry: *mut FerryEntry,
        ) -> c_int,
    >,
    /// Creates a directory.
    pub mkdir: Option<unsafe extern "C" fn(ctx: *mut c_void, path: *const c_char) -> c_int>,
    /// Removes a file or an empty directory.
    pub remove: Option<unsafe extern "C" fn(ctx: *mut c_void, path: *const c_char) -> c_int>,
    /// Renames `from` to `to`; an existing `to` is refused with EXISTS
    /// unless `replace` is 1.
    pub rename: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            from: *const c_char,
            to: *const c_char,
            replace: u8,
        ) -> c_int,
    >,
}

/// A callback's result as the core's.
fn res(code: c_int) -> Result<(), Error> {
    match code {
        0 => Ok(()),
        c => Err(FerryError::core_from_c(c)),
    }
}

/// `s` with a NUL after it, for a callback; a string with a NUL inside
/// cannot be a path (`InvalidPath`).
fn c_path(s: &str, buf: &mut [u8; FERRY_MAX_PATH + 1]) -> Result<*const c_char, Error> {
    if s.len() > FERRY_MAX_PATH || s.as_bytes().contains(&0) {
        return Err(Error::InvalidPath);
    }
    ffi::copy_text(buf, s.as_bytes());
    Ok(buf.as_ptr().cast())
}

/// A listing handle: given back to `end_list` when the session drops it.
struct Listing {
    handle: *mut c_void,
    ctx: *mut c_void,
    end: Option<unsafe extern "C" fn(ctx: *mut c_void, listing: *mut c_void)>,
}

impl Drop for Listing {
    fn drop(&mut self) {
        if let Some(end) = self.end {
            // SAFETY: the store's own callback with its own handle.
            unsafe { end(self.ctx, self.handle) };
        }
    }
}

/// The C store as a ferry-core `Store`, with the verifier of the user
/// logging in (asked for at the login request, kept for the answer).
struct CStore {
    ops: FerryStore,
    login: Option<(User, Verifier)>,
}

impl CStore {
    fn fetch_verifier(&mut self, user: &User) {
        self.login = None;
        let Some(f) = self.ops.verifier else { return };
        let mut name = [0u8; ferry_core::MAX_USER + 1];
        if user.as_bytes().contains(&0) {
            return;
        }
        ffi::copy_text(&mut name, user.as_bytes());
        // Longest verifier: a 64-byte salt and two 32-byte keys in base64.
        let mut text = [0u8; 256];
        // SAFETY: the store's callback; `name` is NUL-terminated and
        // `text` has the capacity given.
        let r = unsafe {
            f(
                self.ops.ctx,
                name.as_ptr().cast(),
                text.as_mut_ptr().cast(),
                text.len(),
            )
        };
        let Some(len) = text.iter().position(|&b| b == 0) else {
            return;
        };
        let parsed = core::str::from_utf8(&text[..len])
            .ok()
            .and_then(|s| Verifier::parse(s).ok());
        if let (0, Some(v)) = (r, parsed) {
            self.login = Some((user.clone(), v));
        }
    }
}

impl Store for CStore {
    type File = *mut c_void;
    type Upload = *mut c_void;
    type Listing = Listing;
    type Exec = ();

    fn verifier(&self, user: &str) -> Option<&Verifier> {
        self.login
            .as_ref()
            .filter(|(u, _)| u.as_str() == user)
            .map(|(_, v)| v)
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let f = self.ops.random.ok_or(Error::Internal)?;
        // SAFETY: the store's callback over a buffer of that length.
        res(unsafe { f(self.ops.ctx, buf.as_mut_ptr(), buf.len()) })
    }

    fn on_event(&mut self, event: &ServerEvent<'_>) -> Result<(), Error> {
        if let ServerEvent::LoginRequest { user } = event {
            self.fetch_verifier(user);
        }
        Ok(())
    }

    fn open(&mut self, path: &str) -> Result<(*mut c_void, u64), Error> {
        let f = self.ops.open.ok_or(Error::Internal)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        let (mut file, mut size) = (core::ptr::null_mut(), 0u64);
        // SAFETY: the store's callback; out-pointers to locals.
        res(unsafe { f(self.ops.ctx, p, &mut file, &mut size) })?;
        Ok((file, size))
    }

    fn read_at(&mut self, file: &mut *mut c_void, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let f = self.ops.read_at.ok_or(Error::Internal)?;
        let mut n = 0usize;
        // SAFETY: the store's callback over a buffer of that length.
        res(unsafe { f(self.ops.ctx, *file, at, buf.as_mut_ptr(), buf.len(), &mut n) })?;
        // More than it was given is a store bug, never a buffer overrun
        // here: refuse it.
        if n > buf.len() {
            return Err(Error::Io);
        }
        Ok(n)
    }

    fn close(&mut self, file: *mut c_void, _: GetEnd) {
        if let Some(f) = self.ops.close {
            // SAFETY: the store's callback with its own handle.
            unsafe { f(self.ops.ctx, file) };
        }
    }

    fn begin_upload(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        resume: bool,
        _: Algorithm,
    ) -> Result<Accepted<*mut c_void>, Error> {
        let f = self.ops.begin_upload.ok_or(Error::Internal)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        let ow = match overwrite {
            Overwrite::Fail => FERRY_OVERWRITE_FAIL,
            Overwrite::KeepBoth => FERRY_OVERWRITE_KEEP_BOTH,
            Overwrite::Replace => FERRY_OVERWRITE_REPLACE,
        };
        let (mut upload, mut offset) = (core::ptr::null_mut(), 0u64);
        // SAFETY: the store's callback; out-pointers to locals.
        let r = unsafe {
            f(
                self.ops.ctx,
                p,
                size,
                ow,
                u8::from(resume),
                &mut upload,
                &mut offset,
            )
        };
        res(r)?;
        if offset > size {
            self.keep(upload, Abort::Failed(Error::BadOffset));
            return Err(Error::BadOffset);
        }
        Ok(Accepted {
            upload,
            offset,
            stored_as: None,
        })
    }

    fn read_part_at(
        &mut self,
        up: &mut *mut c_void,
        at: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let f = self.ops.read_part_at.ok_or(Error::Io)?;
        let mut n = 0usize;
        // SAFETY: the store's callback over a buffer of that length.
        res(unsafe { f(self.ops.ctx, *up, at, buf.as_mut_ptr(), buf.len(), &mut n) })?;
        if n > buf.len() {
            return Err(Error::Io);
        }
        Ok(n)
    }

    fn write(&mut self, up: &mut *mut c_void, data: &[u8]) -> Result<(), Error> {
        let f = self.ops.write.ok_or(Error::Internal)?;
        // SAFETY: the store's callback over bytes of that length.
        res(unsafe { f(self.ops.ctx, *up, data.as_ptr(), data.len()) })
    }

    fn commit(&mut self, up: *mut c_void, sum: Sum) -> Result<(), Error> {
        let f = self.ops.commit.ok_or(Error::Internal)?;
        let sum = FerrySum::from_core(&sum);
        // SAFETY: the store's callback; `sum` lives through the call.
        res(unsafe { f(self.ops.ctx, up, &sum) })
    }

    fn keep(&mut self, up: *mut c_void, why: Abort) {
        let (Abort::Cancelled(e) | Abort::Closed(e) | Abort::Failed(e)) = why;
        if let Some(f) = self.ops.abort {
            // SAFETY: the store's callback with its own handle.
            unsafe { f(self.ops.ctx, up, FerryError::from(e) as c_int) };
        }
    }

    fn discard(&mut self, up: *mut c_void) {
        if let Some(f) = self.ops.abort {
            let why = FerryError::FERRY_ERROR_CHECKSUM_MISMATCH as c_int;
            // SAFETY: the store's callback with its own handle.
            unsafe { f(self.ops.ctx, up, why) };
        }
    }

    fn list(&mut self, path: &str) -> Result<Listing, Error> {
        let f = self.ops.list.ok_or(Error::NotFound)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        let mut handle = core::ptr::null_mut();
        // SAFETY: the store's callback; out-pointer to a local.
        res(unsafe { f(self.ops.ctx, p, &mut handle) })?;
        Ok(Listing {
            handle,
            ctx: self.ops.ctx,
            end: self.ops.end_list,
        })
    }

    fn next_entry(&mut self, listing: &mut Listing, slot: &mut Entry) -> Result<bool, Error> {
        let f = self.ops.next_entry.ok_or(Error::Io)?;
        let (mut entry, mut more) = (FerryEntry::EMPTY, 0u8);
        // SAFETY: the store's callback; out-pointers to locals.
        res(unsafe { f(self.ops.ctx, listing.handle, &mut entry, &mut more) })?;
        match more {
            0 => Ok(false),
            1 => {
                *slot = entry.to_core()?;
                Ok(true)
            }
            _ => Err(Error::Io),
        }
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        let f = self.ops.stat.ok_or(Error::NotFound)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        let mut entry = FerryEntry::EMPTY;
        // SAFETY: the store's callback; out-pointer to a local.
        res(unsafe { f(self.ops.ctx, p, &mut entry) })?;
        entry.to_core()
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let f = self.ops.mkdir.ok_or(Error::Permission)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        // SAFETY: the store's callback.
        res(unsafe { f(self.ops.ctx, p) })
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let f = self.ops.remove.ok_or(Error::Permission)?;
        let mut buf = [0; FERRY_MAX_PATH + 1];
        let p = c_path(path, &mut buf)?;
        // SAFETY: the store's callback.
        res(unsafe { f(self.ops.ctx, p) })
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        let f = self.ops.rename.ok_or(Error::Permission)?;
        let (mut a, mut b) = ([0; FERRY_MAX_PATH + 1], [0; FERRY_MAX_PATH + 1]);
        let (from, to) = (c_path(from, &mut a)?, c_path(to, &mut b)?);
        // SAFETY: the store's callback.
        res(unsafe { f(self.ops.ctx, from, to, u8::from(replace)) })
    }
}

/// A server connection with its session and store. Opaque: C holds a
/// pointer to memory it gave `ferry_server_init` (`ferry_server_size()`
/// bytes aligned to `ferry_server_align()`).
pub struct FerryServer {
    header: Header,
    server: Server<RawBuf>,
    session: Session<CStore>,
    store: CStore,
    /// Lent to the session for hashing resumed transfers' prefixes and
    /// answering digest requests.
    scratch: [u8; 256],
}

impl Object for FerryServer {
    const MAGIC: u32 = 0xFE44_5E4E;
    const HEADER: usize = offset_of!(FerryServer, header);
    fn header(&mut self) -> &mut Header {
        &mut self.header
    }
    fn release(&mut self) {
        self.session.end(&mut self.store);
    }
}

/// What the driver does after `ferry_server_progress`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerryAction {
    /// Output is queued: transmit it all (`ferry_server_transmit` until
    /// it gives 0), then call `ferry_server_progress` again.
    FERRY_ACTION_TRANSMIT = 0,
    /// Nothing moves without news: wait for input (`ferry_server_input`,
    /// `ferry_server_eof`) or the deadline (`ferry_server_timeout`), then
    /// call again.
    FERRY_ACTION_WAIT = 1,
    /// The connection is over (`reason`): transmit what is left, close the
    /// socket, `ferry_server_deinit`.
    FERRY_ACTION_CLOSE = 2,
}

/// `ferry_server_progress`'s answer.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FerryProgress {
    /// What to do next.
    pub action: FerryAction,
    /// CLOSE: why the connection ended (`FERRY_ERROR_CLOSED` for a clean
    /// end); else `FERRY_OK`.
    pub reason: FerryError,
}

/// Bytes of memory a `ferry_server` needs (at most
/// `FERRY_SERVER_STORAGE`).
#[no_mangle]
pub extern "C" fn ferry_server_size() -> usize {
    size_of::<FerryServer>()
}

/// The alignment a `ferry_server`'s memory needs (at most
/// `FERRY_OBJECT_ALIGN`).
#[no_mangle]
pub extern "C" fn ferry_server_align() -> usize {
    align_of::<FerryServer>()
}

/// Builds a server connection in `mem` (as `ferry_client_init`) serving
/// `store` (copied: the callbacks and `ctx` must stay valid until
/// `ferry_server_deinit`) with `config`, and stores its pointer in `*out`.
/// One per accepted connection. Exec requests are refused (EXEC_DISABLED).
///
/// # Safety
/// As `ferry_client_init`; `config` and `store` point at valid structs.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_init(
    mem: *mut u8,
    mem_len: usize,
    config: *const FerryServerConfig,
    store: *const FerryStore,
    inbuf: *mut u8,
    inbuf_len: usize,
    outbuf: *mut u8,
    outbuf_len: usize,
    now_ms: u64,
    out: *mut *mut FerryServer,
) -> FerryError {
    ffi::done(ffi::catch(|| {
        if out.is_null() || config.is_null() || store.is_null() {
            return Err(FerryError::FERRY_ERROR_NULL_POINTER);
        }
        let (inbuf, outbuf) = (
            RawBuf::new(inbuf, inbuf_len)?,
            RawBuf::new(outbuf, outbuf_len)?,
        );
        let at = ffi::check_init::<FerryServer>(mem, mem_len, [&inbuf, &outbuf])?;
        // SAFETY: non-NULL, valid by the contract; integers and
        // nullable function pointers, any bit pattern C can store.
        let (config, ops) = unsafe { (*config, *store) };
        let required = [
            ops.random.is_some(),
            ops.open.is_some(),
            ops.read_at.is_some(),
            ops.begin_upload.is_some(),
            ops.write.is_some(),
            ops.commit.is_some(),
        ];
        if required.contains(&false) {
            return Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT);
        }
        let server = Server::new(
            Instant::from_millis(now_ms),
            config.to_core()?,
            inbuf,
            outbuf,
        )?;
        let obj = FerryServer {
            header: Header::new(FerryServer::MAGIC),
            server,
            session: Session::new(),
            store: CStore { ops, login: None },
            scratch: [0; 256],
        };
        // SAFETY: `at` is checked: aligned, large enough, writable.
        unsafe { at.as_ptr().write(obj) };
        // SAFETY: `out` is valid for a pointer write by the contract.
        unsafe { ffi::put(out, at.as_ptr()) }
    }))
}

/// Ends the server connection: every handle still open goes back to the
/// store (`close`, `abort`, `end_list`), then the memory and buffers are
/// the caller's again.
///
/// # Safety
/// `s` is NULL or points at memory given to `ferry_server_init`.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_deinit(s: *mut FerryServer) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { ffi::deinit(s) }
}

/// Feeds bytes from the client; `*consumed` says how many were taken
/// (fewer when the input buffer is full: progress, then offer the rest).
///
/// # Safety
/// `s` as for every call; `data` points at `len` bytes; `consumed` valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_input(
    s: *mut FerryServer,
    now_ms: u64,
    data: *const u8,
    len: usize,
    consumed: *mut usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            let data = bytes(data, len)?;
            if consumed.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            let n = s.server.handle_input(Instant::from_millis(now_ms), data)?;
            put(consumed, n)
        })
    }
}

/// The client closed the stream.
///
/// # Safety
/// `s` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_eof(s: *mut FerryServer, now_ms: u64) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            s.server.handle_eof(Instant::from_millis(now_ms));
            Ok(())
        })
    }
}

/// Checks deadlines: call when the instant `ferry_server_next_timeout`
/// gave has come.
///
/// # Safety
/// `s` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_timeout(s: *mut FerryServer, now_ms: u64) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            s.server.handle_timeout(Instant::from_millis(now_ms));
            Ok(())
        })
    }
}

/// The next deadline in `*at_ms`, or `UINT64_MAX` when there is none.
///
/// # Safety
/// `s` as for every call; `at_ms` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_next_timeout(
    s: *mut FerryServer,
    at_ms: *mut u64,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            let at = s.server.poll_timeout().map_or(u64::MAX, Instant::as_millis);
            put(at_ms, at)
        })
    }
}

/// Drives the session as far as it goes without new input, answering
/// requests from the store (its callbacks run here), and says what to do
/// next in `*out`. An error return is a bug in the driver or the store:
/// deinitialise the connection.
///
/// # Safety
/// `s` as for every call; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_progress(
    s: *mut FerryServer,
    out: *mut FerryProgress,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            if out.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            let p = s
                .session
                .progress(&mut s.server, &mut s.store, &mut s.scratch)?;
            let (action, reason) = match p {
                Progress::Transmit => (FerryAction::FERRY_ACTION_TRANSMIT, FerryError::FERRY_OK),
                Progress::Wait => (FerryAction::FERRY_ACTION_WAIT, FerryError::FERRY_OK),
                Progress::Closed(e) => (FerryAction::FERRY_ACTION_CLOSE, e.into()),
            };
            put(out, FerryProgress { action, reason })
        })
    }
}

/// Copies up to `cap` queued bytes for the client into `buf`; `*n` says
/// how many (0: nothing queued).
///
/// # Safety
/// `s` as for every call; `buf` points at `cap` writable bytes; `n` valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_transmit(
    s: *mut FerryServer,
    buf: *mut u8,
    cap: usize,
    n: *mut usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            let buf = bytes_mut(buf, cap)?;
            if n.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            let got = s.server.poll_transmit(buf).unwrap_or(0);
            put(n, got)
        })
    }
}

/// Closes the connection with `reason` (a `ferry_error`; BUSY to turn a
/// client away, CLOSED for a shutdown): the client is told, then
/// `ferry_server_progress` says CLOSE.
///
/// # Safety
/// `s` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_close(s: *mut FerryServer, reason: c_int) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(s, |s| {
            let e = FerryError::from_code(reason)
                .and_then(FerryError::to_core)
                .unwrap_or(Error::Closed);
            s.server.close(e);
            Ok(())
        })
    }
}
