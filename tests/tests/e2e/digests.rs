//! Digest negotiation end to end through the real binary: every digest
//! moves and verifies, `stat --digest` agrees with the algorithm's own
//! digest of the file (so `md5sum`/`b3sum` users can compare), a pinned
//! digest the server refuses is a clear error, and `serve --digests`
//! implies MD5, as the spec's hello does.

use std::fs;

use ferry_core::digest::{self, Algorithm};
use ferry_tests::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_digest_moves_verifies_and_is_named_in_the_log() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let data = random_bytes(3 << 20, 77);
    let src = local.path().join("src.bin");
    fs::write(&src, &data).unwrap();
    for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Blake3] {
        let name = format!("f-{alg}.bin");
        let mut c = ferry();
        c.args(["put", "-v", "--quiet", "--digest", alg.name()])
            .arg(&src)
            .arg(s.url(&name));
        let o = run(c);
        assert_eq!(code(&o), 0, "put {alg}: {}", stderr(&o));
        let want = digest::digest(alg, &data).unwrap().to_string();
        let log = stderr(&o);
        assert!(
            log.contains(&format!("digest={alg}")) && log.contains(&want),
            "put {alg}: {log}"
        );
        assert_eq!(fs::read(s.root.join(&name)).unwrap(), data);

        let back = local.path().join(format!("back-{alg}"));
        let mut c = ferry();
        c.args(["get", "-v", "--quiet", "--digest", alg.name()])
            .arg(s.url(&name))
            .arg(&back);
        let o = run(c);
        assert_eq!(code(&o), 0, "get {alg}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("digest={alg}")),
            "{}",
            stderr(&o)
        );
        assert_eq!(fs::read(&back).unwrap(), data);

        // stat --digest=ALG prints what md5sum / sha256sum / b3sum would.
        let mut c = ferry();
        c.arg("stat")
            .arg(format!("--digest={}", alg.name()))
            .arg(s.url(&name));
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{want}  /{name}\n")
        );
    }
    // `auto`: the best common digest, BLAKE3.
    let mut c = ferry();
    c.args(["stat", "--digest", "auto"]).arg(s.url("f-md5.bin"));
    let o = run(c);
    let b3 = digest::digest(Algorithm::Blake3, &data)
        .unwrap()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{b3}  /f-md5.bin\n")
    );
    // And MD5 matches the classic tool's view of the same bytes.
    let mut c = ferry();
    c.args(["stat", "--digest=md5"]).arg(s.url("f-md5.bin"));
    let o = run(c);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&md5_file(&src)));
}

#[test]
fn a_server_limited_to_some_digests_negotiates_within_them() {
    let s = Server::anonymous(&["--digests", "sha256,md5"]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("a.txt");
    fs::write(&src, b"hello digests\n").unwrap();
    let mut c = ferry();
    c.args(["put", "-v", "--quiet"])
        .arg(&src)
        .arg(s.url("a.txt"));
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("digest=sha256"), "{}", stderr(&o));

    // A client pinned to what the server refuses fails clearly, sends no
    // body, and the server goes on.
    let mut c = ferry();
    c.args(["put", "--quiet", "--digest", "blake3"])
        .arg(&src)
        .arg(s.url("b.txt"));
    let o = run(c);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not support the digest"),
        "{}",
        stderr(&o)
    );
    assert!(!s.root.join("b.txt").exists());
    let mut c = ferry();
    c.args(["put", "--quiet", "--digest", "md5"])
        .arg(&src)
        .arg(s.url("b.txt"));
    assert_eq!(code(&run(c)), 0);
    assert_eq!(fs::read(s.root.join("b.txt")).unwrap(), b"hello digests\n");
}

/// docs/PROTOCOL.md#digests: MD5 is implied after the listed digests, so
/// `--digests blake3` serves BLAKE3 and MD5, and the help says so.
#[test]
fn serve_digests_imply_md5() {
    let s = Server::anonymous(&["--digests", "blake3"]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("a.txt");
    fs::write(&src, b"md5 implied\n").unwrap();
    for (pin, want) in [
        ("auto", "digest=blake3"),
        ("md5", "digest=md5"),
        ("sha256", ""),
    ] {
        let mut c = ferry();
        c.args([
            "put",
            "-v",
            "--quiet",
            "--overwrite",
            "replace",
            "--digest",
            pin,
        ])
        .arg(&src)
        .arg(s.url("a.txt"));
        let o = run(c);
        if want.is_empty() {
            assert_eq!(code(&o), 6, "{pin}: {}", stderr(&o));
        } else {
            assert_eq!(code(&o), 0, "{pin}: {}", stderr(&o));
            assert!(stderr(&o).contains(want), "{pin}: {}", stderr(&o));
        }
    }
    let mut c = ferry();
    c.args(["serve", "--help"]);
    let help = String::from_utf8_lossy(&run(c).stdout).into_owned();
    assert!(help.contains("MD5 is implied"), "{help}");
    assert!(!help.contains("must be listed"), "{help}");
}

/// The server keeps the digest it verified at upload and sends it with the
/// next get instead of hashing the file again (`std-runtime/src/sums.rs`).
/// What a user relies on: a file changed in place since — same inode, same
/// size — still arrives as it is now and verifies; a resumed get verifies.
#[test]
fn a_file_changed_in_place_after_upload_arrives_as_it_is_now() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    for (i, alg) in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Blake3]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes((9 << 20) + 17, 100 + i as u64);
        let src = local.path().join(format!("src-{alg}"));
        fs::write(&src, &data).unwrap();
        let name = format!("kept-{alg}.bin");
        let back = local.path().join(format!("kept-back-{alg}"));
        let transfer = |args: &[&str], extra: &[&str]| {
            let mut c = ferry();
            c.args(args)
                .args(["--quiet", "--overwrite", "replace", "--digest", alg.name()])
                .args(extra);
            run(c)
        };
        let put = |from: &std::path::Path| {
            let o = transfer(&["put", &from.to_string_lossy(), &s.url(&name)], &[]);
            assert_eq!(code(&o), 0, "put {alg}: {}", stderr(&o));
        };
        let get = |extra: &[&str]| {
            let o = transfer(&["get", &s.url(&name), &back.to_string_lossy()], extra);
            assert_eq!(code(&o), 0, "get {alg}: {}", stderr(&o));
            fs::read(&back).unwrap()
        };
        put(&src);
        assert_eq!(get(&[]), data, "{alg}: the get right after the put");

        // Rewritten in place on the server: one bit, same size, same inode.
        let stored = s.root.join(&name);
        let mut changed = data.clone();
        changed[4_321_000] ^= 0x04;
        {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().write(true).open(&stored).unwrap();
            f.write_all(&changed).unwrap();
        }
        assert_eq!(get(&[]), changed, "{alg}: the changed file");
        assert_eq!(
            get(&[]),
            changed,
            "{alg}: again, digest kept from the last get"
        );

        // A resumed get from a held prefix, with the kept digest.
        let part = local.path().join(format!(".kept-back-{alg}.ferry-part"));
        fs::remove_file(&back).unwrap();
        fs::write(&part, &changed[..3 << 20]).unwrap();
        assert_eq!(get(&["--resume"]), changed, "{alg}: resumed");
    }
}
