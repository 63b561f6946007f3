//! Transfers through the real binary: sizes, names, listings, overwrite
//! policies, corruption, interruption and resume, concurrency.

use std::fs;
use std::path::Path;

use ferry_tests::*;

fn put(server_url: &str, local: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = ferry();
    c.arg("put")
        .arg(local)
        .arg(server_url)
        .args(extra)
        .arg("--quiet");
    run(c)
}

fn get(server_url: &str, local: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = ferry();
    c.arg("get")
        .arg(server_url)
        .arg(local)
        .args(extra)
        .arg("--quiet");
    run(c)
}

fn round_trip_sizes(url_for: impl Fn(&str) -> String, socket: Option<&str>) {
    let local = TempDir::new().unwrap();
    for (i, size) in [0usize, 1, 10 << 20].into_iter().enumerate() {
        let name = format!("f{size}.bin");
        let src = local.path().join(&name);
        fs::write(&src, random_bytes(size, i as u64 + 1)).unwrap();
        let mut extra = vec![];
        if let Some(s) = socket {
            extra = vec!["--socket", s];
        }
        let o = put(&url_for(&name), &src, &extra);
        assert_eq!(
            code(&o),
            0,
            "put {size}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let back = local.path().join(format!("back-{name}"));
        let o = get(&url_for(&name), &back, &extra);
        assert_eq!(
            code(&o),
            0,
            "get {size}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(md5_file(&back), md5_file(&src), "size {size}");
        assert_eq!(fs::metadata(&back).unwrap().len(), size as u64);
    }
}

#[test]
fn put_and_get_0_1_and_10_mib_over_ipv4() {
    let s = Server::anonymous(&[]);
    round_trip_sizes(|p| s.url(p), None);
}

#[test]
fn put_and_get_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    }
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &["--anonymous", "--listen", "[::1]:0"]);
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    round_trip_sizes(|p| format!("ferry://[::1]:{port}/{p}"), None);
}

#[test]
fn put_and_get_over_a_unix_socket() {
    let dir = TempDir::new().unwrap();
    let sock = dir.path().join("ferry.sock");
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let listen = format!("unix:{}", sock.display());
    let _s = Server::start(&root, &["--anonymous", "--listen", &listen]);
    let sock = sock.to_str().unwrap().to_string();
    round_trip_sizes(|p| format!("ferry://localhost/{p}"), Some(&sock));
    assert!(root.join("f1.bin").exists());
}

#[test]
fn chinese_name_and_content_round_trip() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("测试文件.txt");
    let text = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n".repeat(1000);
    fs::write(&src, &text).unwrap();
    assert_eq!(code(&put(&s.url("测试文件.txt"), &src, &[])), 0);
    assert_eq!(
        fs::read_to_string(s.root.join("测试文件.txt")).unwrap(),
        text
    );
    let back = local.path().join("回来.txt");
    assert_eq!(code(&get(&s.url("测试文件.txt"), &back, &[])), 0);
    assert_eq!(fs::read_to_string(&back).unwrap(), text);
    // Percent-encoded URLs name the same file.
    let back2 = local.path().join("enc.txt");
    let enc = "%E6%B5%8B%E8%AF%95%E6%96%87%E4%BB%B6.txt";
    assert_eq!(code(&get(&s.url(enc), &back2, &[])), 0);
}

#[test]
fn ls_shows_names_and_byte_sizes() {
    let s = Server::anonymous(&[]);
    fs::write(s.root.join("a.txt"), b"12345").unwrap();
    fs::write(s.root.join("中文.md"), "中文".as_bytes()).unwrap();
    fs::create_dir(s.root.join("sub")).unwrap();
    let mut c = ferry();
    c.arg("ls").arg(s.url("/"));
    let o = run(c);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["5", "a.txt"]), "{out}");
    assert!(
        lines.contains(&vec!["6", "中文.md"]),
        "6 bytes, 2 characters: {out}"
    );
    assert!(lines.iter().any(|l| l.last() == Some(&"sub/")), "{out}");
}

#[test]
fn every_overwrite_policy() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    fs::write(s.root.join("x.txt"), b"old").unwrap();
    let src = local.path().join("x.txt");
    fs::write(&src, b"new").unwrap();

    let o = put(&s.url("x.txt"), &src, &[]);
    assert_eq!(code(&o), 6, "fail is the default");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(fs::read(s.root.join("x.txt")).unwrap(), b"old");

    assert_eq!(
        code(&put(&s.url("x.txt"), &src, &["--overwrite", "keep-both"])),
        0
    );
    assert_eq!(
        code(&put(&s.url("x.txt"), &src, &["--overwrite", "keep-both"])),
        0
    );
    assert_eq!(fs::read(s.root.join("x.txt")).unwrap(), b"old");
    assert_eq!(fs::read(s.root.join("x.txt.new")).unwrap(), b"new");
    assert_eq!(fs::read(s.root.join("x.txt.new.1")).unwrap(), b"new");

    assert_eq!(
        code(&put(&s.url("x.txt"), &src, &["--overwrite", "replace"])),
        0
    );
    assert_eq!(fs::read(s.root.join("x.txt")).unwrap(), b"new");

    // The same policies guard local files on get.
    let dst = local.path().join("have.txt");
    fs::write(&dst, b"mine").unwrap();
    assert_eq!(code(&get(&s.url("x.txt"), &dst, &[])), 6);
    assert_eq!(fs::read(&dst).unwrap(), b"mine");
    assert_eq!(
        code(&get(&s.url("x.txt"), &dst, &["--overwrite", "keep-both"])),
        0
    );
    assert_eq!(fs::read(local.path().join("have.txt.new")).unwrap(), b"new");
    assert_eq!(
        code(&get(&s.url("x.txt"), &dst, &["--overwrite", "replace"])),
        0
    );
    assert_eq!(fs::read(&dst).unwrap(), b"new");
}

#[test]
fn a_flipped_byte_fails_with_exit_5_and_leaves_no_file() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let data = random_bytes(3 << 20, 7);
    fs::write(s.root.join("big.bin"), &data).unwrap();

    // get: corrupt the server→client stream well inside the body.
    let p = Proxy::start(
        &s.addr,
        Fault {
            flip_down: Some(500_000),
            ..Fault::default()
        },
    );
    let dst = local.path().join("big.bin");
    let o = get(&format!("ferry://{}/big.bin", p.addr), &dst, &[]);
    assert_eq!(code(&o), 5, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dst.exists(), "no file under the target name");
    drop(p);

    // put: corrupt the client→server stream; the old remote file survives.
    fs::write(s.root.join("keep.bin"), b"precious").unwrap();
    let src = local.path().join("src.bin");
    fs::write(&src, &data).unwrap();
    let p = Proxy::start(
        &s.addr,
        Fault {
            flip_up: Some(700_000),
            ..Fault::default()
        },
    );
    let o = put(
        &format!("ferry://{}/keep.bin", p.addr),
        &src,
        &["--overwrite", "replace"],
    );
    assert_eq!(code(&o), 5, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(s.root.join("keep.bin")).unwrap(), b"precious");
    let leftovers: Vec<_> = fs::read_dir(&s.root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().contains("ferry-part")),
        "{leftovers:?}"
    );
}

#[test]
fn a_client_killed_mid_put_leaves_the_old_file_and_resume_completes() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    fs::write(s.root.join("data.bin"), b"old version").unwrap();
    let data = random_bytes(8 << 20, 9);
    let src = local.path().join("data.bin");
    fs::write(&src, &data).unwrap();

    // 64 KiB per 10 ms: about 1.3 s for the whole file; kill it midway.
    let p = Proxy::start(
        &s.addr,
        Fault {
            throttle_up: 64 * 1024,
            ..Fault::default()
        },
    );
    let mut c = ferry();
    c.arg("put")
        .arg(&src)
        .arg(format!("ferry://{}/data.bin", p.addr))
        .args(["--overwrite", "replace", "--quiet"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while p.up.load(std::sync::atomic::Ordering::SeqCst) < 2 << 20 {
        assert!(std::time::Instant::now() < deadline, "upload did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(p);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        fs::read(s.root.join("data.bin")).unwrap(),
        b"old version",
        "old file intact"
    );
    let part = s.root.join(".data.bin.ferry-part");
    let held = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(
        held > 0 && held < data.len() as u64,
        "partial upload kept: {held}"
    );

    let o = put(
        &s.url("data.bin"),
        &src,
        &["--overwrite", "replace", "--resume"],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(md5_file(&s.root.join("data.bin")), md5_file(&src));
    assert!(!part.exists());
}

#[test]
fn get_resume_continues_a_partial_local_file() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let data = random_bytes(4 << 20, 10);
    fs::write(s.root.join("g.bin"), &data).unwrap();
    let dst = local.path().join("g.bin");
    fs::write(local.path().join(".g.bin.ferry-part"), &data[..1_500_000]).unwrap();
    let o = get(&s.url("g.bin"), &dst, &["--resume"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(&dst).unwrap(), data);
    assert!(!local.path().join(".g.bin.ferry-part").exists());
}

#[test]
fn recursive_put_and_get() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let tree = local.path().join("tree");
    fs::create_dir_all(tree.join("a/b")).unwrap();
    fs::write(tree.join("top.txt"), b"top").unwrap();
    fs::write(tree.join("a/mid.txt"), b"mid").unwrap();
    fs::write(tree.join("a/b/深.txt"), "深".as_bytes()).unwrap();
    assert_eq!(code(&put(&s.url("tree"), &tree, &["-r"])), 0);
    assert_eq!(
        fs::read(s.root.join("tree/a/b/深.txt")).unwrap(),
        "深".as_bytes()
    );
    let back = local.path().join("back");
    assert_eq!(code(&get(&s.url("tree"), &back, &["-r"])), 0);
    assert_eq!(fs::read(back.join("a/mid.txt")).unwrap(), b"mid");
    assert_eq!(fs::read(back.join("top.txt")).unwrap(), b"top");
    // Without -r a directory is refused.
    assert_eq!(code(&get(&s.url("tree"), &local.path().join("x"), &[])), 6);
}

#[test]
fn fifty_concurrent_clients_all_verified() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let url = s.url(&format!("c{i}.bin"));
            let dir = local.path().to_path_buf();
            std::thread::spawn(move || {
                let size = (1 << 20) + (i * 187_751) % (9 << 20);
                let src = dir.join(format!("src{i}.bin"));
                fs::write(&src, random_bytes(size, 100 + i as u64)).unwrap();
                let o = put(&url, &src, &[]);
                assert_eq!(
                    code(&o),
                    0,
                    "put {i}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                let back = dir.join(format!("back{i}.bin"));
                let o = get(&url, &back, &[]);
                assert_eq!(
                    code(&o),
                    0,
                    "get {i}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                assert_eq!(md5_file(&back), md5_file(&src), "client {i}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
