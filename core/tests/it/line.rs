//! A simulated serial line for the link: paced to a baud rate, with
//! seeded bit flips, dropped, inserted and duplicated bytes and a cut;
//! and a transport that puts two links and such a line between the
//! pair's client and server.

use std::collections::VecDeque;

use ferry_core::link::{Link, LinkConfig, LinkEvent};
use ferry_core::Instant;

/// A small seeded generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `p` (per million).
    pub fn chance(&mut self, ppm: u64) -> bool {
        self.next() % 1_000_000 < ppm
    }
}

/// Faults on one direction of the line.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Per bit, per million.
    pub bit_ppm: u64,
    pub drop_ppm: u64,
    pub insert_ppm: u64,
    pub dup_ppm: u64,
    /// No byte passes between these milliseconds.
    pub cut: Option<(u64, u64)>,
}

/// One direction: bytes leave at the line rate and arrive 2 ms later.
pub struct Line {
    queue: VecDeque<(u64, u8)>,
    free_at: u64,
    byte_ms_x1000: u64,
    faults: Faults,
    rng: Rng,
}

impl Line {
    pub fn new(baud: u32, faults: Faults, seed: u64) -> Line {
        Line {
            queue: VecDeque::new(),
            free_at: 0,
            byte_ms_x1000: 10_000_000 / u64::from(baud),
            faults,
            rng: Rng(seed | 1),
        }
    }

    /// Bytes the sender may hand over now: up to 4 KiB ahead of the line,
    /// as a pseudo-terminal's buffer takes them (the link must pace
    /// itself, or a frame sent again waits behind the whole buffer).
    pub fn room(&self, now: u64) -> usize {
        if self.free_at > now * 1000 + 4096 * self.byte_ms_x1000 {
            0
        } else {
            64
        }
    }

    pub fn send(&mut self, now: u64, bytes: &[u8]) {
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

    /// Nothing on the way.
    pub fn idle(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn arrived(&mut self, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            out.push(self.queue.pop_front().unwrap().1);
        }
        out
    }
}

/// Moves a link's output onto its wire as far as the wire takes it.
pub fn pump<B: ferry_core::Buffer, const N: usize>(l: &mut Link<B, N>, w: &mut Line, now: u64) {
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

/// Two links (the client's and the server's) over two lines.
pub struct Transport {
    pub client: Link<Vec<u8>, 16>,
    pub server: Link<Vec<u8>, 16>,
    pub up: Line,
    pub down: Line,
    to_client_link: VecDeque<u8>,
    to_server_link: VecDeque<u8>,
    /// Restart the server's link at this millisecond (a device reboot).
    pub restart_server_at: Option<u64>,
    pub client_events: Vec<LinkEvent>,
    pub server_events: Vec<LinkEvent>,
}

/// What a step of the transport did.
#[derive(Default)]
pub struct Carried {
    pub busy: bool,
    /// The link under that side reset or went down: its stream is gone.
    pub client_eof: bool,
    pub server_eof: bool,
}

pub fn link(epoch: u32, cfg: LinkConfig) -> Link<Vec<u8>, 16> {
    link_at(Instant::ZERO, epoch, cfg)
}

/// A link made at `now`.
pub fn link_at(now: Instant, epoch: u32, cfg: LinkConfig) -> Link<Vec<u8>, 16> {
    let buf = vec![0u8; Link::<Vec<u8>, 16>::buffer_len(usize::from(cfg.max_payload))];
    Link::new(now, cfg, epoch, buf).unwrap()
}

impl Transport {
    pub fn new(cfg: LinkConfig, up: Faults, down: Faults, seed: u64) -> Transport {
        Transport {
            client: link(0x00C1_0000 | seed as u32 & 0xFFFF, cfg),
            server: link(0x5E00_0000 | (seed as u32).rotate_left(9) & 0xFF_FFFF, cfg),
            up: Line::new(cfg.baud, up, seed),
            down: Line::new(cfg.baud, down, seed.wrapping_mul(31) | 1),
            to_client_link: VecDeque::new(),
            to_server_link: VecDeque::new(),
            restart_server_at: None,
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// The client's session sent these bytes.
    pub fn client_sent(&mut self, b: &[u8]) {
        self.to_server_link.extend(b);
    }

    /// The server's session sent these bytes.
    pub fn server_sent(&mut self, b: &[u8]) {
        self.to_client_link.extend(b);
    }

    /// One millisecond at `now`: stream bytes into the links, line bytes
    /// across, stream bytes out into the sessions' inputs.
    pub fn step(
        &mut self,
        now: u64,
        to_server: &mut VecDeque<u8>,
        to_client: &mut VecDeque<u8>,
    ) -> Carried {
        let t = Instant::from_millis(now);
        let mut c = Carried::default();
        if self.restart_server_at.is_some_and(|at| now >= at) {
            self.restart_server_at = None;
            self.server.restart(t, 0x0BAD_5EED ^ now as u32);
        }
        for (l, pend) in [
            (&mut self.client, &mut self.to_server_link),
            (&mut self.server, &mut self.to_client_link),
        ] {
            let (a, b) = pend.as_slices();
            let mut n = l.write(a);
            if n == a.len() {
                n += l.write(b);
            }
            pend.drain(..n);
        }
        let b = self.up.arrived(now);
        self.server.handle_line(t, &b);
        let b = self.down.arrived(now);
        self.client.handle_line(t, &b);
        let mut buf = [0u8; 4096];
        for (l, out) in [
            (&mut self.client, &mut *to_client),
            (&mut self.server, &mut *to_server),
        ] {
            if l.poll_timeout().is_some_and(|d| d <= t) {
                l.handle_timeout(t);
            }
            loop {
                let n = l.read(&mut buf);
                if n == 0 {
                    break;
                }
                out.extend(&buf[..n]);
            }
        }
        while let Some(e) = self.client.poll_event() {
            c.client_eof |= e != LinkEvent::Up;
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            c.server_eof |= e != LinkEvent::Up;
            self.server_events.push(e);
        }
        pump(&mut self.client, &mut self.up, now);
        pump(&mut self.server, &mut self.down, now);
        c.busy = !self.to_server_link.is_empty()
            || !self.to_client_link.is_empty()
            || self.client.unacknowledged() > 0
            || self.server.unacknowledged() > 0
            || !self.up.idle()
            || !self.down.idle()
            || !self.client.is_up()
            || !self.server.is_up();
        c
    }
}
