//! Bad links: transfers through a proxy that cuts the stream into random
//! pieces, delays them, stalls for good or drops the connection at a random
//! offset. Each transfer completes with the right bytes, or fails with a
//! clear message within the timeout — it never hangs, and a wrong file is
//! never accepted nor an old one damaged.

use std::fs;
use std::time::{Duration, Instant};

use ferry_tests::*;

/// The client's and the server's silence limit in these tests.
const TIMEOUT_SECS: u64 = 3;

fn chaos(seed: u64, size: u64) -> Chaos {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mode = next() % 4;
    Chaos {
        seed,
        max_delay_us: [0, 200, 2_000][(next() % 3) as usize],
        stall_after: (mode == 1).then(|| next() % size),
        drop_after: (mode == 2).then(|| next() % size),
    }
}

#[test]
fn transfers_over_a_bad_link_complete_or_fail_clearly_and_never_hang() {
    let idle = TIMEOUT_SECS.to_string();
    let s = Server::anonymous(&["--idle-timeout", &idle, "--login-timeout", &idle]);
    let local = TempDir::new().unwrap();
    let size = 2u64 << 20;
    let new = random_bytes(size as usize, 3);
    let old = b"the old version".to_vec();
    let src = local.path().join("new.bin");
    fs::write(&src, &new).unwrap();
    let (mut ok, mut failed) = (0, 0);
    for seed in 1..=24u64 {
        let c = chaos(seed, size);
        let proxy = Proxy::start(
            &s.addr,
            Fault {
                chaos: Some(c),
                ..Fault::default()
            },
        );
        let url = format!("ferry://{}/f.bin", proxy.addr);
        let put = seed % 2 == 0;
        fs::write(s.root.join("f.bin"), if put { &old } else { &new }).unwrap();
        let back = local.path().join(format!("back{seed}.bin"));
        let mut cmd = ferry();
        if put {
            cmd.arg("put")
                .arg(&src)
                .arg(&url)
                .args(["--overwrite", "replace"]);
        } else {
            cmd.arg("get").arg(&url).arg(&back);
        }
        cmd.args(["--quiet", "--timeout", &idle]);
        let t = Instant::now();
        let o = run(cmd);
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        // Never past the timeout (plus the slowest clean transfer here).
        assert!(
            took < Duration::from_secs(TIMEOUT_SECS + 12),
            "seed {seed} {c:?}: took {took:?}"
        );
        if code(&o) == 0 {
            ok += 1;
            if put {
                assert_eq!(fs::read(s.root.join("f.bin")).unwrap(), new, "seed {seed}");
            } else {
                assert_eq!(fs::read(&back).unwrap(), new, "seed {seed}");
            }
        } else {
            failed += 1;
            assert!(
                err.starts_with("ferry: ") && err.len() > 10,
                "seed {seed}: unclear failure {err:?}"
            );
            if put {
                // Give the server its timeout to notice, then look: the
                // old file, or (if only the final answer was lost) the
                // new one — never a mix.
                std::thread::sleep(Duration::from_millis(200));
                let now = fs::read(s.root.join("f.bin")).unwrap();
                assert!(now == old || now == new, "seed {seed}: mixed file");
            } else {
                assert!(!back.exists(), "seed {seed}: a failed get left {back:?}");
            }
        }
        eprintln!("seed {seed} {c:?}: exit {} in {took:?}", code(&o));
    }
    eprintln!("{ok} completed, {failed} failed cleanly");
    assert!(
        ok > 0 && failed > 0,
        "both outcomes exercised: {ok} ok, {failed} failed"
    );
    // The server is still fine.
    let mut cmd = ferry();
    cmd.arg("ls").arg(s.url("/"));
    assert_eq!(code(&run(cmd)), 0);
}
