//! `ferry serve --store s3://…` against a real S3 engine: SeaweedFS from
//! PyPI, started once for this test binary by `scripts/seaweedfs` on free
//! loopback ports (each test has its own bucket) and stopped when the
//! binary exits. Several `ferry serve --store` nodes share one bucket, as
//! README's "Several servers, one store" describes.
//!
//! `cargo test -p ferry-tests --test s3` (CI runs it every time; the first
//! run installs SeaweedFS into ~/.cache/ferry/seaweedfs-venv).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_tests::{code, ferry, random_bytes, run, Fault, Proxy, TempDir};

/// A SeaweedFS started by `scripts/seaweedfs` in `dir`.
struct Weed {
    dir: PathBuf,
    endpoint: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/seaweedfs")
}

impl Weed {
    /// Starts one; a watchdog stops it (and removes `dir`) once this test
    /// process has exited.
    fn start() -> Weed {
        let dir = std::env::temp_dir().join(format!("ferry-s3-{}-{}", std::process::id(), nonce()));
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/seaweedfs");
        assert!(out.status.success(), "scripts/seaweedfs start failed");
        let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; bash '{}' stop '{}'; rm -rf '{}'",
            std::process::id(),
            script().display(),
            dir.display(),
            dir.display()
        );
        // Not waited for: it outlives this process, to stop SeaweedFS.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args(["sh", "-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog");
        Weed { dir, endpoint }
    }

    fn stop(&self) {
        let ok = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status()
            .expect("stop seaweedfs");
        assert!(ok.success());
    }

    fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// A raw S3 request (anonymous: SeaweedFS without identities takes
    /// any): status and body.
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port())).expect("connect seaweedfs");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// A fresh bucket.
    fn bucket(&self, name: &str) -> String {
        let b = format!("{name}-{}", nonce());
        let (status, body) = self.http("PUT", &format!("/{b}"));
        assert_eq!(status, 200, "create bucket {b}: {body}");
        b
    }

    /// Whether an object exists.
    fn exists(&self, bucket: &str, key: &str) -> bool {
        self.http("HEAD", &format!("/{bucket}/{key}")).0 == 200
    }

    /// The keys under `prefix` in `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (_, body) = self.http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"));
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }
}

fn nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t % 1_000_000_000) * 100 + N.fetch_add(1, Ordering::Relaxed)
}

/// The SeaweedFS all tests share.
fn weed() -> &'static Weed {
    static W: OnceLock<Weed> = OnceLock::new();
    W.get_or_init(Weed::start)
}

/// A `ferry` command configured for `weed`'s S3 API.
fn aws(cmd: &mut Command, w: &Weed) {
    cmd.env("AWS_ENDPOINT_URL", &w.endpoint)
        .env("AWS_ACCESS_KEY_ID", "ferry")
        .env("AWS_SECRET_ACCESS_KEY", "ferry-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
}

/// A running `ferry serve --store`, its log in a file; killed on drop.
struct Node {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Node {
    fn start(w: &Weed, store: &str, extra: &[&str]) -> Node {
        let dir = TempDir::new().expect("tempdir");
        let log = dir.path().join("serve.log");
        let mut cmd = ferry();
        aws(&mut cmd, w);
        cmd.current_dir(dir.path())
            .args([
                "serve",
                "--anonymous",
                "--listen",
                "127.0.0.1:0",
                "-v",
                "--store",
                store,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut child = cmd.spawn().expect("spawn ferry serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(a) = l.strip_prefix("ferry: listening on ") {
                        break a.to_string();
                    }
                }
                _ => panic!(
                    "ferry serve --store exited early: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        Node {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ferry://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three nodes on one bucket.
fn cluster(name: &str) -> (&'static Weed, String, Vec<Node>) {
    let w = weed();
    let b = w.bucket(name);
    let store = format!("s3://{b}/files");
    let nodes = (0..3).map(|_| Node::start(w, &store, &[])).collect();
    (w, b, nodes)
}

fn ok(args: &[&str]) -> std::process::Output {
    let mut c = ferry();
    c.args(args);
    let o = run(c);
    assert_eq!(
        code(&o),
        0,
        "ferry {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn ferry_code(args: &[&str]) -> (i32, String) {
    let mut c = ferry();
    c.args(args);
    let o = run(c);
    (code(&o), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn put_through_one_node_get_and_ls_through_the_others() {
    let (_, _, nodes) = cluster("three");
    let tmp = TempDir::new().expect("tempdir");
    // Over two chunks (8 MiB each) and a tail, and a small one.
    let big = random_bytes(20 * 1024 * 1024 + 12345, 1);
    let small = "测试文件 contents\n".repeat(100).into_bytes();
    let big_p = write(tmp.path(), "big.bin", &big);
    let small_p = write(tmp.path(), "测试文件.txt", &small);
    ok(&["put", "--quiet", s(&big_p), s(&small_p), &nodes[0].url("/")]);
    for n in &nodes[1..] {
        let out = tmp
            .path()
            .join(format!("got-{}", n.addr.replace([':', '.'], "-")));
        std::fs::create_dir(&out).expect("mkdir");
        ok(&[
            "get",
            "--quiet",
            &n.url("big.bin"),
            &n.url("测试文件.txt"),
            s(&out),
        ]);
        assert!(
            std::fs::read(out.join("big.bin")).expect("big") == big,
            "big.bin differs via {}",
            n.addr
        );
        assert_eq!(
            std::fs::read(out.join("测试文件.txt")).expect("small"),
            small
        );
        let ls = ok(&["ls", &n.url("/")]);
        let ls = String::from_utf8_lossy(&ls.stdout);
        assert!(ls.contains(&format!("{}  big.bin", big.len())), "{ls}");
        assert!(ls.contains("测试文件.txt"), "{ls}");
        assert!(!ls.contains(".ferry-"), "reserved names listed: {ls}");
    }
    // The digest kept in the object's metadata at commit serves a stat
    // through another node without reading the file.
    let st = ok(&["stat", "--digest", "blake3", &nodes[2].url("big.bin")]);
    let want = ferry_core::digest::digest(ferry_core::digest::Algorithm::Blake3, &big)
        .expect("blake3")
        .to_string();
    assert!(String::from_utf8_lossy(&st.stdout).starts_with(&want));
}

#[test]
fn thirty_concurrent_clients_over_three_nodes() {
    let (_, _, nodes) = cluster("thirty");
    let tmp = TempDir::new().expect("tempdir");
    let urls: Vec<String> = nodes.iter().map(|n| n.url("/")).collect();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            let data = random_bytes(64 * 1024 + i * 7919, i as u64 + 100);
            let src = write(tmp.path(), &format!("f{i}.bin"), &data);
            let back = tmp.path().join(format!("back{i}.bin"));
            let (put_to, get_from) = (urls[i % 3].clone(), urls[(i + 1) % 3].clone());
            std::thread::spawn(move || {
                let (c, e) = ferry_code(&["put", "--quiet", s(&src), &put_to]);
                if c != 0 {
                    return Err(format!("put {i}: {c} {e}"));
                }
                let (c, e) =
                    ferry_code(&["get", "--quiet", &format!("{get_from}f{i}.bin"), s(&back)]);
                if c != 0 {
                    return Err(format!("get {i}: {c} {e}"));
                }
                match std::fs::read(&back).ok() == Some(data) {
                    true => Ok(()),
                    false => Err(format!("file {i} differs")),
                }
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("client thread").err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
}

#[test]
fn create_only_race_through_two_nodes_has_one_winner() {
    let (w, b, nodes) = cluster("race");
    let tmp = TempDir::new().expect("tempdir");
    let a = write(tmp.path(), "a", &random_bytes(300 * 1024, 1));
    let c = write(tmp.path(), "c", &random_bytes(300 * 1024, 2));
    for round in 0..20 {
        let name = format!("race{round}.bin");
        let runs: Vec<_> = [
            (a.clone(), nodes[0].url(&name)),
            (c.clone(), nodes[1].url(&name)),
        ]
        .into_iter()
        .map(|(src, url)| {
            std::thread::spawn(move || ferry_code(&["put", "--quiet", s(&src), &url]))
        })
        .collect();
        let results: Vec<(i32, String)> = runs
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let wins = results.iter().filter(|(c, _)| *c == 0).count();
        let exists = results
            .iter()
            .filter(|(c, e)| *c == 6 && e.contains("already exists"))
            .count();
        assert_eq!((wins, exists), (1, 1), "round {round}: {results:?}");
        let got = tmp.path().join(format!("got{round}"));
        ok(&["get", "--quiet", &nodes[2].url(&name), s(&got)]);
        let winner = if results[0].0 == 0 { &a } else { &c };
        assert!(
            std::fs::read(&got).ok() == std::fs::read(winner).ok(),
            "round {round}: not the winner's bytes"
        );
    }
    assert!(w.exists(&b, "files/race0.bin"));
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn node_killed_mid_put_resumes_through_another_node() {
    let (w, b, mut nodes) = cluster("resume");
    let tmp = TempDir::new().expect("tempdir");
    let data = random_bytes(30 * 1024 * 1024, 9);
    let src = write(tmp.path(), "big.bin", &data);
    // Slowed down (about 25 MB/s) so the kill lands mid-body.
    let proxy = Proxy::start(
        &nodes[0].addr,
        Fault {
            throttle_up: 256 * 1024,
            ..Fault::default()
        },
    );
    let mut put = ferry();
    put.args([
        "put",
        "--quiet",
        s(&src),
        &format!("ferry://{}/big.bin", proxy.addr),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut client = put.spawn().expect("spawn put");
    // Kill -9 the node once its first chunk object is in the store.
    wait_until("the first chunk object", 60, || {
        w.keys(&b, "files/.ferry-uploads/")
            .iter()
            .any(|k| k.ends_with("/c00000000000000000000"))
    });
    nodes[0].kill();
    let _ = client.wait();
    assert!(
        !w.exists(&b, "files/big.bin"),
        "a partial object is visible under the target name"
    );
    let ls = ok(&["ls", &nodes[1].url("/")]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("big.bin"));
    // Resumed through node 2: only the rest crosses; the digest covers
    // the whole file.
    ok(&["put", "--quiet", "--resume", s(&src), &nodes[1].url("/")]);
    let log = nodes[1].log();
    let resumed = log
        .lines()
        .find(|l| l.contains("bytes=31457280"))
        .and_then(|l| l.split("resumed_from=").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no put line in node 2's log: {log}"));
    assert!(resumed >= 8 * 1024 * 1024, "resumed from {resumed}");
    let back = tmp.path().join("back.bin");
    ok(&["get", "--quiet", &nodes[2].url("big.bin"), s(&back)]);
    assert!(
        std::fs::read(&back).expect("back") == data,
        "resumed file differs"
    );
    // The upload's chunks are cleaned up after the commit.
    wait_until("the upload's objects to go", 30, || {
        w.keys(&b, "files/.ferry-uploads/").is_empty()
    });
}

#[test]
fn flipped_body_byte_is_a_checksum_mismatch_and_stores_nothing() {
    let (w, b, nodes) = cluster("flip");
    let tmp = TempDir::new().expect("tempdir");
    for (name, len) in [("small.bin", 100_000usize), ("large.bin", 10 * 1024 * 1024)] {
        let src = write(tmp.path(), name, &random_bytes(len, 3));
        let proxy = Proxy::start(
            &nodes[0].addr,
            Fault {
                flip_up: Some(len as u64 / 2 + 4096),
                ..Fault::default()
            },
        );
        let (c, e) = ferry_code(&[
            "put",
            "--quiet",
            s(&src),
            &format!("ferry://{}/{name}", proxy.addr),
        ]);
        assert_eq!(c, 5, "{name}: {e}");
        assert!(
            !w.exists(&b, &format!("files/{name}")),
            "{name} stored despite the mismatch"
        );
        let (c, _) = ferry_code(&["stat", &nodes[1].url(name)]);
        assert_eq!(c, 4);
    }
}

#[test]
fn commands_on_the_store() {
    let (_, _, nodes) = cluster("cmds");
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let tmp = TempDir::new().expect("tempdir");
    // mkdir: a directory the listing shows; twice is "already exists".
    ok(&["mkdir", &n1.url("docs")]);
    assert_eq!(ferry_code(&["mkdir", &n2.url("docs")]).0, 6);
    let ls = ok(&["ls", &n2.url("/")]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("docs/"));
    let st = ok(&["stat", &n2.url("docs")]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("dir"),
        "{:?}",
        st
    );
    // put into it, keep-both names, stat, mv, rm.
    let a = write(tmp.path(), "a.txt", b"first");
    let a2 = write(tmp.path(), "a2.txt", b"second");
    ok(&["put", "--quiet", s(&a), &n1.url("docs/")]);
    assert_eq!(
        ferry_code(&["put", "--quiet", s(&a2), &n2.url("docs/a.txt")]).0,
        6
    );
    ok(&[
        "put",
        "--quiet",
        "--overwrite",
        "keep-both",
        s(&a2),
        &n2.url("docs/a.txt"),
    ]);
    ok(&[
        "put",
        "--quiet",
        "--overwrite",
        "keep-both",
        s(&a2),
        &n1.url("docs/a.txt"),
    ]);
    let ls = String::from_utf8_lossy(&ok(&["ls", &n1.url("docs")]).stdout).into_owned();
    for n in ["a.txt", "a.txt.new", "a.txt.new.1"] {
        assert!(
            ls.lines().any(|l| l.ends_with(&format!("  {n}"))),
            "{n} missing: {ls}"
        );
    }
    ok(&[
        "put",
        "--quiet",
        "--overwrite",
        "replace",
        s(&a2),
        &n2.url("docs/a.txt"),
    ]);
    let got = tmp.path().join("got.txt");
    ok(&["get", "--quiet", &n1.url("docs/a.txt"), s(&got)]);
    assert_eq!(std::fs::read(&got).expect("got"), b"second");
    let st = String::from_utf8_lossy(&ok(&["stat", &n1.url("docs/a.txt")]).stdout).into_owned();
    assert!(st.contains('6'), "{st}");
    assert_eq!(
        ferry_code(&["mv", &n1.url("docs/a.txt"), "/docs/a.txt.new"]).0,
        6
    );
    ok(&["mv", &n1.url("docs/a.txt"), "/docs/b.txt"]);
    ok(&[
        "mv",
        "--overwrite",
        "replace",
        &n2.url("docs/b.txt"),
        "/docs/a.txt.new",
    ]);
    assert_eq!(ferry_code(&["stat", &n1.url("docs/b.txt")]).0, 4);
    assert_eq!(
        ferry_code(&["rm", &n1.url("docs")]).0,
        6,
        "a non-empty directory removed"
    );
    for n in ["a.txt.new", "a.txt.new.1"] {
        ok(&["rm", &n2.url(&format!("docs/{n}"))]);
    }
    ok(&["rm", &n1.url("docs")]);
    // Reserved names cannot be reached.
    assert_ne!(ferry_code(&["ls", &n1.url(".ferry-uploads")]).0, 0);
    assert_ne!(
        ferry_code(&["put", "--quiet", s(&a), &n1.url(".ferry-dir")]).0,
        0
    );
    // -r both ways.
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).expect("mkdir");
    write(&tree, "one.txt", b"1");
    write(
        &tree.join("sub"),
        "two.bin",
        &random_bytes(9 * 1024 * 1024, 5),
    );
    write(&tree.join("sub/deeper"), "three.txt", "三".as_bytes());
    ok(&["put", "--quiet", "-r", s(&tree), &n1.url("/")]);
    let down = tmp.path().join("down");
    std::fs::create_dir(&down).expect("mkdir");
    ok(&["get", "--quiet", "-r", &n2.url("tree"), s(&down)]);
    for f in ["one.txt", "sub/two.bin", "sub/deeper/three.txt"] {
        assert_eq!(
            std::fs::read(down.join("tree").join(f)).expect(f),
            std::fs::read(tree.join(f)).expect(f),
            "{f}"
        );
    }
    // get --resume: a local partial file is continued with ranged reads.
    let full = std::fs::read(tree.join("sub/two.bin")).expect("two");
    let part = tmp.path().join("two.bin");
    let held = tmp.path().join(".two.bin.ferry-part");
    std::fs::write(&held, &full[..3 * 1024 * 1024]).expect("partial");
    let out = {
        let mut c = ferry();
        c.args([
            "get",
            "-v",
            "--resume",
            "--overwrite",
            "replace",
            &n2.url("tree/sub/two.bin"),
            s(&part),
        ]);
        run(c)
    };
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed_from=3145728"));
    assert!(std::fs::read(&part).expect("resumed") == full);
}

#[test]
fn read_only_node_and_start_up_refusals() {
    let w = weed();
    let b = w.bucket("ro");
    let tmp = TempDir::new().expect("tempdir");
    let a = write(tmp.path(), "a.txt", b"x");
    let rw = Node::start(w, &format!("s3://{b}"), &[]);
    ok(&["put", "--quiet", s(&a), &rw.url("/")]);
    let ro = Node::start(w, &format!("s3://{b}"), &["--read-only"]);
    assert_eq!(
        ferry_code(&["put", "--quiet", s(&a), &ro.url("/b.txt")]).0,
        6
    );
    ok(&[
        "get",
        "--quiet",
        &ro.url("a.txt"),
        s(&tmp.path().join("got")),
    ]);

    let serve = |store: &str, extra: &[&str], env: &[(&str, &str)], unset: &[&str]| {
        let mut c = ferry();
        aws(&mut c, w);
        for (k, v) in env {
            c.env(k, v);
        }
        for k in unset {
            c.env_remove(k);
        }
        c.args([
            "serve",
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
        ])
        .args(extra);
        let o = run(c);
        (code(&o), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let ok_store = format!("s3://{b}");
    let cases: Vec<(i32, &str, (i32, String))> = vec![
        (2, "not an s3://", serve("http://bucket", &[], &[], &[])),
        (
            2,
            "no credentials",
            serve(&ok_store, &[], &[], &["AWS_ACCESS_KEY_ID"]),
        ),
        (
            7,
            "not found",
            serve("s3://no-such-bucket-here", &[], &[], &[]),
        ),
        (
            7,
            "cannot use the store",
            serve(
                &ok_store,
                &[],
                &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
                &[],
            ),
        ),
        (2, "exec", serve(&ok_store, &["--allow-exec"], &[], &[])),
    ];
    for (want, says, (got, err)) in cases {
        assert_eq!(got, want, "{says}: {err}");
        assert!(err.contains(says), "{says}: {err}");
    }
}

/// Its own SeaweedFS: stopped under a put.
#[test]
fn store_stopped_mid_transfer_is_a_clear_error_and_stores_nothing() {
    let w = Weed::start();
    let b = w.bucket("stop");
    let node = Node::start(&w, &format!("s3://{b}"), &[]);
    let tmp = TempDir::new().expect("tempdir");
    let src = write(tmp.path(), "big.bin", &random_bytes(40 * 1024 * 1024, 4));
    let proxy = Proxy::start(
        &node.addr,
        Fault {
            throttle_up: 256 * 1024,
            ..Fault::default()
        },
    );
    let url = format!("ferry://{}/big.bin", proxy.addr);
    let client = std::thread::spawn(move || {
        let t = Instant::now();
        (ferry_code(&["put", "--quiet", s(&src), &url]), t.elapsed())
    });
    wait_until("the first chunk object", 60, || {
        w.keys(&b, ".ferry-uploads/")
            .iter()
            .any(|k| k.ends_with("/c00000000000000000000"))
    });
    w.stop();
    let ((c, err), took) = client.join().expect("client");
    assert_eq!(c, 7, "{err}");
    assert!(err.contains("i/o error"), "{err}");
    assert!(took < Duration::from_secs(100), "took {took:?}");
    assert!(
        node.log().contains("object store request failed"),
        "{}",
        node.log()
    );
    // Back up (same data, new ports): nothing under the target name.
    let w2 = Weed::start_in(&w.dir);
    assert!(!w2.exists(&b, "big.bin"), "a partial object is visible");
    w2.stop();
}

impl Weed {
    /// Restarts SeaweedFS on the data of `dir`.
    fn start_in(dir: &Path) -> Weed {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .output()
            .expect("run scripts/seaweedfs");
        assert!(out.status.success(), "restart failed");
        Weed {
            dir: dir.to_path_buf(),
            endpoint: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }
}
