//! An in-memory file store behind a [`Handler`]: what a device or a test
//! serves. Shared by the `loopback` example and the driver tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use ferry_core::driver::Handler;
use ferry_core::{Entry, Error, Kind, Overwrite, Request, Server, ServerEvent, Stream, Verifier};

enum Pending {
    Login(String),
    Request(Box<Request>),
    SendBody(u64),
    PutEnd(bool),
}

/// Files in a map; `exec` knows `echo` and `true`.
#[derive(Default)]
pub struct MemStore {
    pub files: BTreeMap<String, Vec<u8>>,
    pub users: Vec<(String, Verifier)>,
    pending: Option<Pending>,
    upload: Option<(String, Vec<u8>)>,
    /// A get body: data, position, and whether the client accepted yet.
    sending: Option<(Vec<u8>, usize, bool)>,
    exec_out: Option<(Vec<u8>, usize)>,
    /// Completed, verified uploads (for assertions).
    pub stored: usize,
}

impl MemStore {
    fn entry(name: &str, size: u64) -> Entry {
        Entry {
            name: name.try_into().unwrap_or_default(),
            kind: Kind::File,
            size,
            modified: 0,
            mode: 0o644,
        }
    }

    fn request<B: ferry_core::Buffer>(
        &mut self,
        s: &mut Server<B>,
        req: Request,
    ) -> Result<(), Error> {
        match req {
            Request::Get { path } => match self.files.get(path.as_str()) {
                Some(data) => {
                    s.offer(data.len() as u64)?;
                    self.sending = Some((data.clone(), 0, false));
                }
                None => s.refuse(Error::NotFound)?,
            },
            Request::Put {
                path, overwrite, ..
            } => {
                if self.files.contains_key(path.as_str()) && overwrite != Overwrite::Replace {
                    return s.refuse(Error::Exists);
                }
                s.accept_put(0, None)?;
                self.upload = Some((path.to_string(), Vec::new()));
            }
            Request::List { .. } => {
                for (name, data) in &self.files {
                    s.list_entry(&Self::entry(name, data.len() as u64))?;
                }
                s.list_end()?;
            }
            Request::Stat { path } => match self.files.get(path.as_str()) {
                Some(d) => s.reply_entry(&Self::entry(&path, d.len() as u64))?,
                None => s.refuse(Error::NotFound)?,
            },
            Request::Digest { path } => match self.files.get(path.as_str()) {
                Some(d) => {
                    let alg = s.negotiated().ok_or(Error::Internal)?.digest;
                    s.reply_sum(&ferry_core::digest::digest(alg, d).ok_or(Error::Internal)?)?
                }
                None => s.refuse(Error::NotFound)?,
            },
            Request::Cd { .. } | Request::Pwd => s.reply_cwd("/")?,
            Request::Remove { path } => match self.files.remove(path.as_str()) {
                Some(_) => s.reply_ok()?,
                None => s.refuse(Error::NotFound)?,
            },
            Request::Mkdir { .. } | Request::Rename { .. } | Request::RenameReplace { .. } => {
                s.refuse(Error::Permission)?
            }
            Request::Exec { command } => match command.split_once(' ') {
                Some(("echo", rest)) => self.exec_out = Some((format!("{rest}\n").into_bytes(), 0)),
                None if command == "true" => s.exec_end(0)?,
                _ => s.refuse(Error::ExecFailed)?,
            },
        }
        Ok(())
    }
}

impl<B: ferry_core::Buffer> Handler<B> for MemStore {
    fn event(&mut self, event: ServerEvent<'_>) {
        match event {
            ServerEvent::LoginRequest { user } => {
                self.pending = Some(Pending::Login(user.to_string()))
            }
            ServerEvent::Request(r) => self.pending = Some(Pending::Request(Box::new(r))),
            ServerEvent::SendBody { offset } => self.pending = Some(Pending::SendBody(offset)),
            ServerEvent::Data(d) => {
                if let Some((_, body)) = &mut self.upload {
                    body.extend_from_slice(d);
                }
            }
            ServerEvent::PutEnd { verified, .. } => self.pending = Some(Pending::PutEnd(verified)),
            ServerEvent::Cancelled(_) | ServerEvent::Closed(_) => {
                self.upload = None;
                self.sending = None;
            }
            _ => {}
        }
    }

    fn respond(&mut self, s: &mut Server<B>) -> Result<(), Error> {
        match self.pending.take() {
            Some(Pending::Login(user)) => {
                let v = self
                    .users
                    .iter()
                    .find(|(u, _)| *u == user)
                    .map(|(_, v)| v.clone());
                s.login_verifier(v.as_ref(), &random_bytes())?;
            }
            Some(Pending::Request(r)) => self.request(s, *r)?,
            Some(Pending::SendBody(offset)) => {
                if let Some((data, pos, started)) = &mut self.sending {
                    if offset > 0 {
                        s.feed_prefix(&data[..offset as usize])?;
                    }
                    *pos = offset as usize;
                    *started = true;
                }
            }
            Some(Pending::PutEnd(verified)) => {
                let (name, body) = self.upload.take().ok_or(Error::Internal)?;
                if verified {
                    self.files.insert(name, body);
                    self.stored += 1;
                    s.finish_put()?;
                }
            }
            None => {}
        }
        if let Some((data, pos, true)) = &mut self.sending {
            if s.remaining() > 0 {
                let at = *pos;
                *pos += s.send_with(|buf| {
                    let n = buf.len().min(data.len() - at);
                    buf[..n].copy_from_slice(&data[at..at + n]);
                    (n, n)
                })?;
            }
            if s.remaining() == 0 {
                self.sending = None;
            }
        }
        if let Some((out, pos)) = &mut self.exec_out {
            match s.exec_output(Stream::Stdout, &out[*pos..]) {
                Ok(n) => *pos += n,
                Err(Error::BufferFull) => {}
                Err(e) => return Err(e),
            }
            if *pos == out.len() {
                self.exec_out = None;
                s.exec_end(0)?;
            }
        }
        Ok(())
    }

    fn has_output(&self) -> bool {
        self.exec_out.is_some() || self.sending.is_some()
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
