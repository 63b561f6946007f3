//! One client's session on the server: the served directory, kept
//! digests, uploads and commands as a ferry-core [`Store`], which the
//! core's one session (`ferry_core::app::Session`) serves. What is std's
//! alone lives here: file-system work off the async workers, bounded
//! prefix hashing, `--user-dirs`, exec confinement, admission, logs.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use ferry_core::app::{Abort, Accepted, Cost, ExecPoll, GetEnd, Store};
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::{Entry, Error, Overwrite, Path, Request, ServerEvent, Stream, Verifier};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::admission::Gate;
use crate::budget::{Counted, Held, GET_FILES};
use crate::exec::ExecMsg;

/// The name anonymous sessions go by in the log, and their directory
/// under `--user-dirs` (so no users-file user may have it there).
pub(crate) const ANONYMOUS_DIR: &str = "anonymous";
use crate::fsroot::{check_bound, map_io, resolve, resolve_new, Root, Upload};
use crate::kept_digests::{KeptDigests, Version};
use crate::listing;
use crate::objstore::{self, ObjectRoot};
use crate::sendfile::FileSpans;
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
    /// Which commands run, and their limits.
    pub exec: crate::exec::Policy,
    /// How commands are confined to the root.
    pub exec_confinement: Arc<crate::exec::Confinement>,
    /// Digests verified earlier, so unchanged files are not hashed again
    /// for a get.
    pub kept_digests: KeptDigests,
    /// Permits for hashing a resume's held prefix ([`PREFIX_HASHES`]).
    pub prefix_slots: tokio::sync::Semaphore,
    /// `--store s3://…`: the files are there instead of under `root`.
    pub objects: Option<Arc<ObjectRoot>>,
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

/// A file being sent (a get).
pub struct Download {
    source: Source,
    path: String,
    size: u64,
    start: StdInstant,
    /// The server sends its kept digest: the core reads none of the body,
    /// so it may go from the file ([`crate::sendfile`]).
    vouched: std::cell::Cell<bool>,
    /// Body bytes sent from the file, for the log.
    from_file: u64,
}

/// Where a get's bytes come from.
enum Source {
    /// A file under the root.
    File(GetFile),
    /// An object (`--store`).
    Object(objstore::Reading),
}

/// A get's file under the root, by its path and the version offered:
/// open from the offer while the session holds fewer than
/// [`GET_FILES`], else opened when its body starts (checked to be the
/// same version), and closed once its last byte is read — the client's
/// `Done` may come much later (see [`crate::budget`]).
struct GetFile {
    /// Shared with the sends queued from it ([`crate::sendfile`]), which
    /// may go out after its last byte was framed and it was closed here.
    open: Option<(Arc<std::fs::File>, Counted)>,
    path: PathBuf,
    version: Version,
}

impl GetFile {
    /// The file, opened again if it was closed: it must still be the
    /// version whose size was offered (else `Io`: sending it would not be
    /// the file the client accepted). One body is read at a time, so it
    /// may take one count past [`GET_FILES`].
    fn file(&mut self, root: &Root, held: &Held) -> Result<&Arc<std::fs::File>, Error> {
        if self.open.is_none() {
            let (file, md) = root.open_read(&self.path)?;
            if Version::of(&md) != self.version {
                return Err(Error::Io);
            }
            let count = held.take(GET_FILES + 1).ok_or(Error::Internal)?;
            self.open = Some((Arc::new(file), count));
        }
        self.open.as_ref().map(|(f, _)| f).ok_or(Error::Internal)
    }
}

/// An upload being received, with what its log line needs.
pub struct Receiving {
    upload: Receipt,
    path: String,
    start: StdInstant,
}

/// Where an upload's bytes go.
enum Receipt {
    /// A part file under the root.
    File(Upload),
    /// Chunk objects (`--store`).
    Object(objstore::Writing),
}

/// A listing of a directory under the root or in the object store.
pub enum Listing {
    /// Read as sent.
    Dir(listing::Listing),
    /// Read whole.
    Object(objstore::Listing),
}

/// The running command (one per session at a time).
pub struct Exec {
    rx: mpsc::Receiver<ExecMsg>,
    queue: VecDeque<(Stream, Vec<u8>)>,
    status: Option<i32>,
    command: String,
}

impl Exec {
    /// Waits for the command's next output.
    pub async fn recv(&mut self) -> Option<ExecMsg> {
        self.rx.recv().await
    }
}

/// One session's store: the directory it serves, the session's directory
/// in it, the user, admission, and the command running.
pub struct SessionStore {
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
    /// The command running, if any (its handle in the core's session is
    /// `()`; its pipes are here, for the driver to wait on).
    pub exec: Option<Exec>,
    /// This connection's side of admission.
    pub gate: Gate,
    /// A login just failed: the driver delays the answer.
    login_failed: bool,
    /// Files held open for gets (see [`GetFile`]).
    get_files: Held,
    /// Directories held open for puts (see [`crate::budget::PUT_DIRS`]).
    put_dirs: Held,
    /// Get bodies to send from their files (set up by the driver for a
    /// plain socket).
    pub(crate) from_file: FileSpans,
}

impl SessionStore {
    /// A new session at the root.
    pub fn new(shared: Arc<Shared>, peer: String, gate: Gate) -> Self {
        SessionStore {
            root: shared.root.clone(),
            confinement: shared.exec_confinement.clone(),
            shared,
            peer,
            cwd: PathBuf::new(),
            user: None,
            exec: None,
            gate,
            login_failed: false,
            get_files: Held::default(),
            put_dirs: Held::default(),
            from_file: FileSpans::default(),
        }
    }

    fn who(&self) -> &str {
        self.user.as_deref().unwrap_or(ANONYMOUS_DIR)
    }

    /// Whether a login failed since the last call (each failure costs the
    /// peer a delay: password guessing gets slow).
    pub fn take_login_failure(&mut self) -> bool {
        std::mem::take(&mut self.login_failed)
    }

    /// Whether to take more of the command's output now: only while little
    /// is queued, so a command that prints faster than the client reads is
    /// held back by the pipe instead of filling the server's memory.
    pub fn exec_wants_output(&self) -> bool {
        self.exec
            .as_ref()
            .is_some_and(|e| e.status.is_none() && e.queue.len() < EXEC_QUEUE)
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
            // The rule is made from the directory `user_root` opened
            // (O_NOFOLLOW), not its path: a symlink swapped in at
            // ROOT/NAME since cannot widen it.
            let c = crate::exec::Confinement::new_at(
                home.as_fd(),
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

    /// The session's directory as the client sees it.
    fn cwd_path(&self, out: &mut Path) -> Result<(), Error> {
        *out = Path::try_from(format!("/{}", self.cwd.display()).as_str())
            .map_err(|_| Error::InvalidPath)?;
        Ok(())
    }
}

impl Store for SessionStore {
    /// Boxed, as the upload: the core's session holds one per request in
    /// flight (1024), so what it holds inline is a pointer, not ~300
    /// bytes (session state at window 1024: 295 KiB before, see
    /// `server::WINDOW`).
    type File = Box<Download>;
    type Upload = Box<Receiving>;
    type Listing = Listing;
    /// The command's pipes are in [`SessionStore::exec`].
    type Exec = ();

    fn verifier(&self, user: &str) -> Option<&Verifier> {
        self.shared.users.as_ref().and_then(|u| u.get(user))
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(buf).map_err(|_| Error::Internal)
    }

    fn retry_after(&self, _: Error) -> u32 {
        self.gate.retry_secs
    }

    fn on_event(&mut self, event: &ServerEvent<'_>) -> Result<(), Error> {
        if let Some(e) = self.gate.check(event) {
            return Err(e);
        }
        match event {
            ServerEvent::LoggedIn { user } => {
                self.user = user.as_ref().map(|u| u.to_string());
                info!(peer = %self.peer, user = self.who(), "logged in");
                if self.shared.user_dirs {
                    if let Err(e) = off_worker(|| self.enter_home()) {
                        warn!(peer = %self.peer, user = self.who(), error = %e, "cannot enter the user's directory");
                        return Err(Error::Permission);
                    }
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
            _ => {}
        }
        Ok(())
    }

    fn answered(&mut self, request: &Request, result: Result<(), Error>) {
        let logged = match request {
            Request::Mkdir { .. }
            | Request::Remove { .. }
            | Request::Rename { .. }
            | Request::RenameReplace { .. } => true,
            // Logged when they end, or by `exec` itself.
            Request::Exec { .. } | Request::Pwd => false,
            _ => result.is_err(),
        };
        if logged {
            info!(peer = %self.peer, user = self.who(), request = ?request, result = ?result, "request");
        }
    }

    fn blocking<R>(&mut self, cost: Cost, f: impl FnOnce(&mut Self) -> R) -> R {
        match cost {
            Cost::Storage => off_worker(|| f(self)),
            // Hashing what a resume already holds can take seconds: off
            // the async workers, a few at a time.
            Cost::PrefixHash => {
                let shared = self.shared.clone();
                bounded_off_worker(&shared.prefix_slots, || f(self))
            }
        }
    }

    fn open(&mut self, path: &str) -> Result<(Box<Download>, u64), Error> {
        let p = resolve(&self.cwd, path)?;
        let (source, size) = match &self.shared.objects {
            Some(o) => {
                let r = o.open(&p)?;
                let size = r.size;
                (Source::Object(r), size)
            }
            None => {
                let (file, md) = self.root.open_read(&p)?;
                // The file is checked now (it exists, is a regular file,
                // its size is what is offered); kept open only within the
                // session's budget.
                let open = self.get_files.take(GET_FILES).map(|n| (Arc::new(file), n));
                let version = Version::of(&md);
                let size = md.len();
                (
                    Source::File(GetFile {
                        open,
                        path: p,
                        version,
                    }),
                    size,
                )
            }
        };
        let d = Download {
            source,
            path: path.to_string(),
            size,
            start: StdInstant::now(),
            vouched: std::cell::Cell::new(false),
            from_file: 0,
        };
        Ok((Box::new(d), size))
    }

    fn read_at(&mut self, d: &mut Box<Download>, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let get = match &mut d.source {
            Source::File(get) => get,
            Source::Object(r) => return r.read_at(at, buf),
        };
        let version = get.version;
        let file = get.file(&self.root, &self.get_files).inspect_err(|e| {
            warn!(peer = %self.peer, path = %d.path, error = %e, "file changed between its offer and its body");
        })?;
        // The digest is kept, so the core will not look at these bytes:
        // they go from the file when the driver writes the output (the
        // file checked to be the version offered, as a read would show a
        // shrunk one).
        if d.vouched.get() {
            let len = usize::try_from(d.size.saturating_sub(at))
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let same = file.metadata().is_ok_and(|md| Version::of(&md) == version);
            if same && self.from_file.defer(buf, file, at, len) {
                d.from_file += len as u64;
                if at + len as u64 >= d.size {
                    get.open = None;
                }
                return Ok(len);
            }
        }
        let n = loop {
            match file.read_at(buf, at) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => break r.map_err(|e| map_io(&e))?,
            }
        };
        // The last byte is read: the file is closed (and uncounted) now,
        // not when the client's `Done` comes.
        if at + n as u64 >= d.size {
            get.open = None;
        }
        Ok(n)
    }

    fn kept_digest(&mut self, d: &Box<Download>, alg: Algorithm) -> Option<Sum> {
        match &d.source {
            Source::File(get) => {
                let kept = self.shared.kept_digests.get(&get.version, alg);
                d.vouched.set(kept.is_some());
                kept
            }
            // Kept in the object's metadata at commit, by whichever server
            // stored it.
            Source::Object(r) => r.digest.filter(|s| s.algorithm() == alg),
        }
    }

    fn keep_digest(&mut self, d: &Box<Download>, sum: Sum) {
        // The client hashed what this side read: keep it, if the file is
        // still the one that was read. (An object's is written at commit
        // only: rewriting its metadata would mean copying it.)
        if let Source::File(get) = &d.source {
            // By path: the file was closed after its last byte.
            if self.root.version(&get.path) == Some(get.version) {
                self.shared.kept_digests.put(get.version, sum);
            }
        }
    }

    fn forget_digest(&mut self, d: &Box<Download>) {
        warn!(peer = %self.peer, path = %d.path, "kept digest failed the client's check; dropped");
        if let Source::File(get) = &d.source {
            self.shared.kept_digests.forget(&get.version);
        }
    }

    fn close(&mut self, d: Box<Download>, end: GetEnd) {
        match end {
            GetEnd::Done {
                verified,
                vouched,
                sum,
            } => {
                info!(peer = %self.peer, user = self.who(), path = %d.path, bytes = d.size,
                      ms = d.start.elapsed().as_millis() as u64, verified, kept_digest = vouched, sent_from_file = d.from_file,
                      digest = %sum.algorithm(), sum = %sum, "get");
            }
            GetEnd::Failed(Error::Io) => {
                warn!(peer = %self.peer, path = %d.path, "file shrank during get")
            }
            GetEnd::Failed(e) => warn!(peer = %self.peer, path = %d.path, error = %e, "get failed"),
            GetEnd::Cancelled(_) => {}
        }
    }

    fn digest(&mut self, path: &str, alg: Algorithm, _: &mut [u8]) -> Result<Sum, Error> {
        if let Some(o) = &self.shared.objects {
            return resolve(&self.cwd, path).and_then(|p| o.digest(&p, alg));
        }
        let (sum, unchanged) = resolve(&self.cwd, path).and_then(|p| self.root.digest(&p, alg))?;
        if let Some(v) = unchanged {
            self.shared.kept_digests.put(v, sum);
        }
        Ok(sum)
    }

    fn begin_upload(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        resume: bool,
        digest: Algorithm,
    ) -> Result<Accepted<Box<Receiving>>, Error> {
        let p = resolve_new(&self.cwd, path)?;
        let (upload, target, offset) = match &self.shared.objects {
            Some(o) => {
                let w = o.begin_upload(&p, size, overwrite, resume)?;
                let (target, offset) = (w.target.clone(), w.offset);
                (Receipt::Object(w), target, offset)
            }
            None => {
                let mut up = self
                    .root
                    .begin_upload(&p, size, overwrite, resume, &self.put_dirs)?;
                up.background = crate::writer::worth_it(up.size - up.offset, Some(digest));
                let (target, offset) = (up.target.clone(), up.offset);
                (Receipt::File(up), target, offset)
            }
        };
        let name = target.to_string_lossy().into_owned();
        let stored_as = match name != p.to_string_lossy() {
            true => {
                Some(Path::try_from(format!("/{name}").as_str()).map_err(|_| Error::InvalidPath)?)
            }
            false => None,
        };
        Ok(Accepted {
            offset,
            upload: Box::new(Receiving {
                upload,
                path: path.to_string(),
                start: StdInstant::now(),
            }),
            stored_as,
        })
    }

    fn read_part_at(
        &mut self,
        r: &mut Box<Receiving>,
        at: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        match &mut r.upload {
            Receipt::File(up) => up.read_at(at, buf),
            Receipt::Object(w) => w.read_at(at, buf),
        }
    }

    fn write(&mut self, r: &mut Box<Receiving>, data: &[u8]) -> Result<(), Error> {
        match &mut r.upload {
            Receipt::File(up) => up.write(data),
            Receipt::Object(w) => w.write(data),
        }
    }

    fn commit(&mut self, r: Box<Receiving>, sum: Sum) -> Result<(), Error> {
        let (stored, bytes, resumed_from) = match r.upload {
            Receipt::File(up) => {
                let (bytes, resumed_from) = (up.size, up.offset);
                // fsync and rename (under `blocking`: off the async workers).
                let (stored, version) = up.commit()?;
                // The bytes just checked are the file's.
                self.shared.kept_digests.put(version, sum);
                (stored, bytes, resumed_from)
            }
            Receipt::Object(w) => {
                let (stored, bytes, resumed_from) = (w.target.clone(), w.size, w.offset);
                w.commit(sum).inspect_err(|e| {
                    warn!(peer = %self.peer, path = %r.path, error = %e, "put refused at commit");
                })?;
                (stored, bytes, resumed_from)
            }
        };
        info!(peer = %self.peer, user = self.who(), path = %r.path, stored = %stored.display(),
              bytes, resumed_from, ms = r.start.elapsed().as_millis() as u64, verified = true,
              digest = %sum.algorithm(), sum = %sum, "put");
        Ok(())
    }

    fn keep(&mut self, r: Box<Receiving>, why: Abort) {
        match why {
            Abort::Cancelled(e) => {
                info!(peer = %self.peer, path = %r.path, error = %e, "put cancelled; partial kept for resume")
            }
            Abort::Closed(_) => {
                info!(peer = %self.peer, path = %r.path, "client gone mid-put; partial kept for resume")
            }
            Abort::Failed(e) => warn!(peer = %self.peer, error = %e, "put aborted"),
        }
        match r.upload {
            Receipt::File(up) => up.keep(),
            Receipt::Object(w) => w.keep(),
        }
    }

    fn discard(&mut self, r: Box<Receiving>) {
        warn!(peer = %self.peer, user = self.who(), path = %r.path, "put failed its MD5 check; discarded");
        match r.upload {
            Receipt::File(up) => up.discard(),
            Receipt::Object(w) => w.discard(),
        }
    }

    fn list(&mut self, path: &str) -> Result<Listing, Error> {
        // Read and sent as output room allows: a client that stops reading
        // stops the reading too.
        let p = resolve(&self.cwd, path)?;
        match &self.shared.objects {
            Some(o) => o.list(&p).map(Listing::Object),
            None => self.root.list(&p).map(Listing::Dir),
        }
    }

    fn next_entry(&mut self, list: &mut Listing, slot: &mut Entry) -> Result<bool, Error> {
        let next = match list {
            Listing::Dir(l) => l.next_entry(),
            Listing::Object(l) => l.next_entry().map(Ok),
        };
        match next {
            Some(Ok(e)) => {
                *slot = e;
                Ok(true)
            }
            Some(Err(e)) => {
                warn!(peer = %self.peer, error = %e, "listing failed part-way");
                Err(e)
            }
            None => Ok(false),
        }
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        let p = resolve(&self.cwd, path)?;
        match &self.shared.objects {
            Some(o) => o.stat(&p),
            None => self.root.stat(&p),
        }
    }

    fn cd(&mut self, path: &str, cwd: &mut Path) -> Result<(), Error> {
        let p = resolve(&self.cwd, path)?;
        match &self.shared.objects {
            Some(o) => o.check_dir(&p)?,
            None => self.root.check_dir(&p)?,
        }
        // A directory the protocol cannot name back is refused here, not
        // after the session moved into it.
        check_bound(&p)?;
        self.cwd = p;
        self.cwd_path(cwd)
    }

    fn pwd(&mut self, cwd: &mut Path) -> Result<(), Error> {
        self.cwd_path(cwd)
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let p = resolve_new(&self.cwd, path)?;
        match &self.shared.objects {
            Some(o) => o.mkdir(&p),
            None => self.root.mkdir(&p),
        }
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let p = resolve(&self.cwd, path)?;
        match &self.shared.objects {
            Some(o) => o.remove(&p),
            None => self.root.remove(&p),
        }
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        // A bad path refuses this request; it must not end the session.
        let (from, to) = (resolve(&self.cwd, from)?, resolve_new(&self.cwd, to)?);
        if let Some(o) = &self.shared.objects {
            return o.rename(&from, &to, replace);
        }
        match replace {
            true => self.root.rename_replacing(&from, &to),
            false => self.root.rename(&from, &to),
        }
    }

    // Exec-disabled and read-only are refused by the core server before a
    // request gets here.
    fn exec(&mut self, command: &str) -> Result<(), Error> {
        let dir = self.root.real_path(&self.cwd);
        let rx = crate::exec::start(
            &self.shared.exec,
            &self.confinement,
            self.root.as_fd(),
            &self.cwd,
            &dir,
            command,
            EXEC_QUEUE,
        )
        .map_err(|e| {
            warn!(peer = %self.peer, %command, error = %e, "exec refused");
            match e {
                crate::exec::StartError::NotAllowed => Error::Permission,
                crate::exec::StartError::Spawn(_) => Error::ExecFailed,
            }
        })?;
        info!(peer = %self.peer, user = self.who(), %command, "exec");
        self.exec = Some(Exec {
            rx,
            queue: VecDeque::new(),
            status: None,
            command: command.to_string(),
        });
        Ok(())
    }

    fn exec_poll<'a>(&'a mut self, _: &'a mut ()) -> ExecPoll<'a> {
        let Some(e) = &self.exec else {
            return ExecPoll::Exit(-1);
        };
        match (e.queue.front(), e.status) {
            (Some((stream, data)), _) => ExecPoll::Output(*stream, data),
            (None, Some(status)) => ExecPoll::Exit(status),
            (None, None) => ExecPoll::Pending,
        }
    }

    fn exec_consume(&mut self, _: &mut (), n: usize) {
        if let Some(e) = &mut self.exec {
            if let Some((_, data)) = e.queue.front_mut() {
                data.drain(..n.min(data.len()));
                if data.is_empty() {
                    e.queue.pop_front();
                }
            }
        }
    }

    fn exec_end(&mut self, _: (), status: i32) {
        if let Some(e) = self.exec.take() {
            info!(peer = %self.peer, command = %e.command, status, "exec ended");
        }
    }
}
