//! Ferry over a serial line, end to end: `ferry serve --listen serial:A`
//! and the CLI with `--serial B` on the two ends of a virtual line
//! (pseudo-terminals joined by a paced relay: no root, no hardware).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::serial_line::{Faults, SerialLine};
use ferry_tests::{code, ferry, ok, random_bytes, run_for, Server, TempDir};

/// Where only correctness is checked: the line as fast as a UART goes.
const FAST: u32 = 921_600;
/// Each client command gets this long at most.
const LIMIT: Duration = Duration::from_secs(40);

/// `ferry serve ROOT --anonymous --listen serial:A --baud BAUD`.
fn serve(root: &Path, line: &SerialLine, baud: u32) -> Server {
    let listen = format!("serial:{}", line.a.display());
    let baud = baud.to_string();
    let s = Server::start(root, &["--anonymous", "--listen", &listen, "--baud", &baud]);
    assert_eq!(s.addrs, [listen]);
    s
}

/// A `ferry ARGS... --serial B --baud BAUD --timeout 20` command.
fn client(line: &SerialLine, baud: u32, args: &[&str]) -> Command {
    let mut c = ferry();
    c.args(args).arg("--serial").arg(&line.b).args([
        "--baud",
        &baud.to_string(),
        "--timeout",
        "20",
    ]);
    c
}

fn get(line: &SerialLine, baud: u32, url: &str, local: &Path) -> Output {
    let local = local.to_str().expect("utf-8 path");
    run_for(client(line, baud, &["get", "-q", url, local]), LIMIT)
}

fn put(line: &SerialLine, baud: u32, local: &Path, url: &str) -> Output {
    let local = local.to_str().expect("utf-8 path");
    run_for(client(line, baud, &["put", "-q", local, url]), LIMIT)
}

/// Puts and gets of 0 B, 1 B and 64 KiB, each its own client process and
/// so its own session on the one line: the server serves the next after
/// each. Then ls, and a shell batch.
#[test]
fn puts_gets_and_ls_over_the_line_session_after_session() {
    let t0 = Instant::now();
    let line = SerialLine::start(FAST, Faults::default());
    let root = TempDir::new().unwrap();
    let s = serve(root.path(), &line, FAST);
    let local = TempDir::new().unwrap();
    let back = TempDir::new().unwrap();
    let sizes = [("empty.bin", 0), ("one.bin", 1), ("big.bin", 64 * 1024)];
    for (i, (name, len)) in sizes.iter().enumerate() {
        let data = random_bytes(*len, i as u64 + 1);
        std::fs::write(local.path().join(name), &data).unwrap();
        ok(&put(
            &line,
            FAST,
            &local.path().join(name),
            "ferry://device/",
        ));
        assert_eq!(
            std::fs::read(s.root.join(name)).unwrap(),
            data,
            "{name} put"
        );
    }
    for (i, (name, len)) in sizes.iter().enumerate() {
        let to = back.path().join(name);
        let o = get(&line, FAST, &format!("ferry://device/{name}"), &to);
        ok(&o);
        assert_eq!(
            std::fs::read(&to).unwrap(),
            random_bytes(*len, i as u64 + 1),
            "{name} got"
        );
    }
    let o = run_for(client(&line, FAST, &["ls", "ferry://device/"]), LIMIT);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    for (name, len) in sizes {
        assert!(
            out.lines()
                .any(|l| l.contains(name) && l.contains(&len.to_string())),
            "{name} ({len}) in:\n{out}"
        );
    }
    // The shell: several requests in one session.
    let mut c = client(&line, FAST, &["shell", "ferry://device/"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"mkdir sub\nmv one.bin sub/one.bin\nls sub\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("one.bin"));
    assert_eq!(std::fs::read(s.root.join("sub/one.bin")).unwrap().len(), 1);
    eprintln!("{:.1} s", t0.elapsed().as_secs_f32());
}

/// A 64 KiB put at 115200 baud (about 6 s of line) with the cable pulled
/// for 2 s once the body is flowing: the link resends, the put completes
/// and the file is whole.
#[test]
fn a_put_survives_a_pulled_cable() {
    const BAUD: u32 = 115_200;
    let line = SerialLine::start(BAUD, Faults::default());
    let root = TempDir::new().unwrap();
    let s = serve(root.path(), &line, BAUD);
    let local = TempDir::new().unwrap();
    let data = random_bytes(64 * 1024, 7);
    let file = local.path().join("cut.bin");
    std::fs::write(&file, &data).unwrap();
    let mut c = client(
        &line,
        BAUD,
        &["put", "-q", file.to_str().unwrap(), "ferry://device/"],
    );
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    // Once a quarter of the body has gone up: pull the cable.
    let deadline = Instant::now() + LIMIT;
    while line.carried().1 < 16 * 1024 {
        assert!(Instant::now() < deadline, "the put never got going");
        assert!(child.try_wait().unwrap().is_none(), "the put ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let at = line.carried().1;
    line.cut_for(Duration::from_secs(2));
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the put hung after the cut");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let err = child.wait_with_output().unwrap().stderr;
    assert!(status.success(), "{}", String::from_utf8_lossy(&err));
    assert!(at < data.len() as u64, "the cut came before the end");
    assert_eq!(std::fs::read(s.root.join("cut.bin")).unwrap(), data);
    // The cut cost its 2 s (and a resend timer), not the transfer.
    assert!(took > Duration::from_secs(7), "{took:?}");
    eprintln!("{:.1} s", took.as_secs_f32());
}

/// A client killed mid-put leaves the server serving: the next client's
/// link resets the old one (its session ends, the part file stays), and
/// that client's put and ls work.
#[test]
fn the_server_survives_a_client_that_vanishes_mid_put() {
    let line = SerialLine::start(FAST, Faults::default());
    let root = TempDir::new().unwrap();
    let s = serve(root.path(), &line, FAST);
    let local = TempDir::new().unwrap();
    let big = local.path().join("big.bin");
    std::fs::write(&big, random_bytes(1 << 20, 3)).unwrap();
    let mut c = client(
        &line,
        FAST,
        &["put", "-q", big.to_str().unwrap(), "ferry://device/"],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + LIMIT;
    while line.carried().1 < 100 * 1024 {
        assert!(Instant::now() < deadline, "the put never got going");
        assert!(child.try_wait().unwrap().is_none(), "the put ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!s.root.join("big.bin").exists(), "killed before the end");
    let small = local.path().join("after.bin");
    let data = random_bytes(10_000, 4);
    std::fs::write(&small, &data).unwrap();
    let t0 = Instant::now();
    ok(&put(&line, FAST, &small, "ferry://device/"));
    assert_eq!(std::fs::read(s.root.join("after.bin")).unwrap(), data);
    let o = run_for(client(&line, FAST, &["ls", "ferry://device/"]), LIMIT);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("after.bin"));
    eprintln!("next client: {:.1} s", t0.elapsed().as_secs_f32());
}

/// The virtual line itself: paced to its rate, and bit errors as told.
#[test]
fn the_virtual_line_paces_and_flips_bits() {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    for (ber, clean) in [(0.0, true), (1e-3, false)] {
        let line = SerialLine::start(
            115_200,
            Faults {
                seed: 5,
                bit_error_rate: ber,
                ..Faults::default()
            },
        );
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(p)
                .unwrap()
        };
        let (mut a, mut b) = (open(&line.a), open(&line.b));
        let data = random_bytes(5760, 9);
        let t0 = Instant::now();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = [0u8; 4096];
        while got.len() < data.len() && t0.elapsed() < Duration::from_secs(5) {
            if let Ok(n) = a.write(&data[sent..]) {
                sent += n;
            }
            match b.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        // 5760 bytes at 11 520 bytes/s: half a second.
        let took = t0.elapsed();
        assert_eq!(got.len(), data.len());
        assert!(took > Duration::from_millis(400), "{took:?}");
        assert_eq!(got == data, clean);
    }
}

/// A noisy line (bit errors and dropped bytes, seeded): the link resends
/// what the CRC refuses, and a 64 KiB put and get come out whole.
#[test]
fn a_noisy_line_loses_nothing() {
    let line = SerialLine::start(
        FAST,
        Faults {
            seed: 11,
            bit_error_rate: 1e-5,
            drop_rate: 1e-5,
            cut: None,
        },
    );
    let root = TempDir::new().unwrap();
    let s = serve(root.path(), &line, FAST);
    let local = TempDir::new().unwrap();
    let data = random_bytes(64 * 1024, 12);
    let file = local.path().join("noisy.bin");
    std::fs::write(&file, &data).unwrap();
    ok(&put(&line, FAST, &file, "ferry://device/"));
    assert_eq!(std::fs::read(s.root.join("noisy.bin")).unwrap(), data);
    let back = local.path().join("back.bin");
    let o = get(&line, FAST, "ferry://device/noisy.bin", &back);
    ok(&o);
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

/// No server on the line: the client gives up after --timeout with a
/// connection error (7), naming the device.
#[test]
fn no_server_on_the_line_is_a_timeout() {
    let line = SerialLine::start(FAST, Faults::default());
    let mut c = ferry();
    c.args(["ls", "ferry://device/", "--serial"])
        .arg(&line.b)
        .args(["--timeout", "2"]);
    let t0 = Instant::now();
    let o = run_for(c, LIMIT);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 7, "{err}");
    assert!(
        err.contains("no answer on the serial line") && err.contains(&*line.b.to_string_lossy()),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// A session the server ends (here the idle timeout) starts the link
/// over: the client hears "connection closed" at once rather than at the
/// link's dead time, and the next client is served.
#[test]
fn a_session_the_server_ends_frees_the_line() {
    let line = SerialLine::start(FAST, Faults::default());
    let root = TempDir::new().unwrap();
    let listen = format!("serial:{}", line.a.display());
    let baud = FAST.to_string();
    let s = Server::start(
        root.path(),
        &[
            "--anonymous",
            "--listen",
            &listen,
            "--baud",
            &baud,
            "--idle-timeout",
            "1",
        ],
    );
    let mut c = client(&line, FAST, &["shell", "ferry://device/"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(b"mkdir before\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let _ = stdin.write_all(b"mkdir after\n");
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 7, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(s.root.join("before").is_dir());
    assert!(!s.root.join("after").exists());
    ok(&run_for(
        client(&line, FAST, &["mkdir", "ferry://device/next"]),
        LIMIT,
    ));
    assert!(s.root.join("next").is_dir());
}

/// `ferry-device --serial A`, killed on drop.
struct Device(std::process::Child);

impl Device {
    fn start(line: &SerialLine, baud: u32, auth: &[&str]) -> Device {
        use std::io::BufRead;
        let mut c = Command::new(ferry_tests::device_bin())
            .arg("--serial")
            .arg(&line.a)
            .args(["--baud", &baud.to_string()])
            .args(auth)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferry-device");
        let out = c.stdout.take().unwrap();
        let first = std::io::BufReader::new(out).lines().next();
        assert!(
            first
                .is_some_and(|l| l.is_ok_and(|l| l.starts_with("ferry-device: serving on serial"))),
            "ferry-device did not start"
        );
        Device(c)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The device (no TCP/IP stack, its RAM store) on a virtual line: puts
/// and gets of 0 B, 1 B and 64 KiB verified byte for byte, ls, a
/// built-in command, and a session after each.
#[test]
fn the_device_serves_over_a_serial_line() {
    let line = SerialLine::start(FAST, Faults::default());
    let _device = Device::start(&line, FAST, &["--anonymous"]);
    let local = TempDir::new().unwrap();
    for (i, (name, len)) in [("empty.bin", 0), ("one.bin", 1), ("big.bin", 64 * 1024)]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes(len, 40 + i as u64);
        let src = local.path().join(name);
        std::fs::write(&src, &data).unwrap();
        ok(&put(&line, FAST, &src, "ferry://device/"));
        let back = local.path().join(format!("{name}.back"));
        let url = format!("ferry://device/{name}");
        ok(&get(&line, FAST, &url, &back));
        assert_eq!(
            std::fs::read(&back).unwrap(),
            data,
            "{name} back from the device"
        );
    }
    let o = run_for(client(&line, FAST, &["ls", "ferry://device/"]), LIMIT);
    ok(&o);
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains("big.bin") && listing.contains("65536"),
        "{listing}"
    );
    let mut md5 = client(&line, FAST, &["exec", "ferry://device/"]);
    md5.args(["--", "md5", "one.bin"]);
    let o = run_for(md5, LIMIT);
    ok(&o);
    let sum = ferry_tests::md5_file(&local.path().join("one.bin"));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&sum), "{o:?}");
}
