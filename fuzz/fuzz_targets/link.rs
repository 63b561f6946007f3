//! The serial link's decoder and state machine: random line bytes (after
//! a real `Sync`, so data and acknowledgement paths run too) interleaved
//! with writes, reads and time never panic, and nothing read is more than
//! the stream could hold.
#![no_main]

use ferry_core::link::{Link, LinkConfig};
use ferry_core::Instant;
use libfuzzer_sys::fuzz_target;

type L = Link<Vec<u8>, 4>;

fuzz_target!(|data: &[u8]| {
    let cfg = LinkConfig {
        max_payload: 64,
        ..LinkConfig::default()
    };
    let len = L::buffer_len(64);
    let Ok(mut a) = L::new(Instant::ZERO, cfg, 7, vec![0; len]) else {
        return;
    };
    let Ok(mut b) = L::new(Instant::ZERO, cfg, 9, vec![0; len]) else {
        return;
    };
    // b's Sync, so a has a link whose id the input may hit.
    let sync = b.transmit(Instant::ZERO).to_vec();
    a.handle_line(Instant::ZERO, &sync);
    let mut now = 0u64;
    let mut out = [0u8; 256];
    for chunk in data.chunks(17) {
        let (op, rest) = chunk.split_first().unwrap_or((&0, &[]));
        now += u64::from(op >> 4) * 37;
        let t = Instant::from_millis(now);
        match op & 3 {
            0 => a.handle_line(t, rest),
            1 => {
                a.write(rest);
            }
            2 => {
                let n = a.read(&mut out);
                assert!(n <= out.len());
            }
            _ => a.handle_timeout(t),
        }
        let tx = a.transmit(t).len();
        a.transmit_done(tx);
        while a.poll_event().is_some() {}
        let _ = a.poll_timeout();
    }
});
