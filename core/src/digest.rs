//! The body checksum. MD5 is chosen by the protocol (the original notes'
//! check); this module is the one place that names an implementation, so a
//! faster one can replace it without touching the state machines.

/// An MD5 digest.
pub type Md5Digest = [u8; 16];

/// Incremental MD5 over a transfer's bytes.
#[derive(Clone)]
pub struct Md5(md5::Context);

impl Md5 {
    /// A fresh hasher.
    pub fn new() -> Self {
        Md5(md5::Context::new())
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.consume(data);
    }

    /// The digest of everything added so far.
    pub fn finish(self) -> Md5Digest {
        self.0.finalize().0
    }
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Md5 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Md5(..)")
    }
}

/// MD5 of one buffer.
pub fn md5(data: &[u8]) -> Md5Digest {
    let mut h = Md5::new();
    h.update(data);
    h.finish()
}
