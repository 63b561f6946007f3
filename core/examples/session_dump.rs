//! Prints a complete session byte by byte, as it appears on the wire, in
//! the form docs/PROTOCOL.md shows it: hellos, SCRAM login, a put with its
//! acknowledgement, chunks, trailer and done. Deterministic: fixed nonces
//! and salt. A test checks that the document shows exactly this output.
//!
//! Run: `cargo run -p ferry-core --example session_dump`

use ferry_core::digest::Digests;
use ferry_core::frame::{decode_message, read_header, FrameKind, HEADER_LEN, HELLO_LEN};
use ferry_core::{
    Client, ClientEvent, Config, Instant, Overwrite, Request, Server, ServerConfig, ServerEvent,
    Verifier,
};

fn hex_lines(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.chunks(16) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("    {}\n", hex.join(" ")));
    }
    out
}

/// Splits one direction's bytes into the hello and frames, describing each.
fn describe(dir: &str, bytes: &[u8], seen_hello: &mut bool, out: &mut String) {
    let mut rest = bytes;
    if !*seen_hello {
        out.push_str(&format!("{dir} hello ({HELLO_LEN} bytes)\n"));
        out.push_str(&hex_lines(&rest[..HELLO_LEN]));
        rest = &rest[HELLO_LEN..];
        *seen_hello = true;
    }
    while rest.len() >= HEADER_LEN {
        let head: &[u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().unwrap();
        let (kind, len) = read_header(head, u32::MAX).unwrap();
        let frame = &rest[..HEADER_LEN + len as usize];
        let what = match kind {
            FrameKind::Msg => format!("{:?}", decode_message(&frame[HEADER_LEN..]).unwrap()),
            FrameKind::Data => format!("Data {:?}", String::from_utf8_lossy(&frame[HEADER_LEN..])),
            k => format!("{k:?}"),
        };
        out.push_str(&format!("{dir} {what}\n"));
        out.push_str(&hex_lines(frame));
        rest = &rest[frame.len()..];
    }
}

/// What the client has queued goes to the server, described into `out`.
fn up<const W: usize>(
    c: &mut Client<Vec<u8>, W>,
    s: &mut Server<Vec<u8>, W>,
    out: &mut String,
    hellos: &mut (bool, bool),
) {
    let mut buf = [0u8; 4096];
    if let Some(n) = c.poll_transmit(&mut buf) {
        describe("C→S", &buf[..n], &mut hellos.0, out);
        s.handle_input(Instant::ZERO, &buf[..n]).unwrap();
    }
}

/// What the server has queued goes to the client, described into `out`.
fn down<const W: usize>(
    c: &mut Client<Vec<u8>, W>,
    s: &mut Server<Vec<u8>, W>,
    out: &mut String,
    hellos: &mut (bool, bool),
) {
    let mut buf = [0u8; 4096];
    if let Some(n) = s.poll_transmit(&mut buf) {
        describe("S→C", &buf[..n], &mut hellos.1, out);
        c.handle_input(Instant::ZERO, &buf[..n]).unwrap();
    }
}

/// One step of the exchange: what the client has goes to the server,
/// which answers every request (a SCRAM login with `verifier`, every put
/// accepted and stored but one to a name in `exists`, refused with
/// `Exists`), and what the server has goes back; both directions
/// described into `out`.
fn shuttle<const W: usize>(
    c: &mut Client<Vec<u8>, W>,
    s: &mut Server<Vec<u8>, W>,
    (verifier, exists): (Option<&Verifier>, &[&str]),
    out: &mut String,
    hellos: &mut (bool, bool),
) {
    up(c, s, out, hellos);
    while let Some(ev) = s.poll_event() {
        match ev {
            ServerEvent::LoginRequest { .. } => s.login_verifier(verifier, &[0x5A; 12]).unwrap(),
            ServerEvent::Request(Request::Put { path, .. }) if exists.contains(&path.as_str()) => {
                s.refuse(ferry_core::Error::Exists).unwrap()
            }
            ServerEvent::Request(Request::Put { .. }) => s.accept_put(0, None).unwrap(),
            ServerEvent::PutEnd { verified: true, .. } => s.finish_put().unwrap(),
            _ => {}
        }
    }
    down(c, s, out, hellos);
}

/// The whole transcript.
pub fn transcript() -> String {
    let now = Instant::ZERO;
    // The client prefers BLAKE3, then SHA-256 (ids 3, 2; MD5 implied); the
    // server is a small device with MD5 only, so MD5 is chosen — whatever
    // features this example is built with.
    let cc = Config {
        chunk_size: 8,
        digests: Digests::from_bytes([3, 2, 1, 0]),
        ..Config::default()
    };
    let sc = ServerConfig {
        conn: Config {
            digests: Digests::MD5_ONLY,
            ..cc
        },
        ..ServerConfig::new([1; 32])
    };
    let mut c = Client::new(now, cc, vec![0; 2048], vec![0; 2048]).unwrap();
    let mut s = Server::new(now, sc, vec![0; 2048], vec![0; 2048]).unwrap();
    let verifier = Verifier::new("pencil", b"ferry salt", 4096).unwrap();
    let body = "你好，世界\n".as_bytes();
    let (mut out, mut hellos) = (String::new(), (false, false));
    let (mut sent, mut step) = (0, 0);
    for _ in 0..100 {
        shuttle(
            &mut c,
            &mut s,
            (Some(&verifier), &[]),
            &mut out,
            &mut hellos,
        );
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::Connected(_) = ev {
                c.login("user", "pencil", &[0xA5; 12]).unwrap();
            }
        }
        if c.is_idle() {
            step += 1;
            if step == 1 {
                c.put("测试.txt", body.len() as u64, Overwrite::Fail, false)
                    .unwrap();
            } else {
                break;
            }
        }
        if sent < body.len() && c.remaining() > 0 {
            sent += c.send_body(&body[sent..]).unwrap();
        }
    }
    out
}

/// A version-3 client and server of window `W`, MD5 only, chunks of 8
/// bytes, anonymous login allowed: the pipelined examples' pair.
fn v3_pair<const W: usize>(now: Instant) -> (Client<Vec<u8>, W>, Server<Vec<u8>, W>) {
    let cc = Config {
        chunk_size: 8,
        digests: Digests::MD5_ONLY,
        ..Config::default()
    };
    let mut sc = ServerConfig::new([1; 32]);
    sc.conn = cc;
    sc.allow_anonymous = true;
    let c = Client::with_window(now, cc, vec![0; 2048], vec![0; 2048]).unwrap();
    let s = Server::with_window(now, sc, vec![0; 2048], vec![0; 2048]).unwrap();
    (c, s)
}

/// Two pipelined puts (version 3, window 2, anonymous login): both
/// requests go out before either answer, each body after its own accept.
pub fn pipelined() -> String {
    let now = Instant::ZERO;
    let (mut c, mut s) = v3_pair::<2>(now);
    let bodies: [&[u8]; 2] = [b"one", b"two"];
    let (mut out, mut hellos) = (String::new(), (false, false));
    let (mut body, mut requested, mut ended) = (None::<usize>, false, 0);
    let mut started = 0;
    c.login_anonymous().unwrap();
    for _ in 0..100 {
        shuttle(&mut c, &mut s, (None, &[]), &mut out, &mut hellos);
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::SendBody { .. } => {
                    body = Some(started);
                    started += 1;
                }
                ClientEvent::TransferEnd { verified: true, .. } => ended += 1,
                _ => {}
            }
        }
        if c.is_logged_in() && !requested {
            requested = true;
            c.put("a", 3, Overwrite::Fail, false).unwrap();
            c.put("b", 3, Overwrite::Fail, false).unwrap();
        }
        if let Some(i) = body.take() {
            c.send_body(bodies[i]).unwrap();
        }
        if ended == 2 && c.is_idle() {
            break;
        }
    }
    out
}

/// Three pipelined gets (version 3, window 4, anonymous login, chunk 8):
/// the client accepts `a`, refuses `b` (`Refuse`: it has the file) and
/// accepts `c`; after `a`'s first chunk it cancels `a`, whose body the
/// server ends with the zero trailer; `c` follows. The server sends one
/// chunk per turn, as over a slow link.
pub fn pipelined_gets() -> String {
    use ferry_core::Error;
    let now = Instant::ZERO;
    let (mut c, mut s) = v3_pair::<4>(now);
    let files = [("a", &b"first file"[..]), ("b", b"two"), ("c", b"third")];
    let body = |name: &str| files.iter().find(|f| f.0 == name).unwrap().1;
    // The server's gets in flight, oldest first: name and next byte to
    // send (`None`: body not started).
    let mut flight: Vec<(String, Option<usize>)> = Vec::new();
    let (mut out, mut hellos) = (String::new(), (false, false));
    let mut requested = false;
    c.login_anonymous().unwrap();
    for _ in 0..20 {
        up(&mut c, &mut s, &mut out, &mut hellos);
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Request(Request::Get { path }) => {
                    s.offer(body(&path).len() as u64).unwrap();
                    flight.push((path.to_string(), None));
                }
                ServerEvent::SendBody { offset } => {
                    let next = flight.iter_mut().find(|f| f.1.is_none()).unwrap();
                    next.1 = Some(offset as usize);
                }
                ServerEvent::Declined { index, .. } => {
                    flight.remove(index);
                }
                ServerEvent::Cancelled(_) | ServerEvent::GetEnd { .. } => {
                    flight.remove(0);
                }
                _ => {}
            }
        }
        // One chunk of the body in progress (the last one started).
        if s.remaining() > 0 {
            if let Some((name, Some(pos))) = flight.iter_mut().rev().find(|f| f.1.is_some()) {
                let b = body(name);
                let n = s.send_body(&b[*pos..b.len().min(*pos + 8)]).unwrap();
                *pos += n;
            }
        }
        down(&mut c, &mut s, &mut out, &mut hellos);
        let mut done = false;
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Offer { size: 3 } => c.refuse(Error::Exists).unwrap(),
                ClientEvent::Offer { .. } => c.accept(0).unwrap(),
                // The user gives up on `a` after its first chunk.
                ClientEvent::Data(d) if d == b"first fi" => c.cancel(Error::Cancelled).unwrap(),
                ClientEvent::TransferEnd { .. } => done = true,
                _ => {}
            }
        }
        if c.is_logged_in() && !requested {
            requested = true;
            for (name, _) in files {
                c.get(name).unwrap();
            }
        }
        if done {
            up(&mut c, &mut s, &mut out, &mut hellos);
            break;
        }
    }
    out
}

/// Two pre-agreed gets (version 3, window 4, anonymous login, chunk 8):
/// `a` (10 bytes) within its bound of 16, so its body follows the offer;
/// `b` (5 bytes) past its bound of 4, so its offer waits for an `Accept`
/// and its body comes after it.
pub fn agreed_gets() -> String {
    let now = Instant::ZERO;
    let (mut c, mut s) = v3_pair::<4>(now);
    let files = [("a", &b"first file"[..]), ("b", b"other")];
    let body = |name: &str| files.iter().find(|f| f.0 == name).unwrap().1;
    // Offered names, oldest first; bodies go in that order.
    let mut offered: Vec<String> = Vec::new();
    let (mut out, mut hellos) = (String::new(), (false, false));
    let mut requested = false;
    let mut ended = 0;
    c.login_anonymous().unwrap();
    for _ in 0..20 {
        up(&mut c, &mut s, &mut out, &mut hellos);
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Request(Request::Get { path }) => {
                    s.offer(body(&path).len() as u64).unwrap();
                    offered.push(path.to_string());
                }
                ServerEvent::SendBody { .. } => {
                    let name = offered.remove(0);
                    let b = body(&name);
                    let mut at = 0;
                    while at < b.len() {
                        at += s.send_body(&b[at..]).unwrap();
                    }
                }
                _ => {}
            }
        }
        down(&mut c, &mut s, &mut out, &mut hellos);
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Offer { .. } => c.accept(0).unwrap(),
                ClientEvent::TransferEnd { .. } => ended += 1,
                _ => {}
            }
        }
        if c.is_logged_in() && !requested {
            requested = true;
            c.get_agreed("a", 0, 16).unwrap();
            c.get_agreed("b", 0, 4).unwrap();
        }
        if ended == 2 {
            up(&mut c, &mut s, &mut out, &mut hellos);
            break;
        }
    }
    out
}

/// Three pre-agreed puts (version 3, window 4, anonymous login, chunk 8):
/// each request goes out with its body and trailer in one flight; `b`
/// exists (`Overwrite::Fail`), so the server reads its body, drops it and
/// answers it with one `Error(Exists)`; `a` and `c` get `Accept` and
/// `Done`.
pub fn agreed_puts() -> String {
    let (mut c, mut s) = v3_pair::<4>(Instant::ZERO);
    let files = [("a", &b"one"[..]), ("b", b"second"), ("c", b"")];
    let (mut out, mut hellos) = (String::new(), (false, false));
    let mut answers = 0;
    c.login_anonymous().unwrap();
    for _ in 0..20 {
        shuttle(&mut c, &mut s, (None, &["b"]), &mut out, &mut hellos);
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::LoggedIn => {
                    for (name, body) in files {
                        c.put_agreed(name, body.len() as u64, Overwrite::Fail)
                            .unwrap();
                        if !body.is_empty() {
                            c.send_body(body).unwrap();
                        }
                    }
                }
                ClientEvent::TransferEnd { .. } | ClientEvent::Refused(_) => answers += 1,
                _ => {}
            }
        }
        if answers == 3 {
            break;
        }
    }
    out
}

/// The version-3 messages `Refuse` (tag 20) and `Retry` (tag 21), each
/// as one frame.
pub fn v3_messages() -> String {
    use ferry_core::frame::encode_message;
    use ferry_core::message::Message;
    let mut out = String::new();
    for m in [
        Message::GetAgreed {
            path: ferry_core::message::bounded("a", ferry_core::Error::InvalidPath).unwrap(),
            offset: 0,
            max: 300,
        },
        Message::GetAgreed {
            path: ferry_core::message::bounded("a", ferry_core::Error::InvalidPath).unwrap(),
            offset: 4096,
            max: u64::MAX,
        },
        Message::Refuse { code: 21 },
        Message::Refuse { code: 255 },
        Message::Retry {
            code: 60,
            seconds: 0,
        },
        Message::Retry {
            code: 16,
            seconds: 300,
        },
    ] {
        let mut b = [0u8; 64];
        let n = encode_message(&m, &mut b).unwrap();
        out.push_str(&format!("{m:?}\n"));
        out.push_str(&hex_lines(&b[..n]));
    }
    out
}

#[allow(dead_code)]
fn main() {
    print!("{}", transcript());
    if std::env::args().any(|a| a == "--pipelined") {
        print!("{}", pipelined());
    }
    if std::env::args().any(|a| a == "--gets") {
        print!("{}", pipelined_gets());
    }
    if std::env::args().any(|a| a == "--agreed") {
        print!("{}", agreed_gets());
    }
    if std::env::args().any(|a| a == "--agreed-puts") {
        print!("{}", agreed_puts());
    }
    if std::env::args().any(|a| a == "--v3-messages") {
        print!("{}", v3_messages());
    }
}
