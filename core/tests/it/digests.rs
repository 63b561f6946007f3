//! Digest negotiation through the Pair harness: every algorithm this build
//! carries moves, verifies, resumes and catches a flipped byte; MD5-only
//! peers interoperate; a pinned digest the server lacks is refused.
//!
//! Run with `--features sha256,blake3` (the workspace test does) to cover
//! all three; with no features the loops cover MD5 alone.

use crate::pair;

use ferry_core::digest::{self, Algorithm, Digests, Sum};
use ferry_core::frame::encode_message;
use ferry_core::message::Message;
use ferry_core::{ClientEvent, Config, Error, Instant, Overwrite, ServerConfig};
use pair::{bytes, server_config, Pair, Rec, SRec, Split};

fn pair(client: Digests, server: Digests) -> Pair {
    let cc = Config {
        digests: client,
        ..Config::default()
    };
    let sc = ServerConfig {
        conn: Config {
            digests: server,
            ..Config::default()
        },
        ..server_config()
    };
    Pair::with(
        cc,
        sc,
        256 * 1024,
        256 * 1024,
        Split::Cycle(vec![7, 4096, 1]),
    )
}

fn negotiated(p: &Pair) -> (Algorithm, Algorithm) {
    (
        p.client.negotiated().unwrap().digest,
        p.server.negotiated().unwrap().digest,
    )
}

fn sum(a: Algorithm, data: &[u8]) -> Sum {
    digest::digest(a, data).unwrap()
}

#[test]
fn every_digest_moves_and_verifies_both_ways_with_both_sides_agreeing() {
    for a in Digests::available().iter() {
        let mut p = pair(Digests::new(&[a]).unwrap(), Digests::available());
        p.login();
        assert_eq!(negotiated(&p), (a, a));
        let data = bytes(300_000, a.id().into());
        let ev = p.put("f", &data, Overwrite::Fail, false);
        assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)), "{a}");
        assert_eq!(p.store.files["f"], data);
        let (got, ev) = p.get("f");
        assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)), "{a}");
        assert_eq!(got, data);
        // Each side's digest is the algorithm's digest of the file.
        let want = sum(a, &data);
        assert_eq!(p.client_sums, vec![want, want], "{a}");
        assert_eq!(p.store.server_sums, vec![want, want], "{a}");
        // The digest request answers with the same algorithm.
        p.client.digest("f").unwrap();
        p.drive();
        assert_eq!(p.take(), vec![Rec::Sum(want)]);
    }
}

#[test]
fn a_flipped_byte_is_caught_under_every_digest() {
    for a in Digests::available().iter() {
        let mut p = pair(Digests::new(&[a]).unwrap(), Digests::available());
        p.login();
        let data = bytes(20_000, 11);
        p.store.files.insert("f".into(), data.clone());
        p.to_client.flip_at = Some(p.to_client.sent + 500);
        let (got, ev) = p.get("f");
        assert_ne!(got, data);
        assert_eq!(ev.last(), Some(&Rec::TransferEnd(false)), "{a}");
        assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(false)));

        p.store.files.insert("keep".into(), b"old".to_vec());
        p.to_server.flip_at = Some(p.to_server.sent + 700);
        let ev = p.put("keep", &data, Overwrite::Replace, false);
        assert_eq!(ev.last(), Some(&Rec::Failed(Error::ChecksumMismatch)));
        assert_eq!(p.store.files["keep"], b"old", "{a}: old file intact");
    }
}

#[test]
fn resume_hashes_the_held_prefix_with_the_negotiated_digest() {
    for a in Digests::available().iter() {
        let mut p = pair(Digests::new(&[a]).unwrap(), Digests::available());
        p.login();
        let data = bytes(150_000, 6);
        p.store.files.insert("g".into(), data.clone());
        p.local = data[..40_000].to_vec();
        p.client.get("g").unwrap();
        p.drive();
        assert_eq!(p.take().last(), Some(&Rec::TransferEnd(true)), "{a}");
        assert_eq!(p.local, data);
        assert_eq!(p.client_sums.last(), Some(&sum(a, &data)));

        // A wrong prefix is a mismatch under every digest.
        let mut wrong = data[..40_000].to_vec();
        wrong[123] ^= 1;
        p.local = wrong;
        p.client.get("g").unwrap();
        p.drive();
        assert_eq!(p.take().last(), Some(&Rec::TransferEnd(false)), "{a}");
    }
}

#[test]
fn an_md5_only_peer_interoperates_with_a_full_one() {
    // A full client against a small device that carries MD5 alone…
    let mut p = pair(Digests::available(), Digests::MD5_ONLY);
    p.login();
    assert_eq!(negotiated(&p), (Algorithm::Md5, Algorithm::Md5));
    let data = bytes(50_000, 2);
    let ev = p.put("f", &data, Overwrite::Fail, false);
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.client_sums[0].algorithm(), Algorithm::Md5);
    // …and an MD5-only client against a full server.
    let mut p = pair(Digests::MD5_ONLY, Digests::available());
    p.login();
    assert_eq!(negotiated(&p), (Algorithm::Md5, Algorithm::Md5));
    let ev = p.put("f", &data, Overwrite::Fail, false);
    assert_eq!(ev.last(), Some(&Rec::TransferEnd(true)));
    // A hello whose digest slots are all zero means MD5 too.
    let mut p = pair(Digests::from_bytes([0; 4]), Digests::available());
    p.login();
    assert_eq!(negotiated(&p), (Algorithm::Md5, Algorithm::Md5));
}

#[test]
fn the_clients_first_choice_the_server_supports_wins() {
    let avail: Vec<Algorithm> = Digests::available().iter().collect();
    // Client lists everything in reverse order (slowest first): its first
    // choice wins even though the server prefers another.
    let rev: Vec<Algorithm> = avail.iter().rev().copied().collect();
    let mut p = pair(Digests::new(&rev).unwrap(), Digests::available());
    p.drive();
    assert_eq!(negotiated(&p), (rev[0], rev[0]));
    // The server supports only MD5 and the client's last choice.
    let last = *avail.first().unwrap();
    let mut p = pair(Digests::available(), Digests::new(&[last]).unwrap());
    p.drive();
    assert_eq!(negotiated(&p), (last, last));
}

#[test]
fn a_pinned_digest_the_server_lacks_is_refused_with_a_clear_error() {
    let avail: Vec<Algorithm> = Digests::available().iter().collect();
    let Some(&better) = avail.iter().find(|a| **a != Algorithm::Md5) else {
        // MD5-only build: nothing to pin but MD5, which every server has.
        return;
    };
    let mut p = pair(Digests::new(&[better]).unwrap(), Digests::MD5_ONLY);
    p.drive();
    assert_eq!(p.events, vec![Rec::Closed(Error::DigestRefused)]);
    assert!(p.client.is_closed());
    // The server hears why.
    assert_eq!(
        p.store.server_events.last(),
        Some(&SRec::Closed(Error::DigestRefused))
    );
    // The same pin against a server that has it works.
    let mut p = pair(Digests::new(&[better]).unwrap(), Digests::available());
    p.login();
    assert_eq!(negotiated(&p), (better, better));
}

#[test]
fn a_trailer_with_another_algorithm_is_malformed() {
    let mut p = pair(Digests::MD5_ONLY, Digests::available());
    p.login();
    p.store.files.insert("f".into(), b"abc".to_vec());
    p.client.get("f").unwrap();
    // Play the server by hand from here: the client awaits the offer.
    let mut c = p.client;
    let now = Instant::from_millis(2_000);
    let mut buf = [0u8; 256];
    while c.poll_transmit(&mut buf).is_some() {}
    // Offer, accept, then a body of 3 bytes and a SHA-256 trailer.
    let n = encode_message(&Message::Offer { size: 3 }, &mut buf).unwrap();
    c.handle_input(now, &buf[..n]).unwrap();
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Offer { size: 3 })
    ));
    c.accept(0).unwrap();
    let mut frame = vec![2, 0, 0, 0, 3];
    frame.extend_from_slice(b"abc");
    let n = encode_message(
        &Message::Trailer {
            sum: Sum::zero(Algorithm::Sha256),
        },
        &mut buf,
    )
    .unwrap();
    frame.extend_from_slice(&buf[..n]);
    c.handle_input(now, &frame).unwrap();
    let mut last = None;
    while let Some(ev) = c.poll_event() {
        last = Some(format!("{ev:?}"));
    }
    assert_eq!(last.as_deref(), Some("Closed(Malformed)"));
}

/// Offering a digest this build lacks would make the sides disagree: the
/// core refuses such a configuration up front.
#[cfg(not(feature = "blake3"))]
#[test]
fn a_config_offering_a_missing_digest_is_refused() {
    let cc = Config {
        digests: Digests::from_bytes([Algorithm::Blake3.id(), 0, 0, 0]),
        ..Config::default()
    };
    let r = ferry_core::Client::new(Instant::ZERO, cc, vec![0; 4096], vec![0; 4096]);
    let missing = ferry_core::SetupError::DigestUnavailable(Algorithm::Blake3);
    assert!(matches!(r, Err(e) if e == missing));
    assert_eq!(Error::from(missing), Error::BadUsage, "for `?`");
}

#[test]
fn a_vouched_digest_skips_the_servers_hashing_and_a_stale_one_is_caught() {
    for a in Digests::available().iter() {
        let mut p = pair(Digests::new(&[a]).unwrap(), Digests::available());
        p.login();
        let data = bytes(150_000, 9);
        p.store.files.insert("g".into(), data.clone());
        p.store.vouch.insert("g".into(), sum(a, &data));

        // Resumed from 40 000 bytes: the server reads no prefix.
        p.local = data[..40_000].to_vec();
        p.client.get("g").unwrap();
        p.drive();
        assert_eq!(p.take().last(), Some(&Rec::TransferEnd(true)), "{a}");
        assert_eq!(p.local, data);
        assert_eq!(p.store.server_prefix_fed.last(), Some(&0), "{a}");
        assert_eq!(p.store.server_sums.last(), Some(&sum(a, &data)));
        assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(true)));

        // The file changed behind a stale kept digest (or a bit flipped on
        // the server's disk): the client's own hash catches it.
        let mut changed = data.clone();
        changed[77_777] ^= 0x10;
        p.store.files.insert("g".into(), changed);
        p.local.clear();
        p.client.get("g").unwrap();
        p.drive();
        assert_eq!(p.take().last(), Some(&Rec::TransferEnd(false)), "{a}");
        assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(false)));
    }
}

/// A get resumed with the whole file already held ends with the trailer
/// at once, whether the server vouches for the digest or hashes the held
/// prefix (with a vouched digest the trailer was never sent: a hang).
#[test]
fn a_get_resumed_at_the_end_gets_its_trailer_at_once() {
    for a in Digests::available().iter() {
        for vouched in [true, false] {
            let mut p = pair(Digests::new(&[a]).unwrap(), Digests::available());
            p.login();
            let data = bytes(12, 3);
            p.store.files.insert("g".into(), data.clone());
            if vouched {
                p.store.vouch.insert("g".into(), sum(a, &data));
            }
            p.local = data.clone();
            p.client.get("g").unwrap();
            p.drive();
            assert_eq!(
                p.take().last(),
                Some(&Rec::TransferEnd(true)),
                "{a} vouched={vouched}"
            );
            assert_eq!(p.local, data);
            assert_eq!(p.store.server_events.last(), Some(&SRec::GetEnd(true)));
        }
    }
}

/// Needs a second digest compiled in (the workspace test has all three).
#[cfg(any(feature = "sha256", feature = "blake3"))]
#[test]
fn a_vouched_digest_in_another_algorithm_is_ignored_and_the_body_hashed() {
    let other = Digests::available()
        .iter()
        .find(|a| *a != Algorithm::Md5)
        .unwrap();
    let mut p = pair(Digests::MD5_ONLY, Digests::available());
    p.login();
    let data = bytes(90_000, 10);
    p.store.files.insert("g".into(), data.clone());
    // Right bytes, wrong algorithm for this MD5 session: not used.
    p.store.vouch.insert("g".into(), sum(other, &data));
    p.local = data[..1_000].to_vec();
    p.client.get("g").unwrap();
    p.drive();
    assert_eq!(p.take().last(), Some(&Rec::TransferEnd(true)));
    assert_eq!(p.store.server_prefix_fed.last(), Some(&1_000));
    assert_eq!(
        p.store.server_sums.last(),
        Some(&sum(Algorithm::Md5, &data))
    );
}
