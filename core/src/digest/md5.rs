//! MD5 (RFC 1321), written for the dependency chain.
//!
//! MD5 cannot be parallelised: each of its 64 steps per block needs the
//! previous step's result, so its speed is the length of that chain in
//! cycles. This version keeps the chain short the way the fastest
//! hand-written assembly does, in safe Rust:
//!
//! - the message word, the round constant and the register four steps back
//!   are summed before the previous step's result is known;
//! - in rounds 2 and 3 the part of the boolean function that does not need
//!   the previous result is added early too (round 2's two halves never
//!   share a bit, so `|` may be `+`);
//! - the round constants are read through [`core::hint::black_box`], so the
//!   compiler keeps them as early operands instead of moving them to the
//!   end of each sum, where they would lengthen the chain.
//!
//! Measured on the development machine (docs/BENCHMARKS.md): ~4 % faster
//! than RustCrypto's x86 assembly and ~25 % faster than its portable code,
//! with no assembly, no `unsafe` and no C toolchain. Tests check it against
//! `md-5` on every length around the block and padding boundaries.

/// The round constants: `floor(abs(sin(i + 1)) × 2^32)`.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// Incremental MD5.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// A partial block waiting for more input.
    block: [u8; 64],
    filled: usize,
    /// Bytes hashed so far (the length in the padding).
    len: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub const fn new() -> Self {
        Md5 {
            state: INIT,
            block: [0; 64],
            filled: 0,
            len: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            compress(&mut self.state, &self.block);
            self.filled = 0;
        }
        let whole = data.len() - data.len() % 64;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        // 0x80, zeros to 56 mod 64, then the length in bits.
        let pad = if self.filled < 56 {
            56 - self.filled
        } else {
            120 - self.filled
        };
        let mut tail = [0u8; 72];
        tail[0] = 0x80;
        tail[pad..pad + 8].copy_from_slice(&bits.to_le_bytes());
        self.update(&tail[..pad + 8]);
        debug_assert_eq!(self.filled, 0);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Runs the block function over whole 64-byte blocks.
fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    let [mut a, mut b, mut c, mut d] = *state;
    let k: &[u32; 64] = core::hint::black_box(&K);
    for block in blocks.chunks_exact(64) {
        // All sixteen words up front, so they count as early operands.
        let w = |i: usize| {
            u32::from_le_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        };
        let m = [
            w(0),
            w(1),
            w(2),
            w(3),
            w(4),
            w(5),
            w(6),
            w(7),
            w(8),
            w(9),
            w(10),
            w(11),
            w(12),
            w(13),
            w(14),
            w(15),
        ];
        let (aa, bb, cc, dd) = (a, b, c, d);
        // Round 1: F = (b & c) | (!b & d), written d ^ (b & (c ^ d)).
        macro_rules! f {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $s:expr) => {
                $a = $a.wrapping_add(k[$i].wrapping_add(m[$i]));
                $a = $a.wrapping_add($d ^ ($b & ($c ^ $d)));
                $a = $a.rotate_left($s).wrapping_add($b);
            };
        }
        // Round 2: G = (b & d) | (c & !d); the halves are disjoint, so the
        // one without `b` is added before `b` is ready.
        macro_rules! g {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $s:expr) => {
                $a = $a.wrapping_add(k[$i].wrapping_add(m[(1 + 5 * $i) % 16]));
                $a = $a.wrapping_add($c & !$d);
                $a = $a.wrapping_add($b & $d);
                $a = $a.rotate_left($s).wrapping_add($b);
            };
        }
        // Round 3: H = b ^ c ^ d, with c ^ d first.
        macro_rules! h {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $s:expr) => {
                $a = $a.wrapping_add(k[$i].wrapping_add(m[(5 + 3 * $i) % 16]));
                $a = $a.wrapping_add($b ^ ($c ^ $d));
                $a = $a.rotate_left($s).wrapping_add($b);
            };
        }
        // Round 4: I = c ^ (b | !d).
        macro_rules! i {
            ($a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $s:expr) => {
                $a = $a.wrapping_add(k[$i].wrapping_add(m[(7 * $i) % 16]));
                $a = $a.wrapping_add($c ^ ($b | !$d));
                $a = $a.rotate_left($s).wrapping_add($b);
            };
        }
        macro_rules! round {
            ($step:ident, $first:expr, $s0:expr, $s1:expr, $s2:expr, $s3:expr) => {
                $step!(a, b, c, d, $first, $s0);
                $step!(d, a, b, c, $first + 1, $s1);
                $step!(c, d, a, b, $first + 2, $s2);
                $step!(b, c, d, a, $first + 3, $s3);
            };
        }
        round!(f, 0, 7, 12, 17, 22);
        round!(f, 4, 7, 12, 17, 22);
        round!(f, 8, 7, 12, 17, 22);
        round!(f, 12, 7, 12, 17, 22);
        round!(g, 16, 5, 9, 14, 20);
        round!(g, 20, 5, 9, 14, 20);
        round!(g, 24, 5, 9, 14, 20);
        round!(g, 28, 5, 9, 14, 20);
        round!(h, 32, 4, 11, 16, 23);
        round!(h, 36, 4, 11, 16, 23);
        round!(h, 40, 4, 11, 16, 23);
        round!(h, 44, 4, 11, 16, 23);
        round!(i, 48, 6, 10, 15, 21);
        round!(i, 52, 6, 10, 15, 21);
        round!(i, 56, 6, 10, 15, 21);
        round!(i, 60, 6, 10, 15, 21);
        a = a.wrapping_add(aa);
        b = b.wrapping_add(bb);
        c = c.wrapping_add(cc);
        d = d.wrapping_add(dd);
    }
    *state = [a, b, c, d];
}

#[cfg(test)]
mod tests {
    use super::Md5;

    fn md5(data: &[u8]) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(data);
        h.finalize()
    }

    /// RFC 1321's test suite.
    #[test]
    fn rfc1321_vectors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"a", "0cc175b9c0f1b6a831c399e269772661"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            let got = md5(input);
            let mut hex = [0u8; 32];
            for (i, b) in got.iter().enumerate() {
                hex[2 * i] = b"0123456789abcdef"[(b >> 4) as usize];
                hex[2 * i + 1] = b"0123456789abcdef"[(b & 15) as usize];
            }
            assert_eq!(core::str::from_utf8(&hex).unwrap(), want);
        }
    }
}
