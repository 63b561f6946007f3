//! `exec` confinement and lifetime: commands reach nothing outside the
//! root (Landlock), `--read-only` holds for them, they get a minimal
//! environment, and nothing they start outlives the time limit, the end of
//! the command or the client (docs/SECURITY.md, "Commands").

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferry_tests::*;

/// Runs `ferry exec URL -- CMD` against `s`.
fn exec(s: &Server, cmd: &str) -> Output {
    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).arg("--").arg(cmd);
    run(c)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory outside the served root holding `secret.txt`, and a root
/// beside it (both in the temp directory) with `in.txt`, `a/`, and symlinks
/// out: `link` → the outside directory, `rel` → the secret, relatively.
struct Layout {
    top: TempDir,
    out_name: String,
}

const SECRET: &str = "outside-secret-7f3a";

impl Layout {
    fn new() -> Layout {
        let top = TempDir::new().unwrap();
        let out_name = "outside".to_string();
        let out = top.path().join(&out_name);
        let root = top.path().join("root");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(out.join("secret.txt"), SECRET).unwrap();
        fs::write(root.join("in.txt"), "inside").unwrap();
        std::os::unix::fs::symlink(&out, root.join("link")).unwrap();
        std::os::unix::fs::symlink("../outside/secret.txt", root.join("rel")).unwrap();
        Layout { top, out_name }
    }
    fn root(&self) -> std::path::PathBuf {
        self.top.path().join("root")
    }
    fn outside(&self) -> std::path::PathBuf {
        self.top.path().join(&self.out_name)
    }
    fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["--anonymous", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::start(&self.root(), &args)
    }
    /// The outside directory's names, contents and modes.
    fn outside_state(&self) -> Vec<(String, Vec<u8>, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let mut v: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let md = fs::symlink_metadata(e.path()).unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap_or_default(),
                    md.permissions().mode(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// Every way out a command could try, for both kinds of exec: relative,
/// absolute, through symlinks inside the root, `a/../..`, system files
/// and other directories. In-root commands still work.
#[test]
fn commands_cannot_read_or_list_outside_the_root() {
    let l = Layout::new();
    let out = l.outside();
    let out = out.display();
    for config in [&["--exec-allow", "cat,ls"][..], &["--allow-exec"][..]] {
        let s = l.serve(config);
        for cmd in [
            "cat ../outside/secret.txt".to_string(),
            format!("cat {out}/secret.txt"),
            "cat link/secret.txt".into(),
            "cat rel".into(),
            "cat a/../../outside/secret.txt".into(),
            "cat /etc/passwd".into(),
            "cat /etc/hostname".into(),
        ] {
            let o = exec(&s, &cmd);
            assert_ne!(code(&o), 0, "{config:?} {cmd}: {}", text(&o.stdout));
            let stdout = text(&o.stdout);
            assert!(
                !stdout.contains(SECRET) && !stdout.contains("root:"),
                "{config:?} {cmd} read: {stdout}"
            );
            assert!(
                text(&o.stderr).contains("Permission denied"),
                "{config:?} {cmd}: {}",
                text(&o.stderr)
            );
        }
        for cmd in [
            "ls /root".to_string(),
            format!("ls {out}"),
            "ls ..".into(),
            "ls link/".into(),
            "ls /".into(),
        ] {
            let o = exec(&s, &cmd);
            assert_ne!(code(&o), 0, "{config:?} {cmd}: {}", text(&o.stdout));
            assert!(o.stdout.is_empty(), "{config:?} {cmd}: {}", text(&o.stdout));
        }
        // Inside the root, as before.
        let o = exec(&s, "cat in.txt");
        assert_eq!(code(&o), 0, "{config:?}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "inside");
        let o = exec(&s, "cat a/../in.txt");
        assert_eq!(text(&o.stdout), "inside");
        let o = exec(&s, "ls");
        assert_eq!(code(&o), 0, "{config:?}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("in.txt"));
    }
}

/// A shell command cannot create, change, remove, link or re-mode
/// anything outside the root; inside it, it writes as before.
#[test]
fn shell_commands_cannot_change_anything_outside_the_root() {
    let l = Layout::new();
    let before = l.outside_state();
    let s = l.serve(&["--allow-exec"]);
    let out = l.outside();
    let out = out.display();
    for cmd in [
        "echo x > ../outside/new.txt".to_string(),
        format!("echo x >> {out}/secret.txt"),
        format!(": > {out}/secret.txt"),
        format!("cp in.txt {out}/"),
        format!("rm -f {out}/secret.txt"),
        "rm -f link/secret.txt".into(),
        format!("mv {out}/secret.txt stolen.txt"),
        format!("ln {out}/secret.txt hard.txt"),
        format!("chmod 777 {out}/secret.txt"),
        "chmod 777 rel".into(),
        format!("mkdir {out}/made"),
        format!("truncate -s 0 {out}/secret.txt"),
    ] {
        let o = exec(&s, &cmd);
        assert_ne!(code(&o), 0, "{cmd} succeeded");
    }
    assert_eq!(l.outside_state(), before, "the outside is unchanged");
    assert!(!l.root().join("stolen.txt").exists());
    assert!(!l.root().join("hard.txt").exists());
    let o = exec(
        &s,
        "echo made > made.txt && mkdir d && mv made.txt d/ && cat d/made.txt",
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "made");
}

/// `--read-only` holds for commands: they read the root but cannot change
/// it.
#[test]
fn read_only_commands_read_but_cannot_change_the_root() {
    let l = Layout::new();
    let s = l.serve(&["--read-only", "--allow-exec"]);
    let o = exec(&s, "cat in.txt && ls");
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("inside"));
    for cmd in [
        "rm in.txt",
        "echo x > new.txt",
        "echo x >> in.txt",
        ": > in.txt",
        "mkdir d",
        "mv in.txt moved.txt",
        "rmdir a",
        "ln -s in.txt sym",
        "cp in.txt copy.txt",
    ] {
        let o = exec(&s, cmd);
        assert_ne!(code(&o), 0, "{cmd} succeeded");
    }
    let mut names: Vec<_> = fs::read_dir(l.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "in.txt", "link", "rel"]);
    assert_eq!(
        fs::read_to_string(l.root().join("in.txt")).unwrap(),
        "inside"
    );
}

/// `--exec-unconfined` is refused with `--read-only` (exit 2, with the
/// reason); without it, it does what it says: commands are not confined.
#[test]
fn exec_unconfined_is_refused_with_read_only_and_unconfines_otherwise() {
    let l = Layout::new();
    let mut c = ferry();
    c.arg("serve")
        .arg(l.root())
        .args(["--anonymous", "--listen", "127.0.0.1:0", "--read-only"])
        .args(["--allow-exec", "--exec-unconfined"]);
    let o = run(c);
    assert_eq!(code(&o), 2, "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("--read-only with --exec-unconfined"), "{err}");
    let s = l.serve(&["--allow-exec", "--exec-unconfined"]);
    let o = exec(&s, "cat ../outside/secret.txt");
    assert_eq!(text(&o.stdout), SECRET);
}

/// Commands see PATH, LANG and HOME (the directory) and nothing of the
/// server's environment (the test runner's CARGO_* variables, here).
#[test]
fn commands_get_a_minimal_environment() {
    let l = Layout::new();
    for (config, extra) in [
        (&["--exec-allow", "env"][..], &[][..]),
        (&["--allow-exec"][..], &["PWD"][..]),
    ] {
        let s = l.serve(config);
        let o = exec(&s, "env");
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let mut vars: Vec<String> = text(&o.stdout).lines().map(String::from).collect();
        vars.sort();
        let root = l.root().canonicalize().unwrap();
        let mut want = vec![
            format!("HOME={}", root.display()),
            "LANG=C.UTF-8".to_string(),
            "PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
        ];
        want.extend(extra.iter().map(|v| format!("{v}={}", root.display())));
        want.sort();
        assert_eq!(vars, want, "{config:?}");
    }
}

static MARKS: AtomicU32 = AtomicU32::new(0);

/// A `sleep` argument no other process has: `301.PID0N`.
fn marker() -> String {
    format!(
        "301.{}{:02}",
        std::process::id(),
        MARKS.fetch_add(1, Ordering::SeqCst)
    )
}

/// Processes with `mark` as an argument (zombies have no arguments).
fn running(mark: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            if cmdline.split(|b| *b == 0).any(|a| a == mark.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Waits (at most `limit`) until no process carries `mark`.
fn gone_within(mark: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if running(mark).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Kills what a failing test left behind (old builds leave sleepers).
struct Reap(Vec<String>);
impl Drop for Reap {
    fn drop(&mut self) {
        for m in &self.0 {
            for pid in running(m) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// `--exec-timeout 2`: `sleep 8; echo done` ends after about 2 s with the
/// timeout message and no "done"; what it started is gone too.
#[test]
fn the_time_limit_ends_the_command_and_everything_it_started() {
    let s = Server::anonymous(&["--allow-exec", "--exec-timeout", "2"]);
    let (m1, m2) = (marker(), marker());
    let _reap = Reap(vec![m1.clone(), m2.clone()]);
    let t = Instant::now();
    let o = exec(&s, &format!("sleep {m1} & sleep 8; echo done; sleep {m2}"));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(code(&o), 1);
    assert!(!text(&o.stdout).contains("done"), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("ferry: command timed out"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("status -9"), "{}", text(&o.stderr));
    assert!(gone_within(&m1, Duration::from_secs(3)), "{m1} survived");
    eprintln!("sleep 8 under --exec-timeout 2: {took:?}");
}

/// A background job neither holds the exec open nor outlives it.
#[test]
fn background_jobs_end_with_the_command() {
    let s = Server::anonymous(&["--allow-exec"]);
    let m = marker();
    let _reap = Reap(vec![m.clone()]);
    let t = Instant::now();
    let o = exec(&s, &format!("sleep {m} & echo started"));
    let took = t.elapsed();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "started");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(gone_within(&m, Duration::from_secs(3)), "{m} survived");
    eprintln!("sleep 301 & echo started: {took:?}");
}

/// `setsid` cannot take a child out of the command's group; `nohup`
/// children die with the group, at the time limit or when the client goes.
#[test]
fn setsid_and_nohup_children_do_not_survive() {
    let s = Server::anonymous(&["--allow-exec", "--exec-timeout", "2"]);
    let (a, b) = (marker(), marker());
    let _reap = Reap(vec![a.clone(), b.clone()]);
    let o = exec(&s, &format!("setsid sleep {a}"));
    assert_ne!(code(&o), 0);
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
    let o = exec(
        &s,
        &format!("(setsid sleep {a} &); nohup sleep {b} >/dev/null 2>&1 & sleep 30"),
    );
    assert!(text(&o.stderr).contains("timed out"), "{}", text(&o.stderr));
    assert!(
        gone_within(&a, Duration::from_secs(3)),
        "setsid {a} survived"
    );
    assert!(
        gone_within(&b, Duration::from_secs(3)),
        "nohup {b} survived"
    );

    // The client vanishes mid-command (the time limit is a minute away).
    let s = Server::anonymous(&["--allow-exec"]);
    let (c, d) = (marker(), marker());
    let _reap2 = Reap(vec![c.clone(), d.clone()]);
    let mut client = ferry()
        .arg("exec")
        .arg(s.url("/"))
        .arg("--")
        .arg(format!("nohup sleep {c} >/dev/null 2>&1 & sleep {d}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while (running(&c).is_empty() || running(&d).is_empty())
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !running(&c).is_empty() && !running(&d).is_empty(),
        "not started"
    );
    client.kill().unwrap();
    client.wait().unwrap();
    let t = Instant::now();
    assert!(
        gone_within(&c, Duration::from_secs(4)),
        "nohup {c} survived its client"
    );
    assert!(
        gone_within(&d, Duration::from_secs(1)),
        "{d} survived its client"
    );
    eprintln!("client gone → command group gone in {:?}", t.elapsed());
}

/// The pid of the `ferry serve` process serving `root`.
fn server_pid(root: &Path) -> u32 {
    let root = root.as_os_str().as_encoded_bytes();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.contains(&&b"serve"[..]) && args.contains(&root) {
                return pid;
            }
        }
    }
    panic!("no server process found");
}

/// A command cannot signal the server (or anything outside itself), and
/// a server running as root runs commands without capabilities: a file
/// its owner may not read stays unreadable.
#[test]
fn commands_cannot_signal_the_server_nor_use_root_capabilities() {
    let mut s = Server::anonymous(&["--allow-exec"]);
    let pid = server_pid(&s.root);
    let o = exec(&s, &format!("kill -TERM {pid}"));
    assert_ne!(code(&o), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.alive(), "the server was killed by its command");
    if rustix::process::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        let locked = s.root.join("locked.txt");
        fs::write(&locked, "locked").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let o = exec(&s, "cat locked.txt");
        assert_ne!(
            code(&o),
            0,
            "read with CAP_DAC_OVERRIDE: {}",
            text(&o.stdout)
        );
        assert!(o.stdout.is_empty());
    } else {
        eprintln!("SKIPPED the capability half: not root");
    }
}

/// A server stopped with Ctrl-C (SIGINT) or SIGTERM takes its commands'
/// process groups with it, background jobs included.
#[test]
fn stopping_the_server_ends_its_commands() {
    for signal in ["-INT", "-TERM"] {
        stop_server_with(signal);
    }
}

fn stop_server_with(signal: &str) {
    let mut s = Server::anonymous(&["--allow-exec"]);
    let (a, b) = (marker(), marker());
    let _reap = Reap(vec![a.clone(), b.clone()]);
    let mut client = ferry()
        .arg("exec")
        .arg(s.url("/"))
        .arg("--")
        .arg(format!("sleep {a} & sleep {b}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while (running(&a).is_empty() || running(&b).is_empty())
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !running(&a).is_empty() && !running(&b).is_empty(),
        "not started"
    );
    let pid = server_pid(&s.root);
    let killed = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let t = Instant::now();
    while s.alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!s.alive(), "the server did not stop");
    assert!(
        gone_within(&a, Duration::from_secs(3)),
        "{a} survived the server"
    );
    assert!(
        gone_within(&b, Duration::from_secs(1)),
        "{b} survived the server"
    );
    let _ = client.kill();
    let _ = client.wait();
}
