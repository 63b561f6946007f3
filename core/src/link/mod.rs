//! A reliable, ordered byte stream over an unreliable byte pipe — a UART,
//! RS-485, a radio modem — for the Ferry session above it
//! (docs/PROTOCOL.md#serial-link). Sans-IO like the rest of the core: the
//! driver feeds line bytes and time in, takes line bytes out, and moves
//! stream bytes between the link and the session.
//!
//! - **Framing**: every frame is COBS-encoded and ends with a zero byte,
//!   so a receiver finds the next frame after garbage, a dropped byte or
//!   a cut line; a CRC-32 covers each frame.
//! - **Selective repeat**: numbered data frames, cumulative and selective
//!   acknowledgements (a 32-frame bitmap); a frame is sent again when a
//!   frame sent after it is acknowledged (fast), or when the adaptive
//!   retransmission timer runs out (Karn, doubling to 0.5 s).
//! - **Epochs**: each side starts with a random epoch and announces it
//!   (`Sync`); data frames carry the link's id (both epochs combined), so
//!   after either side restarts no frame of the old link is accepted, and
//!   the stream above sees [`LinkEvent::Reset`]: a clean close, after
//!   which the client resumes.
//! - **Flow control**: each acknowledgement carries the receiver's free
//!   frames (credit); a small receiver sets a small window.
//! - **Keepalive**: a side silent for [`LinkConfig::keepalive_ms`] probes;
//!   hearing nothing for [`LinkConfig::dead_after_ms`] is
//!   [`LinkEvent::Down`]. A cable pulled for less than that costs only
//!   the time it was out.
//! - **Adaptation**: the payload size follows the measured loss: from the
//!   bytes sent per frame lost, the size that maximises goodput,
//!   `sqrt(overhead × bytes / lost)` (1 024 bytes on a clean line, ~500
//!   at a bit error rate of 1e-5, ~160 at 1e-4), starting at 512 and
//!   growing past it with the bytes that passed; the timers follow the measured
//!   round trip, starting from the line rate.
//!
//! Driving: after any input (`handle_line`, `handle_timeout`, `write`,
//! `read`) drain [`Link::transmit`] / [`Link::transmit_done`] and
//! [`Link::poll_event`], then sleep until [`Link::poll_timeout`] or input.

mod wire;

pub use wire::crc32;

use crate::endpoint::Buffer;
use crate::setup::{BufferKind, InsufficientSize, SetupError};
use crate::time::Instant;

/// What the link is told once.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// The largest payload of one data frame, 64–1024 bytes.
    pub max_payload: u16,
    /// The line rate in bits per second (8N1: a byte is 10 bits), for the
    /// first retransmission timer; measured round trips take over.
    pub baud: u32,
    /// Silence (nothing sent) after which this side probes the peer, in
    /// milliseconds (as every time in the link: no `Duration` arithmetic
    /// on a microcontroller).
    pub keepalive_ms: u32,
    /// Silence (nothing heard) after which the link is down, in
    /// milliseconds (at most 24 days).
    pub dead_after_ms: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            max_payload: 1024,
            baud: 115_200,
            keepalive_ms: 1_000,
            dead_after_ms: 20_000,
        }
    }
}

/// What happened to the link, for the stream above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link with the peer is up: a new, empty stream.
    Up,
    /// The peer restarted (a new epoch): the stream so far is gone, every
    /// byte not yet acknowledged with it. The session above is closed.
    Reset,
    /// Nothing heard for [`LinkConfig::dead_after_ms`]: the stream is gone.
    Down,
}

/// What a link did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Data frames sent, first times and again (wrapping).
    pub frames: u32,
    /// Of those, sent again because a later frame was acknowledged.
    pub fast_resends: u32,
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// The payload size chosen now.
    pub payload: usize,
    /// The retransmission timeout now, in milliseconds.
    pub rto_ms: u32,
}

/// The smallest payload the adaptation chooses.
const MIN_PAYLOAD: usize = 64;
/// The payload a link starts with; it grows past it only with the bytes
/// that passed, and at most doubles with each acknowledgement. Frames
/// are cut when written, so a window cut at 1 024 bytes before the first
/// loss was seen stays at 1 024 bytes however bad the line: at 0.5 % of
/// bytes damaged such a frame passes once in 180 tries, and a 12 KB put
/// took 500 s (simulated; the link proptest found it). Starting at 256
/// cost the real line at a bit error rate of 1e-5 (115 200 baud): 24.6 to
/// 39.8 s over five runs (0.93 to 0.57 of its rate; the timers lagged
/// the growing frames); at 512 three runs took 24.55-24.60 s (0.93).
const START_PAYLOAD: usize = 512;
/// Bytes a data frame adds to its payload on the wire (header, CRC,
/// COBS's first byte, the delimiter): the adaptation's overhead.
const OVERHEAD: u32 = (wire::DATA_HEADER + wire::CRC_LEN + 2) as u32;
/// The retransmission timer's bounds. The line is the two sides' alone
/// (no one to make room for), so a timeout backs off to half a second
/// at most: at a bit error rate of 2e-4 a 1 s cap spent most of a
/// transfer waiting (24 KB at 921 600 baud: 4–12 s, 4–12 timeouts).
const RTO_MIN: u32 = 50;
const RTO_MAX: u32 = 500;
/// How often a side that has no link yet says `Sync`.
const SYNC_EVERY: u32 = 250;

#[derive(Debug, Clone, Copy)]
struct TxSlot {
    len: u16,
    /// When its last byte left the line, as far as the line rate tells
    /// (frames queued behind others leave later: a round trip measured
    /// from there has no queueing in it), and the order of that sending.
    sent_at: u32,
    order: u32,
    tries: u8,
    sacked: bool,
    resend: bool,
}

#[derive(Debug, Clone, Copy)]
struct RxSlot {
    len: u16,
    have: bool,
}

impl TxSlot {
    const EMPTY: TxSlot = TxSlot {
        len: 0,
        sent_at: 0,
        order: 0,
        tries: 0,
        sacked: false,
        resend: false,
    };
}

impl RxSlot {
    const EMPTY: RxSlot = RxSlot {
        len: 0,
        have: false,
    };
}

/// The state of the stream each way, all of it dropped on a link reset.
#[derive(Clone, Copy)]
struct Streams<const N: usize> {
    // Sending: frames snd_una..snd_nxt are unacknowledged; the frame at
    // snd_nxt is being filled with `fill` bytes.
    tx: [TxSlot; N],
    snd_una: u16,
    snd_nxt: u16,
    fill: usize,
    peer_limit: u16,
    // Receiving: frames rd_seq..rcv_nxt are held for reading (out of
    // order ones beyond, flagged), `rd_off` of the first read already.
    rx: [RxSlot; N],
    rd_seq: u16,
    rd_off: usize,
    rcv_nxt: u16,
    ack_due: bool,
    probe_due: bool,
    // The frame being sent (encoded): its length, and how much of it
    // went to the line.
    out_len: usize,
    out_off: usize,
}

impl<const N: usize> Streams<N> {
    const fn new() -> Self {
        Streams {
            tx: [TxSlot::EMPTY; N],
            snd_una: 0,
            snd_nxt: 0,
            fill: 0,
            peer_limit: N as u16,
            rx: [RxSlot::EMPTY; N],
            rd_seq: 0,
            rd_off: 0,
            rcv_nxt: 0,
            ack_due: false,
            probe_due: false,
            out_len: 0,
            out_off: 0,
        }
    }
}

/// One side of a serial link, holding up to `N` frames in flight each
/// way (at most 32: the selective acknowledgement's bitmap).
pub struct Link<B, const N: usize = 16> {
    buf: B,
    /// The streams both ways: started over as one on a link reset.
    s: Streams<N>,
    cfg: LinkConfig,
    epoch: u32,
    /// The peer's epoch, 0 while there is no link (epochs are never 0).
    peer: u32,
    sync_due: bool,
    /// Events not yet polled, one bit each (see [`Self::push_event`]).
    events: u8,
    /// Data frames handed to the line so far (a frame's `order` is when
    /// it last was: fast retransmission goes by it).
    order: u32,
    // Timers and measures, in milliseconds. Points in time are the low
    // 32 bits of the caller's milliseconds, compared by their wrapping
    // difference (`since`): 64-bit arithmetic on a Cortex-M4 cost a fifth
    // of the link's flash. Every stamp is renewed within seconds (the
    // keepalive, the dead time), far from the 24 days a difference holds.
    srtt: u32,
    rttvar: u32,
    rto: u32,
    last_heard: u32,
    last_sent: u32,
    last_sync: u32,
    /// When the frames handed to the line so far will have left it, in
    /// 1/1024 ms (wrapping): whole milliseconds, summed frame after
    /// frame, ran 0.3 % ahead of the line and let a port's buffer fill up.
    line_free: u32,
    /// What a byte takes on the line, in 1/1024 ms times 256.
    byte_ticks_x256: u32,
    /// The caller's time, the latest seen.
    now: u64,
    payload: usize,
    /// The largest payload the peer takes (its `Sync` says).
    peer_max: usize,
    // 32 bits: a Cortex-M has no 64-bit division (the library routine
    // cost 864 bytes of flash).
    sent_bytes: u32,
    lost: u32,
    // The frame being received (raw).
    raw_len: usize,
    raw_overflow: bool,
    stats: LinkStats,
    /// [`LinkConfig::keepalive_ms`] and [`LinkConfig::dead_after_ms`],
    /// at most `i32::MAX` (stamps are compared by signed difference).
    keepalive: u32,
    dead_after: u32,
    /// Worked out once, from the line rate and the buffer's layout (each
    /// took a division or a multiplication wherever it was used):
    /// a full frame encoded, in bytes; the retransmission timer's floor
    /// (see [`Self::rto_floor`]); how far ahead of the line to stage
    /// bytes (see [`Self::ahead`], renewed with the payload size).
    full_frame: usize,
    rto_floor: u32,
    ahead: u32,
}

impl<B: Buffer, const N: usize> Link<B, N> {
    /// The buffer length `Link::new` needs for `max_payload`.
    pub const fn buffer_len(max_payload: usize) -> usize {
        let frame = wire::DATA_HEADER + max_payload + wire::CRC_LEN;
        2 * N * max_payload + 2 * wire::encoded_len(frame)
    }

    /// A link starting with `epoch` (random: a restart must pick another;
    /// 0, which means "none" on the wire, is taken as 1) in the caller's
    /// `buf` of [`Self::buffer_len`] bytes at least.
    pub fn new(now: Instant, cfg: LinkConfig, epoch: u32, buf: B) -> Result<Self, SetupError> {
        let epoch = epoch.max(1);
        if N == 0 || N > 32 || !(64..=1024).contains(&cfg.max_payload) {
            return Err(SetupError::Window);
        }
        let required = Self::buffer_len(usize::from(cfg.max_payload));
        if buf.as_ref().len() < required {
            return Err(SetupError::InsufficientSize(InsufficientSize {
                buffer: BufferKind::Input,
                required,
            }));
        }
        // 8N1: 10 bits a byte, in 1/1024 ms, times 256 (fits 32 bits).
        let byte_ticks_x256 = 2_621_440_000 / cfg.baud.max(300);
        // The first timer: a window of full frames on the line, twice.
        let frame = wire::encoded_len(Self::frame_len(usize::from(cfg.max_payload)));
        let frame_ms = ticks(byte_ticks_x256, frame) >> 10;
        let now32 = now.as_millis() as u32;
        let mut link = Link {
            buf,
            s: Streams::new(),
            cfg,
            epoch,
            peer: 0,
            sync_due: true,
            events: 0,
            order: 0,
            srtt: 0,
            rttvar: 0,
            rto: (2 * N as u32 * frame_ms + 100).clamp(RTO_MIN, RTO_MAX),
            last_heard: now32,
            last_sent: now32,
            last_sync: now32,
            line_free: now32 << 10,
            byte_ticks_x256,
            now: now.as_millis(),
            payload: START_PAYLOAD.min(usize::from(cfg.max_payload)),
            peer_max: usize::from(cfg.max_payload),
            sent_bytes: 0,
            lost: 0,
            raw_len: 0,
            raw_overflow: false,
            stats: LinkStats::default(),
            keepalive: cfg.keepalive_ms.min(i32::MAX as u32),
            dead_after: cfg.dead_after_ms.min(i32::MAX as u32),
            full_frame: frame,
            rto_floor: Self::rto_floor(byte_ticks_x256, frame),
            ahead: 0,
        };
        link.set_payload(link.payload);
        Ok(link)
    }

    const fn frame_len(payload: usize) -> usize {
        wire::DATA_HEADER + payload + wire::CRC_LEN
    }

    fn p(&self) -> usize {
        usize::from(self.cfg.max_payload)
    }

    // Regions of the buffer.
    fn tx_at(&self, seq: u16) -> usize {
        usize::from(seq) % N * self.p()
    }
    fn rx_at(&self, seq: u16) -> usize {
        (N + usize::from(seq) % N) * self.p()
    }
    fn out_at(&self) -> usize {
        2 * N * self.p()
    }
    fn raw_at(&self) -> usize {
        self.out_at() + self.full_frame
    }
    fn raw_cap(&self) -> usize {
        self.full_frame
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            payload: self.payload,
            rto_ms: self.rto,
            ..self.stats
        }
    }

    /// Whether a link with the peer is up (the stream carries bytes).
    pub fn is_up(&self) -> bool {
        self.peer != 0
    }

    /// The link's id in data and acknowledgement frames: both epochs, so
    /// a frame of an older link (either side restarted since) never
    /// matches.
    fn link_id(&self) -> Option<u32> {
        self.is_up().then_some(self.peer ^ self.epoch)
    }

    /// Starts over as after a restart, with a new `epoch`: the stream is
    /// dropped and the peer hears of it.
    #[inline(never)]
    pub fn restart(&mut self, now: Instant, epoch: u32) {
        self.now = now.as_millis();
        self.epoch = epoch.max(1);
        if core::mem::take(&mut self.peer) != 0 {
            self.push_event(LinkEvent::Reset);
        }
        self.clear_streams();
        self.sync_due = true;
    }

    fn clear_streams(&mut self) {
        self.s = Streams::new();
    }

    /// Notes `e` for [`Self::poll_event`]. A link that went away before
    /// the stream above heard it was up never was up for it; the order
    /// they come out in (a reset, down, up) is the order that matters.
    fn push_event(&mut self, e: LinkEvent) {
        self.events = match e {
            LinkEvent::Reset => self.events & !4 | 1,
            LinkEvent::Down => self.events & !4 | 2,
            LinkEvent::Up => self.events | 4,
        };
    }

    /// The next thing that happened to the link.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        let e = match self.events.trailing_zeros() {
            0 => LinkEvent::Reset,
            1 => LinkEvent::Down,
            2 => LinkEvent::Up,
            _ => return None,
        };
        self.events &= self.events - 1;
        Some(e)
    }

    // ---- the stream side ----

    /// Takes up to `data.len()` bytes of the stream to send; returns how
    /// many (0 while the link is not up or its window is full).
    ///
    /// Never inlined, nor are `read`, `restart` and `unacknowledged`:
    /// at opt-level "z" a driver's loop that inlined them cost 700 bytes
    /// more flash (`.ci/size-report`).
    #[inline(never)]
    pub fn write(&mut self, data: &[u8]) -> usize {
        if !self.is_up() {
            return 0;
        }
        let mut taken = 0;
        while taken < data.len() {
            if self.in_flight() >= N as u16 {
                break;
            }
            let room = self.payload.saturating_sub(self.s.fill);
            if room == 0 {
                self.cut();
                continue;
            }
            let n = room.min(data.len() - taken);
            let at = self.tx_at(self.s.snd_nxt) + self.s.fill;
            self.buf.as_mut()[at..at + n].copy_from_slice(&data[taken..taken + n]);
            self.s.fill += n;
            taken += n;
        }
        taken
    }

    /// Stream bytes that arrived in order, as many as fit in `out`.
    #[inline(never)]
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut given = 0;
        while given < out.len() && self.s.rd_seq != self.s.rcv_nxt {
            let slot = usize::from(self.s.rd_seq) % N;
            let len = usize::from(self.s.rx[slot].len);
            let n = (len - self.s.rd_off).min(out.len() - given);
            let at = self.rx_at(self.s.rd_seq) + self.s.rd_off;
            out[given..given + n].copy_from_slice(&self.buf.as_ref()[at..at + n]);
            given += n;
            self.s.rd_off += n;
            if self.s.rd_off == len {
                self.s.rx[slot] = RxSlot::EMPTY;
                self.s.rd_seq = self.s.rd_seq.wrapping_add(1);
                self.s.rd_off = 0;
                // Room again: the peer may be waiting for it.
                self.s.ack_due = true;
            }
        }
        given
    }

    /// Stream bytes sent and not yet acknowledged, or waiting to be sent.
    #[inline(never)]
    pub fn unacknowledged(&self) -> usize {
        (0..self.in_flight())
            .map(|i| usize::from(self.s.tx[usize::from(self.s.snd_una.wrapping_add(i)) % N].len))
            .sum::<usize>()
            + self.s.fill
    }

    fn in_flight(&self) -> u16 {
        self.s.snd_nxt.wrapping_sub(self.s.snd_una)
    }

    /// Closes the frame being filled: it goes out next.
    fn cut(&mut self) {
        if self.s.fill == 0 || self.in_flight() >= N as u16 {
            return;
        }
        let slot = usize::from(self.s.snd_nxt) % N;
        self.s.tx[slot] = TxSlot {
            len: self.s.fill as u16,
            resend: true,
            ..TxSlot::EMPTY
        };
        self.s.snd_nxt = self.s.snd_nxt.wrapping_add(1);
        self.s.fill = 0;
    }

    // ---- the line side ----

    /// Bytes from the line, any amount, garbage included.
    pub fn handle_line(&mut self, now: Instant, bytes: &[u8]) {
        self.now = self.now.max(now.as_millis());
        let (raw, cap) = (self.raw_at(), self.raw_cap());
        for &b in bytes {
            if b != 0 {
                if self.raw_len < cap {
                    self.buf.as_mut()[raw + self.raw_len] = b;
                    self.raw_len += 1;
                } else {
                    self.raw_overflow = true;
                }
                continue;
            }
            let len = core::mem::take(&mut self.raw_len);
            if core::mem::take(&mut self.raw_overflow) || len == 0 {
                continue;
            }
            let frame = &mut self.buf.as_mut()[raw..raw + len];
            if let Some(n) = wire::decode_in_place(frame) {
                if let Some(f) = wire::parse(&frame[..n]) {
                    self.on_frame(f);
                }
            }
        }
    }

    fn on_frame(&mut self, f: wire::Frame) {
        match f {
            wire::Frame::Sync {
                epoch,
                known,
                max_payload,
            } => self.on_sync(epoch, known, max_payload),
            wire::Frame::Data {
                link,
                seq,
                ack,
                credit,
                len,
            } if Some(link) == self.link_id() => {
                self.last_heard = self.t();
                self.on_ack(ack, credit, 0);
                self.on_data(seq, len);
            }
            wire::Frame::Ack {
                link,
                ack,
                credit,
                sack,
                flags,
            } if Some(link) == self.link_id() => {
                self.last_heard = self.t();
                self.on_ack(ack, credit, sack);
                if flags & wire::FLAG_PROBE != 0 {
                    self.s.ack_due = true;
                }
            }
            // Another link's (an older epoch's) frame: never accepted.
            _ => {}
        }
    }

    fn on_sync(&mut self, epoch: u32, known: u32, max_payload: u16) {
        self.last_heard = self.t();
        // Never more than the peer's buffers take (a device's: 256).
        // (`max` then `min`, not `clamp`: no bounds to assert, no panic.)
        self.peer_max = usize::from(max_payload).max(MIN_PAYLOAD).min(self.p());
        self.set_payload(self.payload.min(self.peer_max));
        if known != self.epoch {
            // The peer does not know this side yet (or any more).
            self.sync_due = true;
        }
        if epoch != self.peer && epoch != 0 {
            // A new peer epoch: the peer (re)started.
            if self.is_up() {
                self.push_event(LinkEvent::Reset);
            }
            self.clear_streams();
            self.peer = epoch;
            self.push_event(LinkEvent::Up);
        }
    }

    fn on_data(&mut self, seq: u16, len: usize) {
        self.s.ack_due = true;
        let ahead = seq.wrapping_sub(self.s.rd_seq);
        let slot = usize::from(seq) % N;
        // Outside the window, or had already: acknowledged again only.
        if ahead >= N as u16 || seq.wrapping_sub(self.s.rcv_nxt) >= N as u16 || self.s.rx[slot].have
        {
            return;
        }
        if len > self.p() {
            return;
        }
        let from = self.raw_at() + wire::DATA_HEADER;
        let to = self.rx_at(seq);
        self.buf.as_mut().copy_within(from..from + len, to);
        self.s.rx[slot] = RxSlot {
            len: len as u16,
            have: true,
        };
        while self.s.rx[usize::from(self.s.rcv_nxt) % N].have
            && self.s.rcv_nxt.wrapping_sub(self.s.rd_seq) < N as u16
        {
            self.s.rcv_nxt = self.s.rcv_nxt.wrapping_add(1);
            if self.s.rcv_nxt.wrapping_sub(self.s.rd_seq) >= N as u16 {
                break;
            }
        }
    }

    /// Frames the peer may still send beyond what it has acknowledged.
    fn credit(&self) -> u8 {
        (N as u16 - self.s.rcv_nxt.wrapping_sub(self.s.rd_seq)) as u8
    }

    /// The selective bitmap: bit i for frame `rcv_nxt + 1 + i` held.
    fn sack(&self) -> u32 {
        let mut bits = 0u32;
        for i in 0..(N as u16).saturating_sub(1).min(32) {
            let seq = self.s.rcv_nxt.wrapping_add(1 + i);
            if seq.wrapping_sub(self.s.rd_seq) < N as u16 && self.s.rx[usize::from(seq) % N].have {
                bits |= 1 << i;
            }
        }
        bits
    }

    fn on_ack(&mut self, ack: u16, credit: u8, sack: u32) {
        let acked = ack.wrapping_sub(self.s.snd_una);
        if acked > self.in_flight() {
            return;
        }
        if acked > 0 {
            // Progress: the timer's back-off ends (as Linux does), and
            // the payload may grow.
            if self.srtt > 0 {
                self.set_rto();
            }
            self.adapt();
        }
        for _ in 0..acked {
            let slot = usize::from(self.s.snd_una) % N;
            let s = self.s.tx[slot];
            // Karn: only frames sent once measure the round trip, and only
            // when first heard of (a frame selectively acknowledged before
            // waited for the hole behind it since).
            if s.tries == 1 && !s.sacked {
                self.sample_rtt(s.sent_at);
            }
            self.s.tx[slot] = TxSlot::EMPTY;
            self.s.snd_una = self.s.snd_una.wrapping_add(1);
        }
        self.s.peer_limit = ack.wrapping_add(u16::from(credit));
        // Selective acknowledgements, and the newest frame they show
        // arrived: any frame sent before it and missing is lost.
        let mut newest = None;
        for i in 0..32u16 {
            if sack & (1 << i) == 0 {
                continue;
            }
            let seq = ack.wrapping_add(1 + i);
            if seq.wrapping_sub(self.s.snd_una) >= self.in_flight() {
                break;
            }
            let slot = self.s.tx[usize::from(seq) % N];
            if !slot.sacked && slot.tries == 1 {
                self.sample_rtt(slot.sent_at);
            }
            self.s.tx[usize::from(seq) % N].sacked = true;
            newest = Some(newest.map_or(slot.order, |o: u32| o.max(slot.order)));
        }
        if let Some(newest) = newest {
            for i in 0..self.in_flight() {
                let seq = self.s.snd_una.wrapping_add(i);
                let s = &mut self.s.tx[usize::from(seq) % N];
                if !s.sacked && !s.resend && s.tries > 0 && s.order < newest {
                    s.resend = true;
                    self.stats.fast_resends = self.stats.fast_resends.wrapping_add(1);
                    self.lost += 1;
                    self.adapt();
                }
            }
        }
    }

    /// A round trip measured: from `sent_at` (when the frame left) to now.
    fn sample_rtt(&mut self, sent_at: u32) {
        let rtt = self.since(sent_at).max(0) as u32;
        if self.srtt == 0 {
            self.srtt = rtt.max(1);
            self.rttvar = rtt / 2;
        } else {
            let err = self.srtt.abs_diff(rtt);
            self.rttvar = (3 * self.rttvar + err) / 4;
            self.srtt = (7 * self.srtt + rtt) / 8;
        }
        self.set_rto();
    }

    /// The retransmission timer from the round trip measured.
    fn set_rto(&mut self) {
        self.rto = (self.srtt + 4 * self.rttvar.max(5))
            .max(self.rto_floor)
            .min(RTO_MAX);
    }

    /// The payload size that maximises goodput for the loss measured.
    fn adapt(&mut self) {
        // Old measures fade: the line may have changed.
        if self.sent_bytes > 1 << 19 {
            self.sent_bytes /= 2;
            self.lost /= 2;
        }
        // No loss seen yet: the payload grows past where it started with
        // the bytes that passed, as if one were lost (1 024 after 64 KB),
        // not on hope.
        let best = match self.lost {
            0 => isqrt(OVERHEAD * self.sent_bytes).max(START_PAYLOAD as u32),
            lost => isqrt(OVERHEAD * self.sent_bytes / lost),
        };
        let grown = (best as usize).min(2 * self.payload);
        self.set_payload(grown.max(MIN_PAYLOAD).min(self.peer_max));
    }

    fn set_payload(&mut self, payload: usize) {
        self.payload = payload;
        self.ahead = Self::ahead(self.byte_ticks_x256, payload);
    }

    // ---- time ----

    /// The low 32 bits of the caller's milliseconds: what stamps hold.
    fn t(&self) -> u32 {
        self.now as u32
    }

    /// Milliseconds from `at` to now (negative for a point still ahead,
    /// such as a frame that has not left the line yet).
    fn since(&self, at: u32) -> i32 {
        self.t().wrapping_sub(at) as i32
    }

    /// When to call [`Self::handle_timeout`] at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut wait = if self.is_up() {
            let ka = self.keepalive as i32 - self.since(self.last_sent);
            let dead = self.dead_after as i32 - self.since(self.last_heard);
            ka.min(dead)
        } else {
            SYNC_EVERY as i32 - self.since(self.last_sync)
        };
        if let Some(age) = self.oldest_unacked() {
            wait = wait.min(self.rto as i32 - age);
        }
        // The line has room again (see `transmit`).
        let over = self.line_lead() - self.ahead as i32;
        if over > 0 {
            wait = wait.min(over >> 10);
        }
        Some(Instant::from_millis(self.now + wait.max(0) as u64))
    }

    /// How long ago the oldest frame still waiting for an acknowledgement
    /// left, in milliseconds.
    fn oldest_unacked(&self) -> Option<i32> {
        let mut oldest = None;
        for s in &self.s.tx {
            if s.tries > 0 && !s.sacked && !s.resend {
                let age = self.since(s.sent_at);
                oldest = Some(oldest.map_or(age, |o: i32| o.max(age)));
            }
        }
        oldest
    }

    /// Time passed: resends, probes, declares the link down.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now.as_millis());
        if !self.is_up() {
            if self.since(self.last_sync) >= SYNC_EVERY as i32 {
                self.sync_due = true;
            }
            return;
        }
        if self.since(self.last_heard) >= self.dead_after as i32 {
            self.peer = 0;
            self.clear_streams();
            self.push_event(LinkEvent::Down);
            self.sync_due = true;
            return;
        }
        if self
            .oldest_unacked()
            .is_some_and(|age| age >= self.rto as i32)
        {
            // Everything not acknowledged goes again; the timer backs
            // off (a pulled cable costs a retry a second at most).
            for i in 0..self.in_flight() {
                let t = &mut self.s.tx[usize::from(self.s.snd_una.wrapping_add(i)) % N];
                if t.tries > 0 && !t.sacked {
                    t.resend = true;
                }
            }
            self.lost += 1;
            self.stats.timeouts = self.stats.timeouts.wrapping_add(1);
            self.adapt();
            self.rto = (self.rto * 2).min(RTO_MAX);
            self.s.probe_due = true;
        }
        let quiet = self.since(self.last_sent);
        if quiet >= self.keepalive as i32 {
            self.s.probe_due = true;
        }
        // Stopped by the peer's credit with bytes to send: ask again.
        if self.s.fill > 0 && self.blocked() && quiet >= self.rto as i32 {
            self.s.probe_due = true;
        }
    }

    /// The retransmission timer's floor: 50 ms and a full frame's time on
    /// the line (an acknowledgement may wait behind one going the other
    /// way). With 20 ms, a real line (a relay, the OS's wake-ups) timed
    /// out as often as it lost a frame, and each timeout sent the whole
    /// window again: 0.85 of the line rate at 1e-5 and 115 200 baud.
    fn rto_floor(byte_ticks_x256: u32, full_frame: usize) -> u32 {
        (RTO_MIN + (ticks(byte_ticks_x256, full_frame) >> 10)).min(RTO_MAX)
    }

    /// How far ahead of the line the link may hand it bytes: two full
    /// frames, and 20 ms for the driver's own delays (a loaded machine
    /// wakes it late: with 5 ms a clean line ran at 0.62 of its rate
    /// while CI built beside it).
    fn ahead(byte_ticks_x256: u32, payload: usize) -> u32 {
        let frame = wire::encoded_len(Self::frame_len(payload));
        2 * ticks(byte_ticks_x256, frame) + (20 << 10)
    }

    /// How far ahead of now the line is busy with what was handed to it,
    /// in 1/1024 ms (negative: idle since).
    fn line_lead(&self) -> i32 {
        self.line_free.wrapping_sub(self.t() << 10) as i32
    }

    fn blocked(&self) -> bool {
        self.s.snd_nxt.wrapping_sub(self.s.snd_una)
            >= self.s.peer_limit.wrapping_sub(self.s.snd_una)
    }

    // ---- output ----

    /// The line bytes to send now (a frame, or the rest of one); call
    /// [`Self::transmit_done`] with what was written.
    ///
    /// Paced to the line rate: nothing more is staged while what went out
    /// already fills the line for the pacing lead (`ahead`). A port's
    /// buffer (a pseudo-terminal's holds 4 KiB, 355 ms at 115 200 baud) would
    /// otherwise queue a whole window, and a frame sent again would wait
    /// behind it: 256 KiB at a bit error rate of 1e-5 went at 0.75 of the
    /// line rate with such a buffer, 0.91 without (simulated).
    pub fn transmit(&mut self, now: Instant) -> &[u8] {
        self.now = self.now.max(now.as_millis());
        if self.s.out_off == self.s.out_len && self.line_lead() <= self.ahead as i32 {
            self.s.out_off = 0;
            self.s.out_len = self.stage();
        }
        let at = self.out_at();
        &self.buf.as_ref()[at + self.s.out_off..at + self.s.out_len]
    }

    /// `n` bytes of [`Self::transmit`] went to the line.
    pub fn transmit_done(&mut self, n: usize) {
        self.s.out_off = (self.s.out_off + n).min(self.s.out_len);
    }

    /// Encodes the next frame due into the output region; its length.
    fn stage(&mut self) -> usize {
        // (`handle_timeout` sets `sync_due` again while no link is up.)
        let frame = if self.sync_due {
            self.sync_due = false;
            self.last_sync = self.t();
            wire::Frame::Sync {
                epoch: self.epoch,
                known: self.peer,
                max_payload: self.cfg.max_payload,
            }
        } else if let Some(link) = self.link_id() {
            match self.next_data() {
                Some(seq) => self.data_frame(link, seq),
                None if self.s.ack_due || self.s.probe_due => {
                    let flags = if core::mem::take(&mut self.s.probe_due) {
                        wire::FLAG_PROBE
                    } else {
                        0
                    };
                    self.s.ack_due = false;
                    wire::Frame::Ack {
                        link,
                        ack: self.s.rcv_nxt,
                        credit: self.credit(),
                        sack: self.sack(),
                        flags,
                    }
                }
                None => return 0,
            }
        } else {
            return 0;
        };
        let (out, cap) = (self.out_at(), self.raw_cap());
        let payload = match frame {
            wire::Frame::Data { seq, len, .. } => self.tx_at(seq)..self.tx_at(seq) + len,
            _ => 0..0,
        };
        let (slots, tail) = self.buf.as_mut().split_at_mut(out);
        let len = wire::write(&frame, &slots[payload], &mut tail[..cap]);
        self.last_sent = self.t();
        self.sent_bytes = self.sent_bytes.saturating_add(len as u32);
        let lead = self.line_lead().max(0) as u32 + ticks(self.byte_ticks_x256, len);
        self.line_free = (self.t() << 10).wrapping_add(lead);
        if let wire::Frame::Data { seq, .. } = frame {
            self.s.tx[usize::from(seq) % N].sent_at = self.t().wrapping_add(lead >> 10);
        }
        len
    }

    /// The next data frame to send: one to send again first, then a new
    /// one within the peer's credit (the frame being filled is cut when
    /// nothing else is due, so a short write does not wait).
    fn next_data(&mut self) -> Option<u16> {
        let limit = self.s.peer_limit;
        let within = |seq: u16, una: u16| seq.wrapping_sub(una) < limit.wrapping_sub(una);
        for i in 0..self.in_flight() {
            let seq = self.s.snd_una.wrapping_add(i);
            if self.s.tx[usize::from(seq) % N].resend && within(seq, self.s.snd_una) {
                return Some(seq);
            }
        }
        if within(self.s.snd_nxt, self.s.snd_una) {
            self.cut();
            let seq = self.s.snd_nxt.wrapping_sub(1);
            if self.in_flight() > 0 && self.s.tx[usize::from(seq) % N].resend {
                return Some(seq);
            }
        }
        None
    }

    /// Stages data frame `seq` (its payload copied behind the header).
    fn data_frame(&mut self, link: u32, seq: u16) -> wire::Frame {
        let slot = usize::from(seq) % N;
        self.order = self.order.wrapping_add(1);
        let t = &mut self.s.tx[slot];
        t.resend = false;
        t.tries = t.tries.saturating_add(1);
        t.order = self.order;
        self.stats.frames = self.stats.frames.wrapping_add(1);
        let len = usize::from(t.len);
        // The acknowledgement rides along, unless frames came out of order
        // (then a separate `Ack` carries the bitmap).
        if self.sack() == 0 {
            self.s.ack_due = false;
        }
        wire::Frame::Data {
            link,
            seq,
            ack: self.s.rcv_nxt,
            credit: self.credit(),
            len,
        }
    }
}

/// What `bytes` take on a line of `byte_ticks_x256`, in 1/1024 ms.
fn ticks(byte_ticks_x256: u32, bytes: usize) -> u32 {
    ((u64::from(byte_ticks_x256) * bytes as u64) >> 8) as u32
}

/// The integer square root (Newton's method).
fn isqrt(n: u32) -> u32 {
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

#[cfg(test)]
mod tests;
