//! The serial link's frames on the wire (docs/PROTOCOL.md#serial-link):
//! a header, a payload, a CRC-32, all COBS-encoded and ended by a zero
//! byte, so a receiver finds the next frame after any garbage.

/// Frame kinds (the first byte of a decoded frame).
pub(crate) const SYNC: u8 = 1;
pub(crate) const DATA: u8 = 2;
pub(crate) const ACK: u8 = 3;

/// `Ack.flags` bit 0: answer with an `Ack` (a probe: keepalive, or a
/// sender stopped by a zero credit).
pub(crate) const FLAG_PROBE: u8 = 1;

/// `Sync`: kind, the sender's epoch, the epoch it knows of the peer, the
/// largest data payload it takes.
pub(crate) const SYNC_LEN: usize = 1 + 4 + 4 + 2;
/// `Data` header: kind, link id, seq, ack, credit.
pub(crate) const DATA_HEADER: usize = 1 + 4 + 2 + 2 + 1;
/// `Ack`: kind, link id, ack, credit, selective bitmap, flags.
pub(crate) const ACK_LEN: usize = 1 + 4 + 2 + 1 + 4 + 1;
/// The CRC-32 after every frame.
pub(crate) const CRC_LEN: usize = 4;

/// Bytes on the wire for a decoded frame of `n` bytes: COBS's worst case
/// and the delimiter.
pub(crate) const fn encoded_len(n: usize) -> usize {
    n + n / 254 + 1 + 1
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet), bit by bit: the
/// line is far slower than the loop, and a table would cost 1 KiB of
/// flash on a device the whole link must fit in 4 KiB of.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A decoded, checked frame's header. A `Data` frame's payload follows
/// its header ([`DATA_HEADER`] bytes in), `len` bytes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    Sync {
        epoch: u32,
        known: u32,
        max_payload: u16,
    },
    Data {
        link: u32,
        seq: u16,
        ack: u16,
        credit: u8,
        len: usize,
    },
    Ack {
        link: u32,
        ack: u16,
        credit: u8,
        sack: u32,
        flags: u8,
    },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks and parses a decoded frame (CRC included); `None` for anything
/// damaged or unknown — the sender will send it again.
pub(crate) fn parse(b: &[u8]) -> Option<Frame> {
    let body_len = b.len().checked_sub(CRC_LEN)?;
    let (body, crc) = b.split_at(body_len);
    if crc32(body).to_be_bytes() != crc {
        return None;
    }
    match (*body.first()?, body.len()) {
        (SYNC, SYNC_LEN) => Some(Frame::Sync {
            epoch: be32(body, 1),
            known: be32(body, 5),
            max_payload: be16(body, 9),
        }),
        (DATA, n) if n > DATA_HEADER => Some(Frame::Data {
            link: be32(body, 1),
            seq: be16(body, 5),
            ack: be16(body, 7),
            credit: body[9],
            len: n - DATA_HEADER,
        }),
        (ACK, ACK_LEN) => Some(Frame::Ack {
            link: be32(body, 1),
            ack: be16(body, 5),
            credit: body[7],
            sack: be32(body, 8),
            flags: body[12],
        }),
        _ => None,
    }
}

/// Writes `frame`'s header and its CRC into `out` (for `Data`, its `len`
/// payload bytes are in place after the header already); returns the
/// decoded length.
pub(crate) fn write(frame: &Frame, out: &mut [u8]) -> usize {
    let n = match *frame {
        Frame::Sync {
            epoch,
            known,
            max_payload,
        } => {
            out[0] = SYNC;
            out[1..5].copy_from_slice(&epoch.to_be_bytes());
            out[5..9].copy_from_slice(&known.to_be_bytes());
            out[9..11].copy_from_slice(&max_payload.to_be_bytes());
            SYNC_LEN
        }
        Frame::Data {
            link,
            seq,
            ack,
            credit,
            len,
        } => {
            out[0] = DATA;
            out[1..5].copy_from_slice(&link.to_be_bytes());
            out[5..7].copy_from_slice(&seq.to_be_bytes());
            out[7..9].copy_from_slice(&ack.to_be_bytes());
            out[9] = credit;
            DATA_HEADER + len
        }
        Frame::Ack {
            link,
            ack,
            credit,
            sack,
            flags,
        } => {
            out[0] = ACK;
            out[1..5].copy_from_slice(&link.to_be_bytes());
            out[5..7].copy_from_slice(&ack.to_be_bytes());
            out[7] = credit;
            out[8..12].copy_from_slice(&sack.to_be_bytes());
            out[12] = flags;
            ACK_LEN
        }
    };
    let crc = crc32(&out[..n]);
    out[n..n + CRC_LEN].copy_from_slice(&crc.to_be_bytes());
    n + CRC_LEN
}

/// COBS-encodes `frame` into `out` and appends the zero delimiter;
/// returns the bytes written (`out` holds [`encoded_len`] at least; 0 if
/// it does not: a caller bug, nothing is sent).
///
/// By hand, not the `cobs` crate: these two cost 174 bytes less flash on
/// a Cortex-M4 (`.ci/size-report`, the link's line), in a link meant to
/// fit 4 KiB; `tests::cobs_matches_the_reference` checks them against
/// the reference encoding.
pub(crate) fn encode(frame: &[u8], out: &mut [u8]) -> usize {
    if out.len() < encoded_len(frame.len()) {
        return 0;
    }
    let (mut code_at, mut o, mut code) = (0, 1, 1u8);
    for &b in frame {
        if b != 0 {
            out[o] = b;
            o += 1;
            code += 1;
        }
        if b == 0 || code == 0xFF {
            out[code_at] = code;
            code_at = o;
            o += 1;
            code = 1;
        }
    }
    out[code_at] = code;
    out[o] = 0;
    o + 1
}

/// Decodes a COBS block (without its delimiter) in place; the decoded
/// length, or `None` if it is not valid COBS.
pub(crate) fn decode_in_place(b: &mut [u8]) -> Option<usize> {
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        let code = usize::from(b[i]);
        if code == 0 || i + code > b.len() + 1 {
            return None;
        }
        i += 1;
        for _ in 1..code {
            *b.get_mut(o)? = *b.get(i)?;
            o += 1;
            i += 1;
        }
        if code != 0xFF && i < b.len() {
            b[o] = 0;
            o += 1;
        }
    }
    Some(o)
}
