//! The link's frames: the CRC, damage refused, a frame byte for byte.
//! (The link over a simulated line is tested in `core/tests/it/link.rs`.)

use std::vec::Vec;

use super::*;

fn link(epoch: u32, cfg: LinkConfig) -> Link<Vec<u8>, 16> {
    let buf = std::vec![0u8; Link::<Vec<u8>, 16>::buffer_len(usize::from(cfg.max_payload))];
    Link::new(Instant::ZERO, cfg, epoch, buf).unwrap()
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn frames_round_trip_and_damage_is_refused() {
    let mut buf = [0u8; 64];
    let f = wire::Frame::Ack {
        link: 0xA1B2_C3D4,
        ack: 7,
        credit: 3,
        sack: 0b101,
        flags: wire::FLAG_PROBE,
    };
    let coded = wire::write(&f, &[], &mut buf);
    let n = wire::decode_in_place(&mut buf[..coded - 1]).unwrap();
    assert_eq!(wire::parse(&buf[..n]), Some(f));
    for i in 0..n {
        for bit in 0..8 {
            let mut bad = buf;
            bad[i] ^= 1 << bit;
            assert_eq!(wire::parse(&bad[..n]), None, "byte {i} bit {bit}");
        }
    }
    assert_eq!(wire::parse(&buf[..n - 1]), None);
}

/// The first `Sync` of epoch 0x01020304, byte for byte (the example in
/// docs/PROTOCOL.md#serial-link).
#[test]
fn a_sync_frame_on_the_wire() {
    let mut l = link(0x0102_0304, LinkConfig::default());
    let out = l.transmit(Instant::ZERO).to_vec();
    assert_eq!(
        out,
        [
            0x06, 0x01, 0x01, 0x02, 0x03, 0x04, 0x01, 0x01, 0x01, 0x02, 0x04, 0x05, 0x75, 0x91,
            0xCB, 0x60, 0x00
        ]
    );
}

/// The hand-written COBS against the reference rules (Cheshire and
/// Baker): zero runs, a 254-byte run, and the empty frame.
#[test]
fn cobs_matches_the_reference() {
    let cases: [(&[u8], &[u8]); 5] = [
        (&[], &[0x01, 0x00]),
        (&[0x00], &[0x01, 0x01, 0x00]),
        (
            &[0x11, 0x22, 0x00, 0x33],
            &[0x03, 0x11, 0x22, 0x02, 0x33, 0x00],
        ),
        (
            &[0x11, 0x00, 0x00, 0x00],
            &[0x02, 0x11, 0x01, 0x01, 0x01, 0x00],
        ),
        (&[0x00, 0x00], &[0x01, 0x01, 0x01, 0x00]),
    ];
    let mut out = [0u8; 700];
    for (plain, coded) in cases {
        let n = wire::encode(plain, &mut out);
        assert_eq!(&out[..n], coded, "{plain:02x?}");
        let mut b = coded[..coded.len() - 1].to_vec();
        let m = wire::decode_in_place(&mut b).unwrap();
        assert_eq!(&b[..m], plain);
    }
    // Runs of 254 non-zero bytes and more, every length up to 600.
    for len in 0..600 {
        let plain: Vec<u8> = (0..len)
            .map(|i| if i % 300 == 7 { 0 } else { 1 + (i % 255) as u8 })
            .collect();
        let n = wire::encode(&plain, &mut out);
        assert!(n <= wire::encoded_len(len));
        assert!(!out[..n - 1].contains(&0));
        let mut b = out[..n - 1].to_vec();
        let m = wire::decode_in_place(&mut b).unwrap();
        assert_eq!(&b[..m], &plain[..], "{len}");
    }
    let mut bad = [0x05, 0x11];
    assert_eq!(wire::decode_in_place(&mut bad), None);
}
