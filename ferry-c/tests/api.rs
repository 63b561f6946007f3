//! The C API driven from Rust as a C program would: a client and a server
//! wired together in memory, the server's store being `extern "C"`
//! callbacks over a Rust map. Checks transfers, listings, SCRAM logins
//! and that every entry point refuses bad pointers and lengths.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};

use ferry_c::client::*;
use ferry_c::config::*;
use ferry_c::server::*;
use ferry_c::*;

use FerryError::*;

/// Object memory: aligned for both objects.
#[repr(C, align(16))]
struct Mem([u8; 8192]);

#[derive(Default)]
struct Files {
    files: BTreeMap<String, Vec<u8>>,
    /// The verifier `verifier` answers for user "alice".
    alice: Option<CString>,
    aborted: Vec<c_int>,
    /// Commits whose digest was not the data's (asserted after the run:
    /// a panic must not unwind out of a callback).
    bad_sums: usize,
    open_handles: i32,
    open_lists: i32,
    /// The server, for `stat` to call back into (which it must not).
    server: *mut FerryServer,
    /// What those calls back answered.
    reentry: Vec<FerryError>,
}

struct Upload {
    name: String,
    data: Vec<u8>,
}

unsafe fn files<'a>(ctx: *mut c_void) -> &'a mut Files {
    unsafe { &mut *ctx.cast::<Files>() }
}

unsafe fn path(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string()
}

unsafe extern "C" fn random(_: *mut c_void, buf: *mut u8, len: usize) -> c_int {
    unsafe { std::slice::from_raw_parts_mut(buf, len) }.fill(9);
    0
}

unsafe extern "C" fn verifier(
    ctx: *mut c_void,
    user: *const c_char,
    out: *mut c_char,
    cap: usize,
) -> c_int {
    let f = unsafe { files(ctx) };
    match (unsafe { CStr::from_ptr(user) }.to_bytes(), &f.alice) {
        (b"alice", Some(v)) => {
            let b = v.as_bytes_with_nul();
            assert!(b.len() <= cap);
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr().cast(), out, b.len()) };
            0
        }
        _ => FERRY_ERROR_NOT_FOUND as c_int,
    }
}

unsafe extern "C" fn open(
    ctx: *mut c_void,
    p: *const c_char,
    file: *mut *mut c_void,
    size: *mut u64,
) -> c_int {
    let f = unsafe { files(ctx) };
    let name = unsafe { path(p) };
    let Some(data) = f.files.get(&name) else {
        return FERRY_ERROR_NOT_FOUND as c_int;
    };
    f.open_handles += 1;
    unsafe {
        *size = data.len() as u64;
        *file = Box::into_raw(Box::new(name)).cast();
    }
    0
}

unsafe extern "C" fn read_at(
    ctx: *mut c_void,
    file: *mut c_void,
    at: u64,
    buf: *mut u8,
    len: usize,
    n: *mut usize,
) -> c_int {
    let f = unsafe { files(ctx) };
    let name = unsafe { &*file.cast::<String>() };
    let data = &f.files[name][at as usize..];
    let k = data.len().min(len);
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, k);
        *n = k;
    }
    0
}

unsafe extern "C" fn close(ctx: *mut c_void, file: *mut c_void) {
    unsafe { files(ctx) }.open_handles -= 1;
    drop(unsafe { Box::from_raw(file.cast::<String>()) });
}

unsafe extern "C" fn begin_upload(
    ctx: *mut c_void,
    p: *const c_char,
    _size: u64,
    overwrite: u32,
    _resume: u8,
    upload: *mut *mut c_void,
    _offset: *mut u64,
) -> c_int {
    let name = unsafe { path(p) };
    if overwrite == FERRY_OVERWRITE_FAIL && unsafe { files(ctx) }.files.contains_key(&name) {
        return FERRY_ERROR_EXISTS as c_int;
    }
    let up = Upload {
        name,
        data: Vec::new(),
    };
    unsafe { *upload = Box::into_raw(Box::new(up)).cast() };
    0
}

unsafe extern "C" fn write(
    _: *mut c_void,
    upload: *mut c_void,
    data: *const u8,
    len: usize,
) -> c_int {
    let up = unsafe { &mut *upload.cast::<Upload>() };
    up.data
        .extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    0
}

unsafe extern "C" fn commit(ctx: *mut c_void, upload: *mut c_void, sum: *const FerrySum) -> c_int {
    let up = unsafe { Box::from_raw(upload.cast::<Upload>()) };
    let f = unsafe { files(ctx) };
    if !sum_matches(unsafe { &*sum }, &up.data) {
        f.bad_sums += 1;
    }
    f.files.insert(up.name, up.data);
    0
}

unsafe extern "C" fn abort(ctx: *mut c_void, upload: *mut c_void, why: c_int) {
    drop(unsafe { Box::from_raw(upload.cast::<Upload>()) });
    unsafe { files(ctx) }.aborted.push(why);
}

unsafe extern "C" fn list(ctx: *mut c_void, _: *const c_char, listing: *mut *mut c_void) -> c_int {
    unsafe { files(ctx) }.open_lists += 1;
    unsafe { *listing = Box::into_raw(Box::new(0usize)).cast() };
    0
}

unsafe extern "C" fn next_entry(
    ctx: *mut c_void,
    listing: *mut c_void,
    entry: *mut FerryEntry,
    more: *mut u8,
) -> c_int {
    let i = unsafe { &mut *listing.cast::<usize>() };
    let f = unsafe { files(ctx) };
    match f.files.iter().nth(*i) {
        Some((name, data)) => {
            let e = unsafe { &mut *entry };
            for (d, s) in e.name.iter_mut().zip(name.bytes().chain([0])) {
                *d = s as c_char;
            }
            e.size = data.len() as u64;
            e.kind = FERRY_KIND_FILE;
            *i += 1;
            unsafe { *more = 1 };
        }
        None => unsafe { *more = 0 },
    }
    0
}

unsafe extern "C" fn end_list(ctx: *mut c_void, listing: *mut c_void) {
    unsafe { files(ctx) }.open_lists -= 1;
    drop(unsafe { Box::from_raw(listing.cast::<usize>()) });
}

/// Whether `sum` is the digest of `data` with its algorithm (whichever
/// the two ends chose: MD5 alone, or BLAKE3 when a workspace build turns
/// the core's digests on).
fn sum_matches(sum: &FerrySum, data: &[u8]) -> bool {
    let Some(alg) = ferry_core::digest::Algorithm::from_id(sum.algorithm) else {
        return false;
    };
    let want = ferry_core::digest::digest(alg, data).unwrap();
    &sum.bytes[..usize::from(sum.len)] == want.as_bytes()
}

/// A misbehaving store: calls back into its own server from a callback.
unsafe extern "C" fn stat_reentering(
    ctx: *mut c_void,
    _: *const c_char,
    _: *mut FerryEntry,
) -> c_int {
    let f = unsafe { files(ctx) };
    let mut p = FerryProgress {
        action: FerryAction::FERRY_ACTION_WAIT,
        reason: FERRY_OK,
    };
    f.reentry
        .push(unsafe { ferry_server_progress(f.server, &mut p) });
    f.reentry.push(unsafe { ferry_server_deinit(f.server) });
    FERRY_ERROR_NOT_FOUND as c_int
}

fn store(ctx: &mut Files) -> FerryStore {
    FerryStore {
        ctx: (ctx as *mut Files).cast(),
        random: Some(random),
        verifier: Some(verifier),
        open: Some(open),
        read_at: Some(read_at),
        close: Some(close),
        begin_upload: Some(begin_upload),
        read_part_at: None,
        write: Some(write),
        commit: Some(commit),
        abort: Some(abort),
        list: Some(list),
        next_entry: Some(next_entry),
        end_list: Some(end_list),
        stat: Some(stat_reentering),
        mkdir: None,
        remove: None,
        rename: None,
    }
}

/// A client and a server over the C API, wired in memory.
struct Pair {
    _mem: Box<(Mem, Mem)>,
    _bufs: Box<[[u8; 4096]; 4]>,
    client: *mut FerryClient,
    server: *mut FerryServer,
    now: u64,
    closed: Option<FerryError>,
}

impl Pair {
    fn new(files: &mut Files, anonymous: bool) -> Pair {
        let mut mem = Box::new((Mem([0; 8192]), Mem([0; 8192])));
        let mut bufs = Box::new([[0u8; 4096]; 4]);
        let [a, b, c, d] = &mut *bufs;
        let (mut client, mut server) = (null_mut(), null_mut());
        let mut sc = std::mem::MaybeUninit::uninit();
        unsafe {
            assert_eq!(ferry_server_config_default(sc.as_mut_ptr()), FERRY_OK);
            let mut sc: FerryServerConfig = sc.assume_init();
            sc.allow_anonymous = u8::from(anonymous);
            sc.secret = [3; 32];
            let st = store(files);
            let r = ferry_client_init(
                mem.0 .0.as_mut_ptr(),
                8192,
                null(),
                a.as_mut_ptr(),
                4096,
                b.as_mut_ptr(),
                4096,
                0,
                &mut client,
            );
            assert_eq!(r, FERRY_OK);
            let r = ferry_server_init(
                mem.1 .0.as_mut_ptr(),
                8192,
                &sc,
                &st,
                c.as_mut_ptr(),
                4096,
                d.as_mut_ptr(),
                4096,
                0,
                &mut server,
            );
            assert_eq!(r, FERRY_OK);
        }
        files.server = server;
        Pair {
            _mem: mem,
            _bufs: bufs,
            client,
            server,
            now: 0,
            closed: None,
        }
    }

    /// Moves bytes both ways, running the server and polling the
    /// client, until neither side has anything to send; returns the
    /// client's events (data copied out).
    fn step(&mut self) -> Vec<(FerryClientEvent, Vec<u8>)> {
        let mut wire = [0u8; 700]; // smaller than a frame: splits them
        let mut events = Vec::new();
        unsafe {
            self.progress();
            loop {
                let mut moved = false;
                loop {
                    let mut n = 0;
                    assert_eq!(
                        ferry_client_transmit(self.client, wire.as_mut_ptr(), wire.len(), &mut n),
                        FERRY_OK
                    );
                    if n == 0 {
                        break;
                    }
                    moved = true;
                    let mut off = 0;
                    while off < n {
                        let mut took = 0;
                        let r = ferry_server_input(
                            self.server,
                            self.now,
                            wire[off..].as_ptr(),
                            n - off,
                            &mut took,
                        );
                        assert_eq!(r, FERRY_OK);
                        off += took;
                        self.progress();
                    }
                }
                self.progress();
                loop {
                    let mut n = 0;
                    assert_eq!(
                        ferry_server_transmit(self.server, wire.as_mut_ptr(), wire.len(), &mut n),
                        FERRY_OK
                    );
                    if n == 0 {
                        break;
                    }
                    moved = true;
                    let mut off = 0;
                    while off < n {
                        let mut took = 0;
                        let r = ferry_client_input(
                            self.client,
                            self.now,
                            wire[off..].as_ptr(),
                            n - off,
                            &mut took,
                        );
                        assert_eq!(r, FERRY_OK);
                        off += took;
                        self.poll(&mut events);
                    }
                    self.progress();
                }
                if !moved {
                    break;
                }
            }
        }
        events
    }

    fn poll(&mut self, events: &mut Vec<(FerryClientEvent, Vec<u8>)>) {
        unsafe {
            loop {
                let mut ev = std::mem::MaybeUninit::uninit();
                assert_eq!(
                    ferry_client_poll_event(self.client, ev.as_mut_ptr()),
                    FERRY_OK
                );
                let ev = ev.assume_init();
                if ev.kind == FerryEventKind::FERRY_EVENT_NONE {
                    break;
                }
                let data = match ev.data.is_null() {
                    true => Vec::new(),
                    false => std::slice::from_raw_parts(ev.data, ev.len).to_vec(),
                };
                events.push((ev, data));
            }
        }
    }

    fn progress(&mut self) {
        let mut p = FerryProgress {
            action: FerryAction::FERRY_ACTION_WAIT,
            reason: FERRY_OK,
        };
        assert_eq!(
            unsafe { ferry_server_progress(self.server, &mut p) },
            FERRY_OK
        );
        if p.action == FerryAction::FERRY_ACTION_CLOSE {
            self.closed = Some(p.reason);
        }
    }

    fn kinds(events: &[(FerryClientEvent, Vec<u8>)]) -> Vec<FerryEventKind> {
        events.iter().map(|e| e.0.kind).collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        unsafe {
            assert_eq!(ferry_client_deinit(self.client), FERRY_OK);
            assert_eq!(ferry_server_deinit(self.server), FERRY_OK);
        }
    }
}

use FerryEventKind::*;

#[test]
fn put_list_get_through_the_c_api() {
    let mut files = Files::default();
    let body: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let mut p = Pair::new(&mut files, true);
        unsafe { assert_eq!(ferry_client_login_anonymous(p.client), FERRY_OK) };
        let ev = p.step();
        assert_eq!(
            Pair::kinds(&ev),
            [FERRY_EVENT_CONNECTED, FERRY_EVENT_LOGGED_IN]
        );

        let name = CString::new("/data.bin").unwrap();
        unsafe {
            assert_eq!(
                ferry_client_put(
                    p.client,
                    name.as_ptr(),
                    body.len() as u64,
                    FERRY_OVERWRITE_FAIL,
                    0
                ),
                FERRY_OK
            );
        }
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_ACCEPTED]);
        let (mut sent, mut end) = (0, None);
        while end.is_none() {
            loop {
                let mut took = 0;
                let r = unsafe {
                    ferry_client_send(
                        p.client,
                        body[sent..].as_ptr(),
                        body.len() - sent,
                        &mut took,
                    )
                };
                assert_eq!(r, FERRY_OK);
                sent += took;
                if took == 0 || sent == body.len() {
                    break;
                }
            }
            end = p
                .step()
                .into_iter()
                .find(|e| e.0.kind == FERRY_EVENT_TRANSFER_END);
        }
        let (end, _) = end.unwrap();
        assert!(end.verified);
        assert!(sum_matches(&end.sum, &body));

        // The same put again is refused by the store: FAILED with EXISTS.
        unsafe {
            assert_eq!(
                ferry_client_put(p.client, name.as_ptr(), 3, FERRY_OVERWRITE_FAIL, 0),
                FERRY_OK
            )
        };
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_FAILED]);
        assert_eq!(ev[0].0.error, FERRY_ERROR_EXISTS);

        let dir = CString::new("").unwrap();
        unsafe { assert_eq!(ferry_client_list(p.client, dir.as_ptr()), FERRY_OK) };
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_ENTRY, FERRY_EVENT_LIST_END]);
        let e = &ev[0].0.entry;
        assert_eq!(
            unsafe { CStr::from_ptr(e.name.as_ptr()) }.to_str(),
            Ok("data.bin")
        );
        assert_eq!(e.size, body.len() as u64);

        // A store calling back into its server is refused, not followed.
        unsafe { assert_eq!(ferry_client_stat(p.client, name.as_ptr()), FERRY_OK) };
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_FAILED]);
        assert_eq!(ev[0].0.error, FERRY_ERROR_NOT_FOUND);

        unsafe { assert_eq!(ferry_client_get(p.client, name.as_ptr()), FERRY_OK) };
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_OFFER]);
        assert_eq!(ev[0].0.value, body.len() as u64);
        // An offer waits for its answer.
        assert_eq!(Pair::kinds(&p.step()), []);
        unsafe { assert_eq!(ferry_client_accept(p.client, 0), FERRY_OK) };
        let mut got = Vec::new();
        let mut verified = None;
        for _ in 0..100 {
            for (e, d) in p.step() {
                match e.kind {
                    FERRY_EVENT_DATA => got.extend_from_slice(&d),
                    FERRY_EVENT_TRANSFER_END => verified = Some(e.verified),
                    k => panic!("unexpected {k:?}"),
                }
            }
            if verified.is_some() {
                break;
            }
        }
        assert_eq!(verified, Some(true));
        assert_eq!(got, body);
        // Every get handle went back to the store.
        unsafe {
            assert_eq!(
                ferry_server_close(p.server, FERRY_ERROR_CLOSED as c_int),
                FERRY_OK
            )
        };
        let ev = p.step();
        assert_eq!(Pair::kinds(&ev), [FERRY_EVENT_CLOSED]);
        assert_eq!(p.closed, Some(FERRY_ERROR_CLOSED));
    }
    assert_eq!(files.files["data.bin"], body);
    assert_eq!(files.bad_sums, 0);
    assert_eq!((files.open_handles, files.open_lists), (0, 0));
    assert_eq!(
        files.reentry,
        [FERRY_ERROR_BAD_USAGE, FERRY_ERROR_BAD_USAGE]
    );
}

/// Every handle comes back to the store exactly once: a cancelled upload
/// to `abort` with the client's reason, one cut short by deinit with
/// CLOSED; nothing is stored for either.
#[test]
fn handles_come_back_on_cancel_and_deinit() {
    let mut files = Files::default();
    let body = [7u8; 30_000];
    let name = c"/cut.bin";
    let send_some = |p: &mut Pair| {
        let mut took = 0;
        let r = unsafe { ferry_client_send(p.client, body.as_ptr(), 5000, &mut took) };
        assert_eq!(r, FERRY_OK);
        assert!(took > 0);
        p.step();
    };
    {
        let mut p = Pair::new(&mut files, true);
        unsafe { assert_eq!(ferry_client_login_anonymous(p.client), FERRY_OK) };
        p.step();
        unsafe {
            let r = ferry_client_put(
                p.client,
                name.as_ptr(),
                body.len() as u64,
                FERRY_OVERWRITE_FAIL,
                0,
            );
            assert_eq!(r, FERRY_OK);
        }
        assert_eq!(Pair::kinds(&p.step()), [FERRY_EVENT_ACCEPTED]);
        send_some(&mut p);
        let mut st = std::mem::MaybeUninit::uninit();
        unsafe { assert_eq!(ferry_client_get_status(p.client, st.as_mut_ptr()), FERRY_OK) };
        let st = unsafe { st.assume_init() };
        assert!(st.logged_in && !st.idle && st.remaining > 0 && st.remaining < body.len() as u64);
        unsafe {
            assert_eq!(
                ferry_client_cancel(p.client, FERRY_ERROR_CANCELLED as c_int),
                FERRY_OK
            )
        };
        let ev = p.step();
        assert!(
            ev.iter().all(|e| e.0.kind != FERRY_EVENT_TRANSFER_END),
            "{:?}",
            Pair::kinds(&ev)
        );

        // The session goes on: the same put again, cut short by deinit.
        unsafe {
            let r = ferry_client_put(
                p.client,
                name.as_ptr(),
                body.len() as u64,
                FERRY_OVERWRITE_FAIL,
                0,
            );
            assert_eq!(r, FERRY_OK);
        }
        assert_eq!(Pair::kinds(&p.step()), [FERRY_EVENT_ACCEPTED]);
        send_some(&mut p);
    }
    assert_eq!(
        files.aborted,
        [FERRY_ERROR_CANCELLED as c_int, FERRY_ERROR_CLOSED as c_int]
    );
    assert!(files.files.is_empty());
}

#[test]
fn scram_login_with_the_stores_verifier() {
    let mut files = Files::default();
    let v = ferry_core::auth::Verifier::new("s3cret", b"salty", 64).unwrap();
    files.alice = Some(CString::new(v.to_string()).unwrap());
    let mut p = Pair::new(&mut files, false);
    let (user, good, bad) = (c"alice", c"s3cret", c"wrong");
    let random = [5u8; 16];
    unsafe {
        assert_eq!(
            ferry_client_login(p.client, user.as_ptr(), bad.as_ptr(), random.as_ptr(), 16),
            FERRY_OK
        );
    }
    let ev = p.step();
    assert_eq!(
        Pair::kinds(&ev),
        [FERRY_EVENT_CONNECTED, FERRY_EVENT_LOGIN_FAILED]
    );
    assert_eq!(ev[1].0.error, FERRY_ERROR_AUTH_FAILED);
    unsafe {
        assert_eq!(
            ferry_client_login(p.client, user.as_ptr(), good.as_ptr(), random.as_ptr(), 16),
            FERRY_OK
        );
    }
    assert_eq!(Pair::kinds(&p.step()), [FERRY_EVENT_LOGGED_IN]);
}

#[test]
fn every_entry_point_refuses_bad_pointers_and_sizes() {
    let mut mem = Box::new(Mem([0; 8192]));
    let (mut inb, mut outb) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut c = null_mut();
    let base = mem.0.as_mut_ptr();
    unsafe {
        let init = |m: *mut u8, len, i: *mut u8, il, o: *mut u8, ol, out: *mut *mut FerryClient| {
            ferry_client_init(m, len, null(), i, il, o, ol, 0, out)
        };
        let (i, o) = (inb.as_mut_ptr(), outb.as_mut_ptr());
        assert_eq!(
            init(null_mut(), 8192, i, 4096, o, 4096, &mut c),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(
            init(base, 8192, i, 4096, o, 4096, null_mut()),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(
            init(base, 8192, null_mut(), 4096, o, 4096, &mut c),
            FERRY_ERROR_NULL_POINTER
        );
        if ferry_client_align() > 1 {
            assert_eq!(
                init(base.add(1), 8000, i, 4096, o, 4096, &mut c),
                FERRY_ERROR_MISALIGNED
            );
        }
        let size = ferry_client_size();
        assert!(size <= FERRY_CLIENT_STORAGE && ferry_client_align() <= FERRY_OBJECT_ALIGN);
        assert_eq!(
            init(base, size - 1, i, 4096, o, 4096, &mut c),
            FERRY_ERROR_TOO_SMALL
        );
        assert_eq!(
            init(base, size, i, FERRY_MIN_INPUT_BUFFER - 1, o, 4096, &mut c),
            FERRY_ERROR_TOO_SMALL
        );
        assert_eq!(
            init(base, size, i, 4096, o, FERRY_MIN_OUTPUT_BUFFER - 1, &mut c),
            FERRY_ERROR_TOO_SMALL
        );
        // Overlaps: a buffer inside the object, the two buffers sharing bytes.
        assert_eq!(
            init(base, size, base.add(8), 4096, o, 4096, &mut c),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            init(base, size, i, 4096, i.add(100), 2048, &mut c),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        let mut cfg = std::mem::MaybeUninit::uninit();
        assert_eq!(ferry_config_default(cfg.as_mut_ptr()), FERRY_OK);
        let mut cfg: FerryConfig = cfg.assume_init();
        cfg.chunk_size = 0;
        assert_eq!(
            ferry_client_init(base, size, &cfg, i, 4096, o, 4096, 0, &mut c),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        // Not initialised yet: zeroed memory is refused.
        let fake = base.cast::<FerryClient>();
        assert_eq!(
            ferry_client_login_anonymous(fake),
            FERRY_ERROR_NOT_INITIALIZED
        );
        assert_eq!(
            ferry_client_login_anonymous(null_mut()),
            FERRY_ERROR_NULL_POINTER
        );

        assert_eq!(init(base, size, i, 4096, o, 4096, &mut c), FERRY_OK);
        assert_eq!(c, fake);
        // A client is not a server.
        assert_eq!(ferry_server_eof(c.cast(), 0), FERRY_ERROR_NOT_INITIALIZED);
        let mut n = 0;
        assert_eq!(
            ferry_client_transmit(c, null_mut(), 10, &mut n),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(
            ferry_client_transmit(c, o, 0, null_mut()),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(
            ferry_client_input(c, 0, null(), 5, &mut n),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(ferry_client_input(c, 0, null(), 0, &mut n), FERRY_OK);
        assert_eq!(
            ferry_client_poll_event(c, null_mut()),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(ferry_client_get(c, null()), FERRY_ERROR_NULL_POINTER);
        let not_utf8 = [0xffu8, 0xfe, 0];
        assert_eq!(
            ferry_client_get(c, not_utf8.as_ptr().cast()),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        // Commands in the wrong state are the core's BAD_USAGE.
        assert_eq!(ferry_client_accept(c, 0), FERRY_ERROR_BAD_USAGE);
        assert_eq!(
            ferry_client_put(c, c"x".as_ptr(), 1, 7, 0),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            ferry_client_put(c, c"x".as_ptr(), 1, 0, 2),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            ferry_client_send(c, [1u8].as_ptr(), 1, &mut n),
            FERRY_ERROR_BAD_USAGE
        );
        assert_eq!(
            ferry_client_login(c, c"u".as_ptr(), c"p".as_ptr(), [1u8].as_ptr(), 1),
            FERRY_ERROR_BAD_USAGE
        );
        let mut at = 0;
        assert_eq!(ferry_client_next_timeout(c, &mut at), FERRY_OK);
        assert_eq!(at, 30_000, "the handshake deadline");

        assert_eq!(ferry_client_deinit(c), FERRY_OK);
        assert_eq!(ferry_client_deinit(c), FERRY_ERROR_NOT_INITIALIZED);
        assert_eq!(ferry_client_login_anonymous(c), FERRY_ERROR_NOT_INITIALIZED);

        // A server needs its config, its store and the required callbacks.
        let mut files = Files::default();
        let mut st = store(&mut files);
        let mut sc = std::mem::MaybeUninit::uninit();
        assert_eq!(ferry_server_config_default(sc.as_mut_ptr()), FERRY_OK);
        let sc = sc.assume_init();
        let mut s = null_mut();
        let ssize = ferry_server_size();
        assert!(ssize <= FERRY_SERVER_STORAGE && ferry_server_align() <= FERRY_OBJECT_ALIGN);
        assert_eq!(
            ferry_server_init(base, ssize, null(), &st, i, 4096, o, 4096, 0, &mut s),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(
            ferry_server_init(base, ssize, &sc, null(), i, 4096, o, 4096, 0, &mut s),
            FERRY_ERROR_NULL_POINTER
        );
        st.commit = None;
        assert_eq!(
            ferry_server_init(base, ssize, &sc, &st, i, 4096, o, 4096, 0, &mut s),
            FERRY_ERROR_INVALID_ARGUMENT
        );
        st.commit = Some(commit);
        assert_eq!(
            ferry_server_init(base, ssize, &sc, &st, i, 4096, o, 4096, 0, &mut s),
            FERRY_OK
        );
        assert_eq!(
            ferry_server_progress(s, null_mut()),
            FERRY_ERROR_NULL_POINTER
        );
        assert_eq!(ferry_server_deinit(s), FERRY_OK);
    }
}

#[test]
fn errors_and_versions_as_c_sees_them() {
    use std::mem::size_of;
    assert_eq!(ferry_abi_version(), FERRY_C_ABI_VERSION);
    let sizes = (
        size_of::<FerryError>(),
        size_of::<FerryClientEvent>(),
        size_of::<FerryStore>(),
        size_of::<FerryServerConfig>(),
    );
    let check = |v, (a, b, c, d)| ferry_abi_check(v, a, b, c, d);
    assert_eq!(check(FERRY_C_ABI_VERSION, sizes), FERRY_OK);
    assert_eq!(
        check(FERRY_C_ABI_VERSION + 1, sizes),
        FERRY_ERROR_INVALID_ARGUMENT
    );
    // A C compiler with other enum sizes sees another event struct.
    let (a, b, c, d) = sizes;
    assert_eq!(
        check(FERRY_C_ABI_VERSION, (1, b, c, d)),
        FERRY_ERROR_INVALID_ARGUMENT
    );
    assert_eq!(
        check(FERRY_C_ABI_VERSION, (a, b + 8, c, d)),
        FERRY_ERROR_INVALID_ARGUMENT
    );
    let msg =
        unsafe { CStr::from_ptr(ferry_error::ferry_error_str(FERRY_ERROR_NOT_FOUND as c_int)) };
    assert_eq!(msg.to_str(), Ok("not found"));
}

mod ferry_error {
    pub use ferry_c::error::ferry_error_str;
}
