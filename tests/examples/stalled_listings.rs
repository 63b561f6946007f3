//! Measures what stalled listings cost the server: N sessions ask for a
//! listing of a directory of M entries and stop reading; prints the
//! server's resident memory before and while they stall (the figures in
//! `docs/SECURITY.md`, "listing").
//!
//! `cargo run -p ferry-tests --example stalled_listings -- [SESSIONS] [ENTRIES] [FERRY_BINARY]`
//! (defaults 30, 200 000 and the workspace's debug `ferry`).

use std::process::{Command, Stdio};

use ferry_tests::stall::{fill_dir, measure, scratch_dir};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sessions: usize = args.first().map_or(30, |a| a.parse().expect("SESSIONS"));
    let entries: usize = args.get(1).map_or(200_000, |a| a.parse().expect("ENTRIES"));
    let bin = args
        .get(2)
        .map_or_else(|| ferry_tests::ferry_bin().to_path_buf(), Into::into);

    let top = scratch_dir();
    let root = top.path().join("root");
    fill_dir(&root.join("big"), entries);
    let socket = top.path().join("ferry.sock");
    let mut server = Command::new(&bin)
        .arg("serve")
        .arg(&root)
        .args(["--anonymous", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (fig, stalled) = measure(server.id(), &socket, sessions, "big");
    println!(
        "{}: {sessions} sessions × {entries} entries: VmRSS {} KiB logged in, {} KiB stalled, \
         {} KiB per stalled listing",
        bin.display(),
        fig.before,
        fig.stalled,
        fig.per_session(sessions)
    );
    drop(stalled);
    let _ = server.kill();
    let _ = server.wait();
}
