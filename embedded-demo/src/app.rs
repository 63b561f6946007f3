//! One session's application: the RAM store and the built-in commands
//! behind ferry-core's `Server`, as a [`Handler`]. No heap, no shell.

use core::fmt::Write as _;

use ferry_core::digest::{self, Algorithm, Digests};
use ferry_core::driver::Handler;
use ferry_core::{Error, Instant, Overwrite, Request, Server, ServerEvent, Stream, Verifier};
use heapless::String;

use crate::store::{file_name, RamStore, MAX_FILE_NAME};

/// The body digests this device offers. MD5 only by default: it is the
/// protocol's mandatory digest and the smallest. The `blake3` feature adds
/// BLAKE3 (preferred when the client asks for it). Set here, not taken from
/// whatever the core was built with, so the device's offer does not change
/// when a workspace build unifies features.
pub const DIGESTS: Digests = if cfg!(feature = "blake3") {
    Digests::from_bytes([Algorithm::Blake3.id(), Algorithm::Md5.id(), 0, 0])
} else {
    Digests::MD5_ONLY
};

/// Core buffers per session (each direction): 1 KiB frames and more.
pub const FRAME_BUF: usize = 2048;

/// The core server type of one session.
pub type Conn = Server<[u8; FRAME_BUF]>;

/// Who may log in.
#[derive(Clone)]
pub enum Auth {
    /// Anyone, without a password.
    Anonymous,
    /// One user with a SCRAM verifier.
    User(String<64>, Verifier),
}

/// Output of a built-in command, sent a piece at a time.
type Output = String<2048>;

#[derive(Default)]
enum Pending {
    #[default]
    None,
    Login(String<64>),
    Request(Request),
    SendBody(u64),
    PutEnd(bool),
    Abort(Error),
}

/// What one session remembers between events.
#[derive(Default)]
pub struct SessionState {
    pending: Pending,
    upload: Option<(String<MAX_FILE_NAME>, bool)>,
    download: Option<(String<MAX_FILE_NAME>, usize, bool)>,
    listing: Option<usize>,
    exec: Option<(Output, usize)>,
    /// The connection ended.
    pub closed: bool,
}

impl SessionState {
    /// Whether this session holds the store's upload slot.
    pub fn uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Whether it has output to produce without new input.
    pub fn has_output(&self) -> bool {
        self.listing.is_some() || self.exec.is_some() || self.download.as_ref().is_some_and(|d| d.2)
    }
}

/// A session's state together with what it works on, for one poll.
pub struct App<'a, const FILES: usize, const BYTES: usize> {
    /// The session.
    pub st: &'a mut SessionState,
    /// The shared store.
    pub store: &'a mut RamStore<FILES, BYTES>,
    /// Who may log in.
    pub auth: &'a Auth,
    /// Fills a buffer with random bytes (a hardware RNG on a device).
    pub random: fn(&mut [u8]),
    /// Now.
    pub now: Instant,
}

fn hex(d: &[u8; 16]) -> String<32> {
    let mut s = String::new();
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl<const FILES: usize, const BYTES: usize> App<'_, FILES, BYTES> {
    fn request(&mut self, s: &mut Conn, req: Request) -> Result<(), Error> {
        let r = match req {
            Request::Get { path } => file_name(&path).and_then(|n| {
                let data = self.store.read(n).ok_or(Error::NotFound)?;
                s.offer(data.len() as u64)?;
                let mut name = String::new();
                let _ = name.push_str(n);
                self.st.download = Some((name, 0, false));
                Ok(())
            }),
            Request::Put {
                path,
                size,
                overwrite,
                resume: _,
            } => file_name(&path).and_then(|n| {
                // The device keeps no partial uploads: a resume starts over.
                if self.store.contains(n) && overwrite != Overwrite::Replace {
                    return Err(Error::Exists);
                }
                self.store.begin_upload(size)?;
                if let Err(e) = s.accept_put(0, None) {
                    self.store.abort_upload();
                    return Err(e);
                }
                let mut name = String::new();
                let _ = name.push_str(n);
                self.st.upload = Some((name, overwrite == Overwrite::Replace));
                Ok(())
            }),
            Request::List { path } => {
                if !matches!(path.as_str(), "" | "/" | ".") {
                    Err(Error::NotFound)
                } else {
                    self.st.listing = Some(0);
                    Ok(())
                }
            }
            Request::Stat { path } => {
                let n = file_name(&path)?;
                match self.store.entry(n) {
                    Some(e) => s.reply_entry(&e),
                    None => Err(Error::NotFound),
                }
            }
            Request::Digest { path } => {
                let n = file_name(&path)?;
                let data = self.store.read(n).ok_or(Error::NotFound)?;
                let alg = s.negotiated().ok_or(Error::Internal)?.digest;
                s.reply_sum(&digest::digest(alg, data).ok_or(Error::Internal)?)
            }
            Request::Cd { path } => match path.as_str() {
                "" | "/" | "." => s.reply_cwd("/"),
                _ => Err(Error::NotFound),
            },
            Request::Pwd => s.reply_cwd("/"),
            Request::Mkdir { .. } => Err(Error::Permission),
            Request::Remove { path } => file_name(&path)
                .and_then(|n| self.store.remove(n))
                .and_then(|_| s.reply_ok()),
            Request::Rename { from, to } => {
                let (f, t) = (file_name(&from)?, file_name(&to)?);
                self.store.rename(f, t).and_then(|_| s.reply_ok())
            }
            Request::RenameReplace { from, to } => {
                let (f, t) = (file_name(&from)?, file_name(&to)?);
                self.store.rename_replacing(f, t).and_then(|_| s.reply_ok())
            }
            Request::Exec { command } => match self.builtin(&command) {
                Ok(out) => {
                    self.st.exec = Some((out, 0));
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => s.refuse(e),
        }
    }

    /// The device's commands: there is no shell.
    fn builtin(&self, line: &str) -> Result<Output, Error> {
        let mut out = Output::new();
        let mut words = line.split_whitespace();
        let w = |r: core::fmt::Result| r.map_err(|_| Error::TooLarge);
        match words.next() {
            Some("uptime") => {
                let ms = self.now.as_millis();
                w(writeln!(out, "up {}.{:03} s", ms / 1000, ms % 1000))?;
            }
            Some("free") => w(writeln!(
                out,
                "{} bytes free of {BYTES}, {} of {FILES} files",
                self.store.free(),
                self.store.len()
            ))?,
            Some("ls") => {
                for e in self.store.entries() {
                    w(writeln!(out, "{:>8}  {}", e.size, e.name))?;
                }
            }
            Some("echo") => {
                let mut first = true;
                for word in words {
                    if !first {
                        w(out.push_str(" ").map_err(|_| core::fmt::Error))?;
                    }
                    w(out.push_str(word).map_err(|_| core::fmt::Error))?;
                    first = false;
                }
                w(out.push_str("\n").map_err(|_| core::fmt::Error))?;
            }
            Some("md5") => {
                let name = words.next().ok_or(Error::ExecFailed)?;
                let data = self.store.read(file_name(name)?).ok_or(Error::NotFound)?;
                w(writeln!(
                    out,
                    "{}  {name}",
                    hex(&ferry_core::digest::md5(data))
                ))?;
            }
            _ => return Err(Error::ExecFailed),
        }
        Ok(out)
    }

    fn pump(&mut self, s: &mut Conn) -> Result<(), Error> {
        if let Some((name, pos, true)) = &mut self.st.download {
            let Some(data) = self.store.read(name) else {
                self.st.download = None;
                return s.cancel(Error::NotFound);
            };
            loop {
                let buf = s.send_buffer();
                let n = buf.len().min(data.len().saturating_sub(*pos));
                if n == 0 {
                    break;
                }
                buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                s.commit_send(n)?;
                *pos += n;
            }
            if s.remaining() == 0 {
                self.st.download = None;
            }
        }
        if let Some(i) = self.st.listing {
            let mut i = i;
            while let Some(e) = self.store.entry_at(i) {
                match s.list_entry(&e) {
                    Ok(()) => i += 1,
                    Err(Error::BufferFull) => {
                        self.st.listing = Some(i);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            self.st.listing = None;
            s.list_end()?;
        }
        if let Some((out, pos)) = &mut self.st.exec {
            while *pos < out.len() {
                match s.exec_output(Stream::Stdout, &out.as_bytes()[*pos..]) {
                    Ok(n) => *pos += n,
                    Err(Error::BufferFull) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            self.st.exec = None;
            s.exec_end(0)?;
        }
        Ok(())
    }
}

impl<const FILES: usize, const BYTES: usize> Handler<[u8; FRAME_BUF]> for App<'_, FILES, BYTES> {
    fn event(&mut self, event: ServerEvent<'_>) {
        match event {
            ServerEvent::LoginRequest { user } => {
                let mut u = String::new();
                let _ = u.push_str(&user);
                self.st.pending = Pending::Login(u);
            }
            ServerEvent::Request(r) => self.st.pending = Pending::Request(r),
            ServerEvent::SendBody { offset } => self.st.pending = Pending::SendBody(offset),
            ServerEvent::Data(d) => {
                if let Err(e) = self.store.write_upload(d) {
                    self.st.pending = Pending::Abort(e);
                }
            }
            ServerEvent::PutEnd { verified, .. } => self.st.pending = Pending::PutEnd(verified),
            ServerEvent::Cancelled(_) => {
                if self.st.upload.take().is_some() {
                    self.store.abort_upload();
                }
                self.st.download = None;
            }
            ServerEvent::Closed(_) => {
                if self.st.upload.take().is_some() {
                    self.store.abort_upload();
                }
                self.st.closed = true;
            }
            _ => {}
        }
    }

    fn respond(&mut self, s: &mut Conn) -> Result<(), Error> {
        match core::mem::take(&mut self.st.pending) {
            Pending::None => {}
            Pending::Login(user) => {
                let v = match self.auth {
                    Auth::User(name, v) if *name == user => Some(v),
                    _ => None,
                };
                let mut nonce = [0u8; 18];
                (self.random)(&mut nonce);
                s.login_verifier(v, &nonce)?;
            }
            Pending::Request(r) => self.request(s, r)?,
            Pending::SendBody(offset) => {
                if let Some((name, pos, started)) = &mut self.st.download {
                    let data = self.store.read(name).ok_or(Error::NotFound)?;
                    let off = usize::try_from(offset).map_err(|_| Error::BadOffset)?;
                    s.feed_prefix(data.get(..off).ok_or(Error::BadOffset)?)?;
                    *pos = off;
                    *started = true;
                }
            }
            Pending::PutEnd(verified) => {
                if let Some((name, replace)) = self.st.upload.take() {
                    if verified {
                        let secs = self.now.as_millis() / 1000;
                        match self.store.commit_upload(&name, replace, secs) {
                            Ok(()) => s.finish_put()?,
                            Err(e) => s.refuse(e)?,
                        }
                    } else {
                        self.store.abort_upload();
                    }
                }
            }
            Pending::Abort(e) => {
                if self.st.upload.take().is_some() {
                    self.store.abort_upload();
                }
                s.cancel(e)?;
            }
        }
        self.pump(s)
    }

    fn has_output(&self) -> bool {
        self.st.has_output()
    }
}
