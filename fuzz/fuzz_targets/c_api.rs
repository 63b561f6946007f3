//! The C API (ferry-c) driven as a careless C program would: the input is
//! a script of calls on a client and a server wired together — feeding
//! either side arbitrary bytes or the other's output, commands with
//! arbitrary strings (not always UTF-8), offsets, codes and lengths, NULL
//! pointers, clocks that jump, re-initialisation on misaligned or short
//! memory and buffers. No call may panic (FERRY_ERROR_PANIC) or touch
//! memory it was not given (the fuzzer's AddressSanitizer), and every
//! event's bytes are read in full.
#![no_main]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr::{null, null_mut};

use ferry_c::client::*;
use ferry_c::config::*;
use ferry_c::server::*;
use ferry_c::FerryError::{self, *};
use libfuzzer_sys::fuzz_target;

/// Reads the script.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    /// A NUL-terminated string of up to 31 script bytes (any bytes).
    fn string(&mut self) -> CString {
        let n = usize::from(self.byte() % 32);
        let b: Vec<u8> = self.bytes(n).iter().map(|&b| b.max(1)).collect();
        CString::new(b).unwrap()
    }
}

fn ok(what: &str, e: FerryError) {
    assert_ne!(e, FERRY_ERROR_PANIC, "{what} panicked");
}

// ---- a store over a map, as C callbacks ----

#[derive(Default)]
struct Files {
    files: BTreeMap<Vec<u8>, Vec<u8>>,
}

unsafe fn files<'a>(ctx: *mut c_void) -> &'a mut Files {
    unsafe { &mut *ctx.cast() }
}

unsafe fn name(p: *const c_char) -> Vec<u8> {
    unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec()
}

unsafe extern "C" fn random(_: *mut c_void, buf: *mut u8, len: usize) -> c_int {
    unsafe { std::slice::from_raw_parts_mut(buf, len) }.fill(1);
    0
}

unsafe extern "C" fn open(ctx: *mut c_void, p: *const c_char, file: *mut *mut c_void, size: *mut u64) -> c_int {
    let key = unsafe { name(p) };
    match unsafe { files(ctx) }.files.get(&key) {
        Some(d) => unsafe {
            *size = d.len() as u64;
            *file = Box::into_raw(Box::new(key)).cast();
            0
        },
        None => FERRY_ERROR_NOT_FOUND as c_int,
    }
}

unsafe extern "C" fn read_at(
    ctx: *mut c_void,
    file: *mut c_void,
    at: u64,
    buf: *mut u8,
    len: usize,
    n: *mut usize,
) -> c_int {
    let key = unsafe { &*file.cast::<Vec<u8>>() };
    let Some(d) = unsafe { files(ctx) }.files.get(key) else { return FERRY_ERROR_IO as c_int };
    let rest = d.get(at as usize..).unwrap_or(&[]);
    let k = rest.len().min(len);
    unsafe {
        std::ptr::copy_nonoverlapping(rest.as_ptr(), buf, k);
        *n = k;
    }
    0
}

unsafe extern "C" fn close(_: *mut c_void, file: *mut c_void) {
    drop(unsafe { Box::from_raw(file.cast::<Vec<u8>>()) });
}

unsafe extern "C" fn begin_upload(
    _: *mut c_void,
    p: *const c_char,
    size: u64,
    _: u32,
    _: u8,
    upload: *mut *mut c_void,
    _: *mut u64,
) -> c_int {
    if size > 1 << 20 {
        return FERRY_ERROR_TOO_LARGE as c_int;
    }
    let up = (unsafe { name(p) }, Vec::<u8>::new());
    unsafe { *upload = Box::into_raw(Box::new(up)).cast() };
    0
}

unsafe extern "C" fn write(_: *mut c_void, upload: *mut c_void, data: *const u8, len: usize) -> c_int {
    let up = unsafe { &mut *upload.cast::<(Vec<u8>, Vec<u8>)>() };
    up.1.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    0
}

unsafe extern "C" fn commit(ctx: *mut c_void, upload: *mut c_void, _: *const FerrySum) -> c_int {
    let (k, v) = *unsafe { Box::from_raw(upload.cast::<(Vec<u8>, Vec<u8>)>()) };
    unsafe { files(ctx) }.files.insert(k, v);
    0
}

unsafe extern "C" fn abort(_: *mut c_void, upload: *mut c_void, _: c_int) {
    drop(unsafe { Box::from_raw(upload.cast::<(Vec<u8>, Vec<u8>)>()) });
}

unsafe extern "C" fn list(_: *mut c_void, _: *const c_char, listing: *mut *mut c_void) -> c_int {
    unsafe { *listing = Box::into_raw(Box::new(0usize)).cast() };
    0
}

unsafe extern "C" fn next_entry(ctx: *mut c_void, listing: *mut c_void, e: *mut FerryEntry, more: *mut u8) -> c_int {
    let i = unsafe { &mut *listing.cast::<usize>() };
    match unsafe { files(ctx) }.files.iter().nth(*i) {
        Some((k, d)) => unsafe {
            // Names as the client sent them, cut to fit, not always UTF-8:
            // the library must refuse what it cannot send.
            for (dst, &s) in (*e).name.iter_mut().zip(k.iter().take(255).chain([&0])) {
                *dst = s as c_char;
            }
            (*e).size = d.len() as u64;
            *more = 1;
            *i += 1;
        },
        None => unsafe { *more = 0 },
    }
    0
}

unsafe extern "C" fn end_list(_: *mut c_void, listing: *mut c_void) {
    drop(unsafe { Box::from_raw(listing.cast::<usize>()) });
}

/// Object memory, over-sized so it can be offered misaligned or short.
#[repr(C, align(16))]
struct Mem([u8; 8192 + 64]);

struct World {
    files: Box<Files>,
    mem: Box<(Mem, Mem)>,
    bufs: Box<[[u8; 8192]; 4]>,
    client: *mut FerryClient,
    server: *mut FerryServer,
    now: u64,
    wire: Vec<u8>,
}

impl World {
    fn store(&mut self) -> FerryStore {
        FerryStore {
            ctx: (&mut *self.files as *mut Files).cast(),
            random: Some(random),
            verifier: None,
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
            stat: None,
            mkdir: None,
            remove: None,
            rename: None,
        }
    }

    /// (Re)builds both ends; the script picks offsets and lengths, most
    /// of them valid.
    fn init(&mut self, s: &mut Script) {
        unsafe {
            ok("client_deinit", ferry_client_deinit(self.client));
            ok("server_deinit", ferry_server_deinit(self.server));
        }
        let shape = s.byte();
        let skew = if shape & 1 == 1 { usize::from(s.byte() % 16) } else { 0 };
        let short = if shape & 2 == 2 { usize::from(s.byte()) } else { 0 };
        let inlen = if shape & 4 == 4 { 1000 + usize::from(s.u16() % 7192) } else { 8192 };
        let outlen = if shape & 8 == 8 { 1000 + usize::from(s.u16() % 7192) } else { 8192 };
        let mut cfg = std::mem::MaybeUninit::uninit();
        let mut scfg = std::mem::MaybeUninit::uninit();
        let st = self.store();
        unsafe {
            ok("config", ferry_config_default(cfg.as_mut_ptr()));
            ok("server_config", ferry_server_config_default(scfg.as_mut_ptr()));
            let mut cfg: FerryConfig = cfg.assume_init();
            let mut scfg: FerryServerConfig = scfg.assume_init();
            if shape & 16 == 16 {
                cfg.chunk_size = u32::from(s.u16());
                cfg.digests = [s.byte() % 5, s.byte() % 5, 0, 0];
                cfg.window = u16::from(s.byte() % 3);
            }
            scfg.allow_anonymous = if shape & 32 == 32 { s.byte() % 3 } else { 1 };
            if shape & 64 == 64 {
                scfg.conn.chunk_size = 1 + u32::from(s.u16());
            }
            let [a, b, c, d] = &mut *self.bufs;
            let cmem = self.mem.0 .0.as_mut_ptr().add(skew);
            let smem = self.mem.1 .0.as_mut_ptr().add(skew);
            let (clen, slen) = (ferry_client_size().saturating_sub(short), ferry_server_size().saturating_sub(short));
            let mut client = null_mut();
            let r = ferry_client_init(cmem, clen, &cfg, a.as_mut_ptr(), inlen, b.as_mut_ptr(), outlen, self.now, &mut client);
            ok("client_init", r);
            self.client = if r == FERRY_OK { client } else { null_mut() };
            let mut server = null_mut();
            let r = ferry_server_init(smem, slen, &scfg, &st, c.as_mut_ptr(), inlen, d.as_mut_ptr(), outlen, self.now, &mut server);
            ok("server_init", r);
            self.server = if r == FERRY_OK { server } else { null_mut() };
        }
    }

    fn poll_client(&mut self) {
        for _ in 0..64 {
            let mut ev = std::mem::MaybeUninit::<FerryClientEvent>::uninit();
            let r = unsafe { ferry_client_poll_event(self.client, ev.as_mut_ptr()) };
            ok("poll_event", r);
            if r != FERRY_OK {
                return;
            }
            let ev = unsafe { ev.assume_init() };
            if ev.kind == FerryEventKind::FERRY_EVENT_NONE {
                return;
            }
            if !ev.data.is_null() {
                // Every byte an event points at is readable.
                let d = unsafe { std::slice::from_raw_parts(ev.data, ev.len) };
                std::hint::black_box(d.iter().map(|&b| u32::from(b)).sum::<u32>());
            }
        }
    }

    fn progress(&mut self) {
        let mut p = std::mem::MaybeUninit::uninit();
        ok("progress", unsafe { ferry_server_progress(self.server, p.as_mut_ptr()) });
    }

    /// Moves what one side queued to the other, `cap` bytes at a time.
    fn pipe(&mut self, to_server: bool, cap: usize) {
        self.wire.resize(cap, 0);
        let mut n = 0;
        let r = unsafe {
            match to_server {
                true => ferry_client_transmit(self.client, self.wire.as_mut_ptr(), cap, &mut n),
                false => ferry_server_transmit(self.server, self.wire.as_mut_ptr(), cap, &mut n),
            }
        };
        ok("transmit", r);
        if r == FERRY_OK && n > 0 {
            let data = std::mem::take(&mut self.wire);
            self.feed(to_server, &data[..n]);
            self.wire = data;
        }
    }

    fn feed(&mut self, to_server: bool, data: &[u8]) {
        let mut took = 0;
        let r = unsafe {
            match to_server {
                true => ferry_server_input(self.server, self.now, data.as_ptr(), data.len(), &mut took),
                false => ferry_client_input(self.client, self.now, data.as_ptr(), data.len(), &mut took),
            }
        };
        ok("input", r);
        assert!(r != FERRY_OK || took <= data.len());
        match to_server {
            true => self.progress(),
            false => self.poll_client(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script(data);
    let mut w = World {
        files: Box::default(),
        mem: Box::new((Mem([0; 8256]), Mem([0; 8256]))),
        bufs: Box::new([[0; 8192]; 4]),
        client: null_mut(),
        server: null_mut(),
        now: 0,
        wire: Vec::new(),
    };
    w.init(&mut Script(&[]));
    let body = [0x5au8; 4096];
    for _ in 0..400 {
        if s.0.is_empty() {
            break;
        }
        let c = w.client;
        unsafe {
            match s.byte() % 24 {
                0..=4 => {
                    let cap = 1 + usize::from(s.u16() % 4096);
                    w.pipe(true, cap);
                }
                5..=9 => {
                    let cap = 1 + usize::from(s.u16() % 4096);
                    w.pipe(false, cap);
                }
                10 => {
                    let n = usize::from(s.byte());
                    let to_server = n & 1 == 1;
                    let bytes = s.bytes(n).to_vec();
                    w.feed(to_server, &bytes);
                }
                11 => ok("anon", ferry_client_login_anonymous(c)),
                12 => {
                    let (u, p) = (s.string(), s.string());
                    let n = usize::from(s.byte() % 40);
                    ok("login", ferry_client_login(c, u.as_ptr(), p.as_ptr(), body.as_ptr(), n));
                }
                13 => {
                    let p = s.string();
                    let size = u64::from(s.u16());
                    let (ow, resume) = (u32::from(s.byte() % 4), s.byte() % 3);
                    ok("put", ferry_client_put(c, p.as_ptr(), size, ow, resume));
                }
                14 => {
                    let p = s.string();
                    let r = match s.byte() % 8 {
                        0 => ferry_client_get(c, p.as_ptr()),
                        1 => ferry_client_list(c, p.as_ptr()),
                        2 => ferry_client_stat(c, p.as_ptr()),
                        3 => ferry_client_digest(c, p.as_ptr()),
                        4 => ferry_client_cd(c, p.as_ptr()),
                        5 => ferry_client_mkdir(c, p.as_ptr()),
                        6 => ferry_client_remove(c, p.as_ptr()),
                        _ => ferry_client_exec(c, p.as_ptr()),
                    };
                    ok("path command", r);
                }
                15 => {
                    let (a, b) = (s.string(), s.string());
                    ok("rename", ferry_client_rename(c, a.as_ptr(), b.as_ptr(), s.byte() % 3));
                    ok("echo", ferry_client_echo(c, a.as_ptr(), s.byte() % 3));
                    ok("pwd", ferry_client_pwd(c));
                }
                16 => {
                    let code = c_int::from(s.u16() as i16);
                    let r = match s.byte() % 3 {
                        0 => ferry_client_accept(c, u64::from(s.u16())),
                        1 => ferry_client_refuse(c, code),
                        _ => ferry_client_cancel(c, code),
                    };
                    ok("answer", r);
                }
                17 => {
                    let n = usize::from(s.u16() % 4096);
                    let mut taken = 0;
                    ok("send", ferry_client_send(c, body.as_ptr(), n, &mut taken));
                    ok("prefix", ferry_client_feed_prefix(c, body.as_ptr(), n % 64));
                }
                18 => {
                    w.now += u64::from(s.u16()) * 100;
                    ok("client_timeout", ferry_client_timeout(c, w.now));
                    ok("server_timeout", ferry_server_timeout(w.server, w.now));
                    let mut at = 0;
                    ok("next", ferry_client_next_timeout(c, &mut at));
                    ok("next", ferry_server_next_timeout(w.server, &mut at));
                    let mut st = std::mem::MaybeUninit::uninit();
                    ok("status", ferry_client_get_status(c, st.as_mut_ptr()));
                }
                19 => {
                    if s.byte() & 1 == 0 {
                        ok("client_eof", ferry_client_eof(c, w.now));
                    } else {
                        ok("server_eof", ferry_server_eof(w.server, w.now));
                        w.progress();
                    }
                }
                20 => ok("close", ferry_server_close(w.server, c_int::from(s.byte()))),
                21 => {
                    // NULLs where pointers belong: refused, never followed.
                    let mut n = 0;
                    let len = usize::from(s.byte());
                    ok("null input", ferry_client_input(c, w.now, null(), len, &mut n));
                    ok("null transmit", ferry_server_transmit(w.server, null_mut(), len, &mut n));
                    ok("null out", ferry_client_transmit(c, body.as_ptr().cast_mut(), 0, null_mut()));
                    ok("null path", ferry_client_get(c, null()));
                    ok("null event", ferry_client_poll_event(c, null_mut()));
                    ok("wrong type", ferry_server_eof(c.cast(), w.now));
                }
                22 => w.init(&mut s),
                _ => {
                    ok("deinit", ferry_client_deinit(c));
                    // Deinitialised: refused from now on.
                    let r = ferry_client_login_anonymous(c);
                    assert!(c.is_null() || r == FERRY_ERROR_NOT_INITIALIZED, "{r:?}");
                    w.client = null_mut();
                }
            }
        }
    }
    unsafe {
        ok("client_deinit", ferry_client_deinit(w.client));
        ok("server_deinit", ferry_server_deinit(w.server));
    }
});
