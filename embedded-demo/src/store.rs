//! A fixed-capacity RAM file store: `FILES` names over one `BYTES` arena,
//! no heap. Files are packed from the start; an upload is written behind
//! the last file and becomes a file only once verified, so a client that
//! vanishes mid-put leaves the store exactly as it was.

use ferry_core::message::Name;
use ferry_core::{Entry, Error, Kind};
use heapless::{String, Vec};

/// Longest file name on the device, in bytes.
pub const MAX_FILE_NAME: usize = 64;

#[derive(Debug, Clone)]
struct File {
    name: String<MAX_FILE_NAME>,
    start: usize,
    len: usize,
    modified: u64,
}

/// The store.
pub struct RamStore<const FILES: usize, const BYTES: usize> {
    data: [u8; BYTES],
    used: usize,
    files: Vec<File, FILES>,
    /// Bytes of the upload in progress, written at `used..`.
    upload: Option<usize>,
}

/// A flat name: an optional leading `/`, then one component.
pub fn file_name(path: &str) -> Result<&str, Error> {
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.is_empty() {
        return Err(Error::IsADirectory);
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidPath);
    }
    if name.len() > MAX_FILE_NAME {
        return Err(Error::InvalidPath);
    }
    Ok(name)
}

impl<const FILES: usize, const BYTES: usize> RamStore<FILES, BYTES> {
    /// An empty store.
    pub const fn new() -> Self {
        RamStore {
            data: [0; BYTES],
            used: 0,
            files: Vec::new(),
            upload: None,
        }
    }

    /// Bytes free for new files.
    pub fn free(&self) -> usize {
        BYTES - self.used
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the store holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| f.name == name)
    }

    /// A file's bytes.
    pub fn read(&self, name: &str) -> Option<&[u8]> {
        let f = &self.files[self.index(name)?];
        Some(&self.data[f.start..f.start + f.len])
    }

    /// Describes a file.
    pub fn entry(&self, name: &str) -> Option<Entry> {
        let f = &self.files[self.index(name)?];
        Some(Self::to_entry(f))
    }

    fn to_entry(f: &File) -> Entry {
        let mut name = Name::new();
        let _ = name.push_str(&f.name);
        Entry {
            name,
            kind: Kind::File,
            size: f.len as u64,
            modified: f.modified,
            mode: 0o644,
        }
    }

    /// Every file, in store order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.files.iter().map(Self::to_entry)
    }

    /// The `i`th entry (for listing a bit at a time).
    pub fn entry_at(&self, i: usize) -> Option<Entry> {
        self.files.get(i).map(Self::to_entry)
    }

    /// Starts an upload of `size` bytes: refused before any body byte when
    /// it cannot fit, or when another upload is in progress.
    pub fn begin_upload(&mut self, size: u64) -> Result<(), Error> {
        if self.upload.is_some() {
            return Err(Error::InUse);
        }
        if size > self.free() as u64 {
            return Err(Error::NoSpace);
        }
        self.upload = Some(0);
        Ok(())
    }

    /// Appends upload bytes.
    pub fn write_upload(&mut self, data: &[u8]) -> Result<(), Error> {
        let at = self.upload.ok_or(Error::BadUsage)?;
        let start = self.used + at;
        let dst = self
            .data
            .get_mut(start..start + data.len())
            .ok_or(Error::NoSpace)?;
        dst.copy_from_slice(data);
        self.upload = Some(at + data.len());
        Ok(())
    }

    /// Drops the upload in progress; the store is as it was.
    pub fn abort_upload(&mut self) {
        self.upload = None;
    }

    /// Makes the (verified) upload the file `name`, replacing an old one
    /// only if `replace`.
    pub fn commit_upload(&mut self, name: &str, replace: bool, now_secs: u64) -> Result<(), Error> {
        let len = self.upload.take().ok_or(Error::BadUsage)?;
        if let Some(i) = self.index(name) {
            if !replace {
                return Err(Error::Exists);
            }
            // Compact the old file away; the upload behind `used` moves too.
            self.remove_at(i, len);
        } else if self.files.is_full() {
            return Err(Error::NoSpace);
        }
        let mut n = String::new();
        n.push_str(name).map_err(|_| Error::InvalidPath)?;
        self.files
            .push(File {
                name: n,
                start: self.used,
                len,
                modified: now_secs,
            })
            .map_err(|_| Error::NoSpace)?;
        self.used += len;
        Ok(())
    }

    /// Removes file `i`, moving everything behind it (files and `extra`
    /// bytes of upload) down.
    fn remove_at(&mut self, i: usize, extra: usize) {
        let f = self.files.remove(i);
        self.data
            .copy_within(f.start + f.len..self.used + extra, f.start);
        self.used -= f.len;
        for g in self.files.iter_mut().filter(|g| g.start > f.start) {
            g.start -= f.len;
        }
    }

    /// Removes a file.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        if self.upload.is_some() {
            return Err(Error::InUse);
        }
        let i = self.index(name).ok_or(Error::NotFound)?;
        self.remove_at(i, 0);
        Ok(())
    }

    /// Renames a file (refusing to replace another).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let i = self.index(from).ok_or(Error::NotFound)?;
        if self.index(to).is_some() {
            return Err(Error::Exists);
        }
        let mut n = String::new();
        n.push_str(to).map_err(|_| Error::InvalidPath)?;
        self.files[i].name = n;
        Ok(())
    }

    /// Renames a file, replacing `to` if it exists (`ferry mv --overwrite
    /// replace`). Refused while an upload is in progress if that would move
    /// its bytes.
    pub fn rename_replacing(&mut self, from: &str, to: &str) -> Result<(), Error> {
        self.index(from).ok_or(Error::NotFound)?;
        if from == to {
            return Ok(());
        }
        if to.len() > MAX_FILE_NAME {
            return Err(Error::InvalidPath);
        }
        if let Some(j) = self.index(to) {
            if self.upload.is_some() {
                return Err(Error::InUse);
            }
            self.remove_at(j, 0);
        }
        self.rename(from, to)
    }

    /// Whether a file exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index(name).is_some()
    }
}

impl<const FILES: usize, const BYTES: usize> Default for RamStore<FILES, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_commit_replace_and_compact() {
        let mut s: RamStore<4, 100> = RamStore::new();
        for (name, body) in [("a", &b"aaaa"[..]), ("b", b"bb"), ("c", b"cccccc")] {
            s.begin_upload(body.len() as u64).unwrap();
            s.write_upload(body).unwrap();
            s.commit_upload(name, false, 1).unwrap();
        }
        assert_eq!(s.free(), 88);
        s.begin_upload(3).unwrap();
        s.write_upload(b"AAA").unwrap();
        s.commit_upload("a", true, 2).unwrap();
        assert_eq!(s.read("a"), Some(&b"AAA"[..]));
        assert_eq!(s.read("b"), Some(&b"bb"[..]));
        assert_eq!(s.read("c"), Some(&b"cccccc"[..]));
        assert_eq!(s.free(), 89);
        s.remove("b").unwrap();
        assert_eq!(s.read("c"), Some(&b"cccccc"[..]));
        assert_eq!(s.read("a"), Some(&b"AAA"[..]));
        // Too big: refused up front; aborted uploads leave no trace.
        assert_eq!(s.begin_upload(100), Err(Error::NoSpace));
        s.begin_upload(5).unwrap();
        assert_eq!(s.begin_upload(1), Err(Error::InUse));
        s.write_upload(b"zz").unwrap();
        s.abort_upload();
        assert_eq!(s.len(), 2);
        assert_eq!(s.free(), 91);
        assert_eq!(file_name("/../x"), Err(Error::InvalidPath));
        assert_eq!(file_name("/ok.txt"), Ok("ok.txt"));
    }

    /// Renaming onto an existing name is refused; replacing removes the
    /// old file and frees its bytes.
    #[test]
    fn rename_refuses_an_existing_name_and_rename_replacing_replaces() {
        let mut s: RamStore<4, 100> = RamStore::new();
        for (name, body) in [("a", &b"aaaa"[..]), ("b", b"bb")] {
            s.begin_upload(body.len() as u64).unwrap();
            s.write_upload(body).unwrap();
            s.commit_upload(name, false, 1).unwrap();
        }
        assert_eq!(s.rename("a", "b"), Err(Error::Exists));
        assert_eq!(s.read("b"), Some(&b"bb"[..]));
        s.rename_replacing("a", "b").unwrap();
        assert_eq!(s.read("b"), Some(&b"aaaa"[..]));
        assert_eq!(s.read("a"), None);
        assert_eq!(s.free(), 96);
        assert_eq!(s.rename_replacing("a", "c"), Err(Error::NotFound));
    }

    /// The announced size at the free space fits; one byte more is refused
    /// before any body byte.
    #[test]
    fn announced_size_at_bound_and_bound_plus_one() {
        let mut s: RamStore<4, 100> = RamStore::new();
        assert_eq!(s.begin_upload(101), Err(Error::NoSpace));
        assert_eq!(s.begin_upload(u64::MAX), Err(Error::NoSpace));
        s.begin_upload(100).unwrap();
        s.write_upload(&[7; 100]).unwrap();
        assert_eq!(s.write_upload(&[7]), Err(Error::NoSpace));
        s.commit_upload("full", false, 1).unwrap();
        assert_eq!(s.free(), 0);
        assert_eq!(s.begin_upload(1), Err(Error::NoSpace));
        s.begin_upload(0).unwrap();
        s.commit_upload("empty", false, 1).unwrap();
        assert_eq!(s.read("empty"), Some(&b""[..]));
    }
}
