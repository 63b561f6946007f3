//! The message decoder: no panic, and whatever decodes re-encodes to a
//! message that decodes the same (postcard tolerates overlong varints, so
//! the bytes may be shorter, never different in meaning).
#![no_main]

use ferry_core::frame::{decode_message, encode_message, read_header, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.get(..HEADER_LEN) {
        let head: &[u8; HEADER_LEN] = head.try_into().unwrap();
        let _ = read_header(head, 1 << 20);
    }
    if let Ok(msg) = decode_message(data) {
        let mut buf = vec![0u8; data.len() + 64];
        let n = encode_message(&msg, &mut buf).expect("a decoded message encodes");
        assert!(n - HEADER_LEN <= data.len(), "re-encoding never grows");
        assert_eq!(decode_message(&buf[HEADER_LEN..n]).as_ref(), Ok(&msg));
    }
});
