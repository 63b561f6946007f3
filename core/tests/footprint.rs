//! Memory: the state machines are small and a whole session allocates
//! nothing. A counting global allocator proves the second.
//!
//! A binary of its own: a `#[global_allocator]` is one per program, and in
//! the `it` binary it would sit under every other test as well.

#[path = "it/line.rs"]
#[allow(dead_code)]
mod line;
#[path = "it/pair.rs"]
mod pair;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferry_core::app::{self, Accepted, ExecPoll, Session};
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::{
    Client, ClientEvent, Config, Entry, Error, Instant, Overwrite, Server, Stream, Verifier,
};

struct Counting;

thread_local! {
    /// Allocations made by this thread: the test harness's own (another
    /// test's output, the results it prints) happen on other threads and
    /// once made this test fail now and then under load.
    static MINE: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        MINE.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn client_and_server_fit_in_4_kib() {
    let c = core::mem::size_of::<Client<&mut [u8]>>();
    let s = core::mem::size_of::<Server<&mut [u8]>>();
    println!("size_of Client = {c} bytes, Server = {s} bytes");
    assert!(c <= 4096, "Client is {c} bytes");
    assert!(s <= 4096, "Server is {s} bytes");
}

/// A device's serial link (window 4, 256-byte frames): its state and the
/// buffer it needs, the RAM it costs besides the session's.
#[test]
fn a_device_serial_link_fits_in_3_5_kib_of_ram() {
    type L = ferry_core::link::Link<&'static mut [u8], 4>;
    let state = core::mem::size_of::<L>();
    let buffer = L::buffer_len(256);
    println!("size_of Link<_, 4> = {state} bytes, its buffer (256-byte frames) {buffer} bytes");
    assert!(state + buffer <= 3584, "{state} + {buffer} bytes");
}

/// Fixed-size byte pipe: no allocation.
struct Pipe {
    buf: [u8; 8192],
    len: usize,
}

impl Pipe {
    fn push(&mut self, data: &[u8]) {
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
    }
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Tally {
    logged_in: bool,
    put_ok: bool,
    got: usize,
    get_ok: bool,
    listed: usize,
    exec_end: bool,
}

/// The server's store: one file in a fixed array, one user, one command.
struct Flash<'v> {
    data: [u8; 8192],
    len: usize,
    verifier: &'v Verifier,
}

impl app::Store for Flash<'_> {
    type File = ();
    type Upload = ();
    /// Whether the one entry was listed.
    type Listing = bool;
    /// Whether the output was sent.
    type Exec = bool;

    fn verifier(&self, _: &str) -> Option<&Verifier> {
        Some(self.verifier)
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(3);
        Ok(())
    }

    fn open(&mut self, _: &str) -> Result<((), u64), Error> {
        Ok(((), self.len as u64))
    }

    fn read_at(&mut self, _: &mut (), at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = &self.data[at as usize..self.len];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn begin_upload(
        &mut self,
        _: &str,
        _: u64,
        _: Overwrite,
        _: bool,
        _: Algorithm,
    ) -> Result<Accepted<()>, Error> {
        self.len = 0;
        Ok(Accepted {
            upload: (),
            offset: 0,
            stored_as: None,
        })
    }

    fn write(&mut self, _: &mut (), d: &[u8]) -> Result<(), Error> {
        self.data[self.len..self.len + d.len()].copy_from_slice(d);
        self.len += d.len();
        Ok(())
    }

    fn commit(&mut self, _: (), _: Sum) -> Result<(), Error> {
        Ok(())
    }

    fn list(&mut self, _: &str) -> Result<bool, Error> {
        Ok(false)
    }

    fn next_entry(&mut self, done: &mut bool, slot: &mut Entry) -> Result<bool, Error> {
        if std::mem::replace(done, true) {
            return Ok(false);
        }
        *slot = pair::entry("测试文件.txt", self.len as u64);
        Ok(true)
    }

    fn exec(&mut self, _: &str) -> Result<bool, Error> {
        Ok(false)
    }

    fn exec_poll<'a>(&'a mut self, sent: &'a mut bool) -> ExecPoll<'a> {
        match sent {
            false => ExecPoll::Output(Stream::Stdout, b"ok\n"),
            true => ExecPoll::Exit(0),
        }
    }

    fn exec_consume(&mut self, sent: &mut bool, _: usize) {
        *sent = true;
    }
}

#[test]
fn the_server_application_is_small() {
    let s = core::mem::size_of::<Session<Flash<'static>>>();
    println!("size_of Session<Flash> = {s} bytes");
    assert!(s <= 64, "Session is {s} bytes");
}

/// A full session (login, put, get, list, exec) with every buffer on the
/// stack, the core's server application over a fixed-array store, and a
/// driver that allocates nothing.
fn session(file: &[u8], verifier: &Verifier) -> Tally {
    let now = Instant::ZERO;
    let (mut ci, mut co, mut si, mut so) = ([0u8; 2048], [0u8; 2048], [0u8; 2048], [0u8; 2048]);
    let mut client = Client::new(now, Config::default(), &mut ci[..], &mut co[..]).unwrap();
    let sc = pair::server_config();
    let mut server = Server::new(now, sc, &mut si[..], &mut so[..]).unwrap();
    let mut c2s = Pipe {
        buf: [0; 8192],
        len: 0,
    };
    let mut s2c = Pipe {
        buf: [0; 8192],
        len: 0,
    };
    let mut store = Flash {
        data: [0; 8192],
        len: 0,
        verifier,
    };
    let mut app = Session::new();
    let mut scratch = [0u8; 256];
    let mut t = Tally::default();
    let mut step = 0;
    let mut sent = 0;
    let mut tmp = [0u8; 2048];
    for _ in 0..10_000 {
        while let Some(n) = client.poll_transmit(&mut tmp) {
            c2s.push(&tmp[..n]);
        }
        while let Some(n) = server.poll_transmit(&mut tmp) {
            s2c.push(&tmp[..n]);
        }
        let n = server.handle_input(now, &c2s.buf[..c2s.len]).unwrap();
        c2s.consume(n);
        // Transmit or wait: the loop comes round either way.
        let _ = app.progress(&mut server, &mut store, &mut scratch).unwrap();
        let n = client.handle_input(now, &s2c.buf[..s2c.len]).unwrap();
        s2c.consume(n);
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::Connected(_) => client.login("alice", "pw", &[2; 16]).unwrap(),
                ClientEvent::LoggedIn => t.logged_in = true,
                ClientEvent::Data(d) => t.got += d.len(),
                ClientEvent::Offer { .. } => client.accept(0).unwrap(),
                ClientEvent::TransferEnd { verified, .. } if step == 1 => t.put_ok = verified,
                ClientEvent::TransferEnd { verified, .. } => t.get_ok = verified,
                ClientEvent::Entry(_) => t.listed += 1,
                ClientEvent::ExecEnd { .. } => t.exec_end = true,
                _ => {}
            }
        }
        if client.is_idle() {
            step += 1;
            match step {
                1 => client
                    .put("测试文件.txt", file.len() as u64, Overwrite::Fail, false)
                    .unwrap(),
                2 => client.get("测试文件.txt").unwrap(),
                3 => client.list("").unwrap(),
                4 => client.exec("uptime").unwrap(),
                _ => return t,
            }
        }
        if sent < file.len() {
            sent += client
                .send_with(|buf| {
                    let n = buf.len().min(file.len() - sent);
                    buf[..n].copy_from_slice(&file[sent..sent + n]);
                    (n, n)
                })
                .unwrap();
        }
    }
    t
}

#[test]
fn a_whole_session_allocates_nothing() {
    let verifier = Verifier::new("pw", b"salt", 4096).unwrap();
    let file = [0x5Au8; 5000];
    // Warm up anything std initialises lazily (stdout, thread-locals).
    let warm = session(&file, &verifier);
    let before = MINE.with(Cell::get);
    let t = session(&file, &verifier);
    let after = MINE.with(Cell::get);
    assert_eq!(t, warm);
    assert_eq!(
        t,
        Tally {
            logged_in: true,
            put_ok: true,
            got: 5000,
            get_ok: true,
            listed: 1,
            exec_end: true
        }
    );
    assert_eq!(after - before, 0, "heap allocations during a session");
}
