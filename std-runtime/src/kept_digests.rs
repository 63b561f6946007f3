//! Digests the server has verified, kept per file version, so a get of a
//! file that has not changed since need not hash it again.
//!
//! A put ends with the server knowing the digest of exactly the bytes it
//! stored (it checked them against the client's trailer); a get or a
//! `stat --digest` that hashed an unchanged file learns the same. The next
//! get of that version offers the kept digest
//! ([`ferry_core::Server::offer_vouched`]), and the server's side of the
//! transfer is then a plain read and send. Nothing is trusted blindly: the
//! client hashes every byte as always, so a stale entry — or a bit that
//! flipped on the server's disk since the upload — ends in a checksum
//! mismatch, never in a wrong file; the entry is dropped then, so a retry
//! hashes afresh. Like an object store's ETag, computed once at upload.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use ferry_core::digest::{Algorithm, Sum};

/// One version of one file: a replacement is another inode, and every write
/// moves the change time (which, unlike the modification time, no user can
/// set back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    pub fn of(md: &impl MetadataExt) -> Version {
        Version {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }

    fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The kept digests, at most [`KeptDigests::CAPACITY`] files (the oldest go
/// first): about 150 bytes each, so a few MiB at most.
pub struct KeptDigests {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    files: HashMap<(u64, u64), (Version, Vec<Sum>)>,
    order: VecDeque<(u64, u64)>,
}

impl Default for KeptDigests {
    fn default() -> Self {
        KeptDigests {
            inner: Mutex::new(Inner::default()),
        }
    }
}

impl KeptDigests {
    pub const CAPACITY: usize = 16_384;

    /// The kept `algorithm` digest of exactly this version, if any.
    pub fn get(&self, v: &Version, algorithm: Algorithm) -> Option<Sum> {
        let inner = self.inner.lock().ok()?;
        let (kept, sums) = inner.files.get(&v.key())?;
        if kept != v {
            return None;
        }
        sums.iter().find(|s| s.algorithm() == algorithm).copied()
    }

    /// Keeps `sum` for this version (replacing what an older version had).
    pub fn put(&self, v: Version, sum: Sum) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        match inner.files.get_mut(&v.key()) {
            Some((kept, sums)) if *kept == v => {
                sums.retain(|s| s.algorithm() != sum.algorithm());
                sums.push(sum);
            }
            Some(entry) => *entry = (v, vec![sum]),
            None => {
                while inner.order.len() >= Self::CAPACITY {
                    if let Some(old) = inner.order.pop_front() {
                        inner.files.remove(&old);
                    }
                }
                inner.order.push_back(v.key());
                inner.files.insert(v.key(), (v, vec![sum]));
            }
        }
    }

    /// Drops what is kept for this file (its digest failed a client's
    /// check).
    pub fn forget(&self, v: &Version) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.files.remove(&v.key()).is_some() {
                inner.order.retain(|k| *k != v.key());
            }
        }
    }

    /// How many files have digests kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.files.len()).unwrap_or(0)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sum(a: Algorithm, data: &[u8]) -> Sum {
        ferry_core::digest::digest(a, data).unwrap()
    }

    #[test]
    fn a_kept_digest_is_found_only_for_the_same_version_and_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let v1 = Version::of(&std::fs::metadata(&path).unwrap());
        let sums = KeptDigests::default();
        sums.put(v1, sum(Algorithm::Md5, b"one"));
        assert_eq!(
            sums.get(&v1, Algorithm::Md5),
            Some(sum(Algorithm::Md5, b"one"))
        );
        assert_eq!(sums.get(&v1, Algorithm::Blake3), None);

        // Rewritten in place with the same size: the change time moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"two").unwrap();
        drop(f);
        let v2 = Version::of(&std::fs::metadata(&path).unwrap());
        assert_ne!(v1, v2);
        assert_eq!(sums.get(&v2, Algorithm::Md5), None);

        sums.put(v2, sum(Algorithm::Md5, b"two"));
        assert_eq!(
            sums.get(&v1, Algorithm::Md5),
            None,
            "the old version is gone"
        );
        sums.forget(&v2);
        assert_eq!(sums.get(&v2, Algorithm::Md5), None);
        assert!(sums.is_empty());
    }

    #[test]
    fn the_oldest_files_go_first_past_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let base = Version::of(&std::fs::metadata(&path).unwrap());
        let sums = KeptDigests::default();
        let at = |i: u64| Version { ino: i, ..base };
        for i in 0..KeptDigests::CAPACITY as u64 + 10 {
            sums.put(at(i), sum(Algorithm::Md5, b"x"));
        }
        assert_eq!(sums.len(), KeptDigests::CAPACITY);
        assert_eq!(sums.get(&at(9), Algorithm::Md5), None);
        assert!(sums.get(&at(10), Algorithm::Md5).is_some());
    }
}
