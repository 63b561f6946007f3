//! Arbitrary bytes from a client, after a valid hello, into a Server whose
//! driver says yes to everything (so transfers and listings are reached).
//! The first byte picks the read size, so splits are fuzzed too.
#![no_main]

use ferry_core::frame::{Hello, VERSION};
use ferry_core::{Entry, Instant, Kind, Request, Server, ServerConfig, ServerEvent, Stream, Verifier};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let (split, peer) = common::split_and_peer(first);
    let now = Instant::ZERO;
    let cfg = ServerConfig { allow_anonymous: true, allow_exec: true, ..ServerConfig::new([5; 32]) };
    let Ok(mut s) = Server::new(now, cfg, vec![0u8; 4096], vec![0u8; 4096]) else { return };
    let verifier = Verifier::new("pw", b"salt", 1).ok();
    let mut input = Hello { version: VERSION, flags: 0, max_frame: 4096, chunk: 1024, digests: peer }.encode().to_vec();
    input.extend_from_slice(rest);
    let mut out = [0u8; 8192];
    let mut pos = 0;
    for round in 0..100_000u32 {
        let end = (pos + split).min(input.len());
        match s.handle_input(Instant::from_millis(round as u64), &input[pos..end]) {
            Ok(n) => pos += n,
            Err(_) => return,
        }
        while let Some(ev) = s.poll_event() {
            let ask = match ev {
                ServerEvent::LoginRequest { .. } => 1,
                ServerEvent::Request(Request::Get { .. }) => 2,
                ServerEvent::Request(Request::Put { size, .. }) => 3 + (size % 2) as u8,
                ServerEvent::Request(Request::List { .. }) => 5,
                ServerEvent::Request(Request::Exec { .. }) => 6,
                ServerEvent::Request(Request::Digest { .. }) => 9,
                ServerEvent::Request(_) => 7,
                ServerEvent::PutEnd { verified: true, .. } => 8,
                ServerEvent::Closed(_) => return,
                _ => 0,
            };
            let _ = match ask {
                1 => s.login_verifier(verifier.as_ref(), &[1; 16]),
                2 => s.offer(100),
                3 => s.accept_put(0, None),
                4 => s.accept_put(1, Some("x.new")).and_then(|_| s.feed_prefix(b"x")),
                5 => {
                    let e = Entry { name: Default::default(), kind: Kind::Dir, size: 0, modified: 0, mode: 0 };
                    let _ = s.list_entry(&e);
                    s.list_end()
                }
                6 => s.exec_output(Stream::Stderr, b"e").and_then(|_| s.exec_end(1)),
                7 => s.refuse(ferry_core::Error::Permission),
                8 => s.finish_put(),
                9 => s.reply_sum(&ferry_core::digest::Hasher::new(ferry_core::digest::Algorithm::Md5).unwrap().finish()),
                _ => Ok(()),
            };
        }
        let _ = s.send_with(|buf| (buf.len().min(7), ()));
        while s.poll_transmit(&mut out).is_some() {}
        if pos == input.len() {
            s.handle_eof(now);
            while s.poll_event().is_some() {}
            return;
        }
    }
});
