//! The C examples (`examples/c`), built with the system C compiler by
//! their Makefile against ferry-c's static library, and run against the
//! real thing: `client` puts and gets back through `ferry serve` (SCRAM
//! and anonymous), and the `ferry` CLI puts to, lists and gets from
//! `device`. Each is built twice: plainly, and with
//! `-fsanitize=address,undefined -Wall -Wextra -Werror` (a sanitizer
//! report fails the run). Without `cc` or `make` the tests say so and
//! skip (`.ci/run` installs both). The hello world of docs/C-API.md is
//! compiled from the document and run too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use ferry_tests::*;

const PLAIN: &str = "-O2 -g -Wall -Wextra -Werror";
const SANITIZERS: &str =
    "-fsanitize=address,undefined -fno-sanitize-recover=undefined -g -Wall -Wextra -Werror";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

/// The target directory this test runs from (`target/debug/deps/…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.ancestors().nth(3).expect("target dir");
    dir.to_path_buf()
}

/// Whether `cc` and `make` run; if not, why.
fn tools_missing() -> Option<String> {
    for tool in ["cc", "make"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "SKIPPED: no `{tool}` on PATH (.ci/run installs it)"
            ));
        }
    }
    None
}

/// `cargo build --release -p ferry-c`, once per run.
fn library() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "--release", "-p", "ferry-c"])
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building ferry-c failed");
    });
}

/// `make -C examples/c` with `cflags`, into a fresh directory.
fn build_examples(cflags: &str) -> TempDir {
    library();
    let out = TempDir::new().expect("tempdir");
    let o = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo().join("examples/c"))
        .arg(format!("O={}", out.path().display()))
        .arg(format!("CFLAGS={cflags}"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run make");
    assert!(
        o.status.success(),
        "make -C examples/c CFLAGS='{cflags}' failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Sanitizer settings: stop at the first report, with a stack.
fn sanitized(cmd: &mut Command) -> &mut Command {
    cmd.env("ASAN_OPTIONS", "abort_on_error=0:halt_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
}

fn assert_no_sanitizer_report(what: &str, stderr: &str) {
    for marker in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(
            !stderr.contains(marker),
            "{what}: sanitizer report:\n{stderr}"
        );
    }
}

fn client_round_trips(cflags: &str) {
    if let Some(why) = tools_missing() {
        eprintln!("{why}");
        return;
    }
    let bin = build_examples(cflags);
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    add_user(&users, "alice", "s3cret 密码");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let s = Server::start(
        &root,
        &[
            "--users",
            users.to_str().unwrap(),
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let (host, port) = s.addr.rsplit_once(':').unwrap();
    // Several frames' worth, not a multiple of any chunk size.
    let local = dir.path().join("local.bin");
    let body = random_bytes(300_001, 27);
    std::fs::write(&local, &body).unwrap();

    let client = |user: &str, password: &str, remote: &str| {
        let mut cmd = Command::new(bin.path().join("client"));
        cmd.args([host, port, user, password])
            .arg(&local)
            .arg(remote);
        sanitized(&mut cmd);
        let o = run(cmd);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_no_sanitizer_report("client", &err);
        (code(&o), err)
    };
    let (rc, err) = client("alice", "s3cret 密码", "scram.bin");
    assert_eq!(rc, 0, "{err}");
    assert_eq!(std::fs::read(root.join("scram.bin")).unwrap(), body);
    assert_eq!(
        std::fs::read(dir.path().join("local.bin.back")).unwrap(),
        body
    );
    std::fs::remove_file(dir.path().join("local.bin.back")).unwrap();

    let (rc, err) = client("-", "", "anon.bin");
    assert_eq!(rc, 0, "{err}");
    assert_eq!(std::fs::read(root.join("anon.bin")).unwrap(), body);

    // A wrong password fails the run, with the protocol's message.
    let (rc, err) = client("alice", "wrong", "never.bin");
    assert_eq!(rc, 1);
    assert!(err.contains("login failed"), "{err}");
    assert!(!root.join("never.bin").exists());
}

/// A running `device`, killed on drop.
struct Device(Child);

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn device_serves_the_cli(cflags: &str) {
    if let Some(why) = tools_missing() {
        eprintln!("{why}");
        return;
    }
    let bin = build_examples(cflags);
    let mut cmd = Command::new(bin.path().join("device"));
    cmd.arg("0").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = sanitized(&mut cmd).spawn().expect("spawn device");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut device = Device(child);
    let addr = line
        .trim()
        .strip_prefix("device: listening on ")
        .unwrap_or_else(|| panic!("device said {line:?}"))
        .to_string();
    let url = |p: &str| format!("ferry://{addr}/{p}");

    let dir = TempDir::new().unwrap();
    let big = random_bytes(200_003, 5);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("note.txt"), "hello from the CLI\n").unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    let cli = |args: &[&str]| {
        let mut c = ferry();
        c.args(args).current_dir(dir.path());
        let o = run(c);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        (code(&o), text + &String::from_utf8_lossy(&o.stderr))
    };
    for f in ["big.bin", "note.txt", "empty.txt"] {
        let (rc, out) = cli(&["put", f, &url(f)]);
        assert_eq!(rc, 0, "put {f}: {out}");
    }
    let (rc, out) = cli(&["ls", &url("")]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("big.bin") && out.contains("200003"), "{out}");
    assert!(out.contains("note.txt"), "{out}");
    let (rc, out) = cli(&["get", &url("big.bin"), "copy.bin"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(std::fs::read(dir.path().join("copy.bin")).unwrap(), big);
    let (rc, out) = cli(&["get", &url("empty.txt"), "empty.copy"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(std::fs::read(dir.path().join("empty.copy")).unwrap(), b"");
    // The C store's refusals reach the CLI as the protocol's errors.
    let (rc, out) = cli(&["put", "note.txt", &url("note.txt")]);
    assert_ne!(rc, 0);
    assert!(out.contains("already exists"), "{out}");
    let (rc, out) = cli(&["get", &url("missing.txt"), "m.txt"]);
    assert_ne!(rc, 0);
    assert!(out.contains("not found"), "{out}");
    // stat and rm reach the store's callbacks; mkdir has none: refused.
    let (rc, out) = cli(&["stat", &url("note.txt")]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("19"), "the note's size: {out}");
    let (rc, out) = cli(&["rm", &url("note.txt")]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = cli(&["ls", &url("")]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        !out.contains("note.txt") && out.contains("big.bin"),
        "{out}"
    );
    let (rc, out) = cli(&["mkdir", &url("dir")]);
    assert_ne!(rc, 0);
    assert!(out.contains("permission denied"), "{out}");

    assert!(device.0.try_wait().unwrap().is_none(), "device exited");
    let _ = device.0.kill();
    let _ = device.0.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err).unwrap();
    assert_no_sanitizer_report("device", &err);
}

/// The C code block after the `hello-world` marker in docs/C-API.md.
fn hello_world_source() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/C-API.md")).expect("docs/C-API.md");
    let rest = doc
        .split_once("<!-- hello-world")
        .expect("the hello-world marker")
        .1;
    let code = rest.split_once("```c\n").expect("a C block").1;
    code.split_once("```")
        .expect("the block's end")
        .0
        .to_string()
}

/// The document's hello world compiles warning-free (under the
/// sanitizers) and fetches a file from `ferry serve`, verified.
#[test]
fn the_documented_hello_world_works() {
    if let Some(why) = tools_missing() {
        eprintln!("{why}");
        return;
    }
    library();
    let dir = TempDir::new().unwrap();
    let src = dir.path().join("hello.c");
    std::fs::write(&src, hello_world_source()).unwrap();
    let exe = dir.path().join("hello");
    let lib = target_dir().join("release/libferry_c.a");
    let o = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(SANITIZERS.split(' '))
        .arg("-I")
        .arg(repo().join("ferry-c/include"))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg(&lib)
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ])
        .output()
        .expect("run cc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let s = Server::anonymous(&[]);
    let body = random_bytes(150_000, 3);
    std::fs::write(s.root.join("hello.bin"), &body).unwrap();
    let (ip, port) = s.addr.rsplit_once(':').unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args([ip, port, "hello.bin"]);
    sanitized(&mut cmd);
    let o = run(cmd);
    assert_no_sanitizer_report("hello", &String::from_utf8_lossy(&o.stderr));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout == body, "the hello world printed something else");
    // A missing file: the run fails.
    let mut cmd = Command::new(&exe);
    cmd.args([ip, port, "missing.bin"]);
    assert_eq!(code(&run(cmd)), 1);
}

#[test]
fn c_client_puts_and_gets_through_ferry_serve() {
    client_round_trips(PLAIN);
}

#[test]
fn c_client_under_sanitizers() {
    client_round_trips(SANITIZERS);
}

#[test]
fn ferry_cli_uses_the_c_device() {
    device_serves_the_cli(PLAIN);
}

#[test]
fn c_device_under_sanitizers() {
    device_serves_the_cli(SANITIZERS);
}
