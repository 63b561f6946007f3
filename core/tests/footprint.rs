//! Memory: the state machines are small and a whole session allocates
//! nothing. A counting global allocator proves the second.

mod pair;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferry_core::{
    Client, ClientEvent, Config, Instant, Overwrite, Server, ServerEvent, Stream, Verifier,
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

/// A full session (login, put, get, list, exec) with every buffer on the
/// stack and a driver that allocates nothing.
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
    let mut stored = [0u8; 8192];
    let mut stored_len = 0;
    let mut t = Tally::default();
    let mut step = 0;
    let mut sent = 0;
    let mut serving: Option<usize> = None;
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
        while let Some(ev) = server.poll_event() {
            match ev {
                ServerEvent::LoginRequest { .. } => {
                    server.login_verifier(Some(verifier), &[3; 16]).unwrap()
                }
                ServerEvent::Request(ferry_core::Request::Put { .. }) => {
                    server.accept_put(0, None).unwrap()
                }
                ServerEvent::Data(d) => {
                    stored[stored_len..stored_len + d.len()].copy_from_slice(d);
                    stored_len += d.len();
                }
                ServerEvent::PutEnd { verified: true, .. } => server.finish_put().unwrap(),
                ServerEvent::Request(ferry_core::Request::Get { .. }) => {
                    server.offer(stored_len as u64).unwrap()
                }
                ServerEvent::SendBody { offset } => serving = Some(offset as usize),
                ServerEvent::Request(ferry_core::Request::List { .. }) => {
                    server
                        .list_entry(&pair::entry("测试文件.txt", stored_len as u64))
                        .unwrap();
                    server.list_end().unwrap();
                }
                ServerEvent::Request(ferry_core::Request::Exec { .. }) => {
                    server.exec_output(Stream::Stdout, b"ok\n").unwrap();
                    server.exec_end(0).unwrap();
                }
                _ => {}
            }
        }
        if let Some(pos) = serving.as_mut() {
            let buf = server.send_buffer();
            let n = buf.len().min(stored_len - *pos);
            buf[..n].copy_from_slice(&stored[*pos..*pos + n]);
            server.commit_send(n).unwrap();
            *pos += n;
            if *pos == stored_len {
                serving = None;
            }
        }
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
            let buf = client.send_buffer();
            let n = buf.len().min(file.len() - sent);
            buf[..n].copy_from_slice(&file[sent..sent + n]);
            if n > 0 {
                client.commit_send(n).unwrap();
            }
            sent += n;
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
