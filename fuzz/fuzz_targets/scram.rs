//! SCRAM text in every position: verifier strings, and arbitrary
//! client-first / client-final messages sent to a server, and server-first /
//! server-final messages sent to a client. Lines of the input are the texts.
#![no_main]

use ferry_core::frame::{encode_message, Hello, VERSION};
use ferry_core::message::{Message, ScramText};
use ferry_core::{Client, Config, Instant, Server, ServerConfig, ServerEvent, Verifier};
use libfuzzer_sys::fuzz_target;

fn text(s: &str) -> ScramText {
    let mut t = ScramText::new();
    for c in s.chars() {
        if t.push(c).is_err() {
            break;
        }
    }
    t
}

fn frames(msgs: &[Message]) -> Vec<u8> {
    let mut out = Hello { version: VERSION, flags: 0, max_frame: 4096, chunk: 1024, digests: ferry_core::digest::Digests::MD5_ONLY }.encode().to_vec();
    for m in msgs {
        let mut buf = [0u8; 1024];
        if let Ok(n) = encode_message(m, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut lines = s.split('\n');
    let (a, b) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let _ = Verifier::parse(a);
    let now = Instant::ZERO;

    let mut server = Server::new(now, ServerConfig::new([5; 32]), vec![0u8; 4096], vec![0u8; 4096]).unwrap();
    let input = frames(&[Message::ClientFirst(text(a)), Message::ClientFinal(text(b))]);
    let _ = server.handle_input(now, &input);
    let v = Verifier::new("pw", b"salt", 1).ok();
    while let Some(ev) = server.poll_event() {
        if let ServerEvent::LoginRequest { .. } = ev {
            let _ = server.login_verifier(v.as_ref(), &[1; 16]);
        }
    }

    let mut client = Client::new(now, Config::default(), vec![0u8; 4096], vec![0u8; 4096]).unwrap();
    let _ = client.handle_input(now, &frames(&[]));
    while client.poll_event().is_some() {}
    let _ = client.login("user", "pw", &[3; 16]);
    let _ = client.handle_input(now, &frames(&[Message::ServerFirst(text(a)), Message::ServerFinal(text(b))])[16..]);
    while client.poll_event().is_some() {}
});
