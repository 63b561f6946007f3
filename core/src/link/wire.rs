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

/// CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet), four bits at a
/// time from a 16-entry table: a 1 KiB byte table would not fit a link
/// meant for 4 KiB of flash, and bit by bit the CRC was 41 % of the
/// instructions a Cortex-M4 spent per MiB put (bench/device-cycles).
pub fn crc32(data: &[u8]) -> u32 {
    !crc_update(!0, data)
}

/// The register after four more bits, for each value of those four bits.
const NIBBLES: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 4 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            bit += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The CRC register after `data` (the CRC is the register's complement,
/// starting from all ones).
fn crc_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        crc = (crc >> 4) ^ NIBBLES[(crc & 15) as usize];
        crc = (crc >> 4) ^ NIBBLES[(crc & 15) as usize];
    }
    crc
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

/// The longest fixed part of a frame (an `Ack`'s).
const HEAD_MAX: usize = ACK_LEN;

/// Checks and parses a decoded frame (CRC included); `None` for anything
/// damaged or unknown — the sender will send it again.
pub(crate) fn parse(b: &[u8]) -> Option<Frame> {
    let body_len = b.len().checked_sub(CRC_LEN)?;
    let (body, crc) = b.split_at(body_len);
    if crc32(body).to_be_bytes() != crc {
        return None;
    }
    // The fixed part copied into an array of known length and taken
    // apart by a pattern: no bounds check nor call per field.
    let mut h = [0u8; HEAD_MAX];
    for (h, b) in h.iter_mut().zip(body) {
        *h = *b;
    }
    let [kind, l0, l1, l2, l3, b5, b6, b7, b8, b9, b10, b11, b12] = h;
    let link = u32::from_be_bytes([l0, l1, l2, l3]);
    match (kind, body.len()) {
        (SYNC, SYNC_LEN) => Some(Frame::Sync {
            epoch: link,
            known: u32::from_be_bytes([b5, b6, b7, b8]),
            max_payload: u16::from_be_bytes([b9, b10]),
        }),
        (DATA, n) if n > DATA_HEADER => Some(Frame::Data {
            link,
            seq: u16::from_be_bytes([b5, b6]),
            ack: u16::from_be_bytes([b7, b8]),
            credit: b9,
            len: n - DATA_HEADER,
        }),
        (ACK, ACK_LEN) => Some(Frame::Ack {
            link,
            ack: u16::from_be_bytes([b5, b6]),
            credit: b7,
            sack: u32::from_be_bytes([b8, b9, b10, b11]),
            flags: b12,
        }),
        _ => None,
    }
}

/// Encodes `frame` for the line: its header, `payload` (a data frame's;
/// empty for the others), the CRC-32 of both, COBS-encoded and ended by
/// the zero delimiter, into `out`; returns the bytes written. `out`
/// holds [`encoded_len`] of the frame (the link's output region holds a
/// full frame's); were it shorter, the frame would be cut short there and
/// fail its CRC at the peer, never a panic. In one pass from where the
/// payload lies, so the link needs no buffer for a plain frame (270 bytes
/// of RAM for 256-byte frames).
pub(crate) fn write(frame: &Frame, payload: &[u8], out: &mut [u8]) -> usize {
    // An array literal: no bounds check nor slice call per field.
    let (h, n): ([u8; HEAD_MAX], usize) = match *frame {
        Frame::Sync {
            epoch,
            known,
            max_payload,
        } => {
            let ([e0, e1, e2, e3], [k0, k1, k2, k3]) = (epoch.to_be_bytes(), known.to_be_bytes());
            let [m0, m1] = max_payload.to_be_bytes();
            (
                [SYNC, e0, e1, e2, e3, k0, k1, k2, k3, m0, m1, 0, 0],
                SYNC_LEN,
            )
        }
        Frame::Data {
            link,
            seq,
            ack,
            credit,
            ..
        } => {
            let [l0, l1, l2, l3] = link.to_be_bytes();
            let ([s0, s1], [a0, a1]) = (seq.to_be_bytes(), ack.to_be_bytes());
            (
                [DATA, l0, l1, l2, l3, s0, s1, a0, a1, credit, 0, 0, 0],
                DATA_HEADER,
            )
        }
        Frame::Ack {
            link,
            ack,
            credit,
            sack,
            flags,
        } => {
            let ([l0, l1, l2, l3], [a0, a1]) = (link.to_be_bytes(), ack.to_be_bytes());
            let [k0, k1, k2, k3] = sack.to_be_bytes();
            (
                [ACK, l0, l1, l2, l3, a0, a1, credit, k0, k1, k2, k3, flags],
                ACK_LEN,
            )
        }
    };
    let head = &h[..n];
    let crc = !crc_update(crc_update(!0, head), payload);
    let mut c = Cobs::new(out);
    for part in [head, payload, &crc.to_be_bytes()] {
        for &b in part {
            c.push(b);
        }
    }
    c.finish()
}

/// COBS-encodes `frame` into `out` and appends the zero delimiter (what
/// [`write`] does for a whole frame); for the tests against the
/// reference encoding.
#[cfg(test)]
pub(crate) fn encode(frame: &[u8], out: &mut [u8]) -> usize {
    if out.len() < encoded_len(frame.len()) {
        return 0;
    }
    let mut c = Cobs::new(out);
    for &b in frame {
        c.push(b);
    }
    c.finish()
}

/// A COBS encoder into `out`, a byte at a time; `out` holds
/// [`encoded_len`] of what is pushed (checked by the caller; a byte past
/// it is dropped, never a panic).
///
/// By hand, not the `cobs` crate: 174 bytes less flash on a Cortex-M4
/// (`.ci/size-report`, the link's line), and it encodes from pieces;
/// `tests::cobs_matches_the_reference` checks it against the reference.
struct Cobs<'a> {
    out: &'a mut [u8],
    /// Where the current block's code byte goes, the next byte's place,
    /// and the code so far (one more than the block's non-zero bytes).
    code_at: usize,
    o: usize,
    code: u8,
}

impl<'a> Cobs<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Cobs {
            out,
            code_at: 0,
            o: 1,
            code: 1,
        }
    }

    fn put(&mut self, at: usize, b: u8) {
        if let Some(slot) = self.out.get_mut(at) {
            *slot = b;
        }
    }

    fn push(&mut self, b: u8) {
        if b != 0 {
            self.put(self.o, b);
            self.o += 1;
            self.code += 1;
        }
        if b == 0 || self.code == 0xFF {
            self.put(self.code_at, self.code);
            self.code_at = self.o;
            self.o += 1;
            self.code = 1;
        }
    }

    /// Closes the last block and appends the delimiter; the length
    /// (what `out` holds of it).
    fn finish(mut self) -> usize {
        self.put(self.code_at, self.code);
        self.put(self.o, 0);
        (self.o + 1).min(self.out.len())
    }
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
