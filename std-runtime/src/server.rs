//! The `ferry serve` server: tokio listeners (TCP and Unix), one task per
//! connection, each driving a ferry-core `Server` and the core's one
//! application session over a [`SessionStore`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ferry_core::app::{Progress, Session};
use ferry_core::digest::Digests;
use ferry_core::{Config, Error, Instant, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

use crate::serial::OnClose;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::admission::{Admission, Gate, Limits, Progress as Reached, Startup};
use crate::budget::SESSION_FDS;
use crate::error::FerryError;
use crate::exec::Confinement;
use crate::fsroot::Root;
use crate::objstore::ObjectRoot;
use crate::sendfile::{FileSpans, Next, SendFile, Socket};
use crate::session::ANONYMOUS_DIR;
use crate::session::{SessionStore, Shared};
use crate::users::Users;

/// What each failed login costs the peer before it hears the answer.
pub const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Buffer per direction of a refused connection (it sends a hello and
/// one error): one 64 KiB chunk plus its header.
const BUF: usize = 64 * 1024 + 64;
const _: () = assert!(BUF >= ferry_core::MIN_INPUT_BUFFER && BUF >= ferry_core::MIN_OUTPUT_BUFFER);
/// Buffer per direction of every other connection: 256 KiB chunks, four
/// times fewer socket reads, file writes and wake-ups per byte than 64 KiB,
/// measured at +50 % on a 1 GiB put over loopback (docs/BENCHMARKS.md).
/// Mapped, not allocated ([`buffer`]): a page costs memory only once
/// bytes pass through it, so a connection that sends nothing (not logged
/// in, idle) holds a few pages, and a busy one at most both buffers.
const BIG_BUF: usize = 256 * 1024 + 64;
/// Gets or puts a session holds in flight (`docs/PROTOCOL.md#pipelining`):
/// at a 50 ms round trip, 2000 files of 4 KiB take 0.56 s up and 0.45 s
/// down at 1024, 0.71 / 1.10 s at 256 (tmpfs, docs/BENCHMARKS.md). Every
/// connection gets it: the hello that announces it goes out at connect,
/// before any login, so a window (and buffers) handed out by turns let
/// 32 silent connections push every real user to a smaller one. It costs
/// ~125 KiB of fixed state per connection (core ~100 KiB, session ~24 KiB
/// with its file handles boxed; `footprint` below keeps it bounded).
const WINDOW: usize = crate::client::WINDOW;

/// The buffers a connection's core works in.
type Buf = memmap2::MmapMut;

/// A zeroed buffer of `len` bytes whose pages are committed only when
/// written (an anonymous private mapping; `calloc` may reuse heap memory
/// and zero it, committing it all).
fn buffer(len: usize) -> std::io::Result<Buf> {
    memmap2::MmapMut::map_anon(len)
}

/// Descriptors kept for the server itself: listeners, the root, the
/// runtime, the object store's connections, logs, what blocking work
/// opens for a moment.
const RESERVE_FDS: usize = 64;

/// How long a connection past the budget waits for a lingering one to
/// go (see `Ctx::counted`).
const SHED_WAIT: Duration = Duration::from_millis(100);

/// Connections refused in the ordinary way (hello, then `Busy` or
/// `Penalised` once the client's hello is read) at once; past that the
/// accept loop answers with the version-2 refusal and closes at once.
const REFUSING: usize = 64;

/// The sessions the descriptor limit has room for, and the connections
/// (sessions, startups, refusals) that may be open at once: every
/// connection is counted from accept, so the server never runs out of
/// descriptors for the listener to accept and refuse with. The soft limit
/// is raised to the hard one first.
fn descriptor_budget(
    max_connections: usize,
    max_startups: usize,
) -> Result<(usize, usize), FerryError> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    let limit = getrlimit(Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let room = limit.saturating_sub(RESERVE_FDS + max_startups + REFUSING) / SESSION_FDS;
    if room == 0 {
        return Err(FerryError::Usage(format!(
            "refusing to start: the descriptor limit ({limit}) leaves no room for a session \
             ({SESSION_FDS} each, {RESERVE_FDS} for the server, one per connection not logged in); \
             raise it (ulimit -n) or lower --max-startups"
        )));
    }
    let sessions = max_connections.min(room);
    if sessions < max_connections {
        warn!(
            limit,
            sessions,
            "the descriptor limit allows fewer sessions than --max-connections: {sessions}"
        );
    }
    // Every connection holds its socket; a session up to SESSION_FDS - 1
    // more. What sessions cannot take, connections not logged in and
    // lingering ones may (at least `max_startups + REFUSING`).
    let conns = limit.saturating_sub(RESERVE_FDS + sessions * (SESSION_FDS - 1));
    Ok((sessions, conns))
}

/// The accept loop's answer to failed accepts: with descriptors or buffers
/// exhausted (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) the next accept
/// would fail at once too, so it pauses, from [`Self::FIRST`] doubling to
/// [`Self::MOST`]; and it logs once per [`Self::LOG_EVERY`] with a count.
/// Measured before: 10.7 CPU-s in 10 s and 528 MB of log while an
/// attacker held every descriptor.
struct AcceptFailures {
    pause: Duration,
    count: u64,
    logged: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(5);

    fn new() -> Self {
        AcceptFailures {
            pause: Self::FIRST,
            count: 0,
            logged: None,
        }
    }

    /// An accept succeeded: the next failure pauses briefly again.
    fn succeeded(&mut self) {
        self.pause = Self::FIRST;
    }

    /// Pauses as the error calls for; whether it was logged.
    async fn failed(&mut self, e: &std::io::Error, listener: &str) -> bool {
        self.count += 1;
        let now = tokio::time::Instant::now();
        let log = self
            .logged
            .is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY);
        if log {
            warn!(%listener, error = %e, failures = self.count, "accept failed");
            self.count = 0;
            self.logged = Some(now);
        }
        let exhausted = e.raw_os_error().is_some_and(|n| {
            [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&n)
        });
        if exhausted {
            tokio::time::sleep(self.pause).await;
            self.pause = (self.pause * 2).min(Self::MOST);
        }
        log
    }
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// TCP, IPv4 or IPv6.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
    /// A serial device (`serial:PATH`): one session at a time over the
    /// link layer (docs/PROTOCOL.md#serial-link), at
    /// [`ServeOptions::baud`].
    Serial(PathBuf),
}

impl ListenAddr {
    /// Parses `HOST:PORT`, `[V6]:PORT`, `unix:PATH` or `serial:PATH`.
    pub fn parse(s: &str) -> Result<Self, FerryError> {
        if let Some(p) = s.strip_prefix("serial:") {
            if p.is_empty() {
                return Err(FerryError::Usage("serial: needs a device path".into()));
            }
            return Ok(ListenAddr::Serial(p.into()));
        }
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(FerryError::Usage("unix: needs a path".into()));
            }
            return Ok(ListenAddr::Unix(p.into()));
        }
        s.parse::<SocketAddr>()
            .map(|_| ListenAddr::Tcp(s.to_string()))
            .map_err(|_| {
                FerryError::Usage(format!(
                    "bad listen address {s:?} (HOST:PORT, [::1]:PORT, unix:PATH or serial:PATH)"
                ))
            })
    }
}

/// Everything `ferry serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Directory to serve.
    pub root: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<ListenAddr>,
    /// Users file; `None` with `anonymous`.
    pub users: Option<Users>,
    /// Allow anonymous logins.
    pub anonymous: bool,
    /// Refuse writes.
    pub read_only: bool,
    /// Part files of abandoned uploads older than this are deleted.
    pub partial_max_age: Duration,
    /// Confine each user to `ROOT/USER` (created on first login, 0700).
    pub user_dirs: bool,
    /// Run `exec`.
    pub allow_exec: bool,
    /// If not empty, only these programs, without a shell.
    pub exec_allow: Vec<String>,
    /// Most sessions from one IP address (0: no limit).
    pub max_per_ip: usize,
    /// Most simultaneous logged-in sessions; more get "server busy".
    pub max_connections: usize,
    /// Budget of connections that have not logged in, and penalties for
    /// failed logins (see [`crate::admission`]).
    pub admission: Limits,
    /// Close sessions idle this long.
    pub idle_timeout: Duration,
    /// Time allowed from connect until login completes (hello included).
    pub login_timeout: Duration,
    /// Time limit for one command.
    pub exec_timeout: Duration,
    /// Most output one command may send (stdout and stderr together).
    pub exec_max_output: u64,
    /// Caps on one command's processes, memory and CPU time.
    pub exec_limits: crate::exec::ExecLimits,
    /// Run commands without the Landlock confinement to the root (needed
    /// where the kernel lacks Landlock; refused with `read_only`).
    pub exec_unconfined: bool,
    /// Body digests accepted, in preference order (MD5 is always
    /// accepted: it is the protocol's mandatory digest).
    pub digests: Digests,
    /// Serve TCP over TLS with this certificate chain and private key
    /// (PEM files). Unix sockets stay plain.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve an object store, `s3://BUCKET[/PREFIX]`, instead of `root`
    /// (configured by the `AWS_*` variables; checked at start).
    pub store: Option<String>,
    /// Gets or puts a session holds in flight at most (`--window`,
    /// 1–1024; every session the same, [`WINDOW`] by default).
    pub window: u16,
    /// The rate of `serial:` lines in bits per second (8N1).
    pub baud: u32,
    /// Which connections get kept-digest bodies sent from the file
    /// ([`crate::sendfile`]).
    pub sendfile: SendFile,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            root: ".".into(),
            listen: vec![ListenAddr::Tcp("127.0.0.1:7070".into())],
            users: None,
            anonymous: false,
            read_only: false,
            partial_max_age: Duration::from_secs(24 * 3600),
            user_dirs: false,
            allow_exec: false,
            exec_allow: Vec::new(),
            max_per_ip: 0,
            max_connections: 256,
            admission: Limits::default(),
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(30),
            exec_timeout: Duration::from_secs(60),
            exec_max_output: 64 << 20,
            exec_limits: Default::default(),
            exec_unconfined: false,
            digests: Digests::available(),
            tls: None,
            store: None,
            window: WINDOW as u16,
            baud: 115_200,
            sendfile: SendFile::default(),
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    config: ServerConfig,
    tcp: Vec<TcpListener>,
    unix: Vec<(UnixListener, PathBuf)>,
    /// Serial lines, opened, and their rate.
    serial: Vec<(std::os::fd::OwnedFd, PathBuf)>,
    baud: u32,
    slots: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    admission: Arc<Admission>,
    start: StdInstant,
    tls: Option<TlsAcceptor>,
    conns: Arc<Semaphore>,
    overflow: Arc<[u8]>,
    shed: Arc<tokio::sync::Notify>,
    sendfile: SendFile,
}

/// Sessions per IP address, for `--max-per-ip`.
struct PerIp {
    limit: usize,
    counts: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One counted session; uncounted when dropped.
struct IpSlot {
    table: Arc<PerIp>,
    ip: std::net::IpAddr,
}

impl PerIp {
    fn new(limit: usize) -> Self {
        PerIp {
            limit,
            counts: Default::default(),
        }
    }

    /// Counts a session from `ip`, or `None` if that IP is at its limit.
    fn take(table: &Arc<PerIp>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut counts = table.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if table.limit > 0 && *n >= table.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Server {
    /// Opens the root and binds every address (nothing is served yet).
    pub async fn bind(opts: ServeOptions) -> Result<Server, FerryError> {
        if opts.users.is_none() && !opts.anonymous {
            return Err(FerryError::Usage(
                "refusing to start: give --users FILE (see `ferry passwd`) or --anonymous".into(),
            ));
        }
        // Anonymous sessions live in ROOT/anonymous under --user-dirs: a
        // user of that name would share their files.
        if opts.user_dirs
            && opts
                .users
                .as_ref()
                .is_some_and(|u| u.get(ANONYMOUS_DIR).is_some())
        {
            return Err(FerryError::Usage(format!(
                "refusing to start: the users file has a user named `{ANONYMOUS_DIR}`, whose \
                 directory under --user-dirs is the anonymous sessions' one; rename that user"
            )));
        }
        // An object store is checked (reachable, bucket there, create-only
        // writes honoured) before anything listens: a bad one stops the
        // server here, not at the first request.
        let objects = match &opts.store {
            None => None,
            Some(url) => {
                if opts.allow_exec {
                    return Err(FerryError::Usage(format!(
                        "refusing to start: exec needs a directory to run commands in; --store {url} has none (drop --allow-exec/--exec-allow)"
                    )));
                }
                if opts.user_dirs {
                    return Err(FerryError::Usage(format!(
                        "refusing to start: --user-dirs is not supported with --store {url}"
                    )));
                }
                let o = ObjectRoot::connect(url, opts.partial_max_age, opts.read_only)
                    .await
                    .map_err(|e| match e.is_usage() {
                        true => FerryError::Usage(e.to_string()),
                        false => FerryError::Other(e.to_string()),
                    })?;
                Some(Arc::new(o))
            }
        };
        let mut root = Root::open(&opts.root).map_err(|e| FerryError::local(&opts.root, e))?;
        root.set_partial_max_age(opts.partial_max_age);
        // Commands are confined before the server listens: a kernel that
        // cannot confine them stops it here, with the reason.
        let exec_confinement = if opts.allow_exec {
            Confinement::new_at(
                root.as_fd(),
                root.real_path(Path::new("")).as_path(),
                opts.read_only,
                opts.exec_unconfined,
            )
            .map_err(|e| FerryError::Usage(e.to_string()))?
        } else {
            Confinement::Unconfined
        };
        if opts.allow_exec && !exec_confinement.confined() {
            warn!("--exec-unconfined: commands can read and write whatever the server can");
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| FerryError::Other(format!("no randomness: {e}")))?;
        let config = ServerConfig {
            conn: Config {
                // Capped by each session's buffers: 256 KiB or 64 KiB.
                chunk_size: 256 * 1024,
                idle_timeout: Some(opts.idle_timeout),
                handshake_timeout: opts.login_timeout,
                login_timeout: opts.login_timeout,
                digests: opts.digests,
                window: opts.window,
            },
            allow_anonymous: opts.anonymous,
            allow_exec: opts.allow_exec,
            read_only: opts.read_only,
            unknown_user_iterations: opts.users.as_ref().map_or(
                ferry_core::auth::DEFAULT_ITERATIONS,
                Users::typical_iterations,
            ),
            ..ServerConfig::new(secret)
        };
        let mut tcp = Vec::new();
        let mut unix = Vec::new();
        let mut serial = Vec::new();
        for addr in &opts.listen {
            match addr {
                ListenAddr::Tcp(a) => tcp.push(
                    TcpListener::bind(a)
                        .await
                        .map_err(|e| FerryError::Other(format!("cannot listen on {a}: {e}")))?,
                ),
                ListenAddr::Unix(p) => {
                    // A stale socket from a previous run is replaced.
                    if std::fs::symlink_metadata(p).is_ok_and(|m| {
                        use std::os::unix::fs::FileTypeExt;
                        m.file_type().is_socket()
                    }) {
                        let _ = std::fs::remove_file(p);
                    }
                    let l = UnixListener::bind(p).map_err(|e| {
                        FerryError::Other(format!("cannot listen on unix:{}: {e}", p.display()))
                    })?;
                    unix.push((l, p.clone()));
                }
                ListenAddr::Serial(p) => {
                    let port = crate::serial::open_port(p, opts.baud).map_err(|e| {
                        FerryError::Other(format!("cannot listen on serial:{}: {e}", p.display()))
                    })?;
                    serial.push((port, p.clone()));
                }
            }
        }
        let shared = Arc::new(Shared {
            root: Arc::new(root),
            user_dirs: opts.user_dirs,
            exec_unconfined: opts.exec_unconfined,
            users: opts.users,
            read_only: opts.read_only,
            allow_exec: opts.allow_exec,
            exec: crate::exec::Policy {
                allow: opts.exec_allow,
                timeout: opts.exec_timeout,
                max_output: opts.exec_max_output,
                limits: opts.exec_limits,
            },
            exec_confinement: Arc::new(exec_confinement),
            kept_digests: Default::default(),
            prefix_slots: tokio::sync::Semaphore::new(crate::session::PREFIX_HASHES),
            objects,
        });
        let (sessions, conns) =
            descriptor_budget(opts.max_connections.max(1), opts.admission.max_startups)?;
        Ok(Server {
            shared,
            overflow: overflow_refusal(config).into(),
            conns: Arc::new(Semaphore::new(conns)),
            shed: Default::default(),
            sendfile: opts.sendfile,
            config,
            tcp,
            unix,
            serial,
            baud: opts.baud,
            slots: Arc::new(Semaphore::new(sessions)),
            per_ip: Arc::new(PerIp::new(opts.max_per_ip)),
            admission: Arc::new(Admission::new(opts.admission)),
            start: StdInstant::now(),
            tls: match &opts.tls {
                Some((cert, key)) => Some(tls_acceptor(cert, key)?),
                None => None,
            },
        })
    }

    /// The addresses actually bound (ports resolved), as users write them.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        out.extend(
            self.unix
                .iter()
                .map(|(_, p)| format!("unix:{}", p.display())),
        );
        out.extend(
            self.serial
                .iter()
                .map(|(_, p)| format!("serial:{}", p.display())),
        );
        out
    }

    /// The pipelining windows sessions get, for the start-up message.
    pub fn window_line(&self) -> String {
        let w = usize::from(self.ctx().config.conn.window);
        format!("window {}", w.min(WINDOW))
    }

    /// Serves until the task is dropped.
    pub async fn run(self) -> Result<(), FerryError> {
        let mut tasks = tokio::task::JoinSet::new();
        let base = self.ctx();
        let shared = self.shared.clone();
        tasks.spawn(async move {
            if let Some(o) = shared.objects.clone() {
                // Abandoned uploads in the store expire too, whichever
                // server began them.
                loop {
                    o.sweep().await;
                    tokio::time::sleep(o.sweep_interval()).await;
                }
            }
            // Abandoned part files expire (--partial-max-age); the walk is
            // file-system work, kept off the async workers.
            let every = shared.root.sweep_interval();
            loop {
                let s = shared.clone();
                let _ = tokio::task::spawn_blocking(move || s.root.sweep_partials()).await;
                tokio::time::sleep(every).await;
            }
        });
        for l in self.tcp {
            let ctx = base.clone();
            let name = l
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string());
            tasks.spawn(async move {
                let mut failures = AcceptFailures::new();
                loop {
                    match l.accept().await {
                        Ok((s, peer)) => {
                            failures.succeeded();
                            let Some(conn) = ctx.counted(&s).await else {
                                continue;
                            };
                            let _ = s.set_nodelay(true);
                            let ip_slot = PerIp::take(&ctx.per_ip, peer.ip());
                            ctx.spawn_tcp(s, peer, ip_slot, conn);
                        }
                        Err(e) => {
                            failures.failed(&e, &name).await;
                        }
                    }
                }
            });
        }
        for (l, path) in self.unix {
            let ctx = base.clone();
            tasks.spawn(async move {
                let mut failures = AcceptFailures::new();
                let peer = format!("unix:{}", path.display());
                loop {
                    match l.accept().await {
                        Ok((s, _)) => {
                            failures.succeeded();
                            let Some(conn) = ctx.counted(&s).await else {
                                continue;
                            };
                            let admit = ctx.admit(None, false, &peer);
                            let counted = Counted {
                                _conn: conn,
                                _ip: None,
                            };
                            ctx.spawn_with(s, peer.clone(), None, counted, admit, ctx.now());
                        }
                        Err(e) => {
                            failures.failed(&e, &peer).await;
                        }
                    }
                }
            });
        }
        for (port, path) in self.serial {
            let ctx = base.clone();
            let baud = self.baud;
            tasks.spawn(async move {
                let peer = format!("serial:{}", path.display());
                // A stream for each link the line brings up, one at a time:
                // the next comes once the last is gone (reset, down, or
                // its session over).
                let mut streams =
                    match crate::serial::spawn_link(port, baud, OnClose::Restart, peer.clone()) {
                        Ok(r) => r,
                        Err(e) => {
                            warn!(%peer, error = %e, "cannot serve the serial line");
                            return;
                        }
                    };
                while let Some(s) = streams.recv().await {
                    let Ok(conn) = ctx.conns.clone().acquire_owned().await else {
                        return;
                    };
                    let admit = ctx.admit(None, false, &peer);
                    let counted = Counted {
                        _conn: conn,
                        _ip: None,
                    };
                    ctx.spawn_with(s, peer.clone(), None, counted, admit, ctx.now());
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            shared: self.shared.clone(),
            config: self.config,
            slots: self.slots.clone(),
            per_ip: self.per_ip.clone(),
            admission: self.admission.clone(),
            start: self.start,
            tls: self.tls.clone(),
            conns: self.conns.clone(),
            overflow: self.overflow.clone(),
            shed: self.shed.clone(),
            sendfile: self.sendfile,
        }
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    config: ServerConfig,
    slots: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    admission: Arc<Admission>,
    start: StdInstant,
    tls: Option<TlsAcceptor>,
    /// Connections open (see [`descriptor_budget`]).
    conns: Arc<Semaphore>,
    /// What a connection past that count hears ([`overflow_refusal`]).
    overflow: Arc<[u8]>,
    /// Tells lingering connections to go (see [`Ctx::counted`]).
    shed: Arc<tokio::sync::Notify>,
    sendfile: SendFile,
}

/// A counted connection (see [`descriptor_budget`]); uncounted when its
/// task ends.
type Conn = tokio::sync::OwnedSemaphorePermit;

/// What a connection's task holds until it ends: its place among the
/// connections, and among its address's sessions (`--max-per-ip`).
struct Counted {
    _conn: Conn,
    _ip: Option<IpSlot>,
}

/// The bytes a connection past the descriptor budget hears before it is
/// closed: the server's hello and `Error(Busy)`, the version-2 form every
/// client reads (there is no room to wait for its hello).
fn overflow_refusal(config: ServerConfig) -> Vec<u8> {
    let core = ferry_core::Server::new_refused_retry(
        Instant::from_millis(0),
        config,
        vec![0; BUF],
        vec![0; BUF],
        Error::Busy,
        0,
    );
    match core {
        Ok(mut core) => {
            core.handle_timeout(Instant::from_millis(u64::MAX / 2));
            core.transmit_buf().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

impl Ctx {
    /// Counts an accepted connection, or, past the descriptor budget,
    /// answers it "server busy" without waiting and closes it.
    /// Counts an accepted connection. At the budget, connections that
    /// are only lingering after their last word (refused, evicted,
    /// closed) are told to go at once and the newcomer waits up to
    /// [`SHED_WAIT`] for their places: a flood's evicted connections must
    /// not take a real user's. Past that it is answered "server busy"
    /// without waiting and closed.
    async fn counted(&self, s: &impl std::os::fd::AsFd) -> Option<Conn> {
        if let Ok(c) = self.conns.clone().try_acquire_owned() {
            return Some(c);
        }
        self.shed.notify_waiters();
        match tokio::time::timeout(SHED_WAIT, self.conns.clone().acquire_owned()).await {
            Ok(Ok(c)) => Some(c),
            _ => {
                refuse_now(s, &self.overflow);
                None
            }
        }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// Decides at accept whether a connection from `ip` may try to log
    /// in: an address penalised for failed logins hears why, as does one
    /// over `--max-per-ip` or a server whose sessions are all taken
    /// ("server busy"); any other gets a startup ticket, evicting the
    /// oldest connection that has not logged in if the budget is full.
    fn admit(&self, ip: Option<IpAddr>, over_ip_limit: bool, peer: &str) -> Result<Startup, Error> {
        if let Some(left) = ip.and_then(|ip| self.admission.penalised(ip, StdInstant::now())) {
            let retry_secs = crate::admission::ceil_secs(left);
            warn!(%peer, retry_secs, "refused: too many failed logins from this address");
            return Err(Error::Penalised);
        }
        if over_ip_limit || self.slots.available_permits() == 0 {
            return Err(Error::Busy);
        }
        Ok(self.admission.start(ip).0)
    }

    /// A TCP connection: plain, or TLS first when the server has a
    /// certificate. The TLS handshake runs in the connection's own task
    /// under the login deadline, so a slow one holds up no one else; it
    /// counts as a startup, so it can be evicted like any connection that
    /// has not logged in.
    fn spawn_tcp(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        ip_slot: Option<IpSlot>,
        conn: Conn,
    ) {
        let ip = peer.ip();
        let peer = peer.to_string();
        let admit = self.admit(Some(ip), ip_slot.is_none(), &peer);
        let accepted = self.now();
        let Some(acceptor) = self.tls.clone() else {
            let counted = Counted {
                _conn: conn,
                _ip: ip_slot,
            };
            return self.spawn_with(stream, peer, Some(ip), counted, admit, accepted);
        };
        let ctx = self.clone();
        tokio::spawn(async move {
            let deadline = ctx.config.conn.login_timeout;
            let evicted = async {
                match &admit {
                    Ok(t) => t.evicted().await,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::time::timeout(deadline, acceptor.accept(stream)) => match r {
                    Ok(Ok(tls)) => {
                        if let Ok(t) = &admit {
                            t.advanced(Reached::Sent);
                        }
                        let counted = Counted { _conn: conn, _ip: ip_slot };
                        ctx.spawn_with(tls, peer, Some(ip), counted, admit, accepted)
                    }
                    Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => warn!(%peer, "TLS handshake timed out"),
                },
                _ = evicted => warn!(%peer, "evicted during the TLS handshake: a newer connection needed its place (--max-startups, --max-startups-per-ip)"),
            }
        });
    }

    /// Serves one accepted stream from `ip`, admitted with a startup
    /// ticket or refused with `Err` (the client only hears that error).
    /// The login deadline counts from `accepted`, a TLS handshake
    /// included. The session slot (`--max-connections`) is taken at login.
    fn spawn_with<S: Socket + Send + 'static>(
        &self,
        stream: S,
        peer: String,
        ip: Option<IpAddr>,
        counted: Counted,
        admit: Result<Startup, Error>,
        accepted: Instant,
    ) {
        let ctx = self.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let refused = admit.as_ref().err().copied();
            let t0 = StdInstant::now();
            let gate = Gate::new(
                ctx.admission.clone(),
                ip,
                peer.clone(),
                admit.ok(),
                ctx.slots.clone(),
            );
            let mut store = SessionStore::new(ctx.shared.clone(), peer.clone(), gate);
            let len = if refused.is_some() { BUF } else { BIG_BUF };
            let (inbuf, outbuf) = match buffer(len).and_then(|i| Ok((i, buffer(len)?))) {
                Ok(b) => b,
                Err(e) => {
                    warn!(%peer, error = %e, "connection dropped: no memory for its buffers");
                    return;
                }
            };
            if stream.plain().is_some() && ctx.sendfile.applies(ip) {
                store.from_file = FileSpans::new(&outbuf);
            }
            let why = match refused {
                Some(e) => {
                    // A version-3 client hears when to try again.
                    let retry = match (e, ip) {
                        (Error::Penalised, Some(ip)) => ctx
                            .admission
                            .penalised(ip, StdInstant::now())
                            .map_or(0, crate::admission::ceil_secs),
                        _ => 0,
                    };
                    let core = ferry_core::Server::new_refused_retry(
                        accepted,
                        ctx.config,
                        inbuf,
                        outbuf,
                        e,
                        u32::try_from(retry).unwrap_or(u32::MAX),
                    )
                    .map(Box::new);
                    set_up_and_drive(stream, core, store, &ctx).await
                }
                None => {
                    // Boxed at once: held inline, this task's future would
                    // carry a second copy (measured: 359 KiB a connection).
                    let core = ferry_core::Server::<_, WINDOW>::with_window(
                        accepted, ctx.config, inbuf, outbuf,
                    )
                    .map(Box::new);
                    set_up_and_drive(stream, core, store, &ctx).await
                }
            };
            let Some(why) = why else {
                return;
            };
            match refused {
                Some(Error::Busy) => warn!(%peer, "refused: server busy"),
                Some(_) => {}
                None => {
                    info!(%peer, reason = %why, secs = t0.elapsed().as_secs_f32(), "connection closed")
                }
            }
        });
    }
}

/// Answers a just-accepted (non-blocking) socket and lets it be dropped
/// without waiting: reads what already arrived (the client's hello:
/// closing with it unread would reset the connection and lose the
/// answer), then writes `bytes` as far as the socket takes them.
fn refuse_now(s: &impl std::os::fd::AsFd, bytes: &[u8]) {
    let mut sink = [0u8; 256];
    let _ = rustix::io::read(s, &mut sink);
    let _ = rustix::io::write(s, bytes);
}

/// The TLS side of `--tls-cert`/`--tls-key`: rustls with the ring
/// provider, TLS 1.2 and 1.3, no client certificates (clients log in with
/// SCRAM inside the tunnel).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, FerryError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        FerryError::Usage(format!("{}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FerryError::Other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| FerryError::Usage(format!("TLS certificate and key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Drives a connection whose core was just made; `None` (logged) if it
/// could not be made — BUF and BIG_BUF are above both minimums, so that
/// is a bug.
async fn set_up_and_drive<S: Socket, const W: usize>(
    stream: S,
    core: Result<Box<ferry_core::Server<Buf, W>>, ferry_core::SetupError>,
    store: SessionStore,
    ctx: &Ctx,
) -> Option<Error> {
    match core {
        Ok(core) => Some(drive(stream, core, store, ctx).await),
        Err(e) => {
            warn!(peer = %store.peer, error = %e, "connection not set up");
            None
        }
    }
}

/// Runs one connection to its end; returns why it ended. Never panics on
/// peer input: every failure is a typed close. The request sequencing is
/// the core's ([`Session::progress`]); this is the tokio glue: writes,
/// reads, deadlines, command output and eviction.
async fn drive<S: Socket, const W: usize>(
    mut stream: S,
    // Boxed, as the session below: at a window of 1024 they are ~100 and
    // ~295 KiB, too much for a task's future (its stack copies in a
    // debug build).
    mut core: Box<ferry_core::Server<Buf, W>>,
    mut store: SessionStore,
    ctx: &Ctx,
) -> Error {
    let mut session = Box::new(Session::<SessionStore, W>::new());
    // For hashing a resume's held prefix (and digest requests).
    // Mapped, as the buffers: most sessions never touch it.
    let Ok(mut scratch) = buffer(64 * 1024) else {
        warn!(peer = %store.peer, "connection dropped: no memory for its buffers");
        session.end(&mut store);
        return Error::Internal;
    };
    let mut spins = 0u32;
    let mut closed = None;
    loop {
        store.from_file.begin();
        let next = match session.progress(&mut core, &mut store, &mut scratch) {
            Ok(p) => p,
            Err(e) => {
                warn!(peer = %store.peer, error = %e, "session error");
                session.end(&mut store);
                return e;
            }
        };
        if let Progress::Closed(e) = next {
            closed = Some(e);
        }
        if store.take_login_failure() {
            tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
        }
        let wrote = !core.transmit_buf().is_empty();
        while !core.transmit_buf().is_empty() {
            if let Err(e) = transmit(&mut stream, &mut core, &mut store).await {
                if e == Error::Io {
                    warn!(peer = %store.peer, "a file shrank while it was sent; connection closed");
                }
                session.end(&mut store);
                return closed.unwrap_or(e);
            }
        }
        // TLS may hold accepted bytes back in its own buffer; push them
        // out before waiting for input (a no-op for plain sockets).
        if wrote && stream.flush().await.is_err() {
            session.end(&mut store);
            return closed.unwrap_or(Error::Closed);
        }
        if let Some(e) = closed {
            linger(&mut stream, &ctx.shed).await;
            return e;
        }
        if next == Progress::Transmit {
            spins += 1;
            if spins % 4 == 0 {
                // Let the runtime poll its I/O driver (a yielded task
                // resumes after it), so input that arrived meanwhile — a
                // cancel — shows as readable; then take it without
                // waiting. The sender stops within a chunk of reading it
                // (docs/PROTOCOL.md#cancelling-mid-body).
                tokio::task::yield_now().await;
                if !core.input_buf().is_empty() {
                    tokio::select! {
                        biased;
                        r = stream.read(core.input_buf()) => match r {
                            Ok(0) | Err(_) => core.handle_eof(ctx.now()),
                            Ok(n) => core.input_filled(ctx.now(), n),
                        },
                        _ = std::future::ready(()) => {}
                    }
                }
            }
            continue;
        }
        let deadline = core.poll_timeout().map(|d| {
            let now = ctx.now();
            tokio::time::Instant::now()
                + Duration::from_millis(d.as_millis().saturating_sub(now.as_millis()))
        });
        let wants_output = store.exec_wants_output();
        let (exec, gate) = (&mut store.exec, &store.gate);
        let mut read = 0;
        // A full input buffer (requests waiting behind a command that is
        // still running: docs/PROTOCOL.md#pipelining) is no end of
        // stream: a read into no room returns 0 at once.
        let room = !core.input_buf().is_empty();
        tokio::select! {
            r = stream.read(core.input_buf()), if room => match r {
                Ok(0) | Err(_) => core.handle_eof(ctx.now()),
                Ok(n) => {
                    read = n;
                    core.input_filled(ctx.now(), n)
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                core.handle_timeout(ctx.now());
            }
            msg = async { exec.as_mut()?.recv().await }, if wants_output => store.on_exec(msg),
            _ = gate.evicted() => {
                warn!(peer = %store.peer, "evicted before login: a newer connection needed its place (--max-startups, --max-startups-per-ip)");
                core.close_retry(Error::Busy, 0);
            }
        }
        if read > 0 {
            store.gate.saw_input();
        }
    }
}

/// Writes some of the core's queued output: bytes from its buffer, or
/// a get body's payload from its file ([`crate::sendfile`]). `Closed` when
/// the peer is gone, `Io` when a file ended before the payload framed
/// from it.
async fn transmit<S: Socket, const W: usize>(
    stream: &mut S,
    core: &mut ferry_core::Server<Buf, W>,
    store: &mut SessionStore,
) -> Result<(), Error> {
    let pending = core.transmit_buf();
    let n = match store.from_file.next(pending)? {
        // Ahead of a payload from a file: sent with it where the socket
        // allows.
        Next::Buffer(len) if len < pending.len() => {
            let ahead = match stream.plain() {
                Some(plain) => plain.send_ahead(&pending[..len]).await,
                None => None,
            };
            match ahead {
                Some(r) => r.unwrap_or(0),
                None => stream.write(&pending[..len]).await.unwrap_or(0),
            }
        }
        Next::Buffer(len) => stream.write(&pending[..len]).await.unwrap_or(0),
        Next::File(span) => {
            let Some(plain) = stream.plain() else {
                return Err(Error::Internal);
            };
            match plain.sendfile(span).await {
                Ok(0) => return Err(Error::Io),
                Ok(n) => {
                    store.from_file.sent(n);
                    n
                }
                Err(_) => 0,
            }
        }
    };
    if n == 0 {
        return Err(Error::Closed);
    }
    core.transmit_done(n);
    Ok(())
}

/// Closes gracefully: stop sending, then read and drop what the peer still
/// sends (for up to a second). Closing with unread input would make the
/// kernel answer with a reset, and the peer could lose our last error
/// frame ("server busy", "timed out") before reading it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, shed: &tokio::sync::Notify) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    // Cut short when the server needs the place (see `Ctx::counted`).
    tokio::select! {
        _ = drain => {}
        _ = shed.notified() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue: with descriptors exhausted, the accept loop retried at once:
    /// 10.7 CPU-s in 10 s and 5.1 M log lines. Now, over 5 s of `EMFILE`,
    /// it tries a handful of times and logs once or twice.
    #[tokio::test(start_paused = true)]
    async fn accept_failures_back_off_and_log_once_per_interval() {
        let mut f = AcceptFailures::new();
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let t0 = tokio::time::Instant::now();
        let (mut tries, mut lines) = (0, 0);
        while t0.elapsed() < Duration::from_secs(5) && tries < 10_000 {
            tries += 1;
            lines += usize::from(f.failed(&emfile, "test").await);
        }
        assert!(tries <= 16, "{tries} accepts in 5 s of EMFILE");
        assert!(lines <= 2, "{lines} log lines in 5 s");
        // A success starts the pauses short again.
        f.succeeded();
        let t1 = tokio::time::Instant::now();
        f.failed(&emfile, "test").await;
        assert_eq!(t1.elapsed(), AcceptFailures::FIRST);
        // Other errors (a connection reset before accept) do not pause.
        let reset = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        let t2 = tokio::time::Instant::now();
        f.failed(&reset, "test").await;
        assert_eq!(t2.elapsed(), Duration::ZERO);
    }
}

#[cfg(test)]
mod footprint {
    use super::*;

    /// Every connection gets the window-1024 state now (the slot is gone,
    /// see [`WINDOW`]), so what it costs is bounded here.
    #[test]
    fn window_state_per_connection() {
        let core = std::mem::size_of::<ferry_core::Server<Buf, WINDOW>>();
        let session = std::mem::size_of::<Session<SessionStore, WINDOW>>();
        println!("core {core} B, session {session} B");
        assert!(
            core + session <= 128 * 1024,
            "core {core} B, session {session} B"
        );
    }
}
