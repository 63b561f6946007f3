//! Arbitrary bytes from a server, after a valid hello, into a Client that
//! keeps issuing requests (so every reply path is reached).
#![no_main]

use ferry_core::frame::{Hello, VERSION};
use ferry_core::{Client, ClientEvent, Config, Instant, Overwrite};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let (split, peer) = common::split_and_peer(first);
    let now = Instant::ZERO;
    let Ok(mut c) = Client::new(now, Config::default(), vec![0u8; 4096], vec![0u8; 4096]) else { return };
    let mut input = Hello { version: VERSION, flags: 1, max_frame: 4096, chunk: 1024, digests: peer }.encode().to_vec();
    input.extend_from_slice(rest);
    let mut out = [0u8; 8192];
    let mut pos = 0;
    let mut step = 0u32;
    for _ in 0..100_000u32 {
        let end = (pos + split).min(input.len());
        match c.handle_input(now, &input[pos..end]) {
            Ok(n) => pos += n,
            Err(_) => return,
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Connected(_) => {
                    let _ = if rest.len() % 2 == 0 { c.login_anonymous() } else { c.login("u", "p", &[2; 16]) };
                }
                ClientEvent::Offer { size } => {
                    let _ = c.accept(size / 2);
                    let _ = c.feed_prefix(&[0; 3]);
                }
                ClientEvent::Closed(_) => return,
                _ => {}
            }
        }
        if c.is_idle() {
            step += 1;
            let _ = match step % 6 {
                0 => c.get("f"),
                1 => c.put("f", 10, Overwrite::KeepBoth, true),
                2 => c.list("/"),
                3 => c.exec("x"),
                4 => c.echo("e", true),
                _ => c.stat("s"),
            };
        }
        let _ = c.send_with(|buf| (buf.len().min(5), ()));
        while c.poll_transmit(&mut out).is_some() {}
        if pos == input.len() {
            c.handle_eof(now);
            while c.poll_event().is_some() {}
            return;
        }
    }
});
