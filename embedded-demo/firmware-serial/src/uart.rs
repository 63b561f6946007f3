//! The mps2 boards' CMSDK APB UART (ARM DDI 0479, "APB UART"): polled
//! data moves, an RX interrupt to wake the core.
//!
//! Registers: DATA `+0x0`; STATE `+0x4` (bit 0 TX full, bit 1 RX full);
//! CTRL `+0x8` (bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt
//! enable); INTSTATUS/INTCLEAR `+0xC`; BAUDDIV `+0x10`.

use core::ptr::{read_volatile, write_volatile};

const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const INTCLEAR: usize = 0xC;
const BAUDDIV: usize = 0x10;

const TX_FULL: u32 = 1 << 0;
const RX_FULL: u32 = 1 << 1;
const TX_EN: u32 = 1 << 0;
const RX_EN: u32 = 1 << 1;
const RX_INT_EN: u32 = 1 << 3;

/// One UART, by its base address.
#[derive(Clone, Copy)]
pub struct Uart(usize);

/// The Ferry line.
pub const UART0: Uart = Uart(0x4000_4000);
/// The console.
pub const UART1: Uart = Uart(0x4000_5000);

impl Uart {
    fn get(self, reg: usize) -> u32 {
        // SAFETY: `self.0 + reg` is one of this UART's 32-bit registers
        // (the two bases above, offsets within the block), always mapped
        // on the board; reading has no effect but the UART's own.
        unsafe { read_volatile((self.0 + reg) as *const u32) }
    }

    fn set(self, reg: usize, v: u32) {
        // SAFETY: as in `get`; the UART is this image's alone.
        unsafe { write_volatile((self.0 + reg) as *mut u32, v) }
    }

    /// Turns transmit and receive on at `baud` from a `clock_hz` bus, with
    /// the RX interrupt if `rx_interrupt`.
    pub fn enable(self, clock_hz: u32, baud: u32, rx_interrupt: bool) {
        // The divider must be at least 16.
        self.set(BAUDDIV, (clock_hz / baud.max(1)).max(16));
        let int = if rx_interrupt { RX_INT_EN } else { 0 };
        self.set(CTRL, TX_EN | RX_EN | int);
    }

    /// A received byte, if one is waiting.
    pub fn read(self) -> Option<u8> {
        if self.readable() {
            Some(self.get(DATA) as u8)
        } else {
            None
        }
    }

    /// Whether a received byte is waiting.
    pub fn readable(self) -> bool {
        self.get(STATE) & RX_FULL != 0
    }

    /// Whether a byte can be written now.
    pub fn writable(self) -> bool {
        self.get(STATE) & TX_FULL == 0
    }

    /// Writes what the transmitter takes now; how many bytes.
    pub fn write(self, bytes: &[u8]) -> usize {
        let mut n = 0;
        for &b in bytes {
            if !self.writable() {
                break;
            }
            self.set(DATA, u32::from(b));
            n += 1;
        }
        n
    }

    /// Writes all of `bytes`, waiting for room.
    pub fn write_all(self, bytes: &[u8]) {
        for &b in bytes {
            while !self.writable() {}
            self.set(DATA, u32::from(b));
        }
    }

    /// Acknowledges every interrupt of this UART.
    pub fn clear_interrupts(self) {
        self.set(INTCLEAR, 0xF);
    }
}
