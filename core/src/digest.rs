//! Body digests and their negotiation: the one place that names a hash
//! implementation.
//!
//! MD5 is the protocol's mandatory digest — the original design, and the only
//! one a tiny device may carry — so it is always compiled in and always
//! acceptable to both sides. Peers that can do better agree on better in the
//! hello: each lists what it supports in preference order, and the client's
//! first choice that the server also supports wins ([`choose`]). SHA-256
//! (feature `sha256`) and BLAKE3 (feature `blake3`) are optional; BLAKE3 is
//! several times faster than MD5 and, like SHA-256, is not broken against a
//! deliberate attacker.
//!
//! Implementations, chosen by measurement (`cargo bench -p ferry-core --bench
//! core`, docs/BENCHMARKS.md): our own MD5 (`src/digest/md5.rs`, safe Rust
//! arranged for the step-to-step dependency chain; ~4 % faster than
//! RustCrypto's x86 assembly and ~25 % faster than its portable `md-5`),
//! RustCrypto's `sha2` (uses SHA-NI when the CPU has it) and the `blake3`
//! crate (SIMD; runtime CPU detection needs our `std`).
//! All are `no_std` and allocation-free.

use core::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

mod md5;

/// Longest digest any algorithm produces, in bytes.
pub const MAX_LEN: usize = 32;

/// A digest algorithm. The discriminant is the id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    /// MD5: mandatory, always available. An integrity check against
    /// accidents, not against an attacker.
    Md5 = 1,
    /// SHA-256 (feature `sha256`).
    Sha256 = 2,
    /// BLAKE3, 256-bit output (feature `blake3`).
    Blake3 = 3,
}

impl Algorithm {
    /// Every algorithm this version knows, fastest first.
    pub const KNOWN: [Algorithm; 3] = [Algorithm::Blake3, Algorithm::Sha256, Algorithm::Md5];

    /// The wire id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The algorithm with wire id `id`, if this version knows it.
    pub const fn from_id(id: u8) -> Option<Algorithm> {
        match id {
            1 => Some(Algorithm::Md5),
            2 => Some(Algorithm::Sha256),
            3 => Some(Algorithm::Blake3),
            _ => None,
        }
    }

    /// The name users type and logs print, as in `md5sum`, `sha256sum`,
    /// `b3sum`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// Parses [`Self::name`] (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::KNOWN
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 | Algorithm::Blake3 => 32,
        }
    }

    /// Whether this build carries an implementation.
    pub const fn is_available(self) -> bool {
        match self {
            Algorithm::Md5 => true,
            Algorithm::Sha256 => cfg!(feature = "sha256"),
            Algorithm::Blake3 => cfg!(feature = "blake3"),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A preference-ordered list of algorithms, as carried in the hello: up to
/// [`Digests::SLOTS`] wire ids, unused slots zero. MD5 is implied at the end
/// of every list, so a peer that sends zeros (or only ids this version does
/// not know) still agrees on MD5.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digests {
    ids: [u8; Digests::SLOTS],
}

impl Digests {
    /// Slots in the hello.
    pub const SLOTS: usize = 4;

    /// Only MD5: what a peer without optional digests offers.
    pub const MD5_ONLY: Digests = Digests {
        ids: [Algorithm::Md5 as u8, 0, 0, 0],
    };

    /// Every algorithm this build carries, fastest first.
    pub fn available() -> Digests {
        let mut d = Digests {
            ids: [0; Self::SLOTS],
        };
        for (slot, a) in Algorithm::KNOWN
            .into_iter()
            .filter(|a| a.is_available())
            .enumerate()
        {
            d.ids[slot] = a.id();
        }
        d
    }

    /// A list from `prefs`, in that order. Fails with [`Error::Unsupported`]
    /// for an algorithm this build does not carry, a repeat, or more than
    /// [`Self::SLOTS`] entries.
    pub fn new(prefs: &[Algorithm]) -> Result<Digests, Error> {
        if prefs.is_empty() || prefs.len() > Self::SLOTS {
            return Err(Error::Unsupported);
        }
        let mut d = Digests {
            ids: [0; Self::SLOTS],
        };
        for (slot, a) in prefs.iter().enumerate() {
            if !a.is_available() || prefs[..slot].contains(a) {
                return Err(Error::Unsupported);
            }
            d.ids[slot] = a.id();
        }
        Ok(d)
    }

    /// The listed algorithms this version knows, in preference order
    /// (without the implied MD5).
    pub fn iter(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.ids.iter().filter_map(|&id| Algorithm::from_id(id))
    }

    /// Whether `a` is listed explicitly.
    pub fn lists(&self, a: Algorithm) -> bool {
        self.iter().any(|x| x == a)
    }

    /// Whether this list, used by a client, refuses the fallback to MD5: it
    /// names at least one algorithm and MD5 is not among them.
    pub fn pins(&self) -> bool {
        self.iter().next().is_some() && !self.lists(Algorithm::Md5)
    }

    /// Whether `a` is acceptable: listed, or MD5.
    pub fn accepts(&self, a: Algorithm) -> bool {
        a == Algorithm::Md5 || self.lists(a)
    }

    /// The wire form.
    pub const fn to_bytes(self) -> [u8; Self::SLOTS] {
        self.ids
    }

    /// From the wire; ids this version does not know are kept but never
    /// chosen.
    pub const fn from_bytes(ids: [u8; Self::SLOTS]) -> Digests {
        Digests { ids }
    }
}

impl Default for Digests {
    fn default() -> Self {
        Self::available()
    }
}

impl fmt::Debug for Digests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for Digests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.name())?;
        }
        Ok(())
    }
}

/// The negotiation rule: the client's first choice (MD5 implied last) that
/// the server accepts. Both sides compute it from the two hellos, so it costs
/// no round trip.
pub fn choose(client: Digests, server: Digests) -> Algorithm {
    client
        .iter()
        .find(|&a| a.is_available() && server.accepts(a))
        .unwrap_or(Algorithm::Md5)
}

/// A finished digest: the algorithm and its bytes. This is what a trailer
/// carries, so a log or a test sees which algorithm checked the file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sum {
    algorithm: Algorithm,
    bytes: [u8; MAX_LEN],
}

impl Sum {
    /// A sum from its bytes; `None` if the length is not the algorithm's.
    pub fn new(algorithm: Algorithm, bytes: &[u8]) -> Option<Sum> {
        if bytes.len() != algorithm.digest_len() {
            return None;
        }
        let mut b = [0; MAX_LEN];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(Sum {
            algorithm,
            bytes: b,
        })
    }

    /// An all-zero sum: the placeholder trailer that ends a cancelled body.
    pub const fn zero(algorithm: Algorithm) -> Sum {
        Sum {
            algorithm,
            bytes: [0; MAX_LEN],
        }
    }

    /// Which algorithm made it.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The digest bytes ([`Algorithm::digest_len`] of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_len()]
    }
}

impl fmt::Debug for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self)
    }
}

/// Lower-case hex, as `md5sum`, `sha256sum` and `b3sum` print it.
impl fmt::Display for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Wire form: the algorithm id, then the digest as length-prefixed bytes.
impl Serialize for Sum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.algorithm.id())?;
        t.serialize_element(&Bytes(self.as_bytes()))?;
        t.end()
    }
}

/// Serializes as bytes (a length, then the bytes), not as a sequence.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for Sum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sum, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sum, A::Error> {
                let id: u8 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let bytes: &'de [u8] = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let algorithm = Algorithm::from_id(id)
                    .ok_or_else(|| de::Error::custom("unknown digest algorithm"))?;
                Sum::new(algorithm, bytes).ok_or_else(|| de::Error::custom("bad digest length"))
            }
        }
        d.deserialize_tuple(2, V)
    }
}

/// Incremental hashing with one algorithm.
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Md5(md5::Md5),
    #[cfg(feature = "sha256")]
    Sha256(sha2::Sha256),
    #[cfg(feature = "blake3")]
    Blake3(blake3::Hasher),
}

impl Hasher {
    /// A fresh hasher; `None` if this build does not carry `algorithm`.
    pub fn new(algorithm: Algorithm) -> Option<Hasher> {
        Some(Hasher(match algorithm {
            Algorithm::Md5 => Inner::Md5(md5::Md5::new()),
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => Inner::Sha256(sha2::Digest::new()),
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => Inner::Blake3(blake3::Hasher::new()),
            #[allow(unreachable_patterns)]
            _ => return None,
        }))
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Inner::Md5(_) => Algorithm::Md5,
            #[cfg(feature = "sha256")]
            Inner::Sha256(_) => Algorithm::Sha256,
            #[cfg(feature = "blake3")]
            Inner::Blake3(_) => Algorithm::Blake3,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Md5(h) => h.update(data),
            #[cfg(feature = "sha256")]
            Inner::Sha256(h) => sha2::Digest::update(h, data),
            #[cfg(feature = "blake3")]
            Inner::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// The digest of everything added so far.
    pub fn finish(&self) -> Sum {
        let algorithm = self.algorithm();
        let mut bytes = [0; MAX_LEN];
        match &self.0 {
            Inner::Md5(h) => bytes[..16].copy_from_slice(&h.clone().finalize()),
            #[cfg(feature = "sha256")]
            Inner::Sha256(h) => bytes.copy_from_slice(&sha2::Digest::finalize(h.clone())),
            #[cfg(feature = "blake3")]
            Inner::Blake3(h) => bytes = *h.finalize().as_bytes(),
        }
        Sum { algorithm, bytes }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

/// The digest of one buffer; `None` if this build does not carry
/// `algorithm`.
pub fn digest(algorithm: Algorithm, data: &[u8]) -> Option<Sum> {
    let mut h = Hasher::new(algorithm)?;
    h.update(data);
    Some(h.finish())
}

/// MD5 of one buffer.
pub fn md5(data: &[u8]) -> [u8; 16] {
    let mut h = md5::Md5::new();
    h.update(data);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &Sum) -> std::string::String {
        std::format!("{s}")
    }

    /// Known-answer vectors: RFC 1321, FIPS 180-2 and the BLAKE3 reference.
    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&digest(Algorithm::Md5, b"").unwrap()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex(&digest(Algorithm::Md5, b"abc").unwrap()),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        #[cfg(feature = "sha256")]
        assert_eq!(
            hex(&digest(Algorithm::Sha256, b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        #[cfg(feature = "blake3")]
        assert_eq!(
            hex(&digest(Algorithm::Blake3, b"").unwrap()),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        #[cfg(feature = "blake3")]
        assert_eq!(
            hex(&digest(Algorithm::Blake3, b"abc").unwrap()),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: std::vec::Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for a in Digests::available().iter() {
            let mut h = Hasher::new(a).unwrap();
            for part in data.chunks(997) {
                h.update(part);
            }
            assert_eq!(h.finish(), digest(a, &data).unwrap(), "{a}");
        }
    }

    #[test]
    fn client_preference_wins_and_md5_is_implied() {
        let md5 = Digests::MD5_ONLY;
        assert_eq!(choose(Digests::available(), md5), Algorithm::Md5);
        assert_eq!(choose(md5, Digests::available()), Algorithm::Md5);
        // A peer that sent zeros, or only ids unknown here, still gets MD5.
        let zeros = Digests::from_bytes([0; 4]);
        let future = Digests::from_bytes([200, 201, 0, 0]);
        assert_eq!(choose(zeros, Digests::available()), Algorithm::Md5);
        assert_eq!(choose(future, zeros), Algorithm::Md5);
        #[cfg(all(feature = "sha256", feature = "blake3"))]
        {
            let c = Digests::new(&[Algorithm::Sha256, Algorithm::Blake3]).unwrap();
            let s = Digests::new(&[Algorithm::Blake3, Algorithm::Sha256, Algorithm::Md5]).unwrap();
            assert_eq!(choose(c, s), Algorithm::Sha256, "the client's order wins");
            let s = Digests::new(&[Algorithm::Md5, Algorithm::Blake3]).unwrap();
            assert_eq!(choose(c, s), Algorithm::Blake3);
        }
    }

    #[test]
    fn lists_reject_repeats_and_missing_algorithms() {
        assert_eq!(
            Digests::new(&[Algorithm::Md5, Algorithm::Md5]),
            Err(Error::Unsupported)
        );
        assert_eq!(Digests::new(&[]), Err(Error::Unsupported));
        #[cfg(not(feature = "blake3"))]
        assert_eq!(Digests::new(&[Algorithm::Blake3]), Err(Error::Unsupported));
    }

    #[test]
    fn sum_round_trips_on_the_wire_and_rejects_bad_lengths() {
        for a in Digests::available().iter() {
            let s = digest(a, b"ferry").unwrap();
            let mut buf = [0u8; 64];
            let used = postcard::to_slice(&s, &mut buf).unwrap();
            assert_eq!(used.len(), 2 + a.digest_len());
            assert_eq!(postcard::from_bytes::<Sum>(used).unwrap(), s);
        }
        // MD5 id with 32 bytes, and an unknown id.
        let mut bad = [0u8; 34];
        bad[0] = 1;
        bad[1] = 32;
        assert!(postcard::from_bytes::<Sum>(&bad).is_err());
        bad[0] = 9;
        bad[1] = 16;
        assert!(postcard::from_bytes::<Sum>(&bad[..18]).is_err());
    }
}
