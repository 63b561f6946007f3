//! A bare-metal binary that runs a whole Ferry session (SCRAM login, put,
//! get, list, exec) between a Client and a Server, so every protocol path is
//! linked in. Inputs go through `black_box` so nothing is folded away.
#![no_std]
#![no_main]

use core::hint::black_box;
use ferry_core::{
    Client, ClientEvent, Config, Entry, Instant, Kind, Overwrite, Request, Server, ServerConfig,
    ServerEvent, Stream, Verifier,
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}


#[no_mangle]
pub extern "C" fn _start() -> ! {
    let now = black_box(Instant::ZERO);
    let (mut ci, mut co, mut si, mut so) = ([0u8; 2048], [0u8; 2048], [0u8; 2048], [0u8; 2048]);
    let mut c = match Client::new(now, Config::default(), &mut ci[..], &mut co[..]) {
        Ok(c) => c,
        Err(_) => loop {},
    };
    let mut s = match Server::new(now, ServerConfig::new(black_box([1; 32])), &mut si[..], &mut so[..]) {
        Ok(s) => s,
        Err(_) => loop {},
    };
    let verifier = Verifier::parse(black_box("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB")).ok();
    let mut wire = [0u8; 2048];
    let mut file = [0u8; 512];
    let mut sink = 0usize;
    for round in 0..black_box(1000u32) {
        while let Some(n) = c.poll_transmit(&mut wire) {
            let _ = s.handle_input(now, &wire[..n]);
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::LoginRequest { .. } => {
                    let _ = s.login_verifier(verifier.as_ref(), &[1; 16]);
                }
                ServerEvent::Request(Request::Put { size, .. }) => {
                    let _ = s.accept_put(size / 2, None);
                    let _ = s.feed_prefix(&file);
                }
                ServerEvent::Data(d) => sink += d.len(),
                ServerEvent::PutEnd { .. } => {
                    let _ = s.finish_put();
                }
                ServerEvent::Request(Request::Get { .. }) => {
                    let _ = s.offer(512);
                }
                ServerEvent::Request(Request::List { .. }) | ServerEvent::Request(Request::Stat { .. }) => {
                    let e = Entry { name: Default::default(), kind: Kind::File, size: 1, modified: 0, mode: 0 };
                    let _ = s.list_entry(&e);
                    let _ = s.reply_entry(&e);
                    let _ = s.list_end();
                }
                ServerEvent::Request(Request::Exec { .. }) => {
                    let _ = s.exec_output(Stream::Stdout, b"ok");
                    let _ = s.exec_end(0);
                }
                ServerEvent::Request(_) => {
                    let _ = s.reply_ok();
                    let _ = s.reply_cwd("/");
                }
                _ => {}
            }
        }
        let _ = s.send_with(|buf| {
            let n = buf.len().min(black_box(file.len()));
            buf[..n].copy_from_slice(&file[..n]);
            (n, ())
        });
        while let Some(n) = s.poll_transmit(&mut wire) {
            let _ = c.handle_input(now, &wire[..n]);
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Connected(_) => {
                    let _ = c.login("u", "p", &[2; 16]);
                }
                ClientEvent::Offer { .. } => {
                    let _ = c.accept(0);
                }
                ClientEvent::Data(d) => sink += d.len(),
                ClientEvent::Output { data, .. } => sink += data.len(),
                _ => {}
            }
        }
        if c.is_idle() {
            let _ = match round % 5 {
                0 => c.put("f", 1024, Overwrite::KeepBoth, true),
                1 => c.get("f"),
                2 => c.list(""),
                3 => c.exec("uptime"),
                _ => c.echo("x", true),
            };
        }
        let _ = c.send_with(|buf| {
            let n = buf.len().min(black_box(file.len()));
            buf[..n].copy_from_slice(&file[..n]);
            (n, ())
        });
        let _ = c.send_body(&file[..black_box(3)]);
        file[0] = file[0].wrapping_add(1);
        c.handle_timeout(black_box(now));
        s.handle_timeout(black_box(now));
    }
    #[cfg(feature = "link")]
    {
        sink += link_session(now, &mut file);
    }
    black_box(sink);
    loop {}
}

/// A device's serial link (window 4, 256-byte frames): every path of it
/// linked in, for `.ci/size-report` to tell what it costs.
#[cfg(feature = "link")]
fn link_session(now: Instant, file: &mut [u8]) -> usize {
    use ferry_core::link::{Link, LinkConfig};
    type L<'a> = Link<&'a mut [u8], 4>;
    const LEN: usize = Link::<&'static mut [u8], 4>::buffer_len(256);
    let cfg = LinkConfig {
        max_payload: 256,
        ..LinkConfig::default()
    };
    let (mut ab, mut bb) = ([0u8; LEN], [0u8; LEN]);
    let (Ok(mut a), Ok(mut b)) = (
        L::new(now, cfg, black_box(1), &mut ab[..]),
        L::new(now, cfg, black_box(2), &mut bb[..]),
    ) else {
        return 0;
    };
    let mut wire = [0u8; 600];
    let mut got = 0;
    for round in 0..black_box(100u64) {
        let t = Instant::from_millis(black_box(round * 7));
        got += a.write(file);
        carry(&mut a, &mut b, t, &mut wire);
        carry(&mut b, &mut a, t, &mut wire);
        got += b.read(file);
        if black_box(round) == 50 {
            a.restart(t, 3);
        }
    }
    got + a.unacknowledged()
}

#[cfg(feature = "link")]
fn carry<const N: usize>(
    from: &mut ferry_core::link::Link<&mut [u8], N>,
    to: &mut ferry_core::link::Link<&mut [u8], N>,
    t: Instant,
    wire: &mut [u8],
) {
    let out = from.transmit(t);
    let n = out.len().min(wire.len());
    wire[..n].copy_from_slice(&out[..n]);
    from.transmit_done(n);
    to.handle_line(t, &wire[..n]);
    if to.poll_timeout().is_some_and(|d| d <= t) {
        to.handle_timeout(t);
    }
    while to.poll_event().is_some() {}
}
