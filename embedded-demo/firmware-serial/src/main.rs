//! ferry-device's serial firmware for QEMU's `mps2-an386` (a Cortex-M4):
//! the device application (`ferry_device::serial::SerialDevice`: one
//! session at a time, a 16-file 256 KiB RAM store, the built-in commands)
//! on UART0 through ferry-core's serial link. No TCP/IP stack, no heap.
//!
//! - **UART0** (CMSDK APB UART at `0x4000_4000`) is the Ferry line. Its RX
//!   interrupt only wakes the core from `wfi`; the main loop moves bytes.
//! - **SysTick** interrupts every millisecond: the clock of the link's
//!   timers and the session's deadlines.
//! - **UART1** (`0x4000_5000`) is a console: one line at boot and one per
//!   session with the stack's high-water mark, for the size report and
//!   the tests.
//!
//! Build-time configuration (environment variables, read by `option_env!`):
//! `FERRY_DEVICE_USER` and `FERRY_DEVICE_VERIFIER` (the verifier `ferry
//! passwd` writes; the password never reaches the build or the image) give
//! SCRAM login for that user; without them the device is anonymous.
//! `FERRY_DEVICE_BAUD` (default 115200) is the line rate the link paces to.
//!
//! Randomness: the board has no hardware RNG. The link's epoch, the
//! session nonces and the server secret come from MD5 over a 32-byte seed
//! made at build time (build.rs, from the build host's `/dev/urandom`) and
//! the SysTick time of the first byte heard and of each draw. That is only
//! as unpredictable as that timing; a real board reads its TRNG here.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SYST};
use cortex_m_rt::{entry, exception};
use ferry_core::{Instant, Verifier};
use ferry_device::serial::{Buffers, SerialDevice};
use ferry_device::{Auth, RamStore};
use panic_halt as _;
use static_cell::{ConstStaticCell, StaticCell};

mod console;
mod uart;

use uart::Uart;

/// Files and bytes of the RAM store (the board has 4 MiB of RAM).
const FILES: usize = 16;
const STORE_BYTES: usize = 256 * 1024;

/// The CPU and SysTick clock of the mps2 boards (QEMU's `SYSCLK_FRQ`).
const SYSCLK_HZ: u32 = 25_000_000;
/// SysTick counts this many cycles per millisecond.
const TICKS_PER_MS: u32 = SYSCLK_HZ / 1000;

/// The line rate the link paces its output to: what the other end's
/// `--baud` says. QEMU moves UART bytes as fast as its host allows, so
/// the rate is the line's (a relay's or the client's), not the UART's.
const BAUD: u32 = match option_env!("FERRY_DEVICE_BAUD") {
    Some(s) => parse_u32(s),
    None => 115_200,
};

/// A decimal `u32` at compile time (a bad value fails the build).
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "FERRY_DEVICE_BAUD is empty");
    let mut i = 0;
    let mut v: u32 = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "FERRY_DEVICE_BAUD is not a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

type Device = SerialDevice<'static, FILES, STORE_BYTES>;
type Store = RamStore<FILES, STORE_BYTES>;

/// Const-initialised, so the 256 KiB store lives in .bss and is never
/// copied through the stack.
static STORE: ConstStaticCell<Store> = ConstStaticCell::new(Store::new());
static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
static DEVICE: StaticCell<Result<Device, ferry_core::SetupError>> = StaticCell::new();

/// Milliseconds since boot, counted by the SysTick handler (wraps after
/// 49 days; [`Clock`] extends it to 64 bits).
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// UART0's RX interrupt (IRQ 0 on the mps2 boards) and any other: the
/// handler only acknowledges the UART; waking from `wfi` was its job.
#[exception]
unsafe fn DefaultHandler(_irqn: i16) {
    uart::UART0.clear_interrupts();
}

/// The interrupt lines this image enables.
#[derive(Clone, Copy)]
enum Irq {
    Uart0Rx = 0,
}

// SAFETY: 0 is UART0's RX interrupt on mps2-an385/an386 (QEMU
// hw/arm/mps2.c), a valid IRQ number of the board's NVIC.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// The time: SysTick milliseconds extended to 64 bits.
struct Clock {
    last: u32,
    high: u64,
}

impl Clock {
    fn now(&mut self) -> Instant {
        let ms = MILLIS.load(Ordering::Relaxed);
        if ms < self.last {
            self.high += 1 << 32;
        }
        self.last = ms;
        Instant::from_millis(self.high | u64::from(ms))
    }
}

/// SysTick cycles since boot, to a cycle (the millisecond count and the
/// current value, read again if a tick came between).
fn cycles() -> u64 {
    loop {
        let ms = MILLIS.load(Ordering::Relaxed);
        let left = SYST::get_current();
        if MILLIS.load(Ordering::Relaxed) == ms {
            let into = (TICKS_PER_MS - 1).saturating_sub(left);
            return u64::from(ms) * u64::from(TICKS_PER_MS) + u64::from(into);
        }
    }
}

/// The build-time seed (build.rs).
const SEED: &[u8; 32] = include_bytes!(concat!(env!("OUT_DIR"), "/seed.bin"));

/// The generator's state: a key from the seed and the first byte's time,
/// and a counter.
struct Rng {
    key: [u8; 16],
    count: u64,
}

static RNG: Mutex<RefCell<Rng>> = Mutex::new(RefCell::new(Rng {
    key: [0; 16],
    count: 0,
}));

/// Keys the generator with the seed and `entropy` (the time).
fn seed_rng(entropy: u64) {
    let mut m = [0u8; 40];
    m[..32].copy_from_slice(SEED);
    m[32..].copy_from_slice(&entropy.to_le_bytes());
    let key = ferry_core::digest::md5(&m);
    cortex_m::interrupt::free(|cs| RNG.borrow(cs).borrow_mut().key = key);
}

/// Fills `buf`: MD5 of the key, a counter and the time of the draw.
fn random(buf: &mut [u8]) {
    cortex_m::interrupt::free(|cs| {
        let mut rng = RNG.borrow(cs).borrow_mut();
        for chunk in buf.chunks_mut(16) {
            rng.count += 1;
            let mut m = [0u8; 32];
            m[..16].copy_from_slice(&rng.key);
            m[16..24].copy_from_slice(&rng.count.to_le_bytes());
            m[24..].copy_from_slice(&cycles().to_le_bytes());
            let block = ferry_core::digest::md5(&m);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    });
}

/// Who may log in: the build's user, or anyone.
fn auth() -> Auth {
    match (
        option_env!("FERRY_DEVICE_USER"),
        option_env!("FERRY_DEVICE_VERIFIER"),
    ) {
        (Some(user), Some(v)) => match (heapless::String::try_from(user), Verifier::parse(v)) {
            (Ok(name), Ok(v)) => Auth::User(name, v),
            _ => halt("bad FERRY_DEVICE_USER or FERRY_DEVICE_VERIFIER"),
        },
        _ => Auth::Anonymous,
    }
}

/// Says why on the console and stops (a panic would say nothing).
fn halt(why: &str) -> ! {
    console::line(&[why]);
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let stack = console::paint_stack();
    let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| halt("no core peripherals"));
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(TICKS_PER_MS - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    cp.SYST.enable_interrupt();
    let line = uart::UART0;
    line.enable(SYSCLK_HZ, BAUD, true);
    uart::UART1.enable(SYSCLK_HZ, 115_200, false);
    // SAFETY: the handler above only clears the UART's interrupt; no
    // critical section of this image relies on the line being masked.
    unsafe { NVIC::unmask(Irq::Uart0Rx) };
    let auth = auth();
    let anonymous = matches!(auth, Auth::Anonymous);
    console::line(&[
        "ferry-device: booted, ",
        if anonymous { "anonymous" } else { "one user" },
        ", baud ",
        console::dec(u64::from(BAUD), &mut [0; 20]),
    ]);
    let mut clock = Clock { last: 0, high: 0 };

    // Wait for the first byte from the line: its time seeds the generator
    // before the link picks its epoch.
    let first = loop {
        if let Some(b) = line.read() {
            break b;
        }
        cortex_m::interrupt::free(|_| {
            if !line.readable() {
                cortex_m::asm::wfi();
            }
        });
    };
    seed_rng(cycles());
    let device = init(clock.now(), auth);
    device.handle_line(clock.now(), &[first]);
    console::line(&[
        "first byte heard, device set up: stack high water ",
        console::dec(stack.high_water() as u64, &mut [0; 20]),
        " bytes",
    ]);
    serve(device, &mut clock, line, stack)
}

/// The device, in its static. Not inlined: the value is built on this
/// function's stack (1.9 KB; its buffers are a static of their own), which
/// is then free again for the main loop.
#[inline(never)]
fn init(now: Instant, auth: Auth) -> &'static mut Device {
    match DEVICE
        .init_with(|| SerialDevice::new(now, STORE.take(), BUFFERS.take(), auth, random, BAUD))
    {
        Ok(device) => device,
        Err(_) => halt("link setup failed"),
    }
}

/// The main loop: line bytes in, the link and the session, line bytes
/// out; `wfi` until the next interrupt when nothing is due.
fn serve(device: &mut Device, clock: &mut Clock, line: Uart, stack: console::Stack) -> ! {
    let mut was_open = false;
    let mut counted = 0;
    // Line bytes the UART did not take at the last try.
    let mut unsent = false;
    let mut buf = [0u8; 64];
    let mut n = 0;
    // When the device is next due (`poll_at`), as of the last call into it.
    let mut due = device.poll_at();
    loop {
        let now = clock.now();
        // Bytes gather here until a frame ends (a zero byte) or the buffer
        // is full: QEMU's UART hands over one byte per interrupt, and the
        // link acts on whole frames only (COBS), so one call per frame
        // end does the work of one per byte (bench/device-cycles).
        let mut frame_ended = false;
        while n < buf.len() {
            match line.read() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                    if b == 0 {
                        frame_ended = true;
                        break;
                    }
                }
                None => break,
            }
        }
        if frame_ended || n == buf.len() {
            device.handle_line(now, &buf[..n]);
            n = 0;
            due = device.poll_at();
        }
        if frame_ended || unsent || due.is_some_and(|t| t <= now) {
            device.poll(now);
            // Out with what the link has, polling after each write as the
            // session may have more for the link then. Bounded by the
            // link's pacing: it hands out nothing more once the line is
            // full for a while (`poll_at` then says when it has room).
            unsent = false;
            loop {
                let out = device.transmit(now);
                if out.is_empty() {
                    break;
                }
                let k = line.write(out);
                // The UART full before the end: again at the next wake.
                unsent = k < out.len();
                device.transmit_done(k);
                if k == 0 {
                    break;
                }
                device.poll(now);
            }
            // Asked again only after the device was called: at every byte,
            // the link's and the session's timers cost a fifth of a put's
            // instructions (bench/device-cycles).
            due = device.poll_at();
        }
        // A session ends when the link drops or resets (the next client's
        // link: `sessions` moves on) or when the server closes it.
        let (open, count) = (device.in_session(), device.sessions);
        if was_open && (!open || count != counted) {
            let mut a = [0; 20];
            let mut b = [0; 20];
            console::line(&[
                "session ",
                console::dec(u64::from(counted), &mut a),
                " ended: stack high water ",
                console::dec(stack.high_water() as u64, &mut b),
                " bytes",
            ]);
        }
        (was_open, counted) = (open, count);
        // Sleep unless bytes came in meanwhile or the UART has room for
        // what it did not take. Checked with interrupts masked: a byte
        // arriving after the check leaves its interrupt pending, which
        // `wfi` wakes on (its handler runs once they are unmasked), rather
        // than being handled before `wfi` and slept past until SysTick.
        cortex_m::interrupt::free(|_| {
            if !(line.readable() || (unsent && line.writable())) {
                cortex_m::asm::wfi();
            }
        });
    }
}
