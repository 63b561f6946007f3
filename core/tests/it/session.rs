//! Whole sessions on the in-memory Pair: the behaviour a user relies on.

use crate::pair;

use ferry_core::digest::md5;
use ferry_core::{Config, Error, Overwrite, ServerConfig, Stream};
use pair::{bytes, server_config, Pair, Rec, SRec, Split, PASSWORD, USER};

#[test]
fn login_with_scram_then_echo() {
    let mut p = Pair::new();
    p.drive();
    assert!(matches!(p.events[0], Rec::Connected(..)));
    p.client.login(USER, PASSWORD, &[1; 18]).unwrap();
    p.drive();
    assert_eq!(p.events.last(), Some(&Rec::LoggedIn));
    assert_eq!(
        p.store.server_events,
        vec![SRec::LoggedIn(Some(USER.into()))]
    );
    p.take();
    p.client.echo("hello 世界", true).unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Echo("HELLO 世界".into())]);
    p.client.echo("测试 mixed Case", false).unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Echo("测试 mixed Case".into())]);
}

/// A login with a wrong password, driven to its answer.
fn wrong_password(p: &mut Pair, attempt: u8) {
    p.client.login(USER, "wrong", &[attempt; 18]).unwrap();
    p.drive();
}

#[test]
fn wrong_password_is_rejected_and_three_failures_close() {
    let mut p = Pair::new();
    p.drive();
    p.take();
    for attempt in 1..=2u8 {
        wrong_password(&mut p, attempt);
        assert_eq!(p.take(), vec![Rec::LoginFailed(Error::AuthFailed)]);
        assert_eq!(
            p.store.server_events.last(),
            Some(&SRec::LoginFailed(Error::AuthFailed, attempt))
        );
    }
    // An unknown user fails exactly like a wrong password.
    p.client.login("mallory", "x", &[3; 18]).unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Closed(Error::TooManyFailures)]);
    assert!(p.client.is_closed());
    assert!(p.server.is_closed());
    // The right password after the connection closed is refused locally.
    assert_eq!(p.client.login(USER, PASSWORD, &[1; 18]), Err(Error::Closed));
}

#[test]
fn unknown_user_and_wrong_password_look_the_same_on_the_wire() {
    fn server_first(user: &str) -> Vec<u8> {
        let mut p = Pair::new();
        p.drive();
        let before = p.to_client.sent;
        p.client.login(user, "pw", &[1; 18]).unwrap();
        p.step();
        p.step();
        let mut out = Vec::new();
        let _ = before;
        let mut buf = [0u8; 4096];
        while let Some(n) = p.server.poll_transmit(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
    let known = server_first(USER);
    let unknown = server_first("nobody");
    // Same frame length and same iteration count: nothing tells them apart.
    assert_eq!(known.len(), unknown.len());
}

#[test]
fn anonymous_login_when_allowed_and_refused_otherwise() {
    let mut p = Pair::new();
    p.drive();
    p.client.login_anonymous().unwrap();
    p.drive();
    assert_eq!(p.events.last(), Some(&Rec::LoggedIn));
    assert_eq!(p.store.server_events, vec![SRec::LoggedIn(None)]);

    let sc = ServerConfig {
        allow_anonymous: false,
        ..server_config()
    };
    let mut p = Pair::with(Config::default(), sc, 8192, 8192, Split::Whole);
    p.drive();
    p.take();
    p.client.login_anonymous().unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::LoginFailed(Error::AnonymousNotAllowed)]);
    // Requests before login are refused, not served.
    assert_eq!(p.client.list("/"), Err(Error::BadUsage));
}

#[test]
fn put_then_get_round_trips_with_md5_verified() {
    for (i, len) in [0usize, 1, 1000, 65_536, 65_537, 300_000]
        .into_iter()
        .enumerate()
    {
        let mut p = Pair::new();
        p.login();
        let data = bytes(len, i as u64);
        let ev = p.put("file.bin", &data, Overwrite::Fail, false);
        assert_eq!(ev.first(), Some(&Rec::Accepted(0, None)), "len {len}");
        assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)), "len {len}");
        assert_eq!(p.store.files["file.bin"], data);
        assert_eq!(p.store.server_events.last(), Some(&SRec::PutEnd(true)));

        let (got, ev) = p.get("file.bin");
        assert_eq!(ev.first(), Some(&Rec::Offer(len as u64)));
        assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
        assert_eq!(md5(&got), md5(&data), "len {len}");
        assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(true)));
    }
}

#[test]
fn chinese_names_and_content_round_trip_byte_exact() {
    let mut p = Pair::new();
    p.login();
    let name = "测试文件.txt";
    let content = "第一行：你好，世界！\n第二行 — ünïcödé\n".repeat(500);
    assert_eq!(name.len(), 16, "lengths are bytes, not characters");
    let ev = p.put(name, content.as_bytes(), Overwrite::Fail, false);
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    p.client.list("").unwrap();
    p.drive();
    let ev = p.take();
    assert_eq!(
        ev,
        vec![
            Rec::Entry(pair::entry(name, content.len() as u64)),
            Rec::ListEnd
        ]
    );
    let (got, _) = p.get(name);
    assert_eq!(String::from_utf8(got).unwrap(), content);
}

#[test]
fn flipped_body_byte_is_a_mismatch_on_get() {
    let mut p = Pair::new();
    p.login();
    let data = bytes(10_000, 3);
    p.store.files.insert("f".into(), data.clone());
    // The body starts after the offer and the first data frame header; flip
    // a byte well inside it.
    p.to_client.flip_at = Some(p.to_client.sent + 200);
    let (got, ev) = p.get("f");
    assert_ne!(got, data);
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(false)));
    assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(false)));
}

#[test]
fn flipped_body_byte_is_a_mismatch_on_put_and_nothing_is_stored() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("keep".into(), b"old".to_vec());
    p.to_server.flip_at = Some(p.to_server.sent + 300);
    let ev = p.put("keep", &bytes(5000, 4), Overwrite::Replace, false);
    assert_eq!(ev.last(), Some(&Rec::Failed(Error::ChecksumMismatch)));
    assert_eq!(p.store.server_events.last(), Some(&SRec::PutEnd(false)));
    assert_eq!(p.store.files["keep"], b"old");
    // The session goes on.
    p.client.pwd().unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Cwd("/".into())]);
}

#[test]
fn overwrite_policies() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("a.txt".into(), b"v1".to_vec());
    let ev = p.put("a.txt", b"v2", Overwrite::Fail, false);
    assert_eq!(ev, vec![Rec::Failed(Error::Exists)]);
    assert_eq!(p.store.files["a.txt"], b"v1");

    let ev = p.put("a.txt", b"v2", Overwrite::KeepBoth, false);
    assert_eq!(
        ev.first(),
        Some(&Rec::Accepted(0, Some("a.txt.new".into())))
    );
    let ev = p.put("a.txt", b"v3", Overwrite::KeepBoth, false);
    assert_eq!(
        ev.first(),
        Some(&Rec::Accepted(0, Some("a.txt.new.1".into())))
    );
    assert_eq!(p.store.files["a.txt"], b"v1");
    assert_eq!(p.store.files["a.txt.new"], b"v2");
    assert_eq!(p.store.files["a.txt.new.1"], b"v3");

    let ev = p.put("a.txt", b"v4", Overwrite::Replace, false);
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.store.files["a.txt"], b"v4");
}

#[test]
fn put_resumes_from_the_servers_partial_upload_and_verifies_whole_file() {
    let mut p = Pair::new();
    p.login();
    let data = bytes(200_000, 5);
    // The client vanishes after 70 000 body bytes.
    p.upload_limit = Some(70_000);
    let ev = p.put("big", &data, Overwrite::Fail, false);
    assert_eq!(ev, vec![Rec::Accepted(0, None)]);
    p.server.handle_eof(p.now);
    p.drive();
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::Truncated))
    );
    assert!(
        !p.store.files.contains_key("big"),
        "no half file under the real name"
    );
    let held = p.store.partial["big"].len();
    assert_eq!(held, 70_000);

    // A new connection resumes.
    let store = std::mem::take(&mut p.store);
    let mut p = Pair::new();
    p.store = store;
    p.login();
    let ev = p.put("big", &data, Overwrite::Fail, true);
    assert_eq!(ev.first(), Some(&Rec::Accepted(held as u64, None)));
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.store.files["big"], data);
    assert!(p.store.partial.is_empty());
}

#[test]
fn get_resumes_from_a_local_prefix_and_verifies_whole_file() {
    let mut p = Pair::new();
    p.login();
    let data = bytes(150_000, 6);
    p.store.files.insert("g".into(), data.clone());
    p.local = data[..12_345].to_vec();
    p.client.get("g").unwrap();
    p.drive();
    let ev = p.take();
    assert_eq!(ev.first(), Some(&Rec::Offer(150_000)));
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    let body: usize = ev
        .iter()
        .map(|e| match e {
            Rec::Data(d) => d.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(
        body,
        150_000 - 12_345,
        "only the missing part crossed the wire"
    );
    assert_eq!(p.local, data);

    // A wrong local prefix is caught by the whole-file MD5.
    let mut bad = data[..1000].to_vec();
    bad[10] ^= 1;
    p.local = bad;
    p.client.get("g").unwrap();
    p.drive();
    assert_eq!(p.take().last(), Some(&Rec::TransferEnd(false)));
}

#[test]
fn empty_file_and_exact_size_announced_before_body() {
    let mut p = Pair::new();
    p.login();
    let ev = p.put("empty", b"", Overwrite::Fail, false);
    assert_eq!(ev, vec![Rec::Accepted(0, None), Rec::TransferEnd(true)]);
    assert_eq!(p.store.files["empty"], b"");
    let (got, ev) = p.get("empty");
    assert!(got.is_empty());
    assert_eq!(ev, vec![Rec::Offer(0), Rec::TransferEnd(true)]);
}

#[test]
fn refused_put_sends_no_body_byte() {
    let mut p = Pair::new();
    p.login();
    let before = p.to_server.sent;
    // The toy store refuses anything above 64 MiB, from the size alone.
    p.client
        .put("huge", 1 << 40, Overwrite::Fail, false)
        .unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Failed(Error::NoSpace)]);
    let sent = p.to_server.sent - before;
    assert!(sent < 64, "only the request went out, {sent} bytes");
    assert_eq!(p.client.send_with(|b| (0, b.len())), Ok(0));
    assert!(p.client.is_idle());
}

#[test]
fn directory_commands() {
    let mut p = Pair::new();
    p.login();
    p.client.mkdir("docs").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Done]);
    p.client.cd("docs").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Cwd("/docs".into())]);
    p.put("note.md", b"# hi", Overwrite::Fail, false);
    assert!(p.store.files.contains_key("docs/note.md"));
    p.client.stat("note.md").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Entry(pair::entry("note.md", 4))]);
    p.client.rename("note.md", "readme.md").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Done]);
    p.client.remove("readme.md").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Done]);
    p.client.stat("readme.md").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Failed(Error::NotFound)]);
    p.client.cd("nowhere").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Failed(Error::NotFound)]);
}

/// `Rename` refuses an existing target; `RenameReplace` replaces it.
#[test]
fn rename_refuses_an_existing_target_and_rename_replacing_replaces_it() {
    let mut p = Pair::new();
    p.login();
    p.put("a", b"A", Overwrite::Fail, false);
    p.put("b", b"B", Overwrite::Fail, false);
    p.client.rename("a", "b").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Failed(Error::Exists)]);
    assert_eq!(p.store.files["a"], b"A");
    assert_eq!(p.store.files["b"], b"B");
    assert!(p.client.is_idle());
    p.client.rename_replacing("a", "b").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Done]);
    assert!(!p.store.files.contains_key("a"));
    assert_eq!(p.store.files["b"], b"A");
    // mkdir of an existing name is `Exists` too.
    p.client.mkdir("d").unwrap();
    p.drive();
    p.client.mkdir("d").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Done, Rec::Failed(Error::Exists)]);
}

/// A put path ending in `/` (or `.`, `..`) names a directory: the core
/// server refuses it before the store sees it, and the session goes on.
#[test]
fn a_put_path_naming_a_directory_is_refused_by_the_server() {
    let mut p = Pair::new();
    p.login();
    for path in ["x/", "/", "d/x/", "x/.", "x/.."] {
        let recs = p.put(path, b"hi", Overwrite::Replace, false);
        assert_eq!(recs, vec![Rec::Failed(Error::IsADirectory)], "{path:?}");
        assert!(p.client.is_idle());
    }
    assert!(p.store.files.is_empty());
    p.put("x", b"hi", Overwrite::Fail, false);
    assert_eq!(p.store.files["x"], b"hi");
}

#[test]
fn exec_streams_output_and_reports_no_output_explicitly() {
    let mut p = Pair::new();
    p.login();
    p.client.exec("echo 你好 world").unwrap();
    p.drive();
    assert_eq!(
        p.take(),
        vec![
            Rec::Output(Stream::Stdout, "你好 world\n".as_bytes().to_vec()),
            Rec::ExecEnd(0, false)
        ]
    );
    p.client.exec("true").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::ExecEnd(0, true)]);
    p.client.exec("false").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::ExecEnd(1, true)]);
    p.client.exec("warn").unwrap();
    p.drive();
    assert_eq!(
        p.take(),
        vec![
            Rec::Output(Stream::Stderr, b"warning\n".to_vec()),
            Rec::ExecEnd(2, false)
        ]
    );
    p.client.exec("rm -rf /").unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Failed(Error::ExecFailed)]);
    assert_eq!(p.client.exec("  "), Err(Error::BadUsage));
}

#[test]
fn small_device_and_large_server_negotiate_the_minimum() {
    let cc = Config {
        chunk_size: 1 << 20,
        ..Config::default()
    };
    // A device with 1 KiB frames against a server with 1 MiB buffers.
    let device_buf = ferry_core::MIN_OUTPUT_BUFFER;
    let mut p = Pair::with(cc, server_config(), device_buf, 1 << 20, Split::Whole);
    p.drive();
    let Rec::Connected(max, chunk) = p.events[0] else {
        panic!("{:?}", p.events)
    };
    assert_eq!(
        max as usize,
        device_buf - ferry_core::frame::HEADER_LEN,
        "the device's input limit wins"
    );
    assert!(chunk <= max);
    p.take();
    p.login();
    let data = bytes(50_000, 8);
    assert_eq!(
        p.put("d", &data, Overwrite::Fail, false).last(),
        Some(&Rec::TransferEnd(true))
    );
    let (got, ev) = p.get("d");
    assert_eq!(got, data);
    assert!(ev
        .iter()
        .all(|e| !matches!(e, Rec::Data(d) if d.len() > chunk as usize)));
}

#[test]
fn client_cancels_a_get_and_the_session_goes_on() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("f".into(), bytes(500_000, 9));
    p.client.get("f").unwrap();
    // Let the offer and a little body through, then cancel.
    while !p.events.iter().any(|e| matches!(e, Rec::Data(_))) {
        assert!(p.step());
    }
    p.client.cancel(Error::NoSpace).unwrap();
    p.drive();
    assert!(p.take().iter().all(|e| !matches!(e, Rec::TransferEnd(_))));
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Cancelled(Error::NoSpace))
    );
    p.client.echo("still here", false).unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Echo("still here".into())]);
}

#[test]
fn server_cancels_a_put_midway_and_the_session_goes_on() {
    let mut p = Pair::new();
    p.login();
    p.upload = bytes(400_000, 10);
    p.client.put("p", 400_000, Overwrite::Fail, false).unwrap();
    while p.server.remaining() == 0 || p.server.remaining() == 400_000 {
        assert!(p.step());
    }
    p.server.cancel(Error::NoSpace).unwrap();
    p.drive();
    let ev = p.take();
    assert_eq!(ev.last(), Some(&Rec::Failed(Error::NoSpace)), "{ev:?}");
    assert!(!p.store.files.contains_key("p"));
    p.client.pwd().unwrap();
    p.drive();
    assert_eq!(p.take(), vec![Rec::Cwd("/".into())]);
}

#[test]
fn peer_vanishing_mid_get_is_truncated_not_verified() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("f".into(), bytes(300_000, 11));
    p.client.get("f").unwrap();
    for _ in 0..3 {
        p.step();
    }
    p.client.handle_eof(p.now);
    p.drive();
    let ev = p.take();
    assert_eq!(ev.last(), Some(&Rec::Closed(Error::Truncated)));
    assert!(!ev.contains(&Rec::TransferEnd(true)));
}

#[test]
fn clean_close_when_idle() {
    let mut p = Pair::new();
    p.login();
    p.client.handle_eof(p.now);
    p.server.handle_eof(p.now);
    p.drive();
    assert_eq!(p.take(), vec![Rec::Closed(Error::Closed)]);
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::Closed))
    );
}

/// A logged-in pair with a 400 000-byte put of `name` part-way through.
fn put_midway(name: &str, seed: u64) -> Pair {
    let mut p = Pair::new();
    p.login();
    p.upload = bytes(400_000, seed);
    p.client.put(name, 400_000, Overwrite::Fail, false).unwrap();
    while p.server.remaining() == 0 || p.server.remaining() == 400_000 {
        assert!(p.step());
    }
    p
}

/// Both sides still open and the client ready for the next request.
fn assert_usable(p: &Pair) {
    assert!(
        !p.client_closed && !p.server_closed,
        "{:?} {:?}",
        p.events,
        p.store.server_events
    );
    assert!(p.client.is_idle());
}

#[test]
fn cancels_that_cross_on_a_put_leave_the_session_usable() {
    let mut p = put_midway("x", 12);
    // Both give up before hearing the other.
    p.server.cancel(Error::NoSpace).unwrap();
    p.client.cancel(Error::Io).unwrap();
    p.drive();
    assert_usable(&p);
    p.client.echo("ok", false).unwrap();
    p.drive();
    assert_eq!(p.take().last(), Some(&Rec::Echo("ok".into())));
}

#[test]
fn cancels_that_cross_on_a_get_leave_the_session_usable() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("f".into(), bytes(600_000, 13));
    p.client.get("f").unwrap();
    while !p.events.iter().any(|e| matches!(e, Rec::Data(_))) {
        assert!(p.step());
    }
    p.server.cancel(Error::Io).unwrap();
    p.client.cancel(Error::NoSpace).unwrap();
    p.drive();
    assert_usable(&p);
    p.client.pwd().unwrap();
    p.drive();
    assert_eq!(p.take().last(), Some(&Rec::Cwd("/".into())));
}

#[test]
fn a_client_cancel_of_a_put_is_acknowledged() {
    let mut p = put_midway("y", 14);
    p.client.cancel(Error::Io).unwrap();
    assert!(
        !p.client.is_idle(),
        "waits for the server's acknowledgement"
    );
    p.drive();
    assert!(p.client.is_idle());
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Cancelled(Error::Io))
    );
    assert!(p.store.partial.contains_key("y"), "kept for a resume");
}

#[test]
fn a_long_transfer_is_not_cut_by_the_idle_timer() {
    let cfg = Config {
        idle_timeout: Some(std::time::Duration::from_secs(1)),
        ..Config::default()
    };
    let sc = ServerConfig {
        conn: cfg,
        ..server_config()
    };
    let mut p = Pair::with(cfg, sc, 16 * 1024, 16 * 1024, Split::Whole);
    p.login();
    let data = bytes(200_000, 15);
    p.upload = data.clone();
    p.upload_limit = Some(0);
    p.client
        .put("slow", data.len() as u64, Overwrite::Fail, false)
        .unwrap();
    p.drive();
    // 20 KB every 0.7 s: 7 s in all, much longer than the idle timeout.
    for k in 1..=10 {
        p.advance(700);
        p.upload_limit = Some(k * 20_000);
        p.drive();
    }
    assert_eq!(p.take().last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.store.files["slow"], data);
}

/// Read-only and exec-disabled are the core server's rules, not each
/// driver's: a read-only server refuses every write and a server without
/// exec every command itself, before the store sees anything.
#[test]
fn read_only_and_exec_disabled_are_enforced_by_the_core_server() {
    let sc = ServerConfig {
        read_only: true,
        allow_exec: false,
        ..pair::server_config()
    };
    let mut p = Pair::with(
        Config::default(),
        sc,
        64 * 1024,
        64 * 1024,
        pair::Split::Whole,
    );
    p.login();
    p.store.files.insert("a".into(), b"a".to_vec());
    let ev = p.put("new.bin", b"data", Overwrite::Replace, false);
    assert_eq!(ev, vec![Rec::Failed(Error::ReadOnly)]);
    type Call = fn(&mut ferry_core::Client<Vec<u8>>) -> Result<(), Error>;
    let writes: [(Call, Error); 5] = [
        (|c| c.mkdir("d"), Error::ReadOnly),
        (|c| c.remove("a"), Error::ReadOnly),
        (|c| c.rename("a", "b"), Error::ReadOnly),
        (|c| c.rename_replacing("a", "b"), Error::ReadOnly),
        (|c| c.exec("true"), Error::ExecDisabled),
    ];
    for (call, want) in writes {
        call(&mut p.client).unwrap();
        p.drive();
        assert_eq!(p.take(), vec![Rec::Failed(want)]);
    }
    assert_eq!(p.store.files.len(), 1, "nothing changed");
    assert!(p.store.files.contains_key("a"));
    assert!(!p
        .store
        .server_events
        .iter()
        .any(|e| matches!(e, SRec::PutEnd(_))));
}

/// The store failing mid-put (a full disk): the core's session cancels
/// the upload with the store's error, keeps what arrived for a resume, and
/// the session goes on; the resume completes the file.
#[test]
fn a_store_failing_mid_put_cancels_it_keeps_the_part_and_a_resume_completes_it() {
    let mut p = Pair::new();
    p.login();
    let data = bytes(300_000, 11);
    p.store.fail_writes_after = Some(100_000);
    let ev = p.put("big", &data, Overwrite::Fail, false);
    assert!(ev.contains(&Rec::Failed(Error::NoSpace)), "{ev:?}");
    assert!(!p.store.files.contains_key("big"));
    let held = p.store.partial["big"].len();
    assert!(held > 0 && held <= 100_000, "{held}");
    assert_eq!(p.store.partial["big"][..], data[..held]);
    p.store.fail_writes_after = None;
    let ev = p.put("big", &data, Overwrite::Fail, true);
    assert!(ev.contains(&Rec::Accepted(held as u64, None)), "{ev:?}");
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.store.files["big"], data);
}

/// A file that shrinks while it is sent: the core's session gives the get
/// up with `Io` rather than send a short body, and the session goes on.
#[test]
fn a_file_that_shrinks_during_a_get_is_cancelled_with_io() {
    let mut p = Pair::new();
    p.login();
    p.store.files.insert("f".into(), bytes(50_000, 3));
    p.store.shrink_by = 10;
    let (_, ev) = p.get("f");
    assert!(ev.contains(&Rec::Failed(Error::Io)), "{ev:?}");
    p.store.shrink_by = 0;
    let (got, ev) = p.get("f");
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)), "{ev:?}");
    assert_eq!(got, p.store.files["f"]);
}

/// `Server::restart` (a device's one server, reused per connection): after
/// failed logins, a put and a put cut off mid-body, the restarted server
/// says exactly what a new one says, counts login failures from zero, and
/// serves a new client the same store.
#[test]
fn a_restarted_server_is_a_new_connection() {
    let mut p = Pair::new();
    p.drive();
    p.take();
    for attempt in 1..=2u8 {
        wrong_password(&mut p, attempt);
    }
    p.login();
    let body = bytes(5_000, 7);
    p.put("kept.bin", &body, Overwrite::Fail, false);
    p.upload_limit = Some(1_000);
    p.put("cut.bin", &bytes(9_000, 8), Overwrite::Fail, false);
    p.server.handle_eof(p.now);
    p.drive();
    p.session.end(&mut p.store);

    let now = p.now;
    p.server.restart(now);
    let buf = || vec![0; 256 * 1024];
    let fresh = ferry_core::Server::new(now, server_config(), buf(), buf()).unwrap();
    assert_eq!(p.server.transmit_buf(), fresh.transmit_buf());
    assert_eq!(p.server.poll_timeout(), fresh.poll_timeout());
    assert!(!p.server.is_closed());
    assert!(p.server.poll_event().is_none());

    // A new client on the restarted server and the same store.
    p.client = ferry_core::Client::new(now, Config::default(), vec![0; 1 << 18], vec![0; 1 << 18])
        .unwrap();
    p.session = ferry_core::app::Session::new();
    p.to_server = pair::Wire::new(Split::Whole);
    p.to_client = pair::Wire::new(Split::Whole);
    p.upload_limit = None;
    p.server_closed = false;
    p.drive();
    p.take();
    wrong_password(&mut p, 9);
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::LoginFailed(Error::AuthFailed, 1))
    );
    p.login();
    let (got, _) = p.get("kept.bin");
    assert_eq!(got, body);
}
