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

/// With `--sendfile always` (the default, `remote`, leaves out loopback
/// and Unix-socket peers like these), a get of a file whose digest the
/// server kept is sent from the file (sendfile,
/// `std-runtime/src/sendfile.rs`) over TCP and over a Unix socket: byte for byte the file, resumed too, and the server's log line
/// counts every body byte as sent from the file. A file the server has
/// not verified is hashed and read as before (none sent from the file).
#[test]
fn a_get_with_a_kept_digest_is_sent_from_the_file() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let sock = dir.path().join("s.sock");
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(ferry_bin())
        .arg("serve")
        .arg(&root)
        .args(["-v", "--sendfile", "always", "--anonymous"])
        .args(["--listen", "127.0.0.1:0", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("ferry serve");
    let out = child.stdout.take().unwrap();
    let mut addrs = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("ferry: listening on ").map(str::to_string));
    let tcp = addrs.next().expect("a TCP address");
    let _unix = addrs.next().expect("the Unix socket");
    let sock = sock.to_string_lossy().into_owned();
    let data = random_bytes((3 << 20) + 12_345, 77);
    let src = dir.path().join("src");
    fs::write(&src, &data).unwrap();
    fs::write(root.join("cold.bin"), &data).unwrap();
    let back = dir.path().join("back");
    let ferry_ok = |args: &[&str]| {
        let mut c = ferry();
        c.args(args).args(["--quiet", "--overwrite", "replace"]);
        let o = run(c);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    };
    let (src_s, back_s) = (src.to_string_lossy(), back.to_string_lossy());
    let url = format!("ferry://{tcp}/kept.bin");
    ferry_ok(&["put", &src_s, &url]);
    ferry_ok(&["get", &url, &back_s]);
    assert_eq!(fs::read(&back).unwrap(), data, "over TCP");
    ferry_ok(&["get", "ferry://local/kept.bin", &back_s, "--socket", &sock]);
    assert_eq!(fs::read(&back).unwrap(), data, "over a Unix socket");
    fs::remove_file(&back).unwrap();
    let part = dir.path().join(".back.ferry-part");
    fs::write(&part, &data[..1 << 20]).unwrap();
    ferry_ok(&["get", &url, &back_s, "--resume"]);
    assert_eq!(fs::read(&back).unwrap(), data, "resumed");
    ferry_ok(&["get", &format!("ferry://{tcp}/cold.bin"), &back_s]);
    assert_eq!(
        fs::read(&back).unwrap(),
        data,
        "a file the server never verified"
    );
    let _ = child.kill();
    let _ = child.wait();

    let log = fs::read_to_string(&log).unwrap();
    let gets: Vec<&str> = log.lines().filter(|l| l.contains(" get ")).collect();
    let sent = |l: &str| -> u64 {
        let v = l
            .split("sent_from_file=")
            .nth(1)
            .unwrap_or_else(|| panic!("no sent_from_file in {l}"));
        v.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(gets.len(), 4, "four gets logged: {log}");
    let whole = data.len() as u64;
    assert_eq!(sent(gets[0]), whole, "{}", gets[0]);
    assert_eq!(sent(gets[1]), whole, "{}", gets[1]);
    assert_eq!(sent(gets[2]), whole - (1 << 20), "{}", gets[2]);
    assert_eq!(sent(gets[3]), 0, "{}", gets[3]);
}
