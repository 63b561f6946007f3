//! A Ferry server and a transfer over real TCP on 127.0.0.1, using the
//! core's ready-made blocking driver over `embedded-io`:
//! SCRAM login, put of a file with a Chinese name, list, get back with the
//! MD5 verified, and a remote command.
//!
//! Run: `cargo run --release -p ferry-core --example loopback [SIZE_MIB]`

mod support {
    pub mod memstore;
}

use std::net::{TcpListener, TcpStream};
use std::time::Instant as StdInstant;

use embedded_io_adapters::std::FromStd;
use ferry_core::digest::md5;
use ferry_core::driver::blocking::{serve, BlockingClient};
use ferry_core::{Client, Config, Instant, Overwrite, Server, ServerConfig, Verifier};
use support::memstore::{random_bytes, MemStore};

const BUF: usize = 256 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let start = StdInstant::now();
    let clock = move || Instant::from_millis(start.elapsed().as_millis() as u64);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("ferry server listening on {addr}");
    let server = std::thread::spawn(move || -> Result<usize, String> {
        let (stream, peer) = listener.accept().map_err(|e| e.to_string())?;
        let mut io = FromStd::new(stream);
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(&random_bytes());
        secret[16..].copy_from_slice(&random_bytes());
        let cfg = ServerConfig {
            allow_exec: true,
            ..ServerConfig::new(secret)
        };
        let mut server =
            Server::new(clock(), cfg, vec![0; BUF], vec![0; BUF]).map_err(|e| e.to_string())?;
        let mut store = MemStore::default();
        let verifier = Verifier::new("secret", &random_bytes(), 4096).map_err(|e| e.to_string())?;
        store.users.push(("alice".into(), verifier));
        let mut scratch = vec![0; 64 * 1024];
        let why = serve(&mut io, &mut server, &mut store, &mut scratch, clock)
            .map_err(|e| e.to_string())?;
        println!("server: {peer} closed ({why})");
        Ok(store.stored)
    });

    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let client = Client::new(clock(), Config::default(), vec![0; BUF], vec![0; BUF])?;
    let mut c = BlockingClient::connect(FromStd::new(stream), client, clock)?;
    c.login("alice", "secret", &random_bytes())?;
    println!("logged in as alice (SCRAM-SHA-256, server verified)");
    println!("echo: {}", c.echo("hello, 世界", true)?);

    let data: Vec<u8> = (0..mib * 1024 * 1024)
        .map(|i| (i * 31 + i / 4096) as u8)
        .collect();
    let name = "测试文件.txt";
    let t = StdInstant::now();
    let mut pos = 0;
    c.put(name, data.len() as u64, Overwrite::Fail, false, |buf| {
        let n = buf.len().min(data.len() - pos);
        buf[..n].copy_from_slice(&data[pos..pos + n]);
        pos += n;
        Ok(n)
    })?;
    let put_s = t.elapsed().as_secs_f64();
    println!(
        "put {name}: {mib} MiB verified in {put_s:.3} s ({:.0} MiB/s)",
        mib as f64 / put_s
    );

    c.list("/", |e| println!("  {:>12}  {}", e.size, e.name))?;

    let t = StdInstant::now();
    let mut back = Vec::with_capacity(data.len());
    c.get(name, |d| {
        back.extend_from_slice(d);
        Ok(())
    })?;
    let get_s = t.elapsed().as_secs_f64();
    println!(
        "get {name}: {mib} MiB verified in {get_s:.3} s ({:.0} MiB/s)",
        mib as f64 / get_s
    );
    assert_eq!(md5(&back), md5(&data));
    let hex: String = md5(&back).iter().map(|b| format!("{b:02x}")).collect();
    println!("md5 {hex} matches");

    let (status, no_output) = c.exec("true", |_, _| {})?;
    println!(
        "exec true: status {status}, {}",
        if no_output {
            "command ran, no output"
        } else {
            "output"
        }
    );
    drop(c.into_inner());
    let stored = server.join().map_err(|_| "server thread panicked")??;
    println!("server stored {stored} verified upload(s)");
    Ok(())
}
