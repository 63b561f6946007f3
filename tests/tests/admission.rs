//! Admission: connections that have not logged in cannot lock users out
//! (they have a budget of their own and the oldest is evicted), logged-in
//! sessions are never evicted, and failed logins get their address refused
//! for a while, before any password check.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferry_core::frame::{decode_message, read_header, HEADER_LEN, HELLO_LEN};
use ferry_core::message::Message;
use ferry_tests::*;

fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        l.current = Some(max);
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// `ferry serve -v` with its log in a file; killed on drop.
struct Logged {
    child: Child,
    addr: String,
    log: PathBuf,
    root: PathBuf,
    _dir: TempDir,
}

impl Logged {
    fn start(args: &[&str], users: Option<&Path>) -> Logged {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("f.txt"), b"hi").unwrap();
        let log = dir.path().join("serve.log");
        let mut c = ferry();
        c.arg("serve")
            .arg(&root)
            .args(["--listen", "127.0.0.1:0", "-v"]);
        match users {
            Some(u) => c.arg("--users").arg(u),
            None => c.arg("--anonymous"),
        };
        c.args(args)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap());
        let mut child = c.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(a) = l.strip_prefix("ferry: listening on ") {
                        break a.to_string();
                    }
                }
                _ => panic!("ferry serve exited early: {:?}", child.wait()),
            }
        };
        Logged {
            child,
            addr,
            log,
            root,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ferry://{}/{path}", self.addr)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An anonymous session that logs in and waits for the answer.
fn logged_in_session(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(&[raw_hello().to_vec(), raw_frame(&Message::Anonymous)].concat())
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = vec![0u8; HELLO_LEN + raw_frame(&Message::LoginOk).len()];
    c.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer[HELLO_LEN..],
        raw_frame(&Message::LoginOk),
        "logged in"
    );
    c
}

/// Whether the server still holds `c` open (nothing to read, no EOF).
fn still_open(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 256];
    let open = loop {
        match c.read(&mut b) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    c.set_nonblocking(false).unwrap();
    open
}

/// The error frame a connection was closed with (after the server's hello,
/// if [`still_open`] did not read that already).
fn closing_error(c: &mut TcpStream) -> ferry_core::Error {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).expect("closed by the server");
    // The hello is there unless an earlier look took it.
    let frame = if all.starts_with(b"FRRY") {
        &all[HELLO_LEN..]
    } else {
        &all[..]
    };
    let head: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
    let (_, len) = read_header(head, 1 << 20).unwrap();
    match decode_message(&frame[HEADER_LEN..HEADER_LEN + len as usize]).unwrap() {
        Message::Error { code } => ferry_core::Error::from_code(code),
        m => panic!("expected an error frame, got {m:?}"),
    }
}

#[test]
fn idle_and_slowloris_connections_do_not_lock_out_a_real_client() {
    raise_nofile();
    // Default options: 256 sessions, 128 startups, 64 per address.
    let s = Logged::start(&[], None);

    // Sessions logged in before the flood: never evicted.
    let mut sessions: Vec<TcpStream> = (0..5).map(|_| logged_in_session(&s.addr)).collect();

    // 300 connections that say nothing.
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();

    // 10 slowloris: each sends its hello one byte per second (bounded:
    // at most 20 rounds, stops when told).
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let mut conns: Vec<TcpStream> = (0..10)
            .map(|_| TcpStream::connect(&s.addr).unwrap())
            .collect();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let hello = raw_hello();
            for b in hello.iter().take(20) {
                for c in conns.iter_mut() {
                    let _ = c.write_all(&[*b]);
                }
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(1) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // A real client, from the same 127.0.0.1.
    let local = TempDir::new().unwrap();
    let data = random_bytes(1 << 20, 7);
    let src = local.path().join("m.bin");
    fs::write(&src, &data).unwrap();
    let back = local.path().join("back.bin");
    let t = Instant::now();
    let mut c = ferry();
    c.arg("put").arg(&src).arg(s.url("m.bin")).arg("--quiet");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let mut c = ferry();
    c.arg("get").arg(s.url("m.bin")).arg(&back).arg("--quiet");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let took = t.elapsed();
    eprintln!("1 MiB put+get past 300 idle + 10 slowloris: {took:?}");
    assert!(took < Duration::from_secs(2), "put+get took {took:?}");
    assert_eq!(fs::read(&back).unwrap(), data);
    assert_eq!(fs::read(s.root.join("m.bin")).unwrap(), data);

    // The oldest idle connection was evicted with "server busy"; the
    // logged-in sessions are all still open.
    assert_eq!(closing_error(&mut idle[0]), ferry_core::Error::Busy);
    for c in sessions.iter_mut() {
        assert!(still_open(c), "a logged-in session was evicted");
    }
    stop.store(true, Ordering::SeqCst);
    slow.join().unwrap();

    // Every eviction is in the -v log: 310 startups and 2 real clients
    // through a per-address share of 64 evict at least 246.
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log();
    let evicted = log.matches("evicted before login").count();
    eprintln!("evictions logged: {evicted}");
    assert!(evicted >= 246, "{evicted} evictions logged:\n{log}");
    drop(idle);
}

#[test]
fn a_full_startup_budget_evicts_the_oldest_connection_not_the_newest() {
    let s = Logged::start(&["--max-startups", "4", "--max-startups-per-ip", "0"], None);
    let mut first = TcpStream::connect(&s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut rest: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(still_open(&mut first), "4 startups fit");
    // The fifth evicts the first, and is served.
    let mut session = logged_in_session(&s.addr);
    assert_eq!(closing_error(&mut first), ferry_core::Error::Busy);
    for c in rest.iter_mut() {
        assert!(still_open(c), "only the oldest is evicted");
    }
    // A logged-in session no longer counts: four more startups evict
    // startups, never it.
    let _more: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(still_open(&mut session));
    for c in rest.iter_mut() {
        assert_eq!(closing_error(c), ferry_core::Error::Busy);
    }
}

fn users_file(dir: &Path) -> PathBuf {
    let users = dir.join("users.txt");
    add_user(&users, "alice", "right");
    users
}

/// Lines of a child's stdout, through a channel (so reads can time out).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(want) => return,
            Ok(_) => {}
            Err(e) => panic!("no line with {want:?}: {e}"),
        }
    }
}

#[test]
fn failed_logins_get_an_address_refused_before_any_password_check() {
    let dir = TempDir::new().unwrap();
    let users = users_file(dir.path());
    // Small numbers to keep the test short: 1 s per failure, refused above
    // 2 s, never more than 6 s.
    let s = Logged::start(
        &[
            "--login-penalty",
            "1",
            "--login-penalty-min",
            "2",
            "--login-penalty-max",
            "6",
        ],
        Some(&users),
    );
    let url = format!("ferry://alice@{}/", s.addr);

    // A session logged in before the guessing starts.
    let mut shell = ferry()
        .arg("shell")
        .arg(&url)
        .env("FERRY_PASSWORD", "right")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut shell_in = shell.stdin.take().unwrap();
    let shell_out = lines_of(&mut shell);
    shell_in.write_all(b"ls\n").unwrap();
    wait_for_line(&shell_out, "f.txt");

    // 100 wrong passwords, 25 at a time from 127.0.0.1.
    let t = Instant::now();
    let guessers: Vec<_> = (0..25)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| {
                        let mut c = ferry();
                        c.arg("ls").arg(&url).env("FERRY_PASSWORD", "guess");
                        let o = run(c);
                        (code(&o), String::from_utf8_lossy(&o.stderr).into_owned())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(i32, String)> = guessers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let attack = t.elapsed();
    let failed = results.iter().filter(|(c, _)| *c == 3).count();
    let refused = results
        .iter()
        .filter(|(c, e)| *c == 7 && e.contains("too many failed logins"))
        .count();
    // Every refusal says when to try again: at connect and mid-login alike.
    let timed = results
        .iter()
        .filter(|(c, e)| *c == 7 && e.contains("retry in "))
        .count();
    assert_eq!(timed, refused, "{results:?}");
    eprintln!(
        "100 guesses, 25 in parallel: {failed} checked and wrong, {refused} refused, {attack:?}"
    );
    assert_eq!(failed + refused, 100, "{results:?}");
    assert!(failed >= 1, "some guesses were checked first");
    assert!(refused >= 60, "only {refused} of 100 refused");

    // Now even the right password is refused, at once: no password check.
    let t = Instant::now();
    let mut c = ferry();
    c.arg("ls").arg(&url).env("FERRY_PASSWORD", "right");
    let o = run(c);
    assert_eq!(code(&o), 7);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("too many failed logins"), "{err}");
    // The server said when to come back (version 3's `Retry`).
    let secs: u32 = err
        .split("retry in ")
        .nth(1)
        .and_then(|r| r.split(" s").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {err}"));
    assert!((1..=15).contains(&secs), "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // The session logged in before is untouched.
    shell_in.write_all(b"ls\n").unwrap();
    wait_for_line(&shell_out, "f.txt");
    drop(shell_in);
    assert!(shell.wait().unwrap().success());

    // The penalty runs out (6 s at most), then the right password works.
    std::thread::sleep(Duration::from_millis(6500));
    let mut c = ferry();
    c.arg("ls").arg(&url).env("FERRY_PASSWORD", "right");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let log = s.log();
    assert!(log.contains("address penalised for failed logins"), "{log}");
    assert!(log.contains("retry_secs="), "{log}");
}
