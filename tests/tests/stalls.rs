//! Work that takes long on the server's side — hashing the held prefix of
//! a resumed transfer — runs off the async workers, so other sessions
//! (logins and listings included) are not held up (issue 20.12).

use std::fs;
use std::time::{Duration, Instant};

use ferry_core::message::{bounded, Message, Request};
use ferry_core::Error;
use ferry_tests::raw::Raw;
use ferry_tests::*;

/// Two raw clients resume gets of a 1 GiB file at its last byte, which
/// makes the server hash 1 GiB each (as many as it has cores): meanwhile a
/// whole `ferry ls` (connect, login, list) from another client takes well
/// under the time those hashes take.
#[test]
fn resumed_gets_hash_their_prefix_without_stalling_other_sessions() {
    let s = Server::anonymous(&[]);
    let size = 1u64 << 30;
    fs::File::create(s.root.join("huge.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let hashers: Vec<_> = (0..2)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || {
                let mut r = Raw::login(&addr);
                r.request(Request::Get {
                    path: bounded("huge.bin", Error::InvalidPath).unwrap(),
                });
                assert_eq!(r.msg(), Message::Offer { size });
                let t = Instant::now();
                r.send(&Message::Accept {
                    offset: size - 1,
                    name: None,
                });
                // One body byte, then the trailer, once the prefix is hashed.
                let _ = r.recv();
                let _ = r.recv();
                t.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        let mut c = ferry();
        c.arg("ls").arg(s.url(""));
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        worst = worst.max(t.elapsed());
    }
    let hashing: Vec<Duration> = hashers.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("ls took at most {worst:?} while the prefix hashes took {hashing:?}");
    // Stalled, an `ls` waits for a hash to end (it took as long as they
    // did before the fix); off the workers it is a small fraction of one.
    let shortest = hashing.iter().min().copied().unwrap_or_default();
    assert!(
        shortest > Duration::from_millis(500),
        "the hashes ran: {hashing:?}"
    );
    assert!(
        worst < shortest / 3,
        "ls took {worst:?}, the hashes {hashing:?}"
    );
}
