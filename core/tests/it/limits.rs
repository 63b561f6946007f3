//! Every peer-supplied number is bounded: each bound accepted exactly, and
//! refused one past it (docs/SECURITY.md#limits-on-peer-supplied-numbers).

use ferry_core::frame::{self, FrameKind, Hello, HEADER_LEN, VERSION};
use ferry_core::message::{Message, Request, MAX_PATH, MAX_TEXT, MAX_USER};
use ferry_core::{Client, ClientEvent, Config, Error, Instant, Server, ServerConfig, ServerEvent};

/// A raw `Msg` frame whose payload is postcard for `Request::Get` with a
/// path of `len` bytes (built by hand, so lengths past the bound can be
/// sent).
fn get_with_path_len(len: usize) -> Vec<u8> {
    let mut payload = vec![8u8, 0]; // Message::Request, Request::Get
    let mut n = len;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        payload.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    payload.extend(std::iter::repeat_n(b'a', len));
    let mut f = vec![1u8];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f
}

fn logged_in_server() -> Server<Vec<u8>> {
    let now = Instant::ZERO;
    let cfg = ServerConfig {
        allow_anonymous: true,
        ..ServerConfig::new([2; 32])
    };
    let mut s = Server::new(now, cfg, vec![0; 4096], vec![0; 4096]).unwrap();
    let mut input = Hello {
        version: VERSION,
        flags: 0,
        max_frame: 4091,
        chunk: 1024,
        digests: ferry_core::digest::Digests::MD5_ONLY,
    }
    .encode()
    .to_vec();
    let mut buf = [0u8; 64];
    let n = frame::encode_message(&Message::Anonymous, &mut buf).unwrap();
    input.extend_from_slice(&buf[..n]);
    s.handle_input(now, &input).unwrap();
    while let Some(ev) = s.poll_event() {
        let _ = ev;
    }
    s
}

#[test]
fn path_length_at_and_past_the_bound() {
    let mut s = logged_in_server();
    s.handle_input(Instant::ZERO, &get_with_path_len(MAX_PATH))
        .unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::Request(Request::Get { .. }))
    ));
    s.refuse(Error::NotFound).unwrap();
    s.handle_input(Instant::ZERO, &get_with_path_len(MAX_PATH + 1))
        .unwrap();
    assert_eq!(s.poll_event(), Some(ServerEvent::Closed(Error::Malformed)));
}

#[test]
fn client_side_bounds_on_what_it_sends() {
    let now = Instant::ZERO;
    let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    let hello = Hello {
        version: VERSION,
        flags: 1,
        max_frame: 4096,
        chunk: 1024,
        digests: ferry_core::digest::Digests::MD5_ONLY,
    };
    c.handle_input(now, &hello.encode()).unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Connected(_))));
    assert_eq!(
        c.login(&"u".repeat(MAX_USER + 1), "pw", &[1; 16]),
        Err(Error::BadUsage)
    );
    assert_eq!(c.login("", "pw", &[1; 16]), Err(Error::BadUsage));
    c.login(&"u".repeat(MAX_USER), "pw", &[1; 16]).unwrap();
    // Text and path bounds are checked before anything is queued.
    let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    c.handle_input(now, &hello.encode()).unwrap();
    let _ = c.poll_event();
    assert_eq!(
        c.echo(&"x".repeat(MAX_TEXT + 1), false),
        Err(Error::TooLarge)
    );
    assert_eq!(c.get(&"p".repeat(MAX_PATH + 1)), Err(Error::InvalidPath));
}

#[test]
fn frame_length_at_and_past_the_receivers_maximum() {
    let mut s = logged_in_server();
    // The server's input buffer is 4096 bytes: 4091 bytes of payload fit.
    let max = 4096 - HEADER_LEN as u32;
    let head = |len: u32| {
        let mut h = [0u8; HEADER_LEN];
        frame::write_header(&mut h, FrameKind::Data, len);
        h
    };
    assert_eq!(frame::read_header(&head(max), max).map(|h| h.1), Ok(max));
    assert_eq!(
        frame::read_header(&head(max + 1), max),
        Err(Error::FrameTooLarge)
    );
    s.handle_input(Instant::ZERO, &head(max + 1)).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed(Error::FrameTooLarge))
    );
}

#[test]
fn iteration_count_at_and_past_the_clients_limit() {
    for (iters, ok) in [(100_000u32, true), (100_001, false)] {
        let now = Instant::ZERO;
        let mut c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
        let hello = Hello {
            version: VERSION,
            flags: 0,
            max_frame: 4096,
            chunk: 1024,
            digests: ferry_core::digest::Digests::MD5_ONLY,
        };
        c.handle_input(now, &hello.encode()).unwrap();
        let _ = c.poll_event();
        c.login("user", "pw", &[7; 12]).unwrap();
        // The client nonce is base64 of the 12 random bytes.
        let cnonce = "BwcHBwcHBwcHBwcH";
        let sf = format!("r={cnonce}srv,s=c2FsdA==,i={iters}");
        let mut buf = [0u8; 512];
        let n = frame::encode_message(
            &Message::ServerFirst(sf.as_str().try_into().unwrap()),
            &mut buf,
        )
        .unwrap();
        c.handle_input(now, &buf[..n]).unwrap();
        let ev = c.poll_event();
        if ok {
            assert_eq!(ev, None, "accepted: the client answers and waits");
        } else {
            assert_eq!(ev, Some(ClientEvent::Closed(Error::IterationsTooHigh)));
        }
    }
}
