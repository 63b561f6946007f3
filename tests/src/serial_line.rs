//! A virtual serial line for the tests: two pseudo-terminals whose slaves
//! (raw mode) are the line's ends, `a` and `b`, joined by a relay thread
//! that passes bytes each way at the line rate (8N1: baud / 10 bytes a
//! second), with seeded faults: bit errors, dropped bytes, and a pulled
//! cable (no byte passes) at a set time or on demand. Bytes the far end
//! does not take (no process has it open, or its buffer is full) are lost,
//! as on a real line. Stops when dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::{fcntl_getfl, fcntl_setfl, Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};

/// Faults on the line, the same both ways (each way its own random draws).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Seed for every random fault.
    pub seed: u64,
    /// Probability that a bit is flipped.
    pub bit_error_rate: f64,
    /// Probability that a byte is lost.
    pub drop_rate: f64,
    /// The cable is pulled from this time after the start, for that long.
    pub cut: Option<(Duration, Duration)>,
}

/// A running virtual line; `a` and `b` are the device paths of its ends.
pub struct SerialLine {
    /// One end (e.g. `/dev/pts/3`).
    pub a: PathBuf,
    /// The other end.
    pub b: PathBuf,
    stop: Arc<AtomicBool>,
    cut_until: Arc<Mutex<Option<Instant>>>,
    carried: Arc<[AtomicU64; 2]>,
    relay: Option<JoinHandle<()>>,
}

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A pseudo-terminal: its master (non-blocking) and its slave's path, the
/// slave set to raw mode.
fn pty() -> (OwnedFd, PathBuf) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let path = PathBuf::from(name.to_str().expect("pts path"));
    let flags = fcntl_getfl(&master).expect("getfl");
    fcntl_setfl(&master, flags | OFlags::NONBLOCK).expect("nonblocking");
    // Raw, so no byte is changed or eaten (XON/XOFF, CR/NL, echo); the
    // setting stays with the pty while its master is open.
    let slave = rustix::fs::open(
        &path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open pts");
    let mut t = tcgetattr(&slave).expect("tcgetattr");
    t.make_raw();
    tcsetattr(&slave, OptionalActions::Now, &t).expect("tcsetattr");
    (master, path)
}

/// One direction of the line.
struct Way {
    from: usize,
    to: usize,
    /// Bytes the line may carry now (accrues at the line rate, up to a
    /// UART FIFO's worth).
    credit: f64,
    rng: Rng,
}

impl SerialLine {
    /// Starts a line at `baud` with `faults`.
    pub fn start(baud: u32, faults: Faults) -> SerialLine {
        let (ma, a) = pty();
        let (mb, b) = pty();
        let stop = Arc::new(AtomicBool::new(false));
        let cut_until = Arc::new(Mutex::new(None::<Instant>));
        let carried = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (stop2, cut2, carried2) = (stop.clone(), cut_until.clone(), carried.clone());
        let relay = std::thread::spawn(move || {
            let masters = [ma, mb];
            let rate = f64::from(baud) / 10.0;
            // 10 ms of line, at least a 64-byte FIFO.
            let burst = (rate / 100.0).max(64.0);
            let mut ways = [
                Way {
                    from: 0,
                    to: 1,
                    credit: 0.0,
                    rng: Rng(faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                },
                Way {
                    from: 1,
                    to: 0,
                    credit: 0.0,
                    rng: Rng((faults.seed.rotate_left(29) ^ 0x5DEE_CE66_D1CE_4E5B) | 1),
                },
            ];
            let start = Instant::now();
            let mut last = start;
            let mut buf = vec![0u8; burst as usize + 1];
            // Until dropped: each turn takes a millisecond's sleep.
            while !stop2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
                let now = Instant::now();
                let dt = now.duration_since(last).as_secs_f64();
                last = now;
                let scripted = faults
                    .cut
                    .is_some_and(|(at, len)| (at..at + len).contains(&now.duration_since(start)));
                let on_demand = cut2
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some_and(|until| now < until);
                let cut = scripted || on_demand;
                for (i, w) in ways.iter_mut().enumerate() {
                    w.credit = (w.credit + dt * rate).min(burst);
                    let n = w.credit as usize;
                    if n == 0 {
                        continue;
                    }
                    // EAGAIN: nothing sent; EIO: no process has that end
                    // open. Either way nothing to carry.
                    let Ok(k) = rustix::io::read(masters[w.from].as_fd(), &mut buf[..n]) else {
                        continue;
                    };
                    // The sender's UART spends the time whether or not the
                    // bytes arrive.
                    w.credit -= k as f64;
                    if cut {
                        continue;
                    }
                    let mut out = Vec::with_capacity(k);
                    for &byte in &buf[..k] {
                        if w.rng.chance(faults.drop_rate) {
                            continue;
                        }
                        let mut byte = byte;
                        for bit in 0..8 {
                            if w.rng.chance(faults.bit_error_rate) {
                                byte ^= 1 << bit;
                            }
                        }
                        out.push(byte);
                    }
                    // What the far end cannot take now is lost.
                    if let Ok(m) = rustix::io::write(masters[w.to].as_fd(), &out) {
                        carried2[i].fetch_add(m as u64, Ordering::SeqCst);
                    }
                }
            }
        });
        SerialLine {
            a,
            b,
            stop,
            cut_until,
            carried,
            relay: Some(relay),
        }
    }

    /// Pulls the cable for `d` from now: no byte passes either way.
    pub fn cut_for(&self, d: Duration) {
        *self.cut_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }

    /// Bytes delivered so far, a to b and b to a.
    pub fn carried(&self) -> (u64, u64) {
        (
            self.carried[0].load(Ordering::SeqCst),
            self.carried[1].load(Ordering::SeqCst),
        )
    }
}

impl Drop for SerialLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.relay.take() {
            let _ = t.join();
        }
    }
}
