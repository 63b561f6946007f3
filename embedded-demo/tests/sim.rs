//! The device and a ferry-core client on two smoltcp interfaces joined by
//! an in-memory wire, in one process, on virtual time: login, put, get,
//! ls, exec with MD5 verified; then again over a link with loss,
//! corruption and reordering; a client that vanishes mid-put; a put larger
//! than the free space.

use ferry_core::{Client, ClientEvent, Config, Instant, Overwrite, Stream, Verifier};
use ferry_device::sim::{End, Link, Port};
use ferry_device::{Auth, FerryDevice, PORT};
use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{Device, FaultInjector};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

const DEV_IP: Ipv4Address = Ipv4Address::new(192, 168, 69, 1);
const CLI_IP: Ipv4Address = Ipv4Address::new(192, 168, 69, 2);

type Dev = FerryDevice<'static, 16, { 256 * 1024 }, 2>;
type Store = ferry_device::RamStore<16, { 256 * 1024 }>;

fn random(buf: &mut [u8]) {
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
struct World<'l> {
    ms: u64,
    dev_port: FaultInjector<Port<'l>>,
    cli_port: FaultInjector<Port<'l>>,
    dev_if: Interface,
    cli_if: Interface,
    dev_sockets: SocketSet<'static>,
    cli_sockets: SocketSet<'static>,
    device: Box<Dev>,
    next_port: u16,
}

/// One client connection over the simulated link.
struct Conn {
    handle: SocketHandle,
    client: Client<Vec<u8>>,
    events: Vec<Ev>,
    upload: Vec<u8>,
    sent: usize,
    /// Stop sending the body after this many bytes (a vanishing client).
    send_limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connected,
    LoggedIn,
    Data(Vec<u8>),
    Entry(String, u64),
    ListEnd,
    Out(Stream, Vec<u8>),
    ExecEnd(i32),
    End(bool),
    Failed(ferry_core::Error),
    Closed(ferry_core::Error),
    Other,
}

impl<'l> World<'l> {
    fn new(link: &'l Link, auth: Auth, loss: u8, corrupt: u8) -> Self {
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

    fn connect(&mut self) -> Conn {
        let mut sock = tcp_socket();
        self.next_port += 1;
        sock.connect(
            self.cli_if.context(),
            (IpAddress::Ipv4(DEV_IP), PORT),
            self.next_port,
        )
        .unwrap();
        let handle = self.cli_sockets.add(sock);
        let client = Client::new(
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
        }
    }

    fn step(&mut self, conns: &mut [&mut Conn]) {
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
    fn run(&mut self, c: &mut Conn, mut done: impl FnMut(&Conn) -> bool) {
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

fn pump_client(c: &mut Conn, sockets: &mut SocketSet<'static>, now: Instant) {
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
            ClientEvent::TransferEnd { verified } => Ev::End(verified),
            ClientEvent::Failed(e) | ClientEvent::LoginFailed(e) => Ev::Failed(e),
            ClientEvent::Closed(e) => Ev::Closed(e),
            ClientEvent::Offer { .. } => {
                c.client.accept(0).unwrap();
                Ev::Other
            }
            ClientEvent::Accepted { .. } => Ev::Other,
            ClientEvent::Echo(_) | ClientEvent::Done | ClientEvent::Cwd(_) => Ev::Other,
        };
        c.events.push(e);
    }
    while c.sent < c.upload.len().min(c.send_limit) {
        let buf = c.client.send_buffer();
        let n = buf.len().min(c.upload.len().min(c.send_limit) - c.sent);
        if n == 0 {
            break;
        }
        buf[..n].copy_from_slice(&c.upload[c.sent..c.sent + n]);
        c.client.commit_send(n).unwrap();
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

fn data(n: usize, seed: u32) -> Vec<u8> {
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

fn has(c: &Conn, e: &Ev) -> bool {
    c.events.contains(e)
}

/// login, put, ls, get, exec — everything verified.
fn session(w: &mut World, c: &mut Conn, user: Option<(&str, &str)>) {
    w.run(c, |c| has(c, &Ev::Connected));
    match user {
        Some((u, p)) => c.client.login(u, p, &[3; 16]).unwrap(),
        None => c.client.login_anonymous().unwrap(),
    }
    w.run(c, |c| has(c, &Ev::LoggedIn));
    let body = data(40_000, 7);
    c.upload = body.clone();
    c.client
        .put("测试.bin", body.len() as u64, Overwrite::Fail, false)
        .unwrap();
    w.run(c, |c| {
        c.events
            .iter()
            .any(|e| matches!(e, Ev::End(_) | Ev::Failed(_)))
    });
    assert!(has(c, &Ev::End(true)), "{:?}", c.events.last());
    assert_eq!(w.device.store.read("测试.bin"), Some(&body[..]));
    c.events.clear();

    c.client.list("/").unwrap();
    w.run(c, |c| has(c, &Ev::ListEnd));
    assert!(has(c, &Ev::Entry("测试.bin".into(), 40_000)));
    c.events.clear();

    c.client.get("测试.bin").unwrap();
    w.run(c, |c| c.events.iter().any(|e| matches!(e, Ev::End(_))));
    assert!(has(c, &Ev::End(true)));
    let got: Vec<u8> = c
        .events
        .iter()
        .filter_map(|e| {
            if let Ev::Data(d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(got, body);
    c.events.clear();

    c.client.exec("md5 测试.bin").unwrap();
    w.run(c, |c| c.events.iter().any(|e| matches!(e, Ev::ExecEnd(_))));
    let out: Vec<u8> = c
        .events
        .iter()
        .filter_map(|e| {
            if let Ev::Out(_, d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    let hex: String = ferry_core::digest::md5(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{hex}  测试.bin\n")
    );
    c.events.clear();

    c.client.exec("reboot").unwrap();
    w.run(c, |c| !c.events.is_empty());
    assert_eq!(c.events, vec![Ev::Failed(ferry_core::Error::ExecFailed)]);
    c.events.clear();
}

#[test]
fn a_whole_session_over_a_perfect_link() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = w.connect();
    session(&mut w, &mut c, None);
    c.client.exec("free").unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::ExecEnd(_)))
    });
    let out: Vec<u8> = c
        .events
        .iter()
        .filter_map(|e| {
            if let Ev::Out(_, d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{} bytes free of 262144, 1 of 16 files\n", 262_144 - 40_000)
    );
}

#[test]
fn scram_login_on_the_device() {
    let link = Link::new();
    let v = Verifier::new("pw", b"device-salt", 4096).unwrap();
    let auth = Auth::User(heapless::String::try_from("admin").unwrap(), v);
    let mut w = World::new(&link, auth.clone(), 0, 0);
    let mut bad = w.connect();
    w.run(&mut bad, |c| has(c, &Ev::Connected));
    bad.client.login("admin", "nope", &[1; 16]).unwrap();
    w.run(&mut bad, |c| !c.events.iter().all(|e| *e == Ev::Connected));
    assert!(has(&bad, &Ev::Failed(ferry_core::Error::AuthFailed)));
    bad.client.login_anonymous().unwrap();
    w.run(&mut bad, |c| c.events.len() > 2);
    assert!(has(
        &bad,
        &Ev::Failed(ferry_core::Error::AnonymousNotAllowed)
    ));
    let mut c = w.connect();
    session(&mut w, &mut c, Some(("admin", "pw")));
}

#[test]
fn a_whole_session_over_a_lossy_corrupting_reordering_link() {
    let mut link = Link::new();
    link.set_reorder(5, 99);
    let mut w = World::new(&link, Auth::Anonymous, 5, 5);
    let mut c = w.connect();
    session(&mut w, &mut c, None);
    // Losses cost retransmission timeouts: far more virtual time than the
    // perfect link needs (the faults really happened).
    let lossy_ms = w.ms;
    let perfect = Link::new();
    let mut p = World::new(&perfect, Auth::Anonymous, 0, 0);
    let mut pc = p.connect();
    session(&mut p, &mut pc, None);
    assert!(
        lossy_ms > 3 * p.ms,
        "lossy {lossy_ms} ms vs perfect {} ms",
        p.ms
    );
}

#[test]
fn a_client_that_vanishes_mid_put_leaves_the_store_unchanged() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = w.connect();
    w.run(&mut c, |c| has(c, &Ev::Connected));
    c.client.login_anonymous().unwrap();
    w.run(&mut c, |c| has(c, &Ev::LoggedIn));
    let free = w.device.store.free();
    c.upload = data(100_000, 3);
    c.send_limit = 30_000;
    c.client
        .put("half.bin", 100_000, Overwrite::Fail, false)
        .unwrap();
    w.run(&mut c, |c| c.sent >= 30_000);
    for _ in 0..200 {
        w.step(&mut [&mut c]);
    }
    // Vanish: reset the connection.
    w.cli_sockets.get_mut::<tcp::Socket>(c.handle).abort();
    for _ in 0..2_000 {
        w.step(&mut [&mut c]);
    }
    assert!(!w.device.store.contains("half.bin"));
    assert_eq!(w.device.store.free(), free);
    assert_eq!(w.device.active_sessions(), 0);
    // The next session works, and can use the space.
    let mut next = w.connect();
    session(&mut w, &mut next, None);
}

#[test]
fn a_put_larger_than_free_space_is_refused_before_the_body() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = w.connect();
    w.run(&mut c, |c| has(c, &Ev::Connected));
    c.client.login_anonymous().unwrap();
    w.run(&mut c, |c| has(c, &Ev::LoggedIn));
    c.upload = data(300_000, 5);
    c.client
        .put("big.bin", 300_000, Overwrite::Fail, false)
        .unwrap();
    w.run(&mut c, |c| {
        c.events.iter().any(|e| matches!(e, Ev::Failed(_)))
    });
    assert!(has(&c, &Ev::Failed(ferry_core::Error::NoSpace)));
    assert_eq!(c.sent, 0, "no body byte was sent");
    assert!(w.device.store.is_empty());
}

#[test]
fn one_session_too_many_is_told_the_server_is_busy() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let (mut a, mut b, mut c) = (w.connect(), w.connect(), w.connect());
    for _ in 0..5_000 {
        if has(&c, &Ev::Closed(ferry_core::Error::Busy)) {
            break;
        }
        w.step(&mut [&mut a, &mut b, &mut c]);
    }
    assert!(has(&a, &Ev::Connected) && has(&b, &Ev::Connected));
    assert!(
        has(&c, &Ev::Closed(ferry_core::Error::Busy)),
        "{:?}",
        c.events
    );
    assert_eq!(w.device.active_sessions(), 2);
}
