//! The console on UART1: whole lines of text without `core::fmt` (its
//! machinery would cost flash the 64 KiB budget has not got), and the
//! stack's high-water mark.

use crate::uart::UART1;

/// Writes `parts` and a newline.
pub fn line(parts: &[&str]) {
    for p in parts {
        UART1.write_all(p.as_bytes());
    }
    UART1.write_all(b"\n");
}

/// `v` in decimal, in `buf`.
pub fn dec(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("?")
}

/// The word painted over the unused stack at boot.
const PAINT: u32 = 0x5afe_57ac;
/// How much of the stack below the entry's frame is painted and watched.
const WATCHED: usize = 64 * 1024;

extern "C" {
    /// The stack's top (cortex-m-rt's link.x: the end of RAM).
    static _stack_start: u32;
}

/// The painted stack region: `[low, top)`.
#[derive(Clone, Copy)]
pub struct Stack {
    low: usize,
    top: usize,
}

/// Paints the stack below the caller's frame (leaving 256 bytes for
/// this function) so that [`Stack::high_water`] can tell how deep it
/// ever went.
#[inline(never)]
pub fn paint_stack() -> Stack {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let high = (sp - 256) & !3;
    let low = high - WATCHED;
    let mut p = low;
    while p < high {
        // SAFETY: `[low, high)` is RAM below the live stack (the stack
        // grows down from `top`, and `sp - 256` is under this frame);
        // `.bss` ends far below it (the 256 KiB store is under 4 MiB of
        // RAM), and nothing else uses this memory yet.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    Stack { low, top }
}

impl Stack {
    /// The most bytes of stack used since boot: from the top down to the
    /// lowest word no longer painted.
    pub fn high_water(&self) -> usize {
        let mut p = self.low;
        // SAFETY: reads of the painted region, RAM owned by the stack.
        while p < self.top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        self.top - p
    }
}
