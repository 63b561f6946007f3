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
