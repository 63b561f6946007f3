//! The client: ferry-core's sans-IO `Client` behind C functions. Feed the
//! peer's bytes with `ferry_client_input`, take bytes for the peer with
//! `ferry_client_transmit`, read what happened with
//! `ferry_client_poll_event`, and issue commands (`ferry_client_login`,
//! `ferry_client_put`, `ferry_client_get`, …) that queue output and return
//! at once. The driving contract is ferry-core's (docs/C-API.md).

use core::ffi::{c_char, c_int};
use core::mem::{align_of, offset_of, size_of};

use ferry_core::digest::Sum;
use ferry_core::{Client, ClientEvent, Entry, Error, Instant, Kind, Overwrite, Stream};

use crate::config::FerryConfig;
use crate::error::{CResult, FerryError};
use crate::ffi::{self, bytes, bytes_mut, c_str, put, with, Header, Object, RawBuf};
use crate::server::{FerryEntry, FerrySum};
use crate::FERRY_MAX_TEXT;

/// A client connection. Opaque: C holds a pointer to memory it gave
/// `ferry_client_init` (`ferry_client_size()` bytes aligned to
/// `ferry_client_align()`).
pub struct FerryClient {
    header: Header,
    inner: Client<RawBuf>,
    /// Text of the last event (echo, directory, stored name), with a NUL:
    /// the event points here.
    text: [u8; FERRY_MAX_TEXT + 1],
}

impl Object for FerryClient {
    const MAGIC: u32 = 0xFE44_C11E;
    const HEADER: usize = offset_of!(FerryClient, header);
    fn header(&mut self) -> &mut Header {
        &mut self.header
    }
}

/// What a `ferry_client_event` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerryEventKind {
    /// No event: the input so far completes none.
    FERRY_EVENT_NONE = 0,
    /// The server's hello arrived; log in next (or the login sent early
    /// goes on).
    FERRY_EVENT_CONNECTED = 1,
    /// Login succeeded (with SCRAM, the server proved itself too).
    FERRY_EVENT_LOGGED_IN = 2,
    /// Login refused (`error`); the connection stays open unless a
    /// `CLOSED` follows.
    FERRY_EVENT_LOGIN_FAILED = 3,
    /// The echoed text (`data`, `len`).
    FERRY_EVENT_ECHO = 4,
    /// mkdir, remove or rename succeeded.
    FERRY_EVENT_DONE = 5,
    /// The session's directory (`data`, `len`): the answer to cd and pwd.
    FERRY_EVENT_CWD = 6,
    /// An entry (`entry`): the answer to stat, or one item of a listing.
    FERRY_EVENT_ENTRY = 7,
    /// The remote file's digest (`sum`).
    FERRY_EVENT_SUM = 8,
    /// The listing is complete.
    FERRY_EVENT_LIST_END = 9,
    /// get: the server offers `value` bytes. Answer with
    /// `ferry_client_accept` or `ferry_client_refuse` before polling on.
    FERRY_EVENT_OFFER = 10,
    /// put: accepted; send the body from offset `value` with
    /// `ferry_client_send`. `data` names the stored file when it differs
    /// (keep-both), else NULL.
    FERRY_EVENT_ACCEPTED = 11,
    /// put: the body starts now from offset `value` (a window above 1).
    FERRY_EVENT_SEND_BODY = 12,
    /// A get or put behind the oldest in flight was refused (`error`).
    FERRY_EVENT_REFUSED = 13,
    /// get: body bytes (`data`, `len`), inside the input buffer: valid
    /// until the next call on this client.
    FERRY_EVENT_DATA = 14,
    /// get or put finished: `verified` tells whether the digests matched
    /// (for a put, that the server stored the file); `sum` is this side's.
    FERRY_EVENT_TRANSFER_END = 15,
    /// exec: output (`stream`, `data`, `len`).
    FERRY_EVENT_OUTPUT = 16,
    /// exec: the command ended with `status` (`no_output` if it printed
    /// nothing).
    FERRY_EVENT_EXEC_END = 17,
    /// The request failed (`error`); the session goes on.
    FERRY_EVENT_FAILED = 18,
    /// The connection is over (`error`): transmit what is left, close the
    /// socket.
    FERRY_EVENT_CLOSED = 19,
}

/// One event, written by `ferry_client_poll_event`. Only the fields its
/// kind names are meaningful; the others are zero. `data` points into the
/// client (or its input buffer) and is valid until the next call on it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryClientEvent {
    /// What happened.
    pub kind: FerryEventKind,
    /// LOGIN_FAILED, REFUSED, FAILED, CLOSED: why.
    pub error: FerryError,
    /// OFFER: the file's size; ACCEPTED, SEND_BODY: the resume offset.
    pub value: u64,
    /// DATA, OUTPUT: the bytes; ECHO, CWD, ACCEPTED: UTF-8 text followed
    /// by a NUL (not counted in `len`). NULL when there is none.
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
    /// TRANSFER_END: the digests matched.
    pub verified: bool,
    /// EXEC_END: the command printed nothing.
    pub no_output: bool,
    /// OUTPUT: `FERRY_STREAM_STDOUT` or `FERRY_STREAM_STDERR`.
    pub stream: u8,
    /// EXEC_END: the exit status.
    pub status: i32,
    /// SUM, TRANSFER_END: the digest.
    pub sum: FerrySum,
    /// ENTRY: the entry.
    pub entry: FerryEntry,
}

/// Standard output of a remote command.
pub const FERRY_STREAM_STDOUT: u8 = 1;
/// Standard error of a remote command.
pub const FERRY_STREAM_STDERR: u8 = 2;

/// put: refuse with `EXISTS` when the target exists (the default).
pub const FERRY_OVERWRITE_FAIL: u32 = 0;
/// put: store beside it as `<name>.new`, `<name>.new.1`, …
pub const FERRY_OVERWRITE_KEEP_BOTH: u32 = 1;
/// put: replace it.
pub const FERRY_OVERWRITE_REPLACE: u32 = 2;

/// An overwrite policy from C.
pub(crate) fn overwrite(v: u32) -> CResult<Overwrite> {
    match v {
        FERRY_OVERWRITE_FAIL => Ok(Overwrite::Fail),
        FERRY_OVERWRITE_KEEP_BOTH => Ok(Overwrite::KeepBoth),
        FERRY_OVERWRITE_REPLACE => Ok(Overwrite::Replace),
        _ => Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT),
    }
}

/// A 0/1 flag from C.
pub(crate) fn flag(v: u8) -> CResult<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT),
    }
}

impl FerryClientEvent {
    const EMPTY: FerryClientEvent = FerryClientEvent {
        kind: FerryEventKind::FERRY_EVENT_NONE,
        error: FerryError::FERRY_OK,
        value: 0,
        data: core::ptr::null(),
        len: 0,
        verified: false,
        no_output: false,
        stream: 0,
        status: 0,
        sum: FerrySum::EMPTY,
        entry: FerryEntry::EMPTY,
    };
}

impl FerryClient {
    /// The next event as C sees it.
    fn poll_event(&mut self) -> FerryClientEvent {
        use FerryEventKind::*;
        let mut ev = FerryClientEvent::EMPTY;
        let text = &mut self.text;
        let mut set_text = |ev: &mut FerryClientEvent, s: &str| {
            ev.len = ffi::copy_text(text, s.as_bytes());
            ev.data = text.as_ptr();
        };
        let Some(e) = self.inner.poll_event() else {
            return ev;
        };
        ev.kind = match e {
            ClientEvent::Connected(_) => FERRY_EVENT_CONNECTED,
            ClientEvent::LoggedIn => FERRY_EVENT_LOGGED_IN,
            ClientEvent::LoginFailed(e) => {
                ev.error = e.into();
                FERRY_EVENT_LOGIN_FAILED
            }
            ClientEvent::Echo(t) => {
                set_text(&mut ev, &t);
                FERRY_EVENT_ECHO
            }
            ClientEvent::Done => FERRY_EVENT_DONE,
            ClientEvent::Cwd(p) => {
                set_text(&mut ev, &p);
                FERRY_EVENT_CWD
            }
            ClientEvent::Entry(e) => {
                ev.entry = FerryEntry::from_core(&e);
                FERRY_EVENT_ENTRY
            }
            ClientEvent::Sum(s) => {
                ev.sum = FerrySum::from_core(&s);
                FERRY_EVENT_SUM
            }
            ClientEvent::ListEnd => FERRY_EVENT_LIST_END,
            ClientEvent::Offer { size } => {
                ev.value = size;
                FERRY_EVENT_OFFER
            }
            ClientEvent::Accepted { offset, name } => {
                ev.value = offset;
                if let Some(n) = name {
                    set_text(&mut ev, &n);
                }
                FERRY_EVENT_ACCEPTED
            }
            ClientEvent::SendBody { offset } => {
                ev.value = offset;
                FERRY_EVENT_SEND_BODY
            }
            ClientEvent::Refused(e) => {
                ev.error = e.into();
                FERRY_EVENT_REFUSED
            }
            ClientEvent::Data(d) => {
                (ev.data, ev.len) = (d.as_ptr(), d.len());
                FERRY_EVENT_DATA
            }
            ClientEvent::TransferEnd { verified, sum } => {
                ev.verified = verified;
                ev.sum = FerrySum::from_core(&sum);
                FERRY_EVENT_TRANSFER_END
            }
            ClientEvent::Output { stream, data } => {
                ev.stream = match stream {
                    Stream::Stdout => FERRY_STREAM_STDOUT,
                    Stream::Stderr => FERRY_STREAM_STDERR,
                };
                (ev.data, ev.len) = (data.as_ptr(), data.len());
                FERRY_EVENT_OUTPUT
            }
            ClientEvent::ExecEnd { status, no_output } => {
                (ev.status, ev.no_output) = (status, no_output);
                FERRY_EVENT_EXEC_END
            }
            ClientEvent::Failed(e) => {
                ev.error = e.into();
                FERRY_EVENT_FAILED
            }
            ClientEvent::Closed(e) => {
                ev.error = e.into();
                FERRY_EVENT_CLOSED
            }
        };
        ev
    }
}

/// Runs `f` on the checked client; a core error becomes its code.
///
/// # Safety
/// `c` is NULL or points at memory given to `ferry_client_init`.
unsafe fn client(
    c: *mut FerryClient,
    f: impl FnOnce(&mut Client<RawBuf>) -> Result<(), Error>,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { with(c, |c| f(&mut c.inner).map_err(FerryError::from)) }
}

/// Bytes of memory a `ferry_client` needs (at most
/// `FERRY_CLIENT_STORAGE`).
#[no_mangle]
pub extern "C" fn ferry_client_size() -> usize {
    size_of::<FerryClient>()
}

/// The alignment a `ferry_client`'s memory needs (at most
/// `FERRY_OBJECT_ALIGN`).
#[no_mangle]
pub extern "C" fn ferry_client_align() -> usize {
    align_of::<FerryClient>()
}

/// Builds a client in `mem` (`mem_len` bytes, at least
/// `ferry_client_size()`, aligned to `ferry_client_align()`) and stores
/// its pointer (`== mem`) in `*out`. `inbuf` holds one whole incoming
/// frame (at least `FERRY_MIN_INPUT_BUFFER` bytes) and bounds the largest
/// frame the server may send; `outbuf` (at least `FERRY_MIN_OUTPUT_BUFFER`)
/// the largest sent. `config` NULL means the defaults. `now_ms` is the
/// driver's clock in milliseconds, never going backwards. The memory and
/// both buffers are the client's until `ferry_client_deinit`.
///
/// # Safety
/// `mem` points at `mem_len` writable bytes, `inbuf`/`outbuf` at their
/// lengths, `config` is NULL or a valid `ferry_config`, `out` valid for a
/// pointer write; all may be NULL (an error).
#[no_mangle]
pub unsafe extern "C" fn ferry_client_init(
    mem: *mut u8,
    mem_len: usize,
    config: *const FerryConfig,
    inbuf: *mut u8,
    inbuf_len: usize,
    outbuf: *mut u8,
    outbuf_len: usize,
    now_ms: u64,
    out: *mut *mut FerryClient,
) -> FerryError {
    ffi::done(ffi::catch(|| {
        if out.is_null() {
            return Err(FerryError::FERRY_ERROR_NULL_POINTER);
        }
        let (inbuf, outbuf) = (
            RawBuf::new(inbuf, inbuf_len)?,
            RawBuf::new(outbuf, outbuf_len)?,
        );
        let at = ffi::check_init::<FerryClient>(mem, mem_len, [&inbuf, &outbuf])?;
        let config = match config.is_null() {
            true => ferry_core::Config::default(),
            // SAFETY: non-NULL, valid by the contract; plain integers.
            false => unsafe { *config }.to_core()?,
        };
        let inner = Client::new(Instant::from_millis(now_ms), config, inbuf, outbuf)?;
        let obj = FerryClient {
            header: Header::new(FerryClient::MAGIC),
            inner,
            text: [0; FERRY_MAX_TEXT + 1],
        };
        // SAFETY: `at` is checked: aligned, large enough, writable.
        unsafe { at.as_ptr().write(obj) };
        // SAFETY: `out` is valid for a pointer write by the contract.
        unsafe { ffi::put(out, at.as_ptr()) }
    }))
}

/// Ends the client: its memory and buffers are the caller's again. The
/// pointer is then refused by every function (`NOT_INITIALIZED`) until
/// the memory is initialised again. Does not transmit anything: to close
/// cleanly, transmit what is queued first.
///
/// # Safety
/// `c` is NULL or points at memory given to `ferry_client_init`.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_deinit(c: *mut FerryClient) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { ffi::deinit(c) }
}

/// Feeds bytes from the server; `*consumed` says how many were taken
/// (fewer when the input buffer is full: poll events, then offer the rest).
///
/// # Safety
/// `c` as for every call; `data` points at `len` readable bytes (NULL
/// only with `len` 0); `consumed` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_input(
    c: *mut FerryClient,
    now_ms: u64,
    data: *const u8,
    len: usize,
    consumed: *mut usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let data = bytes(data, len)?;
            if consumed.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            let n = c.inner.handle_input(Instant::from_millis(now_ms), data)?;
            put(consumed, n)
        })
    }
}

/// The server closed the stream: a `CLOSED` event follows.
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_eof(c: *mut FerryClient, now_ms: u64) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        client(c, |c| {
            c.handle_eof(Instant::from_millis(now_ms));
            Ok(())
        })
    }
}

/// Checks deadlines: call when the instant `ferry_client_next_timeout`
/// gave has come.
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_timeout(c: *mut FerryClient, now_ms: u64) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        client(c, |c| {
            c.handle_timeout(Instant::from_millis(now_ms));
            Ok(())
        })
    }
}

/// The next deadline in `*at_ms`, or `UINT64_MAX` when there is none.
///
/// # Safety
/// `c` as for every call; `at_ms` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_next_timeout(
    c: *mut FerryClient,
    at_ms: *mut u64,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let at = c.inner.poll_timeout().map_or(u64::MAX, Instant::as_millis);
            put(at_ms, at)
        })
    }
}

/// Copies up to `cap` queued bytes for the server into `buf`; `*n` says
/// how many (0: nothing queued). Call until it gives 0.
///
/// # Safety
/// `c` as for every call; `buf` points at `cap` writable bytes; `n` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_transmit(
    c: *mut FerryClient,
    buf: *mut u8,
    cap: usize,
    n: *mut usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let buf = bytes_mut(buf, cap)?;
            if n.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            let got = c.inner.poll_transmit(buf).unwrap_or(0);
            put(n, got)
        })
    }
}

/// Writes the next event into `*event` (`FERRY_EVENT_NONE` when the input
/// so far completes none). After any input or command, poll until NONE,
/// answering an OFFER before polling on, then transmit.
///
/// # Safety
/// `c` as for every call; `event` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_poll_event(
    c: *mut FerryClient,
    event: *mut FerryClientEvent,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            if event.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            put(event, c.poll_event())
        })
    }
}

/// Where a client stands, from `ferry_client_get_status`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryClientStatus {
    /// Login completed.
    pub logged_in: bool,
    /// Nothing in flight: any request may be sent.
    pub idle: bool,
    /// The connection is over and every byte was transmitted: close it.
    pub closed: bool,
    /// The protocol version (3 or 2; 2 until the hello arrived).
    pub version: u16,
    /// The negotiated digest's wire id (0 until the hello arrived).
    pub digest: u8,
    /// The negotiated body chunk size (0 until the hello arrived).
    pub chunk: u32,
    /// Body bytes still to send or receive in the transfer in progress.
    pub remaining: u64,
    /// Bytes of a held prefix still to feed (`ferry_client_feed_prefix`).
    pub prefix_needed: u64,
}

/// Writes the client's status into `*out`.
///
/// # Safety
/// `c` as for every call; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_get_status(
    c: *mut FerryClient,
    out: *mut FerryClientStatus,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let c = &c.inner;
            let n = c.negotiated();
            let status = FerryClientStatus {
                logged_in: c.is_logged_in(),
                idle: c.is_idle(),
                closed: c.is_closed(),
                version: c.version(),
                digest: n.map_or(0, |n| n.digest.id()),
                chunk: n.map_or(0, |n| n.chunk),
                remaining: c.remaining(),
                prefix_needed: c.prefix_needed(),
            };
            put(out, status)
        })
    }
}

/// Logs in with SCRAM-SHA-256 as `user` with `password`; `random` is 8 to
/// 32 fresh random bytes for the nonce. May go before the server's hello.
///
/// # Safety
/// `c` as for every call; `user`, `password` NUL-terminated; `random`
/// points at `random_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_login(
    c: *mut FerryClient,
    user: *const c_char,
    password: *const c_char,
    random: *const u8,
    random_len: usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let (user, password) = (c_str(user)?, c_str(password)?);
            let random = bytes(random, random_len)?;
            Ok(c.inner.login(user, password, random)?)
        })
    }
}

/// Logs in anonymously. May go before the server's hello.
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_login_anonymous(c: *mut FerryClient) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { client(c, |c| c.login_anonymous()) }
}

/// Runs a command that takes one path.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated.
unsafe fn path_command(
    c: *mut FerryClient,
    path: *const c_char,
    f: impl FnOnce(&mut Client<RawBuf>, &str) -> Result<(), Error>,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let path = c_str(path)?;
            Ok(f(&mut c.inner, path)?)
        })
    }
}

/// Downloads `path`: an OFFER follows (or FAILED).
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_get(c: *mut FerryClient, path: *const c_char) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.get(p)) }
}

/// Lists the directory `path` ("" for the current one): ENTRY per
/// item, then LIST_END.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_list(c: *mut FerryClient, path: *const c_char) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.list(p)) }
}

/// Describes `path`: one ENTRY.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_stat(c: *mut FerryClient, path: *const c_char) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.stat(p)) }
}

/// The remote file's digest with the negotiated algorithm: one SUM.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_digest(
    c: *mut FerryClient,
    path: *const c_char,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.digest(p)) }
}

/// Changes the session's directory: CWD.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_cd(c: *mut FerryClient, path: *const c_char) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.cd(p)) }
}

/// Creates a directory: DONE.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_mkdir(
    c: *mut FerryClient,
    path: *const c_char,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.mkdir(p)) }
}

/// Removes a file or empty directory: DONE.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_remove(
    c: *mut FerryClient,
    path: *const c_char,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.remove(p)) }
}

/// Runs a command: OUTPUT events, then EXEC_END.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_exec(c: *mut FerryClient, path: *const c_char) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { path_command(c, path, |c, p| c.exec(p)) }
}

/// Asks for the session's directory: CWD.
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_pwd(c: *mut FerryClient) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { client(c, |c| c.pwd()) }
}

/// Echoes `text` (upper-cased by the server when `upper` is 1): ECHO.
///
/// # Safety
/// `c` as for every call; `text` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_echo(
    c: *mut FerryClient,
    text: *const c_char,
    upper: u8,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let (text, upper) = (c_str(text)?, flag(upper)?);
            Ok(c.inner.echo(text, upper)?)
        })
    }
}

/// Renames `from` to `to` (replacing an existing `to` when `replace` is
/// 1, else refused with EXISTS): DONE.
///
/// # Safety
/// `c` as for every call; `from`, `to` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_rename(
    c: *mut FerryClient,
    from: *const c_char,
    to: *const c_char,
    replace: u8,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let (from, to) = (c_str(from)?, c_str(to)?);
            match flag(replace)? {
                true => c.inner.rename_replacing(from, to)?,
                false => c.inner.rename(from, to)?,
            }
            Ok(())
        })
    }
}

/// Uploads `size` bytes to `path` with an overwrite policy
/// (`FERRY_OVERWRITE_*`); `resume` 1 asks to continue a partial upload.
/// ACCEPTED follows: then send the body with `ferry_client_send`.
///
/// # Safety
/// `c` as for every call; `path` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_put(
    c: *mut FerryClient,
    path: *const c_char,
    size: u64,
    overwrite_policy: u32,
    resume: u8,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let path = c_str(path)?;
            let (ow, resume) = (overwrite(overwrite_policy)?, flag(resume)?);
            Ok(c.inner.put(path, size, ow, resume)?)
        })
    }
}

/// Answers an OFFER: send the body from `offset` (bytes already held;
/// feed them with `ferry_client_feed_prefix` before polling on).
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_accept(c: *mut FerryClient, offset: u64) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { client(c, |c| c.accept(offset)) }
}

/// Refuses an OFFER with `reason` (a `ferry_error`; a code that is not a
/// protocol error goes out as IO).
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_refuse(c: *mut FerryClient, reason: c_int) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { client(c, |c| c.refuse(FerryError::core_from_c(reason))) }
}

/// Cancels the transfer in progress with `reason` (as for refuse); the
/// session goes on, nothing is marked verified.
///
/// # Safety
/// `c` as for every call.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_cancel(c: *mut FerryClient, reason: c_int) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe { client(c, |c| c.cancel(FerryError::core_from_c(reason))) }
}

/// Sends put body bytes, copying what fits into the output buffer now;
/// `*taken` says how many (0 when it is full: transmit, then call again).
/// The digest trailer follows the last byte by itself.
///
/// # Safety
/// `c` as for every call; `data` points at `len` bytes; `taken` valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_send(
    c: *mut FerryClient,
    data: *const u8,
    len: usize,
    taken: *mut usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let data = bytes(data, len)?;
            if taken.is_null() {
                return Err(FerryError::FERRY_ERROR_NULL_POINTER);
            }
            if data.len() as u64 > c.inner.remaining() {
                return Err(FerryError::FERRY_ERROR_BAD_USAGE);
            }
            let n = c.inner.send_with(|buf| {
                let n = buf.len().min(data.len());
                buf[..n].copy_from_slice(&data[..n]);
                (n, n)
            })?;
            put(taken, n)
        })
    }
}

/// Feeds bytes `0..offset` this side already holds (a resume), in order,
/// before any body byte, so the digest covers the whole file.
///
/// # Safety
/// `c` as for every call; `data` points at `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ferry_client_feed_prefix(
    c: *mut FerryClient,
    data: *const u8,
    len: usize,
) -> FerryError {
    // SAFETY: forwarded contract.
    unsafe {
        with(c, |c| {
            let data = bytes(data, len)?;
            Ok(c.inner.feed_prefix(data)?)
        })
    }
}

impl FerryEntry {
    /// The core entry as C sees it.
    pub(crate) fn from_core(e: &Entry) -> FerryEntry {
        let mut out = FerryEntry::EMPTY;
        let mut name = [0u8; crate::FERRY_MAX_NAME + 1];
        ffi::copy_text(&mut name, e.name.as_bytes());
        for (d, s) in out.name.iter_mut().zip(name) {
            *d = c_char::from_ne_bytes([s]);
        }
        out.kind = match e.kind {
            Kind::File => crate::server::FERRY_KIND_FILE,
            Kind::Dir => crate::server::FERRY_KIND_DIR,
            Kind::Symlink => crate::server::FERRY_KIND_SYMLINK,
            Kind::Other => crate::server::FERRY_KIND_OTHER,
        };
        (out.size, out.modified, out.mode) = (e.size, e.modified, e.mode);
        out
    }
}

impl FerrySum {
    /// The core digest as C sees it.
    pub(crate) fn from_core(s: &Sum) -> FerrySum {
        let mut out = FerrySum::EMPTY;
        let b = s.as_bytes();
        out.algorithm = s.algorithm().id();
        out.len = b.len() as u8;
        out.bytes[..b.len()].copy_from_slice(b);
        out
    }
}
