//! The std client: a ferry-core `Client` driven by the core's blocking
//! `embedded-io` driver over a TCP or Unix socket, plus the file handling a
//! user expects from scp/sftp: atomic local writes, resume, recursion,
//! overwrite policies, progress.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant};

use embedded_io_adapters::std::FromStd;
use ferry_core::digest::{Algorithm, Digests, Sum};
use ferry_core::driver::blocking::BlockingClient;
use ferry_core::driver::{Gets, Got, Lists, Puts};
use ferry_core::naming::{keep_both_name, part_name};
use ferry_core::{Config, Entry, Error, Instant, Kind, Overwrite, Stream};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use crate::error::{on_exists, FerryError};
use crate::serial::SerialStream;
use crate::url::FerryUrl;
use crate::writer::{self, Writer};

/// Buffer per direction: one 256 KiB chunk plus its header.
const BUF: usize = 256 * 1024 + 64;

/// A TCP or Unix socket or a serial line, or TLS over one of them.
pub enum Transport {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
    /// TLS over TCP (`ferrys://`).
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// TLS over a Unix socket (`ferrys://` with `--socket`, e.g. a socket
    /// forwarded to a TLS server): the certificate is checked against the
    /// URL's host as over TCP.
    TlsUnix(Box<rustls::StreamOwned<rustls::ClientConnection, UnixStream>>),
    /// A serial line (`--serial`), through ferry-core's link layer.
    Serial(Box<SerialStream>),
    /// TLS over a serial line.
    TlsSerial(Box<rustls::StreamOwned<rustls::ClientConnection, SerialStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::TlsUnix(s) => s.read(buf),
            Transport::Serial(s) => s.read(buf),
            Transport::TlsSerial(s) => s.read(buf),
        };
        match r {
            // The socket's read timeout (EAGAIN): tell the driver, which
            // checks the core's deadlines and reads again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::from(io::ErrorKind::TimedOut))
            }
            r => r,
        }
    }
}

/// A TLS client for `host`: the server's certificate must chain to the
/// public web roots or to a CA in `ca`, and name `host`.
fn tls_client(host: &str, ca: Option<&Path>) -> Result<rustls::ClientConnection, FerryError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca {
        let bad = |e: &dyn std::fmt::Display| FerryError::Usage(format!("{}: {e}", ca.display()));
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FerryError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| FerryError::Usage(format!("{host:?} is not a valid TLS server name")))?;
    rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| FerryError::Other(format!("TLS: {e}")))
}

/// Connects to `addr` (every address it resolves to, in turn), giving
/// each at most `timeout`.
fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, FerryError> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs().map_err(FerryError::Connection)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(FerryError::Connection(last))
}

/// Completes the TLS handshake before the protocol starts, so the socket's
/// short read timeout (a tick, for the core's deadlines) cannot fail it
/// half-way; a server that does not answer within `limit` is a timeout.
fn tls_handshake<S: Read + Write>(
    mut tls: rustls::ClientConnection,
    mut sock: S,
    limit: Duration,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, S>, FerryError> {
    let deadline = StdInstant::now() + limit;
    while tls.is_handshaking() {
        match tls.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && StdInstant::now() < deadline => {}
            Err(e) => return Err(FerryError::Connection(e)),
        }
    }
    Ok(rustls::StreamOwned::new(tls, sock))
}

/// Most entries one listing may hold on the client.
pub const MAX_LISTING: usize = 1_000_000;

/// How often a waiting client wakes to check its deadlines.
const TICK: Duration = Duration::from_millis(500);

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self {
            Transport::Tcp(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::TlsUnix(s) => s.write(buf),
            Transport::Serial(s) => s.write(buf),
            Transport::TlsSerial(s) => s.write(buf),
        };
        match r {
            // The write timeout: the peer stopped reading for that long.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server stopped reading",
            )),
            r => r,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::TlsUnix(s) => s.flush(),
            Transport::Serial(s) => s.flush(),
            Transport::TlsSerial(s) => s.flush(),
        }
    }
}

type Clock = Box<dyn FnMut() -> Instant + Send>;

/// How [`Client::connect_with`] connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    /// A Unix socket to use instead of the URL's host and port.
    pub socket: Option<&'a Path>,
    /// A serial device to use instead of the URL's host and port (or a
    /// socket), through the link layer (docs/PROTOCOL.md#serial-link).
    pub serial: Option<&'a Path>,
    /// The serial line's rate in bits per second (8N1).
    pub baud: u32,
    /// Use only this digest; a server without it is refused
    /// (`DigestRefused`). `None` negotiates the best (BLAKE3, SHA-256, MD5).
    pub digest: Option<Algorithm>,
    /// Give up when the server has been silent this long (handshake and
    /// login get at most 30 s).
    pub timeout: Duration,
    /// For `ferrys://`: CA certificates (PEM) to trust besides the public
    /// web roots, e.g. a self-signed one.
    pub ca: Option<&'a Path>,
    /// Gets or puts in flight at once (1–[`WINDOW`]; the server's own
    /// window can lower it).
    pub window: u16,
}

impl Default for ConnectOptions<'_> {
    fn default() -> Self {
        ConnectOptions {
            socket: None,
            serial: None,
            baud: 115_200,
            digest: None,
            timeout: Duration::from_secs(300),
            ca: None,
            window: WINDOW as u16,
        }
    }
}

/// How a transfer behaves.
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {
    /// Continue a partial transfer.
    pub resume: bool,
    /// What to do when the target exists.
    pub overwrite: Overwrite,
    /// Directories too.
    pub recursive: bool,
    /// No progress bar.
    pub quiet: bool,
    /// In a batch ([`Client::put_batch`], [`Client::get_batch`]): after
    /// the first failure send nothing more and store nothing more (a
    /// shell batch's semantics); else every file is tried.
    pub stop_at_first_error: bool,
}

/// A connected Ferry client.
pub struct Client {
    /// Boxed: a window of [`WINDOW`] is ~115 KiB of fixed state. Pre-agreed
    /// puts hold no place in the window but take room here too, so 2 000
    /// small files go up in two flights of 1 024 after the hello: room
    /// for 2 048 saved that round trip (2 000 × 4 KiB `put -r` at 50 ms:
    /// 0.157 s against 0.183 s, docs/BENCHMARKS.md) but doubled this
    /// state, and a debug build's `connect` then needed 2.6 MB of stack,
    /// more than a spawned thread's 2 MiB.
    inner: Box<BlockingClient<FromStd<Transport>, Vec<u8>, Clock, WINDOW>>,
}

/// Gets or puts in flight at once on one connection
/// (`docs/PROTOCOL.md#pipelining`): a window of them costs one round trip
/// for puts and two for gets, so at a 50 ms round trip 2000 files of
/// 4 KiB take 0.56 s up and 0.45 s down at 1024, 0.71 / 1.10 s at 256
/// (docs/BENCHMARKS.md). The server's own window can lower it.
pub const WINDOW: usize = 1024;

/// The body chunk this client asks for: a file of at most this many
/// bytes can go up pre-agreed (`docs/PROTOCOL.md#pre-agreed-puts`).
const CHUNK: u64 = 256 * 1024;

/// Files `get -r` collects from its listings before it fetches them as
/// one batch: a few windows, so a tree of small files costs few turns
/// and a huge one is never held whole.
const TREE_BATCH: usize = 4 * WINDOW;

fn proto(e: impl Into<FerryError>) -> FerryError {
    e.into()
}

/// Random bytes for nonces.
fn nonce() -> Result<[u8; 18], FerryError> {
    let mut n = [0u8; 18];
    getrandom::fill(&mut n).map_err(|e| FerryError::Other(format!("no randomness: {e}")))?;
    Ok(n)
}

/// The last component of a remote path.
fn base_name(remote: &str) -> &str {
    remote
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
}

/// Whether a name from a server listing is a plain single component (a
/// malicious server must not steer `get -r` out of the local directory).
fn safe_component(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0'))
}

fn join_remote(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Picks the local name under the overwrite policy.
fn local_target(path: &Path, policy: Overwrite) -> Result<PathBuf, FerryError> {
    if !path.exists() {
        return Ok(path.to_path_buf());
    }
    match policy {
        Overwrite::Fail => Err(FerryError::at_local(path, Error::Exists)),
        Overwrite::Replace => Ok(path.to_path_buf()),
        Overwrite::KeepBoth => {
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (0u32..)
                .map(|n| path.with_file_name(keep_both_name(&base, n).to_string()))
                .find(|p| !p.exists())
                .ok_or_else(|| FerryError::at_local(path, Error::Exists))
        }
    }
}

/// Opens the partial file of a download, never through a link: with
/// `resume`, an existing one is taken up only as the server takes up its
/// own ([`crate::fsroot::resumable_len`]);
/// anything else at that name (a symlink or hard link planted in a shared
/// directory, a stale file) is unlinked — which never touches what a link
/// points to — and a fresh file made with `O_EXCL|O_NOFOLLOW`, mode 0600.
/// Returns the file and how many bytes it holds.
fn open_local_part(part: &Path, resume: bool, size: u64) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    if resume {
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nofollow)
            .open(part)
        {
            if let Some(len) = crate::fsroot::resumable_len(&f, size) {
                return Ok((f, len));
            }
        }
    }
    match fs::remove_file(part) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow)
        .open(part)?;
    Ok((f, 0))
}

/// A download's local side, set up once the size is known.
struct Receiving {
    /// The partial file, positioned after what it holds.
    out: File,
    /// The same file, read from its start (at `prefix_at`, with its own
    /// offset: `out` writes after `held`) to hash what it holds.
    prefix: File,
    prefix_at: u64,
    /// Bytes already held (the resume offset).
    held: u64,
    /// A large MD5 or SHA-256 body is written by a thread of its own, so
    /// hashing the next chunk overlaps writing the last (measured in
    /// docs/BENCHMARKS.md).
    background: Option<Writer>,
}

impl Receiving {
    fn open(
        part: &Path,
        resume: bool,
        size: u64,
        digest: Option<Algorithm>,
    ) -> io::Result<Receiving> {
        use std::io::Seek;
        let (mut out, held) = open_local_part(part, resume, size)?;
        out.seek(io::SeekFrom::Start(held))?;
        // Chunks go straight to the file (no buffering copy): each is
        // already a large write.
        let prefix = out.try_clone()?;
        let background = if writer::worth_it(size - held, digest) {
            Some(Writer::start(out.try_clone()?).map_err(|e| io::Error::other(e.to_string()))?)
        } else {
            None
        };
        Ok(Receiving {
            out,
            prefix,
            prefix_at: 0,
            held,
            background,
        })
    }
}

/// The hidden partial file for a local download.
fn local_part(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(part_name(&name).to_string())
}

fn progress(quiet: bool, total: u64, what: &str) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

impl Client {
    /// Connects to `url`'s host (or to the Unix socket `socket`) and
    /// completes the handshake, negotiating the best digest both sides
    /// support (BLAKE3, then SHA-256, then MD5).
    pub fn connect(url: &FerryUrl, socket: Option<&Path>) -> Result<Client, FerryError> {
        Self::connect_with(
            url,
            &ConnectOptions {
                socket,
                ..ConnectOptions::default()
            },
        )
    }

    /// As [`Client::connect`], with a pinned digest or another timeout.
    pub fn connect_with(url: &FerryUrl, opts: &ConnectOptions) -> Result<Client, FerryError> {
        let digests = match opts.digest {
            Some(a) => Digests::new(&[a])?,
            None => Digests::available(),
        };
        // Reads wake every TICK so the core's deadlines are checked; a
        // write that cannot go out for the whole timeout fails.
        let handshake_limit = opts.timeout.min(Config::default().handshake_timeout);
        let conn = match (opts.serial, opts.socket) {
            (Some(dev), _) => {
                // The link must be up within the timeout; then the session
                // goes as over a socket.
                let s = SerialStream::open(dev, opts.baud, opts.timeout, TICK, opts.timeout)
                    .map_err(|e| {
                        FerryError::Connection(io::Error::new(
                            e.kind(),
                            format!("{}: {e}", dev.display()),
                        ))
                    })?;
                if url.tls {
                    Transport::TlsSerial(Box::new(tls_handshake(
                        tls_client(&url.host, opts.ca)?,
                        s,
                        handshake_limit,
                    )?))
                } else {
                    Transport::Serial(Box::new(s))
                }
            }
            (None, Some(p)) => {
                let s = UnixStream::connect(p).map_err(FerryError::Connection)?;
                s.set_read_timeout(Some(TICK))
                    .and_then(|_| s.set_write_timeout(Some(opts.timeout)))
                    .map_err(FerryError::Connection)?;
                // `ferrys://` means TLS whatever carries it: never plain
                // text because a socket path was given.
                if url.tls {
                    Transport::TlsUnix(Box::new(tls_handshake(
                        tls_client(&url.host, opts.ca)?,
                        s,
                        handshake_limit,
                    )?))
                } else {
                    Transport::Unix(s)
                }
            }
            (None, None) => {
                let s = connect_tcp(&url.socket_addr(), opts.timeout)?;
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(TICK))
                    .and_then(|_| s.set_write_timeout(Some(opts.timeout)))
                    .map_err(FerryError::Connection)?;
                if url.tls {
                    Transport::Tls(Box::new(tls_handshake(
                        tls_client(&url.host, opts.ca)?,
                        s,
                        handshake_limit,
                    )?))
                } else {
                    Transport::Tcp(s)
                }
            }
        };
        let start = StdInstant::now();
        let clock: Clock =
            Box::new(move || Instant::from_millis(start.elapsed().as_millis() as u64));
        let config = Config {
            chunk_size: CHUNK as u32,
            digests,
            handshake_timeout: opts.timeout.min(Config::default().handshake_timeout),
            login_timeout: opts.timeout.min(Config::default().login_timeout),
            idle_timeout: Some(opts.timeout),
            window: opts.window,
        };
        // BUF is above both minimums and the digests come from this
        // build: a refusal here is a bug, reported as the core's BadUsage.
        let core = ferry_core::Client::<Vec<u8>, WINDOW>::with_window(
            Instant::ZERO,
            config,
            vec![0; BUF],
            vec![0; BUF],
        )
        .map_err(Error::from)?;
        // The hello goes out with the login, not a round trip before it.
        let inner = Box::new(BlockingClient::start(FromStd::new(conn), core, clock));
        Ok(Client { inner })
    }

    /// Logs in: SCRAM as `user` with `password`, or anonymously when
    /// `user` is `None`.
    pub fn login(&mut self, user: Option<&str>, password: Option<&str>) -> Result<(), FerryError> {
        // Not waiting for the answer: every request goes with the login
        // (one round trip less). A refused login fails what follows with
        // the login's own error (`ferry_core::Client::login_sent`).
        let r = match user {
            None => self.inner.start_login_anonymous().map_err(proto),
            Some(u) => {
                let pw = password.ok_or_else(|| FerryError::Usage("no password given".into()))?;
                self.inner.start_login(u, pw, &nonce()?).map_err(proto)
            }
        };
        r.map_err(|e| self.with_retry(e))
    }

    /// A refusal from a version-3 server says when to try again.
    fn with_retry(&self, e: FerryError) -> FerryError {
        match (e.protocol(), self.inner.client().retry_after()) {
            (Some(error @ (Error::Busy | Error::Penalised)), Some(seconds @ 1..)) => {
                FerryError::Retry { error, seconds }
            }
            _ => e,
        }
    }

    /// Downloads a remote file to `local` (a file path, or an existing
    /// directory to put it in). The file appears under its name only once
    /// complete and MD5-verified. Returns its size.
    pub fn get_file(
        &mut self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, FerryError> {
        let local = if local.is_dir() {
            local.join(base_name(remote))
        } else {
            local.to_path_buf()
        };
        // One file: no lookup round trip first; a directory is refused by
        // the server's answer ("is a directory").
        if !opts.recursive {
            return self.get_entry(remote, &local, opts);
        }
        // Listed at once, with no lookup first: a file is `NotADirectory`,
        // then fetched as one (a turn for files, none for directories).
        let entries = match self.list(remote) {
            Err(e) if e.protocol() == Some(Error::NotADirectory) => {
                return self.get_entry(remote, &local, opts);
            }
            r => r.map_err(|e| FerryError::remote(remote, e))?,
        };
        self.get_listed(remote, &local, entries, opts)
    }

    /// Downloads the file `remote` (its size comes with the offer) to the
    /// file path `local`. A failure names `remote`, or the local file when
    /// the local side caused it.
    fn get_entry(
        &mut self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, FerryError> {
        self.get_entry_at(remote, local, opts)
            .map_err(|e| FerryError::remote(remote, e))
    }

    fn get_entry_at(
        &mut self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, FerryError> {
        let target = local_target(local, opts.overwrite)?;
        let part = local_part(&target);
        let bar = progress(opts.quiet, 0, base_name(remote));
        // Known once the server's hello is here (a login started without
        // waiting may still be on its way): only the writer heuristic.
        let digest = self.inner.client().negotiated().map(|n| n.digest);
        // Set up once the server's offer says the file's size (no lookup
        // round trip before the get): the partial file, what it already
        // holds, and whether a writer thread is worth it.
        let receiving: std::cell::RefCell<Option<Receiving>> = Default::default();
        // A local read or write error, kept to name the local file as the
        // cause (the driver only passes on its code).
        let local_error = std::cell::Cell::new(None);
        let local_io = |e: io::Error| {
            let e = crate::mapping::map_io(&e);
            local_error.set(Some(e));
            e
        };
        let r = self.inner.get_offered(
            remote,
            |size| {
                let r = Receiving::open(&part, opts.resume, size, digest).map_err(local_io)?;
                bar.set_length(size);
                bar.set_position(r.held);
                let held = r.held;
                *receiving.borrow_mut() = Some(r);
                Ok(held)
            },
            |buf| match receiving.borrow_mut().as_mut() {
                Some(r) => {
                    use std::os::unix::fs::FileExt;
                    let n = r.prefix.read_at(buf, r.prefix_at).map_err(local_io)?;
                    r.prefix_at += n as u64;
                    Ok(n)
                }
                None => Err(Error::Internal),
            },
            |d| {
                bar.inc(d.len() as u64);
                match receiving.borrow_mut().as_mut() {
                    Some(Receiving {
                        background: Some(w),
                        ..
                    }) => w.write(d),
                    Some(r) => r.out.write_all(d).map_err(local_io),
                    None => Err(Error::Internal),
                }
            },
        );
        let receiving = receiving.into_inner();
        let held = receiving.as_ref().map_or(0, |r| r.held);
        let (out, written) = match receiving {
            Some(r) => (Some(r.out), r.background.map(Writer::finish)),
            None => (None, None),
        };
        // Every byte is on disk (or the first write error is known) before
        // the file is renamed into place. A write error is the cause of
        // whatever else failed (the driver only saw "I/O error").
        let r = match (r, written, local_error.get()) {
            (_, Some(Err(e)), _) | (Err(_), _, Some(e)) => Err(FerryError::at_local(&target, e)),
            (r, _, _) => r.map_err(|e| self.with_retry(proto(e))),
        };
        bar.finish_and_clear();
        match (r, out) {
            (Ok(got), Some(out)) => {
                out.sync_all().map_err(|e| FerryError::local(&part, e))?;
                fs::rename(&part, &target).map_err(|e| FerryError::local(&target, e))?;
                info!(remote, local = %target.display(), bytes = got.size, resumed_from = held,
                      digest = %got.sum.algorithm(), sum = %got.sum, "get verified");
                Ok(got.size)
            }
            (Ok(_), None) => Err(FerryError::Protocol(Error::Internal)),
            (Err(e), _) => {
                if e.protocol() == Some(Error::ChecksumMismatch) {
                    // The bytes are bad: nothing to resume from.
                    let _ = fs::remove_file(&part);
                }
                Err(e)
            }
        }
    }

    /// Fetches the tree under `remote`, its top listed as `entries`, into
    /// `local`. Listed a level at a time, each level's directories in one
    /// pipelined batch, and the files fetched in batches across
    /// directories: a turn per level plus one per batch, where listing
    /// and fetching each directory in turn cost two per directory. A
    /// batch is fetched once [`TREE_BATCH`] files wait, so a huge tree
    /// is not held whole.
    fn get_listed(
        &mut self,
        remote: &str,
        local: &Path,
        entries: Vec<Entry>,
        opts: &TransferOptions,
    ) -> Result<u64, FerryError> {
        let mut total = 0;
        let mut files = Vec::new();
        let mut level = vec![(remote.to_string(), local.to_path_buf(), Ok(entries))];
        while !level.is_empty() {
            let mut dirs = Vec::new();
            for (remote, local, listed) in level {
                let entries = listed.map_err(|e| FerryError::remote(&remote, e))?;
                match fs::create_dir(&local) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && local.is_dir() => {}
                    Err(e) => return Err(FerryError::local(&local, e)),
                }
                for e in entries {
                    if !safe_component(&e.name) {
                        return Err(FerryError::Other(format!(
                            "server sent an unsafe name {:?} in {remote}: refusing (it would escape {})",
                            e.name.as_str(),
                            local.display()
                        )));
                    }
                    let r = join_remote(&remote, &e.name);
                    let l = local.join(e.name.as_str());
                    // The listing already says what each entry is: no
                    // lookup (a round trip) per file.
                    match e.kind {
                        Kind::Dir => dirs.push((r, l)),
                        Kind::File => files.push(GetItem {
                            remote: r,
                            local: l,
                            size: e.size,
                        }),
                        _ => {}
                    }
                }
                if files.len() >= TREE_BATCH {
                    total += self.get_files(&files, opts)?.iter().sum::<u64>();
                    files.clear();
                }
            }
            let paths: Vec<String> = dirs.iter().map(|d| d.0.clone()).collect();
            let listed = self.list_batch(&paths);
            level = dirs
                .into_iter()
                .zip(listed)
                .map(|((r, l), listed)| (r, l, listed))
                .collect();
        }
        total += self.get_files(&files, opts)?.iter().sum::<u64>();
        Ok(total)
    }

    /// Downloads `files` (each to its exact local path), pipelined; with
    /// `resume`, one at a time. Every file is tried; the first failure is
    /// returned. Returns the sizes.
    pub fn get_files(
        &mut self,
        files: &[GetItem],
        opts: &TransferOptions,
    ) -> Result<Vec<u64>, FerryError> {
        self.get_batch(files, opts).into_iter().collect()
    }

    /// Downloads `files` on this connection, up to [`WINDOW`] in flight
    /// at once, and says how each went: its size, or why not (as
    /// [`Self::put_batch`]).
    pub fn get_batch(
        &mut self,
        files: &[GetItem],
        opts: &TransferOptions,
    ) -> Vec<Result<u64, FerryError>> {
        if opts.resume {
            return one_by_one(
                files,
                opts,
                |f| &f.remote,
                |f| self.get_entry(&f.remote, &f.local, opts),
            );
        }
        // Sizes come with the offers; listed ones only start the bar.
        let total = files.iter().map(|f| f.size).sum();
        let mut batch = GetBatch {
            files,
            overwrite: opts.overwrite,
            open: Vec::new(),
            results: (0..files.len()).map(|_| None).collect(),
            bar: batch_progress(opts.quiet, total, files.len()),
            done: 0,
            stop_at_first_error: opts.stop_at_first_error,
        };
        let r = self.inner.get_many(files.len(), &mut batch);
        batch.bar.finish_and_clear();
        let failed = r.err().map(proto);
        batch
            .results
            .into_iter()
            .enumerate()
            .map(|(i, res)| match res {
                Some(r) => r,
                None => unended(&files[i].remote, failed.as_ref()),
            })
            .collect()
    }

    /// Uploads `local` to `remote` (a path, or an existing remote directory
    /// to put it in). Returns the name it was stored under.
    pub fn put_file(
        &mut self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<String, FerryError> {
        let md = fs::metadata(local).map_err(|e| FerryError::local(local, e))?;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !md.is_dir() {
            // No lookup round trip first: a path ending in `/` names a
            // directory; otherwise the put goes straight to the path, and
            // only if the server answers that it is a directory does the
            // file go inside it (one extra round trip, in that case only).
            if remote.ends_with('/') {
                return self.put_one(local, join_remote(remote, &name), md.len(), &name, opts);
            }
            return match self.put_one(local, remote.to_string(), md.len(), &name, opts) {
                Err(e) if e.protocol() == Some(Error::IsADirectory) => {
                    self.put_one(local, join_remote(remote, &name), md.len(), &name, opts)
                }
                r => r,
            };
        }
        if !opts.recursive {
            return Err(FerryError::Local {
                path: local.display().to_string(),
                source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory (use -r)"),
            });
        }
        // A directory goes inside an existing remote directory, else
        // becomes it. Creating it first answers both at once: created, it
        // becomes it (no lookup round trip before a fresh upload); there
        // already, a lookup says whether it is a directory to go inside.
        let remote = if remote.ends_with('/') {
            join_remote(remote, &name)
        } else {
            match self.inner.mkdir(remote) {
                Ok(()) => {
                    self.put_dir_contents(local, remote, opts)?;
                    return Ok(remote.to_string());
                }
                Err(e) if e.protocol() == Some(Error::Exists) => match self.inner.stat(remote) {
                    Ok(e) if e.kind == Kind::Dir => join_remote(remote, &name),
                    _ => remote.to_string(),
                },
                Err(e) => return Err(FerryError::remote(remote, proto(e))),
            }
        };
        self.put_dir(local, &remote, opts)?;
        Ok(remote)
    }

    /// Uploads the file `local` (`size` bytes) to exactly `remote`.
    fn put_one(
        &mut self,
        local: &Path,
        remote: String,
        size: u64,
        name: &str,
        opts: &TransferOptions,
    ) -> Result<String, FerryError> {
        // Read straight into the core's send buffer: no copy in between.
        let mut file = File::open(local).map_err(|e| FerryError::local(local, e))?;
        let bar = progress(opts.quiet, size, name);
        // A read error names the local file as the cause.
        let mut local_error = None;
        let r = self
            .inner
            .put(&remote, size, opts.overwrite, opts.resume, |buf| {
                let n = file.read(buf).map_err(|e| {
                    local_error = Some(FerryError::local(local, e));
                    Error::Io
                })?;
                bar.inc(n as u64);
                Ok(n)
            });
        bar.finish_and_clear();
        let stored = match (r, local_error) {
            (Ok(s), _) => s,
            (Err(_), Some(e)) => return Err(e),
            (Err(e), None) => return Err(FerryError::remote(&remote, self.with_retry(proto(e)))),
        };
        let remote = stored.name.map_or(remote, |s| s.to_string());
        info!(local = %local.display(), %remote, bytes = size,
              digest = %stored.sum.algorithm(), sum = %stored.sum, "put verified");
        Ok(remote)
    }

    fn put_dir(
        &mut self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<(), FerryError> {
        match self.inner.mkdir(remote) {
            Ok(()) => {}
            Err(e) if e.protocol() == Some(Error::Exists) => {}
            Err(e) => return Err(FerryError::remote(remote, proto(e))),
        }
        self.put_dir_contents(local, remote, opts)
    }

    /// Uploads what is in `local` into the remote directory `remote`,
    /// which exists.
    fn put_dir_contents(
        &mut self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<(), FerryError> {
        let mut items: Vec<_> = fs::read_dir(local)
            .map_err(|e| FerryError::local(local, e))?
            .filter_map(Result::ok)
            .collect();
        items.sort_by_key(|e| e.file_name());
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for item in items {
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            let target = join_remote(remote, &name);
            let ft = item.file_type().map_err(|e| FerryError::local(&path, e))?;
            // The target path is known: no lookup (a round trip) per file.
            if ft.is_dir() {
                dirs.push((path, target));
            } else if ft.is_file() {
                let size = item
                    .metadata()
                    .map_err(|e| FerryError::local(&path, e))?
                    .len();
                files.push(PutItem {
                    local: path,
                    remote: target,
                    size,
                });
            }
        }
        self.put_files(&files, opts)?;
        for (path, target) in dirs {
            self.put_dir(&path, &target, opts)?;
        }
        Ok(())
    }

    /// Uploads `files`, pipelined (a resume goes one file at a time: its
    /// held prefix is hashed first). Every file is tried; the first
    /// failure is returned. Returns the names stored under.
    pub fn put_files(
        &mut self,
        files: &[PutItem],
        opts: &TransferOptions,
    ) -> Result<Vec<String>, FerryError> {
        self.put_batch(files, opts).into_iter().collect()
    }

    /// Uploads `files` on this connection, up to [`WINDOW`] in flight at
    /// once (`docs/PROTOCOL.md#pipelining`; files of one chunk or less
    /// with their body behind the request), and says how
    /// each went: the
    /// name it was stored under, or why not. With `resume`, one at a
    /// time. With `stop_at_first_error`, the files after a failure are not
    /// stored (`Cancelled`).
    pub fn put_batch(
        &mut self,
        files: &[PutItem],
        opts: &TransferOptions,
    ) -> Vec<Result<String, FerryError>> {
        if opts.resume {
            return one_by_one(
                files,
                opts,
                |f| &f.remote,
                |f| {
                    let name = base_name(&f.remote).to_string();
                    self.put_one(&f.local, f.remote.clone(), f.size, &name, opts)
                },
            );
        }
        // Small files first: each goes with its request (pre-agreed), and
        // only while no larger put waits for its `Accept` ahead of it.
        // A shell batch that stops at its first error keeps its order.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| files[i].size > CHUNK);
        if !opts.stop_at_first_error && order.iter().enumerate().any(|(k, &i)| k != i) {
            let sorted: Vec<PutItem> = order.iter().map(|&i| files[i].clone()).collect();
            let results = self.put_batch(&sorted, opts);
            let mut back: Vec<_> = order.into_iter().zip(results).collect();
            back.sort_by_key(|r| r.0);
            return back.into_iter().map(|r| r.1).collect();
        }
        let total = files.iter().map(|f| f.size).sum();
        let mut batch = PutBatch {
            files,
            overwrite: opts.overwrite,
            open: None,
            names: vec![None; files.len()],
            results: (0..files.len()).map(|_| None).collect(),
            bar: batch_progress(opts.quiet, total, files.len()),
            done: 0,
            stop_at_first_error: opts.stop_at_first_error,
        };
        let r = self.inner.put_many(files.len(), &mut batch);
        batch.bar.finish_and_clear();
        let failed = r.err().map(proto);
        let names = batch.names;
        batch
            .results
            .into_iter()
            .enumerate()
            .map(|(i, res)| {
                let f = &files[i];
                match res {
                    Some(Ok(sum)) => {
                        let remote = names[i].clone().unwrap_or_else(|| f.remote.clone());
                        info!(local = %f.local.display(), %remote, bytes = f.size,
                              digest = %sum.algorithm(), %sum, "put verified");
                        Ok(remote)
                    }
                    Some(Err(e)) => Err(e),
                    None => unended(&f.remote, failed.as_ref()),
                }
            })
            .collect()
    }

    /// Lists a directory.
    pub fn list(&mut self, path: &str) -> Result<Vec<Entry>, FerryError> {
        self.list_at_most(path, MAX_LISTING)
    }

    /// Lists a directory, sorted by name, keeping at most `max` entries: a
    /// listing is streamed, so its length is the server's to choose, and a
    /// hostile server must not exhaust the client's memory. More is an
    /// error. Servers send directory order (`docs/PROTOCOL.md#list-and-entry`); the
    /// sort is here, where the whole listing is held anyway.
    pub fn list_at_most(&mut self, path: &str, max: usize) -> Result<Vec<Entry>, FerryError> {
        let mut v = Vec::new();
        let mut n = 0usize;
        self.inner
            .list(path, |e| {
                n += 1;
                if v.len() < max {
                    v.push(e.clone());
                }
            })
            .map_err(|e| self.with_retry(proto(e)))?;
        if n > max {
            return Err(FerryError::Other(format!(
                "{path}: the server listed {n} entries, more than the {max} a client keeps"
            )));
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Lists each of `paths` (sorted by name, at most `MAX_LISTING`
    /// entries each, as [`Self::list`]), pipelined: up to the window in
    /// flight at once, so many directories cost one turn. Each says how
    /// it went.
    pub fn list_batch(&mut self, paths: &[String]) -> Vec<Result<Vec<Entry>, FerryError>> {
        let items: Vec<(&str, bool)> = paths.iter().map(|p| (p.as_str(), false)).collect();
        self.describe_batch(&items)
    }

    /// `ls -l` of `paths`: each one's stat and, for a directory, its
    /// listing (as [`Self::list_batch`]), all in one pipelined batch, so
    /// many names of either kind cost one turn: the listing of a name
    /// that is not a directory is sent too, and its `NotADirectory`
    /// dropped.
    pub fn long_batch(&mut self, paths: &[String]) -> Vec<Result<LongEntry, FerryError>> {
        let items: Vec<(&str, bool)> = paths
            .iter()
            .flat_map(|p| [(p.as_str(), true), (p.as_str(), false)])
            .collect();
        let mut answers = self.describe_batch(&items).into_iter();
        let mut out = Vec::new();
        while let (Some(stat), Some(listed)) = (answers.next(), answers.next()) {
            out.push(stat.and_then(|mut one| {
                let entry = one
                    .pop()
                    .ok_or(FerryError::Protocol(Error::UnexpectedFrame))?;
                let listing = match (entry.kind, listed) {
                    (Kind::Dir, listed) => Some(listed?),
                    _ => None,
                };
                Ok(LongEntry { entry, listing })
            }));
        }
        out
    }

    /// Stats (`true`) and listings of `items`, pipelined: each answer, a
    /// listing sorted by name or a stat's one entry.
    fn describe_batch(&mut self, items: &[(&str, bool)]) -> Vec<Result<Vec<Entry>, FerryError>> {
        struct Batch<'a, 'b> {
            items: &'a [(&'b str, bool)],
            entries: Vec<Vec<Entry>>,
            counts: Vec<usize>,
            results: Vec<Option<Result<(), Error>>>,
        }
        impl Lists for Batch<'_, '_> {
            fn path(&self, i: usize) -> &str {
                self.items[i].0
            }
            fn stat(&self, i: usize) -> bool {
                self.items[i].1
            }
            fn entry(&mut self, i: usize, entry: &Entry) {
                self.counts[i] += 1;
                if self.entries[i].len() < MAX_LISTING {
                    self.entries[i].push(entry.clone());
                }
            }
            fn done(&mut self, i: usize, result: Result<(), Error>) {
                self.results[i] = Some(result);
            }
        }
        let mut b = Batch {
            items,
            entries: vec![Vec::new(); items.len()],
            counts: vec![0; items.len()],
            results: vec![None; items.len()],
        };
        let failed = self.inner.list_many(items.len(), &mut b).err();
        let failed = failed.map(|e| self.with_retry(proto(e)));
        let Batch {
            entries,
            counts,
            results,
            ..
        } = b;
        let mut out = Vec::new();
        for (i, (mut v, result)) in entries.into_iter().zip(results).enumerate() {
            out.push(match result {
                Some(Ok(())) if counts[i] > MAX_LISTING => Err(FerryError::Other(format!(
                    "{}: the server listed {} entries, more than the {MAX_LISTING} a client keeps",
                    items[i].0, counts[i]
                ))),
                Some(Ok(())) => {
                    v.sort_by(|a, b| a.name.cmp(&b.name));
                    Ok(v)
                }
                Some(Err(e)) => Err(self.with_retry(proto(e))),
                None => Err(failed
                    .as_ref()
                    .and_then(FerryError::protocol)
                    .map_or(FerryError::Protocol(Error::Closed), FerryError::Protocol)),
            });
        }
        out
    }

    /// Describes one path.
    pub fn stat(&mut self, path: &str) -> Result<Entry, FerryError> {
        self.inner.stat(path).map_err(|e| self.with_retry(proto(e)))
    }

    /// A remote file's digest, with the negotiated algorithm.
    pub fn digest(&mut self, path: &str) -> Result<Sum, FerryError> {
        self.inner
            .digest(path)
            .map_err(|e| self.with_retry(proto(e)))
    }

    /// The digest every transfer on this connection uses.
    pub fn negotiated_digest(&self) -> Algorithm {
        self.inner
            .client()
            .negotiated()
            .map_or(Algorithm::Md5, |n| n.digest)
    }

    /// Removes a file or empty directory.
    pub fn remove(&mut self, path: &str) -> Result<(), FerryError> {
        self.inner
            .remove(path)
            .map_err(|e| self.with_retry(proto(e)))
    }

    /// Creates a directory; an existing name is refused.
    pub fn mkdir(&mut self, path: &str) -> Result<(), FerryError> {
        let r = self.inner.mkdir(path);
        (r.map_err(|e| self.with_retry(proto(e)))).map_err(on_exists(""))
    }

    /// Renames; an existing `to` is refused ("already exists") unless
    /// `replace`.
    pub fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), FerryError> {
        if replace {
            self.inner
                .rename_replacing(from, to)
                .map_err(|e| self.with_retry(proto(e)))
        } else {
            let r = self.inner.rename(from, to);
            (r.map_err(|e| self.with_retry(proto(e))))
                .map_err(on_exists(" (use --overwrite replace)"))
        }
    }

    /// Changes the session's directory; returns the new one.
    pub fn cd(&mut self, path: &str) -> Result<String, FerryError> {
        let r = self.inner.cd(path).map(|p| p.to_string());
        r.map_err(|e| self.with_retry(proto(e)))
    }

    /// The session's directory.
    pub fn pwd(&mut self) -> Result<String, FerryError> {
        let r = self.inner.pwd().map(|p| p.to_string());
        r.map_err(|e| self.with_retry(proto(e)))
    }

    /// Echo.
    pub fn echo(&mut self, text: &str, upper: bool) -> Result<String, FerryError> {
        let r = self.inner.echo(text, upper).map(|t| t.to_string());
        r.map_err(|e| self.with_retry(proto(e)))
    }

    /// Runs a command; output goes to `out`; returns (status, no_output).
    pub fn exec(
        &mut self,
        command: &str,
        out: impl FnMut(Stream, &[u8]),
    ) -> Result<(i32, bool), FerryError> {
        self.inner
            .exec(command, out)
            .map_err(|e| self.with_retry(proto(e)))
    }
}

/// One name of `ls -l` ([`Client::long_batch`]): what it is, and for a
/// directory its entries, sorted by name.
#[derive(Debug, Clone)]
pub struct LongEntry {
    /// The name's own stat.
    pub entry: Entry,
    /// A directory's listing; `None` for anything else.
    pub listing: Option<Vec<Entry>>,
}

/// One file of a pipelined upload ([`Client::put_files`]).
#[derive(Debug, Clone)]
pub struct PutItem {
    /// The local file.
    pub local: PathBuf,
    /// Exactly where it goes on the server.
    pub remote: String,
    /// Its size.
    pub size: u64,
}

/// One file of a pipelined download ([`Client::get_files`]).
#[derive(Debug, Clone)]
pub struct GetItem {
    /// The remote file.
    pub remote: String,
    /// Exactly where it goes here.
    pub local: PathBuf,
    /// Its size as listed (for the progress bar; the offer decides), 0
    /// when not listed. A pre-agreed get agrees to any size up to it
    /// (any at all for 0); a larger offer is answered as a plain get's.
    pub size: u64,
}

/// A batch's files one at a time (resumes: each held prefix is hashed
/// before its body); with `stop_at_first_error`, the ones after a failure
/// are not tried (`Cancelled`).
fn one_by_one<F, T>(
    files: &[F],
    opts: &TransferOptions,
    remote: impl Fn(&F) -> &String,
    mut each: impl FnMut(&F) -> Result<T, FerryError>,
) -> Vec<Result<T, FerryError>> {
    let mut out: Vec<Result<T, FerryError>> = Vec::new();
    for f in files {
        if opts.stop_at_first_error && out.iter().any(Result::is_err) {
            out.push(unended(remote(f), None));
        } else {
            out.push(each(f));
        }
    }
    out
}

/// A batch's file that never ended: the connection's failure, or
/// `Cancelled` (the batch stopped before it).
fn unended<T>(remote: &str, failed: Option<&FerryError>) -> Result<T, FerryError> {
    let e = failed
        .and_then(FerryError::protocol)
        .unwrap_or(Error::Cancelled);
    Err(FerryError::remote(remote, FerryError::Protocol(e)))
}

/// One bar for a batch: files done of all, bytes, rate, ETA.
fn batch_progress(quiet: bool, bytes: u64, files: usize) -> ProgressBar {
    let bar = progress(quiet, bytes, "");
    bar.set_message(format!("0/{files} files"));
    bar
}

/// A pipelined upload's state, for the core's driver ([`Puts`]).
struct PutBatch<'a> {
    files: &'a [PutItem],
    overwrite: Overwrite,
    /// The file whose body is being read.
    open: Option<(usize, File)>,
    names: Vec<Option<String>>,
    results: Vec<Option<Result<ferry_core::digest::Sum, FerryError>>>,
    bar: ProgressBar,
    done: usize,
    stop_at_first_error: bool,
}

impl Puts for PutBatch<'_> {
    fn request<B: ferry_core::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut ferry_core::Client<B, W>,
    ) -> Result<(), Error> {
        let f = &self.files[i];
        // A file of one chunk or less goes with its request
        // (`docs/PROTOCOL.md#pre-agreed-puts`): a batch of them takes one
        // turn, not two, and a refusal wastes at most a chunk of the line.
        // Not in a batch that stops at its first error: a body sent with
        // its request is stored even when a put before it fails.
        let small = client
            .negotiated()
            .is_some_and(|n| f.size <= u64::from(n.chunk));
        if small && !self.stop_at_first_error && client.can_put_agreed() {
            return client.put_agreed(&f.remote, f.size, self.overwrite);
        }
        client.put(&f.remote, f.size, self.overwrite, false)
    }

    fn accepted(&mut self, i: usize, name: Option<&str>) {
        self.names[i] = name.map(str::to_string);
    }

    fn read(&mut self, i: usize, buf: &mut [u8]) -> Result<usize, Error> {
        let f = &self.files[i];
        if self.open.as_ref().is_none_or(|(at, _)| *at != i) {
            match File::open(&f.local) {
                Ok(file) => self.open = Some((i, file)),
                Err(e) => {
                    let code = crate::mapping::map_io(&e);
                    self.results[i] = Some(Err(FerryError::local(&f.local, e)));
                    return Err(code);
                }
            }
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Err(Error::Internal);
        };
        match file.read(buf) {
            Ok(n) => {
                self.bar.inc(n as u64);
                Ok(n)
            }
            Err(e) => {
                let code = crate::mapping::map_io(&e);
                self.results[i] = Some(Err(FerryError::local(&f.local, e)));
                Err(code)
            }
        }
    }

    fn skip(&self, i: usize) -> bool {
        self.stop_at_first_error && self.results[..i].iter().flatten().any(Result::is_err)
    }

    fn done(&mut self, i: usize, result: Result<ferry_core::digest::Sum, Error>) {
        if self.open.as_ref().is_some_and(|(at, _)| *at == i) {
            self.open = None;
        }
        self.done += 1;
        self.bar
            .set_message(format!("{}/{} files", self.done, self.files.len()));
        // A local failure recorded first names the local file.
        if self.results[i].is_none() {
            self.results[i] = Some(
                result.map_err(|e| FerryError::remote(&self.files[i].remote, FerryError::from(e))),
            );
        }
    }
}

/// A pipelined download's state, for the core's driver ([`Gets`]).
struct GetBatch<'a> {
    files: &'a [GetItem],
    overwrite: Overwrite,
    /// Partial files open, oldest first: (item, target, part, file).
    open: Vec<(usize, PathBuf, PathBuf, File)>,
    results: Vec<Option<Result<u64, FerryError>>>,
    bar: ProgressBar,
    done: usize,
    stop_at_first_error: bool,
}

impl Gets for GetBatch<'_> {
    fn request<B: ferry_core::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut ferry_core::Client<B, W>,
    ) -> Result<(), Error> {
        let f = &self.files[i];
        // A local file in the way fails here, before any request: with
        // the answer in the request its body would come anyway.
        if let Err(e) = local_target(&f.local, self.overwrite) {
            let code = e.protocol().unwrap_or(Error::Io);
            self.results[i] = Some(Err(e));
            return Err(code);
        }
        // The answer goes with the request (`docs/PROTOCOL.md#pre-agreed-gets`),
        // saving a turn per window: any size up to the listed one (a file
        // that grew since is shown first, as a plain get's), any at all
        // when none was listed.
        if client.negotiated().is_some_and(|n| n.agreed()) {
            let max = if f.size > 0 { f.size } else { u64::MAX };
            return client.get_agreed(&f.remote, 0, max);
        }
        client.get(&f.remote)
    }

    fn offered(&mut self, i: usize, size: u64) -> Result<(), Error> {
        let f = &self.files[i];
        // The bar started from the listed sizes: correct it by the offer.
        if size > f.size {
            self.bar.inc_length(size - f.size);
        }
        let fail = |results: &mut Vec<_>, e: FerryError| {
            let code = e.protocol().unwrap_or(Error::Io);
            results[i] = Some(Err(e));
            code
        };
        let target = match local_target(&f.local, self.overwrite) {
            Ok(t) => t,
            Err(e) => return Err(fail(&mut self.results, e)),
        };
        let part = local_part(&target);
        match open_local_part(&part, false, 0) {
            Ok((file, _)) => {
                self.open.push((i, target, part, file));
                Ok(())
            }
            Err(e) => Err(fail(&mut self.results, FerryError::local(&part, e))),
        }
    }

    fn write(&mut self, i: usize, data: &[u8]) -> Result<(), Error> {
        let Some((_, _, part, file)) = self.open.iter_mut().find(|o| o.0 == i) else {
            return Err(Error::Internal);
        };
        self.bar.inc(data.len() as u64);
        file.write_all(data).map_err(|e| {
            let code = crate::mapping::map_io(&e);
            self.results[i] = Some(Err(FerryError::local(part, e)));
            code
        })
    }

    fn skip(&self, i: usize) -> bool {
        self.stop_at_first_error && self.results[..i].iter().flatten().any(Result::is_err)
    }

    fn done(&mut self, i: usize, result: Result<Got, Error>) {
        self.done += 1;
        self.bar
            .set_message(format!("{}/{} files", self.done, self.files.len()));
        let open = self
            .open
            .iter()
            .position(|o| o.0 == i)
            .map(|at| self.open.remove(at));
        if self.results[i].is_some() {
            if let Some((_, _, part, _)) = open {
                let _ = fs::remove_file(part);
            }
            return;
        }
        let remote = &self.files[i].remote;
        let r = match (result, open) {
            (Ok(got), Some((_, target, part, file))) => file
                .sync_all()
                .and_then(|()| fs::rename(&part, &target))
                .map(|()| {
                    info!(remote, local = %target.display(), bytes = got.size,
                          digest = %got.sum.algorithm(), sum = %got.sum, "get verified");
                    got.size
                })
                .map_err(|e| FerryError::local(&target, e)),
            (Ok(_), None) => Err(FerryError::Protocol(Error::Internal)),
            (Err(e), open) => {
                if let Some((_, _, part, _)) = open {
                    if e == Error::ChecksumMismatch {
                        let _ = fs::remove_file(part);
                    }
                }
                Err(FerryError::remote(remote, FerryError::from(e)))
            }
        };
        self.results[i] = Some(r);
    }
}
