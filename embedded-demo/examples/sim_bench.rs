//! Workload 4 of `bench/run`: 256 KiB put and get between a ferry-core
//! client and the device over the in-memory smoltcp link, timed on the
//! wall clock (the link itself has no delay, so this measures the stacks:
//! smoltcp, ferry-core and the RAM store). Prints one line.

#[path = "../tests/world/mod.rs"]
mod world;

use std::time::Instant;

use ferry_core::Overwrite;
use ferry_device::sim::Link;
use ferry_device::Auth;
use world::{data, Ev, World};

fn main() {
    let link = Link::new();
    let mut w = World::new(&link, Auth::Anonymous, 0, 0);
    let mut c = w.connect();
    w.run(&mut c, |c| c.events.contains(&Ev::Connected));
    c.client.login_anonymous().unwrap();
    w.run(&mut c, |c| c.events.contains(&Ev::LoggedIn));
    let body = data(256 * 1024, 1);
    let rounds = 20;
    let (mut put_s, mut get_s) = (0.0, 0.0);
    for _ in 0..rounds {
        if w.device.store.contains("bench.bin") {
            c.events.clear();
            c.client.remove("bench.bin").unwrap();
            w.run(&mut c, |c| !c.events.is_empty());
        }
        c.events.clear();
        c.upload = body.clone();
        c.sent = 0;
        let t = Instant::now();
        c.client
            .put("bench.bin", body.len() as u64, Overwrite::Replace, false)
            .unwrap();
        w.run(&mut c, |c| c.events.iter().any(|e| matches!(e, Ev::End(_))));
        put_s += t.elapsed().as_secs_f64();
        assert!(c.events.contains(&Ev::End(true)));
        c.events.clear();
        let t = Instant::now();
        c.client.get("bench.bin").unwrap();
        w.run(&mut c, |c| c.events.iter().any(|e| matches!(e, Ev::End(_))));
        get_s += t.elapsed().as_secs_f64();
        assert!(c.events.contains(&Ev::End(true)));
    }
    let mb = (body.len() * rounds) as f64 / 1e6;
    println!(
        "put {:.1} MB/s, get {:.1} MB/s (wall clock, {rounds} × {} bytes, MD5 verified)",
        mb / put_s,
        mb / get_s,
        body.len()
    );
}
