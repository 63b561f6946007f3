//! docs/PROTOCOL.md stays true: its session listing is exactly what the
//! implementation sends, and every error code is in its table.

// The dump's client offers BLAKE3 and SHA-256 (the workspace build has
// them; `cargo test -p ferry-core --features sha256,blake3` alone too).
#[cfg(all(feature = "sha256", feature = "blake3"))]
#[path = "../../examples/session_dump.rs"]
mod session_dump;

const PROTOCOL: &str = include_str!("../../../docs/PROTOCOL.md");

/// The listing between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn listing(name: &str) -> &'static str {
    let start = PROTOCOL
        .find(&format!("<!-- {name}:start -->\n```\n"))
        .expect("start marker");
    let body = &PROTOCOL[start..];
    let body = &body[body.find("```\n").unwrap() + 4..];
    let end = body
        .find(&format!("```\n<!-- {name}:end -->"))
        .expect("end marker");
    &body[..end]
}

#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn session_listing_matches_the_implementation() {
    assert_eq!(
        listing("session-dump"),
        session_dump::transcript(),
        "regenerate with `cargo run -p ferry-core --example session_dump`"
    );
}

#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn pipelined_listing_matches_the_implementation() {
    assert_eq!(
        listing("pipelined-dump"),
        session_dump::pipelined(),
        "regenerate with `cargo run -p ferry-core --example session_dump -- --pipelined`"
    );
}

#[test]
fn every_error_code_is_documented() {
    for e in ferry_core::Error::ALL {
        let row = format!("| {} | `{:?}` | {} |", e.code(), e, e.message());
        assert!(PROTOCOL.contains(&row), "missing row: {row}");
    }
}

/// The serial link's example frames are what `ferry_core::link` sends:
/// a `Sync` of epoch 01020304, and the first data frame ("hi") once it
/// and a peer of epoch 0a0b0c0d have heard each other.
#[test]
fn serial_link_frames_match_the_implementation() {
    use ferry_core::link::{Link, LinkConfig};
    use ferry_core::Instant;
    let cfg = LinkConfig::default();
    let len = Link::<Vec<u8>, 16>::buffer_len(1024);
    let new = |epoch| Link::<Vec<u8>, 16>::new(Instant::ZERO, cfg, epoch, vec![0; len]).unwrap();
    let (mut a, mut b) = (new(0x0102_0304), new(0x0A0B_0C0D));
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sync = a.transmit(Instant::ZERO).to_vec();
    a.transmit_done(sync.len());
    b.handle_line(Instant::ZERO, &sync);
    let answer = b.transmit(Instant::ZERO).to_vec();
    b.transmit_done(answer.len());
    a.handle_line(Instant::ZERO, &answer);
    assert!(a.is_up() && b.is_up());
    assert_eq!(a.write(b"hi"), 2);
    let data = a.transmit(Instant::ZERO).to_vec();
    let text = format!("Sync  {}\nData  {}\n", hex(&sync), hex(&data));
    assert_eq!(
        listing("serial-frames"),
        text,
        "paste into docs/PROTOCOL.md:\n{text}"
    );
}

#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn pipelined_gets_listing_matches_the_implementation() {
    assert_eq!(
        listing("pipelined-gets"),
        session_dump::pipelined_gets(),
        "regenerate with `cargo run -p ferry-core --example session_dump -- --gets`"
    );
}

/// The byte examples of tags 20 and 21 (`Refuse`, `Retry`) are what the
/// implementation encodes.
#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn version_3_message_examples_match_the_implementation() {
    assert_eq!(
        listing("v3-messages"),
        session_dump::v3_messages(),
        "regenerate with `cargo run -p ferry-core --example session_dump -- --v3-messages`"
    );
}

/// The pre-agreed gets example: one within its bound (its body follows
/// the offer), one past it (its offer waits for the `Accept`).
#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn agreed_gets_listing_matches_the_implementation() {
    assert_eq!(
        listing("agreed-gets"),
        session_dump::agreed_gets(),
        "regenerate with `cargo run -p ferry-core --features sha256,blake3 --example session_dump -- --agreed`"
    );
}

/// The pre-agreed puts example: each body right behind its request, one
/// refused after its body with one `Error`.
#[cfg(all(feature = "sha256", feature = "blake3"))]
#[test]
fn agreed_puts_listing_matches_the_implementation() {
    assert_eq!(
        listing("agreed-puts"),
        session_dump::agreed_puts(),
        "regenerate with `cargo run -p ferry-core --features sha256,blake3 --example session_dump -- --agreed-puts`"
    );
}
