//! Clients that ask for a listing and then stop reading, and the server's
//! resident memory while they wait: what one stalled listing costs the
//! server (`docs/SECURITY.md`, "listing"). Used by
//! `tests/tests/listing_memory.rs` and the `stalled_listings` example.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ferry_core::frame::{self, FrameKind, HEADER_LEN, HELLO_LEN};
use ferry_core::message::{Message, Request};

use crate::{raw_frame, raw_hello};

/// A scratch directory for a big listing: on tmpfs (`/dev/shm`) where
/// there is one, since creating many files on a busy disk takes minutes.
pub fn scratch_dir() -> crate::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = crate::TempDir::new_in(shm) {
            return d;
        }
    }
    crate::TempDir::new().expect("a temporary directory")
}

/// Fills `dir` with `n` empty files named `f0000000`… (created in
/// descending order, so directory order is not name order).
pub fn fill_dir(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).expect("create the listing directory");
    for i in (0..n).rev() {
        let p = dir.join(format!("f{i:07}"));
        std::fs::File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    }
}

/// The resident set size of process `pid`, in KiB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// One logged-in session over a Unix socket that speaks the protocol by
/// hand, so it can stop reading whenever the test wants.
pub struct Stalled {
    sock: UnixStream,
}

impl Stalled {
    /// Connects to `socket` and logs in anonymously.
    pub fn login(socket: &Path) -> Stalled {
        let mut sock = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        sock.write_all(&raw_hello()).expect("send hello");
        let mut hello = [0u8; HELLO_LEN];
        sock.read_exact(&mut hello).expect("server hello");
        frame::Hello::decode(&hello).expect("a ferry server");
        sock.write_all(&raw_frame(&Message::Anonymous))
            .expect("send login");
        let mut s = Stalled { sock };
        assert_eq!(s.read_msg(), Message::LoginOk, "anonymous login");
        s
    }

    fn read_msg(&mut self) -> Message {
        let mut h = [0u8; HEADER_LEN];
        self.sock.read_exact(&mut h).expect("frame header");
        let (kind, len) = frame::read_header(&h, u32::MAX).expect("frame header");
        assert_eq!(kind, FrameKind::Msg);
        let mut payload = vec![0u8; len as usize];
        self.sock.read_exact(&mut payload).expect("frame payload");
        frame::decode_message(&payload).expect("a message")
    }

    /// Asks for a listing of `path` and waits (up to 30 s) until its first
    /// byte arrives; reads nothing after that.
    pub fn request_listing(&mut self, path: &str) {
        let req = Request::List {
            path: path.try_into().expect("a short path"),
        };
        self.sock
            .write_all(&raw_frame(&Message::Request(req)))
            .expect("send list request");
        // The read timeout bounds the wait; one byte says it started.
        let mut b = [0u8; 1];
        self.sock
            .read_exact(&mut b)
            .expect("the listing's first byte within 30 s");
    }
}

/// What [`measure`] saw, in KiB of the server's resident memory.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// With every session logged in, before any listing.
    pub before: u64,
    /// With every session's listing started and stalled.
    pub stalled: u64,
}

impl Figures {
    /// Growth per stalled listing, in KiB.
    pub fn per_session(&self, sessions: usize) -> u64 {
        self.stalled.saturating_sub(self.before) / sessions.max(1) as u64
    }
}

/// Logs `sessions` clients in to the server `pid` listening on `socket`,
/// has each ask for a listing of `dir` and stop reading, and measures the
/// server's memory before and while they stall. Returns the figures and
/// the sessions (still open: drop them to let the server go).
pub fn measure(pid: u32, socket: &Path, sessions: usize, dir: &str) -> (Figures, Vec<Stalled>) {
    let mut open: Vec<Stalled> = (0..sessions).map(|_| Stalled::login(socket)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);
    for s in &mut open {
        s.request_listing(dir);
    }
    // Let the server fill what the sockets and its buffers hold.
    std::thread::sleep(Duration::from_millis(500));
    let stalled = rss_kib(pid);
    (Figures { before, stalled }, open)
}
