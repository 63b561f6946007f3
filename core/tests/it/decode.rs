//! The hand-written message decoder (`frame::decode_message`) against
//! postcard through serde, the wire form's definition: the same message
//! for every encoding, the same refusals for any other bytes.

use ferry_core::digest::{Algorithm, Sum};
use ferry_core::frame::decode_message;
use ferry_core::message::{Entry, Message, Request};
use ferry_core::{Kind, Overwrite};
use heapless::String;
use proptest::prelude::*;

/// What serde makes of `bytes` (postcard's `from_bytes` plus the rule
/// that nothing may follow).
fn by_serde(bytes: &[u8]) -> Option<Message> {
    match postcard::take_from_bytes::<Message>(bytes) {
        Ok((m, [])) => Some(m),
        _ => None,
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    postcard::to_slice(msg, &mut buf).unwrap().to_vec()
}

/// Strings within and just over a bound, with multi-byte characters.
fn text<const N: usize>() -> impl Strategy<Value = String<N>> {
    prop_oneof![
        "[a-z/._]{0,12}",
        "[é测a]{0,8}",
        Just("x".repeat(N)),
        Just("é".repeat(N / 2)),
    ]
    .prop_map(|s| String::try_from(s.as_str()).unwrap())
}

fn sum() -> impl Strategy<Value = Sum> {
    (
        prop_oneof![
            Just(Algorithm::Md5),
            Just(Algorithm::Sha256),
            Just(Algorithm::Blake3)
        ],
        any::<[u8; 32]>(),
    )
        .prop_map(|(a, b)| Sum::new(a, &b[..a.digest_len()]).unwrap())
}

fn overwrite() -> impl Strategy<Value = Overwrite> {
    prop_oneof![
        Just(Overwrite::Fail),
        Just(Overwrite::KeepBoth),
        Just(Overwrite::Replace)
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let overwrite = overwrite();
    prop_oneof![
        text().prop_map(|path| Request::Get { path }),
        (text(), any::<u64>(), overwrite, any::<bool>()).prop_map(
            |(path, size, overwrite, resume)| Request::Put {
                path,
                size,
                overwrite,
                resume
            }
        ),
        text().prop_map(|path| Request::List { path }),
        text().prop_map(|path| Request::Stat { path }),
        text().prop_map(|path| Request::Cd { path }),
        Just(Request::Pwd),
        text().prop_map(|path| Request::Mkdir { path }),
        text().prop_map(|path| Request::Remove { path }),
        (text(), text()).prop_map(|(from, to)| Request::Rename { from, to }),
        text().prop_map(|command| Request::Exec { command }),
        text().prop_map(|path| Request::Digest { path }),
        (text(), text()).prop_map(|(from, to)| Request::RenameReplace { from, to }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        Just(Kind::File),
        Just(Kind::Dir),
        Just(Kind::Symlink),
        Just(Kind::Other)
    ];
    let entry = (text(), kind, any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
        |(name, kind, size, modified, mode)| Entry {
            name,
            kind,
            size,
            modified,
            mode,
        },
    );
    prop_oneof![
        Just(Message::Anonymous),
        text().prop_map(Message::ClientFirst),
        text().prop_map(Message::ServerFirst),
        text().prop_map(Message::ClientFinal),
        text().prop_map(Message::ServerFinal),
        Just(Message::LoginOk),
        (text(), any::<bool>()).prop_map(|(text, upper)| Message::Echo { text, upper }),
        text().prop_map(Message::EchoReply),
        request().prop_map(Message::Request),
        Just(Message::Ok),
        text().prop_map(Message::Cwd),
        entry.prop_map(Message::Entry),
        any::<u32>().prop_map(|count| Message::ListEnd { count }),
        any::<u64>().prop_map(|size| Message::Offer { size }),
        (any::<u64>(), proptest::option::of(text()))
            .prop_map(|(offset, name)| Message::Accept { offset, name }),
        sum().prop_map(|sum| Message::Trailer { sum }),
        any::<bool>().prop_map(|verified| Message::Done { verified }),
        (any::<i32>(), any::<bool>())
            .prop_map(|(status, no_output)| Message::ExecEnd { status, no_output }),
        any::<u16>().prop_map(|code| Message::Error { code }),
        sum().prop_map(Message::Sum),
        any::<u16>().prop_map(|code| Message::Refuse { code }),
        (any::<u16>(), any::<u32>()).prop_map(|(code, seconds)| Message::Retry { code, seconds }),
        (text(), any::<u64>(), any::<u64>()).prop_map(|(path, offset, max)| Message::GetAgreed {
            path,
            offset,
            max
        }),
        (text(), any::<u64>(), overwrite()).prop_map(|(path, size, overwrite)| {
            Message::PutAgreed {
                path,
                size,
                overwrite,
            }
        }),
    ]
}

/// Every variant, so a message added to the enum without a line in the
/// decoder fails here: its tag must decode to a message of the same name.
#[test]
fn every_tag_serde_knows_the_decoder_knows() {
    let mut tags = 0;
    for tag in 0u8..=127 {
        // After the tag: 0 to 12 zero bytes (empty strings, zero
        // numbers, `false`, `None`), or an MD5 digest of zeros.
        let md5 = [&[1, 16][..], &[0; 16]].concat();
        for tail in (0..=12).map(|n| vec![0; n]).chain([md5]) {
            let bytes = [&[tag][..], &tail].concat();
            let serde = by_serde(&bytes);
            assert_eq!(decode_message(&bytes).ok(), serde, "bytes {bytes:02x?}");
            if serde.is_some() {
                tags |= 1u128 << tag;
            }
        }
    }
    // Tags 0..=23 decode from some such bytes, and no other.
    assert_eq!(tags, (1 << 24) - 1, "tags that decoded: {tags:b}");
}

#[test]
fn varints_at_their_width_limits() {
    // An Error code (u16): three bytes at most, the last ≤ 3.
    for (bytes, ok) in [
        (&[18, 0xff, 0xff, 0x03][..], true),
        (&[18, 0xff, 0xff, 0x04], false),
        (&[18, 0x80, 0x80, 0x00], true),
        (&[18, 0x80, 0x80, 0x80, 0x00], false),
        // An Offer (u64): ten bytes, the last ≤ 1.
        (
            &[
                13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            true,
        ),
        (
            &[
                13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
            false,
        ),
        // ExecEnd: zigzag i32, then a bool of 0 or 1.
        (&[17, 0xff, 0xff, 0xff, 0xff, 0x0f, 1], true),
        (&[17, 0x03, 2], false),
        // Accept: an Option tag of 0 or 1.
        (&[14, 0, 2], false),
        // A tag as a non-canonical varint.
        (&[0x80, 0x00], true),
    ] {
        assert_eq!(by_serde(bytes).is_some(), ok, "serde, {bytes:02x?}");
        assert_eq!(decode_message(bytes).ok(), by_serde(bytes), "{bytes:02x?}");
    }
}

proptest! {
    #[test]
    fn decodes_what_postcard_encodes(msg in message()) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode_message(&bytes), Ok(msg));
    }

    /// Encodings cut short, with a byte changed, or with bytes after.
    #[test]
    fn refuses_what_postcard_refuses(
        msg in message(),
        at in any::<prop::sample::Index>(),
        flip in any::<u8>(),
        cut in any::<bool>(),
        extra in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let mut bytes = encode(&msg);
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] ^= flip;
        }
        bytes.extend(extra);
        prop_assert_eq!(decode_message(&bytes).ok(), by_serde(&bytes));
    }

    #[test]
    fn arbitrary_bytes_alike(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(decode_message(&bytes).ok(), by_serde(&bytes));
    }
}

/// Each short message the core writes without a `Message`
/// (`ferry_core::brief`) is byte for byte its twin's encoding.
#[test]
fn brief_messages_encode_as_their_twins() {
    use ferry_core::brief::Brief;
    use ferry_core::frame::encode_message;
    let sum = Sum::new(Algorithm::Md5, &[7; 16]).unwrap();
    let entry = Entry {
        name: String::try_from("测试文件.txt").unwrap(),
        kind: Kind::Symlink,
        size: 1 << 33,
        modified: 1_700_000_000,
        mode: 0o755,
    };
    let long = "é".repeat(240);
    let all = [
        Brief::ServerFirst("r=abc,s=c2FsdA==,i=4096"),
        Brief::ServerFinal("v=x"),
        Brief::EchoReply("HELLO 测试"),
        Brief::Cwd(&long),
        Brief::Entry(&entry),
        Brief::Sum(sum),
        Brief::Accept {
            offset: 5,
            name: Some("x.new.1"),
        },
        Brief::LoginOk,
        Brief::Ok,
        Brief::ListEnd { count: 300 },
        Brief::Offer { size: u64::MAX },
        Brief::Accept {
            offset: 1 << 40,
            name: None,
        },
        Brief::Trailer { sum },
        Brief::Done { verified: true },
        Brief::Done { verified: false },
        Brief::ExecEnd {
            status: -9,
            no_output: true,
        },
        Brief::Error { code: 40_000 },
        Brief::Refuse { code: 3 },
        Brief::Retry {
            code: 12,
            seconds: 70_000,
        },
    ];
    for b in all {
        let (mut x, mut y) = ([0u8; 1024], [0u8; 1024]);
        let n = encode_message(&b, &mut x).unwrap();
        let m = encode_message(&b.twin().unwrap(), &mut y).unwrap();
        assert_eq!(x[..n], y[..m], "{b:?}");
        assert!(core::mem::size_of::<Brief>() <= 40);
    }
}
