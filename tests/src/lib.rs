//! Helpers for the end-to-end tests in `tests/tests/` (`e2e/` and the
//! stress tests beside it): they run the real `ferry` binary — a server on
//! loopback, [::1] or a Unix socket, and client commands against it — and
//! look at the files on both sides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub mod raw;
pub mod serial_line;

pub use tempfile::TempDir;

pub mod stall;

/// The `ferry` binary, built once per test run.
pub fn ferry_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("ferry", "ferry"))
}

/// The `ferry-device` binary (the device library on the host), built
/// once per test run.
pub fn device_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("ferry-device", "ferry-device"))
}

/// Builds `bin` of `package` (debug) and returns its path.
fn built(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bin", bin])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    // target/debug/deps/<test> → target/debug/<bin>
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(bin)
}

/// A `ferry` command with a clean environment for passwords.
pub fn ferry() -> Command {
    let mut c = Command::new(ferry_bin());
    c.env_remove("FERRY_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs a command with a time limit, returning its output. Both pipes are
/// read while it runs, so a command printing more than a pipe holds does
/// not block.
pub fn run(cmd: Command) -> Output {
    run_for(cmd, Duration::from_secs(120))
}

/// As [`run`], failing the test if the command takes longer than `limit`.
pub fn run_for(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ferry");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferry command hung: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs `ferry shell URL` with `script` on its stdin (a batch, as with
/// stdin not a terminal) and waits for it.
pub fn shell_batch(url: &str, script: &str) -> Output {
    let mut c = ferry();
    c.arg("shell")
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ferry shell");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the batch");
    child.wait_with_output().expect("wait for ferry shell")
}

/// Adds user `name` with `password` to the users file `users` with
/// `ferry passwd` (made if missing), asserting that it succeeded.
pub fn add_user(users: &Path, name: &str, password: &str) {
    let mut c = ferry();
    c.args(["passwd", "--users"])
        .arg(users)
        .arg(name)
        .env("FERRY_PASSWORD", password);
    ok(&run(c));
}

/// The exit code of an output.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts that a command exited 0, showing what it printed if not.
pub fn ok(o: &Output) {
    assert_eq!(
        code(o),
        0,
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A running `ferry serve`; killed on drop.
pub struct Server {
    child: Child,
    /// The served directory.
    pub root: PathBuf,
    /// `127.0.0.1:PORT` (or the first TCP address).
    pub addr: String,
    /// Every address it printed.
    pub addrs: Vec<String>,
    _dir: Option<TempDir>,
}

impl Server {
    /// Starts `ferry serve ROOT ARGS...` and waits for its addresses.
    pub fn start(root: &Path, args: &[&str]) -> Server {
        Server::start_cmd(ferry(), root, args)
    }

    /// As [`Server::start`], from a prepared `ferry` command (an
    /// environment variable set, say).
    pub fn start_cmd(mut cmd: Command, root: &Path, args: &[&str]) -> Server {
        cmd.arg("serve")
            .arg(root)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn ferry serve");
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let listen_count = args.iter().filter(|a| **a == "--listen").count().max(1);
        let mut addrs = Vec::new();
        while addrs.len() < listen_count {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(a) = l.strip_prefix("ferry: listening on ") {
                        addrs.push(a.to_string());
                    }
                }
                _ => panic!("ferry serve exited early: {:?}", child.wait()),
            }
        }
        let addr = addrs
            .iter()
            .find(|a| !a.starts_with("unix:"))
            .cloned()
            .unwrap_or_default();
        Server {
            child,
            root: root.to_path_buf(),
            addr,
            addrs,
            _dir: None,
        }
    }

    /// Anonymous server with exec on a fresh temporary root.
    pub fn anonymous(extra: &[&str]) -> Server {
        let dir = TempDir::new().expect("tempdir");
        let mut args = vec!["--anonymous", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut s = Server::start(dir.path(), &args);
        s._dir = Some(dir);
        s
    }

    /// `ferry://HOST:PORT/path` for this server.
    pub fn url(&self, path: &str) -> String {
        format!("ferry://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The server's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// MD5 of a file, hex.
pub fn md5_file(p: &Path) -> String {
    let data = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    ferry_core::digest::md5(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A TCP proxy on 127.0.0.1 in front of `target`, for one connection at a
/// time: it can flip one byte of the server→client (or client→server)
/// stream, throttle, and count bytes. Stops when dropped.
pub struct Proxy {
    /// Address to connect to.
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Client→server bytes forwarded so far.
    pub up: Arc<AtomicU64>,
}

/// What the proxy does to the stream.
#[derive(Clone, Copy, Default)]
pub struct Fault {
    /// Flip this byte (0-based offset) of the server→client stream.
    pub flip_down: Option<u64>,
    /// Flip this byte of the client→server stream.
    pub flip_up: Option<u64>,
    /// Forward at most this many bytes per 10 ms upstream (0: no limit).
    pub throttle_up: usize,
    /// A bad link, both ways, driven by this seed: reads are cut into
    /// random small pieces with random delays, and the stream may stall
    /// for good or be dropped at a random offset.
    pub chaos: Option<Chaos>,
}

/// What a chaotic link does (see [`Fault::chaos`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Chaos {
    /// Seed for the cuts and delays.
    pub seed: u64,
    /// Longest delay between pieces, in microseconds.
    pub max_delay_us: u64,
    /// Stop forwarding (but keep the connection open) after this many bytes.
    pub stall_after: Option<u64>,
    /// Close both directions after this many bytes.
    pub drop_after: Option<u64>,
}

impl Proxy {
    /// Starts a proxy to `target` (`HOST:PORT`).
    pub fn start(target: &str, fault: Fault) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(AtomicU64::new(0));
        let (stop2, up2, target) = (stop.clone(), up.clone(), target.to_string());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).ok();
                let Ok(s) = TcpStream::connect(&target) else {
                    continue;
                };
                let pipe = |mut from: TcpStream,
                            mut to: TcpStream,
                            flip: Option<u64>,
                            throttle: usize,
                            count: Option<Arc<AtomicU64>>,
                            stop: Arc<AtomicBool>,
                            chaos: Option<Chaos>| {
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; if throttle > 0 { throttle } else { 64 * 1024 }];
                        let mut off = 0u64;
                        let mut rng = chaos.map_or(1, |c| c.seed | 1);
                        let mut next = move || {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            rng
                        };
                        loop {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if let Some(at) = flip {
                                if at >= off && at < off + n as u64 {
                                    buf[(at - off) as usize] ^= 0xFF;
                                }
                            }
                            if let Some(c) = chaos {
                                if c.drop_after.is_some_and(|d| off + n as u64 > d) {
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    let _ = from.shutdown(std::net::Shutdown::Both);
                                    break;
                                }
                                if c.stall_after.is_some_and(|d| off + n as u64 > d) {
                                    // Hold the connection open, forward nothing.
                                    while !stop.load(Ordering::SeqCst) {
                                        std::thread::sleep(Duration::from_millis(20));
                                    }
                                    break;
                                }
                                // Random pieces with random pauses between.
                                let mut i = 0;
                                let mut failed = false;
                                while i < n {
                                    let piece = (1 + next() % 4096) as usize;
                                    let end = (i + piece).min(n);
                                    if to.write_all(&buf[i..end]).is_err() {
                                        failed = true;
                                        break;
                                    }
                                    i = end;
                                    if c.max_delay_us > 0 && next() % 4 == 0 {
                                        std::thread::sleep(Duration::from_micros(
                                            next() % c.max_delay_us,
                                        ));
                                    }
                                }
                                off += n as u64;
                                if failed {
                                    break;
                                }
                                continue;
                            }
                            off += n as u64;
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if let Some(c) = &count {
                                c.fetch_add(n as u64, Ordering::SeqCst);
                            }
                            if throttle > 0 {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                let (c2, s2) = (c.try_clone().expect("clone"), s.try_clone().expect("clone"));
                let down_chaos = fault.chaos.map(|c| Chaos {
                    seed: c.seed.rotate_left(17) ^ 0x5555,
                    ..c
                });
                pipe(
                    c,
                    s,
                    fault.flip_up,
                    fault.throttle_up,
                    Some(up2.clone()),
                    stop2.clone(),
                    fault.chaos,
                );
                pipe(s2, c2, fault.flip_down, 0, None, stop2.clone(), down_chaos);
            }
        });
        Proxy { addr, stop, up }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A client's hello, as raw bytes (for tests that speak the protocol by
/// hand).
pub fn raw_hello() -> [u8; ferry_core::frame::HELLO_LEN] {
    ferry_core::frame::Hello {
        version: ferry_core::frame::VERSION,
        flags: 0,
        max_frame: 65_536,
        chunk: 65_536,
        digests: ferry_core::digest::Digests::MD5_ONLY,
    }
    .encode()
}

/// One message as a raw frame.
pub fn raw_frame(m: &ferry_core::message::Message) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let n = ferry_core::frame::encode_message(m, &mut b).expect("encode");
    b.truncate(n);
    b
}
