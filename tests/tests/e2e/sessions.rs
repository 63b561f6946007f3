//! Logins, path escapes, exec, the shell, and a server that keeps serving
//! whatever its clients do.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use ferry_tests::*;

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let users = dir.join("users.txt");
    add_user(&users, "alice", "s3cret 密码");
    users
}

/// A server over `dir/root` (holding `f.txt`) that logs users in from
/// `users`.
fn users_server(dir: &std::path::Path, users: &std::path::Path) -> Server {
    let root = dir.join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f.txt"), b"hi").unwrap();
    Server::start(
        &root,
        &[
            "--users",
            users.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    )
}

#[test]
fn serve_refuses_to_start_without_users_or_anonymous() {
    let dir = TempDir::new().unwrap();
    let mut c = ferry();
    c.arg("serve")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"]);
    let o = run(c);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--users"));
}

#[test]
fn login_success_failure_and_anonymous() {
    let dir = TempDir::new().unwrap();
    let users = users_file(dir.path());
    let text = fs::read_to_string(&users).unwrap();
    assert!(text.starts_with("alice:SCRAM-SHA-256$4096:"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "the file never holds the password"
    );
    let s = users_server(dir.path(), &users);
    let url = format!("ferry://alice@{}/", s.addr);

    let mut c = ferry();
    c.arg("ls").arg(&url).env("FERRY_PASSWORD", "s3cret 密码");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("f.txt"));

    let mut c = ferry();
    c.arg("ls").arg(&url).env("FERRY_PASSWORD", "wrong");
    let o = run(c);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("login failed"));

    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferry://mallory@{}/", s.addr))
        .env("FERRY_PASSWORD", "x");
    assert_eq!(code(&run(c)), 3, "unknown users fail the same way");

    let mut c = ferry();
    c.arg("ls").arg(format!("ferry://{}/", s.addr));
    assert_eq!(code(&run(c)), 3, "no anonymous on a users-only server");

    // No password and no terminal: a usage error, not a hang.
    let mut c = ferry();
    c.arg("ls").arg(&url);
    assert_eq!(code(&run(c)), 2);
}

#[test]
fn path_escapes_are_all_refused_and_nothing_is_written_outside() {
    let top = TempDir::new().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link-out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("file-out")).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("sub/rel-out")).unwrap();
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("payload");
    fs::write(&src, b"payload").unwrap();

    let hostile = [
        "../outside/secret.txt",
        "../../etc/passwd",
        "/../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "link-out/secret.txt",
        "file-out",
        "sub/rel-out/secret.txt",
        "./../outside",
        "%2E%2E/outside/secret.txt",
        "sub/%2e%2e/%2e%2e/outside",
        "..",
        "../",
        "link-out",
        "link-out/",
        "sub/rel-out",
        "a%00b",
    ];
    let mut attempts = 0;
    for h in hostile {
        let url = s.url(h);
        // get: nothing is read from outside.
        let mut c = ferry();
        c.arg("get")
            .arg(&url)
            .arg(local.path().join("got"))
            .arg("--quiet");
        let o = run(c);
        assert_ne!(code(&o), 0, "get {h} succeeded");
        assert!(!local.path().join("got").exists(), "get {h} wrote a file");
        // put: nothing is written outside.
        let mut c = ferry();
        c.arg("put")
            .arg(&src)
            .arg(format!("{url}/x"))
            .args(["--quiet", "--overwrite", "replace"]);
        assert_ne!(code(&run(c)), 0, "put {h} succeeded");
        let mut c = ferry();
        c.arg("put")
            .arg(&src)
            .arg(&url)
            .args(["--quiet", "--overwrite", "replace"]);
        let _ = run(c);
        for cmd in ["ls", "stat"] {
            let mut c = ferry();
            c.arg(cmd).arg(&url);
            let o = run(c);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(!out.contains("secret"), "{cmd} {h} revealed: {out}");
            attempts += 1;
        }
        attempts += 3;
    }
    // Then the commands that change things (a later one may legitimately
    // remove a symlink inside the root, so they run after the reads).
    for h in hostile {
        let url = s.url(h);
        for cmd in ["rm", "mkdir"] {
            let mut c = ferry();
            c.arg(cmd).arg(&url);
            let _ = run(c);
            attempts += 1;
        }
        let mut c = ferry();
        c.arg("mv").arg(s.url("sub")).arg(h);
        let _ = run(c);
        let mut c = ferry();
        c.arg("exec").arg(&url).args(["--", "true"]);
        let _ = run(c);
        attempts += 2;
    }
    assert!(attempts >= 30, "{attempts}");
    let mut names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.txt"], "nothing written outside ROOT");
    assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"secret");
    assert!(fs::metadata(top.path().join("etc")).is_err());
}

#[test]
fn exec_with_and_without_output_and_refused_when_off() {
    let s = Server::anonymous(&["--allow-exec"]);
    fs::write(s.root.join("here.txt"), b"x").unwrap();
    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).args(["--", "ls"]);
    let o = run(c);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("here.txt"));

    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).args(["--", "true"]);
    let o = run(c);
    assert_eq!(code(&o), 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "command ran, no output"
    );

    let mut c = ferry();
    c.arg("exec")
        .arg(s.url("/"))
        .args(["--", "sh", "-c", "'echo oops >&2; exit 3'"]);
    let o = run(c);
    assert_eq!(code(&o), 1, "remote failure");
    assert!(String::from_utf8_lossy(&o.stderr).contains("oops"));

    let off = Server::anonymous(&[]);
    let mut c = ferry();
    c.arg("exec").arg(off.url("/")).args(["--", "true"]);
    let o = run(c);
    assert_eq!(code(&o), 6);
    assert!(String::from_utf8_lossy(&o.stderr).contains("exec disabled"));
}

#[test]
fn echo_and_upper_echo() {
    let s = Server::anonymous(&[]);
    let mut c = ferry();
    c.arg("echo")
        .arg(s.url("/"))
        .arg("hello 世界")
        .arg("--upper");
    let o = run(c);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "HELLO 世界");
}

fn shell(url: &str, script: &str) -> std::process::Output {
    shell_batch(url, script)
}

#[test]
fn shell_batch_runs_lines_and_stops_at_the_first_failure() {
    let s = Server::anonymous(&["--allow-exec"]);
    let local = TempDir::new().unwrap();
    fs::write(local.path().join("up.txt"), "上传".as_bytes()).unwrap();
    let script = format!(
        "lcd {}\nmkdir docs\ncd docs\nput up.txt\nls\n-get missing.txt\nget up.txt down.txt\nstat up.txt\nexec true\npwd\nrm nothere\nmkdir never\n",
        local.path().display()
    );
    let o = shell(&s.url("/"), &script);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        code(&o),
        4,
        "stops at `rm nothere`: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("/docs"), "{out}");
    assert!(out.contains("up.txt"), "{out}");
    assert!(out.contains("command ran, no output"), "{out}");
    assert_eq!(
        fs::read(s.root.join("docs/up.txt")).unwrap(),
        "上传".as_bytes()
    );
    assert_eq!(
        fs::read(local.path().join("down.txt")).unwrap(),
        "上传".as_bytes()
    );
    assert!(
        !s.root.join("never").exists(),
        "nothing after the failing line ran"
    );

    let o = shell(&s.url("/"), "pwd\nexit\nmkdir after-exit\n");
    assert_eq!(code(&o), 0);
    assert!(!s.root.join("after-exit").exists());
}

#[test]
fn the_server_keeps_serving_when_clients_vanish_at_every_phase() {
    let mut s = Server::anonymous(&[]);
    fs::write(s.root.join("big.bin"), random_bytes(4 << 20, 3)).unwrap();
    let hello = raw_hello();
    let frame = raw_frame;
    use ferry_core::message::Message;
    let login = frame(&Message::Anonymous);
    let get = frame(&Message::Request(ferry_core::Request::Get {
        path: "big.bin".try_into().unwrap(),
    }));
    let accept = frame(&Message::Accept {
        offset: 0,
        name: None,
    });
    let put = frame(&Message::Request(ferry_core::Request::Put {
        path: "p.bin".try_into().unwrap(),
        size: 1 << 20,
        overwrite: ferry_core::Overwrite::Fail,
        resume: false,
    }));
    let phases: Vec<Vec<u8>> = vec![
        vec![],
        hello[..7].to_vec(),
        hello.to_vec(),
        [&hello[..], &login[..3]].concat(),
        [&hello[..], &login[..]].concat(),
        [&hello[..], &login[..], &get[..]].concat(),
        [&hello[..], &login[..], &get[..], &accept[..]].concat(),
        [
            &hello[..],
            &login[..],
            &put[..],
            &[2, 0, 0, 1, 0][..],
            &[9u8; 100][..],
        ]
        .concat(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for bytes in &phases {
        let mut t = TcpStream::connect(&s.addr).unwrap();
        t.write_all(bytes).unwrap();
        // Read a little (the get body may be flowing), then vanish.
        t.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let _ = t.read(&mut [0u8; 1024]);
        drop(t);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.alive());
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    let o = run(c);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("big.bin") && !out.contains("p.bin"), "{out}");
}

#[test]
fn max_connections_gives_a_busy_error() {
    let s = Server::anonymous(&["--max-connections", "1"]);
    // A logged-in session takes the only slot (connections that have not
    // logged in have a budget of their own: tests/tests/admission.rs).
    use ferry_core::message::Message;
    let mut held = TcpStream::connect(&s.addr).unwrap();
    held.write_all(&[raw_hello().to_vec(), raw_frame(&Message::Anonymous)].concat())
        .unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = vec![0u8; ferry_core::frame::HELLO_LEN + raw_frame(&Message::LoginOk).len()];
    held.read_exact(&mut answer).unwrap();
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    let o = run(c);
    assert_eq!(code(&o), 7);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("busy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    assert_eq!(code(&run(c)), 0, "a slot frees when the client leaves");
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    let mut c = ferry();
    c.arg("get");
    assert_eq!(code(&run(c)), 2);
    let mut c = ferry();
    c.args(["ls", "http://nope/"]);
    assert_eq!(code(&run(c)), 2);
    let mut c = ferry();
    c.arg("--help");
    let o = run(c);
    assert_eq!(code(&o), 0);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Exit codes") && help.contains("checksum mismatch"),
        "{help}"
    );
}

#[test]
fn idle_sessions_are_closed_after_the_idle_timeout() {
    let s = Server::anonymous(&["--idle-timeout", "1"]);
    let mut t = TcpStream::connect(&s.addr).unwrap();
    let hello = raw_hello();
    let login = raw_frame(&ferry_core::message::Message::Anonymous);
    t.write_all(&hello).unwrap();
    t.write_all(&login).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match t.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("server did not close the idle session: {e}"),
        }
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    // Its last words: Error(Timeout) = code 6.
    let tail = &got[got.len() - 7..];
    assert_eq!(tail, &[1, 0, 0, 0, 2, 18, 6], "{got:?}");
}

#[test]
fn piped_transfers_print_nothing_but_errors() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("p.bin");
    fs::write(&src, random_bytes(1 << 20, 4)).unwrap();
    let mut c = ferry();
    c.arg("put").arg(&src).arg(s.url("p.bin"));
    let o = run(c);
    assert_eq!(code(&o), 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
    let mut c = ferry();
    c.arg("get")
        .arg(s.url("p.bin"))
        .arg(local.path().join("q.bin"));
    let o = run(c);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
}

/// The interactive shell on a real terminal (tmux): line editing and
/// history. Skipped, with a notice, where tmux is missing.
#[test]
fn interactive_shell_on_a_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux not installed");
        return;
    }
    let s = Server::anonymous(&[]);
    fs::create_dir(s.root.join("目录")).unwrap();
    let name = format!("ferry-test-{}", std::process::id());
    let cmd = format!("{} shell {}", ferry_bin().display(), s.url("/"));
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &name])
            .args(args)
            .output()
            .unwrap()
    };
    tmux(&["new-session", "-d", "-x", "120", "-y", "30", &cmd]);
    let screen = || String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).into_owned();
    let wait_for = |needle: &str, count: usize| {
        for _ in 0..200 {
            if screen().matches(needle).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{needle:?} never appeared {count} times:\n{}", screen());
    };
    wait_for("ferry>", 1);
    tmux(&["send-keys", "cd 目录", "Enter"]);
    wait_for("/目录", 1);
    // Up arrow recalls the line from history.
    tmux(&["send-keys", "Up", "Enter"]);
    wait_for("not found", 1);
    tmux(&["send-keys", "pwd", "Enter"]);
    wait_for("/目录", 2);
    tmux(&["send-keys", "exit", "Enter"]);
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn each_failed_login_costs_at_least_a_second() {
    let dir = TempDir::new().unwrap();
    let users = users_file(dir.path());
    let s = users_server(dir.path(), &users);
    let start = std::time::Instant::now();
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferry://alice@{}/", s.addr))
        .env("FERRY_PASSWORD", "guess");
    assert_eq!(code(&run(c)), 3);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The right password is not slowed down.
    let start = std::time::Instant::now();
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferry://alice@{}/", s.addr))
        .env("FERRY_PASSWORD", "s3cret 密码");
    assert_eq!(code(&run(c)), 0);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn an_exec_allow_list_runs_programs_without_a_shell() {
    let s = Server::anonymous(&["--exec-allow", "echo,true"]);
    let mut c = ferry();
    c.arg("exec")
        .arg(s.url("/"))
        .args(["--", "echo", "a;b", "$HOME", "`id`", "|", "cat"]);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "a;b $HOME `id` | cat",
        "nothing interpreted"
    );
    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).args(["--", "ls", "/"]);
    let o = run(c);
    assert_eq!(code(&o), 6, "not on the list");
    assert!(String::from_utf8_lossy(&o.stdout).is_empty());
}

#[test]
fn exec_output_is_limited_at_the_bound_and_bound_plus_one() {
    let s = Server::anonymous(&["--allow-exec", "--exec-max-output", "100000"]);
    let exec = |n: u32| {
        let mut c = ferry();
        c.arg("exec")
            .arg(s.url("/"))
            .args(["--", &format!("head -c {n} /dev/zero")]);
        run(c)
    };
    let o = exec(100_000);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len(), 100_000);
    let o = exec(100_001);
    assert_eq!(o.stdout.len(), 100_000, "cut at the limit");
    assert_ne!(code(&o), 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("output over the limit of 100000 bytes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // An endless command is stopped by the limit, long before its timeout.
    let t = std::time::Instant::now();
    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).args(["--", "yes"]);
    let o = run(c);
    assert_eq!(o.stdout.len(), 100_000);
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn max_per_ip_limits_sessions_from_one_address() {
    let s = Server::anonymous(&["--max-per-ip", "1"]);
    let held = TcpStream::connect(&s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    let o = run(c);
    assert_eq!(code(&o), 7);
    assert!(String::from_utf8_lossy(&o.stderr).contains("busy"));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    assert_eq!(code(&run(c)), 0);
}
