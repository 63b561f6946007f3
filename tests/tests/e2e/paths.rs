//! A table of hostile paths (`..` in every position, absolute, `//`,
//! backslashes, overlong, Unicode look-alikes, percent-escapes, device
//! names, symlinks out, a hard link, a FIFO, a symlink that flips while
//! requests run) against get, put, ls, stat, rm, mkdir, mv and cd on the
//! real `ferry serve`. Nothing outside ROOT is read, written, created or
//! removed, and the server keeps answering.
//!
//! One connection through ferry-core's blocking driver carries every
//! request, so the table stays fast; a refusal fails one request, never
//! the session.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ferry_core::Overwrite;
use ferry_tests::raw::driven_anonymous as connect;
use ferry_tests::*;

const SECRET: &[u8] = b"the secret outside the root";

/// Every file and directory under `dir` with its content (directories and
/// symlinks by kind), so any change outside the root shows.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let v = if md.is_dir() {
                todo.push(p.clone());
                b"<dir>".to_vec()
            } else if md.file_type().is_symlink() {
                format!("<link {}>", fs::read_link(&p).unwrap().display()).into_bytes()
            } else {
                fs::read(&p).unwrap()
            };
            out.insert(p, v);
        }
    }
    out
}

/// The table: at least 200 paths, each an attempt to leave the root or to
/// confuse the resolver.
fn hostile_paths() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let targets = ["outside/secret", "outside", "outside/new", "etc/passwd"];
    // `..` in every position, at every depth.
    for t in targets {
        for depth in 1..=6 {
            v.push(format!("{}{t}", "../".repeat(depth)));
            v.push(format!("/{}{t}", "../".repeat(depth)));
            v.push(format!("sub/{}{t}", "../".repeat(depth + 1)));
        }
        v.push(format!("./../{t}"));
        v.push(format!("sub/./../../{t}"));
        v.push(format!("sub/deeper/../../../{t}"));
        v.push(format!("sub/..//../{t}"));
        v.push(format!("..//{t}"));
        v.push(format!(".././../{t}"));
    }
    v.extend(
        [
            "..",
            "../",
            "/..",
            "/../",
            "../..",
            "sub/../..",
            "./..",
            "sub/../../",
        ]
        .map(String::from),
    );
    // Absolute paths and doubled slashes (absolute means from ROOT).
    for p in [
        "/etc/passwd",
        "//etc/passwd",
        "///etc//passwd",
        "/proc/self/environ",
        "/dev/zero",
        "/outside/secret",
        "//outside/secret",
        "/tmp",
        "//",
        "/",
    ] {
        v.push(p.to_string());
    }
    // Backslashes are ordinary bytes on Unix: names inside ROOT, never
    // separators.
    for p in [
        "..\\outside\\secret",
        "..\\..\\etc\\passwd",
        "sub\\..\\..\\outside",
        "\\..\\outside",
        "\\\\server\\share",
        "C:\\Windows\\system32",
        "..\\",
        "sub\\..\\..",
    ] {
        v.push(p.to_string());
    }
    // Percent escapes are not decoded by the server (the client decodes
    // URLs before they become paths).
    for p in [
        "%2e%2e/outside/secret",
        "%2E%2E%2Foutside",
        "..%2foutside",
        "%252e%252e/outside",
        "sub/%2e%2e/%2e%2e/outside",
    ] {
        v.push(p.to_string());
    }
    // Unicode look-alikes of `.` and `/`.
    for dots in [
        "\u{FF0E}\u{FF0E}", // fullwidth full stops
        "\u{2024}\u{2024}", // one-dot leaders
        "\u{2025}",         // two-dot leader
        "\u{FE52}\u{FE52}", // small full stops
        ".\u{0338}.",       // combining overlay
        "\u{200B}..",       // zero-width space
        "..\u{200D}",       // zero-width joiner
        "\u{0660}\u{0660}", // Arabic-Indic digit zero
    ] {
        for slash in ["/", "\u{FF0F}", "\u{2215}", "\u{2044}", "\u{29F8}"] {
            v.push(format!("{dots}{slash}outside{slash}secret"));
        }
    }
    // Names that are devices on other systems, and odd ones here.
    for n in [
        "CON",
        "PRN",
        "AUX",
        "NUL",
        "COM1",
        "LPT1",
        "con.txt",
        "nul.tar.gz",
        "CONIN$",
        "conout$",
    ] {
        v.push(n.to_string());
        v.push(format!("sub/{n}"));
    }
    // Overlong: a component over NAME_MAX, a path near the protocol bound.
    v.push("a".repeat(256));
    v.push(format!("sub/{}", "b".repeat(300)));
    v.push(format!("{}/x", "c/".repeat(200)));
    v.push(format!("{}../../outside", "d/".repeat(100)));
    // Symlinks made in the root by the test: out absolute, out relative,
    // to a file outside, to /etc, to a device, a loop, and chains.
    for l in [
        "link-out",
        "link-out/secret",
        "link-out/new",
        "link-out/../outside/secret",
        "rel-out",
        "rel-out/secret",
        "sub/up-out",
        "sub/up-out/secret",
        "file-out",
        "etc-link",
        "etc-link/passwd",
        "zero-link",
        "loop",
        "loop/x",
        "chain",
        "chain/secret",
        "flip",
        "flip/secret",
        "flip/new",
    ] {
        v.push(l.to_string());
        v.push(format!("/{l}"));
        v.push(format!("./{l}"));
    }
    // Special files inside the root: a FIFO must not hang the server; a
    // hard link to a file outside may be read (it is a file in the root)
    // but never written through.
    for p in [
        "fifo",
        "sub/../fifo",
        "/fifo",
        "hard",
        "/hard",
        "sub/../hard",
    ] {
        v.push(p.into());
    }
    // Trailing dots, spaces and control characters.
    for p in [
        "sub/..",
        "sub/.",
        "...",
        "....//outside",
        " ../outside",
        "../outside ",
        "..\t/outside",
        "\u{7f}",
        "\u{1b}[2J",
        "\n../outside",
    ] {
        v.push(p.to_string());
    }
    v.sort();
    v.dedup();
    v
}

#[test]
fn two_hundred_hostile_paths_never_leave_the_root() {
    let top = TempDir::new().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), SECRET).unwrap();
    fs::write(outside.join("victim"), SECRET).unwrap();
    symlink(&outside, root.join("link-out")).unwrap();
    symlink("../outside", root.join("rel-out")).unwrap();
    symlink("../../outside", root.join("sub/up-out")).unwrap();
    symlink(outside.join("secret"), root.join("file-out")).unwrap();
    symlink("/etc", root.join("etc-link")).unwrap();
    symlink("/dev/zero", root.join("zero-link")).unwrap();
    symlink("loop", root.join("loop")).unwrap();
    symlink("link-out", root.join("chain")).unwrap();
    fs::create_dir(root.join("flip")).unwrap();
    // A hard link inside the root to a file outside: the same inode, so
    // reading it is reading a root file, but nothing done through the root
    // may change the outside name's content.
    fs::hard_link(outside.join("victim"), root.join("hard")).unwrap();
    mkfifo(&root.join("fifo"));

    let before = snapshot(&outside);
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);

    // A thread flips `flip` between a real directory and a symlink out,
    // racing every request that goes through it.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, root, outside) = (stop.clone(), root.clone(), outside.clone());
        std::thread::spawn(move || {
            let (dir, tmp) = (root.join("flip"), root.join("flip.tmp"));
            let mut flips = 0u64;
            let deadline = StdInstant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && StdInstant::now() < deadline {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&tmp);
                if flips % 2 == 0 {
                    let _ = symlink(&outside, &tmp);
                } else {
                    let _ = fs::create_dir(&tmp);
                }
                // rename() swaps atomically, whatever `flip` is now.
                let _ = fs::remove_dir_all(&dir);
                let _ = fs::remove_file(&dir);
                let _ = fs::rename(&tmp, &dir);
                flips += 1;
                std::thread::yield_now();
            }
            flips
        })
    };

    let paths = hostile_paths();
    assert!(paths.len() >= 200, "only {} paths", paths.len());
    let mut c = connect(&s.addr);
    let payload = b"written by the hostile-path test";
    let mut requests = 0u32;
    for p in &paths {
        // get: nothing from outside arrives.
        let mut got = Vec::new();
        let r = c.get(p, |d| {
            got.extend_from_slice(d);
            Ok(())
        });
        assert!(
            r.is_err() || !got.windows(SECRET.len()).any(|w| w == SECRET) || p.ends_with("hard"),
            "get {p:?} read the secret"
        );
        // stat and ls: nothing outside is described.
        let _ = c.stat(p);
        let mut names = Vec::new();
        let _ = c.list(p, |e| names.push(e.name.to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n == "secret" || n == "victim" || n == "passwd"),
            "ls {p:?} listed {names:?}"
        );
        // put: new file and replace.
        for ow in [Overwrite::Fail, Overwrite::Replace] {
            let _ = c.put(p, payload.len() as u64, ow, false, {
                let mut sent = false;
                move |buf| {
                    if sent {
                        return Ok(0);
                    }
                    sent = true;
                    buf[..payload.len()].copy_from_slice(payload);
                    Ok(payload.len())
                }
            });
        }
        // cd, then back to the root whatever happened.
        let _ = c.cd(p);
        if let Err(e) = c.cd("/") {
            panic!("the session died after {p:?}: {e:?}");
        }
        requests += 7;
    }
    // The changing commands last: removing a symlink inside the root is
    // allowed, and it must not take its target along.
    for p in &paths {
        let _ = c.mkdir(p);
        let _ = c.rename("sub/deeper", p);
        let _ = c.rename(p, "sub/moved");
        let _ = c.rename("sub/moved", "sub/deeper");
        let _ = c.rename_replacing("sub/deeper", p);
        let _ = c.rename_replacing(p, "sub/deeper");
        let _ = c.remove(p);
        requests += 7;
        assert!(!c.client().is_closed(), "the session died after {p:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let flips = flipper.join().unwrap();
    // The session survived every refusal and the server still works.
    assert_eq!(c.echo("still here", false).unwrap().as_str(), "still here");
    eprintln!(
        "{} hostile paths, {requests} requests, {flips} flips of the racing symlink",
        paths.len()
    );
    assert!(requests >= 8 * 200, "{requests}");
    assert!(flips > 10, "the race ran ({flips} flips)");
    drop(c);

    let after = snapshot(&outside);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "nothing created or removed outside ROOT"
    );
    assert_eq!(before, after, "nothing outside ROOT changed");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), SECRET);
    assert!(!top.path().join("etc").exists());
    assert!(!top.path().join("new").exists());
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// docs/PROTOCOL.md#paths: no request creates a name the server would then
/// refuse to reach. From a session directory 400 bytes long as `Cwd`
/// names it (`/` and 399), a relative name of 79 bytes makes an absolute
/// path of exactly 480 (the bound); 80 is one over. mkdir, mv's target
/// and put's target (also a keep-both name) one over are refused with
/// `InvalidPath` and nothing appears on disk; at the bound each works and
/// the directory can be `cd`ed into.
#[test]
fn no_request_creates_a_name_cd_would_refuse() {
    use ferry_core::{message::MAX_PATH, Error};
    let s = Server::anonymous(&[]);
    let comp = "c".repeat(99);
    let cwd = [comp.as_str(); 4].join("/");
    assert_eq!(cwd.len() + 1, 400);
    let dir = s.root.join(&cwd);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("src"), b"src").unwrap();
    let at_bound = "b".repeat(MAX_PATH - 401);
    let over = "o".repeat(MAX_PATH - 400);
    // A name that fits whose keep-both name (`NAME.new`) would not.
    let kept = "k".repeat(MAX_PATH - 401);
    fs::write(dir.join(&kept), b"old").unwrap();
    let before = snapshot(&s.root);

    let mut c = connect(&s.addr);
    assert_eq!(c.cd(&cwd).unwrap().len(), 400);
    let refused = |r: Result<(), Option<Error>>| assert_eq!(r, Err(Some(Error::InvalidPath)));
    refused(c.mkdir(&over).map_err(|e| e.protocol()));
    refused(c.mkdir(&format!("{over}/x")).map_err(|e| e.protocol()));
    refused(c.rename("src", &over).map_err(|e| e.protocol()));
    refused(c.rename_replacing("src", &over).map_err(|e| e.protocol()));
    let one = |buf: &mut [u8]| -> Result<usize, Error> {
        buf[0] = b'x';
        Ok(1)
    };
    for (name, ow) in [
        (&over, Overwrite::Fail),
        (&over, Overwrite::KeepBoth),
        (&kept, Overwrite::KeepBoth),
    ] {
        let r = c.put(name, 1, ow, false, one).map(|_| ());
        refused(r.map_err(|e| e.protocol()));
    }
    assert_eq!(snapshot(&s.root), before, "nothing was created");

    // At the bound: made, moved, stored, and reachable.
    c.mkdir(&at_bound).unwrap();
    let there = c.cd(&at_bound).unwrap();
    assert_eq!(there.len(), MAX_PATH);
    c.cd("..").unwrap();
    c.rename("src", &"r".repeat(MAX_PATH - 401)).unwrap();
    c.put(&"p".repeat(MAX_PATH - 401), 1, Overwrite::Fail, false, one)
        .unwrap();
    assert!(dir.join(&at_bound).is_dir());
    assert_eq!(
        fs::read(dir.join("r".repeat(MAX_PATH - 401))).unwrap(),
        b"src"
    );
    assert_eq!(
        fs::read(dir.join("p".repeat(MAX_PATH - 401))).unwrap(),
        b"x"
    );
}
