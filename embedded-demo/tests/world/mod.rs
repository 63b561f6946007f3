//! A device and a ferry-core client on two smoltcp interfaces joined by
//! an in-memory wire, stepped on one virtual clock. Shared by the tests
//! (`tests/sim.rs`) and the benchmark (`examples/sim_bench.rs`).
#![allow(dead_code)]

use ferry_core::{Client, ClientEvent, Config, Instant, Stream};
use ferry_device::sim::{End, Link, Port};
use ferry_device::{Auth, FerryDevice, PORT};
use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{Device, FaultInjector};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

const DEV_IP: Ipv4Address = Ipv4Address::new(192, 168, 69, 1);
const CLI_IP: Ipv4Address = Ipv4Address::new(192, 168, 69, 2);

pub type Dev = FerryDevice<'static, 16, { 256 * 1024 }, 2>;
pub type Store = ferry_device::RamStore<16, { 256 * 1024 }>;

pub fn random(buf: &mut [u8]) {
    // Tests only: deterministic. A device uses its hardware RNG.
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5A;
    }
}

fn iface<D: Device>(dev: &mut D, mac: u8, ip: Ipv4Address) -> Interface {
    let cfg = IfConfig::new(EthernetAddress([2, 0, 0, 0, 0, mac]).into());
    let mut i = Interface::new(cfg, dev, SmolInstant::ZERO);
    i.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
    });
    i
}

fn tcp_socket() -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0u8; 8192]);
    let tx = tcp::SocketBuffer::new(vec![0u8; 8192]);
    tcp::Socket::new(rx, tx)
}

/// Everything on both sides, stepped on one virtual clock.
pub struct World<'l> {
    pub ms: u64,
    pub dev_port: FaultInjector<Port<'l>>,
    pub cli_port: FaultInjector<Port<'l>>,
    pub dev_if: Interface,
    pub cli_if: Interface,
    pub dev_sockets: SocketSet<'static>,
    pub cli_sockets: SocketSet<'static>,
    pub device: Box<Dev>,
    pub next_port: u16,
}

/// One client connection over the simulated link; `W` gets or puts may
/// be in flight at once (the device's window is 1).
pub struct Conn<const W: usize = 1> {
    pub handle: SocketHandle,
    pub client: Client<Vec<u8>, W>,
    pub events: Vec<Ev>,
    pub upload: Vec<u8>,
    pub sent: usize,
    /// Stop sending the body after this many bytes (a vanishing client).
    pub send_limit: usize,
    /// With a window above 1: the bodies of the puts sent, in order; each
    /// becomes `upload` when the core says its body starts (`SendBody`).
    pub bodies: std::collections::VecDeque<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Connected,
    LoggedIn,
    Data(Vec<u8>),
    Entry(String, u64),
    ListEnd,
    Out(Stream, Vec<u8>),
    ExecEnd(i32),
    End(bool),
    Sum(ferry_core::digest::Sum),
    Failed(ferry_core::Error),
    Closed(ferry_core::Error),
    Other,
}

impl<'l> World<'l> {
    pub fn new(link: &'l Link, auth: Auth, loss: u8, corrupt: u8) -> Self {
        let mut dev_port = FaultInjector::new(link.end(End::A), 1);
        let mut cli_port = FaultInjector::new(link.end(End::B), 2);
        for p in [&mut dev_port, &mut cli_port] {
            p.set_drop_chance(loss);
            p.set_corrupt_chance(corrupt);
        }
        let dev_if = iface(&mut dev_port, 1, DEV_IP);
        let cli_if = iface(&mut cli_port, 2, CLI_IP);
        let mut dev_sockets =
            SocketSet::new((0..4).map(|_| SocketStorage::EMPTY).collect::<Vec<_>>());
        let s: [SocketHandle; 2] = [dev_sockets.add(tcp_socket()), dev_sockets.add(tcp_socket())];
        let busy = dev_sockets.add(tcp_socket());
        let store: &'static mut Store = Box::leak(Box::default());
        let device = Box::new(Dev::new(store, s, busy, auth, random));
        World {
            ms: 0,
            dev_port,
            cli_port,
            dev_if,
            cli_if,
            dev_sockets,
            cli_sockets: SocketSet::new(vec![]),
            device,
            next_port: 49152,
        }
    }

    pub fn connect(&mut self) -> Conn {
        self.connect_windowed()
    }

    /// A connection whose client may have `W` gets or puts in flight.
    pub fn connect_windowed<const W: usize>(&mut self) -> Conn<W> {
        let mut sock = tcp_socket();
        self.next_port += 1;
        sock.connect(
            self.cli_if.context(),
            (IpAddress::Ipv4(DEV_IP), PORT),
            self.next_port,
        )
        .unwrap();
        let handle = self.cli_sockets.add(sock);
        let client = Client::with_window(
            Instant::ZERO,
            Config {
                chunk_size: 1024,
                ..Config::default()
            },
            vec![0; 4096],
            vec![0; 4096],
        )
        .unwrap();
        Conn {
            handle,
            client,
            events: vec![],
            upload: vec![],
            sent: 0,
            send_limit: usize::MAX,
            bodies: Default::default(),
        }
    }

    pub fn step<const W: usize>(&mut self, conns: &mut [&mut Conn<W>]) {
        self.ms += 1;
        let now = SmolInstant::from_millis(self.ms as i64);
        let fnow = Instant::from_millis(self.ms);
        self.dev_if
            .poll(now, &mut self.dev_port, &mut self.dev_sockets);
        self.device.poll(fnow, &mut self.dev_sockets);
        self.dev_if
            .poll(now, &mut self.dev_port, &mut self.dev_sockets);
        self.cli_if
            .poll(now, &mut self.cli_port, &mut self.cli_sockets);
        for c in conns.iter_mut() {
            pump_client(c, &mut self.cli_sockets, fnow);
        }
        self.cli_if
            .poll(now, &mut self.cli_port, &mut self.cli_sockets);
    }

    /// Steps until `done` (bounded: 10 minutes of virtual time).
    pub fn run<const W: usize>(&mut self, c: &mut Conn<W>, mut done: impl FnMut(&Conn<W>) -> bool) {
        for _ in 0..600_000 {
            if done(c) {
                return;
            }
            self.step(&mut [c]);
        }
        panic!(
            "simulation did not finish; events: {:?}",
            c.events.iter().rev().take(5).collect::<Vec<_>>()
        );
    }
}

pub fn pump_client<const W: usize>(
    c: &mut Conn<W>,
    sockets: &mut SocketSet<'static>,
    now: Instant,
) {
    let sock = sockets.get_mut::<tcp::Socket>(c.handle);
    while sock.can_recv() {
        let buf = c.client.input_buf();
        match sock.recv_slice(buf) {
            Ok(n) if n > 0 => c.client.input_filled(now, n),
            _ => break,
        }
    }
    if !sock.may_recv() && sock.state() != tcp::State::SynSent && sock.state() != tcp::State::Closed
    {
        c.client.handle_eof(now);
    }
    c.client.handle_timeout(now);
    while let Some(ev) = c.client.poll_event() {
        let e = match ev {
            ClientEvent::Connected(_) => Ev::Connected,
            ClientEvent::LoggedIn => Ev::LoggedIn,
            ClientEvent::Data(d) => Ev::Data(d.to_vec()),
            ClientEvent::Entry(e) => Ev::Entry(e.name.to_string(), e.size),
            ClientEvent::ListEnd => Ev::ListEnd,
            ClientEvent::Output { stream, data } => Ev::Out(stream, data.to_vec()),
            ClientEvent::ExecEnd { status, .. } => Ev::ExecEnd(status),
            ClientEvent::TransferEnd { verified, .. } => Ev::End(verified),
            ClientEvent::Failed(e) | ClientEvent::LoginFailed(e) | ClientEvent::Refused(e) => {
                Ev::Failed(e)
            }
            ClientEvent::Closed(e) => Ev::Closed(e),
            ClientEvent::Offer { .. } => {
                c.client.accept(0).unwrap();
                Ev::Other
            }
            ClientEvent::SendBody { .. } => {
                if let Some(body) = c.bodies.pop_front() {
                    c.upload = body;
                    c.sent = 0;
                }
                Ev::Other
            }
            ClientEvent::Accepted { .. } => Ev::Other,
            ClientEvent::Sum(s) => Ev::Sum(s),
            ClientEvent::Echo(_) | ClientEvent::Done | ClientEvent::Cwd(_) => Ev::Other,
        };
        c.events.push(e);
    }
    while c.sent < c.upload.len().min(c.send_limit) && c.client.remaining() > 0 {
        let (upload, sent) = (&c.upload[..c.upload.len().min(c.send_limit)], c.sent);
        let n = c
            .client
            .send_with(|buf| {
                let n = buf.len().min(upload.len() - sent);
                buf[..n].copy_from_slice(&upload[sent..sent + n]);
                (n, n)
            })
            .unwrap();
        if n == 0 {
            break;
        }
        c.sent += n;
    }
    let sock = sockets.get_mut::<tcp::Socket>(c.handle);
    while sock.can_send() {
        let pending = c.client.transmit_buf();
        if pending.is_empty() {
            break;
        }
        match sock.send_slice(pending) {
            Ok(n) if n > 0 => c.client.transmit_done(n),
            _ => break,
        }
    }
}

pub fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
