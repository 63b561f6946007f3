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

/// A storage call held for 5 s (the server's `FERRY_TEST_SLOW_OPEN` hook,
/// standing in for a slow disk), in as many sessions as the server has
/// async workers: 20 other sessions' `ls` and `get` each finish within a
/// second meanwhile (before, every worker was blocked for the 5 s).
#[test]
fn a_slow_storage_call_holds_up_only_its_own_session() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("slow.bin"), b"slow").unwrap();
    fs::write(dir.path().join("small.bin"), random_bytes(10_000, 1)).unwrap();
    let mut cmd = ferry();
    cmd.env("FERRY_TEST_SLOW_OPEN", "slow.bin");
    let s = Server::start_cmd(cmd, dir.path(), &["--anonymous", "--listen", "127.0.0.1:0"]);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let local = TempDir::new().unwrap();
    let slow: Vec<_> = (0..workers)
        .map(|i| {
            let mut c = ferry();
            c.arg("get")
                .arg(s.url("slow.bin"))
                .arg(local.path().join(format!("slow{i}")));
            std::thread::spawn(move || run(c))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let quick: Vec<_> = (0..20)
        .map(|i| {
            let mut c = ferry();
            if i % 2 == 0 {
                c.arg("ls").arg(s.url(""));
            } else {
                c.arg("get")
                    .arg(s.url("small.bin"))
                    .arg(local.path().join(format!("small{i}")));
            }
            std::thread::spawn(move || {
                let t = Instant::now();
                let o = run(c);
                (code(&o), t.elapsed())
            })
        })
        .collect();
    for q in quick {
        let (code, took) = q.join().unwrap();
        assert_eq!(code, 0);
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    for h in slow {
        assert_eq!(code(&h.join().unwrap()), 0);
    }
}
