//! docs/PROTOCOL.md, pinned against the real server frame by frame: what
//! an implementation written from the document alone must see for the
//! empty path, NUL, reserved part files, `Accept.name`, `Exists` after the
//! trailer, and each outcome of exec.

use ferry_core::frame::FrameKind;
use ferry_core::message::{bounded, Message, Overwrite, Request};
use ferry_core::{Error, Kind};
use ferry_tests::raw::{error_of, Frame, Raw};
use ferry_tests::Server;

fn p(s: &str) -> ferry_core::Path {
    bounded(s, Error::InvalidPath).unwrap()
}

/// The one-message answer to `r`.
fn ask(raw: &mut Raw, r: Request) -> Message {
    raw.request(r);
    raw.msg()
}

#[test]
fn the_empty_path_is_the_sessions_directory() {
    let srv = Server::anonymous(&[]);
    std::fs::create_dir(srv.root.join("d")).unwrap();
    let mut raw = Raw::login(&srv.addr);
    match ask(&mut raw, Request::Stat { path: p("") }) {
        Message::Entry(e) => assert_eq!((e.name.as_str(), e.kind), ("/", Kind::Dir)),
        m => panic!("{m:?}"),
    }
    assert_eq!(
        ask(&mut raw, Request::Cd { path: p("") }),
        Message::Cwd(p("/"))
    );
    let get = ask(&mut raw, Request::Get { path: p("") });
    assert_eq!(error_of(&get), Some(Error::IsADirectory));
    assert_eq!(
        error_of(&raw.put_request("", 1, Overwrite::Fail)),
        Some(Error::IsADirectory)
    );
    let mkdir = ask(&mut raw, Request::Mkdir { path: p("") });
    assert_eq!(error_of(&mkdir), Some(Error::Exists));
    // Below the root, "" is the session's directory and Stat names it.
    ask(&mut raw, Request::Cd { path: p("d") });
    match ask(&mut raw, Request::Stat { path: p("") }) {
        Message::Entry(e) => assert_eq!(e.name.as_str(), "d"),
        m => panic!("{m:?}"),
    }
    raw.request(Request::List { path: p("") });
    assert_eq!(raw.msg(), Message::ListEnd { count: 0 });
}

#[test]
fn nul_and_part_file_names_are_invalid_paths() {
    let srv = Server::anonymous(&[]);
    std::fs::write(srv.root.join(".x.ferry-part"), b"partial").unwrap();
    std::fs::write(srv.root.join("x.ferry-part"), b"ordinary").unwrap();
    let mut raw = Raw::login(&srv.addr);
    for bad in ["a\0b", ".x.ferry-part", "d/.x.ferry-part/..", ".ferry-part"] {
        let m = ask(&mut raw, Request::Stat { path: p(bad) });
        assert_eq!(error_of(&m), Some(Error::InvalidPath), "{bad:?}");
    }
    let m = ask(
        &mut raw,
        Request::Get {
            path: p(".x.ferry-part"),
        },
    );
    assert_eq!(error_of(&m), Some(Error::InvalidPath));
    // Listed: the ordinary name only.
    raw.request(Request::List { path: p("/") });
    match raw.msg() {
        Message::Entry(e) => assert_eq!(e.name.as_str(), "x.ferry-part"),
        m => panic!("{m:?}"),
    }
    assert_eq!(raw.msg(), Message::ListEnd { count: 1 });
    let m = ask(
        &mut raw,
        Request::List {
            path: p("x.ferry-part"),
        },
    );
    assert_eq!(error_of(&m), Some(Error::NotADirectory));
}

#[test]
fn accept_names_a_keep_both_target_from_the_root_and_nothing_else() {
    let srv = Server::anonymous(&[]);
    std::fs::create_dir(srv.root.join("d")).unwrap();
    std::fs::write(srv.root.join("d/a.txt"), b"old").unwrap();
    let mut raw = Raw::login(&srv.addr);
    let accept = raw.put_request("d/a.txt", 3, Overwrite::KeepBoth);
    assert_eq!(
        accept,
        Message::Accept {
            offset: 0,
            name: Some(p("/d/a.txt.new"))
        }
    );
    raw.data(b"new");
    raw.trailer(b"new");
    assert_eq!(raw.msg(), Message::Done { verified: true });
    let accept = raw.put_request("./d//b.txt", 3, Overwrite::KeepBoth);
    assert_eq!(
        accept,
        Message::Accept {
            offset: 0,
            name: None
        }
    );
}

#[test]
fn exists_can_come_after_the_trailer_in_place_of_done() {
    let srv = Server::anonymous(&[]);
    let mut raw = Raw::login(&srv.addr);
    let accept = raw.put_request("late.txt", 4, Overwrite::Fail);
    assert!(matches!(accept, Message::Accept { .. }), "{accept:?}");
    std::fs::write(srv.root.join("late.txt"), b"first").unwrap();
    raw.data(b"body");
    raw.trailer(b"body");
    assert_eq!(error_of(&raw.msg()), Some(Error::Exists));
    assert_eq!(std::fs::read(srv.root.join("late.txt")).unwrap(), b"first");
    // The session goes on.
    assert_eq!(ask(&mut raw, Request::Pwd), Message::Cwd(p("/")));
}

/// Runs `command`: its stdout, its stderr, and the `ExecEnd` status, or
/// the error that came instead.
fn exec(raw: &mut Raw, command: &str) -> Result<(String, String, i32), Error> {
    raw.request(Request::Exec {
        command: bounded(command, Error::TooLarge).unwrap(),
    });
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match raw.recv() {
            Frame::Bytes(FrameKind::Stdout, b) => out.extend(b),
            Frame::Bytes(FrameKind::Stderr, b) => err.extend(b),
            Frame::Msg(m) => match *m {
                Message::ExecEnd { status, .. } => {
                    let s = |v: Vec<u8>| String::from_utf8(v).unwrap();
                    return Ok((s(out), s(err), status));
                }
                m => return Err(error_of(&m).unwrap_or_else(|| panic!("{m:?}"))),
            },
            f => panic!("{f:?}"),
        }
    }
}

#[test]
fn exec_outcomes_under_a_shell() {
    let srv = Server::anonymous(&["--allow-exec", "--exec-timeout", "1"]);
    let mut raw = Raw::login(&srv.addr);
    assert_eq!(exec(&mut raw, "exit 3").unwrap().2, 3);
    let (_, err, status) = exec(&mut raw, "no-such-command-ferry-spec").unwrap();
    assert_eq!(status, 127, "sh's own answer, not ExecFailed");
    assert!(err.contains("no-such-command-ferry-spec"), "{err}");
    assert_eq!(exec(&mut raw, "kill -TERM $$").unwrap().2, -15);
    let (_, err, status) = exec(&mut raw, "sleep 5").unwrap();
    assert_eq!(status, -9);
    assert!(err.ends_with("ferry: command timed out\n"), "{err:?}");
}

#[test]
fn exec_outcomes_with_an_allow_list_and_disabled() {
    let srv = Server::anonymous(&["--exec-allow", "echo,no-such-program-ferry-spec"]);
    let mut raw = Raw::login(&srv.addr);
    assert_eq!(exec(&mut raw, "ls"), Err(Error::Permission));
    let (out, _, status) = exec(&mut raw, "echo a;b  $HOME").unwrap();
    assert_eq!((out.as_str(), status), ("a;b $HOME\n", 0));
    assert_eq!(
        exec(&mut raw, "no-such-program-ferry-spec"),
        Err(Error::ExecFailed)
    );
    let srv = Server::anonymous(&[]);
    let mut raw = Raw::login(&srv.addr);
    assert_eq!(exec(&mut raw, "true"), Err(Error::ExecDisabled));
}

#[test]
fn stat_follows_links_inside_the_root_and_a_listing_does_not() {
    let srv = Server::anonymous(&[]);
    std::fs::write(srv.root.join("f"), b"12345").unwrap();
    let link = |to: &str, name: &str| std::os::unix::fs::symlink(to, srv.root.join(name)).unwrap();
    link("f", "in");
    link("/etc/passwd", "out");
    link("nowhere", "dangling");
    let mut raw = Raw::login(&srv.addr);
    match ask(&mut raw, Request::Stat { path: p("in") }) {
        Message::Entry(e) => assert_eq!((e.name.as_str(), e.kind, e.size), ("in", Kind::File, 5)),
        m => panic!("{m:?}"),
    }
    let m = ask(&mut raw, Request::Stat { path: p("out") });
    assert_eq!(error_of(&m), Some(Error::OutsideRoot));
    let m = ask(
        &mut raw,
        Request::Stat {
            path: p("dangling"),
        },
    );
    assert_eq!(error_of(&m), Some(Error::NotFound));
    raw.request(Request::List { path: p("") });
    let mut links = 0;
    loop {
        match raw.msg() {
            Message::Entry(e) if e.name.as_str() != "f" => {
                assert_eq!(e.kind, Kind::Symlink, "{e:?}");
                links += 1;
            }
            Message::Entry(_) => {}
            Message::ListEnd { count } => {
                assert_eq!((count, links), (4, 3));
                break;
            }
            m => panic!("{m:?}"),
        }
    }
}
