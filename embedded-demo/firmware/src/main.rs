//! A firmware image: ferry-device on smoltcp with 2 sessions and a 16-file,
//! 256 KiB RAM store, over a stand-in Ethernet driver. It is what a real
//! board's firmware links, minus the MAC driver, so its sections measure
//! the cost of Ferry on a microcontroller.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use ferry_device::{Auth, FerryDevice};
use panic_halt as _;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};
use static_cell::{ConstStaticCell, StaticCell};

type Device = FerryDevice<'static, 16, { 256 * 1024 }, 2>;
type Store = ferry_device::RamStore<16, { 256 * 1024 }>;

/// Where a MAC driver would go: frames come from and go to DMA rings.
struct Mac {
    rx: [u8; 1514],
    len: usize,
}

struct Rx<'a>(&'a [u8]);
struct Tx<'a>(&'a mut [u8]);

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let n = len.min(self.0.len());
        f(&mut self.0[..n])
    }
}

impl phy::Device for Mac {
    type RxToken<'a> = Rx<'a> where Self: 'a;
    type TxToken<'a> = Tx<'a> where Self: 'a;

    fn receive(&mut self, _t: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let n = core::mem::take(&mut self.len);
        if n == 0 {
            return None;
        }
        let (a, b) = self.rx.split_at_mut(n);
        Some((Rx(a), Tx(b)))
    }

    fn transmit(&mut self, _t: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.rx[..]))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

fn random(buf: &mut [u8]) {
    // A board reads its hardware RNG here.
    for (i, b) in buf.iter_mut().enumerate() {
        *b = core::hint::black_box(i as u8);
    }
}

static DEVICE: StaticCell<Device> = StaticCell::new();
/// Const-initialised, so the 256 KiB store lives in .bss and is never
/// copied through the stack.
static STORE: ConstStaticCell<Store> = ConstStaticCell::new(Store::new());
static MAC: StaticCell<Mac> = StaticCell::new();
static SOCKETS: StaticCell<[SocketStorage<'static>; 3]> = StaticCell::new();
static BUFFERS: StaticCell<[[u8; 4096]; 6]> = StaticCell::new();

#[entry]
fn main() -> ! {
    let mac = MAC.init(Mac { rx: [0; 1514], len: 0 });
    let config = Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]).into());
    let mut iface = Interface::new(config, &mut *mac, Instant::ZERO);
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::new(192, 168, 69, 1)), 24));
    });
    let mut sockets = SocketSet::new(&mut SOCKETS.init([SocketStorage::EMPTY; 3])[..]);
    let [b0, b1, b2, b3, b4, b5] = BUFFERS.init([[0; 4096]; 6]);
    let mut add = |rx: &'static mut [u8; 4096], tx: &'static mut [u8; 4096]| {
        sockets.add(tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..])))
    };
    let s0 = add(b0, b1);
    let s1 = add(b2, b3);
    let busy = add(b4, b5);
    let device = DEVICE.init(Device::new(STORE.take(), [s0, s1], busy, Auth::Anonymous, random));
    let mut ms: u64 = 0;
    loop {
        ms = ms.wrapping_add(1);
        let now = Instant::from_millis(core::hint::black_box(ms) as i64);
        iface.poll(now, &mut *mac, &mut sockets);
        device.poll(ferry_core::Instant::from_millis(ms), &mut sockets);
    }
}

