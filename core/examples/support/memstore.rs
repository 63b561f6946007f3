//! An in-memory file store as an [`app::Store`]: what a device or a test
//! serves. Shared by the `loopback` example and the driver tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use ferry_core::app::{self, Accepted, ExecPoll};
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::{Entry, Error, Kind, Overwrite, Stream, Verifier};

/// Files in a map; `exec` knows `echo` and `true`.
#[derive(Default)]
pub struct MemStore {
    pub files: BTreeMap<String, Vec<u8>>,
    pub users: Vec<(String, Verifier)>,
    /// Completed, verified uploads (for assertions).
    pub stored: usize,
}

fn entry(name: &str, size: u64) -> Entry {
    Entry {
        name: name.try_into().unwrap_or_default(),
        kind: Kind::File,
        size,
        modified: 0,
        mode: 0o644,
    }
}

impl app::Store for MemStore {
    /// A get reads a snapshot of the file.
    type File = Vec<u8>;
    /// The name and the bytes so far.
    type Upload = (String, Vec<u8>);
    type Listing = std::vec::IntoIter<Entry>;
    /// The output and how much of it was sent.
    type Exec = (Vec<u8>, usize);

    fn verifier(&self, user: &str) -> Option<&Verifier> {
        self.users.iter().find(|(u, _)| u == user).map(|(_, v)| v)
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        for (b, r) in buf.iter_mut().zip(random_bytes().iter().cycle()) {
            *b = *r;
        }
        Ok(())
    }

    fn open(&mut self, path: &str) -> Result<(Vec<u8>, u64), Error> {
        let data = self.files.get(path).ok_or(Error::NotFound)?;
        Ok((data.clone(), data.len() as u64))
    }

    fn read_at(&mut self, file: &mut Vec<u8>, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = file.get(at as usize..).unwrap_or_default();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn begin_upload(
        &mut self,
        path: &str,
        _size: u64,
        overwrite: Overwrite,
        _resume: bool,
        _digest: Algorithm,
    ) -> Result<Accepted<Self::Upload>, Error> {
        if self.files.contains_key(path) && overwrite != Overwrite::Replace {
            return Err(Error::Exists);
        }
        let upload = (path.to_string(), Vec::new());
        Ok(Accepted {
            upload,
            offset: 0,
            stored_as: None,
        })
    }

    fn write(&mut self, up: &mut Self::Upload, data: &[u8]) -> Result<(), Error> {
        up.1.extend_from_slice(data);
        Ok(())
    }

    fn commit(&mut self, (name, body): Self::Upload, _sum: Sum) -> Result<(), Error> {
        self.files.insert(name, body);
        self.stored += 1;
        Ok(())
    }

    fn list(&mut self, _path: &str) -> Result<Self::Listing, Error> {
        let all: Vec<Entry> = self
            .files
            .iter()
            .map(|(name, data)| entry(name, data.len() as u64))
            .collect();
        Ok(all.into_iter())
    }

    fn next_entry(&mut self, l: &mut Self::Listing, slot: &mut Entry) -> Result<bool, Error> {
        Ok(l.next().map(|e| *slot = e).is_some())
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        let d = self.files.get(path).ok_or(Error::NotFound)?;
        Ok(entry(path, d.len() as u64))
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.files.remove(path).map(drop).ok_or(Error::NotFound)
    }

    fn exec(&mut self, command: &str) -> Result<Self::Exec, Error> {
        match command.split_once(' ') {
            Some(("echo", rest)) => Ok((format!("{rest}\n").into_bytes(), 0)),
            None if command == "true" => Ok((Vec::new(), 0)),
            _ => Err(Error::ExecFailed),
        }
    }

    fn exec_poll<'a>(&'a mut self, (out, pos): &'a mut Self::Exec) -> ExecPoll<'a> {
        match &out[*pos..] {
            [] => ExecPoll::Exit(0),
            rest => ExecPoll::Output(Stream::Stdout, rest),
        }
    }

    fn exec_consume(&mut self, x: &mut Self::Exec, n: usize) {
        x.1 += n;
    }
}

/// 16 bytes from the OS-seeded hasher: enough for an example's nonces
/// without an RNG crate. Real drivers use `getrandom` or a hardware RNG.
pub fn random_bytes() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}
