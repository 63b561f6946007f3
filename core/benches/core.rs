//! The core alone, no sockets: frame encode/decode, MD5 implementations
//! side by side, and bytes per second through a whole client→server put
//! (the state machines' overhead per chunk, hashing included).
//!
//! Run: `cargo bench -p ferry-core --bench core`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_core::digest::{self, Algorithm, Digests};
use ferry_core::frame::{decode_message, encode_message, HEADER_LEN};
use ferry_core::message::Message;
use ferry_core::{
    Client, ClientEvent, Config, Instant, Overwrite, Request, Server, ServerConfig, ServerEvent,
};

fn frames(c: &mut Criterion) {
    let msg = Message::Request(Request::Put {
        path: "目录/测试文件.txt".try_into().unwrap(),
        size: 1 << 30,
        overwrite: Overwrite::Replace,
        resume: true,
    });
    let mut buf = [0u8; 1024];
    let n = encode_message(&msg, &mut buf).unwrap();
    let mut g = c.benchmark_group("frame");
    g.bench_function("encode put request", |b| {
        b.iter(|| encode_message(black_box(&msg), &mut buf))
    });
    g.bench_function("decode put request", |b| {
        b.iter(|| decode_message(black_box(&buf[HEADER_LEN..n])))
    });
    g.finish();
}

fn digests(c: &mut Criterion) {
    let data = vec![0xA5u8; 1 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    // Run with `--features sha256,blake3,std` to compare all.
    for a in Digests::available().iter() {
        g.bench_function(format!("{a} (ferry_core::digest)"), |b| {
            b.iter(|| digest::digest(a, black_box(&data)))
        });
    }
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    g.bench_function("md5, RustCrypto md-5 0.10 x86 assembly", |b| {
        use md5_asm::Digest;
        b.iter(|| md5_asm::Md5::digest(black_box(&data)))
    });
    g.bench_function("md5, RustCrypto md-5 0.11 portable", |b| {
        use md5_soft::Digest;
        b.iter(|| md5_soft::Md5::digest(black_box(&data)))
    });
    g.bench_function("md5, md5 crate 0.8", |b| {
        b.iter(|| md5_crate::compute(black_box(&data)))
    });
    g.finish();
}

/// Moves `size` bytes through a put, client to server, in memory.
fn put_through(size: usize, chunk: u32, digest: Algorithm) {
    let now = Instant::ZERO;
    let cfg = Config {
        chunk_size: chunk,
        digests: Digests::new(&[digest]).unwrap(),
        ..Config::default()
    };
    let scfg = ServerConfig {
        conn: cfg,
        allow_anonymous: true,
        ..ServerConfig::new([3; 32])
    };
    let buf = chunk as usize + 64;
    let mut c = Client::new(now, cfg, vec![0; buf], vec![0; buf]).unwrap();
    let mut s = Server::new(now, scfg, vec![0; buf], vec![0; buf]).unwrap();
    let body = vec![7u8; chunk as usize];
    let (mut sent, mut done, mut started) = (0usize, false, false);
    let mut sink = 0usize;
    while !done {
        // Client → server, without a copy: straight between the buffers.
        let out = c.transmit_buf();
        if !out.is_empty() {
            let n = s.handle_input(now, out).unwrap();
            c.transmit_done(n);
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Request(Request::Put { .. }) => s.accept_put(0, None).unwrap(),
                ServerEvent::Data(d) => sink += d.len(),
                ServerEvent::PutEnd { .. } => s.finish_put().unwrap(),
                _ => {}
            }
        }
        let out = s.transmit_buf();
        if !out.is_empty() {
            let n = c.handle_input(now, out).unwrap();
            s.transmit_done(n);
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Connected(_) => c.login_anonymous().unwrap(),
                ClientEvent::LoggedIn => {
                    c.put("f", size as u64, Overwrite::Fail, false).unwrap();
                }
                ClientEvent::Accepted { .. } => started = true,
                ClientEvent::TransferEnd { .. } => done = true,
                _ => {}
            }
        }
        if started && sent < size {
            sent += c
                .send_with(|b| {
                    let n = b.len().min(size - sent);
                    b[..n].copy_from_slice(&body[..n]);
                    (n, n)
                })
                .unwrap();
        }
    }
    black_box(sink);
}

fn pair(c: &mut Criterion) {
    let size = 16 << 20;
    let mut g = c.benchmark_group("pair put (state machines + digest on both sides)");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    for a in Digests::available().iter() {
        for chunk in [1024u32, 16 * 1024, 64 * 1024, 256 * 1024] {
            g.bench_function(format!("{a}, chunk {chunk}"), |b| {
                b.iter(|| put_through(size, chunk, a))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, frames, digests, pair);
criterion_main!(benches);
