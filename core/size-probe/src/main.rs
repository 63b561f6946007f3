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
    let mut s = match Server::new(
        now,
        ServerConfig::new(black_box([1; 32])),
        &mut si[..],
        &mut so[..],
    ) {
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
                ServerEvent::Request(Request::List { .. })
                | ServerEvent::Request(Request::Stat { .. }) => {
                    let e = Entry {
                        name: Default::default(),
                        kind: Kind::File,
                        size: 1,
                        modified: 0,
                        mode: 0,
                    };
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
    #[cfg(any(feature = "link", feature = "link-null"))]
    {
        sink += link_session(now, &mut file);
    }
    black_box(sink);
    loop {}
}

/// A device's serial link (window 4, 256-byte frames): every path of it
/// linked in, for `.ci/size-report` to tell what it costs. The same loop
/// runs over [`Null`] (feature `link-null`), a stand-in that does nothing
/// but keeps the loop's own code alive: the report subtracts that build
/// to give the link's code without the loop's.
///
/// Kept out of line, as is [`carry`]: inlined, the loop's code varied
/// between the two builds with the rest of `_start` (404 bytes of
/// `_start` counted as the link's once the core's own code changed).
#[cfg(any(feature = "link", feature = "link-null"))]
#[inline(never)]
fn link_session(now: Instant, file: &mut [u8]) -> usize {
    const LEN: usize = ferry_core::link::Link::<&'static mut [u8], 4>::buffer_len(256);
    let (mut ab, mut bb) = ([0u8; LEN], [0u8; LEN]);
    let (Some(mut a), Some(mut b)) = (
        L::new_probe(now, black_box(1), &mut ab[..]),
        L::new_probe(now, black_box(2), &mut bb[..]),
    ) else {
        return 0;
    };
    let mut wire = [0u8; 600];
    let mut got = 0;
    for round in 0..black_box(100u64) {
        let t = Instant::from_millis(black_box(round * 7));
        got += Probe::write(&mut a, file);
        carry(&mut a, &mut b, t, &mut wire);
        carry(&mut b, &mut a, t, &mut wire);
        got += Probe::read(&mut b, file);
        if black_box(round) == 50 {
            Probe::restart(&mut a, t, 3);
        }
    }
    got + Probe::unacknowledged(&a)
}

#[cfg(feature = "link")]
type L<'a> = ferry_core::link::Link<&'a mut [u8], 4>;
#[cfg(all(feature = "link-null", not(feature = "link")))]
type L<'a> = Null<'a>;

#[cfg(any(feature = "link", feature = "link-null"))]
#[inline(never)]
fn carry<'a, P: Probe<'a>>(from: &mut P, to: &mut P, t: Instant, wire: &mut [u8]) {
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

/// What the loop calls: the link's API.
#[cfg(any(feature = "link", feature = "link-null"))]
trait Probe<'a>: Sized {
    type Event;
    fn new_probe(now: Instant, epoch: u32, buf: &'a mut [u8]) -> Option<Self>;
    fn write(&mut self, data: &[u8]) -> usize;
    fn read(&mut self, out: &mut [u8]) -> usize;
    fn restart(&mut self, now: Instant, epoch: u32);
    fn unacknowledged(&self) -> usize;
    fn transmit(&mut self, now: Instant) -> &[u8];
    fn transmit_done(&mut self, n: usize);
    fn handle_line(&mut self, now: Instant, bytes: &[u8]);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_event(&mut self) -> Option<Self::Event>;
}

#[cfg(feature = "link")]
impl<'a> Probe<'a> for ferry_core::link::Link<&'a mut [u8], 4> {
    type Event = ferry_core::link::LinkEvent;
    #[inline(never)]
    fn new_probe(now: Instant, epoch: u32, buf: &'a mut [u8]) -> Option<Self> {
        let cfg = ferry_core::link::LinkConfig {
            max_payload: 256,
            ..Default::default()
        };
        Self::new(now, cfg, epoch, buf).ok()
    }
    #[inline(never)]
    fn write(&mut self, data: &[u8]) -> usize {
        self.write(data)
    }
    #[inline(never)]
    fn read(&mut self, out: &mut [u8]) -> usize {
        self.read(out)
    }
    #[inline(never)]
    fn restart(&mut self, now: Instant, epoch: u32) {
        self.restart(now, epoch)
    }
    #[inline(never)]
    fn unacknowledged(&self) -> usize {
        self.unacknowledged()
    }
    #[inline(never)]
    fn transmit(&mut self, now: Instant) -> &[u8] {
        self.transmit(now)
    }
    #[inline(never)]
    fn transmit_done(&mut self, n: usize) {
        self.transmit_done(n)
    }
    #[inline(never)]
    fn handle_line(&mut self, now: Instant, bytes: &[u8]) {
        self.handle_line(now, bytes)
    }
    #[inline(never)]
    fn poll_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    #[inline(never)]
    fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout(now)
    }
    #[inline(never)]
    fn poll_event(&mut self) -> Option<Self::Event> {
        self.poll_event()
    }
}

/// A stand-in for the link that does nothing, through `black_box` so that
/// the loop around it stays as it is with the link. Here and in the
/// link's impl every method is kept out of line: the loop's code is then
/// the same in both builds, and the difference is the link's alone.
#[cfg(all(feature = "link-null", not(feature = "link")))]
struct Null<'a>(&'a mut [u8]);

#[cfg(all(feature = "link-null", not(feature = "link")))]
impl<'a> Probe<'a> for Null<'a> {
    type Event = u8;
    #[inline(never)]
    fn new_probe(_: Instant, epoch: u32, buf: &'a mut [u8]) -> Option<Self> {
        black_box(epoch != 0).then_some(Null(buf))
    }
    #[inline(never)]
    fn write(&mut self, data: &[u8]) -> usize {
        black_box(data.len())
    }
    #[inline(never)]
    fn read(&mut self, out: &mut [u8]) -> usize {
        black_box(out.len())
    }
    #[inline(never)]
    fn restart(&mut self, _: Instant, epoch: u32) {
        black_box(epoch);
    }
    #[inline(never)]
    fn unacknowledged(&self) -> usize {
        black_box(0)
    }
    #[inline(never)]
    fn transmit(&mut self, _: Instant) -> &[u8] {
        let n = black_box(16);
        &self.0[..n]
    }
    #[inline(never)]
    fn transmit_done(&mut self, n: usize) {
        black_box(n);
    }
    #[inline(never)]
    fn handle_line(&mut self, _: Instant, bytes: &[u8]) {
        black_box(bytes);
    }
    #[inline(never)]
    fn poll_timeout(&self) -> Option<Instant> {
        black_box(None)
    }
    #[inline(never)]
    fn handle_timeout(&mut self, now: Instant) {
        black_box(now);
    }
    #[inline(never)]
    fn poll_event(&mut self) -> Option<u8> {
        black_box(None)
    }
}
