//! A listing that the client stops reading holds a bounded amount of the
//! server's memory, however large the directory (`docs/SECURITY.md`,
//! "listing"): the server reads the directory as the client drains it.
//! The full listing still arrives complete, sorted by the client, with
//! partial uploads hidden.

use ferry_tests::stall::{self, fill_dir, measure};
use ferry_tests::*;

/// Entries in the big directory: a whole-directory listing held in memory
/// costs ~290 bytes each on the server (~17 MB per session here).
const ENTRIES: usize = 60_000;
/// Sessions that ask for it and stop reading.
const SESSIONS: usize = 6;
/// Growth allowed per stalled listing: the session's output buffer
/// (256 KiB) and a directory read buffer, with a wide margin; a listing
/// held whole is ~17 000 KiB.
const MAX_KIB_PER_SESSION: u64 = 4 * 1024;

#[test]
fn stalled_listings_of_a_big_directory_hold_bounded_server_memory() {
    let top = stall::scratch_dir();
    let root = top.path().join("root");
    fill_dir(&root.join("big"), ENTRIES);
    std::fs::write(root.join("big/.f0000001.ferry-part"), b"partial").unwrap();
    let socket = top.path().join("ferry.sock");
    let listen = format!("unix:{}", socket.display());
    let mut s = Server::start(
        &root,
        &[
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            &listen,
        ],
    );

    let (fig, stalled) = measure(s.pid(), &socket, SESSIONS, "big");
    let per = fig.per_session(SESSIONS);
    eprintln!(
        "server VmRSS: {} KiB with {SESSIONS} sessions logged in, {} KiB with their \
         listings of {ENTRIES} entries stalled: {per} KiB per stalled listing",
        fig.before, fig.stalled
    );
    assert!(
        per <= MAX_KIB_PER_SESSION,
        "a stalled listing holds {per} KiB of server memory (bound {MAX_KIB_PER_SESSION} KiB)"
    );

    // Meanwhile another client gets the whole listing, sorted, without
    // the partial upload.
    let out = run({
        let mut c = ferry();
        c.args(["ls", &s.url("big")]);
        c
    });
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(names.len(), ENTRIES, "every entry, the part file hidden");
    let expected: Vec<String> = (0..ENTRIES).map(|i| format!("f{i:07}")).collect();
    assert!(names.iter().eq(expected.iter()), "sorted by name");
    drop(stalled);
    assert!(s.alive());
}
