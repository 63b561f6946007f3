//! The device's application: the RAM store and the built-in commands as
//! a ferry-core [`Store`], served by the core's one session
//! (`ferry_core::app::Session`). No heap, no shell.

use core::fmt::Write as _;
use core::ops::{Deref, DerefMut};

use ferry_core::app::{Abort, Accepted, ExecPoll, Store};
use ferry_core::digest::{self, Algorithm, Digests, Sum};
use ferry_core::{Entry, Error, Instant, Overwrite, Server, ServerConfig, Stream, Verifier};
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
// Checked at build time, not at the first connection's `Conn::new`.
const _: () = assert!(
    FRAME_BUF >= ferry_core::MIN_INPUT_BUFFER && FRAME_BUF >= ferry_core::MIN_OUTPUT_BUFFER
);

/// The core server type of one session.
pub type Conn = Server<[u8; FRAME_BUF]>;

/// The core server's configuration for the device's sessions, with a
/// fresh secret from `random` (every transport's: TCP and serial).
pub fn server_config(auth: &Auth, random: fn(&mut [u8])) -> ServerConfig {
    let mut secret = [0u8; 32];
    random(&mut secret);
    ServerConfig {
        conn: ferry_core::Config {
            chunk_size: 1024,
            digests: DIGESTS,
            ..ferry_core::Config::default()
        },
        allow_anonymous: matches!(auth, Auth::Anonymous),
        allow_exec: true,
        ..ServerConfig::new(secret)
    }
}

/// Who may log in.
#[derive(Clone)]
pub enum Auth {
    /// Anyone, without a password.
    Anonymous,
    /// One user with a SCRAM verifier.
    User(String<64>, Verifier),
}

/// Output of a built-in command: room for the longest, `echo` of a whole
/// command line and its newline. `ls` is rendered a file at a time.
type Output = String<{ ferry_core::MAX_TEXT + 1 }>;

/// A built-in command's run: its output and how much of it went out, and
/// for `ls` the next file to list. One line of `ls` at a time keeps the
/// output at 961 bytes rather than the whole listing (it was a 2 KiB
/// buffer, held in the session and moved through the stack:
/// embedded-demo/firmware-serial's RAM). Like a `list` request's, the
/// listing follows the store as it goes: on the TCP device another
/// session's `rm` or `mv` meanwhile can make it skip or repeat a name.
pub struct Run {
    out: Output,
    pos: usize,
    ls: Option<usize>,
}

/// A file name on the device.
type Name = String<MAX_FILE_NAME>;

/// The RAM store with who may log in, a random source and the time: what
/// every session of the device serves. Derefs to the [`RamStore`].
pub struct DeviceStore<'s, const FILES: usize, const BYTES: usize> {
    /// The files, shared by every session.
    pub ram: &'s mut RamStore<FILES, BYTES>,
    /// Who may log in.
    pub auth: Auth,
    /// Fills a buffer with random bytes (a hardware RNG on a device).
    pub random: fn(&mut [u8]),
    /// Now (for `uptime`), set by the driver at each poll.
    pub now: Instant,
}

impl<const FILES: usize, const BYTES: usize> Deref for DeviceStore<'_, FILES, BYTES> {
    type Target = RamStore<FILES, BYTES>;
    fn deref(&self) -> &Self::Target {
        self.ram
    }
}

impl<const FILES: usize, const BYTES: usize> DerefMut for DeviceStore<'_, FILES, BYTES> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.ram
    }
}

fn hex(d: &[u8; 16]) -> String<32> {
    let mut s = String::new();
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn name(n: &str) -> Result<Name, Error> {
    let mut name = Name::new();
    name.push_str(file_name(n)?)
        .map_err(|_| Error::InvalidPath)?;
    Ok(name)
}

impl<const FILES: usize, const BYTES: usize> DeviceStore<'_, FILES, BYTES> {
    /// The device's commands: there is no shell.
    fn builtin(&self, line: &str) -> Result<Run, Error> {
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
                self.ram.free(),
                self.ram.len()
            ))?,
            Some("ls") => {
                return Ok(Run {
                    out,
                    pos: 0,
                    ls: Some(0),
                })
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
                let data = self.ram.read(file_name(name)?).ok_or(Error::NotFound)?;
                w(writeln!(out, "{}  {name}", hex(&digest::md5(data))))?;
            }
            _ => return Err(Error::ExecFailed),
        }
        Ok(Run {
            out,
            pos: 0,
            ls: None,
        })
    }
}

impl<const FILES: usize, const BYTES: usize> Store for DeviceStore<'_, FILES, BYTES> {
    /// The file's name: looked up at each read.
    type File = Name;
    /// The target name and whether it replaces an existing file; the
    /// bytes go behind the store's last file (one upload at a time).
    type Upload = (Name, bool);
    /// The index of the next file.
    type Listing = usize;
    /// A built-in command's output and how much of it was sent (for `ls`,
    /// the line in hand and the next file).
    type Exec = Run;

    fn verifier(&self, user: &str) -> Option<&Verifier> {
        match &self.auth {
            Auth::User(name, v) if name == user => Some(v),
            _ => None,
        }
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        (self.random)(buf);
        Ok(())
    }

    fn open(&mut self, path: &str) -> Result<(Name, u64), Error> {
        let n = name(path)?;
        let size = self.ram.read(&n).ok_or(Error::NotFound)?.len() as u64;
        Ok((n, size))
    }

    fn read_at(&mut self, file: &mut Name, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let data = self.ram.read(file).ok_or(Error::NotFound)?;
        let rest = usize::try_from(at).ok().and_then(|at| data.get(at..));
        let rest = rest.ok_or(Error::BadOffset)?;
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    /// Hashed in place, without copying through a scratch buffer.
    fn digest(&mut self, path: &str, alg: Algorithm, _: &mut [u8]) -> Result<Sum, Error> {
        let data = self.ram.read(file_name(path)?).ok_or(Error::NotFound)?;
        digest::digest(alg, data).ok_or(Error::Internal)
    }

    fn begin_upload(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        _resume: bool,
        _digest: Algorithm,
    ) -> Result<Accepted<(Name, bool)>, Error> {
        let n = name(path)?;
        // The device keeps no partial uploads: a resume starts over.
        if self.ram.contains(&n) && overwrite != Overwrite::Replace {
            return Err(Error::Exists);
        }
        self.ram.begin_upload(size)?;
        let replace = overwrite == Overwrite::Replace;
        Ok(Accepted {
            upload: (n, replace),
            offset: 0,
            stored_as: None,
        })
    }

    fn write(&mut self, _: &mut (Name, bool), data: &[u8]) -> Result<(), Error> {
        self.ram.write_upload(data)
    }

    fn commit(&mut self, (name, replace): (Name, bool), _: Sum) -> Result<(), Error> {
        let secs = self.now.as_millis() / 1000;
        self.ram.commit_upload(&name, replace, secs)
    }

    fn keep(&mut self, _: (Name, bool), _: Abort) {
        self.ram.abort_upload();
    }

    fn discard(&mut self, _: (Name, bool)) {
        self.ram.abort_upload();
    }

    fn list(&mut self, path: &str) -> Result<usize, Error> {
        match path {
            "" | "/" | "." => Ok(0),
            _ => Err(Error::NotFound),
        }
    }

    fn next_entry(&mut self, i: &mut usize, slot: &mut Entry) -> Result<bool, Error> {
        let Some(e) = self.ram.entry_at(*i) else {
            return Ok(false);
        };
        *slot = e;
        *i += 1;
        Ok(true)
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        self.ram.entry(file_name(path)?).ok_or(Error::NotFound)
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.ram.remove(file_name(path)?)
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        let (f, t) = (file_name(from)?, file_name(to)?);
        if replace {
            self.ram.rename_replacing(f, t)
        } else {
            self.ram.rename(f, t)
        }
    }

    fn exec(&mut self, command: &str) -> Result<Run, Error> {
        self.builtin(command)
    }

    fn exec_poll<'a>(&'a mut self, run: &'a mut Run) -> ExecPoll<'a> {
        if run.pos == run.out.len() {
            // `ls`: the next file's line, once the last one went out.
            if let Some(i) = run.ls {
                run.out.clear();
                run.pos = 0;
                run.ls = self.ram.entry_at(i).map(|e| {
                    // A line is at most 8 + 2 + 64 + 1 bytes: it fits.
                    let _ = writeln!(run.out, "{:>8}  {}", e.size, e.name);
                    i + 1
                });
            }
        }
        match run.out.as_bytes().get(run.pos..) {
            Some(rest) if !rest.is_empty() => ExecPoll::Output(Stream::Stdout, rest),
            _ => ExecPoll::Exit(0),
        }
    }

    fn exec_consume(&mut self, run: &mut Run, n: usize) {
        run.pos += n;
    }
}
