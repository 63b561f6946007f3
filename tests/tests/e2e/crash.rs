//! Crash safety: `kill -9` the client, and separately the server, at 100
//! pseudo-random moments during puts that replace an existing file. In
//! every run the file under its name is the old one intact or the new one
//! complete — never a mix — and partial uploads do not pile up: there is at
//! most one per target, and the next put (or `--resume`) takes it over.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::*;

const RUNS: u64 = 100;

fn parts(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ferry-part"))
        .collect()
}

fn spawn_put(src: &Path, url: &str, resume: bool) -> Child {
    let mut c = ferry();
    c.arg("put")
        .arg(src)
        .arg(url)
        .args(["--quiet", "--overwrite", "replace"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        c.arg("--resume");
    }
    c.spawn().expect("spawn put")
}

/// Waits for a child with a bound, so a hang fails instead of blocking.
fn wait_bounded(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "process hung");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Deterministic pseudo-random delays in `0..max`.
fn delays(max: Duration, seed: u64) -> impl Iterator<Item = Duration> {
    let mut x = seed | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_micros(x % (max.as_micros() as u64).max(1))
    })
}

/// After one killed run: old or new, never a mix, and no pile of parts.
fn check_run(root: &Path, old: &[u8], new: &[u8], outcomes: &mut [u32; 2]) {
    check_and_reset(&root.join("target.bin"), old, new, outcomes);
    assert!(
        parts(root).len() <= 1,
        "partials pile up: {:?}",
        parts(root)
    );
}

/// After all runs: both outcomes counted; what is left is resumed by a
/// put with `--resume` through `url`, which consumes the part file.
fn check_end(who: &str, outcomes: [u32; 2], src: &Path, url: &str, root: &Path, new: &[u8]) {
    eprintln!(
        "{who} kills: {} old intact, {} new complete",
        outcomes[0], outcomes[1]
    );
    assert_eq!(outcomes[0] + outcomes[1], RUNS as u32);
    assert!(outcomes[0] > 0, "no kill landed mid-transfer");
    let mut c = spawn_put(src, url, true);
    wait_bounded(&mut c);
    assert!(c.wait().unwrap().success());
    assert_eq!(fs::read(root.join("target.bin")).unwrap(), new);
    assert_eq!(parts(root), Vec::<String>::new());
}

/// Old or new, never a mix; resets to old after a completed replace.
fn check_and_reset(target: &Path, old: &[u8], new: &[u8], outcomes: &mut [u32; 2]) {
    let now = fs::read(target).expect("the target always exists");
    if now == old {
        outcomes[0] += 1;
    } else if now == new {
        outcomes[1] += 1;
        fs::write(target, old).unwrap();
    } else {
        panic!(
            "target is neither old nor new: {} bytes, md5 {}",
            now.len(),
            md5_file(target)
        );
    }
}

fn setup() -> (TempDir, std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let old = random_bytes(1 << 20, 1);
    let new = random_bytes(12 << 20, 2);
    fs::write(root.join("target.bin"), &old).unwrap();
    fs::write(dir.path().join("new.bin"), &new).unwrap();
    (dir, root, old, new)
}

/// How long one whole put takes here, to spread the kills over it.
fn put_duration(src: &Path, url: &str) -> Duration {
    let t = Instant::now();
    let mut c = spawn_put(src, url, false);
    wait_bounded(&mut c);
    assert!(c.wait().unwrap().success());
    t.elapsed()
}

#[test]
fn killing_the_client_never_leaves_a_mixed_file() {
    let (dir, root, old, new) = setup();
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    let src = dir.path().join("new.bin");
    let url = s.url("target.bin");
    let whole = put_duration(&src, &url);
    fs::write(root.join("target.bin"), &old).unwrap();
    let mut outcomes = [0u32; 2];
    for d in delays(whole.mul_f32(1.3), 7).take(RUNS as usize) {
        let mut c = spawn_put(&src, &url, false);
        std::thread::sleep(d);
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
        // The server may still be finishing a put that completed just
        // before the kill: give it a moment, then look.
        std::thread::sleep(Duration::from_millis(20));
        check_run(&root, &old, &new, &mut outcomes);
    }
    check_end("client", outcomes, &src, &url, &root, &new);
}

#[test]
fn killing_the_server_never_leaves_a_mixed_file() {
    let (dir, root, old, new) = setup();
    let src = dir.path().join("new.bin");
    let whole = {
        let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
        let w = put_duration(&src, &s.url("target.bin"));
        fs::write(root.join("target.bin"), &old).unwrap();
        w
    };
    let mut outcomes = [0u32; 2];
    for d in delays(whole.mul_f32(1.3), 11).take(RUNS as usize) {
        let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
        let mut c = spawn_put(&src, &s.url("target.bin"), false);
        std::thread::sleep(d);
        drop(s); // SIGKILL, then reaped
        wait_bounded(&mut c);
        check_run(&root, &old, &new, &mut outcomes);
    }
    // After a restart the partial is resumed and consumed.
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    check_end("server", outcomes, &src, &s.url("target.bin"), &root, &new);
}
