//! Any split of the byte stream yields identical events: one byte per read,
//! random reads, or everything glued into one.

use crate::pair;

use ferry_core::{Config, Instant, Overwrite, Server};
use pair::{bytes, server_config, Pair, Rec, SRec, Split};
use proptest::prelude::*;

/// A whole session: login, echo, put, list, get, exec, a refused request.
fn session(split: Split) -> (Vec<Rec>, Vec<SRec>) {
    let mut p = Pair::with(
        Config::default(),
        server_config(),
        16 * 1024,
        16 * 1024,
        split,
    );
    p.drive();
    p.client
        .login(pair::USER, pair::PASSWORD, &[1; 18])
        .unwrap();
    p.drive();
    p.client.echo("粘包 sticky", true).unwrap();
    p.drive();
    let data = bytes(40_000, 1);
    let mut events = p.take();
    events.extend(p.put("测试文件.txt", &data, Overwrite::Fail, false));
    p.client.list("").unwrap();
    p.drive();
    events.extend(p.take());
    events.extend(p.get("测试文件.txt").1);
    p.client.exec("echo hi").unwrap();
    p.drive();
    p.client.exec("true").unwrap();
    p.drive();
    events.extend(p.take());
    events.extend(p.put("测试文件.txt", b"again", Overwrite::Fail, false));
    events.retain(|e| !matches!(e, Rec::Connected(..)));
    (events, p.store.server_events)
}

#[test]
fn byte_at_a_time_equals_one_read() {
    let whole = session(Split::Whole);
    assert_eq!(
        whole
            .0
            .iter()
            .filter(|e| **e == Rec::TransferEnd(true))
            .count(),
        2
    );
    assert!(whole.0.contains(&Rec::ExecEnd(0, true)));
    assert_eq!(
        whole.0.last(),
        Some(&Rec::Failed(ferry_core::Error::Exists))
    );
    assert_eq!(session(Split::Cycle(vec![1])), whole);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_splits_equal_one_read(sizes in prop::collection::vec(1usize..3000, 1..24)) {
        let whole = session(Split::Whole);
        prop_assert_eq!(session(Split::Cycle(sizes)), whole);
    }

    /// Arbitrary bytes after a valid hello never panic the server and end
    /// in either more input wanted or a typed close.
    #[test]
    fn arbitrary_input_never_panics_the_server(junk in prop::collection::vec(any::<u8>(), 0..2048)) {
        let now = Instant::ZERO;
        let mut s = Server::new(now, server_config(), vec![0; 4096], vec![0; 4096]).unwrap();
        let mut input = ferry_core::frame::Hello {
            version: ferry_core::frame::VERSION, flags: 0, max_frame: 4096, chunk: 4096, digests: ferry_core::digest::Digests::MD5_ONLY,
        }.encode().to_vec();
        input.extend(&junk);
        let mut fed = 0;
        for _ in 0..10_000 {
            match s.handle_input(now, &input[fed..]) {
                Ok(n) => fed += n,
                Err(_) => break,
            }
            let mut out = [0u8; 8192];
            while s.poll_transmit(&mut out).is_some() {}
            let mut events = 0;
            while let Some(ev) = s.poll_event() {
                events += 1;
                // A driver that refuses everything it is asked.
                let _ = ev;
                let _ = s.refuse(ferry_core::Error::Permission);
                let _ = s.login_verifier(None, &[5; 16]);
                prop_assert!(events < 10_000);
            }
            if fed == input.len() { break; }
        }
    }

    #[test]
    fn arbitrary_input_never_panics_the_client(junk in prop::collection::vec(any::<u8>(), 0..2048)) {
        let now = Instant::ZERO;
        let mut c = ferry_core::Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
        let mut input = ferry_core::frame::Hello {
            version: ferry_core::frame::VERSION, flags: 1, max_frame: 4096, chunk: 4096, digests: ferry_core::digest::Digests::MD5_ONLY,
        }.encode().to_vec();
        input.extend(&junk);
        let _ = c.handle_input(now, &input);
        let mut n = 0;
        while let Some(ev) = c.poll_event() {
            n += 1;
            prop_assert!(n < 10_000);
            if matches!(ev, ferry_core::ClientEvent::Connected(_)) {
                let _ = c.login_anonymous();
            } else if matches!(ev, ferry_core::ClientEvent::Offer { .. }) {
                let _ = c.accept(0);
            }
        }
    }
}
