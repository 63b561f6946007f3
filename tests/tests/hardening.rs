//! Hardening found by a black-box review: a many-address flood cannot
//! evict real users before they log in, commands cannot reach io_uring or
//! System V IPC, a command's processes, memory and CPU time are capped,
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
        let t = Instant::now();
        let o = run(c);
        eprintln!("ls {i}: {:?}", t.elapsed());
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `ferry exec URL -- CMD` against `s`.
fn exec(s: &Server, cmd: &str) -> std::process::Output {
    let mut c = ferry();
    c.arg("exec").arg(s.url("/")).arg("--").arg(cmd);
    run(c)
}

/// `python3 -c SCRIPT` as one word (no spaces): for `--exec-allow`, which
/// splits a command on white space and runs it without a shell.
fn python_word(script: &str) -> String {
    let hex: String = script.bytes().map(|b| format!("{b:02x}")).collect();
    format!("exec(bytes.fromhex('{hex}').decode())")
}

/// The System V objects of one kind (`shm`, `msg`, `sem`) as rows of
/// `/proc/sysvipc/KIND`, the header left out.
fn sysv_rows(kind: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(format!("/proc/sysvipc/{kind}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Removes System V objects by id, whatever a test ends with: a command
/// that was not refused must not leave them behind either.
struct RemoveIpc(Vec<(&'static str, i32)>);

impl Drop for RemoveIpc {
    fn drop(&mut self) {
        for &(kind, id) in &self.0 {
            // SAFETY: IPC_RMID with a null buffer only removes the object.
            unsafe {
                match kind {
                    "shm" => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    "msg" => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    _ => libc::semctl(id, 0, libc::IPC_RMID),
                };
            }
        }
    }
}

/// Issue: Landlock does not cover System V IPC. A command created a
/// 16 MiB shared-memory segment that outlived it and the server. Now
/// `shmget`, `msgget` and `semget` fail with EPERM (1) and no segment
/// made by the command's process exists afterwards; through python3
/// (ctypes) and through util-linux's `ipcmk`, each where present.
#[test]
fn commands_cannot_create_system_v_ipc_objects() {
    let s = Server::anonymous(&["--allow-exec"]);
    let mut ran = false;
    let python = "/usr/bin/python3";
    if std::path::Path::new(python).exists() {
        ran = true;
        // IPC_PRIVATE (0) with IPC_CREAT | 0600: always a new object.
        let script = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
                      r = [libc.shmget(0, 16 << 20, 0o1600), ctypes.get_errno(), \
                      libc.msgget(0, 0o1600), ctypes.get_errno(), \
                      libc.semget(0, 1, 0o1600), ctypes.get_errno()]; \
                      print(os.getpid(), *r)";
        let o = exec(&s, &format!("{python} -c \"{script}\""));
        let out = text(&o.stdout);
        let words: Vec<i64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(words.len(), 7, "{out} {}", text(&o.stderr));
        let _remove = RemoveIpc(
            [("shm", words[1]), ("msg", words[3]), ("sem", words[5])]
                .into_iter()
                .filter(|(_, id)| *id >= 0)
                .map(|(k, id)| (k, id as i32))
                .collect(),
        );
        assert_eq!(
            &words[1..],
            &[-1, 1, -1, 1, -1, 1],
            "shmget, msgget, semget: -1 with EPERM (1) expected"
        );
        let pid = words[0].to_string();
        // shm: key shmid perms size cpid …
        let left: Vec<_> = sysv_rows("shm")
            .into_iter()
            .filter(|r| r.get(4) == Some(&pid))
            .collect();
        assert!(left.is_empty(), "segments made by the command: {left:?}");
    } else {
        eprintln!("no {python}: its part skipped");
    }
    if std::path::Path::new("/usr/bin/ipcmk").exists() {
        ran = true;
        // `exec` keeps the shell's pid, which the segment would carry.
        let o = exec(&s, "echo $$; exec ipcmk -M 1048576");
        let out = text(&o.stdout);
        let id = out
            .split("Shared memory id:")
            .nth(1)
            .and_then(|w| w.trim().parse::<i32>().ok());
        let _remove = RemoveIpc(id.map(|id| ("shm", id)).into_iter().collect());
        assert_ne!(code(&o), 0, "ipcmk made a segment: {out}");
        assert!(
            text(&o.stderr).contains("Operation not permitted"),
            "{}",
            text(&o.stderr)
        );
        let pid = out.lines().next().unwrap_or("").trim().to_string();
        assert!(!pid.is_empty(), "{out}");
        let left: Vec<_> = sysv_rows("shm")
            .into_iter()
            .filter(|r| r.get(4) == Some(&pid))
            .collect();
        assert!(left.is_empty(), "segments made by ipcmk: {left:?}");
    } else {
        eprintln!("no /usr/bin/ipcmk: its part skipped");
    }
    if !ran {
        eprintln!("skipped: neither python3 nor ipcmk to try System V IPC with");
    }
}

/// Issue: a command under `--exec-allow python3 --read-only` attached to a
/// 0600 segment of another process of the server's uid (root's, here) and
/// overwrote it. The test makes such a segment with a key; the command's
/// `shmget` of that key fails with EPERM and the segment is unchanged.
#[test]
fn commands_cannot_attach_to_a_segment_of_another_process() {
    let python = "/usr/bin/python3";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped: no {python}");
        return;
    }
    const SIZE: usize = 4096;
    const MARK: &[u8] = b"the test's own bytes";
    let key = 0x4652_0000 | (std::process::id() as i32 & 0xffff);
    // SAFETY: shmget/shmat/shmdt on a segment this test owns; the write
    // stays inside its SIZE bytes.
    let id = unsafe {
        let id = libc::shmget(key, SIZE, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        let p = libc::shmat(id, std::ptr::null(), 0);
        assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
        std::ptr::copy_nonoverlapping(MARK.as_ptr(), p.cast::<u8>(), MARK.len());
        libc::shmdt(p);
        id
    };
    let _remove = RemoveIpc(vec![("shm", id)]);
    let s = Server::anonymous(&["--exec-allow", "python3", "--read-only"]);
    let script = format!(
        "import ctypes\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.shmat.restype = ctypes.c_void_p\n\
         i = libc.shmget({key}, 0, 0)\n\
         e = ctypes.get_errno()\n\
         if i >= 0:\n    \
             p = libc.shmat(i, None, 0)\n    \
             ctypes.memmove(p, b'overwritten by the command', 26)\n\
         print('shmget', i, e)\n"
    );
    let o = exec(&s, &format!("python3 -c {}", python_word(&script)));
    // SAFETY: as above, reading the segment's first bytes.
    let now = unsafe {
        let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
        assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
        let v = std::slice::from_raw_parts(p.cast::<u8>(), MARK.len()).to_vec();
        libc::shmdt(p);
        v
    };
    assert_eq!(text(&now), text(MARK), "the command wrote into the segment");
    assert_eq!(
        text(&o.stdout).trim(),
        "shmget -1 1",
        "EPERM (1) expected: {}",
        text(&o.stderr)
    );
}

/// The pids of processes with `mark` as an argument (zombies have no
/// arguments).
fn running(mark: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == mark.as_bytes()))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Kills, by pid, what a failing test left behind (an old build leaves
/// sleepers carrying the mark).
struct Reap(String);
impl Drop for Reap {
    fn drop(&mut self) {
        for pid in running(&self.0) {
            // SAFETY: kill(2) takes integers; the pid carries our mark.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Issue: commands ran with the server's RLIMIT_NPROC, which the kernel
/// never enforces for root; a command could start processes until the
/// machine had no pids left. Under `--exec-max-procs 32`, a command that
/// starts 3 000 background sleeps is stopped with the message and status
/// the client shows, far fewer than 200 were ever started (each iteration
/// appends a line first), none is left, and a `ferry ls` meanwhile
/// succeeds.
#[test]
fn a_command_starting_thousands_of_processes_is_stopped() {
    let s = Server::anonymous(&["--allow-exec", "--exec-max-procs", "32"]);
    let mark = format!("302.{}", std::process::id());
    let _reap = Reap(mark.clone());
    let started = s.root.join("started");
    let t0 = Instant::now();
    let o = std::thread::scope(|scope| {
        let bomb = scope.spawn(|| {
            exec(
                &s,
                &format!("for i in $(seq 3000); do echo $i >> started; sleep {mark} & done; wait"),
            )
        });
        // While it runs (or as soon as it has begun), the server answers.
        while !started.exists() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut c = ferry();
        c.args(["ls", &s.url("")]);
        let ls = run(c);
        assert_eq!(code(&ls), 0, "ls failed: {}", text(&ls.stderr));
        assert!(text(&ls.stdout).contains("started"), "{}", text(&ls.stdout));
        bomb.join().unwrap()
    });
    let took = t0.elapsed();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("ferry: command stopped: more than 32 processes"),
        "{err}"
    );
    assert!(err.contains("status -9"), "{err}");
    let n = std::fs::read_to_string(&started).unwrap().lines().count();
    assert!(n < 200, "{n} sleeps started");
    let t = Instant::now();
    while !running(&mark).is_empty() && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        running(&mark).is_empty(),
        "sleeps of the command left running"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    eprintln!("stopped after {n} sleeps started, in {took:?}");
}

/// Issue: commands had no memory limit. Under `--exec-max-memory 64 MiB`,
/// four processes of ~38 MiB each (within the per-process RLIMIT_DATA,
/// over the limit together) are stopped with the message, and one process
/// asking for 200 MiB at once fails its allocation (RLIMIT_DATA).
#[test]
fn a_command_using_too_much_memory_is_stopped() {
    let python = "/usr/bin/python3";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped: no {python}");
        return;
    }
    let s = Server::anonymous(&["--allow-exec", "--exec-max-memory", "67108864"]);
    let t0 = Instant::now();
    let o = exec(
        &s,
        &format!(
            "for i in 1 2 3 4; do {python} -c \"b = b'x' * (30 << 20); import time; \
             time.sleep(20)\" & done; wait"
        ),
    );
    let took = t0.elapsed();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("ferry: command stopped: memory over the limit of 67108864 bytes"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let o = exec(&s, &format!("{python} -c \"b = b'x' * (200 << 20)\""));
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("MemoryError"), "{err}");
    assert!(!err.contains("ferry: command stopped"), "{err}");
    eprintln!("4 × 38 MiB stopped in {took:?}");
}

/// Issue: commands had no CPU limit. Under `--exec-max-cpu 1`, a busy
/// loop is stopped after about a second of CPU with the message, before
/// the 60 s time limit (at nice +10 on a busy machine a second of CPU can
/// take several seconds to use).
#[test]
fn a_command_using_too_much_cpu_is_stopped() {
    let s = Server::anonymous(&["--allow-exec", "--exec-max-cpu", "1"]);
    let t0 = Instant::now();
    let o = exec(&s, "while :; do :; done");
    let took = t0.elapsed();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("ferry: command stopped: CPU time over the limit of 1 s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(45), "{took:?}");
    eprintln!("busy loop stopped in {took:?}");
}

/// Issue: under `--user-dirs` anonymous sessions live in `ROOT/anonymous`,
/// so a users-file user named `anonymous` would share their files. Such a
/// server refuses to start (exit 2), saying why; without `--user-dirs` the
/// name is harmless.
#[test]
fn user_dirs_refuse_a_user_named_anonymous() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    add_user(&users, "anonymous", "pw");
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
