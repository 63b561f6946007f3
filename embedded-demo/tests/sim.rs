//! The device and a ferry-core client on two smoltcp interfaces joined by
//! an in-memory wire, in one process, on virtual time: login, put, get,
//! ls, exec with MD5 verified; then again over a link with loss,
//! corruption and reordering; a client that vanishes mid-put; a put larger
//! than the free space.

mod world;

use ferry_core::{Overwrite, Verifier};
use ferry_device::sim::Link;
use ferry_device::Auth;
use smoltcp::socket::tcp;
use world::{data, Conn, Ev, World};

/// Everything the command printed, in order.
fn output(c: &Conn) -> Vec<u8> {
    c.events
        .iter()
        .filter_map(|e| {
            if let Ev::Out(_, d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect()
}

/// A new connection, logged in anonymously.
fn logged_in(w: &mut World) -> Conn {
    let mut c = w.connect();
    w.run(&mut c, |c| has(c, &Ev::Connected));
    c.client.login_anonymous().unwrap();
    w.run(&mut c, |c| has(c, &Ev::LoggedIn));
    c
}

fn has<const W: usize>(c: &Conn<W>, e: &Ev) -> bool {
    c.events.contains(e)
}

/// login, put, ls, get, exec — everything verified.
fn session(w: &mut World, c: &mut Conn, user: Option<(&str, &str)>) {
    w.run(c, |c| has(c, &Ev::Connected));
    match user {
        Some((u, p)) => c.client.login(u, p, &[3; 16]).unwrap(),
        None => c.client.login_anonymous().unwrap(),
    }
    w.run(c, |c| has(c, &Ev::LoggedIn));
    let body = data(40_000, 7);
    c.upload = body.clone();
    c.client
        .put("测试.bin", body.len() as u64, Overwrite::Fail, false)
        .unwrap();
    w.run(c, |c| {
        c.events
            .iter()
            .any(|e| matches!(e, Ev::End(_) | Ev::Failed(_)))
    });
    assert!(has(c, &Ev::End(true)), "{:?}", c.events.last());
    assert_eq!(w.device.store.read("测试.bin"), Some(&body[..]));
    c.events.clear();

    c.client.list("/").unwrap();
    w.run(c, |c| has(c, &Ev::ListEnd));
    assert!(has(c, &Ev::Entry("测试.bin".into(), 40_000)));
    c.events.clear();

    c.client.get("测试.bin").unwrap();
    w.run(c, |c| c.events.iter().any(|e| matches!(e, Ev::End(_))));
    assert!(has(c, &Ev::End(true)));
    let got: Vec<u8> = c
        .events
        .iter()
        .filter_map(|e| {
            if let Ev::Data(d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(got, body);
    c.events.clear();

    c.client.exec("md5 测试.bin").unwrap();
    w.run(c, |c| c.events.iter().any(|e| matches!(e, Ev::ExecEnd(_))));
    let out = output(c);
    let hex: String = ferry_core::digest::md5(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{hex}  测试.bin\n")
    );
    c.events.clear();

    c.client.exec("reboot").unwrap();
    w.run(c, |c| !c.events.is_empty());
    assert_eq!(c.events, vec![Ev::Failed(ferry_core::Error::ExecFailed)]);
    c.events.clear();
}

#[test]
fn a_whole_session_over_a_perfect_link() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = w.connect();
    session(&mut w, &mut c, None);
    c.client.exec("free").unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::ExecEnd(_)))
    });
    let out = output(&c);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{} bytes free of 262144, 1 of 16 files\n", 262_144 - 40_000)
    );
}

#[test]
fn scram_login_on_the_device() {
    let link = Link::new();
    let v = Verifier::new("pw", b"device-salt", 4096).unwrap();
    let auth = Auth::User(heapless::String::try_from("admin").unwrap(), v);
    let mut w = World::new(&link, auth.clone(), 0, 0);
    let mut bad = w.connect();
    w.run(&mut bad, |c| has(c, &Ev::Connected));
    bad.client.login("admin", "nope", &[1; 16]).unwrap();
    w.run(&mut bad, |c| !c.events.iter().all(|e| *e == Ev::Connected));
    assert!(has(&bad, &Ev::Failed(ferry_core::Error::AuthFailed)));
    bad.client.login_anonymous().unwrap();
    w.run(&mut bad, |c| c.events.len() > 2);
    assert!(has(
        &bad,
        &Ev::Failed(ferry_core::Error::AnonymousNotAllowed)
    ));
    let mut c = w.connect();
    session(&mut w, &mut c, Some(("admin", "pw")));
}

#[test]
fn a_whole_session_over_a_lossy_corrupting_reordering_link() {
    let mut link = Link::new();
    link.set_reorder(5, 99);
    let mut w = World::new(&link, Auth::Anonymous, 5, 5);
    let mut c = w.connect();
    session(&mut w, &mut c, None);
    // Losses cost retransmission timeouts: far more virtual time than the
    // perfect link needs (the faults really happened).
    let lossy_ms = w.ms;
    let perfect = Link::new();
    let mut p = World::new(&perfect, Auth::Anonymous, 0, 0);
    let mut pc = p.connect();
    session(&mut p, &mut pc, None);
    assert!(
        lossy_ms > 3 * p.ms,
        "lossy {lossy_ms} ms vs perfect {} ms",
        p.ms
    );
}

#[test]
fn a_client_that_vanishes_mid_put_leaves_the_store_unchanged() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = logged_in(&mut w);
    let free = w.device.store.free();
    c.upload = data(100_000, 3);
    c.send_limit = 30_000;
    c.client
        .put("half.bin", 100_000, Overwrite::Fail, false)
        .unwrap();
    w.run(&mut c, |c| c.sent >= 30_000);
    for _ in 0..200 {
        w.step(&mut [&mut c]);
    }
    // Vanish: reset the connection.
    w.cli_sockets.get_mut::<tcp::Socket>(c.handle).abort();
    for _ in 0..2_000 {
        w.step(&mut [&mut c]);
    }
    assert!(!w.device.store.contains("half.bin"));
    assert_eq!(w.device.store.free(), free);
    assert_eq!(w.device.active_sessions(), 0);
    // The next session works, and can use the space.
    let mut next = w.connect();
    session(&mut w, &mut next, None);
}

#[test]
fn a_put_larger_than_free_space_is_refused_before_the_body() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = logged_in(&mut w);
    c.upload = data(300_000, 5);
    c.client
        .put("big.bin", 300_000, Overwrite::Fail, false)
        .unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::Failed(_)))
    });
    assert!(has(&c, &Ev::Failed(ferry_core::Error::NoSpace)));
    assert_eq!(c.sent, 0, "no body byte was sent");
    assert!(w.device.store.is_empty());
}

/// A device configured read-only refuses a put (and mkdir) before any
/// body byte; the core server enforces it, not the device's own code.
#[test]
fn a_read_only_device_refuses_writes() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    w.device.set_read_only(true);
    let mut c = logged_in(&mut w);
    c.upload = data(1000, 5);
    c.client.put("a.bin", 1000, Overwrite::Fail, false).unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::Failed(_)))
    });
    assert!(has(&c, &Ev::Failed(ferry_core::Error::ReadOnly)));
    assert_eq!(c.sent, 0, "no body byte was sent");
    assert!(w.device.store.is_empty());
}

#[test]
fn one_session_too_many_is_told_the_server_is_busy() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let (mut a, mut b, mut c) = (w.connect(), w.connect(), w.connect());
    for _ in 0..5_000 {
        if has(&c, &Ev::Closed(ferry_core::Error::Busy)) {
            break;
        }
        w.step(&mut [&mut a, &mut b, &mut c]);
    }
    assert!(has(&a, &Ev::Connected) && has(&b, &Ev::Connected));
    assert!(
        has(&c, &Ev::Closed(ferry_core::Error::Busy)),
        "{:?}",
        c.events
    );
    assert_eq!(w.device.active_sessions(), 2);
}

/// The device offers MD5 only unless built with `blake3`; a full client
/// (every digest the workspace build carries) agrees on what the device
/// offers, and the device's digest answer is that algorithm's digest.
#[test]
fn the_device_negotiates_its_digest_and_answers_digest_requests() {
    use ferry_core::digest::{self, Algorithm};
    let want = if cfg!(feature = "blake3") {
        Algorithm::Blake3
    } else {
        Algorithm::Md5
    };
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = logged_in(&mut w);
    assert_eq!(c.client.negotiated().unwrap().digest, want);
    let body = data(30_000, 9);
    c.upload = body.clone();
    c.client
        .put("d.bin", body.len() as u64, Overwrite::Fail, false)
        .unwrap();
    w.run(&mut c, |c| {
        c.events
            .iter()
            .any(|e| matches!(e, Ev::End(_) | Ev::Failed(_)))
    });
    assert!(has(&c, &Ev::End(true)), "{:?}", c.events);
    c.events.clear();
    c.client.digest("d.bin").unwrap();
    w.run(&mut c, |c| !c.events.is_empty());
    assert_eq!(
        c.events,
        vec![Ev::Sum(digest::digest(want, &body).unwrap())]
    );
}

/// A pipelining client (window 8) against the device, whose window is 1:
/// the window negotiated is 1, and a batch of puts then gets, sent as a
/// pipelining driver sends them (while `can_pipeline` allows), goes one
/// at a time and arrives whole. On a perfect link and a lossy one.
#[test]
fn a_pipelining_client_against_the_device_gets_window_1() {
    for (loss, corrupt) in [(0, 0), (5, 5)] {
        let link = Link::new();
        let mut w = World::new(&link, Auth::Anonymous, loss, corrupt);
        let mut c = w.connect_windowed::<8>();
        w.run(&mut c, |c| has(c, &Ev::Connected));
        let n = c.client.negotiated().unwrap();
        assert_eq!((n.version, n.window), (3, 1));
        c.client.login_anonymous().unwrap();
        w.run(&mut c, |c| has(c, &Ev::LoggedIn));
        c.events.clear();

        let files: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| (format!("p{i}.bin"), data(3_000 + 5_000 * i, 40 + i as u32)))
            .collect();
        // The puts: each sent as soon as the client may; one more than the
        // window may never go out.
        let mut next = 0;
        let ended = |c: &Conn<8>| {
            c.events
                .iter()
                .filter(|e| matches!(e, Ev::End(_) | Ev::Failed(_)))
                .count()
        };
        while ended(&c) < files.len() {
            while next < files.len() && c.client.can_pipeline(false) {
                let (name, body) = &files[next];
                c.client
                    .put(name, body.len() as u64, Overwrite::Fail, false)
                    .unwrap();
                c.bodies.push_back(body.clone());
                next += 1;
                assert!(!c.client.can_pipeline(false), "window 1: one at a time");
            }
            w.step(&mut [&mut c]);
        }
        assert_eq!(
            c.events
                .iter()
                .filter(|e| matches!(e, Ev::End(_) | Ev::Failed(_)))
                .collect::<Vec<_>>(),
            vec![&Ev::End(true); 5],
            "loss {loss}"
        );
        for (name, body) in &files {
            assert_eq!(w.device.store.read(name), Some(&body[..]), "{name}");
        }
        c.events.clear();

        // The gets, in reverse order, one of a missing file.
        let mut names: Vec<&str> = files.iter().rev().map(|f| f.0.as_str()).collect();
        names.insert(2, "missing.bin");
        let mut next = 0;
        while ended(&c) < names.len() {
            while next < names.len() && c.client.can_pipeline(true) {
                c.client.get(names[next]).unwrap();
                next += 1;
                assert!(!c.client.can_pipeline(true), "window 1: one at a time");
            }
            w.step(&mut [&mut c]);
        }
        // Each get's bytes run from its data to its end.
        let mut got: Vec<Result<Vec<u8>, ferry_core::Error>> = Vec::new();
        let mut cur = Vec::new();
        for e in &c.events {
            match e {
                Ev::Data(d) => cur.extend_from_slice(d),
                Ev::End(true) => got.push(Ok(std::mem::take(&mut cur))),
                Ev::Failed(e) => got.push(Err(*e)),
                Ev::End(false) => panic!("a digest mismatch"),
                _ => {}
            }
        }
        let want: Vec<Result<Vec<u8>, ferry_core::Error>> = names
            .iter()
            .map(|n| match files.iter().find(|f| f.0 == *n) {
                Some(f) => Ok(f.1.clone()),
                None => Err(ferry_core::Error::NotFound),
            })
            .collect();
        assert!(got == want, "loss {loss}: the gets differ");
        assert!(c.client.is_idle());
    }
}

/// `ls` on a full store of the longest names: 16 lines of 75 bytes,
/// more than the 961-byte output a built-in holds, so they stream a
/// file at a time, each whole and in order.
#[test]
fn builtin_ls_lists_a_full_store_a_line_at_a_time() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut names = Vec::new();
    for i in 0..16 {
        let name = format!("{i:02}{}", "n".repeat(62));
        let body = data(100 + i, i as u32);
        let store = &mut w.device.store;
        store.begin_upload(body.len() as u64).unwrap();
        store.write_upload(&body).unwrap();
        store.commit_upload(&name, false, 0).unwrap();
        names.push((name, body.len()));
    }
    let mut c = logged_in(&mut w);
    c.client.exec("ls").unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::ExecEnd(_)))
    });
    let want: String = names
        .iter()
        .map(|(n, size)| format!("{size:>8}  {n}\n"))
        .collect();
    assert!(want.len() > 1100);
    assert_eq!(String::from_utf8(output(&c)).unwrap(), want);
    assert!(has(&c, &Ev::ExecEnd(0)), "{:?}", c.events.last());
}
