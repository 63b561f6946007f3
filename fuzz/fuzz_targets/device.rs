//! Arbitrary bytes from a client, after a valid hello, into the device
//! library: ferry-device's `DeviceStore` (RAM store, built-in commands,
//! SCRAM or anonymous) behind a core `Server` and the core's one session,
//! driven by ferry-core's blocking driver over an in-memory transport. The first byte picks the read size.
#![no_main]

use core::convert::Infallible;

use embedded_io::{ErrorType, Read, Write};
use ferry_core::driver::blocking::serve;
use ferry_core::frame::{Hello, VERSION};
use ferry_core::{Config, Instant, Server, ServerConfig};
use ferry_device::app::{DeviceStore, DIGESTS, FRAME_BUF};
use ferry_device::{Auth, RamStore};
use libfuzzer_sys::fuzz_target;

mod common;

/// Reads the fuzz input a piece at a time; writes go nowhere.
struct Wire<'a> {
    input: &'a [u8],
    split: usize,
}

impl ErrorType for Wire<'_> {
    type Error = Infallible;
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = self.split.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

fn random(buf: &mut [u8]) {
    buf.fill(7);
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let (split, peer) = common::split_and_peer(first);
    let mut input = Hello { version: VERSION, flags: 0, max_frame: 4096, chunk: 1024, digests: peer }
        .encode()
        .to_vec();
    input.extend_from_slice(rest);
    let mut wire = Wire { input: &input, split };
    let config = ServerConfig {
        conn: Config { chunk_size: 1024, digests: DIGESTS, ..Config::default() },
        allow_anonymous: true,
        allow_exec: true,
        ..ServerConfig::new([6; 32])
    };
    let Ok(mut server) = Server::new(Instant::ZERO, config, [0u8; FRAME_BUF], [0u8; FRAME_BUF]) else { return };
    let mut store: RamStore<4, 8192> = RamStore::default();
    let _ = store.begin_upload(3).and_then(|_| store.write_upload(b"abc"));
    let _ = store.commit_upload("seed.txt", true, 0);
    let mut app = DeviceStore { ram: &mut store, auth: Auth::Anonymous, random, now: Instant::ZERO };
    let mut scratch = [0u8; 256];
    let mut t = 0u64;
    let _ = serve(&mut wire, &mut server, &mut app, &mut scratch, move || {
        t += 1;
        Instant::from_millis(t)
    });
});
