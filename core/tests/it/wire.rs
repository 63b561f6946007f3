//! The wire: every message round-trips, and hostile or broken input gives a
//! typed error, never a panic.

use crate::pair;

use ferry_core::digest::{Algorithm, Digests, Sum};
use ferry_core::frame::{self, FrameKind, Hello, HEADER_LEN, HELLO_LEN, MAGIC, VERSION};
use ferry_core::message::{Entry, Message, Path, Request, MAX_PATH, MAX_TEXT};
use ferry_core::{
    Client, ClientEvent, Config, Error, Instant, Kind, Overwrite, Server, ServerEvent,
};
use pair::{server_config, Pair, Rec, SRec};

fn s<const N: usize>(x: &str) -> heapless::String<N> {
    heapless::String::try_from(x).unwrap()
}

fn all_messages() -> Vec<Message> {
    let entry = Entry {
        name: s("测试文件.txt"),
        kind: Kind::File,
        size: u64::MAX,
        modified: 1_700_000_000,
        mode: 0o755,
    };
    let long_path: Path = s(&"é".repeat(MAX_PATH / 2));
    vec![
        Message::Anonymous,
        Message::ClientFirst(s("n,,n=user,r=abc")),
        Message::ServerFirst(s("r=abcdef,s=c2FsdA==,i=4096")),
        Message::ClientFinal(s("c=biws,r=abcdef,p=cHJvb2Y=")),
        Message::ServerFinal(s("v=c2ln")),
        Message::LoginOk,
        Message::Echo {
            text: s(&"你".repeat(MAX_TEXT / 3)),
            upper: true,
        },
        Message::EchoReply(s("回声")),
        Message::Request(Request::Get {
            path: s("目录/测试文件.txt"),
        }),
        Message::Request(Request::Put {
            path: long_path.clone(),
            size: 1 << 40,
            overwrite: Overwrite::KeepBoth,
            resume: true,
        }),
        Message::Request(Request::List { path: s("") }),
        Message::Request(Request::Stat { path: s("a") }),
        Message::Request(Request::Cd { path: s("..") }),
        Message::Request(Request::Pwd),
        Message::Request(Request::Mkdir { path: s("新建") }),
        Message::Request(Request::Remove { path: s("x") }),
        Message::Request(Request::Rename {
            from: long_path.clone(),
            to: long_path.clone(),
        }),
        Message::Request(Request::RenameReplace {
            from: long_path.clone(),
            to: long_path.clone(),
        }),
        Message::Request(Request::Exec {
            command: s("ls -l"),
        }),
        Message::Ok,
        Message::Cwd(s("/")),
        Message::Entry(entry),
        Message::ListEnd { count: 7 },
        Message::Offer { size: 0 },
        Message::Accept {
            offset: 5,
            name: Some(s("a.new.1")),
        },
        Message::Trailer {
            sum: Sum::new(Algorithm::Md5, &[0xAB; 16]).unwrap(),
        },
        Message::Trailer {
            sum: Sum::new(Algorithm::Blake3, &[0xCD; 32]).unwrap(),
        },
        Message::Done { verified: true },
        Message::ExecEnd {
            status: -9,
            no_output: true,
        },
        Message::Error { code: 50 },
        Message::Request(Request::Digest { path: long_path }),
        Message::Sum(Sum::new(Algorithm::Sha256, &[0xEF; 32]).unwrap()),
    ]
}

#[test]
fn every_message_round_trips_and_fits_the_smallest_frame() {
    for msg in all_messages() {
        let mut buf = [0u8; 2048];
        let n = frame::encode_message(&msg, &mut buf).unwrap();
        let head: &[u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        let (kind, len) = frame::read_header(head, 1024).unwrap();
        assert_eq!(kind, FrameKind::Msg);
        assert_eq!(len as usize, n - HEADER_LEN);
        assert_eq!(frame::decode_message(&buf[HEADER_LEN..n]).unwrap(), msg);
        // Trailing garbage is not silently ignored.
        buf[n] = 0;
        assert_eq!(
            frame::decode_message(&buf[HEADER_LEN..n + 1]),
            Err(Error::Malformed)
        );
        // Every truncation is an error, never a panic.
        for cut in 0..n - HEADER_LEN {
            assert!(frame::decode_message(&buf[HEADER_LEN..HEADER_LEN + cut]).is_err());
        }
    }
}

/// The trailer example in docs/PROTOCOL.md#digests.
#[test]
fn a_trailer_names_its_algorithm_on_the_wire() {
    let sum = Sum::new(Algorithm::Blake3, &[0x64; 32]).unwrap();
    let mut buf = [0u8; 64];
    let n = frame::encode_message(&Message::Trailer { sum }, &mut buf).unwrap();
    assert_eq!(&buf[..8], &[1, 0, 0, 0, 0x23, 0x0f, 3, 0x20]);
    assert_eq!(n, 5 + 0x23);
    let md5 = Sum::new(Algorithm::Md5, &[0; 16]).unwrap();
    let n = frame::encode_message(&Message::Trailer { sum: md5 }, &mut buf).unwrap();
    assert_eq!(&buf[..8], &[1, 0, 0, 0, 0x13, 0x0f, 1, 0x10]);
    assert_eq!(n, 5 + 0x13);
}

#[test]
fn strings_over_their_byte_bound_are_refused() {
    let mut p = Pair::new();
    p.login();
    let long = "测".repeat(MAX_PATH / 3 + 1); // 3 bytes each: over by bytes, under by chars
    assert!(long.chars().count() < MAX_PATH);
    assert_eq!(p.client.get(&long), Err(Error::InvalidPath));
    assert_eq!(
        p.client.echo(&"x".repeat(MAX_TEXT + 1), false),
        Err(Error::TooLarge)
    );
    assert_eq!(p.client.get("a\0b"), Err(Error::InvalidPath));
}

#[test]
fn hello_layout_and_checks() {
    let h = Hello {
        version: VERSION,
        flags: 3,
        max_frame: 4096,
        chunk: 1024,
        digests: Digests::from_bytes([3, 2, 1, 0]),
    };
    let b = h.encode();
    assert_eq!(&b[..4], &MAGIC);
    assert_eq!(
        b,
        [b'F', b'R', b'R', b'Y', 0, 2, 0, 3, 0, 0, 16, 0, 0, 0, 4, 0, 3, 2, 1, 0]
    );
    assert_eq!(Hello::decode(&b), Ok(h));
    for other in [1u8, 3] {
        let mut v = b;
        v[5] = other;
        assert_eq!(Hello::decode(&v), Err(Error::VersionMismatch));
    }
    let mut small = b;
    small[8..12].copy_from_slice(&100u32.to_be_bytes());
    assert_eq!(Hello::decode(&small), Err(Error::Unsupported));
}

fn hello_bytes(version: u16) -> [u8; HELLO_LEN] {
    let mut b = Hello {
        version: VERSION,
        flags: 0,
        max_frame: 4096,
        chunk: 4096,
        digests: Digests::MD5_ONLY,
    }
    .encode();
    b[4..6].copy_from_slice(&version.to_be_bytes());
    b
}

#[test]
fn version_mismatch_is_reported_by_both_sides() {
    let now = Instant::ZERO;
    let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.handle_input(now, &hello_bytes(1)).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Closed(Error::VersionMismatch))
    );
    // It tells the peer too: hello, then an error frame with code 2.
    let mut out = [0u8; 64];
    let n = c.poll_transmit(&mut out).unwrap();
    assert_eq!(
        frame::decode_message(&out[HELLO_LEN + HEADER_LEN..n]),
        Ok(Message::Error { code: 2 })
    );
    assert!(c.is_closed());
    assert_eq!(c.handle_input(now, b"more"), Err(Error::VersionMismatch));

    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    s.handle_input(now, &hello_bytes(9)).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed(Error::VersionMismatch))
    );
    // A version-1 peer sends a 16-byte hello and waits: the mismatch is
    // seen from its first six bytes, not after a handshake timeout.
    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    s.handle_input(now, &hello_bytes(1)[..16]).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed(Error::VersionMismatch))
    );
}

#[test]
fn a_stray_protocol_fails_fast_with_bad_magic() {
    let now = Instant::ZERO;
    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    s.handle_input(now, b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(s.poll_event(), Some(ServerEvent::Closed(Error::BadMagic)));
    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    s.handle_input(now, b"X").unwrap();
    assert_eq!(s.poll_event(), Some(ServerEvent::Closed(Error::BadMagic)));
}

/// A logged-in pair, then raw bytes injected towards the server.
fn server_gets(raw: &[u8]) -> Option<SRec> {
    let mut p = Pair::new();
    p.login();
    p.to_server.bytes.extend(raw);
    p.drive();
    p.store.server_events.last().cloned()
}

fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn bad_frames_close_with_a_typed_error() {
    // Larger than the server's input buffer allows.
    let mut big = vec![1u8];
    big.extend_from_slice(&(u32::MAX).to_be_bytes());
    assert_eq!(server_gets(&big), Some(SRec::Closed(Error::FrameTooLarge)));
    // Unknown frame kind.
    assert_eq!(
        server_gets(&raw_frame(9, b"")),
        Some(SRec::Closed(Error::Malformed))
    );
    // A message that does not decode.
    assert_eq!(
        server_gets(&raw_frame(1, &[200, 1, 2])),
        Some(SRec::Closed(Error::Malformed))
    );
    // Body bytes with no transfer.
    assert_eq!(
        server_gets(&raw_frame(2, b"body")),
        Some(SRec::Closed(Error::UnexpectedFrame))
    );
    // Exec output from a client.
    assert_eq!(
        server_gets(&raw_frame(3, b"out")),
        Some(SRec::Closed(Error::UnexpectedFrame))
    );
    // A server-only message from a client.
    let mut buf = [0u8; 64];
    let n = frame::encode_message(&Message::Offer { size: 1 }, &mut buf).unwrap();
    assert_eq!(
        server_gets(&buf[..n]),
        Some(SRec::Closed(Error::UnexpectedFrame))
    );
}

#[test]
fn oversized_frame_is_rejected_at_the_client_too() {
    let mut p = Pair::new();
    p.login();
    let mut big = vec![2u8];
    big.extend_from_slice(&(300_000u32).to_be_bytes());
    p.to_client.bytes.extend(&big);
    p.drive();
    assert_eq!(p.take(), vec![Rec::Closed(Error::FrameTooLarge)]);
    // The server hears why.
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::FrameTooLarge))
    );
}

#[test]
fn more_body_than_announced_is_a_protocol_error() {
    let mut p = Pair::new();
    p.login();
    p.client.put("x", 4, Overwrite::Fail, false).unwrap();
    p.upload = b"abcd".to_vec();
    p.upload_limit = Some(0);
    // Hold the client back and speak for it: 5 bytes against 4 announced.
    p.drive();
    p.to_server.bytes.extend(raw_frame(2, b"abcde"));
    p.drive();
    assert!(p
        .store
        .server_events
        .contains(&SRec::Closed(Error::Malformed)));
}

#[test]
fn truncated_frame_then_eof_is_truncated() {
    let mut p = Pair::new();
    p.login();
    p.to_server.bytes.extend(&raw_frame(1, &[6, 1, 2, 3])[..4]);
    p.drive();
    p.server.handle_eof(p.now);
    p.drive();
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::Truncated))
    );
}

#[test]
fn handshake_login_and_idle_deadlines() {
    // No hello from the peer.
    let now = Instant::from_millis(5);
    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    assert_eq!(s.poll_timeout(), Some(Instant::from_millis(30_005)));
    s.handle_timeout(Instant::from_millis(30_004));
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(Instant::from_millis(30_005));
    assert_eq!(s.poll_event(), Some(ServerEvent::Closed(Error::Timeout)));
    assert_eq!(s.poll_timeout(), None);

    // Hello, but no login.
    let mut p = Pair::new();
    p.drive();
    p.advance(29_999);
    p.drive();
    assert!(!p.server_closed);
    p.advance(1);
    p.drive();
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::Timeout))
    );
    assert_eq!(p.events.last(), Some(&Rec::Closed(Error::Timeout)));

    // Logged in: idle for 300 s closes; activity pushes the deadline.
    let mut p = Pair::new();
    p.login();
    p.advance(200_000);
    p.client.pwd().unwrap();
    p.drive();
    p.advance(200_000);
    p.drive();
    assert!(!p.server_closed, "activity resets the idle timer");
    p.advance(100_001);
    p.drive();
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::Timeout))
    );
}

#[test]
fn idle_timeout_can_be_disabled() {
    let cfg = Config {
        idle_timeout: None,
        ..Config::default()
    };
    let sc = ferry_core::ServerConfig {
        conn: cfg,
        ..server_config()
    };
    let mut p = Pair::with(cfg, sc, 8192, 8192, pair::Split::Whole);
    p.login();
    assert_eq!(p.server.poll_timeout(), None);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn busy_server_says_so_and_closes() {
    let now = Instant::ZERO;
    let mut s = Server::new_busy(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.poll_transmit(&mut buf).unwrap();
    assert!(s.is_closed());
    c.handle_input(now, &buf[..n]).unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Connected(_))));
    assert_eq!(c.poll_event(), Some(ClientEvent::Closed(Error::Busy)));
}

#[test]
fn error_codes_are_stable_and_unique() {
    let mut seen = std::collections::BTreeSet::new();
    for e in Error::ALL {
        assert!(seen.insert(e.code()), "duplicate code {}", e.code());
        assert_eq!(Error::from_code(e.code()), *e);
        assert!(!e.message().is_empty());
    }
    // Pinned: these numbers are on the wire and in scripts.
    assert_eq!(Error::VersionMismatch.code(), 2);
    assert_eq!(Error::AuthFailed.code(), 10);
    assert_eq!(Error::NotFound.code(), 20);
    assert_eq!(Error::Exists.code(), 21);
    assert_eq!(Error::NoSpace.code(), 22);
    assert_eq!(Error::OutsideRoot.code(), 25);
    assert_eq!(Error::ChecksumMismatch.code(), 50);
    assert_eq!(Error::Busy.code(), 60);
    assert_eq!(Error::from_code(9999), Error::Unknown);
    // Local-only codes mean nothing from a peer.
    for e in [Error::BadUsage, Error::BufferFull, Error::Closed] {
        assert!(e.is_local());
        assert_eq!(Error::from_wire(e.code()), Error::Malformed);
    }
    assert_eq!(Error::from_wire(Error::Exists.code()), Error::Exists);
    assert!(Error::ALL.iter().filter(|e| e.is_local()).count() == 3);
}

#[test]
fn a_full_output_buffer_gives_empty_send_buffers_not_a_panic() {
    let now = Instant::ZERO;
    let small = ferry_core::MIN_OUTPUT_BUFFER;
    let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; small]).unwrap();
    let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut buf = [0u8; 8192];
    let mut pump = |c: &mut Client<Vec<u8>>, s: &mut Server<Vec<u8>>| {
        while let Some(n) = c.poll_transmit(&mut buf) {
            s.handle_input(now, &buf[..n]).unwrap();
        }
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::Request(ferry_core::Request::Put { .. }) = ev {
                s.accept_put(0, None).unwrap();
            }
        }
        while let Some(n) = s.poll_transmit(&mut buf) {
            c.handle_input(now, &buf[..n]).unwrap();
        }
    };
    pump(&mut c, &mut s);
    while let Some(ev) = c.poll_event() {
        if let ClientEvent::Connected(_) = ev {
            c.login_anonymous().unwrap();
        }
    }
    pump(&mut c, &mut s);
    while c.poll_event().is_some() {}
    c.put("f", 1 << 20, Overwrite::Fail, false).unwrap();
    pump(&mut c, &mut s);
    assert!(matches!(c.poll_event(), Some(ClientEvent::Accepted { .. })));
    // Fill without ever transmitting.
    let mut total = 0;
    for _ in 0..100 {
        let n = c.send_with(|b| (b.len(), b.len())).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total > 0 && total < small);
    assert_eq!(c.send_with(|b| (0, b.len())), Ok(0));
    assert_eq!(c.send_body(b"x"), Err(Error::BufferFull));
    // Transmitting frees room again.
    while c.poll_transmit(&mut [0u8; 512]).is_some() {}
    assert!(c.send_with(|b| (0, b.len())).unwrap() > 0);
}
