//! Uploads that overlap, part files that are planted or named, a resume at
//! the very end, paths the server cannot answer, and a get cancelled by the
//! client: the server never mixes two uploads, never writes through a link,
//! never hangs and never drops the session (issues 14 A1–A4, 20.3–20.4).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_core::message::{bounded, Message, Overwrite, Request};
use ferry_core::Error;
use ferry_tests::raw::{error_of, Frame, Raw};
use ferry_tests::*;

/// Part files anywhere under `root`.
fn part_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if name.contains("ferry-part") {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

fn path(p: &str) -> ferry_core::Path {
    bounded(p, Error::InvalidPath).unwrap()
}

/// The interleaving the independent client found: A's put is mid-body when
/// B's put of the same name starts. B never shares A's temp file: for
/// `Fail` and `Replace` it is told "in use" at once; for `KeepBoth` it is
/// stored beside it. Both files end up exactly as sent.
#[test]
fn overlapping_puts_of_one_name_never_share_a_part_file() {
    for policy in [Overwrite::Fail, Overwrite::Replace, Overwrite::KeepBoth] {
        let s = Server::anonymous(&[]);
        let big = random_bytes(1 << 20, 1);
        let small = b"0123456789".to_vec();

        let mut a = Raw::login(&s.addr);
        let accept = a.put_request("inuse.bin", big.len() as u64, policy);
        assert!(
            matches!(accept, Message::Accept { offset: 0, .. }),
            "{accept:?}"
        );
        a.data(&big[..64 * 1024]);

        let mut b = Raw::login(&s.addr);
        let answer = b.put_request("inuse.bin", small.len() as u64, policy);
        match policy {
            Overwrite::KeepBoth => {
                let Message::Accept { offset: 0, name } = answer else {
                    panic!("{policy:?}: {answer:?}")
                };
                assert_eq!(name.as_deref(), Some("/inuse.bin.new"), "{policy:?}");
                b.data(&small);
                b.trailer(&small);
                assert_eq!(b.msg(), Message::Done { verified: true }, "{policy:?}");
            }
            _ => assert_eq!(
                error_of(&answer),
                Some(Error::InUse),
                "{policy:?}: {answer:?}"
            ),
        }

        a.data(&big[64 * 1024..]);
        a.trailer(&big);
        assert_eq!(a.msg(), Message::Done { verified: true }, "{policy:?}");
        assert!(
            fs::read(s.root.join("inuse.bin")).unwrap() == big,
            "{policy:?}: mixed file"
        );
        if policy == Overwrite::KeepBoth {
            assert_eq!(fs::read(s.root.join("inuse.bin.new")).unwrap(), small);
        }
        // B's session goes on after its refusal.
        b.request(Request::Pwd);
        assert!(matches!(b.msg(), Message::Cwd(_)), "{policy:?}");
        assert!(part_files(&s.root).is_empty(), "{:?}", part_files(&s.root));
    }
}

/// 20 clients race to put one name with the default policy: exactly one
/// wins, its bytes are intact, the others fail cleanly (exit 6), and no
/// part file is left.
#[test]
fn twenty_clients_racing_for_one_name_give_one_winner() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let kids: Vec<_> = (0..20u64)
        .map(|i| {
            let f = local.path().join(format!("src{i}.bin"));
            fs::write(&f, random_bytes(300_000 + i as usize, 100 + i)).unwrap();
            let mut c = ferry();
            c.arg("put").arg(&f).arg(s.url("race.bin")).arg("--quiet");
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            (i, c.spawn().unwrap())
        })
        .collect();
    let mut winners = Vec::new();
    for (i, k) in kids {
        let o = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) => winners.push(i),
            Some(6) => assert!(
                err.contains("already exists") || err.contains("in use"),
                "{err}"
            ),
            c => panic!("client {i}: exit {c:?}: {err}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let w = winners[0];
    assert!(
        fs::read(s.root.join("race.bin")).unwrap() == random_bytes(300_000 + w as usize, 100 + w),
        "the winner's bytes"
    );
    assert!(part_files(&s.root).is_empty(), "{:?}", part_files(&s.root));
}

/// A part-file name planted as a hard link or a symlink to a file outside
/// the root is never written through, by a fresh put or by a resume.
#[test]
fn planted_part_files_are_never_written_through() {
    let top = TempDir::new().unwrap();
    let root = top.path().join("root");
    fs::create_dir(&root).unwrap();
    let outside = top.path().join("outside.txt");
    fs::write(&outside, b"precious").unwrap();
    let s = Server::start(&root, &["--anonymous", "--listen", "127.0.0.1:0"]);
    let local = TempDir::new().unwrap();
    let src = local.path().join("x");
    fs::write(&src, random_bytes(100_000, 5)).unwrap();

    for (i, resume) in [false, true, false, true].into_iter().enumerate() {
        let part = root.join(".x.ferry-part");
        let _ = fs::remove_file(&part);
        if i < 2 {
            fs::hard_link(&outside, &part).unwrap();
        } else {
            std::os::unix::fs::symlink(&outside, &part).unwrap();
        }
        let mut c = ferry();
        c.arg("put")
            .arg(&src)
            .arg(s.url("x"))
            .args(["--overwrite", "replace", "--quiet"]);
        if resume {
            c.arg("--resume");
        }
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        let out = fs::read(&outside).unwrap();
        assert!(
            out == b"precious",
            "case {i}: outside file now {} bytes",
            out.len()
        );
        assert!(fs::read(root.join("x")).unwrap() == random_bytes(100_000, 5));
    }
}

/// Part files are not the clients' to name: get, stat, put, mv, rm, mkdir
/// and cd of a `.NAME.ferry-part` are refused as an invalid path.
#[test]
fn part_file_names_are_reserved() {
    let s = Server::anonymous(&[]);
    fs::write(s.root.join(".a.ferry-part"), b"someone's upload").unwrap();
    fs::write(s.root.join("a"), b"a").unwrap();
    let mut r = Raw::login(&s.addr);
    let p = ".a.ferry-part";
    let reqs = vec![
        Request::Get { path: path(p) },
        Request::Stat { path: path(p) },
        Request::Digest { path: path(p) },
        Request::Remove { path: path(p) },
        Request::Cd { path: path(p) },
        Request::Mkdir {
            path: path("sub/.b.ferry-part"),
        },
        Request::Rename {
            from: path("a"),
            to: path(p),
        },
        Request::Rename {
            from: path(p),
            to: path("stolen"),
        },
        Request::Put {
            path: path(p),
            size: 3,
            overwrite: Overwrite::Replace,
            resume: true,
        },
        Request::List {
            path: path("dir/.c.ferry-part/.."),
        },
    ];
    for req in reqs {
        r.request(req.clone());
        let m = r.msg();
        assert_eq!(error_of(&m), Some(Error::InvalidPath), "{req:?}: {m:?}");
    }
    assert_eq!(
        fs::read(s.root.join(".a.ferry-part")).unwrap(),
        b"someone's upload"
    );
    assert_eq!(fs::read(s.root.join("a")).unwrap(), b"a");
    assert!(!s.root.join("stolen").exists());
}

/// A get resumed with the whole file already held ends at once with the
/// trailer, also when the server kept the file's digest (it hung).
#[test]
fn get_resumed_at_the_end_completes_when_the_digest_is_kept() {
    let s = Server::anonymous(&[]);
    let body = random_bytes(12_345, 9);
    let local = TempDir::new().unwrap();
    let src = local.path().join("f.bin");
    fs::write(&src, &body).unwrap();
    // A put keeps the file's digest on the server.
    let mut c = ferry();
    c.arg("put").arg(&src).arg(s.url("f.bin")).arg("--quiet");
    assert_eq!(code(&run(c)), 0);
    let dst = local.path().join("back.bin");
    // The whole file already held as the local partial.
    fs::write(local.path().join(".back.bin.ferry-part"), &body).unwrap();
    let t = Instant::now();
    let mut c = ferry();
    c.arg("get")
        .arg(s.url("f.bin"))
        .arg(&dst)
        .args(["--resume", "--quiet", "--timeout", "5"]);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(fs::read(&dst).unwrap() == body);

    // The same by hand, at the end and one byte before it: exactly the
    // missing bytes, then the trailer.
    for offset in [12_345u64, 12_344] {
        let mut r = Raw::login(&s.addr);
        r.request(Request::Get {
            path: path("f.bin"),
        });
        assert_eq!(r.msg(), Message::Offer { size: 12_345 });
        r.send(&Message::Accept { offset, name: None });
        let mut got = 0;
        loop {
            match r.recv() {
                Frame::Bytes(_, b) => got += b.len() as u64,
                Frame::Msg(m) if matches!(*m, Message::Trailer { .. }) => break,
                f => panic!("{f:?}"),
            }
        }
        assert_eq!(got, 12_345 - offset);
    }
}

/// Replies the server cannot encode (a derived name or a directory past
/// the 480-byte bound) are refused as an invalid path; the session goes on
/// and nothing is left on disk.
#[test]
fn derived_paths_past_the_bound_are_refused_not_dropped() {
    let s = Server::anonymous(&[]);
    let (d1, d2) = ("d".repeat(200), "e".repeat(200));
    fs::create_dir_all(s.root.join(&d1).join(&d2)).unwrap();
    let name = "f".repeat(74);
    let long = format!("{d1}/{d2}/{name}");
    assert_eq!(long.len(), 476);
    fs::write(s.root.join(&long), b"old").unwrap();

    let mut r = Raw::login(&s.addr);
    let m = r.put_request(&long, 3, Overwrite::KeepBoth);
    assert_eq!(error_of(&m), Some(Error::InvalidPath), "{m:?}");
    r.request(Request::Pwd);
    assert!(matches!(r.msg(), Message::Cwd(_)));
    assert!(part_files(&s.root).is_empty(), "{:?}", part_files(&s.root));

    // cd into 50-byte names: the tenth would make the directory 510 bytes.
    let seg = "c".repeat(49);
    let mut deep = s.root.clone();
    for _ in 0..10 {
        deep = deep.join(&seg);
    }
    fs::create_dir_all(&deep).unwrap();
    for i in 0..10 {
        r.request(Request::Cd { path: path(&seg) });
        let m = r.msg();
        if i < 9 {
            assert!(matches!(m, Message::Cwd(_)), "cd {i}: {m:?}");
        } else {
            assert_eq!(error_of(&m), Some(Error::InvalidPath), "{m:?}");
        }
    }
    r.request(Request::Pwd);
    let Message::Cwd(cwd) = r.msg() else { panic!() };
    assert_eq!(cwd.len(), 9 * 50);
}

/// The receiver cancels a 64 MiB get after 3 KiB: the server stops within
/// a chunk of seeing it (plus what the socket buffers already hold), ends
/// the body with a trailer, and the session goes on.
#[test]
fn a_cancelled_get_stops_the_sender() {
    let s = Server::anonymous(&[]);
    let size = 64u64 << 20;
    fs::File::create(s.root.join("big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let mut r = Raw::login(&s.addr);
    r.request(Request::Get {
        path: path("big.bin"),
    });
    assert_eq!(r.msg(), Message::Offer { size });
    r.send(&Message::Accept {
        offset: 0,
        name: None,
    });
    let mut got = 0u64;
    while got < 3 * 1024 {
        match r.recv() {
            Frame::Bytes(_, b) => got += b.len() as u64,
            f => panic!("{f:?}"),
        }
    }
    r.send(&Message::Error {
        code: Error::Cancelled.code(),
    });
    loop {
        match r.recv() {
            Frame::Bytes(_, b) => got += b.len() as u64,
            Frame::Msg(m) if matches!(*m, Message::Trailer { .. }) => break,
            f => panic!("{f:?}"),
        }
    }
    eprintln!("{got} bytes sent in all");
    assert!(got < 4 << 20, "{got} of {size} bytes sent after the cancel");
    r.request(Request::Pwd);
    assert!(matches!(r.msg(), Message::Cwd(_)));
}

/// The review's race: A uploads `d/x`; B renames `d` to `e` and puts
/// `e/x` — the same file by another path. B is refused as in use (it used
/// to get a fresh part file in A's place, and A's commit then stored B's
/// partial bytes as "verified"); A's bytes are stored whole.
#[test]
fn another_path_to_an_upload_in_flight_is_in_use() {
    let s = Server::anonymous(&[]);
    let big = random_bytes(131_072, 3);
    let mut a = Raw::login(&s.addr);
    a.request(Request::Mkdir { path: path("d") });
    assert_eq!(a.msg(), Message::Ok);
    let m = a.put_request("d/x", big.len() as u64, Overwrite::Fail);
    assert!(matches!(m, Message::Accept { .. }), "{m:?}");
    a.data(&big[..65_536]);

    let mut b = Raw::login(&s.addr);
    b.request(Request::Rename {
        from: path("d"),
        to: path("e"),
    });
    assert_eq!(b.msg(), Message::Ok);
    let m = b.put_request("e/x", big.len() as u64, Overwrite::Replace);
    assert_eq!(error_of(&m), Some(Error::InUse), "{m:?}");

    a.data(&big[65_536..]);
    a.trailer(&big);
    assert_eq!(a.msg(), Message::Done { verified: true });
    assert!(
        fs::read(s.root.join("e/x")).unwrap() == big,
        "A's bytes, whole"
    );
    assert!(part_files(&s.root).is_empty(), "{:?}", part_files(&s.root));
}

/// docs/PROTOCOL.md#put: one upload per target name at a time, whoever
/// sends it, another session or an earlier put of the same pipelined
/// batch. Two puts of one new name behind each other: under `Fail` and
/// `Replace` the second is `InUse` (the first is not stored yet, so not
/// `Exists`); under `KeepBoth` it is stored as `<name>.new`.
#[test]
fn the_same_new_name_twice_in_one_batch_is_in_use() {
    let s = Server::anonymous(&[]);
    let body = b"first";
    for (policy, name) in [
        (Overwrite::Fail, "twice"),
        (Overwrite::Replace, "twice-r"),
        (Overwrite::KeepBoth, "twice-k"),
    ] {
        let mut r = Raw::login_v3(&s.addr, 4);
        for _ in 0..2 {
            r.request(Request::Put {
                path: bounded(name, Error::InvalidPath).unwrap(),
                size: body.len() as u64,
                overwrite: policy,
                resume: false,
            });
        }
        let first = r.msg();
        assert_eq!(
            first,
            Message::Accept {
                offset: 0,
                name: None
            },
            "{policy:?}"
        );
        let second = r.msg();
        r.data(body);
        r.trailer(body);
        if policy == Overwrite::KeepBoth {
            let want = format!("/{name}.new");
            assert!(
                matches!(&second, Message::Accept { offset: 0, name: Some(n) } if n.as_str() == want),
                "{second:?}"
            );
            r.data(b"again");
            r.trailer(b"again");
            assert_eq!(r.msg(), Message::Done { verified: true });
            assert_eq!(r.msg(), Message::Done { verified: true });
            assert_eq!(
                fs::read(s.root.join(format!("{name}.new"))).unwrap(),
                b"again"
            );
        } else {
            assert_eq!(
                error_of(&second),
                Some(Error::InUse),
                "{policy:?}: {second:?}"
            );
            assert_eq!(r.msg(), Message::Done { verified: true }, "{policy:?}");
        }
        assert_eq!(fs::read(s.root.join(name)).unwrap(), body, "{policy:?}");
    }
}
