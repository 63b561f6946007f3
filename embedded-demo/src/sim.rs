//! An in-memory Ethernet link between two smoltcp interfaces, for tests and
//! benchmarks without a TAP device or root. Wrap each end in smoltcp's
//! `FaultInjector` for loss and corruption; the link itself can reorder.

use core::cell::RefCell;

use heapless::{Deque, Vec};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame carried.
pub const MTU: usize = 1514;
/// Frames queued per direction.
pub const QUEUE: usize = 64;

type Frame = Vec<u8, MTU>;
type Queue = Deque<Frame, QUEUE>;

/// The two directions of the wire, plus a seeded reorderer.
pub struct Link {
    a_to_b: RefCell<Queue>,
    b_to_a: RefCell<Queue>,
    reorder_pct: u8,
    rng: RefCell<u32>,
}

/// Which end of a [`Link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// One end.
    A,
    /// The other.
    B,
}

impl Link {
    /// A perfect link.
    pub const fn new() -> Self {
        Link {
            a_to_b: RefCell::new(Deque::new()),
            b_to_a: RefCell::new(Deque::new()),
            reorder_pct: 0,
            rng: RefCell::new(0x2545_f491),
        }
    }

    /// Swaps the next two queued frames with this chance (percent).
    pub fn set_reorder(&mut self, pct: u8, seed: u32) {
        self.reorder_pct = pct;
        *self.rng.get_mut() = seed | 1;
    }

    /// One end of the link, as a smoltcp device.
    pub fn end(&self, end: End) -> Port<'_> {
        Port { link: self, end }
    }

    fn roll(&self) -> u8 {
        let mut x = self.rng.borrow_mut();
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        (*x % 100) as u8
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

/// One end of a [`Link`].
pub struct Port<'l> {
    link: &'l Link,
    end: End,
}

impl Port<'_> {
    fn inbox(&self) -> &RefCell<Queue> {
        match self.end {
            End::A => &self.link.b_to_a,
            End::B => &self.link.a_to_b,
        }
    }
    fn outbox(&self) -> &RefCell<Queue> {
        match self.end {
            End::A => &self.link.a_to_b,
            End::B => &self.link.b_to_a,
        }
    }
}

/// A received frame.
pub struct Rx(Frame);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one frame to send.
pub struct Tx<'a>(&'a RefCell<Queue>);

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = Frame::new();
        let _ = frame.resize(len.min(MTU), 0);
        let r = f(&mut frame);
        // A full queue drops the frame, as a real link would.
        let _ = self.0.borrow_mut().push_back(frame);
        r
    }
}

impl Device for Port<'_> {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let mut q = self.inbox().borrow_mut();
        if q.len() >= 2 && self.link.reorder_pct > 0 && self.link.roll() < self.link.reorder_pct {
            let first = q.pop_front()?;
            let second = q.pop_front()?;
            let _ = q.push_front(first);
            let _ = q.push_front(second);
        }
        let frame = q.pop_front()?;
        drop(q);
        Some((Rx(frame), Tx(self.outbox())))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if self.outbox().borrow().is_full() {
            return None;
        }
        Some(Tx(self.outbox()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}
