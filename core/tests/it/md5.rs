//! Ferry's own MD5 (core/src/digest/md5.rs) against RustCrypto's `md-5`:
//! every length around the block and padding boundaries, and random data
//! fed in random pieces, as the chunked body feeds it.

use ferry_core::digest::{self, Algorithm, Hasher};
use md5_soft::Digest;
use proptest::prelude::*;

fn reference(data: &[u8]) -> [u8; 16] {
    md5_soft::Md5::digest(data).into()
}

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect()
}

#[test]
fn every_length_up_to_four_blocks_matches_md_5() {
    let all = data(64 * 4 + 1);
    for len in 0..=all.len() {
        assert_eq!(
            digest::md5(&all[..len]),
            reference(&all[..len]),
            "length {len}"
        );
    }
}

#[test]
fn a_large_buffer_matches_md_5_whole_and_in_uneven_pieces() {
    let all = data((1 << 20) + 13);
    let want = reference(&all);
    assert_eq!(digest::md5(&all), want);
    let mut h = Hasher::new(Algorithm::Md5).unwrap();
    let mut rest = &all[..];
    for piece in [1usize, 63, 64, 65, 127, 4096, 100_000].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*piece).min(rest.len());
        h.update(&rest[..n]);
        rest = &rest[n..];
    }
    assert_eq!(h.finish().as_bytes(), &want[..]);
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[test]
fn matches_the_assembly_md_5_too() {
    use md5_asm::Digest as _;
    let all = data(300_007);
    let want: [u8; 16] = md5_asm::Md5::digest(&all).into();
    assert_eq!(digest::md5(&all), want);
}

proptest! {
    #[test]
    fn random_data_in_random_pieces_matches_md_5(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let mut h = Hasher::new(Algorithm::Md5).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut at = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            h.update(&bytes[at..c]);
            at = c;
        }
        let got = h.finish();
        prop_assert_eq!(got.as_bytes(), &reference(&bytes)[..]);
    }
}
