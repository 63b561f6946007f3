//! `ferry-device --tap tap0 --ip 192.168.69.1/24 [--anonymous | --user NAME:PASSWORD]`
//!
//! The no_std device library, run on a Linux TAP interface: smoltcp is the
//! device's TCP/IP stack, the RAM store its disk. Bring a TAP up inside a
//! network namespace with `embedded-demo/scripts/tap-up` first.

use std::os::unix::io::AsRawFd;
use std::time::Instant as StdInstant;

use ferry_device::{Auth, FerryDevice, PORT};
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpCidr};

type Device = FerryDevice<'static, 16, { 256 * 1024 }, 2>;
type Store = ferry_device::RamStore<16, { 256 * 1024 }>;

const USAGE: &str =
    "usage: ferry-device --tap NAME --ip ADDR/PREFIX [--anonymous | --user NAME:PASSWORD]";

fn random(buf: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0xfe77);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("ferry-device: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let mut tap = None;
    let mut ip = None;
    let mut auth = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tap" => tap = args.next(),
            "--ip" => ip = args.next(),
            "--anonymous" => auth = Some(Auth::Anonymous),
            "--user" => {
                let spec = args
                    .next()
                    .unwrap_or_else(|| fail("--user needs NAME:PASSWORD"));
                let (name, pw) = spec
                    .split_once(':')
                    .unwrap_or_else(|| fail("--user needs NAME:PASSWORD"));
                let mut salt = [0u8; 16];
                random(&mut salt);
                let v = ferry_core::Verifier::new(pw, &salt, ferry_core::auth::DEFAULT_ITERATIONS)
                    .unwrap_or_else(|e| fail(&format!("bad password: {e}")));
                let name =
                    heapless::String::try_from(name).unwrap_or_else(|_| fail("user name too long"));
                auth = Some(Auth::User(name, v));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let tap_name = tap.unwrap_or_else(|| fail("--tap is required"));
    let cidr: IpCidr = ip
        .unwrap_or_else(|| fail("--ip is required"))
        .parse()
        .unwrap_or_else(|_| fail("--ip must be ADDR/PREFIX"));
    let auth = auth.unwrap_or_else(|| fail("give --anonymous or --user NAME:PASSWORD"));

    let mut dev = TunTapInterface::new(&tap_name, Medium::Ethernet)
        .unwrap_or_else(|e| fail(&format!("cannot open TAP {tap_name}: {e}")));
    let fd = dev.as_raw_fd();
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as i64);
    let config = Config::new(EthernetAddress([0x02, 0, 0, 0xf0, 0x77, 0x01]).into());
    let mut iface = Interface::new(config, &mut dev, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(cidr);
    });
    let mut sockets = SocketSet::new((0..3).map(|_| SocketStorage::EMPTY).collect::<Vec<_>>());
    let mut socket = || {
        let rx = tcp::SocketBuffer::new(vec![0u8; 16 * 1024]);
        let tx = tcp::SocketBuffer::new(vec![0u8; 16 * 1024]);
        sockets.add(tcp::Socket::new(rx, tx))
    };
    let sessions = [socket(), socket()];
    let busy = socket();
    let store: &'static mut Store = Box::leak(Box::default());
    let mut device = Box::new(Device::new(store, sessions, busy, auth, random));
    println!(
        "ferry-device: serving {}:{PORT} on {tap_name}",
        cidr.address()
    );
    loop {
        let t = now();
        let ft = ferry_core::Instant::from_millis(t.total_millis() as u64);
        iface.poll(t, &mut dev, &mut sockets);
        device.poll(ft, &mut sockets);
        iface.poll(t, &mut dev, &mut sockets);
        let mut delay = iface
            .poll_delay(t, &sockets)
            .unwrap_or(Duration::from_millis(100));
        if let Some(at) = device.poll_at() {
            let ms = at.as_millis().saturating_sub(ft.as_millis());
            delay = delay.min(Duration::from_millis(ms));
        }
        let _ = phy_wait(fd, Some(delay.min(Duration::from_millis(100))));
    }
}
