//! docs/PROTOCOL.md stays true: its session listing is exactly what the
//! implementation sends, and every error code is in its table.

// The dump's client offers BLAKE3 and SHA-256 (the workspace build has
// them; `cargo test -p ferry-core --features sha256,blake3` alone too).
#[cfg(all(feature = "sha256", feature = "blake3"))]
#[path = "../../examples/session_dump.rs"]
mod session_dump;

const PROTOCOL: &str = include_str!("../../../docs/PROTOCOL.md");

/// The listing between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
#[cfg(all(feature = "sha256", feature = "blake3"))]
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
