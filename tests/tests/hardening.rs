//! Hardening found by a black-box review: a many-address flood cannot
//! evict real users before they log in, commands cannot reach io_uring,
//! and `--user-dirs` confinement does not follow a swapped path.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_tests::*;

fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        l.current = Some(max);
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// A TCP connection to `to` from the loopback address `from` (Linux
/// routes all of 127/8 to lo).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let fd = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK,
        None,
    )?;
    bind(&fd, &SocketAddrV4::new(from, 0))?;
    match connect(&fd, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from(fd))
}

/// Issue: 1 000 loopback addresses opening connections as fast as they
/// can evicted `ferry ls` from 127.0.0.1 before it logged in (oldest
/// first). Now the flood's own networks are evicted first. The flood is
/// bounded: 50 addresses in 127.0.2.0/24 and 127.0.3.0/24, idle
/// connections, at most [`MAX_FLOOD`] of them, for at most 15 s and only
/// while the real clients run.
const MAX_FLOOD: usize = 400_000;

#[test]
fn a_many_address_flood_does_not_evict_real_logins() {
    raise_nofile();
    let s = Server::anonymous(&[]);
    std::fs::write(s.root.join("f.txt"), b"hi").unwrap();
    let to: SocketAddr = s.addr.parse().unwrap();
    if connect_from(Ipv4Addr::new(127, 0, 2, 1), to).is_err() {
        eprintln!("skipped: cannot bind to 127.0.2.1");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..2u8)
        .map(|t| {
            let (stop, opened) = (stop.clone(), opened.clone());
            let started = Instant::now();
            std::thread::spawn(move || {
                // Each thread keeps its last 300 connections open (idle);
                // older ones were evicted by the server anyway.
                let mut held = std::collections::VecDeque::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed)
                    && opened.load(Ordering::Relaxed) < MAX_FLOOD
                    && started.elapsed() < Duration::from_secs(15)
                {
                    let from = Ipv4Addr::new(127, 0, 2 + t, 1 + (i % 25) as u8);
                    i += 1;
                    if let Ok(c) = connect_from(from, to) {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held.push_back(c);
                        if held.len() > 1_000 {
                            held.pop_front();
                        }
                    }
                }
            })
        })
        .collect();
    // Let the flood fill the startup budget first.
    let t0 = Instant::now();
    while opened.load(Ordering::Relaxed) < 2_000 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut failed = Vec::new();
    for i in 0..20 {
        let mut c = ferry();
        c.args(["ls", &s.url("")]);
        let o = run(c);
        if code(&o) != 0 {
            failed.push((i, String::from_utf8_lossy(&o.stderr).into_owned()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    let n = opened.load(Ordering::Relaxed);
    eprintln!(
        "flood: {n} connections in {:.1} s",
        t0.elapsed().as_secs_f32()
    );
    assert!(n >= 1_000, "the flood ran ({n} connections)");
    assert!(failed.is_empty(), "real logins evicted: {failed:?}");
}

/// Issue: the exec seccomp filter refused the setxattr, chmod and chown
/// families, but io_uring's operations (`IORING_OP_SETXATTR`, …) do the
/// same without those system calls. `io_uring_setup` (425 on every
/// architecture) now fails with EPERM.
#[test]
fn commands_cannot_set_up_io_uring() {
    let python = "/usr/bin/python3";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped: no {python}");
        return;
    }
    let s = Server::anonymous(&["--allow-exec"]);
    let script = "import ctypes; libc = ctypes.CDLL(None, use_errno=True); \
                  p = ctypes.create_string_buffer(120); r = libc.syscall(425, 8, p); \
                  print('io_uring_setup', r, ctypes.get_errno())";
    let mut c = ferry();
    c.arg("exec")
        .arg(s.url("/"))
        .arg("--")
        .arg(format!("{python} -c \"{script}\""));
    let o = run(c);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out} {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.trim(), "io_uring_setup -1 1", "EPERM (1) expected");
}

/// Issue: under `--user-dirs` anonymous sessions live in `ROOT/anonymous`,
/// so a users-file user named `anonymous` would share their files. Such a
/// server refuses to start (exit 2), saying why; without `--user-dirs` the
/// name is harmless.
#[test]
fn user_dirs_refuse_a_user_named_anonymous() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    let mut c = ferry();
    c.args(["passwd", "--users"])
        .arg(&users)
        .arg("anonymous")
        .env("FERRY_PASSWORD", "pw");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut c = ferry();
    c.arg("serve")
        .arg(&root)
        .arg("--users")
        .arg(&users)
        .args(["--anonymous", "--user-dirs", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferry serve started with a user named `anonymous` and --user-dirs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("user named `anonymous`"), "{err}");
    // Without --user-dirs the server starts.
    let s = Server::start(
        &root,
        &[
            "--users",
            users.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    drop(s);
}
