//! `ferry-device --tap tap0 --ip 192.168.69.1/24 [--anonymous | --user NAME:PASSWORD]`
//! `ferry-device --serial /dev/pts/N [--baud N] [--anonymous | --user NAME:PASSWORD]`
//!
//! The no_std device library, run on a Linux TAP interface (smoltcp is the
//! device's TCP/IP stack; bring a TAP up inside a network namespace with
//! `embedded-demo/scripts/tap-up` first) or on a serial line (ferry-core's
//! link layer, no TCP/IP; a pseudo-terminal works as a line). The RAM
//! store is its disk.

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

const USAGE: &str = "usage: ferry-device (--tap NAME --ip ADDR/PREFIX | --serial DEVICE [--baud N]) [--anonymous | --user NAME:PASSWORD]";

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
    let mut serial = None;
    let mut baud = 115_200u32;
    let mut auth = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tap" => tap = args.next(),
            "--ip" => ip = args.next(),
            "--serial" => serial = args.next(),
            "--baud" => {
                baud = args
                    .next()
                    .and_then(|b| b.parse().ok())
                    .filter(|b| *b >= 300)
                    .unwrap_or_else(|| fail("--baud needs a rate in bits per second"))
            }
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
    let auth = auth.unwrap_or_else(|| fail("give --anonymous or --user NAME:PASSWORD"));
    if let Some(path) = serial {
        return serve_serial(&path, baud, auth);
    }
    let tap_name = tap.unwrap_or_else(|| fail("--tap or --serial is required"));
    let cidr: IpCidr = ip
        .unwrap_or_else(|| fail("--ip is required"))
        .parse()
        .unwrap_or_else(|_| fail("--ip must be ADDR/PREFIX"));

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

/// Serves on the serial line at `path` (a pseudo-terminal or a real
/// port), one session at a time, until killed.
fn serve_serial(path: &str, baud: u32, auth: Auth) {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_flags())
        .open(path)
        .unwrap_or_else(|e| fail(&format!("cannot open {path}: {e}")));
    raw_mode(&port, baud).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let fd = port.as_raw_fd();
    let start = StdInstant::now();
    let now = || ferry_core::Instant::from_millis(start.elapsed().as_millis() as u64);
    let store: &'static mut Store = Box::leak(Box::default());
    let mut device = Box::new(
        ferry_device::serial::SerialDevice::new(
            now(),
            store,
            Box::leak(Box::default()),
            auth,
            random,
            baud,
        )
        .unwrap_or_else(|e| fail(&format!("cannot start: {e}"))),
    );
    println!("ferry-device: serving on serial {path} at {baud} baud");
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 4096];
    loop {
        loop {
            match port.read(&mut buf) {
                Ok(n) if n > 0 => device.handle_line(now(), &buf[..n]),
                _ => break,
            }
        }
        device.poll(now());
        loop {
            let out = device.transmit(now());
            if out.is_empty() {
                break;
            }
            match port.write(out) {
                Ok(n) if n > 0 => device.transmit_done(n),
                // The line is full: wait for it below.
                _ => break,
            }
        }
        device.poll(now());
        let wait = device.poll_at().map_or(100, |at| {
            at.as_millis().saturating_sub(now().as_millis()).min(100)
        });
        let _ = phy_wait(fd, Some(Duration::from_millis(wait.max(1))));
    }
}

/// Non-blocking, and not the controlling terminal.
fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32
}

/// Raw bytes at `baud`, 8N1: no echo, no line editing, no translation.
fn raw_mode(port: &std::fs::File, baud: u32) -> std::io::Result<()> {
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
    let mut t = tcgetattr(port)?;
    t.make_raw();
    // A pseudo-terminal ignores the speed; a real port takes it.
    let _ = t.set_speed(baud);
    tcsetattr(port, OptionalActions::Now, &t)?;
    Ok(())
}
