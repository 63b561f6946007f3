//! Issue 28 against the real server: pre-agreed gets
//! (`docs/PROTOCOL.md#pre-agreed-gets`) — announced in the hello, a get
//! within its bound sends its body behind the offer, one past it falls
//! back to the accept, a resumed one sends the rest — pre-agreed puts
//! (`docs/PROTOCOL.md#pre-agreed-puts`) — bodies behind their requests,
//! a refused one read, dropped and answered once — a version-2 client
//! served as before, and a refused login with requests behind it
//! reported as the login's failure (`docs/PROTOCOL.md#login`).

use ferry_core::digest::{digest, Algorithm, Sum};
use ferry_core::frame::{FrameKind, AGREED};
use ferry_core::message::{bounded, Message, Overwrite, Request};
use ferry_core::Error;
use ferry_tests::raw::{error_of, Frame, Raw};
use ferry_tests::*;

fn get_agreed(raw: &mut Raw, path: &str, offset: u64, max: u64) {
    raw.send(&Message::GetAgreed {
        path: bounded(path, Error::InvalidPath).unwrap(),
        offset,
        max,
    });
}

/// A body up to its trailer: the bytes and the trailer's digest.
fn body(raw: &mut Raw) -> (Vec<u8>, Sum) {
    let mut got = Vec::new();
    loop {
        match raw.recv() {
            Frame::Bytes(FrameKind::Data, d) => got.extend(d),
            Frame::Msg(m) => match *m {
                Message::Trailer { sum } => return (got, sum),
                m => panic!("inside a body: {m:?}"),
            },
            f => panic!("inside a body: {f:?}"),
        }
    }
}

fn md5(b: &[u8]) -> Sum {
    digest(Algorithm::Md5, b).unwrap()
}

/// A `Pwd` answered next proves nothing else (no body) was on its way.
fn nothing_else_pending(raw: &mut Raw) {
    raw.request(Request::Pwd);
    assert!(matches!(raw.msg(), Message::Cwd(_)), "a body came first");
}

#[test]
fn a_pre_agreed_get_needs_no_accept_and_past_its_bound_falls_back() {
    let s = Server::anonymous(&[]);
    let small = random_bytes(10_000, 1);
    let big = random_bytes(50_000, 2);
    std::fs::write(s.root.join("small"), &small).unwrap();
    std::fs::write(s.root.join("big"), &big).unwrap();
    let mut raw = Raw::login_v3(&s.addr, 8);
    assert!(
        raw.server_hello[16..20].contains(&AGREED),
        "{:02x?}",
        raw.server_hello
    );

    // Within the bound: the offer, its body and trailer, no accept sent.
    get_agreed(&mut raw, "small", 0, 20_000);
    assert_eq!(raw.msg(), Message::Offer { size: 10_000 });
    assert_eq!(body(&mut raw), (small.clone(), md5(&small)));
    raw.send(&Message::Done { verified: true });
    nothing_else_pending(&mut raw);

    // Past it: the offer waits for the accept, as a plain get's.
    get_agreed(&mut raw, "big", 0, 20_000);
    assert_eq!(raw.msg(), Message::Offer { size: 50_000 });
    nothing_else_pending(&mut raw);
    raw.send(&Message::Accept {
        offset: 0,
        name: None,
    });
    assert_eq!(body(&mut raw), (big.clone(), md5(&big)));
    raw.send(&Message::Done { verified: true });

    // Resumed: the rest of the file, the whole file's digest.
    get_agreed(&mut raw, "big", 30_000, u64::MAX);
    assert_eq!(raw.msg(), Message::Offer { size: 50_000 });
    assert_eq!(body(&mut raw), (big[30_000..].to_vec(), md5(&big)));
    raw.send(&Message::Done { verified: true });

    // An offset past the size is outside the agreement: refused, the
    // session goes on.
    get_agreed(&mut raw, "small", 20_000, u64::MAX);
    assert_eq!(raw.msg(), Message::Offer { size: 10_000 });
    raw.send(&Message::Refuse {
        code: Error::Exists.code(),
    });
    nothing_else_pending(&mut raw);
    // A missing file is refused as a plain get.
    get_agreed(&mut raw, "nope", 0, 10);
    assert_eq!(error_of(&raw.msg()), Some(Error::NotFound));
    nothing_else_pending(&mut raw);
}

/// A version-2 client sees the same hello bytes it always skipped and
/// is served a get as before; tag 22 from it closes the connection.
#[test]
fn a_version_2_client_is_served_unchanged() {
    let s = Server::anonymous(&[]);
    let data = random_bytes(5_000, 3);
    std::fs::write(s.root.join("f"), &data).unwrap();
    let mut raw = Raw::login(&s.addr);
    raw.request(Request::Get {
        path: bounded("f", Error::InvalidPath).unwrap(),
    });
    assert_eq!(raw.msg(), Message::Offer { size: 5_000 });
    raw.send(&Message::Accept {
        offset: 0,
        name: None,
    });
    assert_eq!(body(&mut raw), (data.clone(), md5(&data)));
    raw.send(&Message::Done { verified: true });
    nothing_else_pending(&mut raw);
    get_agreed(&mut raw, "f", 0, 10_000);
    assert_eq!(error_of(&raw.msg()), Some(Error::UnexpectedFrame));
    assert!(raw.try_recv().is_none(), "the server closes");
}

/// Requests sent behind a refused login fail with the login's error,
/// which the CLI reports: an anonymous `ls`, and a multi-file `get`
/// whose gets went with the login.
#[test]
fn a_refused_login_with_requests_behind_it_reports_the_login_error() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    add_user(&users, "alice", "pw");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a"), b"a").unwrap();
    std::fs::write(root.join("b"), b"b").unwrap();
    let s = Server::start(
        &root,
        &[
            "--users",
            users.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let back = TempDir::new().unwrap();
    for (user, want) in [
        ("", "anonymous login not allowed"),
        ("alice@", "login failed"),
    ] {
        let url = |p: &str| format!("ferry://{user}{}/{p}", s.addr);
        let mut ls = ferry();
        ls.arg("ls").arg(url("")).env("FERRY_PASSWORD", "wrong");
        let mut get = ferry();
        get.arg("get")
            .arg(url("a"))
            .arg(url("b"))
            .arg(back.path())
            .env("FERRY_PASSWORD", "wrong");
        for cmd in [ls, get] {
            let o = run(cmd);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_ne!(code(&o), 0);
            assert!(err.contains(want), "{user}: {err}");
            assert!(!err.contains("not logged in"), "{user}: {err}");
        }
    }
    assert!(!back.path().join("a").exists());
}

/// `get -r` lists first, with no lookup: a file answers `NotADirectory`
/// and is then fetched as one.
#[test]
fn get_r_of_a_file_fetches_the_file() {
    let s = Server::anonymous(&[]);
    let data = random_bytes(7_000, 4);
    std::fs::write(s.root.join("one.bin"), &data).unwrap();
    let back = TempDir::new().unwrap();
    let mut c = ferry();
    c.args(["get", "-r"])
        .arg(s.url("one.bin"))
        .arg(back.path())
        .arg("--quiet");
    ok(&run(c));
    assert_eq!(std::fs::read(back.path().join("one.bin")).unwrap(), data);
}

/// `ls` of several directories, in a shell batch too: one pipelined
/// batch, each under its heading.
#[test]
fn a_shell_ls_of_several_directories_lists_each() {
    let s = Server::anonymous(&[]);
    for d in ["a", "b"] {
        std::fs::create_dir(s.root.join(d)).unwrap();
        std::fs::write(s.root.join(d).join(format!("in-{d}")), d).unwrap();
    }
    let o = shell_batch(&s.url(""), "ls a b\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (out.find("a:\n").unwrap(), out.find("b:\n").unwrap());
    assert!(
        a < b && out.contains("in-a") && out.contains("in-b"),
        "{out}"
    );
    let o = shell_batch(&s.url(""), "ls a nope\n");
    assert_ne!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

fn put_agreed(raw: &mut Raw, path: &str, body: &[u8], overwrite: Overwrite) {
    raw.send(&Message::PutAgreed {
        path: bounded(path, Error::InvalidPath).unwrap(),
        size: body.len() as u64,
        overwrite,
    });
    raw.data(body);
    raw.trailer(body);
}

/// Three pre-agreed puts in one write, the second to a name that exists
/// and the third keep-both: the first and third are answered `Accept`
/// and `Done` and stored, the second with one `Error(Exists)` after its
/// body, which is dropped (the file keeps its bytes, no part file is
/// left); the request behind them is answered next. From a version-2
/// client tag 23 closes the connection.
#[test]
fn pre_agreed_puts_are_stored_or_refused_once_after_their_body() {
    let s = Server::anonymous(&[]);
    std::fs::write(s.root.join("b"), b"old").unwrap();
    let (a, b, c) = (
        random_bytes(20_000, 4),
        random_bytes(30_000, 5),
        random_bytes(1, 6),
    );
    let mut raw = Raw::login_v3(&s.addr, 8);
    put_agreed(&mut raw, "a", &a, Overwrite::Fail);
    put_agreed(&mut raw, "b", &b, Overwrite::Fail);
    put_agreed(&mut raw, "b", &c, Overwrite::KeepBoth);
    let accept = |name: Option<&str>| Message::Accept {
        offset: 0,
        name: name.map(|n| bounded(n, Error::InvalidPath).unwrap()),
    };
    assert_eq!(raw.msg(), accept(None));
    assert_eq!(raw.msg(), Message::Done { verified: true });
    assert_eq!(error_of(&raw.msg()), Some(Error::Exists));
    assert_eq!(raw.msg(), accept(Some("/b.new")));
    assert_eq!(raw.msg(), Message::Done { verified: true });
    nothing_else_pending(&mut raw);
    assert_eq!(std::fs::read(s.root.join("a")).unwrap(), a);
    assert_eq!(std::fs::read(s.root.join("b")).unwrap(), b"old");
    assert_eq!(std::fs::read(s.root.join("b.new")).unwrap(), c);
    let mut names: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "b.new"], "no part file left");

    let mut v2 = Raw::login(&s.addr);
    put_agreed(&mut v2, "z", b"z", Overwrite::Fail);
    assert_eq!(error_of(&v2.msg()), Some(Error::UnexpectedFrame));
    assert!(v2.try_recv().is_none(), "the server closes");
    assert!(!s.root.join("z").exists());
}
