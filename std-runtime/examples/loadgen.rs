//! Load generator for `bench/run` workload 3: N concurrent clients, each
//! putting then getting its own file (1 MiB by default) against one
//! `ferry serve`, all MD5-verified. Prints one JSON line: clients,
//! failures, seconds, throughput, p50/p99 latency of a put+get.
//!
//! `cargo run --release -p ferry --example loadgen -- ferry://127.0.0.1:PORT/ N [SIZE]`
//! `... --example loadgen -- --idle N URL` opens N logged-in connections
//! that stay idle until a newline arrives on stdin (memory per idle
//! connection).

use std::io::BufRead;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ferry::{Client, FerryUrl, TransferOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--idle") {
        let n: usize = args[1].parse().expect("N");
        let url = FerryUrl::parse(&args[2]).expect("url");
        let mut held = Vec::new();
        for _ in 0..n {
            let mut c = Client::connect(&url, None).expect("connect");
            c.login(None, None).expect("login");
            held.push(c);
        }
        println!("{{\"idle\": {}}}", held.len());
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        return;
    }
    let url = FerryUrl::parse(&args[0]).expect("url");
    let n: usize = args[1].parse().expect("N");
    let size: usize = args.get(2).map_or(1 << 20, |s| s.parse().expect("SIZE"));
    let dir = std::env::temp_dir().join(format!("ferry-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let barrier = Arc::new(Barrier::new(n));
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (url, dir, barrier) = (url.clone(), dir.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<Duration, String> {
                    let src = dir.join(format!("s{i}"));
                    let data: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
                    std::fs::write(&src, &data).map_err(|e| e.to_string())?;
                    barrier.wait();
                    let t = Instant::now();
                    let opts = TransferOptions {
                        quiet: true,
                        overwrite: ferry_core::Overwrite::Replace,
                        ..Default::default()
                    };
                    let remote = format!("{}/load{i}.bin", url.path.trim_end_matches('/'));
                    let mut c = Client::connect(&url, None).map_err(|e| e.to_string())?;
                    c.login(None, None).map_err(|e| e.to_string())?;
                    c.put_file(&src, &remote, &opts)
                        .map_err(|e| e.to_string())?;
                    let back = dir.join(format!("b{i}"));
                    c.get_file(&remote, &back, &opts)
                        .map_err(|e| e.to_string())?;
                    let got = std::fs::read(&back).map_err(|e| e.to_string())?;
                    if got != data {
                        return Err("content differs".into());
                    }
                    let _ = std::fs::remove_file(&back);
                    let _ = std::fs::remove_file(&src);
                    Ok(t.elapsed())
                })
                .expect("spawn")
        })
        .collect();
    let mut lat = Vec::new();
    let mut failures = 0;
    for h in handles {
        match h.join() {
            Ok(Ok(d)) => lat.push(d),
            Ok(Err(e)) => {
                failures += 1;
                eprintln!("client failed: {e}");
            }
            Err(_) => failures += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{{\"clients\": {n}, \"failures\": {failures}, \"seconds\": {secs:.3}, \"mb_per_s\": {:.1}, \"p50_ms\": {:.1}, \"p99_ms\": {:.1}}}",
        (2 * n * size) as f64 / secs / 1e6,
        pct(0.50),
        pct(0.99)
    );
}
