//! Descriptors, inodes and slots one client can hold (the third security
//! review): a window of unanswered gets, a window of puts that never send
//! a byte. Each attack is bounded: a few connections, one write each.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::frame::{Hello, FLAG_V3, VERSION, WINDOW_SHIFT};
use ferry_core::message::{bounded, Message, Overwrite, Request};
use ferry_tests::*;

/// A version-3 client hello announcing a window of 1024.
fn v3_hello() -> [u8; ferry_core::frame::HELLO_LEN] {
    Hello {
        version: VERSION,
        flags: FLAG_V3 | (1023 << WINDOW_SHIFT),
        max_frame: 65_536,
        chunk: 65_536,
        digests: ferry_core::digest::Digests::MD5_ONLY,
    }
    .encode()
}

/// `ferry serve ROOT ARGS` under `ulimit -n NOFILE`, its log (stderr) in
/// `log`; returns it and its address.
fn serve_limited(root: &Path, nofile: u32, log: &Path, args: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .arg(ferry_bin())
        .arg("serve")
        .arg(root)
        .args(["--anonymous", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().expect("prlimit ferry serve");
    let out = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("server output");
        if let Some(a) = line.strip_prefix("ferry: listening on ") {
            return (child, a.to_string());
        }
    }
    panic!("ferry serve exited early: {:?}", child.wait());
}

/// Descriptors the process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A version-3 anonymous session that sends `requests` behind its login
/// in one write and then reads for `settle` without answering anything.
fn flood(addr: &str, requests: impl Iterator<Item = Request>, settle: Duration) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut out = v3_hello().to_vec();
    out.extend(raw_frame(&Message::Anonymous));
    for r in requests {
        out.extend(raw_frame(&Message::Request(r)));
    }
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + settle;
    let mut sink = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        if let Ok(0) = s.read(&mut sink) {
            break;
        }
    }
    s
}

/// Runs a `ferry` client command, killed after `limit`; its output and
/// how long it took.
fn timed(args: &[&str], limit: Duration) -> (std::process::ExitStatus, Duration) {
    let t0 = Instant::now();
    let mut c = ferry()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return (st, t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = c.kill();
            return (c.wait().unwrap(), t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue: a v3 session sending 1024 `Get("f")` behind `Anonymous` and
/// never answering an offer held 1024 open files; at a limit of 2 048 two
/// such sessions locked everyone out. Now a session keeps a few files
/// open whatever its window, and with six of them a newcomer's `ls` and
/// 1 MiB get go through.
#[test]
fn unanswered_gets_hold_a_few_descriptors_and_a_newcomer_gets_through() {
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), b"small").unwrap();
    let big = random_bytes(1 << 20, 7);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let log = dir.path().join("server.log");
    let (mut server, addr) = serve_limited(&root, 2048, &log, &[]);
    let before = open_fds(server.id());
    let gets = || {
        (0..1024).map(|_| Request::Get {
            path: bounded("f", ferry_core::Error::InvalidPath).unwrap(),
        })
    };
    let held: Vec<_> = (0..6)
        .map(|_| flood(&addr, gets(), Duration::from_millis(500)))
        .collect();
    let during = open_fds(server.id());
    eprintln!("six sessions of 1024 unanswered gets: {before} -> {during} descriptors");
    assert!(
        during <= before + 6 * 8,
        "six sessions of 1024 unanswered gets hold {} descriptors (before: {before})",
        during - before
    );
    let url = format!("ferry://{addr}/");
    let (st, took) = timed(&["ls", &url], Duration::from_secs(15));
    assert!(st.success(), "ls during the attack: {st:?} after {took:?}");
    let back = dir.path().join("back.bin");
    let src = format!("ferry://{addr}/big.bin");
    let (st, took) = timed(
        &["get", &src, back.to_str().unwrap()],
        Duration::from_secs(15),
    );
    assert!(
        st.success(),
        "1 MiB get during the attack: {st:?} after {took:?}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), big);
    eprintln!("a newcomer's 1 MiB get during the attack: {took:?}");
    drop(held);
    let _ = server.kill();
    let _ = server.wait();
}

/// Issue: 1024 pipelined `Put(name_i, size = 1)` answered and abandoned
/// left 1024 empty hidden part files for 24 h (five connections emptied a
/// 5 000-inode tmpfs). Now a put that received no byte leaves nothing.
#[test]
fn puts_abandoned_before_their_bodies_leave_no_part_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = dir.path().join("server.log");
    let (mut server, addr) = serve_limited(&root, 4096, &log, &[]);
    let before = open_fds(server.id());
    let puts = |c: usize| {
        (0..1024).map(move |i| Request::Put {
            path: bounded(&format!("c{c}-{i}"), ferry_core::Error::InvalidPath).unwrap(),
            size: 1,
            overwrite: Overwrite::Fail,
            resume: false,
        })
    };
    let held: Vec<_> = (0..3)
        .map(|c| flood(&addr, puts(c), Duration::from_millis(500)))
        .collect();
    let during = open_fds(server.id());
    eprintln!("three sessions of 1024 puts awaiting bodies: {before} -> {during} descriptors");
    assert!(
        during <= before + 3 * 8,
        "three sessions of 1024 puts awaiting bodies hold {} descriptors",
        during - before
    );
    drop(held);
    // The sessions end; what they leave is on disk at once.
    let t0 = Instant::now();
    let left = || {
        std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .count()
    };
    while left() > 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left(), 0, "entries left by bodiless puts");
    let _ = server.kill();
    let _ = server.wait();
}

/// A tmpfs of `inodes` inodes mounted on a new directory; unmounted on
/// drop. `None` (with the reason printed) where mounting is not allowed.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(inodes: u32) -> Option<Tmpfs> {
        let d = tempfile::TempDir::new().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size=64m,nr_inodes={inodes}"))
            .arg("tmpfs")
            .arg(d.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root; CI runs as root)");
            return None;
        }
        Some(Tmpfs(d))
    }

    /// Free inodes and all inodes.
    fn inodes(&self) -> (u64, u64) {
        let s = rustix::fs::statvfs(self.0.path()).unwrap();
        (s.f_favail, s.f_files)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Issue: on a 5 000-inode tmpfs, five connections of 1024 pipelined
/// one-byte puts, accepted and abandoned, left no inode free: a real put
/// and mkdir then failed "no space". Now ≥ 90 % stay free and both work.
#[test]
fn bodiless_puts_cannot_use_up_the_inodes() {
    let Some(fs) = Tmpfs::mount(5000) else { return };
    let root = fs.0.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let logs = tempfile::TempDir::new().unwrap();
    let (mut server, addr) = serve_limited(&root, 8192, &logs.path().join("log"), &[]);
    for c in 0..5 {
        let puts = (0..1024).map(move |i| Request::Put {
            path: bounded(&format!("c{c}-{i}"), ferry_core::Error::InvalidPath).unwrap(),
            size: 1,
            overwrite: Overwrite::Fail,
            resume: false,
        });
        drop(flood(&addr, puts, Duration::from_millis(300)));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (free, all) = fs.inodes();
    eprintln!("after five connections of 1024 bodiless puts: {free} of {all} inodes free");
    assert!(
        free * 10 >= all * 9,
        "after the attack {free} of {all} inodes are free"
    );
    let local = logs.path().join("real.txt");
    std::fs::write(&local, b"a real file").unwrap();
    let o = run({
        let mut c = ferry();
        c.arg("put")
            .arg(&local)
            .arg(format!("ferry://{addr}/real.txt"));
        c
    });
    assert_eq!(code(&o), 0, "put after the attack: {o:?}");
    let o = run({
        let mut c = ferry();
        c.arg("mkdir").arg(format!("ferry://{addr}/newdir"));
        c
    });
    assert_eq!(code(&o), 0, "mkdir after the attack: {o:?}");
    assert_eq!(
        std::fs::read(root.join("real.txt")).unwrap(),
        b"a real file"
    );
    assert!(root.join("newdir").is_dir());
    let _ = server.kill();
    let _ = server.wait();
}

/// The window and the `max_frame` a server hello announces.
fn hello_of(s: &mut TcpStream) -> (usize, u32) {
    let mut b = [0u8; ferry_core::frame::HELLO_LEN];
    s.read_exact(&mut b).expect("server hello");
    let h = Hello::decode(&b).expect("a hello");
    let window = match h.flags & FLAG_V3 {
        0 => 1,
        _ => usize::from(h.flags >> WINDOW_SHIFT) + 1,
    };
    (window, h.max_frame)
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Issue: the window 1024 and the 256 KiB frames went to the first 32
/// connections at connect, so 32 silent ones (renewed every 30 s) pushed
/// every real user to window 64 and 64 KiB frames. Now every connection
/// gets the same; what a silent one costs is bounded instead.
#[test]
fn silent_connections_change_nothing_a_newcomer_gets() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("log");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (mut server, addr) = serve_limited(&root, 4096, &log, &[]);
    let mut first = TcpStream::connect(&addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let alone = hello_of(&mut first);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(server.id());
    // Silent: they read the server's hello and send nothing.
    let silent: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            hello_of(&mut s);
            s
        })
        .collect();
    let mut newcomer = TcpStream::connect(&addr).unwrap();
    newcomer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let after = hello_of(&mut newcomer);
    assert_eq!(
        after, alone,
        "a newcomer's window and max_frame after 100 silent connections"
    );
    assert_eq!(after.0, 1024);
    let grown = rss_kib(server.id()).saturating_sub(before);
    assert!(
        grown <= 100 * 200,
        "100 silent connections took {grown} KiB ({} KiB each)",
        grown / 100
    );
    eprintln!("100 silent connections: +{grown} KiB resident");
    drop(silent);
    let _ = server.kill();
    let _ = server.wait();
}
