//! A full disk: a put that does not fit is refused with "no space" before
//! its body, the old file stays, and the server goes on. Needs root to
//! mount a small tmpfs; prints SKIPPED otherwise.

use std::fs;
use std::process::Command;

use ferry_tests::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tmpfs of `size` mounted on a fresh directory; `None` (test SKIPPED)
/// without root. Bound as one pattern, the mount drops (unmounts) before
/// the directory is removed.
fn small_tmpfs(size: &str) -> Option<(TempDir, std::path::PathBuf, Mount)> {
    let top = TempDir::new().unwrap();
    let dir = top.path().join("small");
    fs::create_dir(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
        return None;
    }
    let m = Mount(dir.clone());
    Some((top, dir, m))
}

#[test]
fn a_put_that_does_not_fit_fails_with_no_space_and_the_server_goes_on() {
    let Some((_top, root, _m)) = small_tmpfs("2m") else {
        return;
    };
    fs::write(root.join("keep.bin"), random_bytes(500_000, 1)).unwrap();
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    let local = TempDir::new().unwrap();
    let big = local.path().join("big.bin");
    fs::write(&big, random_bytes(3 << 20, 2)).unwrap();

    let mut c = ferry();
    c.arg("put")
        .arg(&big)
        .arg(s.url("keep.bin"))
        .args(["--overwrite", "replace", "--quiet"]);
    let o = run(c);
    assert_eq!(code(&o), 6, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no space"));
    assert_eq!(
        fs::read(root.join("keep.bin")).unwrap(),
        random_bytes(500_000, 1)
    );
    let names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no part file left: {names:?}");

    // A file that fits still goes through.
    let small = local.path().join("fits.bin");
    fs::write(&small, random_bytes(300_000, 3)).unwrap();
    let mut c = ferry();
    c.arg("put")
        .arg(&small)
        .arg(s.url("fits.bin"))
        .arg("--quiet");
    assert_eq!(code(&run(c)), 0);
    assert_eq!(md5_file(&root.join("fits.bin")), md5_file(&small));
}

/// A large MD5 get is written by the client's writer thread: a local disk
/// that fills up mid-body still reports "no space", and no file appears
/// under the target name.
#[test]
fn a_get_into_a_full_local_disk_fails_with_no_space() {
    let Some((_top, dest, _m)) = small_tmpfs("4m") else {
        return;
    };
    let s = Server::anonymous(&[]);
    fs::write(s.root.join("big.bin"), random_bytes(12 << 20, 4)).unwrap();
    for digest in ["md5", "blake3"] {
        let mut c = ferry();
        c.arg("get")
            .arg(s.url("big.bin"))
            .arg(dest.join("big.bin"))
            .args(["--digest", digest, "--quiet"]);
        let o = run(c);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(code(&o), 0, "{digest}: {err}");
        assert!(err.contains("no space"), "{digest}: {err}");
        assert!(!dest.join("big.bin").exists(), "{digest}");
    }
}

/// Part files anywhere in `dir` (not recursive: the tests use the top).
fn parts_in(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ferry-part"))
        .collect()
}

/// Three 40 MB puts at once into 64 MiB: free space minus what the upload
/// in flight still needs decides, so the first is accepted and the other
/// two are refused before any body byte, with no part file; the first
/// completes, and later puts that fit go on (all three were accepted and
/// all failed before).
#[test]
fn parallel_puts_reserve_their_space() {
    use ferry_core::message::{Message, Overwrite};
    use ferry_tests::raw::{error_of, Raw};
    let Some((_top, root, _m)) = small_tmpfs("64m") else {
        return;
    };
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    let body = random_bytes(40_000_000, 7);
    let mut raws: Vec<Raw> = (0..3).map(|_| Raw::login(&s.addr)).collect();
    let answers: Vec<Message> = raws
        .iter_mut()
        .enumerate()
        .map(|(i, r)| r.put_request(&format!("f{i}.bin"), body.len() as u64, Overwrite::Fail))
        .collect();
    assert!(
        matches!(answers[0], Message::Accept { offset: 0, .. }),
        "{answers:?}"
    );
    for a in &answers[1..] {
        assert_eq!(error_of(a), Some(ferry_core::Error::NoSpace), "{a:?}");
    }
    // Nothing is made before the first body byte (the accepted one
    // included), so a refusal leaves nothing.
    assert_eq!(parts_in(&root).len(), 0, "{:?}", parts_in(&root));
    raws[0].data(&body);
    raws[0].trailer(&body);
    assert_eq!(raws[0].msg(), Message::Done { verified: true });
    assert!(fs::read(root.join("f0.bin")).unwrap() == body);
    assert!(parts_in(&root).is_empty(), "{:?}", parts_in(&root));
    // The refused sessions go on: a put that fits now succeeds.
    let small = random_bytes(1 << 20, 8);
    let m = raws[1].put_request("small.bin", small.len() as u64, Overwrite::Fail);
    assert!(matches!(m, Message::Accept { .. }), "{m:?}");
    raws[1].data(&small);
    raws[1].trailer(&small);
    assert_eq!(raws[1].msg(), Message::Done { verified: true });
}

/// When space runs short, part files of abandoned uploads older than
/// `--partial-max-age` (24 h by default) are deleted first, oldest first,
/// before a put is refused; a young one is kept for its resume.
#[test]
fn expired_partials_make_room_when_space_runs_short() {
    let Some((_top, root, _m)) = small_tmpfs("64m") else {
        return;
    };
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    // Planted after the server's first sweep, so only a put can drop them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (name, mb, age) in [
        (".old.bin.ferry-part", 20, "3 days ago"),
        (".older.bin.ferry-part", 20, "4 days ago"),
        (".young.bin.ferry-part", 14, "1 hour ago"),
    ] {
        let p = root.join(name);
        fs::write(&p, random_bytes(mb << 20, 1)).unwrap();
        let ok = Command::new("touch").args(["-d", age]).arg(&p).status();
        assert!(ok.unwrap().success());
    }
    // 10 MiB free; 24 MiB needed: the older partial goes (20 MiB), which
    // is enough, so the old one stays too.
    let local = TempDir::new().unwrap();
    let src = local.path().join("new.bin");
    fs::write(&src, random_bytes(24 << 20, 2)).unwrap();
    let mut c = ferry();
    c.arg("put").arg(&src).arg(s.url("new.bin")).arg("--quiet");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let mut left = parts_in(&root);
    left.sort();
    assert_eq!(left, [".old.bin.ferry-part", ".young.bin.ferry-part"]);
}

/// Abandoned part files expire: with `--partial-max-age 2`, the part file
/// a vanished client left is there at first (for `--resume`) and gone a
/// few seconds later.
#[test]
fn abandoned_partials_expire() {
    use ferry_core::message::{Message, Overwrite};
    use ferry_tests::raw::Raw;
    let dir = TempDir::new().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
            "--partial-max-age",
            "2",
        ],
    );
    let mut r = Raw::login(&s.addr);
    let m = r.put_request("x.bin", 1 << 20, Overwrite::Fail);
    assert!(matches!(m, Message::Accept { .. }), "{m:?}");
    r.data(&random_bytes(64 * 1024, 3));
    drop(r);
    let t = std::time::Instant::now();
    let part = dir.path().join(".x.bin.ferry-part");
    while !part.exists() || fs::metadata(&part).unwrap().len() < 64 * 1024 {
        assert!(t.elapsed().as_secs() < 5, "the part file is kept at first");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    while part.exists() {
        assert!(t.elapsed().as_secs() < 15, "the part file expires");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(t.elapsed().as_millis() >= 1900, "not before its age");
}
