//! Pipelined batches from the command line and the shell (issue 16,
//! item 3): many files cost a few request/response turns, not two each,
//! counted at a relay (never timed); a failure in a shell batch still
//! stops it, and nothing after the failing line is stored.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use ferry_tests::*;

/// Relays one connection to `target`, recording which way each piece of
/// data went, in order (`true`: client to server).
fn turn_relay(target: String) -> (String, Arc<Mutex<Vec<bool>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let rec = log.clone();
    std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let s = TcpStream::connect(target).unwrap();
        let pipe =
            |mut from: TcpStream, mut to: TcpStream, up: bool, rec: Arc<Mutex<Vec<bool>>>| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        rec.lock().unwrap().push(up);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                })
            };
        let a = pipe(
            c.try_clone().unwrap(),
            s.try_clone().unwrap(),
            true,
            rec.clone(),
        );
        let b = pipe(s, c, false, rec);
        let _ = (a.join(), b.join());
    });
    (addr, log)
}

/// How often the data changed direction: a request/response exchange
/// that waits for its answer is two turns.
fn turns(log: &[bool]) -> usize {
    log.windows(2).filter(|w| w[0] != w[1]).count()
}

fn files(dir: &std::path::Path, n: usize) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("f{i:02}.txt"));
            std::fs::write(&p, format!("file {i} {}", "x".repeat(i * 37))).unwrap();
            p
        })
        .collect()
}

#[test]
fn a_shell_batch_of_puts_and_gets_goes_in_a_few_turns() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let n = 30;
    files(local.path(), n);
    let mut script = format!("lcd {}\n", local.path().display());
    for i in 0..n {
        script.push_str(&format!("put f{i:02}.txt\n"));
    }
    for i in 0..n {
        script.push_str(&format!("get f{i:02}.txt back{i:02}.txt\n"));
    }
    let (addr, log) = turn_relay(s.addr.clone());
    let o = shell_batch(&format!("ferry://{addr}/"), &script);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..n {
        let want = std::fs::read(local.path().join(format!("f{i:02}.txt"))).unwrap();
        assert_eq!(
            std::fs::read(s.root.join(format!("f{i:02}.txt"))).unwrap(),
            want
        );
        assert_eq!(
            std::fs::read(local.path().join(format!("back{i:02}.txt"))).unwrap(),
            want
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t = turns(&log.lock().unwrap());
    // One line at a time this is at least 2 turns a line (120); the
    // two groups take a handful each.
    assert!(t <= 2 * n / 3, "{t} turns for {} lines", 2 * n);
}

#[test]
fn a_failing_line_in_a_pipelined_group_still_stops_the_batch() {
    let s = Server::anonymous(&[]);
    std::fs::write(s.root.join("taken.txt"), b"old").unwrap();
    let local = TempDir::new().unwrap();
    files(local.path(), 4);
    let script = format!(
        "lcd {}\nput f00.txt a.txt\nput f01.txt taken.txt\nput f02.txt c.txt\nput f03.txt d.txt\nmkdir never\n",
        local.path().display()
    );
    let o = shell_batch(&s.url("/"), &script);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 6, "{err}");
    assert!(
        err.contains("line 3") && err.contains("already exists"),
        "{err}"
    );
    assert!(s.root.join("a.txt").exists(), "the line before it ran");
    assert_eq!(std::fs::read(s.root.join("taken.txt")).unwrap(), b"old");
    for name in ["c.txt", "d.txt", "never"] {
        assert!(
            !s.root.join(name).exists(),
            "{name}: nothing after the failing line"
        );
    }
    // The same for gets: a missing file stops the batch, later lines
    // write nothing.
    let script = format!(
        "lcd {}\nget a.txt a1\nget missing.txt m\nget a.txt a2\n",
        local.path().display()
    );
    let o = shell_batch(&s.url("/"), &script);
    assert_eq!(code(&o), 4, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(local.path().join("a1").exists());
    assert!(!local.path().join("a2").exists());
    // A line starting with `-` may fail: the group goes on.
    let script = format!(
        "lcd {}\n-put f02.txt taken.txt\n-put f03.txt e.txt\n",
        local.path().display()
    );
    let o = shell_batch(&s.url("/"), &script);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.root.join("e.txt").exists());
}

#[test]
fn several_files_on_one_command_line_go_in_a_few_turns_and_all_are_tried() {
    let s = Server::anonymous(&[]);
    std::fs::create_dir(s.root.join("dir")).unwrap();
    std::fs::write(s.root.join("dir/f05.txt"), b"already").unwrap();
    let local = TempDir::new().unwrap();
    let paths = files(local.path(), 20);
    let (addr, log) = turn_relay(s.addr.clone());
    let mut c = ferry();
    c.arg("put")
        .args(&paths)
        .arg(format!("ferry://{addr}/dir/"))
        .arg("--quiet");
    let o = run(c);
    // One refused (it exists): the exit code says so, every other file
    // is stored.
    assert_eq!(code(&o), 6, "{}", String::from_utf8_lossy(&o.stderr));
    for (i, p) in paths.iter().enumerate() {
        let stored = std::fs::read(s.root.join("dir").join(p.file_name().unwrap())).unwrap();
        if i == 5 {
            assert_eq!(stored, b"already");
        } else {
            assert_eq!(stored, std::fs::read(p).unwrap());
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t = turns(&log.lock().unwrap());
    assert!(t <= 10, "{t} turns for 20 files");
}

/// `--window 1` goes one file at a time (two turns each), the default
/// window in a handful; both store the same bytes.
#[test]
fn window_one_is_one_file_at_a_time() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    files(local.path(), 20);
    let mut counts = Vec::new();
    for (window, dir) in [("1", "one"), ("1024", "many")] {
        let (addr, log) = turn_relay(s.addr.clone());
        let mut c = ferry();
        c.arg("put")
            .arg("-r")
            .arg("--window")
            .arg(window)
            .arg(local.path())
            .arg(format!("ferry://{addr}/{dir}"))
            .arg("--quiet");
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        for i in 0..20 {
            let name = format!("f{i:02}.txt");
            assert_eq!(
                std::fs::read(s.root.join(dir).join(&name)).unwrap(),
                std::fs::read(local.path().join(&name)).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        counts.push(turns(&log.lock().unwrap()));
    }
    assert!(counts[0] >= 40, "window 1: {counts:?}");
    assert!(counts[1] <= 10, "window 1024: {counts:?}");
}

/// docs/PROTOCOL.md#pipelining: requests pipelined behind a command that
/// is still running wait for it, in order, however much of the server's
/// input buffer they fill: a full buffer is not the end of the stream
/// (a read into no room returns 0, which the server took for one and
/// closed the session once its input ran dry).
#[test]
fn requests_behind_a_running_command_wait_for_it() {
    use ferry_core::message::{bounded, Message, Request};
    use ferry_tests::raw::{Frame, Raw};
    let s = Server::anonymous(&["--allow-exec"]);
    let mut r = Raw::login_v3(&s.addr, 1024);
    let text = bounded("x".repeat(900).as_str(), ferry_core::Error::TooLarge).unwrap();
    // About 360 KB of echoes, more than the server's input buffer.
    let n = 400;
    let mut w = r.writer();
    let echo = raw_frame(&Message::Echo {
        text: text.clone(),
        upper: false,
    });
    let exec = raw_frame(&Message::Request(Request::Exec {
        command: bounded("sleep 1", ferry_core::Error::TooLarge).unwrap(),
    }));
    let writer = std::thread::spawn(move || {
        w.write_all(&exec).unwrap();
        for _ in 0..n {
            w.write_all(&echo).unwrap();
        }
    });
    loop {
        match r.recv() {
            Frame::Msg(m) if matches!(*m, Message::ExecEnd { .. }) => break,
            Frame::Bytes(..) => {}
            Frame::Msg(m) => panic!("before ExecEnd: {m:?}"),
        }
    }
    for i in 0..n {
        assert_eq!(r.msg(), Message::EchoReply(text.clone()), "echo {i}");
    }
    writer.join().unwrap();
    // The session is still open once its input ran dry: no end of stream
    // was taken from the full buffer.
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.request(Request::Pwd);
    assert!(matches!(r.msg(), Message::Cwd(_)));
}

/// docs/PROTOCOL.md#pipelining: any request may follow others. The std
/// server used to close the connection on a listing followed by more
/// requests (`list` + `stat`, `list` + `list`) while it took `stat` +
/// `stat`; every answer now comes whole, in request order.
#[test]
fn a_listing_may_be_followed_by_more_requests() {
    use ferry_core::message::{bounded, Message, Request};
    use ferry_tests::raw::Raw;
    let s = Server::anonymous(&[]);
    std::fs::write(s.root.join("a"), b"abc").unwrap();
    let p = |s: &str| bounded(s, ferry_core::Error::InvalidPath).unwrap();
    let mut r = Raw::login_v3(&s.addr, 16);
    let mut w = r.writer();
    let mut batch = Vec::new();
    for req in [
        Request::List { path: p("") },
        Request::Stat { path: p("a") },
        Request::List { path: p("") },
        Request::Mkdir { path: p("d") },
        Request::Pwd,
    ] {
        batch.extend(raw_frame(&Message::Request(req)));
    }
    w.write_all(&batch).unwrap();
    let names: Vec<&str> = (0..7).map(|_| r.msg().name()).collect();
    assert_eq!(
        names,
        ["entry", "list-end", "entry", "entry", "list-end", "ok", "cwd"]
    );
    assert!(s.root.join("d").is_dir());
}
