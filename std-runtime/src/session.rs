//! One client's session on the server: the file store and command runner
//! behind ferry-core's `Server`, as a [`Handler`].

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ferry_core::digest::Sum;
use ferry_core::driver::Handler;
use ferry_core::{Error, Request, Server, ServerEvent, Stream};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::fsroot::{map_io, resolve, Root, Upload};
use crate::listing::Listing;
use crate::sums::{Sums, Version};
use crate::users::Users;

/// What every session of one server shares.
pub struct Shared {
    /// The served directory.
    pub root: Arc<Root>,
    /// `--user-dirs`: each session is confined to `ROOT/USER` (anonymous
    /// sessions to `ROOT/anonymous`) instead of the whole root.
    pub user_dirs: bool,
    /// `--exec-unconfined` (for the confinement of each user's commands).
    pub exec_unconfined: bool,
    /// Users allowed to log in (`None`: anonymous only).
    pub users: Option<Users>,
    /// Refuse every write.
    pub read_only: bool,
    /// Run `exec` requests.
    pub allow_exec: bool,
    /// If not empty: only these programs, started directly (no shell).
    pub exec_allow: Vec<String>,
    /// Time limit for one command.
    pub exec_timeout: Duration,
    /// Most output (stdout and stderr together) one command may send.
    pub exec_max_output: u64,
    /// How commands are confined to the root.
    pub exec_confinement: Arc<crate::exec::Confinement>,
    /// Digests verified earlier, so unchanged files are not hashed again
    /// for a get.
    pub sums: Sums,
    /// Permits for hashing a resume's held prefix ([`PREFIX_HASHES`]).
    pub prefix_slots: tokio::sync::Semaphore,
}

/// Runs file-system work (open, read, walk, fsync, rename) without
/// stalling the async worker it is called on: the runtime hands the
/// worker's other sessions to another thread meanwhile, so one slow disk
/// or one large read holds up only its own session. Outside a
/// multi-threaded runtime it just runs.
fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// As [`off_worker`], holding one of `slots` while `f` runs: hashing a
/// resume's held prefix reads the whole prefix (3 GiB for a get resumed at
/// the end of a 3 GiB file), so only a few run at once and each on a
/// thread of its own, never on an async worker.
fn bounded_off_worker<R>(slots: &tokio::sync::Semaphore, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| {
                let _slot = h.block_on(slots.acquire());
                f()
            })
        }
        _ => f(),
    }
}

/// Prefix hashes (resumed gets and puts) that may run at once.
pub const PREFIX_HASHES: usize = 2;

/// Output pieces queued between a command and its session, at most.
const EXEC_QUEUE: usize = 16;

enum Pending {
    Login(String),
    /// Logged in under `--user-dirs`: move into the user's directory.
    EnterHome,
    Request(Box<Request>),
    SendBody(u64),
    PutEnd(bool, Sum),
    Abort(Error),
}

struct Download {
    file: std::fs::File,
    path: String,
    size: u64,
    started: bool,
    start: StdInstant,
    /// The file's version when opened.
    version: Version,
    /// Sent with a kept digest instead of hashing it.
    vouched: bool,
}

/// Output of a running command, as it arrives from its pipes.
pub enum ExecMsg {
    /// Bytes from stdout or stderr.
    Out(Stream, Vec<u8>),
    /// The command ended with this status.
    Exit(i32),
}

struct Exec {
    rx: mpsc::Receiver<ExecMsg>,
    queue: VecDeque<(Stream, Vec<u8>)>,
    status: Option<i32>,
    command: String,
}

/// A session: current directory, login, and the transfer in progress.
pub struct Session {
    shared: Arc<Shared>,
    /// Where this session's paths resolve: the server's root, or under
    /// `--user-dirs` the user's own directory.
    root: Arc<Root>,
    /// How this session's commands are confined (to `root`).
    confinement: Arc<crate::exec::Confinement>,
    /// The peer, for logs.
    pub peer: String,
    cwd: PathBuf,
    user: Option<String>,
    pending: Option<Pending>,
    upload: Option<(Upload, String, StdInstant)>,
    download: Option<Download>,
    exec: Option<Exec>,
    listing: Option<Listing>,
    /// Why the connection closed, once it has.
    pub closed: Option<Error>,
    /// A login just failed: the driver delays the answer.
    login_failed: bool,
}

impl Session {
    /// A new session at the root.
    pub fn new(shared: Arc<Shared>, peer: String) -> Self {
        Session {
            root: shared.root.clone(),
            confinement: shared.exec_confinement.clone(),
            shared,
            peer,
            cwd: PathBuf::new(),
            user: None,
            pending: None,
            upload: None,
            download: None,
            exec: None,
            listing: None,
            closed: None,
            login_failed: false,
        }
    }

    fn who(&self) -> &str {
        self.user.as_deref().unwrap_or("anonymous")
    }

    /// Whether a login failed since the last call (each failure costs the
    /// peer a delay: password guessing gets slow).
    pub fn take_login_failure(&mut self) -> bool {
        std::mem::take(&mut self.login_failed)
    }

    /// Whether a get body is being streamed (the driver keeps writing
    /// while the server has bytes left to send).
    pub fn sending(&self) -> bool {
        self.download.as_ref().is_some_and(|d| d.started)
    }

    /// Whether a command is running whose output must be waited for.
    pub fn exec_running(&self) -> bool {
        self.exec.as_ref().is_some_and(|e| e.status.is_none())
    }

    /// Whether to take more of the command's output now: only while little
    /// is queued, so a command that prints faster than the client reads is
    /// held back by the pipe instead of filling the server's memory.
    pub fn exec_wants_output(&self) -> bool {
        self.exec
            .as_ref()
            .is_some_and(|e| e.status.is_none() && e.queue.len() < EXEC_QUEUE)
    }

    /// Waits for the running command's next output (call only while
    /// [`Self::exec_running`]).
    pub async fn exec_recv(&mut self) -> Option<ExecMsg> {
        match &mut self.exec {
            Some(e) => e.rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Queues what the command produced.
    pub fn on_exec(&mut self, msg: Option<ExecMsg>) {
        if let Some(e) = &mut self.exec {
            match msg {
                Some(ExecMsg::Out(s, d)) => e.queue.push_back((s, d)),
                Some(ExecMsg::Exit(code)) => e.status = Some(code),
                None => e.status = e.status.or(Some(-1)),
            }
        }
    }

    fn request(&mut self, s: &mut Server<Vec<u8>>, req: Request) -> Result<(), Error> {
        let root = self.root.clone();
        let outcome = match &req {
            Request::Get { path } => {
                let r = resolve(&self.cwd, path).and_then(|p| root.open_read(&p));
                match r {
                    Ok((file, md)) => {
                        let size = md.len();
                        let version = Version::of(&md);
                        let kept = s
                            .negotiated()
                            .and_then(|n| self.shared.sums.get(&version, n.digest));
                        s.offer_vouched(size, kept)?;
                        self.download = Some(Download {
                            file,
                            path: path.to_string(),
                            size,
                            started: false,
                            start: StdInstant::now(),
                            version,
                            vouched: kept.is_some(),
                        });
                        return Ok(());
                    }
                    Err(e) => Err(e),
                }
            }
            Request::Put {
                path,
                size,
                overwrite,
                resume,
            } => {
                let r = resolve(&self.cwd, path)
                    .and_then(|p| root.begin_upload(&p, *size, *overwrite, *resume));
                match r {
                    Ok(mut up) => {
                        up.background = crate::writer::worth_it(
                            up.size - up.offset,
                            s.negotiated().map(|n| n.digest),
                        );
                        let name = up.target.to_string_lossy().into_owned();
                        let renamed = (name != resolve(&self.cwd, path)?.to_string_lossy())
                            .then(|| format!("/{name}"));
                        s.accept_put(up.offset, renamed.as_deref())?;
                        // Hashing what a resume already holds can take
                        // seconds: off the async workers, a few at a time.
                        let slots = &self.shared.prefix_slots;
                        bounded_off_worker(slots, || up.read_prefix(|d| s.feed_prefix(d)))?;
                        self.upload = Some((up, path.to_string(), StdInstant::now()));
                        return Ok(());
                    }
                    Err(e) => Err(e),
                }
            }
            Request::List { path } => match resolve(&self.cwd, path).and_then(|p| root.list(&p)) {
                Ok(listing) => {
                    // Read and sent as output room allows (see `pump_list`).
                    self.listing = Some(listing);
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            Request::Stat { path } => match resolve(&self.cwd, path).and_then(|p| root.stat(&p)) {
                Ok(e) => return s.reply_entry(&e),
                Err(e) => Err(e),
            },
            Request::Digest { path } => {
                let alg = s.negotiated().ok_or(Error::Internal)?.digest;
                // Hashing a large file takes a while: let the runtime move
                // other sessions off this worker meanwhile.
                let r = tokio::task::block_in_place(|| {
                    resolve(&self.cwd, path).and_then(|p| root.digest(&p, alg))
                });
                match r {
                    Ok((sum, unchanged)) => {
                        if let Some(v) = unchanged {
                            self.shared.sums.put(v, sum);
                        }
                        return s.reply_sum(&sum);
                    }
                    Err(e) => Err(e),
                }
            }
            Request::Cd { path } => {
                let r = resolve(&self.cwd, path).and_then(|p| root.check_dir(&p).map(|_| p));
                match r {
                    // A directory the protocol cannot name back is refused
                    // here, not after the session moved into it.
                    Ok(p) if p.as_os_str().len() + 1 > ferry_core::message::MAX_PATH => {
                        Err(Error::InvalidPath)
                    }
                    Ok(p) => {
                        self.cwd = p;
                        return s.reply_cwd(&format!("/{}", self.cwd.display()));
                    }
                    Err(e) => Err(e),
                }
            }
            Request::Pwd => return s.reply_cwd(&format!("/{}", self.cwd.display())),
            Request::Mkdir { path } => resolve(&self.cwd, path).and_then(|p| root.mkdir(&p)),
            Request::Remove { path } => resolve(&self.cwd, path).and_then(|p| root.remove(&p)),
            // A bad path refuses this request; it must not end the session.
            Request::Rename { from, to } => resolve(&self.cwd, from)
                .and_then(|from| Ok((from, resolve(&self.cwd, to)?)))
                .and_then(|(from, to)| root.rename(&from, &to)),
            Request::RenameReplace { from, to } => resolve(&self.cwd, from)
                .and_then(|from| Ok((from, resolve(&self.cwd, to)?)))
                .and_then(|(from, to)| root.rename_replacing(&from, &to)),
            // Exec-disabled and read-only are refused by the core server
            // before a request gets here.
            Request::Exec { command } => return self.start_exec(s, command.to_string()),
        };
        info!(peer = %self.peer, user = self.who(), request = ?req, result = ?outcome, "request");
        match outcome {
            Ok(()) => s.reply_ok(),
            Err(e) => s.refuse(e),
        }
    }

    /// `--user-dirs`: confines the session (and its commands) to the
    /// user's directory, made on first login.
    fn enter_home(&mut self) -> Result<(), crate::error::FerryError> {
        let name = self.who().to_string();
        let home = self
            .shared
            .root
            .user_root(&name)
            .map_err(|e| crate::error::FerryError::Other(format!("{name}: {e}")))?;
        if self.shared.allow_exec {
            let c = crate::exec::Confinement::new(
                &home.real_path(std::path::Path::new("")),
                self.shared.read_only,
                self.shared.exec_unconfined,
            )
            .map_err(|e| crate::error::FerryError::Other(e.to_string()))?;
            self.confinement = Arc::new(c);
        }
        self.root = Arc::new(home);
        self.cwd = PathBuf::new();
        Ok(())
    }

    fn start_exec(&mut self, s: &mut Server<Vec<u8>>, command: String) -> Result<(), Error> {
        let dir = self.root.real_path(&self.cwd);
        let rx =
            match crate::exec::start(&self.shared, &self.confinement, &dir, &command, EXEC_QUEUE) {
                Ok(rx) => rx,
                Err(e) => {
                    warn!(peer = %self.peer, %command, error = %e, "exec refused");
                    return s.refuse(match e {
                        crate::exec::StartError::NotAllowed => Error::Permission,
                        crate::exec::StartError::Spawn(_) => Error::ExecFailed,
                    });
                }
            };
        info!(peer = %self.peer, user = self.who(), %command, "exec");
        self.exec = Some(Exec {
            rx,
            queue: VecDeque::new(),
            status: None,
            command,
        });
        Ok(())
    }

    fn pump_download(&mut self, s: &mut Server<Vec<u8>>) -> Result<(), Error> {
        let Some(d) = &mut self.download else {
            return Ok(());
        };
        if !d.started {
            return Ok(());
        }
        loop {
            let buf = s.send_buffer();
            if buf.is_empty() {
                break;
            }
            let n = d.file.read(buf).map_err(|e| map_io(&e))?;
            if n == 0 {
                // The file shrank under us: give up rather than send a lie.
                s.cancel(Error::Io)?;
                warn!(peer = %self.peer, path = %d.path, "file shrank during get");
                self.download = None;
                return Ok(());
            }
            s.commit_send(n)?;
            if s.remaining() == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Sends what of the listing fits the output buffer, reading the
    /// directory only as far as that: a client that stops reading stops
    /// the reading too.
    fn pump_list(&mut self, s: &mut Server<Vec<u8>>) -> Result<(), Error> {
        let Some(list) = &mut self.listing else {
            return Ok(());
        };
        loop {
            let item = list.next_entry();
            let sent = match &item {
                Some(Ok(e)) => s.list_entry(e),
                Some(Err(e)) => s.refuse(*e),
                None => s.list_end(),
            };
            match (sent, item) {
                (Ok(()), Some(Ok(_))) => {}
                (Ok(()), Some(Err(e))) => {
                    warn!(peer = %self.peer, error = %e, "listing failed part-way");
                    break;
                }
                (Ok(()), None) => break,
                (Err(Error::BufferFull), Some(item)) => {
                    list.hold(item);
                    return Ok(());
                }
                (Err(Error::BufferFull), None) => return Ok(()),
                (Err(err), _) => return Err(err),
            }
        }
        self.listing = None;
        Ok(())
    }

    fn pump_exec(&mut self, s: &mut Server<Vec<u8>>) -> Result<(), Error> {
        let Some(e) = &mut self.exec else {
            return Ok(());
        };
        while let Some((stream, data)) = e.queue.front_mut() {
            match s.exec_output(*stream, data) {
                Ok(n) if n == data.len() => {
                    e.queue.pop_front();
                }
                Ok(n) => {
                    data.drain(..n);
                }
                Err(Error::BufferFull) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
        if let Some(status) = e.status {
            s.exec_end(status)?;
            info!(peer = %self.peer, command = %e.command, status, "exec ended");
            self.exec = None;
        }
        Ok(())
    }
}

impl Handler<Vec<u8>> for Session {
    fn event(&mut self, event: ServerEvent<'_>) {
        match event {
            ServerEvent::Connected(_) => {}
            ServerEvent::LoginRequest { user } => {
                self.pending = Some(Pending::Login(user.to_string()))
            }
            ServerEvent::LoggedIn { user } => {
                self.user = user.map(|u| u.to_string());
                info!(peer = %self.peer, user = self.who(), "logged in");
                if self.shared.user_dirs {
                    self.pending = Some(Pending::EnterHome);
                }
            }
            ServerEvent::LoginFailed {
                user,
                error,
                failures,
            } => {
                self.login_failed = true;
                warn!(peer = %self.peer, user = user.as_deref().unwrap_or("anonymous"), %error, failures, "login failed");
            }
            ServerEvent::Request(r) => self.pending = Some(Pending::Request(Box::new(r))),
            ServerEvent::SendBody { offset } => self.pending = Some(Pending::SendBody(offset)),
            ServerEvent::Data(d) => {
                if let Some((up, _, _)) = &mut self.upload {
                    if let Err(e) = up.write(d) {
                        self.pending = Some(Pending::Abort(e));
                    }
                }
            }
            ServerEvent::PutEnd { verified, sum } => {
                self.pending = Some(Pending::PutEnd(verified, sum))
            }
            ServerEvent::GetEnd { verified, sum } => {
                if let Some(d) = self.download.take() {
                    let unchanged = || {
                        d.file
                            .metadata()
                            .is_ok_and(|md| Version::of(&md) == d.version)
                    };
                    match (d.vouched, verified) {
                        // The client hashed what this side read: keep it.
                        (false, true) if unchanged() => self.shared.sums.put(d.version, sum),
                        // A kept digest failed: never offer it again.
                        (true, false) => {
                            warn!(peer = %self.peer, path = %d.path, "kept digest failed the client's check; dropped");
                            self.shared.sums.forget(&d.version);
                        }
                        _ => {}
                    }
                    info!(peer = %self.peer, user = self.who(), path = %d.path, bytes = d.size,
                          ms = d.start.elapsed().as_millis() as u64, verified, kept_digest = d.vouched,
                          digest = %sum.algorithm(), sum = %sum, "get");
                }
            }
            ServerEvent::Cancelled(e) => {
                if let Some((up, path, _)) = self.upload.take() {
                    info!(peer = %self.peer, %path, error = %e, "put cancelled; partial kept for resume");
                    up.keep();
                }
                self.download = None;
            }
            ServerEvent::Closed(e) => {
                if let Some((up, path, _)) = self.upload.take() {
                    info!(peer = %self.peer, %path, "client gone mid-put; partial kept for resume");
                    up.keep();
                }
                self.closed = Some(e);
            }
        }
    }

    fn respond(&mut self, s: &mut Server<Vec<u8>>) -> Result<(), Error> {
        match self.pending.take() {
            Some(Pending::Login(user)) => {
                let v = self
                    .shared
                    .users
                    .as_ref()
                    .and_then(|u| u.get(&user))
                    .cloned();
                let mut nonce = [0u8; 18];
                getrandom::fill(&mut nonce).map_err(|_| Error::Internal)?;
                s.login_verifier(v.as_ref(), &nonce)?;
            }
            Some(Pending::EnterHome) => {
                if let Err(e) = off_worker(|| self.enter_home()) {
                    warn!(peer = %self.peer, user = self.who(), error = %e, "cannot enter the user's directory");
                    s.close(Error::Permission);
                }
            }
            Some(Pending::Request(r)) => off_worker(|| self.request(s, *r))?,
            Some(Pending::SendBody(offset)) => {
                let slots = &self.shared.prefix_slots;
                if let Some(d) = &mut self.download {
                    let hash = s.prefix_needed() > 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    // The held prefix is hashed unless the digest is kept.
                    let mut left = s.prefix_needed();
                    let file = &mut d.file;
                    let mut feed = || -> Result<bool, Error> {
                        file.seek(SeekFrom::Start(offset - left))
                            .map_err(|e| map_io(&e))?;
                        while left > 0 {
                            let want = buf.len().min(left as usize);
                            let n = file.read(&mut buf[..want]).map_err(|e| map_io(&e))?;
                            if n == 0 {
                                return Ok(false);
                            }
                            s.feed_prefix(&buf[..n])?;
                            left -= n as u64;
                        }
                        Ok(true)
                    };
                    let whole = if hash {
                        bounded_off_worker(slots, feed)?
                    } else {
                        feed()?
                    };
                    if !whole {
                        return s.cancel(Error::Io);
                    }
                    d.started = true;
                }
            }
            Some(Pending::PutEnd(verified, sum)) => {
                if let Some((up, path, start)) = self.upload.take() {
                    if verified {
                        let (bytes, resumed_from) = (up.size, up.offset);
                        // fsync and rename: file-system work.
                        match off_worker(|| up.commit()) {
                            Ok((stored, version)) => {
                                // The bytes just checked are the file's.
                                self.shared.sums.put(version, sum);
                                s.finish_put()?;
                                info!(peer = %self.peer, user = self.who(), %path, stored = %stored.display(),
                                      bytes, resumed_from, ms = start.elapsed().as_millis() as u64, verified,
                                      digest = %sum.algorithm(), sum = %sum, "put");
                            }
                            Err(e) => s.refuse(e)?,
                        }
                    } else {
                        warn!(peer = %self.peer, user = self.who(), %path, "put failed its MD5 check; discarded");
                        up.discard();
                    }
                }
            }
            Some(Pending::Abort(e)) => {
                warn!(peer = %self.peer, error = %e, "put aborted");
                if let Some((up, _, _)) = self.upload.take() {
                    up.keep();
                }
                s.cancel(e)?;
            }
            None => {}
        }
        if self.download.as_ref().is_some_and(|d| d.started) {
            off_worker(|| self.pump_download(s))?;
        }
        if self.listing.is_some() {
            off_worker(|| self.pump_list(s))?;
        }
        self.pump_exec(s)
    }

    fn has_output(&self) -> bool {
        self.listing.is_some() || self.exec.as_ref().is_some_and(|e| !e.queue.is_empty())
    }
}
