//! What the targets share: how the input's first byte is read.

use ferry_core::digest::Digests;

/// The first input byte picks the read size (1..=255) and the peer's
/// digest list in its hello (two bits a slot), so both are fuzzed.
pub fn split_and_peer(first: u8) -> (usize, Digests) {
    let peer = Digests::from_bytes([first & 3, (first >> 2) & 3, (first >> 4) & 3, first >> 6]);
    (usize::from(first).max(1), peer)
}
