//! docs/PROTOCOL.md, pinned byte by byte where an implementation written
//! from the document alone could go either way: the order of hellos and
//! refusals, pipelined logins, `00` digest slots and pinning, Data frame
//! sizes, the user-name bound, the zero trailer and what follows a cancel.

use std::time::Duration;

use ferry_core::digest::{self, Algorithm, Digests, Sum};
use ferry_core::frame::{self, FrameKind, Hello, HEADER_LEN, HELLO_LEN, VERSION};
use ferry_core::message::{bounded, Message, Overwrite, Request};
use ferry_core::{
    Client, ClientEvent, Config, Error, Instant, Server, ServerConfig, ServerEvent, Verifier,
};

const T0: Instant = Instant::ZERO;
const USER: &str = "alice";
const PASSWORD: &str = "pencil";

fn hello(chunk: u32, digests: [u8; 4]) -> Vec<u8> {
    Hello {
        version: VERSION,
        flags: 0,
        max_frame: 4091,
        chunk,
        digests: Digests::from_bytes(digests),
    }
    .encode()
    .to_vec()
}

fn msg(m: &Message) -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    let n = frame::encode_message(m, &mut b).unwrap();
    b.truncate(n);
    b
}

fn data(d: &[u8]) -> Vec<u8> {
    let mut h = [0u8; HEADER_LEN];
    frame::write_header(&mut h, FrameKind::Data, d.len() as u32);
    let mut v = h.to_vec();
    v.extend_from_slice(d);
    v
}

fn error(e: Error) -> Vec<u8> {
    msg(&Message::Error { code: e.code() })
}

/// The zero trailer of `alg`, as the document spells it out.
fn zero_trailer(alg: Algorithm) -> Vec<u8> {
    let len = alg.digest_len() as u8;
    let mut v = vec![1, 0, 0, 0, 3 + len, 0x0f, alg.id(), len];
    v.extend(std::iter::repeat_n(0u8, len as usize));
    v
}

fn config() -> ServerConfig {
    ServerConfig {
        allow_anonymous: true,
        ..ServerConfig::new([2; 32])
    }
}

fn server(cfg: ServerConfig) -> Server<Vec<u8>> {
    Server::new(T0, cfg, vec![0; 4096], vec![0; 4096]).unwrap()
}

fn drain_server<const W: usize>(s: &mut Server<Vec<u8>, W>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(n) = s.poll_transmit(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn drain_client(c: &mut Client<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(n) = c.poll_transmit(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Debug names of the server's events for `input`.
fn feed_server<const W: usize>(s: &mut Server<Vec<u8>, W>, input: &[u8]) -> Vec<String> {
    s.handle_input(T0, input).unwrap();
    let mut evs = Vec::new();
    while let Some(ev) = s.poll_event() {
        evs.push(format!("{ev:?}"));
    }
    evs
}

/// A server with an anonymous session logged in (chunk 1024, MD5), its
/// output so far drained.
fn logged_in_server() -> Server<Vec<u8>> {
    let mut s = server(config());
    let mut input = hello(1024, [1, 0, 0, 0]);
    input.extend(msg(&Message::Anonymous));
    feed_server(&mut s, &input);
    drain_server(&mut s);
    s
}

fn request(r: Request) -> Vec<u8> {
    msg(&Message::Request(r))
}

fn path(p: &str) -> ferry_core::Path {
    bounded(p, Error::InvalidPath).unwrap()
}

/// The server's messages in `bytes` (frames after the hello, if any).
fn messages(mut bytes: &[u8]) -> Vec<Message> {
    if bytes.starts_with(&frame::MAGIC) {
        bytes = &bytes[HELLO_LEN..];
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
        let (kind, len) = frame::read_header(head, u32::MAX).unwrap();
        let payload = &bytes[HEADER_LEN..HEADER_LEN + len as usize];
        assert_eq!(kind, FrameKind::Msg);
        out.push(frame::decode_message(payload).unwrap());
        bytes = &bytes[HEADER_LEN + len as usize..];
    }
    out
}

#[test]
fn server_final_ends_a_scram_login_and_no_login_ok_follows() {
    let mut s = server(config());
    let mut c = Client::new(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    let verifier = Verifier::new(PASSWORD, b"salt and pepper!", 4096).unwrap();
    let mut to_client = Vec::new();
    let mut logged_in = false;
    for _ in 0..10 {
        s.handle_input(T0, &drain_client(&mut c)).unwrap();
        let mut lookup = false;
        while let Some(ev) = s.poll_event() {
            lookup |= matches!(ev, ServerEvent::LoginRequest { .. });
        }
        if lookup {
            s.login_verifier(Some(&verifier), &[7; 18]).unwrap();
        }
        let down = drain_server(&mut s);
        to_client.extend_from_slice(&down);
        c.handle_input(T0, &down).unwrap();
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Connected(_) => c.login(USER, PASSWORD, &[9; 18]).unwrap(),
                ClientEvent::LoggedIn => logged_in = true,
                e => panic!("{e:?}"),
            }
        }
    }
    assert!(logged_in);
    let names: Vec<_> = messages(&to_client).iter().map(Message::name).collect();
    assert_eq!(names, ["server-first", "server-final"]);
    // A LoginOk after ServerFinal is a frame the state does not expect.
    c.handle_input(T0, &msg(&Message::LoginOk)).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Closed(Error::UnexpectedFrame))
    );
}

#[test]
fn a_login_may_be_sent_before_the_servers_hello_arrives() {
    let mut s = server(config());
    let mut input = hello(1024, [0; 4]);
    input.extend(msg(&Message::Anonymous));
    let evs = feed_server(&mut s, &input);
    assert!(evs[1].starts_with("LoggedIn"), "{evs:?}");
    let out = drain_server(&mut s);
    assert!(Hello::decode(out[..HELLO_LEN].try_into().unwrap()).is_ok());
    assert_eq!(out[HELLO_LEN..], [1, 0, 0, 0, 1, 5]);
}

#[test]
fn refused_and_timed_out_connections_send_their_hello_first() {
    let check = |out: Vec<u8>, code: u8| {
        assert_eq!(out.len(), HELLO_LEN + 7, "{out:02x?}");
        assert!(Hello::decode(out[..HELLO_LEN].try_into().unwrap()).is_ok());
        assert_eq!(out[HELLO_LEN..], [1, 0, 0, 0, 2, 0x12, code]);
    };
    let mut busy = Server::new_busy(T0, config(), vec![0; 4096], vec![0; 4096]).unwrap();
    check(drain_server(&mut busy), 0x3c);
    let mut pen =
        Server::new_refused(T0, config(), vec![0; 4096], vec![0; 4096], Error::Penalised).unwrap();
    check(drain_server(&mut pen), 0x10);
    // No client hello at all: the handshake deadline.
    let mut s = server(config());
    s.handle_timeout(T0 + Duration::from_secs(30));
    check(drain_server(&mut s), 0x06);
}

#[test]
fn zero_slots_and_unknown_ids_are_skipped_anywhere_in_the_list() {
    let md5 = Digests::MD5_ONLY;
    assert_eq!(
        digest::choose(Digests::from_bytes([0; 4]), md5),
        Algorithm::Md5
    );
    let odd = Digests::from_bytes([0, 7, 0, 0xff]);
    assert_eq!(odd.iter().count(), 0);
    assert!(!odd.pins(), "only unknown ids: MD5, not a pin");
    assert_eq!(digest::choose(odd, md5), Algorithm::Md5);
    #[cfg(feature = "sha256")]
    {
        // `00 02 00 00` is the list `02`: a server offering SHA-256 agrees.
        let cfg = ServerConfig {
            conn: Config {
                digests: Digests::new(&[Algorithm::Sha256]).unwrap(),
                ..Config::default()
            },
            ..config()
        };
        let mut s = server(cfg);
        feed_server(&mut s, &hello(1024, [0, 2, 0, 0]));
        assert_eq!(s.negotiated().unwrap().digest, Algorithm::Sha256);
        assert!(Digests::from_bytes([0, 2, 0, 0]).pins());
    }
}

#[cfg(feature = "sha256")]
#[test]
fn a_pinned_client_sends_digest_refused_after_its_hello_and_the_server_closes_quietly() {
    let cfg = Config {
        digests: Digests::new(&[Algorithm::Sha256]).unwrap(),
        ..Config::default()
    };
    let mut c = Client::new(T0, cfg, vec![0; 4096], vec![0; 4096]).unwrap();
    c.handle_input(T0, &hello(1024, [1, 0, 0, 0])).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Closed(Error::DigestRefused))
    );
    let out = drain_client(&mut c);
    assert_eq!(
        out[16..20],
        [2, 0, 0, 0],
        "nothing on the wire marks the pin"
    );
    assert_eq!(out[HELLO_LEN..], [1, 0, 0, 0, 2, 0x12, 0x09]);
    // An MD5-only server picks MD5 as always, and closes without
    // answering.
    let mut s = server(ServerConfig {
        conn: Config {
            digests: Digests::MD5_ONLY,
            ..Config::default()
        },
        ..config()
    });
    let evs = feed_server(&mut s, &out);
    assert_eq!(s.negotiated().unwrap().digest, Algorithm::Md5);
    assert_eq!(evs.last().unwrap(), "Closed(DigestRefused)");
    assert_eq!(drain_server(&mut s).len(), HELLO_LEN);
}

#[test]
fn data_frames_are_bounded_by_max_frame_not_by_the_chunk_and_may_be_empty() {
    let mut s = server(config());
    // A client chunk of 8: the effective chunk is 8.
    let mut input = hello(8, [1, 0, 0, 0]);
    input.extend(msg(&Message::Anonymous));
    feed_server(&mut s, &input);
    assert_eq!(s.negotiated().unwrap().chunk, 8);
    let body = b"twenty bytes of body";
    let put = Request::Put {
        path: path("x"),
        size: body.len() as u64,
        overwrite: Overwrite::Fail,
        resume: false,
    };
    feed_server(&mut s, &request(put));
    s.accept_put(0, None).unwrap();
    let mut input = data(b"");
    input.extend(data(body));
    input.extend(msg(&Message::Trailer {
        sum: digest::digest(Algorithm::Md5, body).unwrap(),
    }));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs[0], "Data([])");
    assert_eq!(evs[1], format!("Data({:?})", &body[..]));
    assert!(evs[2].starts_with("PutEnd { verified: true"), "{evs:?}");
}

#[test]
fn the_user_name_bound_counts_unescaped_bytes_and_past_it_is_malformed() {
    let first = |user: &str| {
        let text = format!("n,,n={user},r=abcdefgh");
        msg(&Message::ClientFirst(
            bounded(&text, Error::Malformed).unwrap(),
        ))
    };
    // 64 commas: 192 bytes as sent, 64 once unescaped.
    let mut s = logged_out_server();
    let evs = feed_server(&mut s, &first(&"=2C".repeat(64)));
    assert_eq!(
        evs,
        [format!("LoginRequest {{ user: {:?} }}", ",".repeat(64))]
    );
    // 65 bytes: Malformed, and the connection closes; not a failed login.
    let mut s = logged_out_server();
    let evs = feed_server(&mut s, &first(&"a".repeat(65)));
    assert_eq!(evs, ["Closed(Malformed)"]);
    assert_eq!(drain_server(&mut s), error(Error::Malformed));
    // The client does not send such a name.
    let mut c = Client::new(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.handle_input(T0, &hello(1024, [0; 4])).unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Connected(_))));
    assert_eq!(
        c.login(&"a".repeat(65), PASSWORD, &[1; 18]),
        Err(Error::BadUsage)
    );
}

fn logged_out_server() -> Server<Vec<u8>> {
    let mut s = server(config());
    feed_server(&mut s, &hello(1024, [0; 4]));
    drain_server(&mut s);
    s
}

#[test]
fn a_get_cancelled_by_the_client_ends_with_the_zero_trailer_and_no_done() {
    let mut s = logged_in_server();
    feed_server(&mut s, &request(Request::Get { path: path("f") }));
    s.offer(100).unwrap();
    let evs = feed_server(
        &mut s,
        &msg(&Message::Accept {
            offset: 0,
            name: None,
        }),
    );
    assert_eq!(evs, ["SendBody { offset: 0 }"]);
    assert_eq!(s.send_body(&[7; 10]).unwrap(), 10);
    drain_server(&mut s);
    let evs = feed_server(&mut s, &error(Error::Cancelled));
    assert_eq!(evs, ["Cancelled(Cancelled)"]);
    assert_eq!(drain_server(&mut s), zero_trailer(Algorithm::Md5));
    // Both sides are idle: nothing more is owed for that get.
    let echo = Message::Echo {
        text: bounded("hi", Error::TooLarge).unwrap(),
        upper: false,
    };
    feed_server(&mut s, &msg(&echo));
    let reply = Message::EchoReply(bounded("hi", Error::TooLarge).unwrap());
    assert_eq!(drain_server(&mut s), msg(&reply));

    // The client's side: the zero trailer is taken without a check and
    // answered with nothing.
    let mut c = logged_in_client();
    c.get("f").unwrap();
    drain_client(&mut c);
    c.handle_input(T0, &msg(&Message::Offer { size: 100 }))
        .unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Offer { size: 100 }));
    c.accept(0).unwrap();
    c.handle_input(T0, &data(&[7; 10])).unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Data(&[7; 10])));
    c.cancel(Error::Cancelled).unwrap();
    let mut sent = msg(&Message::Accept {
        offset: 0,
        name: None,
    });
    sent.extend(error(Error::Cancelled));
    assert_eq!(drain_client(&mut c), sent);
    let mut late = data(&[7; 10]);
    late.extend(zero_trailer(Algorithm::Md5));
    c.handle_input(T0, &late).unwrap();
    assert_eq!(c.poll_event(), None);
    assert!(c.is_idle());
    assert_eq!(drain_client(&mut c), b"", "no Done after a cancelled get");
}

#[test]
fn a_put_cancelled_by_the_server_ends_with_the_clients_zero_trailer_and_no_done() {
    let mut c = logged_in_client();
    c.put("x", 100, Overwrite::Fail, false).unwrap();
    drain_client(&mut c);
    c.handle_input(
        T0,
        &msg(&Message::Accept {
            offset: 0,
            name: None,
        }),
    )
    .unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Accepted { .. })));
    assert_eq!(c.send_body(&[1; 10]).unwrap(), 10);
    assert_eq!(drain_client(&mut c), data(&[1; 10]));
    c.handle_input(T0, &error(Error::NoSpace)).unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Failed(Error::NoSpace)));
    assert_eq!(drain_client(&mut c), zero_trailer(Algorithm::Md5));
    assert!(c.is_idle());

    // The server takes it and owes nothing more.
    let mut s = logged_in_server();
    let put = Request::Put {
        path: path("x"),
        size: 100,
        overwrite: Overwrite::Fail,
        resume: false,
    };
    feed_server(&mut s, &request(put));
    s.accept_put(0, None).unwrap();
    feed_server(&mut s, &data(&[1; 10]));
    s.cancel(Error::NoSpace).unwrap();
    drain_server(&mut s);
    let evs = feed_server(&mut s, &zero_trailer(Algorithm::Md5));
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(drain_server(&mut s), b"", "no Done after a cancelled put");
}

#[test]
fn a_get_accept_past_the_size_is_bad_offset_and_ends_the_get() {
    let mut s = logged_in_server();
    feed_server(&mut s, &request(Request::Get { path: path("f") }));
    s.offer(100).unwrap();
    drain_server(&mut s);
    let evs = feed_server(
        &mut s,
        &msg(&Message::Accept {
            offset: 101,
            name: None,
        }),
    );
    // The get ends for the store too (it gives its file back).
    assert_eq!(evs, ["Declined { index: 0, error: BadOffset }"]);
    assert_eq!(drain_server(&mut s), error(Error::BadOffset));
    let evs = feed_server(&mut s, &request(Request::Pwd));
    assert_eq!(evs, ["Request(Pwd)"]);
}

/// A version-3 server of window `W` with an anonymous session logged in
/// by a client of window `window` (chunk 1024, MD5), its output drained.
fn logged_in_v3<const W: usize>(window: u16) -> Server<Vec<u8>, W> {
    let mut s = Server::with_window(T0, config(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut input = Hello {
        version: VERSION,
        flags: frame::FLAG_V3 | ((window - 1) << 4),
        max_frame: 4091,
        chunk: 1024,
        digests: Digests::from_bytes([1, 0, 0, 0]),
    }
    .encode()
    .to_vec();
    input.extend(msg(&Message::Anonymous));
    feed_server(&mut s, &input);
    drain_server(&mut s);
    s
}

fn accept(offset: u64) -> Vec<u8> {
    msg(&Message::Accept { offset, name: None })
}

/// One rule at every window (docs/PROTOCOL.md#get-server-sends): an
/// offset past the size ends that get with `Error(BadOffset)` where its
/// body would go, the version-3 client acknowledges it as any get the
/// server ended, and the session goes on. Window 1 first, then three
/// gets in flight where the bad accept is read while the first body
/// streams: its error waits for that body's trailer and the third get is
/// still served.
#[test]
fn a_bad_get_offset_ends_only_that_get_at_every_window() {
    let mut s = logged_in_v3::<1>(1);
    feed_server(&mut s, &request(Request::Get { path: path("a") }));
    s.offer(5).unwrap();
    drain_server(&mut s);
    let evs = feed_server(&mut s, &accept(6));
    assert_eq!(evs, ["Declined { index: 0, error: BadOffset }"]);
    assert_eq!(drain_server(&mut s), error(Error::BadOffset));
    // The client's acknowledgement is taken, not read as a cancel.
    assert!(feed_server(&mut s, &error(Error::Cancelled)).is_empty());
    let evs = feed_server(&mut s, &request(Request::Pwd));
    assert_eq!(evs, ["Request(Pwd)"]);

    let mut s = logged_in_v3::<4>(4);
    for (name, size) in [("x", 10), ("a", 5), ("b", 3)] {
        let evs = feed_server(&mut s, &request(Request::Get { path: path(name) }));
        assert_eq!(evs.len(), 1, "{evs:?}");
        s.offer(size).unwrap();
    }
    drain_server(&mut s);
    let evs = feed_server(&mut s, &accept(0));
    assert_eq!(evs, ["SendBody { offset: 0 }"]);
    assert_eq!(s.send_body(b"xxxx").unwrap(), 4);
    let mut input = accept(6);
    input.extend(accept(0));
    let evs = feed_server(&mut s, &input);
    assert!(evs.is_empty(), "nothing ends inside x's body: {evs:?}");
    assert_eq!(drain_server(&mut s), data(b"xxxx"));
    assert_eq!(s.send_body(b"xxxxxx").unwrap(), 6);
    let evs = feed_server(&mut s, &[]);
    assert_eq!(
        evs,
        [
            "Declined { index: 1, error: BadOffset }",
            "SendBody { offset: 0 }"
        ]
    );
    assert_eq!(s.send_body(b"bbb").unwrap(), 3);
    let out = drain_server(&mut s);
    let trailer_x = msg(&Message::Trailer {
        sum: Sum::new(Algorithm::Md5, &digest::md5(b"xxxxxxxxxx")).unwrap(),
    });
    let mut want = data(b"xxxxxx");
    want.extend(&trailer_x);
    want.extend(error(Error::BadOffset));
    want.extend(data(b"bbb"));
    assert!(
        out.starts_with(&want),
        "x's body, its trailer, then a's error, then b's body"
    );
    // x's Done, the acknowledgement of a's end, b's Done.
    let mut input = msg(&Message::Done { verified: true });
    input.extend(error(Error::Cancelled));
    input.extend(msg(&Message::Done { verified: true }));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(
        evs.iter().all(|e| e.starts_with("GetEnd { verified: true")),
        "{evs:?}"
    );
    let evs = feed_server(&mut s, &request(Request::Pwd));
    assert_eq!(evs, ["Request(Pwd)"]);
}

#[test]
fn a_request_while_the_last_is_served_is_unexpected_and_closes() {
    let mut s = logged_in_server();
    feed_server(&mut s, &request(Request::Stat { path: path("a") }));
    let evs = feed_server(&mut s, &request(Request::Pwd));
    assert_eq!(evs, ["Closed(UnexpectedFrame)"]);
    assert_eq!(drain_server(&mut s), error(Error::UnexpectedFrame));
}

fn logged_in_client() -> Client<Vec<u8>> {
    let mut c = Client::new(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.handle_input(T0, &hello(1024, [1, 0, 0, 0])).unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Connected(_))));
    c.login_anonymous().unwrap();
    c.handle_input(T0, &msg(&Message::LoginOk)).unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::LoggedIn));
    drain_client(&mut c);
    c
}

#[test]
fn the_zero_trailer_is_a_full_length_digest_of_zeros() {
    for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Blake3] {
        let sum = Sum::zero(alg);
        assert_eq!(msg(&Message::Trailer { sum }), zero_trailer(alg));
    }
}

/// Local-only codes are never sent, and mean nothing from a peer: one
/// received mid-transfer closes the connection as `Malformed`; a refusal
/// the driver gives with one goes out as `Io`.
#[test]
fn local_only_error_codes_are_not_wire_errors() {
    for local in [Error::BadUsage, Error::BufferFull, Error::Closed] {
        let mut s = logged_in_server();
        let put = Request::Put {
            path: bounded("f", Error::InvalidPath).unwrap(),
            size: 10,
            overwrite: Overwrite::Fail,
            resume: false,
        };
        feed_server(&mut s, &request(put));
        s.accept_put(0, None).unwrap();
        drain_server(&mut s);
        let evs = feed_server(&mut s, &error(local));
        assert_eq!(evs, ["Closed(Malformed)"], "{local:?}");
        assert!(s.is_closed());

        let mut s = logged_in_server();
        feed_server(&mut s, &request(Request::Pwd));
        s.refuse(local).unwrap();
        assert_eq!(drain_server(&mut s), error(Error::Io), "{local:?}");
    }
}

// ---- version 3: what an implementer had to guess (issue #28, item 4) ----

/// A version-3 server hello stating `window`, anonymous logins allowed.
fn v3_hello(window: u16) -> Vec<u8> {
    Hello {
        version: VERSION,
        flags: frame::FLAG_V3 | frame::FLAG_ANONYMOUS | ((window - 1) << frame::WINDOW_SHIFT),
        max_frame: 4091,
        chunk: 1024,
        digests: Digests::from_bytes([1, 0, 0, 0]),
    }
    .encode()
    .to_vec()
}

/// Every client event for `input`, as `Debug` strings.
fn feed_client<const W: usize>(c: &mut Client<Vec<u8>, W>, input: &[u8]) -> Vec<String> {
    c.handle_input(T0, input).unwrap();
    let mut evs = Vec::new();
    while let Some(ev) = c.poll_event() {
        evs.push(format!("{ev:?}"));
    }
    evs
}

fn drain_client_w<const W: usize>(c: &mut Client<Vec<u8>, W>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(n) = c.poll_transmit(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// A client of window `W` logged in anonymously to a version-3 server
/// of window `window`, its output drained.
fn logged_in_v3_client<const W: usize>(window: u16) -> Client<Vec<u8>, W> {
    let mut c =
        Client::<_, W>::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.login_anonymous().unwrap();
    let mut input = v3_hello(window);
    input.extend(msg(&Message::LoginOk));
    let evs = feed_client(&mut c, &input);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(c.is_logged_in());
    drain_client_w(&mut c);
    c
}

fn stat_entry(name: &str) -> ferry_core::Entry {
    ferry_core::Entry {
        name: bounded(name, Error::InvalidPath).unwrap(),
        kind: ferry_core::Kind::File,
        size: 3,
        modified: 0,
        mode: 0o644,
    }
}

fn put_req(name: &str, size: u64, resume: bool) -> Vec<u8> {
    request(Request::Put {
        path: path(name),
        size,
        overwrite: Overwrite::Fail,
        resume,
    })
}

fn md5_trailer(body: &[u8]) -> Vec<u8> {
    msg(&Message::Trailer {
        sum: digest::digest(Algorithm::Md5, body).unwrap(),
    })
}

/// docs/PROTOCOL.md#pipelining: at a window of 1, version 3 included, a
/// put is in flight until its `Done`: the next put does not follow its
/// trailer. (A client built for a larger window used to count the put
/// as ended at its trailer whatever window the server stated.) Above 1
/// it does.
#[test]
fn at_window_1_the_next_put_waits_for_done_even_in_version_3() {
    for (window, after_trailer) in [(1, false), (4, true)] {
        let mut c = logged_in_v3_client::<4>(window);
        c.put("a", 3, Overwrite::Fail, false).unwrap();
        let evs = feed_client(&mut c, &accept(0));
        assert!(evs[0].starts_with("Accepted"), "{evs:?}");
        assert_eq!(c.send_body(b"one").unwrap(), 3);
        let mut want = data(b"one");
        want.extend(md5_trailer(b"one"));
        assert!(drain_client_w(&mut c).ends_with(&want), "trailer out");
        assert_eq!(c.can_pipeline(false), after_trailer, "window {window}");
        if !after_trailer {
            assert_eq!(c.put("b", 3, Overwrite::Fail, false), Err(Error::BadUsage));
        }
        let evs = feed_client(&mut c, &msg(&Message::Done { verified: true }));
        assert!(
            evs[0].starts_with("TransferEnd { verified: true"),
            "{evs:?}"
        );
        assert!(c.can_pipeline(false));
    }
    // The server of a larger window, at a negotiated window of 1, closes
    // on a put read before it answered the last one's trailer.
    let mut s = logged_in_v3::<4>(1);
    feed_server(&mut s, &put_req("a", 3, false));
    s.accept_put(0, None).unwrap();
    let mut input = data(b"one");
    input.extend(md5_trailer(b"one"));
    input.extend(put_req("b", 3, false));
    let evs = feed_server(&mut s, &input);
    assert!(evs[1].starts_with("PutEnd { verified: true"), "{evs:?}");
    assert_eq!(evs[2], "Closed(UnexpectedFrame)");
}

/// docs/PROTOCOL.md#pipelining: with a window above 1 any request may
/// follow others, and the server answers each in its turn. A listing
/// followed by more requests used to close the connection
/// (`UnexpectedFrame`) while a stat followed by more did not: the server
/// now reads nothing more until it has answered the request before.
#[test]
fn any_request_may_be_pipelined_and_answers_come_in_request_order() {
    let mut s = logged_in_v3::<4>(4);
    let mut input = request(Request::List { path: path("") });
    input.extend(request(Request::Stat { path: path("a") }));
    input.extend(request(Request::List { path: path("d") }));
    input.extend(request(Request::Pwd));
    input.extend(msg(&Message::Echo {
        text: bounded("hi", Error::TooLarge).unwrap(),
        upper: true,
    }));
    input.extend(request(Request::Mkdir { path: path("m") }));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs, [r#"Request(List { path: "" })"#], "the rest wait");
    s.list_entry(&stat_entry("a")).unwrap();
    s.list_end().unwrap();
    assert_eq!(feed_server(&mut s, &[]), [r#"Request(Stat { path: "a" })"#]);
    s.reply_entry(&stat_entry("a")).unwrap();
    assert_eq!(feed_server(&mut s, &[]), [r#"Request(List { path: "d" })"#]);
    s.list_end().unwrap();
    assert_eq!(feed_server(&mut s, &[]), ["Request(Pwd)"]);
    s.reply_cwd("/").unwrap();
    assert_eq!(
        feed_server(&mut s, &[]),
        [r#"Request(Mkdir { path: "m" })"#]
    );
    s.reply_ok().unwrap();
    assert_eq!(
        messages(&drain_server(&mut s)),
        [
            Message::Entry(stat_entry("a")),
            Message::ListEnd { count: 1 },
            Message::Entry(stat_entry("a")),
            Message::ListEnd { count: 0 },
            Message::Cwd(path("/")),
            Message::EchoReply(bounded("HI", Error::TooLarge).unwrap()),
            Message::Ok,
        ]
    );

    // Among gets: get a, stat b → a's offer, b's entry, then a's body
    // (its Accept came after the stat).
    let mut s = logged_in_v3::<4>(4);
    let mut input = request(Request::Get { path: path("a") });
    input.extend(request(Request::Stat { path: path("b") }));
    assert_eq!(feed_server(&mut s, &input).len(), 1);
    s.offer(3).unwrap();
    assert_eq!(feed_server(&mut s, &[]).len(), 1);
    s.reply_entry(&stat_entry("b")).unwrap();
    assert_eq!(feed_server(&mut s, &accept(0)), ["SendBody { offset: 0 }"]);
    assert_eq!(s.send_body(b"abc").unwrap(), 3);
    let mut want = msg(&Message::Offer { size: 3 });
    want.extend(msg(&Message::Entry(stat_entry("b"))));
    want.extend(data(b"abc"));
    want.extend(md5_trailer(b"abc"));
    assert_eq!(drain_server(&mut s), want);

    // Among puts: put a, stat b, a's body → a's Accept, b's entry, a's
    // Done. (The put accepted but not begun used to make the stat close
    // the connection.)
    let mut s = logged_in_v3::<4>(4);
    let mut input = put_req("a", 3, false);
    input.extend(request(Request::Stat { path: path("b") }));
    assert_eq!(feed_server(&mut s, &input).len(), 1);
    s.accept_put(0, None).unwrap();
    assert_eq!(feed_server(&mut s, &[]).len(), 1);
    s.reply_entry(&stat_entry("b")).unwrap();
    let mut input = data(b"abc");
    input.extend(md5_trailer(b"abc"));
    let evs = feed_server(&mut s, &input);
    assert!(evs[1].starts_with("PutEnd { verified: true"), "{evs:?}");
    s.finish_put().unwrap();
    let mut want = accept(0);
    want.extend(msg(&Message::Entry(stat_entry("b"))));
    want.extend(msg(&Message::Done { verified: true }));
    assert_eq!(drain_server(&mut s), want);
}

/// docs/PROTOCOL.md#pipelining: a resumed put goes alone. The client
/// sends nothing behind it until it ends (it used to allow a put); the
/// server closes on a request behind a put it accepted past offset 0.
#[test]
fn nothing_follows_a_resumed_put() {
    let mut c = logged_in_v3_client::<4>(4);
    c.put("a", 10, Overwrite::Fail, true).unwrap();
    assert!(!c.can_pipeline(false) && !c.can_pipeline(true));
    assert_eq!(c.put("b", 3, Overwrite::Fail, false), Err(Error::BadUsage));
    assert_eq!(c.stat("b"), Err(Error::BadUsage));

    for behind in [put_req("b", 3, false), request(Request::Pwd)] {
        let mut s = logged_in_v3::<4>(4);
        feed_server(&mut s, &put_req("a", 10, true));
        s.accept_put(4, None).unwrap();
        s.feed_prefix(b"held").unwrap();
        let evs = feed_server(&mut s, &behind);
        assert_eq!(evs, ["Closed(UnexpectedFrame)"]);
    }
}

/// Three gets accepted, the first streaming: two `Error(Cancelled)` back
/// to back end the first (its body in progress) and then the second
/// (the oldest accepted get not yet ended), each with the zero trailer;
/// the third is served.
#[test]
fn each_client_error_cancels_the_oldest_accepted_get_not_yet_ended() {
    let mut s = logged_in_v3::<4>(4);
    for name in ["a", "b", "c"] {
        assert_eq!(
            feed_server(&mut s, &request(Request::Get { path: path(name) })).len(),
            1
        );
        s.offer(10).unwrap();
    }
    drain_server(&mut s);
    let mut input = accept(0);
    input.extend(accept(0));
    input.extend(accept(0));
    assert_eq!(feed_server(&mut s, &input), ["SendBody { offset: 0 }"]);
    assert_eq!(s.send_body(b"aaaa").unwrap(), 4);
    let mut input = error(Error::Cancelled);
    input.extend(error(Error::Cancelled));
    let evs = feed_server(&mut s, &input);
    assert_eq!(
        evs,
        [
            "Cancelled(Cancelled)",
            "SendBody { offset: 0 }",
            "Cancelled(Cancelled)",
            "SendBody { offset: 0 }"
        ],
        "a ends, b starts and ends, c starts"
    );
    assert_eq!(s.send_body(b"cccccccccc").unwrap(), 10);
    let mut want = data(b"aaaa");
    want.extend(zero_trailer(Algorithm::Md5));
    want.extend(zero_trailer(Algorithm::Md5));
    want.extend(data(b"cccccccccc"));
    want.extend(md5_trailer(b"cccccccccc"));
    assert_eq!(drain_server(&mut s), want);
    let evs = feed_server(&mut s, &msg(&Message::Done { verified: true }));
    assert!(evs[0].starts_with("GetEnd { verified: true"), "{evs:?}");

    // The client's side: `cancel` twice marks the two oldest accepted gets.
    let mut c = logged_in_v3_client::<4>(4);
    for name in ["a", "b", "c"] {
        c.get(name).unwrap();
    }
    let mut input = Vec::new();
    for _ in 0..3 {
        input.extend(msg(&Message::Offer { size: 10 }));
    }
    c.handle_input(T0, &input).unwrap();
    for _ in 0..3 {
        assert_eq!(c.poll_event(), Some(ClientEvent::Offer { size: 10 }));
        c.accept(0).unwrap();
    }
    c.cancel(Error::Cancelled).unwrap();
    c.cancel(Error::Cancelled).unwrap();
    let mut input = data(b"aaaa");
    input.extend(zero_trailer(Algorithm::Md5));
    input.extend(zero_trailer(Algorithm::Md5));
    input.extend(data(b"cccccccccc"));
    input.extend(md5_trailer(b"cccccccccc"));
    let evs = feed_client(&mut c, &input);
    assert_eq!(evs[0], format!("Data({:?})", b"cccccccccc"), "{evs:?}");
    assert!(
        evs[1].starts_with("TransferEnd { verified: true"),
        "{evs:?}"
    );
    assert!(c.is_idle());
}

/// docs/PROTOCOL.md#get-server-sends: a version-3 client refuses an
/// offer with `Refuse` only. An `Error` from it with no accepted get to
/// end used to refuse the oldest offer as in version 2, but with gets
/// accepted the same message cancels one instead: the server now closes
/// (`UnexpectedFrame`). Version 2 keeps its `Error` refusal.
#[test]
fn a_version_3_client_refuses_an_offer_with_refuse_only() {
    let mut c = logged_in_v3_client::<1>(1);
    c.get("a").unwrap();
    feed_client(&mut c, &msg(&Message::Offer { size: 3 }));
    c.refuse(Error::Exists).unwrap();
    let sent = drain_client_w(&mut c);
    assert_eq!(sent[sent.len() - 7..], [1, 0, 0, 0, 2, 0x14, 0x15]);

    for window in [1, 4] {
        let mut s = logged_in_v3::<4>(window);
        feed_server(&mut s, &request(Request::Get { path: path("a") }));
        s.offer(3).unwrap();
        drain_server(&mut s);
        let evs = feed_server(&mut s, &error(Error::Exists));
        assert_eq!(evs, ["Closed(UnexpectedFrame)"], "window {window}");
        let mut s = logged_in_v3::<4>(window);
        feed_server(&mut s, &request(Request::Get { path: path("a") }));
        s.offer(3).unwrap();
        let evs = feed_server(&mut s, &msg(&Message::Refuse { code: 21 }));
        assert_eq!(evs, ["Declined { index: 0, error: Exists }"]);
    }
    let mut s = logged_in_server();
    feed_server(&mut s, &request(Request::Get { path: path("a") }));
    s.offer(3).unwrap();
    let evs = feed_server(&mut s, &error(Error::Exists));
    assert_eq!(evs, ["Declined { index: 0, error: Exists }"]);
}

/// docs/PROTOCOL.md#login: before the server's hello arrives the client
/// does not know the window, so one request may follow the login; the
/// rest wait for the hello.
#[test]
fn before_the_servers_hello_one_request_may_follow_the_login() {
    let mut c =
        Client::<_, 4>::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.login_anonymous().unwrap();
    c.get("a").unwrap();
    assert!(!c.can_pipeline(true));
    assert_eq!(c.get("b"), Err(Error::BadUsage));
    assert_eq!(c.stat("b"), Err(Error::BadUsage));
    let mut input = v3_hello(4);
    input.extend(msg(&Message::LoginOk));
    feed_client(&mut c, &input);
    assert!(c.can_pipeline(true));
    c.get("b").unwrap();
}

/// docs/PROTOCOL.md#refused-connections: a version-3 client whose hello
/// the server read hears every refusal as `Retry` (seconds 0: unknown),
/// at connect and after `LoginOk` alike; it used to hear `Error(Busy)`
/// after a login unless the server knew the seconds. A version-2 client
/// hears `Error`.
#[test]
fn busy_after_login_ok_is_retry_for_version_3() {
    let retry = |code: u8, secs: &[u8]| {
        let mut v = vec![1, 0, 0, 0, 2 + secs.len() as u8, 0x15, code];
        v.extend(secs);
        v
    };
    let mut s = logged_in_v3::<1>(1);
    s.close_retry(Error::Busy, 0);
    assert_eq!(drain_server(&mut s), retry(0x3c, &[0]));
    let mut s = logged_in_v3::<1>(1);
    s.close_retry(Error::Penalised, 300);
    assert_eq!(drain_server(&mut s), retry(0x10, &[0xac, 0x02]));
    let mut s = logged_in_server();
    s.close_retry(Error::Busy, 5);
    assert_eq!(drain_server(&mut s), error(Error::Busy));
    // At connect, once the client's hello is read.
    let mut s =
        Server::new_refused_retry(T0, config(), vec![0; 4096], vec![0; 4096], Error::Busy, 0)
            .unwrap();
    let mut hello3 = hello(1024, [1, 0, 0, 0]);
    hello3[7] = 0x08 | 0x30;
    feed_server(&mut s, &hello3);
    assert_eq!(drain_server(&mut s)[HELLO_LEN..], retry(0x3c, &[0]));

    // The client: logged in, then closed; a request sent behind the
    // login gets no answer.
    let mut c =
        Client::<_, 4>::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.login_anonymous().unwrap();
    c.get("a").unwrap();
    let mut input = v3_hello(4);
    input.extend(msg(&Message::LoginOk));
    input.extend(retry(0x3c, &[0]));
    let evs = feed_client(&mut c, &input);
    assert_eq!(evs[1..], ["LoggedIn", "Closed(Busy)"]);
    assert_eq!(c.retry_after(), Some(0));
}

/// docs/PROTOCOL.md#messages: `Refuse.code` is a `u16`, `Retry.code` a
/// `u16` and `Retry.seconds` a `u32`, each a postcard varint.
#[test]
fn refuse_and_retry_fields_are_varints() {
    assert_eq!(
        msg(&Message::Refuse { code: 255 }),
        [1, 0, 0, 0, 3, 0x14, 0xff, 0x01]
    );
    assert_eq!(
        msg(&Message::Retry {
            code: 60,
            seconds: u32::MAX
        }),
        [1, 0, 0, 0, 7, 0x15, 0x3c, 0xff, 0xff, 0xff, 0xff, 0x0f]
    );
}

/// docs/PROTOCOL.md#pipelining: a get stops counting against the window
/// when the server refuses its request (`Error` in place of `Offer`),
/// when the client refuses its offer (`Refuse`), and at its end (`Done`,
/// a cancel, the server's `Error` ending its body).
#[test]
fn a_refusal_from_either_side_ends_a_gets_time_in_flight() {
    let mut c = logged_in_v3_client::<2>(2);
    c.get("a").unwrap();
    c.get("b").unwrap();
    assert!(!c.can_pipeline(true), "window full");
    let evs = feed_client(&mut c, &error(Error::NotFound));
    assert_eq!(evs, ["Failed(NotFound)"]);
    assert!(c.can_pipeline(true), "the server's refusal ended a");
    c.get("c").unwrap();
    assert!(!c.can_pipeline(true));
    let evs = feed_client(&mut c, &msg(&Message::Offer { size: 3 }));
    assert_eq!(evs, ["Offer { size: 3 }"]);
    c.refuse(Error::Exists).unwrap();
    assert!(c.can_pipeline(true), "the client's refusal ended b");

    // The server counts the same way: two more gets fit a window of 2.
    let mut s = logged_in_v3::<2>(2);
    let mut input = request(Request::Get { path: path("a") });
    input.extend(request(Request::Get { path: path("b") }));
    assert_eq!(feed_server(&mut s, &input).len(), 1);
    s.refuse(Error::NotFound).unwrap();
    assert_eq!(feed_server(&mut s, &[]).len(), 1);
    s.offer(3).unwrap();
    let mut input = request(Request::Get { path: path("c") });
    input.extend(msg(&Message::Refuse { code: 21 }));
    input.extend(request(Request::Get { path: path("d") }));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs.len(), 1, "{evs:?}");
    s.offer(3).unwrap();
    let evs = feed_server(&mut s, &[]);
    assert_eq!(evs[0], "Declined { index: 0, error: Exists }", "{evs:?}");
    assert_eq!(evs[1], r#"Request(Get { path: "d" })"#, "{evs:?}");
    s.offer(3).unwrap();
    assert!(!s.is_closed());
}

/// The server reads nothing more while it owes an answer, but a client
/// that went away is noticed at once, so a command it left running is
/// stopped (`Closed(Truncated)` while the exec streams).
#[test]
fn a_client_gone_while_its_command_runs_is_noticed_at_window_4() {
    let cfg = ServerConfig {
        allow_exec: true,
        ..config()
    };
    let mut s = Server::<_, 4>::with_window(T0, cfg, vec![0; 4096], vec![0; 4096]).unwrap();
    let mut hello3 = hello(1024, [1, 0, 0, 0]);
    hello3[7] = 0x08 | 0x30;
    hello3.extend(msg(&Message::Anonymous));
    feed_server(&mut s, &hello3);
    let exec = Request::Exec {
        command: bounded("sleep 9", Error::TooLarge).unwrap(),
    };
    let mut input = request(exec);
    input.extend(request(Request::Pwd));
    assert_eq!(feed_server(&mut s, &input).len(), 1);
    assert_eq!(s.poll_event(), None, "pwd waits for the command");
    s.handle_eof(T0);
    assert!(
        matches!(s.poll_event(), Some(ServerEvent::Closed(_))),
        "the client is gone"
    );
}

// ---- pre-agreed gets (docs/PROTOCOL.md#pre-agreed-gets) ----

fn get_agreed(p: &str, offset: u64, max: u64) -> Vec<u8> {
    msg(&Message::GetAgreed {
        path: path(p),
        offset,
        max,
    })
}

/// A server with a window above 1 lists `80` in its first free digest
/// slot; one of window 1 does not, and neither does one whose slots are
/// full. `80` is never chosen as a digest.
#[test]
fn a_pipelining_server_lists_80_in_a_free_digest_slot() {
    let slots = |s: &mut Server<Vec<u8>, 4>| drain_server(s)[16..20].to_vec();
    let mut md5 = config();
    md5.conn.digests = Digests::MD5_ONLY;
    let mut s: Server<Vec<u8>, 4> =
        Server::with_window(T0, md5, vec![0; 4096], vec![0; 4096]).unwrap();
    assert_eq!(slots(&mut s), [1, 0x80, 0, 0]);
    let mut one = server(md5);
    assert_eq!(drain_server(&mut one)[16..20], [1, 0, 0, 0]);
    let mut full = config();
    full.conn.digests = Digests::from_bytes([1, 1, 1, 1]);
    let mut s: Server<Vec<u8>, 4> =
        Server::with_window(T0, full, vec![0; 4096], vec![0; 4096]).unwrap();
    assert_eq!(slots(&mut s), [1, 1, 1, 1]);
    let mut c: Client<Vec<u8>, 4> =
        Client::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut input = Hello {
        version: VERSION,
        flags: frame::FLAG_V3 | (3 << 4),
        max_frame: 4091,
        chunk: 1024,
        digests: Digests::from_bytes([0x80, 0, 0, 0]),
    }
    .encode()
    .to_vec();
    input.extend(msg(&Message::LoginOk));
    c.handle_input(T0, &input).unwrap();
    let Some(ClientEvent::Connected(n)) = c.poll_event() else {
        panic!("no hello")
    };
    assert!(n.agreed());
    assert_eq!(n.digest, Algorithm::Md5);
}

/// Within the bounds the body follows the offer with no `Accept`; past
/// them (a size above `max`, or an offset above the size) the offer
/// waits for one, and the next `Accept` answers it rather than the get
/// accepted in advance ahead of it.
#[test]
fn an_agreed_offer_is_accepted_only_within_its_bounds() {
    let mut s = logged_in_v3::<4>(4);
    let evs = feed_server(&mut s, &get_agreed("a", 0, 10));
    assert_eq!(evs, [r#"Request(Get { path: "a" })"#]);
    s.offer(10).unwrap();
    let evs = feed_server(&mut s, &[]);
    assert_eq!(evs, ["SendBody { offset: 0 }"]);
    assert_eq!(s.send_body(b"0123456789").unwrap(), 10);
    let out = drain_server(&mut s);
    let mut want = msg(&Message::Offer { size: 10 });
    want.extend(data(b"0123456789"));
    assert!(out.starts_with(&want), "offer, then the body at once");
    assert!(feed_server(&mut s, &msg(&Message::Done { verified: true }))[0].starts_with("GetEnd"));

    // Past the bound, behind one within it whose body has not started.
    let mut input = get_agreed("big", 0, 10);
    input.extend(get_agreed("res", 20, u64::MAX));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs, [r#"Request(Get { path: "big" })"#]);
    s.offer(11).unwrap();
    let evs = feed_server(&mut s, &[]);
    assert_eq!(evs, [r#"Request(Get { path: "res" })"#]);
    s.offer(5).unwrap();
    assert!(feed_server(&mut s, &[]).is_empty(), "both offers wait");
    assert_eq!(
        messages(&drain_server(&mut s)),
        [Message::Offer { size: 11 }, Message::Offer { size: 5 }]
    );
    let evs = feed_server(&mut s, &accept(0));
    assert_eq!(evs, ["SendBody { offset: 0 }"], "the first waiting offer");
    let mut input = msg(&Message::Refuse { code: 21 });
    input.extend(error(Error::Cancelled));
    let evs = feed_server(&mut s, &input);
    assert_eq!(
        evs,
        [
            "Declined { index: 1, error: Exists }",
            "Cancelled(Cancelled)"
        ]
    );
}

/// Tag 22 is version 3 only: in a version-2 session it closes the
/// connection; before the login it is refused as any request.
#[test]
fn get_agreed_in_a_version_2_session_is_unexpected() {
    let mut s = logged_in_server();
    let evs = feed_server(&mut s, &get_agreed("a", 0, 10));
    assert_eq!(evs, ["Closed(UnexpectedFrame)"]);
    let mut s: Server<Vec<u8>, 4> =
        Server::with_window(T0, config(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut input = Hello {
        version: VERSION,
        flags: frame::FLAG_V3 | (3 << 4),
        max_frame: 4091,
        chunk: 1024,
        digests: Digests::from_bytes([1, 0, 0, 0]),
    }
    .encode()
    .to_vec();
    input.extend(get_agreed("a", 0, 10));
    assert!(feed_server(&mut s, &input)[0].starts_with("Connected"));
    assert_eq!(
        messages(&drain_server(&mut s)),
        [Message::Error {
            code: Error::NotLoggedIn.code()
        }]
    );
}

// ---- pre-agreed puts (docs/PROTOCOL.md#pre-agreed-puts) ----

fn put_agreed(p: &str, body: &[u8]) -> Vec<u8> {
    let mut v = msg(&Message::PutAgreed {
        path: path(p),
        size: body.len() as u64,
        overwrite: Overwrite::Fail,
    });
    if !body.is_empty() {
        v.extend(data(body));
    }
    v.extend(md5_trailer(body));
    v
}

/// Taken, a pre-agreed put is a put to the store (never resumed): `Accept`
/// goes out at once, the body that came with it is stored, then `Done`.
/// Refused, by the driver or by the server's configuration, nothing goes
/// out until its body and trailer have been read: then one `Error`, and
/// the request behind it is served.
#[test]
fn a_pre_agreed_put_is_answered_accept_and_done_or_one_error_after_its_body() {
    let mut s = logged_in_v3::<4>(4);
    let evs = feed_server(&mut s, &put_agreed("a", b"abc"));
    assert_eq!(
        evs,
        [r#"Request(Put { path: "a", size: 3, overwrite: Fail, resume: false })"#]
    );
    assert_eq!(s.accept_put(1, None), Err(Error::BadOffset), "sent whole");
    s.accept_put(0, None).unwrap();
    let evs = feed_server(&mut s, &[]);
    assert_eq!(evs[0], r#"Data([97, 98, 99])"#);
    assert!(evs[1].starts_with("PutEnd { verified: true"), "{evs:?}");
    s.finish_put().unwrap();
    assert_eq!(
        messages(&drain_server(&mut s)),
        [
            Message::Accept {
                offset: 0,
                name: None
            },
            Message::Done { verified: true }
        ]
    );

    // Refused by the driver: silent until the trailer, split anywhere.
    let input = put_agreed("b", &[7; 100]);
    let (head, rest) = input.split_at(
        msg(&Message::PutAgreed {
            path: path("b"),
            size: 100,
            overwrite: Overwrite::Fail,
        })
        .len(),
    );
    assert_eq!(feed_server(&mut s, head).len(), 1);
    s.refuse(Error::Exists).unwrap();
    for piece in rest.chunks(7) {
        assert!(feed_server(&mut s, piece).is_empty());
        if piece.as_ptr_range().end != rest.as_ptr_range().end {
            assert!(
                drain_server(&mut s).is_empty(),
                "nothing before the trailer"
            );
        }
    }
    assert_eq!(
        messages(&drain_server(&mut s)),
        [Message::Error { code: 21 }]
    );
    let evs = feed_server(&mut s, &request(Request::Pwd));
    assert_eq!(evs, ["Request(Pwd)"]);
    s.reply_cwd("/").unwrap();
    drain_server(&mut s);

    // Refused by the configuration: no event at all.
    let mut ro = Server::<_, 4>::with_window(
        T0,
        ServerConfig {
            read_only: true,
            ..config()
        },
        vec![0; 4096],
        vec![0; 4096],
    )
    .unwrap();
    let mut input = v3_hello(4);
    input.extend(msg(&Message::Anonymous));
    feed_server(&mut ro, &input);
    drain_server(&mut ro);
    assert!(feed_server(&mut ro, &put_agreed("c", b"xyz")).is_empty());
    assert_eq!(
        messages(&drain_server(&mut ro)),
        [Message::Error {
            code: Error::ReadOnly.code()
        }]
    );
}

/// The client ends a refused pre-agreed put's body early with its cancel:
/// the refusal answers it, once. A body longer than announced is
/// `Malformed`, a trailer before the whole body `Truncated`; both close.
#[test]
fn a_refused_pre_agreed_put_ends_at_its_size_or_the_clients_cancel() {
    let mut s = logged_in_v3::<4>(4);
    let req = msg(&Message::PutAgreed {
        path: path("b"),
        size: 10,
        overwrite: Overwrite::Fail,
    });
    assert_eq!(feed_server(&mut s, &req).len(), 1);
    s.refuse(Error::NoSpace).unwrap();
    let mut input = data(b"12345");
    input.extend(error(Error::Io));
    assert!(feed_server(&mut s, &input).is_empty());
    assert_eq!(
        messages(&drain_server(&mut s)),
        [Message::Error {
            code: Error::NoSpace.code()
        }]
    );

    for (body, end, want) in [
        (&b"12345678901"[..], md5_trailer(b""), "Closed(Malformed)"),
        (&b"12345"[..], md5_trailer(b"12345"), "Closed(Truncated)"),
    ] {
        let mut s = logged_in_v3::<4>(4);
        assert_eq!(feed_server(&mut s, &req).len(), 1);
        s.refuse(Error::Exists).unwrap();
        let mut input = data(body);
        input.extend(end);
        assert_eq!(feed_server(&mut s, &input), [want]);
    }
}

/// Tag 23 only where its body can be read as it comes: a version-2
/// session, a window of 1, a client not logged in (its body would be read
/// as requests), and a put still waiting for its body ahead of it each
/// close with `UnexpectedFrame`.
#[test]
fn put_agreed_is_unexpected_where_its_body_cannot_follow() {
    let mut s = logged_in_server();
    assert_eq!(
        feed_server(&mut s, &put_agreed("a", b"x")),
        ["Closed(UnexpectedFrame)"]
    );
    let mut one = logged_in_v3::<4>(1);
    assert_eq!(
        feed_server(&mut one, &put_agreed("a", b"x")),
        ["Closed(UnexpectedFrame)"]
    );
    let mut s: Server<Vec<u8>, 4> =
        Server::with_window(T0, config(), vec![0; 4096], vec![0; 4096]).unwrap();
    let mut input = v3_hello(4);
    input.extend(put_agreed("a", b"x"));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs.last().unwrap(), "Closed(UnexpectedFrame)", "{evs:?}");
    let mut s = logged_in_v3::<4>(4);
    let mut input = put_req("a", 3, false);
    input.extend(put_req("b", 3, false));
    let evs = feed_server(&mut s, &input);
    assert_eq!(evs.len(), 1);
    s.accept_put(0, None).unwrap();
    let evs = feed_server(&mut s, &[]);
    assert_eq!(evs.len(), 1, "{evs:?}");
    s.accept_put(0, None).unwrap();
    assert_eq!(
        feed_server(&mut s, &put_agreed("c", b"x")),
        ["Closed(UnexpectedFrame)"]
    );
}

// ---- every request behind the login (docs/PROTOCOL.md#login) ----

/// Any request may follow the login in the same flight, before the
/// server's hello: a listing goes out with the hello and `Anonymous`
/// and is answered after `LoginOk`. Refused, the login's error comes
/// first, and the request behind it fails with that same error (the
/// server's `NotLoggedIn` is reported as the login's refusal); a new
/// login may then be sent.
#[test]
fn any_request_may_follow_the_login_and_a_refused_one_fails_with_the_logins_error() {
    for allow in [true, false] {
        let mut cfg = config();
        cfg.allow_anonymous = allow;
        let mut s = server(cfg);
        let mut c = Client::new(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
        c.login_anonymous().unwrap();
        assert!(c.login_sent());
        c.list("").unwrap();
        // One request until the server's hello says the window.
        assert_eq!(c.stat("x"), Err(Error::BadUsage));
        assert_eq!(c.login_anonymous(), Err(Error::BadUsage));
        let up = drain_client(&mut c);
        assert_eq!(
            messages(&up[HELLO_LEN..])
                .iter()
                .map(Message::name)
                .collect::<Vec<_>>(),
            ["anonymous", "request"]
        );
        feed_server(&mut s, &up);
        let mut evs = Vec::new();
        if allow {
            // The store answers the listing: empty.
            s.list_end().unwrap();
        }
        c.handle_input(T0, &drain_server(&mut s)).unwrap();
        while let Some(ev) = c.poll_event() {
            evs.push(format!("{ev:?}"));
        }
        if allow {
            assert_eq!(evs[1..], ["LoggedIn", "ListEnd"], "{evs:?}");
            assert!(c.is_idle());
        } else {
            assert_eq!(
                evs[1..],
                [
                    "LoginFailed(AnonymousNotAllowed)",
                    "Failed(AnonymousNotAllowed)"
                ],
                "{evs:?}"
            );
            assert!(!c.is_logged_in());
            c.login_anonymous().unwrap();
        }
    }
}

/// Requests other than get and put may be pipelined too, within the
/// window, when no get or put is in flight (`docs/PROTOCOL.md#pipelining`):
/// each answer follows the one before. A version-2 session, or a window
/// of 1, sends one at a time.
#[test]
fn listings_are_pipelined_within_the_window() {
    for (flags, pipelined) in [(frame::FLAG_V3 | (2 << 4), true), (0, false)] {
        let mut c: Client<Vec<u8>, 8> =
            Client::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
        let mut input = Hello {
            version: VERSION,
            flags: flags | frame::FLAG_ANONYMOUS,
            max_frame: 4091,
            chunk: 1024,
            digests: Digests::MD5_ONLY,
        }
        .encode()
        .to_vec();
        input.extend(msg(&Message::LoginOk));
        c.login_anonymous().unwrap();
        c.handle_input(T0, &input).unwrap();
        while c.poll_event().is_some() {}
        assert!(c.is_idle());
        c.list("a").unwrap();
        assert_eq!(c.can_queue(), pipelined);
        if !pipelined {
            assert_eq!(c.stat("b"), Err(Error::BadUsage));
            continue;
        }
        c.stat("b").unwrap();
        c.list("c").unwrap();
        // A window of 3: the fourth waits, and so does a get.
        assert!(!c.can_queue() && !c.can_pipeline(true));
        assert_eq!(c.pwd(), Err(Error::BadUsage));
        let mut buf = [0u8; 4096];
        let mut up = Vec::new();
        while let Some(n) = c.poll_transmit(&mut buf) {
            up.extend_from_slice(&buf[..n]);
        }
        let names: Vec<_> = messages(&up[HELLO_LEN..])
            .iter()
            .map(Message::name)
            .collect();
        assert_eq!(names, ["anonymous", "request", "request", "request"]);
        let entry = |n: &str| {
            Message::Entry(ferry_core::message::Entry {
                name: bounded(n, Error::InvalidPath).unwrap(),
                kind: ferry_core::Kind::File,
                size: 1,
                modified: 0,
                mode: 0,
            })
        };
        let mut answers = msg(&entry("x"));
        answers.extend(msg(&Message::ListEnd { count: 1 }));
        answers.extend(error(Error::NotFound));
        answers.extend(msg(&entry("y")));
        answers.extend(msg(&Message::ListEnd { count: 1 }));
        c.handle_input(T0, &answers).unwrap();
        let mut evs = Vec::new();
        while let Some(ev) = c.poll_event() {
            evs.push(format!("{ev:?}"));
        }
        assert_eq!(evs.len(), 5, "{evs:?}");
        assert!(evs[0].starts_with("Entry") && evs[3].starts_with("Entry"));
        assert_eq!(evs[1], "ListEnd");
        assert_eq!(evs[2], "Failed(NotFound)");
        assert_eq!(evs[4], "ListEnd");
        assert!(c.is_idle());
    }
}

/// A resumed pre-agreed get, client and server back to back: no
/// `Accept` goes out, the client answers the offer with the agreed
/// offset (any other is refused locally), hashes its prefix, and the
/// rest of the body checks against the whole file's trailer. Refused
/// instead, the body is cancelled at once (it goes alone) and the
/// session goes on.
#[test]
fn a_resumed_pre_agreed_get_sends_only_the_rest() {
    let data = b"0123456789";
    for refuse in [false, true] {
        let mut c: Client<Vec<u8>, 4> =
            Client::with_window(T0, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
        let mut s: Server<Vec<u8>, 4> =
            Server::with_window(T0, config(), vec![0; 4096], vec![0; 4096]).unwrap();
        let mut up = Vec::new();
        let mut shuttle = |c: &mut Client<Vec<u8>, 4>, s: &mut Server<Vec<u8>, 4>| {
            let mut buf = [0u8; 4096];
            while let Some(n) = c.poll_transmit(&mut buf) {
                up.extend_from_slice(&buf[..n]);
                s.handle_input(T0, &buf[..n]).unwrap();
            }
            let mut evs = Vec::new();
            while let Some(ev) = s.poll_event() {
                let e = format!("{ev:?}");
                match ev {
                    ServerEvent::Request(Request::Get { .. }) => s.offer(10).unwrap(),
                    ServerEvent::SendBody { offset } => {
                        assert_eq!(offset, 4);
                        s.feed_prefix(&data[..4]).unwrap();
                        assert_eq!(s.send_body(&data[4..]).unwrap(), 6);
                    }
                    _ => {}
                }
                evs.push(e);
            }
            while let Some(n) = s.poll_transmit(&mut buf) {
                c.handle_input(T0, &buf[..n]).unwrap();
            }
            evs
        };
        c.login_anonymous().unwrap();
        shuttle(&mut c, &mut s);
        while c.poll_event().is_some() {}
        c.get_agreed("f", 4, u64::MAX).unwrap();
        // Nothing goes behind a resumed get.
        assert!(!c.can_pipeline(true));
        shuttle(&mut c, &mut s);
        assert_eq!(c.poll_event(), Some(ClientEvent::Offer { size: 10 }));
        assert_eq!(c.accept(0), Err(Error::BadUsage));
        if refuse {
            c.refuse(Error::Exists).unwrap();
        } else {
            c.accept(4).unwrap();
            c.feed_prefix(&data[..4]).unwrap();
        }
        let mut evs = Vec::new();
        while let Some(ev) = c.poll_event() {
            evs.push(format!("{ev:?}"));
        }
        let server = shuttle(&mut c, &mut s);
        if refuse {
            assert!(evs.is_empty(), "the body is dropped: {evs:?}");
            assert_eq!(server, ["Cancelled(Exists)"]);
        } else {
            assert_eq!(evs[0], r#"Data([52, 53, 54, 55, 56, 57])"#);
            assert!(
                evs[1].starts_with("TransferEnd { verified: true"),
                "{evs:?}"
            );
            assert!(
                server[0].starts_with("GetEnd { verified: true"),
                "{server:?}"
            );
        }
        assert!(c.is_idle());
        let names: Vec<_> = messages(&up[HELLO_LEN..])
            .iter()
            .map(Message::name)
            .collect();
        assert!(!names.contains(&"accept"), "{names:?}");
    }
}
