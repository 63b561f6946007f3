//! Any split of the byte stream yields identical events: one byte per read,
//! random reads, or everything glued into one.

use crate::{pair, pipeline};

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

/// What a pipelined batch gave; see [`pipelined`].
#[derive(Debug, PartialEq)]
struct Run {
    /// The client's events but `SendBody` (body bytes as their length
    /// and digest).
    events: Vec<String>,
    /// Each item's own client events, `SendBody` included.
    by_item: Vec<Vec<String>>,
    /// Every event the server application saw but body bytes.
    server: Vec<String>,
    outcomes: Vec<pipeline::Outcome>,
    /// The store after it: name, size, MD5.
    files: Vec<(String, usize, [u8; 16])>,
    /// How the store saw each get and each unstored upload end, by path.
    ends: Vec<String>,
}

/// An event, with body bytes as their length and digest (readable diffs).
fn short(e: &Rec) -> String {
    match e {
        Rec::Data(d) => format!(
            "Data({}, {:02x?})",
            d.len(),
            &ferry_core::digest::md5(d)[..4]
        ),
        e => format!("{e:?}"),
    }
}

/// A pipelined batch, window 4: `puts` puts (one refused: the name
/// exists), then `gets` gets of them (one of a missing file, one the
/// client refuses), then a listing.
fn pipelined(puts: usize, gets: usize, split: Split) -> Run {
    use pipeline::{get, put, Pipe};
    let mut p = Pipe::<4, 4>::logged_in(split);
    let files: Vec<(String, Vec<u8>)> = (0..puts)
        .map(|i| (format!("文件{i}"), bytes(5_000 * i + 17, 200 + i as u64)))
        .collect();
    p.store.files.insert("文件1".into(), b"in the way".to_vec());
    let mut jobs: Vec<_> = files.iter().map(|(n, d)| put(n, d)).collect();
    jobs.extend((0..gets).map(|i| match i {
        1 => get("missing"),
        _ => get(&files[i % puts].0),
    }));
    p.refuse = vec![puts + 2];
    let outcomes = p.batch(jobs);
    p.client.list("").unwrap();
    p.drive();
    let mut ends: Vec<String> = p
        .store
        .get_ends
        .iter()
        .map(|e| format!("{e:?}"))
        .chain(p.store.put_aborts.iter().map(|e| format!("{e:?}")))
        .collect();
    ends.sort();
    Run {
        events: p
            .events
            .iter()
            .filter(|e| !matches!(e, Rec::Connected(..) | Rec::SendBody(_)))
            .map(short)
            .collect(),
        by_item: p
            .by_item
            .iter()
            .map(|evs| evs.iter().map(short).collect())
            .collect(),
        server: p.store.log.clone(),
        outcomes,
        files: p
            .store
            .files
            .iter()
            .map(|(n, d)| (n.clone(), d.len(), ferry_core::digest::md5(d)))
            .collect(),
        ends,
    }
}

/// Whether two runs of one batch agree, however their reads were cut.
///
/// Every item's own events, outcome and end in the store, and the store
/// itself, always. Whole sequences only when each direction fits the
/// window (`exact`): a request beyond it goes out when an earlier item
/// ended, and where that falls among the other messages is the reads'
/// doing. Even then the client's `SendBody` is compared per item only:
/// its place among the other events is the driver's pacing (a body starts
/// once the one before was handed over), not the wire's.
fn agree(a: &Run, b: &Run, exact: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.by_item, &b.by_item);
    prop_assert_eq!(&a.outcomes, &b.outcomes);
    prop_assert_eq!(&a.files, &b.files);
    prop_assert_eq!(&a.ends, &b.ends);
    if exact {
        prop_assert_eq!(&a.events, &b.events);
        prop_assert_eq!(&a.server, &b.server);
    }
    Ok(())
}

#[test]
fn a_pipelined_batch_byte_at_a_time_equals_one_read() {
    let whole = pipelined(4, 4, Split::Whole);
    let got = |o: &&pipeline::Outcome| matches!(o, pipeline::Outcome::Got(_));
    assert_eq!(whole.outcomes.iter().filter(got).count(), 2);
    assert_eq!(pipelined(4, 4, Split::Cycle(vec![1])), whole);
    let whole = pipelined(5, 5, Split::Whole);
    agree(&pipelined(5, 5, Split::Cycle(vec![1])), &whole, false).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_pipelined_batch_split_anywhere_equals_one_read(
        puts in 3usize..=5,
        gets in 3usize..=5,
        sizes in prop::collection::vec(1usize..3000, 1..24),
    ) {
        let whole = pipelined(puts, gets, Split::Whole);
        agree(&pipelined(puts, gets, Split::Cycle(sizes)), &whole, puts <= 4 && gets <= 4)?;
    }
}
