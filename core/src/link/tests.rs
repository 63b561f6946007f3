//! The link over a simulated line: paced to a baud rate, with seeded bit
//! flips, dropped, inserted and duplicated bytes, a cut, and restarts.

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use super::*;

type L = Link<Vec<u8>, 16>;

fn link(epoch: u32, cfg: LinkConfig) -> L {
    let buf = vec![0u8; L::buffer_len(usize::from(cfg.max_payload))];
    Link::new(Instant::ZERO, cfg, epoch, buf).unwrap()
}

/// A small seeded generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `p` (per million).
    fn chance(&mut self, ppm: u64) -> bool {
        self.next() % 1_000_000 < ppm
    }
}

/// Faults on one direction of the line.
#[derive(Clone, Copy, Default)]
pub(crate) struct Faults {
    /// Per bit, per million.
    pub bit_ppm: u64,
    pub drop_ppm: u64,
    pub insert_ppm: u64,
    pub dup_ppm: u64,
    /// No byte passes between these milliseconds.
    pub cut: Option<(u64, u64)>,
}

/// One direction: bytes leave at the line rate and arrive 2 ms later.
pub(crate) struct Wire {
    queue: VecDeque<(u64, u8)>,
    free_at: u64,
    byte_ms_x1000: u64,
    faults: Faults,
    rng: Rng,
}

impl Wire {
    pub(crate) fn new(baud: u32, faults: Faults, seed: u64) -> Wire {
        Wire {
            queue: VecDeque::new(),
            free_at: 0,
            byte_ms_x1000: 10_000_000 / u64::from(baud),
            faults,
            rng: Rng(seed | 1),
        }
    }

    /// Bytes the sender may hand over now (a UART's small FIFO: the
    /// sender is paced by the line, as a real port paces it).
    pub(crate) fn room(&self, now: u64) -> usize {
        if self.free_at > now * 1000 + 4_000 {
            0
        } else {
            64
        }
    }

    pub(crate) fn send(&mut self, now: u64, bytes: &[u8]) {
        for &b in bytes {
            self.free_at = self.free_at.max(now * 1000) + self.byte_ms_x1000;
            let at = self.free_at / 1000 + 2;
            if let Some((from, to)) = self.faults.cut {
                if (from..to).contains(&at) {
                    continue;
                }
            }
            if self.rng.chance(self.faults.drop_ppm) {
                continue;
            }
            let mut b = b;
            for bit in 0..8 {
                if self.rng.chance(self.faults.bit_ppm) {
                    b ^= 1 << bit;
                }
            }
            self.queue.push_back((at, b));
            if self.rng.chance(self.faults.dup_ppm) {
                self.queue.push_back((at, b));
            }
            if self.rng.chance(self.faults.insert_ppm) {
                self.queue.push_back((at, self.rng.next() as u8));
            }
        }
    }

    pub(crate) fn arrived(&mut self, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            out.push(self.queue.pop_front().unwrap().1);
        }
        out
    }
}

/// Moves a link's output onto its wire as far as the wire takes it.
pub(crate) fn pump<B: Buffer, const N: usize>(l: &mut Link<B, N>, w: &mut Wire, now: u64) {
    loop {
        let room = w.room(now);
        if room == 0 {
            return;
        }
        let out = l.transmit(Instant::from_millis(now));
        if out.is_empty() {
            return;
        }
        let n = out.len().min(room);
        let bytes: Vec<u8> = out[..n].to_vec();
        w.send(now, &bytes);
        l.transmit_done(n);
    }
}

struct Run {
    a: L,
    b: L,
    ab: Wire,
    ba: Wire,
    now: u64,
    got: Vec<u8>,
    events_a: Vec<LinkEvent>,
    events_b: Vec<LinkEvent>,
}

impl Run {
    fn new(cfg: LinkConfig, ab: Faults, ba: Faults, seed: u64) -> Run {
        Run {
            a: link(0x1111_0000 ^ seed as u32, cfg),
            b: link(0x2222_0000 ^ (seed as u32).rotate_left(7), cfg),
            ab: Wire::new(cfg.baud, ab, seed),
            ba: Wire::new(cfg.baud, ba, seed.wrapping_mul(31)),
            now: 0,
            got: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
        }
    }

    /// One millisecond: deliver, read, time out, send.
    fn step(&mut self) {
        let now = Instant::from_millis(self.now);
        let to_b = self.ab.arrived(self.now);
        self.b.handle_line(now, &to_b);
        let to_a = self.ba.arrived(self.now);
        self.a.handle_line(now, &to_a);
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        let mut buf = [0u8; 700];
        loop {
            let n = self.b.read(&mut buf);
            if n == 0 {
                break;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
        pump(&mut self.a, &mut self.ab, self.now);
        pump(&mut self.b, &mut self.ba, self.now);
        self.now += 1;
    }

    /// Sends `data` from a to b; the simulated milliseconds it took, or
    /// `None` past `limit_ms`.
    fn transfer(&mut self, data: &[u8], limit_ms: u64) -> Option<u64> {
        let start = self.now;
        let mut sent = 0;
        while self.got.len() < data.len() {
            if self.now - start > limit_ms {
                return None;
            }
            sent += self.a.write(&data[sent..]);
            self.step();
        }
        Some(self.now - start)
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn frames_round_trip_and_damage_is_refused() {
    let mut buf = [0u8; 64];
    let f = wire::Frame::Ack {
        link: 0xA1B2_C3D4,
        ack: 7,
        credit: 3,
        sack: 0b101,
        flags: wire::FLAG_PROBE,
    };
    let n = wire::write(&f, &mut buf);
    assert_eq!(wire::parse(&buf[..n]), Some(f));
    for i in 0..n {
        for bit in 0..8 {
            let mut bad = buf;
            bad[i] ^= 1 << bit;
            assert_eq!(wire::parse(&bad[..n]), None, "byte {i} bit {bit}");
        }
    }
    assert_eq!(wire::parse(&buf[..n - 1]), None);
}

/// The first `Sync` of epoch 0x01020304, byte for byte (the example in
/// docs/PROTOCOL.md#serial-link).
#[test]
fn a_sync_frame_on_the_wire() {
    let mut l = link(0x0102_0304, LinkConfig::default());
    let out = l.transmit(Instant::ZERO).to_vec();
    assert_eq!(
        out,
        [
            0x06, 0x01, 0x01, 0x02, 0x03, 0x04, 0x01, 0x01, 0x01, 0x05, 0xD9, 0x53, 0xC5, 0x34,
            0x00
        ]
    );
}

#[test]
fn a_clean_line_carries_the_stream_at_nearly_its_rate() {
    let cfg = LinkConfig::default();
    let mut r = Run::new(cfg, Faults::default(), Faults::default(), 1);
    let d = data(256 * 1024, 2);
    let ms = r.transfer(&d, 60_000).expect("done");
    assert_eq!(r.got, d);
    assert_eq!(r.events_a, [LinkEvent::Up]);
    assert_eq!(r.events_b, [LinkEvent::Up]);
    // 256 KiB at 11 520 bytes/s is 22.8 s.
    let ideal = d.len() as u64 * 10_000 / u64::from(cfg.baud);
    std::println!("clean: {ms} ms, ideal {ideal} ms");
    assert!(ms * 100 <= ideal * 105, "{ms} ms, ideal {ideal} ms");
}

fn noisy(bit_ppm: u64, seed: u64, baud: u32) -> (u64, u64) {
    let cfg = LinkConfig {
        baud,
        ..LinkConfig::default()
    };
    let f = Faults {
        bit_ppm,
        ..Faults::default()
    };
    let mut r = Run::new(cfg, f, f, seed);
    let d = data(256 * 1024, seed);
    let ms = r.transfer(&d, 600_000).expect("done");
    assert_eq!(r.got, d);
    (ms, d.len() as u64 * 10_000 / u64::from(baud))
}

#[test]
fn a_noisy_line_still_makes_progress() {
    for (ppm, floor) in [(10, 85), (100, 50)] {
        let (ms, ideal) = noisy(ppm, 3, 115_200);
        std::println!("bit errors {ppm} ppm: {ms} ms, ideal {ideal} ms");
        assert!(
            ms * floor <= ideal * 100,
            "{ppm} ppm: {ms} ms, ideal {ideal}"
        );
    }
}

#[test]
fn garbage_drops_duplicates_and_a_cut_lose_nothing() {
    let cfg = LinkConfig::default();
    let f = Faults {
        bit_ppm: 20,
        drop_ppm: 300,
        insert_ppm: 300,
        dup_ppm: 300,
        cut: Some((5_000, 7_000)),
    };
    let mut r = Run::new(cfg, f, Faults { cut: f.cut, ..f }, 9);
    let d = data(96 * 1024, 5);
    let ms = r.transfer(&d, 120_000).expect("done");
    assert_eq!(r.got, d);
    assert_eq!(r.events_b, [LinkEvent::Up], "a 2 s cut is not a reset");
    std::println!("faults and a 2 s cut: {ms} ms");
}

#[test]
fn a_restart_resets_the_stream_and_no_old_frame_is_taken() {
    let cfg = LinkConfig::default();
    let mut r = Run::new(cfg, Faults::default(), Faults::default(), 4);
    let d = data(64 * 1024, 6);
    let mut sent = 0;
    while r.got.len() < 20_000 {
        sent += r.a.write(&d[sent..]);
        r.step();
    }
    // a restarts with frames of the old link still on the wire.
    r.a.restart(Instant::from_millis(r.now), 0x7777);
    let before = r.got.len();
    for _ in 0..2_000 {
        r.step();
    }
    assert_eq!(r.events_b, [LinkEvent::Up, LinkEvent::Reset, LinkEvent::Up]);
    assert_eq!(r.events_a, [LinkEvent::Up, LinkEvent::Reset, LinkEvent::Up]);
    // Whatever b read after the reset is a new stream's: nothing (a sent
    // nothing new), never the rest of the old one.
    let after = r.got.len();
    assert!(
        after - before <= 16 * 1024,
        "{} bytes after the restart",
        after - before
    );
    assert_eq!(
        &r.got[..],
        &d[..after],
        "the old stream, in order, up to the reset"
    );
    // The new link carries a new stream.
    r.got.clear();
    let e = data(10_000, 8);
    assert!(r.transfer(&e, 30_000).is_some());
    assert_eq!(r.got, e);
}

#[test]
fn a_silent_peer_is_down_after_the_dead_time() {
    let cfg = LinkConfig {
        dead_after: Duration::from_secs(3),
        ..LinkConfig::default()
    };
    let f = Faults {
        cut: Some((1_000, u64::MAX)),
        ..Faults::default()
    };
    let mut r = Run::new(cfg, f, f, 11);
    for _ in 0..5_000 {
        r.step();
    }
    assert_eq!(r.events_a, [LinkEvent::Up, LinkEvent::Down]);
    assert!(!r.a.is_up());
    assert_eq!(r.a.write(b"x"), 0);
}

#[test]
fn a_reader_that_stops_stops_the_sender() {
    let cfg = LinkConfig::default();
    let mut r = Run::new(cfg, Faults::default(), Faults::default(), 12);
    let d = data(200_000, 13);
    let mut sent = 0;
    // b never reads: only its window's worth is taken.
    for _ in 0..20_000 {
        sent += r.a.write(&d[sent..]);
        let now = Instant::from_millis(r.now);
        let to_b = r.ab.arrived(r.now);
        r.b.handle_line(now, &to_b);
        let to_a = r.ba.arrived(r.now);
        r.a.handle_line(now, &to_a);
        for l in [&mut r.a, &mut r.b] {
            if l.poll_timeout().is_some_and(|t| t <= now) {
                l.handle_timeout(now);
            }
        }
        pump(&mut r.a, &mut r.ab, r.now);
        pump(&mut r.b, &mut r.ba, r.now);
        r.now += 1;
    }
    assert!(
        sent <= 2 * 16 * 1024 + 1024,
        "{sent} bytes taken by a sender to a reader that stopped"
    );
    // Reading again lets it all through.
    let rest = r.transfer(&d[..0], 0);
    let _ = rest;
    let mut got = 0;
    let mut buf = [0u8; 4096];
    for _ in 0..60_000 {
        sent += r.a.write(&d[sent..]);
        let n = r.b.read(&mut buf);
        assert_eq!(&buf[..n], &d[got..got + n]);
        got += n;
        r.step();
        if got + r.got.len() == d.len() {
            break;
        }
    }
    assert_eq!(got + r.got.len(), d.len());
}
