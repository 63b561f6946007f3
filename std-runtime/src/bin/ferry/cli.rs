//! The `ferry` command line: one definition per flag (clap derive) feeding
//! `--help`; each command maps its failure to a documented exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry::admission::Limits;
use ferry::users::{name_problem, Users};
use ferry::{
    exit, Client, ConnectOptions, ExecLimits, FerryError, FerryUrl, ListenAddr, ServeOptions,
    Server, TransferOptions,
};
use ferry_core::digest::{Algorithm, Digests};
use ferry_core::{Overwrite, Verifier};
use tracing::warn;

use crate::output::{exec_and_print, format_entry, format_stat, print_long};

const AFTER_HELP: &str = "\
Examples:
  ferry passwd --users users.txt alice            # add a user (prompts, or FERRY_PASSWORD)
  ferry serve ./files --users users.txt --listen 127.0.0.1:7070 --listen unix:/tmp/ferry.sock
  ferry serve ./public --anonymous --read-only
  ferry serve ./files --users users.txt --listen serial:/dev/ttyUSB0 --baud 921600
  ferry put report.pdf ferry://alice@127.0.0.1/docs/
  ferry get ferry://alice@127.0.0.1/docs/report.pdf ./report.pdf --resume
  ferry get -r ferry://127.0.0.1/photos ./photos
  ferry ls ferry://[::1]:7070/
  ferry put file.bin ferry://device/dir/ --serial /dev/ttyUSB0 --baud 921600
  ferry exec ferry://alice@127.0.0.1/ -- ls -l
  ferry shell ferry://alice@127.0.0.1/ < script.txt

Exit codes:
  0  ok
  1  exec: the remote command exited with a non-zero status
  2  usage error
  3  login failed
  4  remote file not found
  5  checksum mismatch
  6  refused (exists, permission, read-only, outside root, no space)
  7  connection or protocol error

The password comes from FERRY_PASSWORD, or a hidden prompt on a terminal.";

/// Ferry: verified file transfer and remote commands over any byte stream.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    Fail,
    KeepBoth,
    Replace,
}

impl From<Policy> for Overwrite {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Fail => Overwrite::Fail,
            Policy::KeepBoth => Overwrite::KeepBoth,
            Policy::Replace => Overwrite::Replace,
        }
    }
}

/// `serve --sendfile`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SendFileArg {
    Remote,
    Always,
    Never,
}

impl From<SendFileArg> for ferry::SendFile {
    fn from(a: SendFileArg) -> Self {
        match a {
            SendFileArg::Remote => ferry::SendFile::Remote,
            SendFileArg::Always => ferry::SendFile::Always,
            SendFileArg::Never => ferry::SendFile::Never,
        }
    }
}

/// `mv --overwrite`: a rename has no keep-both.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum MvPolicy {
    Fail,
    Replace,
}

/// A body digest, by the name `md5sum`, `sha256sum` and `b3sum` users know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DigestName {
    Md5,
    Sha256,
    Blake3,
}

impl From<DigestName> for Algorithm {
    fn from(d: DigestName) -> Self {
        match d {
            DigestName::Md5 => Algorithm::Md5,
            DigestName::Sha256 => Algorithm::Sha256,
            DigestName::Blake3 => Algorithm::Blake3,
        }
    }
}

/// `--digest ALG` on get, put, shell and stat: a digest to pin, or `auto`
/// for the best both sides support. It always takes a value (`--digest md5`
/// or `--digest=md5`), the same on every command: an optional value would
/// swallow the URL after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PinName {
    Md5,
    Sha256,
    Blake3,
    /// Negotiate: BLAKE3, SHA-256, then MD5, the best the server has.
    Auto,
}

impl PinName {
    fn algorithm(self) -> Option<DigestName> {
        match self {
            PinName::Md5 => Some(DigestName::Md5),
            PinName::Sha256 => Some(DigestName::Sha256),
            PinName::Blake3 => Some(DigestName::Blake3),
            PinName::Auto => None,
        }
    }
}

/// How to reach the server: the flags every remote command takes, turned
/// into the library's [`ConnectOptions`] by [`ConnectArgs::open`].
#[derive(Debug, Args)]
struct ConnectArgs {
    /// Connect through this Unix socket instead of HOST:PORT.
    #[arg(long, value_name = "PATH", conflicts_with = "serial")]
    socket: Option<PathBuf>,
    /// Connect through this serial device (e.g. /dev/ttyUSB0) instead of
    /// HOST:PORT; the URL still names the path.
    #[arg(long, value_name = "DEVICE")]
    serial: Option<PathBuf>,
    /// The serial line's rate in bits per second (8N1), as the server's.
    #[arg(long, value_name = "N", default_value_t = 115_200, requires = "serial",
          value_parser = clap::value_parser!(u32).range(300..))]
    baud: u32,
    /// Give up when the server has been silent this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
    /// For ferrys:// URLs, also trust the CA certificates in FILE (PEM),
    /// e.g. a self-signed one.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Send up to N gets or puts before their answers (1–1024; the
    /// server's window can lower it; 1: one file at a time).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    window: u16,
}

/// `--digest` for the commands where it only pins (stat has its own).
#[derive(Debug, Args)]
struct Pin {
    /// Check bodies with this digest only; fail if the server lacks it
    /// (default, or `auto`: the best both sides support — BLAKE3, SHA-256,
    /// then MD5).
    #[arg(long, value_enum, value_name = "ALG")]
    digest: Option<PinName>,
}

impl ConnectArgs {
    fn open(&self, url: &FerryUrl, digest: Option<PinName>) -> Result<Client, FerryError> {
        let digest = digest.and_then(PinName::algorithm);
        open(
            url,
            &ConnectOptions {
                socket: self.socket.as_deref(),
                serial: self.serial.as_deref(),
                baud: self.baud,
                digest: digest.map(Into::into),
                timeout: Duration::from_secs(self.timeout.max(1)),
                ca: self.ca.as_deref(),
                window: self.window,
            },
        )
    }
}

/// The flags of `get` and `put`, turned into [`TransferOptions`].
#[derive(Debug, Args)]
struct TransferArgs {
    /// Copy directories recursively.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Continue a partial transfer (verified end to end).
    #[arg(long)]
    resume: bool,
    /// When the target exists.
    #[arg(long, value_enum, default_value = "fail")]
    overwrite: Policy,
    /// No progress bar; only errors.
    #[arg(short, long)]
    quiet: bool,
}

impl TransferArgs {
    fn options(&self) -> TransferOptions {
        TransferOptions {
            resume: self.resume,
            overwrite: self.overwrite.into(),
            recursive: self.recursive,
            quiet: self.quiet,
            stop_at_first_error: false,
        }
    }
}

/// Caps on one command (`ferry serve`): [`ExecLimits`].
#[derive(Debug, Args)]
struct ExecLimitArgs {
    /// Stop a command whose processes and threads together pass N at
    /// once (counted every 20 ms; the kernel's RLIMIT_NPROC does not
    /// hold for root).
    #[arg(long, value_name = "N", default_value_t = ExecLimits::default().max_procs,
          value_parser = clap::value_parser!(u64).range(1..))]
    exec_max_procs: u64,
    /// Stop a command whose processes together hold more than BYTES of
    /// memory; each process is also limited to BYTES (RLIMIT_DATA).
    #[arg(long, value_name = "BYTES", default_value_t = ExecLimits::default().max_memory,
          value_parser = clap::value_parser!(u64).range(1..))]
    exec_max_memory: u64,
    /// Stop a command whose processes together used more than SECS of
    /// CPU time (each process: RLIMIT_CPU of SECS + 1).
    #[arg(long, value_name = "SECS", default_value_t = ExecLimits::default().max_cpu.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    exec_max_cpu: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve a directory.
    Serve {
        /// Directory to serve (default: the current one).
        root: Option<PathBuf>,
        /// HOST:PORT, [::1]:PORT, unix:PATH or serial:DEVICE (one
        /// session at a time on the line); repeat for several.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        /// The rate of serial:DEVICE lines in bits per second (8N1).
        #[arg(long, value_name = "N", default_value_t = 115_200,
              value_parser = clap::value_parser!(u32).range(300..))]
        baud: u32,
        /// Users file written by `ferry passwd`; with --anonymous too, both
        /// its users and anonymous clients may log in.
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
        /// Allow logins without a password (with --users: as well as theirs).
        #[arg(long)]
        anonymous: bool,
        /// Refuse every write.
        #[arg(long)]
        read_only: bool,
        /// Delete part files of abandoned uploads (kept for --resume) once
        /// they are SECS old; expired ones also go first when space runs
        /// short.
        #[arg(long, value_name = "SECS", default_value_t = 24 * 3600)]
        partial_max_age: u64,
        /// Confine each user to ROOT/USER (made on first login, mode
        /// 0700; anonymous sessions to ROOT/anonymous). Without it all
        /// users share the root and can read each other's files.
        #[arg(long)]
        user_dirs: bool,
        /// Run `exec` requests (in the session's directory, with a time limit).
        #[arg(long)]
        allow_exec: bool,
        /// Only these programs, run directly without a shell (implies
        /// --allow-exec): metacharacters are plain arguments.
        #[arg(long, value_name = "CMD,...", value_delimiter = ',')]
        exec_allow: Vec<String>,
        /// Most simultaneous sessions from one IP address (0: no limit).
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_per_ip: usize,
        /// Body digests to accept (the client's first choice among them
        /// wins). MD5 is implied: the protocol's mandatory digest is always
        /// accepted, listed or not (docs/PROTOCOL.md#digests).
        #[arg(
            long,
            value_enum,
            value_name = "ALG,...",
            value_delimiter = ',',
            default_value = "blake3,sha256,md5"
        )]
        digests: Vec<DigestName>,
        /// Most simultaneous logged-in sessions; more get "server busy".
        #[arg(long, value_name = "N", default_value_t = 256)]
        max_connections: usize,
        /// Most connections that have not logged in yet (a budget apart
        /// from --max-connections); when full, a new connection evicts the
        /// oldest of them instead of being refused.
        #[arg(long, value_name = "N", default_value_t = 128)]
        max_startups: usize,
        /// Of those, most from one address (an IPv6 /64); past it a new
        /// one evicts that address's oldest (0: no per-address cap).
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_startups_per_ip: usize,
        /// Gets or puts a session may have in flight at once (1–1024),
        /// the same for every session. A session keeps a few files open
        /// however many it has in flight.
        #[arg(long, value_name = "N", default_value_t = 1024,
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        window: u16,
        /// Send the body of a get whose digest the server kept straight
        /// from the file (sendfile) to peers on other machines (`remote`),
        /// to every plain TCP and Unix-socket peer (`always`), or to none.
        /// Not `always` by default: on one machine the client pays more
        /// than the server saves (bench/notes.md).
        #[arg(long, value_enum, value_name = "WHO", default_value = "remote")]
        sendfile: SendFileArg,
        /// Seconds of penalty each failed login adds to its address
        /// (0: no penalties).
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        login_penalty: u64,
        /// An address whose penalty is above SECS is refused ("too many
        /// failed logins") until the penalty has run out.
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        login_penalty_min: u64,
        /// The most penalty an address can collect.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        login_penalty_max: u64,
        /// Close sessions idle this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        idle_timeout: u64,
        /// Serve TCP over TLS with this certificate chain (PEM); clients
        /// use ferrys:// URLs.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Close connections that have not logged in after SECS (the hello
        /// included): slow or silent clients cannot hold a session.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        login_timeout: u64,
        /// Kill a command after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        exec_timeout: u64,
        /// Stop a command that prints more than BYTES (stdout and stderr
        /// together).
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
        exec_max_output: u64,
        /// --exec-max-procs, --exec-max-memory, --exec-max-cpu (boxed:
        /// `Cmd`'s variants stay near one size).
        #[command(flatten)]
        exec_limits: Box<ExecLimitArgs>,
        /// Run commands without confining them to the root (Landlock):
        /// they can then read and write whatever the server can. Needed
        /// where the kernel lacks Landlock; refused with --read-only.
        #[arg(long)]
        exec_unconfined: bool,
        /// Serve an S3-compatible object store instead of a directory:
        /// s3://BUCKET[/PREFIX], configured by AWS_ENDPOINT_URL,
        /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
        /// AWS_ALLOW_HTTP. Several servers may share one store.
        #[arg(long, value_name = "URL", conflicts_with = "root")]
        store: Option<String>,
    },
    /// Add or update a user's verifier in a users file.
    Passwd {
        /// The users file.
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// The user name.
        user: String,
    },
    /// Download: ferry get URL [LOCAL], or ferry get URL... DIR (several
    /// files of one server into a directory, over one connection).
    Get {
        /// ferry://[USER@]HOST[:PORT]/PATH
        url: String,
        /// More URLs of the same server, then the local file or directory
        /// (default: the current directory).
        more: Vec<String>,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        pin: Pin,
    },
    /// Upload: ferry put LOCAL... URL (several files go into the remote
    /// directory URL, over one connection).
    Put {
        /// Local files or directories.
        #[arg(required = true, num_args = 1..)]
        local: Vec<PathBuf>,
        /// ferry://[USER@]HOST[:PORT]/PATH (a directory keeps the name).
        url: String,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        pin: Pin,
    },
    /// List a remote directory (names and byte sizes).
    Ls {
        /// ferry://…/DIR
        url: String,
        /// More directories of the same server: listed in one pipelined
        /// batch, each under a `DIR:` heading, as `ls` does.
        more: Vec<String>,
        /// Long format: kind and permissions, size, modification time
        /// (UTC), name; a file named is shown as itself. Every name's
        /// stat and listing go in one batch.
        #[arg(short = 'l', long = "long")]
        long: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe a remote path; with --digest ALG, print the file's digest
    /// instead (as `md5sum`/`sha256sum`/`b3sum` would: HEX  PATH).
    Stat {
        /// ferry://…/PATH
        url: String,
        /// Print the file's digest with ALG (`auto`: the negotiated one).
        #[arg(long, value_enum, value_name = "ALG")]
        digest: Option<PinName>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Remove a remote file or empty directory.
    Rm {
        /// ferry://…/PATH
        url: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a remote directory.
    Mkdir {
        /// ferry://…/DIR
        url: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Rename a remote path.
    Mv {
        /// ferry://…/OLD
        url: String,
        /// New path on the same server.
        newpath: String,
        /// When NEWPATH exists: fail (default) or replace it atomically.
        #[arg(long, value_enum, default_value = "fail")]
        overwrite: MvPolicy,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Run a command on the server: ferry exec URL -- CMD [ARGS...].
    Exec {
        /// ferry://…/DIR (the command runs there)
        url: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Echo text through the server.
    Echo {
        /// ferry://…/
        url: String,
        /// Text to echo.
        text: String,
        /// Upper-case it.
        #[arg(long)]
        upper: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Interactive shell (batch mode when stdin is not a terminal).
    Shell {
        /// ferry://…/DIR
        url: String,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        pin: Pin,
    },
}

/// A server holds a descriptor per connection: lift the soft limit on open
/// files to the hard one, as most servers do, so `--max-connections` is
/// not capped by a shell's default of 1 024.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}

/// Reads the password: FERRY_PASSWORD, else a hidden prompt on a terminal.
pub fn password(user: &str) -> Result<String, FerryError> {
    if let Ok(p) = std::env::var("FERRY_PASSWORD") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("password for {user}: "))
            .map_err(|e| FerryError::Other(format!("cannot read password: {e}")));
    }
    Err(FerryError::Usage(
        "no password: set FERRY_PASSWORD or run on a terminal".into(),
    ))
}

/// Connects and logs in as the URL says.
pub fn open(url: &FerryUrl, opts: &ConnectOptions) -> Result<Client, FerryError> {
    let mut c = Client::connect_with(url, opts)?;
    match &url.user {
        Some(u) => {
            let pw = password(u)?;
            c.login(Some(u), Some(&pw))?;
        }
        None => c.login(None, None)?,
    }
    Ok(c)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for people: logs piped to a file or a script stay
        // plain `key=value` text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    init_logging(cli.verbose);
    let subject = Subject::of(&cli.cmd);
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: {}", subject.report(&e));
            e.exit_code()
        }
    }
}

/// What an error message names: the command, and the URL as the user
/// wrote it (docs: README "Exit codes").
struct Subject {
    command: &'static str,
    /// The URL argument, verbatim.
    url: Option<String>,
    /// Named when nothing else is: a user name for `passwd`.
    other: Option<String>,
}

impl Subject {
    fn of(cmd: &Cmd) -> Subject {
        let (command, url, other) = match cmd {
            Cmd::Serve { .. } => ("serve", None, None),
            Cmd::Passwd { user, .. } => ("passwd", None, Some(format!("{user:?}"))),
            Cmd::Get { url, .. } => ("get", Some(url), None),
            Cmd::Put { url, .. } => ("put", Some(url), None),
            Cmd::Ls { url, .. } => ("ls", Some(url), None),
            Cmd::Stat { url, .. } => ("stat", Some(url), None),
            Cmd::Rm { url, .. } => ("rm", Some(url), None),
            Cmd::Mkdir { url, .. } => ("mkdir", Some(url), None),
            Cmd::Mv { url, .. } => ("mv", Some(url), None),
            Cmd::Exec { url, .. } => ("exec", Some(url), None),
            Cmd::Echo { url, .. } => ("echo", Some(url), None),
            Cmd::Shell { url, .. } => ("shell", Some(url), None),
        };
        Subject {
            command,
            url: url.cloned(),
            other,
        }
    }

    /// `COMMAND WHAT: CAUSE`, WHAT being the path that failed: a local
    /// file the local side caused it, else the remote path in the form of
    /// the user's URL (for `mv`, `URL to NEWPATH` when NEWPATH is the cause).
    fn report(&self, e: &FerryError) -> String {
        let command = self.command;
        let url = self.url.as_deref().unwrap_or_default();
        match e {
            FerryError::At {
                path,
                remote: true,
                source,
            } => {
                let named = ferry::url::name_remote(url, path);
                if command == "mv" {
                    format!("mv {url} to {named}: {source}")
                } else {
                    format!("{command} {named}: {source}")
                }
            }
            FerryError::At { remote: false, .. } | FerryError::Local { .. } => {
                format!("{command} {e}")
            }
            e => match self.url.as_ref().or(self.other.as_ref()) {
                Some(what) => format!("{command} {what}: {e}"),
                None => format!("{command}: {e}"),
            },
        }
    }
}

/// Whether a command-line argument is a Ferry URL (not a local path).
fn is_url(arg: &str) -> bool {
    arg.starts_with("ferry://") || arg.starts_with("ferrys://")
}

/// `other` parsed, if it names the same server and login as `first` (the
/// files of one command share one connection).
fn same_server(first: &FerryUrl, other: &str) -> Result<FerryUrl, FerryError> {
    let u = FerryUrl::parse(other)?;
    let key = |u: &FerryUrl| (u.tls, u.user.clone(), u.host.clone(), u.port);
    if key(&u) != key(first) {
        return Err(FerryError::Usage(format!(
            "{other}: every URL of one command must name the same server and user"
        )));
    }
    Ok(u)
}

fn run(cmd: Cmd) -> Result<i32, FerryError> {
    match cmd {
        Cmd::Serve {
            root,
            listen,
            users,
            anonymous,
            read_only,
            partial_max_age,
            user_dirs,
            allow_exec,
            exec_allow,
            max_per_ip,
            max_connections,
            max_startups,
            max_startups_per_ip,
            window,
            sendfile,
            login_penalty,
            login_penalty_min,
            login_penalty_max,
            idle_timeout,
            login_timeout,
            exec_timeout,
            exec_max_output,
            exec_limits,
            exec_unconfined,
            digests,
            tls_cert,
            tls_key,
            store,
            baud,
        } => {
            raise_nofile();
            // MD5 need not be listed: it is implied, after the listed ones.
            let digests: Vec<Algorithm> = digests.into_iter().map(Into::into).collect();
            let digests = Digests::new(&digests)
                .map_err(|_| FerryError::Usage("--digests: each digest at most once".into()))?;
            let listen = if listen.is_empty() {
                vec!["127.0.0.1:7070".to_string()]
            } else {
                listen
            };
            let listen = listen
                .iter()
                .map(|a| ListenAddr::parse(a))
                .collect::<Result<Vec<_>, _>>()?;
            let users = match users {
                Some(p) => {
                    let u = Users::load(&p)?;
                    if u.is_empty() {
                        return Err(FerryError::Usage(format!(
                            "{} has no users (add one with `ferry passwd`)",
                            p.display()
                        )));
                    }
                    Some(u)
                }
                None => None,
            };
            let opts = ServeOptions {
                root: root.unwrap_or_else(|| ".".into()),
                listen,
                users,
                anonymous,
                read_only,
                partial_max_age: Duration::from_secs(partial_max_age.max(1)),
                user_dirs,
                allow_exec: allow_exec || !exec_allow.is_empty(),
                exec_allow,
                max_per_ip,
                max_connections,
                admission: Limits {
                    max_startups: max_startups.max(1),
                    max_startups_per_ip,
                    penalty: Duration::from_secs(login_penalty),
                    penalty_min: Duration::from_secs(login_penalty_min),
                    penalty_max: Duration::from_secs(login_penalty_max),
                },
                idle_timeout: Duration::from_secs(idle_timeout.max(1)),
                login_timeout: Duration::from_secs(login_timeout.max(1)),
                tls: tls_cert.zip(tls_key),
                exec_timeout: Duration::from_secs(exec_timeout.max(1)),
                exec_max_output,
                exec_limits: ExecLimits {
                    max_procs: exec_limits.exec_max_procs,
                    max_memory: exec_limits.exec_max_memory,
                    max_cpu: Duration::from_secs(exec_limits.exec_max_cpu),
                },
                exec_unconfined,
                digests,
                store,
                window,
                baud,
                sendfile: sendfile.into(),
            };
            let rt =
                tokio::runtime::Runtime::new().map_err(|e| FerryError::Other(e.to_string()))?;
            rt.block_on(async {
                let server = Server::bind(opts).await?;
                // The window first: scripts read up to "listening on" and
                // may close the pipe then (a later line would hit EPIPE).
                let _ = writeln!(std::io::stdout(), "ferry: {}", server.window_line());
                for a in server.addresses() {
                    println!("ferry: listening on {a}");
                }
                let _ = std::io::stdout().flush();
                // SIGTERM (a service manager's stop) ends the server as
                // Ctrl-C does: the runtime shuts down, and running
                // commands are killed with their process groups.
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .map_err(|e| FerryError::Other(format!("SIGTERM handler: {e}")))?;
                tokio::select! {
                    r = server.run() => r,
                    _ = tokio::signal::ctrl_c() => Ok(()),
                    _ = term.recv() => Ok(()),
                }
            })?;
            Ok(exit::OK)
        }
        Cmd::Passwd { users, user } => {
            if let Some(why) = name_problem(&user) {
                return Err(FerryError::Usage(format!(
                    "the user name {why}: the users file could not hold it"
                )));
            }
            let pw = password(&user)?;
            if pw.is_empty() {
                return Err(FerryError::Usage("empty password".into()));
            }
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| FerryError::Other(e.to_string()))?;
            let v = Verifier::new(&pw, &salt, ferry_core::auth::DEFAULT_ITERATIONS)?;
            let mut all = Users::load(&users)?;
            all.set(&user, v);
            all.save(&users)?;
            eprintln!("ferry: verifier for {user} written to {}", users.display());
            Ok(exit::OK)
        }
        Cmd::Get {
            url,
            mut more,
            transfer,
            connect,
            pin,
        } => {
            // The last argument is the local side unless it is a URL.
            let local = match more.last() {
                Some(l) if !is_url(l) => more.pop().map(PathBuf::from),
                _ => None,
            };
            let url = FerryUrl::parse(&url)?;
            let others = more
                .iter()
                .map(|u| same_server(&url, u))
                .collect::<Result<Vec<_>, _>>()?;
            let local = local.unwrap_or_else(|| ".".into());
            if !others.is_empty() && !local.is_dir() {
                return Err(FerryError::Usage(format!(
                    "{}: several files go into a directory, and this is none",
                    local.display()
                )));
            }
            let mut c = connect.open(&url, pin.digest)?;
            let opts = transfer.options();
            let paths: Vec<&String> = std::iter::once(&url.path)
                .chain(others.iter().map(|u| &u.path))
                .collect();
            if paths.len() == 1 || opts.recursive {
                // One connection for all; stops at the first failure.
                for path in paths {
                    c.get_file(path, &local, &opts)?;
                }
            } else {
                // Several files into one directory: one pipelined batch.
                let items: Vec<_> = paths
                    .iter()
                    .map(|p| ferry::GetItem {
                        remote: p.to_string(),
                        local: local.join(p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)),
                        size: 0,
                    })
                    .collect();
                c.get_files(&items, &opts)?;
            }
            Ok(exit::OK)
        }
        Cmd::Put {
            local,
            url,
            transfer,
            connect,
            pin,
        } => {
            let url = FerryUrl::parse(&url)?;
            // Several files go into the remote directory, as with `cp`.
            let remote = match local.len() {
                1 => url.path.clone(),
                _ if url.path.ends_with('/') => url.path.clone(),
                _ => format!("{}/", url.path),
            };
            let mut c = connect.open(&url, pin.digest)?;
            let opts = transfer.options();
            let keep_both = !transfer.quiet && matches!(transfer.overwrite, Policy::KeepBoth);
            // Several plain files into one directory: one pipelined batch
            // (directories and a single file go one by one).
            let files: Option<Vec<_>> = (local.len() > 1)
                .then(|| {
                    local
                        .iter()
                        .map(|l| {
                            let md = std::fs::metadata(l).ok().filter(|m| m.is_file())?;
                            let name = l.file_name()?.to_string_lossy().into_owned();
                            Some(ferry::PutItem {
                                local: l.clone(),
                                remote: format!("{remote}{name}"),
                                size: md.len(),
                            })
                        })
                        .collect()
                })
                .flatten();
            match files {
                Some(items) => {
                    for stored in c.put_files(&items, &opts)? {
                        if keep_both {
                            eprintln!("ferry: stored as {stored}");
                        }
                    }
                }
                None => {
                    // One connection for all; stops at the first failure.
                    for l in &local {
                        let stored = c.put_file(l, &remote, &opts)?;
                        if keep_both {
                            eprintln!("ferry: stored as {stored}");
                        }
                    }
                }
            }
            Ok(exit::OK)
        }
        Cmd::Ls {
            url,
            more,
            long,
            connect,
        } => {
            let url = FerryUrl::parse(&url)?;
            let mut c = connect.open(&url, None)?;
            if long {
                let mut paths = vec![url.path.clone()];
                for m in &more {
                    paths.push(same_server(&url, m)?.path);
                }
                print_long(&mut c, &paths)?;
                return Ok(exit::OK);
            }
            let mut out = std::io::stdout().lock();
            if more.is_empty() {
                for e in c.list(&url.path)? {
                    let _ = writeln!(out, "{}", format_entry(&e));
                }
                return Ok(exit::OK);
            }
            // Several directories: one batch, one turn (issue 28).
            let mut paths = vec![url.path.clone()];
            for m in &more {
                paths.push(same_server(&url, m)?.path);
            }
            let mut first_error = None;
            for (i, (path, listed)) in paths.iter().zip(c.list_batch(&paths)).enumerate() {
                match listed {
                    Ok(entries) => {
                        let _ = writeln!(out, "{}{path}:", if i > 0 { "\n" } else { "" });
                        for e in entries {
                            let _ = writeln!(out, "{}", format_entry(&e));
                        }
                    }
                    // The first failure is reported as the command's (and
                    // decides the exit code); the others here.
                    Err(e) => match first_error {
                        None => first_error = Some(FerryError::remote(path, e)),
                        Some(_) => eprintln!("ferry: ls {}", FerryError::remote(path, e)),
                    },
                }
            }
            first_error.map_or(Ok(exit::OK), Err)
        }
        Cmd::Stat {
            url,
            digest,
            connect,
        } => {
            let url = FerryUrl::parse(&url)?;
            let mut c = connect.open(&url, digest)?;
            if digest.is_some() {
                println!("{}  {}", c.digest(&url.path)?, url.path);
            } else {
                println!("{}", format_stat(&c.stat(&url.path)?));
            }
            Ok(exit::OK)
        }
        Cmd::Rm { url, connect } => {
            let url = FerryUrl::parse(&url)?;
            connect.open(&url, None)?.remove(&url.path)?;
            Ok(exit::OK)
        }
        Cmd::Mkdir { url, connect } => {
            let url = FerryUrl::parse(&url)?;
            connect.open(&url, None)?.mkdir(&url.path)?;
            Ok(exit::OK)
        }
        Cmd::Mv {
            url,
            newpath,
            overwrite,
            connect,
        } => {
            let url = FerryUrl::parse(&url)?;
            let mut c = connect.open(&url, None)?;
            // A refusal may be the source's or the new path's: "not found"
            // is the source's if it is missing (the message names the URL);
            // otherwise the new path is named too.
            let replace = matches!(overwrite, MvPolicy::Replace);
            match c.rename(&url.path, &newpath, replace) {
                Ok(()) => Ok(exit::OK),
                Err(e) => match e.protocol() {
                    None => Err(e),
                    Some(ferry_core::Error::NotFound) if c.stat(&url.path).is_err() => Err(e),
                    Some(_) => Err(FerryError::remote(&newpath, e)),
                },
            }
        }
        Cmd::Exec {
            url: raw,
            command,
            connect,
        } => {
            let url = FerryUrl::parse(&raw)?;
            let mut c = connect.open(&url, None)?;
            if url.path != "/" {
                c.cd(&url.path)?;
            }
            exec_and_print(&mut c, &command.join(" "), &raw)
        }
        Cmd::Echo {
            url,
            text,
            upper,
            connect,
        } => {
            let url = FerryUrl::parse(&url)?;
            println!("{}", connect.open(&url, None)?.echo(&text, upper)?);
            Ok(exit::OK)
        }
        Cmd::Shell { url, connect, pin } => {
            let url = FerryUrl::parse(&url)?;
            let mut c = connect.open(&url, pin.digest)?;
            if url.path != "/" {
                c.cd(&url.path)?;
            }
            crate::shell::run(&mut c)
        }
    }
}
