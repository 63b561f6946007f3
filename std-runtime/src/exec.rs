//! Running one `exec` command on the server: the child is confined to the
//! root by Landlock, gets a minimal environment, runs in a session of its
//! own that nothing it starts can leave, and everything it started is
//! killed when it ends, times out, prints too much, starts too many
//! processes, uses too much memory or CPU time, or its client goes.
//! What a command can touch is listed in docs/SECURITY.md ("Commands").

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// Output of a running command, as it arrives from its pipes.
pub enum ExecMsg {
    /// Bytes from stdout or stderr.
    Out(Stream, Vec<u8>),
    /// The command ended with this status.
    Exit(i32),
}

/// Which commands a server runs and what each may use: set once from
/// `ferry serve`'s options.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// If not empty: only these programs, started directly (no shell).
    pub allow: Vec<String>,
    /// Time limit for one command.
    pub timeout: Duration,
    /// Most output (stdout and stderr together) one command may send.
    pub max_output: u64,
    /// Processes, memory and CPU time of one command.
    pub limits: ExecLimits,
}

/// The search path every command gets (the server's own is not passed on).
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Time a command's processes get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(1);

/// How often a command's process group is counted and measured against
/// its [`ExecLimits`]: what forks within one interval can overshoot the
/// process cap, so it is short. One scan of `/proc` took 2.4 ms with ~80
/// processes on this machine, debug build
/// (`tests::a_scan_finds_this_process_group` prints it): each running
/// command costs the server that every interval.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// How much commands yield the CPU: nice +10 for each process, and for the
/// session's scheduler autogroup where the kernel has them.
const NICE: i32 = 10;

/// Caps on one command, so that it cannot starve the server and other
/// sessions (`--exec-max-procs`, `--exec-max-memory`, `--exec-max-cpu`).
/// The group's totals are watched by the server ([`WATCH_INTERVAL`]); each
/// process also gets kernel limits as a second line ([`enter_child`]).
/// RLIMIT_NPROC is not used: the kernel never enforces it for root, and it
/// counts every task of the uid, the server's threads included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Most tasks (processes, their threads and unreaped zombies) in the
    /// command's process group at once.
    pub max_procs: u64,
    /// Most memory of the group together, in bytes: resident anonymous and
    /// shared-memory pages (not the shared libraries' file pages). Also
    /// each process's RLIMIT_DATA.
    pub max_memory: u64,
    /// Most CPU time of the group together (what its reaped children used
    /// included). Each process's RLIMIT_CPU is one second more, so the
    /// watcher, which says why, normally acts first.
    pub max_cpu: Duration,
}

impl Default for ExecLimits {
    /// 64 tasks, 1 GiB, 30 s of CPU: room for a pipeline or a build step,
    /// not for one command to take a small server's memory or both cores.
    fn default() -> Self {
        ExecLimits {
            max_procs: 64,
            max_memory: 1 << 30,
            max_cpu: Duration::from_secs(30),
        }
    }
}

/// Which of a command's [`ExecLimits`] it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breach {
    Procs,
    Memory,
    Cpu,
}

impl ExecLimits {
    /// The first limit `usage` is over, if any.
    fn breach(&self, usage: &Usage) -> Option<Breach> {
        if usage.tasks > self.max_procs {
            Some(Breach::Procs)
        } else if usage.memory > self.max_memory {
            Some(Breach::Memory)
        } else if usage.cpu > self.max_cpu {
            Some(Breach::Cpu)
        } else {
            None
        }
    }

    /// What the client is told when the command is stopped for `breach`.
    fn message(&self, breach: Breach) -> String {
        match breach {
            Breach::Procs => format!("command stopped: more than {} processes", self.max_procs),
            Breach::Memory => format!(
                "command stopped: memory over the limit of {} bytes",
                self.max_memory
            ),
            Breach::Cpu => format!(
                "command stopped: CPU time over the limit of {} s",
                self.max_cpu.as_secs()
            ),
        }
    }
}

/// What a process group holds at one moment.
#[derive(Debug, Default, PartialEq, Eq)]
struct Usage {
    /// Tasks: each process's threads, zombies as one.
    tasks: u64,
    /// Resident anonymous and shared-memory bytes.
    memory: u64,
    /// CPU time of the live processes and of the children they reaped.
    cpu: Duration,
}

/// System directories a program needs to start and run (its binary, the
/// dynamic loader, libraries, locales): read and execute, never write.
/// Symlinks among them (`/bin` → `usr/bin`) resolve to the same tree.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The only files of `/etc` a command may read: what the dynamic loader,
/// the time zone and name-service setup read (found with `strace` on
/// `sh`, `ls -l`, `cat`, `env`, `date`). Not `/etc/passwd`, `/etc/group`
/// or anything else: `ls -l` shows numeric owners.
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ld.so.preload",
    "/etc/localtime",
    "/etc/nsswitch.conf",
];

/// Devices a command may read (`head -c N /dev/zero`, random bytes).
const READ_DEVICES: &[&str] = &["/dev/zero", "/dev/urandom", "/dev/random"];

/// The Landlock ABI whose file-system rights Ferry needs at least: 3 adds
/// truncation, without which a command could truncate any file the server
/// can write, outside the root too.
const MIN_ABI: i64 = 3;

/// How commands are confined; decided once, when the server starts.
#[derive(Debug)]
pub enum Confinement {
    /// A Landlock ruleset, created by the server and enforced by each child
    /// on itself just before it runs the program.
    #[cfg(target_os = "linux")]
    Landlock(std::os::fd::OwnedFd),
    /// `--exec-unconfined`: a command reaches whatever the server can.
    Unconfined,
}

/// Why commands cannot be confined as configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The kernel cannot enforce the rules.
    #[error(
        "refusing to start: commands cannot be confined to the root: {0}; unconfined, \
         a command reads and writes whatever the server can \
         (pass --exec-unconfined to run commands unconfined anyway)"
    )]
    Unavailable(String),
    /// `--read-only` relies on the confinement for commands.
    #[error(
        "refusing to start: --read-only with --exec-unconfined: unconfined commands could \
         still change the root"
    )]
    ReadOnlyUnconfined,
    /// A rule could not be added.
    #[error("confining commands: {path}: {why}")]
    Rule {
        /// The path the rule is for.
        path: String,
        /// The cause.
        why: String,
    },
}

impl Confinement {
    /// The confinement for commands run beneath `root`: read-write there
    /// (read-only with `read_only`), read and execute in the system
    /// directories, nothing else. `unconfined` skips it (and is refused
    /// with `read_only`, which only the confinement enforces for commands).
    #[cfg(test)]
    pub fn new(root: &Path, read_only: bool, unconfined: bool) -> Result<Self, ConfineError> {
        Self::confine(root, None, read_only, unconfined)
    }

    /// As [`Confinement::new`], with the root's rule made from `root_fd`,
    /// the root directory opened already (`root` is only for messages):
    /// a symlink swapped in at `root`'s path since cannot widen the rule.
    #[cfg(unix)]
    pub fn new_at(
        root_fd: std::os::fd::BorrowedFd<'_>,
        root: &Path,
        read_only: bool,
        unconfined: bool,
    ) -> Result<Self, ConfineError> {
        Self::confine(root, Some(root_fd), read_only, unconfined)
    }

    #[cfg(unix)]
    fn confine(
        root: &Path,
        root_fd: Option<std::os::fd::BorrowedFd<'_>>,
        read_only: bool,
        unconfined: bool,
    ) -> Result<Self, ConfineError> {
        if unconfined {
            return if read_only {
                Err(ConfineError::ReadOnlyUnconfined)
            } else {
                Ok(Confinement::Unconfined)
            };
        }
        #[cfg(target_os = "linux")]
        {
            check_abi(landlock_abi()).map_err(ConfineError::Unavailable)?;
            landlock_ruleset(root, root_fd, read_only).map(Confinement::Landlock)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (root, root_fd, read_only);
            Err(ConfineError::Unavailable(
                "Landlock exists on Linux only".into(),
            ))
        }
    }

    /// Whether commands run confined.
    pub fn confined(&self) -> bool {
        !matches!(self, Confinement::Unconfined)
    }

    /// The ruleset's descriptor for the child, or -1 for none.
    fn raw_fd(&self) -> i32 {
        match self {
            #[cfg(target_os = "linux")]
            Confinement::Landlock(fd) => std::os::fd::AsRawFd::as_raw_fd(fd),
            Confinement::Unconfined => -1,
        }
    }
}

/// The kernel's Landlock ABI version, or the errno that says why there is
/// none.
#[cfg(target_os = "linux")]
fn landlock_abi() -> Result<i64, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag the call
    // only returns a number; it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(v)
    }
}

/// Whether an ABI probe's answer is good enough; if not, why, in words for
/// the operator.
fn check_abi(probe: Result<i64, i32>) -> Result<i64, String> {
    match probe {
        Ok(v) if v >= MIN_ABI => Ok(v),
        Ok(v) => Err(format!(
            "the kernel's Landlock ABI is {v}, and {MIN_ABI} or later is needed to stop \
             commands truncating files outside the root"
        )),
        Err(e) if e == libc::ENOSYS => Err("this kernel has no Landlock".into()),
        Err(e) if e == libc::EOPNOTSUPP => {
            Err("Landlock is disabled in this kernel (enable it with the lsm= boot option)".into())
        }
        Err(e) => Err(format!("Landlock: {}", io::Error::from_raw_os_error(e))),
    }
}

/// Builds the ruleset: the root read-write (or read-only), the system
/// directories read and execute, a few `/etc` files and devices read,
/// `/dev/null` read-write; every other file-system access denied. Where
/// the kernel has them (ABI 6), signals to and abstract Unix sockets of
/// processes outside the command are denied too.
#[cfg(target_os = "linux")]
fn landlock_ruleset(
    root: &Path,
    root_fd: Option<std::os::fd::BorrowedFd<'_>>,
    read_only: bool,
) -> Result<std::os::fd::OwnedFd, ConfineError> {
    use landlock::{
        Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope, ABI,
    };
    // The newest ABI tested here; on older kernels (down to MIN_ABI) the
    // crate leaves out the rights they do not know.
    let abi = ABI::V7;
    let all = AccessFs::from_all(abi);
    let read: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
    let run = read | AccessFs::Execute;
    let root_access = if read_only {
        run
    } else {
        // Device nodes made in the root would open the disks behind it.
        all & !(AccessFs::MakeChar | AccessFs::MakeBlock)
    };
    let mut rules: Vec<(&Path, BitFlags<AccessFs>)> = Vec::new();
    if root_fd.is_none() {
        rules.push((root, root_access));
    }
    rules.extend(SYSTEM_DIRS.iter().map(|p| (Path::new(*p), run)));
    rules.extend(ETC_FILES.iter().map(|p| (Path::new(*p), read)));
    rules.extend(READ_DEVICES.iter().map(|p| (Path::new(*p), read)));
    rules.push((
        Path::new("/dev/null"),
        AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
    ));
    let fail = |path: &Path, why: &dyn std::fmt::Display| ConfineError::Rule {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    let mut created = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| ConfineError::Unavailable(e.to_string()))?;
    if let Some(fd) = root_fd {
        // The directory itself, whatever its path leads to now.
        created = created
            .add_rule(PathBeneath::new(fd, root_access))
            .map_err(|e| fail(root, &e))?;
    }
    for (path, access) in rules {
        let md = match std::fs::metadata(path) {
            Ok(md) => md,
            // Not every system has every directory (/lib64, /libx32).
            Err(e) if e.kind() == io::ErrorKind::NotFound && path != root => continue,
            Err(e) => return Err(fail(path, &e)),
        };
        // Directory rights on a file are an error for the kernel.
        let access = if md.is_dir() {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        let fd = PathFd::new(path).map_err(|e| fail(path, &e))?;
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(path, &e))?;
    }
    let fd: Option<std::os::fd::OwnedFd> = created.into();
    fd.ok_or_else(|| ConfineError::Unavailable("the kernel refused the ruleset".into()))
}

/// Why a command was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its program is not on `--exec-allow`.
    #[error("not on --exec-allow")]
    NotAllowed,
    /// The process could not be started.
    #[error("{0}")]
    Spawn(io::Error),
}

/// Starts `command` in `dir` (a directory beneath the root) as the server
/// is configured: through `sh -c`, or, with an allow-list, the program
/// directly. Its output and exit status arrive on the returned channel,
/// which holds at most `queue` pieces; dropping the receiver (the session
/// ended) kills the command and everything it started.
pub fn start(
    policy: &Policy,
    confinement: &Confinement,
    root_fd: std::os::fd::BorrowedFd<'_>,
    cwd: &Path,
    dir: &Path,
    command: &str,
    queue: usize,
) -> Result<mpsc::Receiver<ExecMsg>, StartError> {
    let mut cmd = if policy.allow.is_empty() {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(command);
        c
    } else {
        // An allow-list: the first word must be on it, and the words go
        // to the program as they are — no shell sees `;`, `|` or `$`.
        let mut words = command.split_whitespace();
        let program = words.next().unwrap_or("");
        if !policy.allow.iter().any(|a| a == program) {
            return Err(StartError::NotAllowed);
        }
        let mut c = tokio::process::Command::new(program);
        c.args(words);
        c
    };
    let ruleset = confinement.raw_fd();
    let limits = policy.limits;
    // The child enters `cwd` from the root's open descriptor, not by the
    // path `dir`: a symlink swapped in for the root's path since it was
    // opened is not followed.
    let root_raw = std::os::fd::AsRawFd::as_raw_fd(&root_fd);
    let cwd_c = if cwd.as_os_str().is_empty() {
        None
    } else {
        use std::os::unix::ffi::OsStrExt as _;
        Some(
            std::ffi::CString::new(cwd.as_os_str().as_bytes())
                .map_err(|e| StartError::Spawn(io::Error::other(e)))?,
        )
    };
    cmd.env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        // The root's own path, without the trailing `/` of an empty cwd.
        .env("HOME", dir.components().collect::<std::path::PathBuf>())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: `enter_child` runs between fork and exec and only makes raw
    // system calls on values prepared before the fork (no allocation, no
    // lock), which is async-signal-safe. The ruleset descriptor stays open
    // in the server for the server's lifetime, and the root's for the
    // session's, so both are valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fchdir(root_raw) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(c) = &cwd_c {
                if libc::chdir(c.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            enter_child(ruleset, &limits)
        });
    }
    let mut child = cmd.spawn().map_err(StartError::Spawn)?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (Some(out), Some(err), Some(pid)) = (out, err, child.id()) else {
        return Err(StartError::Spawn(io::Error::other("no pipes or pid")));
    };
    let (tx, rx) = mpsc::channel(queue);
    // The child called setsid: its process group has its pid as id.
    let group = pid as i32;
    tokio::spawn(supervise(
        child,
        group,
        (out, err),
        tx,
        policy.timeout,
        policy.max_output,
        limits,
    ));
    Ok(rx)
}

/// The child's last steps before exec: a session (and process group) of
/// its own, an empty capability bounding set (a server running as root
/// runs commands without capabilities, so none can load a kernel module
/// or bypass file permissions), no privilege gain through set-uid
/// programs, the Landlock ruleset (`ruleset` ≥ 0), and the seccomp filter
/// ([`seccomp`]). Each process also gets `limits` as kernel limits
/// (RLIMIT_DATA, RLIMIT_CPU, inherited by what it starts) and nice +10:
/// the server's watcher counts the group as a whole, these hold even
/// between its scans.
fn enter_child(ruleset: i32, limits: &ExecLimits) -> io::Result<()> {
    // SAFETY (for each call below): plain system calls with integer
    // arguments, or pointers to locals or the static filter; none allocates.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        let cpu = limits.max_cpu.as_secs().saturating_add(1);
        for (resource, want) in [
            (libc::RLIMIT_DATA, limits.max_memory),
            (libc::RLIMIT_CPU, cpu),
        ] {
            // Never above the server's own hard limit: raising it needs
            // CAP_SYS_RESOURCE.
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(resource, &mut l) != 0 {
                return Err(io::Error::last_os_error());
            }
            let v = want.min(l.rlim_max);
            l = libc::rlimit {
                rlim_cur: v,
                rlim_max: v,
            };
            if libc::setrlimit(resource, &l) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // A positive increment cannot fail (the result is the new value).
        libc::nice(NICE);
        #[cfg(target_os = "linux")]
        {
            // setsid made a new scheduler autogroup, and the kernel shares
            // the CPU between autogroups before nice values count: the
            // group's own nice makes the command yield to the server.
            // Missing without CONFIG_SCHED_AUTOGROUP: ignored.
            let fd = libc::open(
                c"/proc/self/autogroup".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                let v = b"10";
                libc::write(fd, v.as_ptr().cast(), v.len());
                libc::close(fd);
            }
        }
        #[cfg(target_os = "linux")]
        {
            let one: libc::c_ulong = 1;
            let zero: libc::c_ulong = 0;
            // EINVAL past the kernel's last capability, EPERM without
            // CAP_SETPCAP (a server not running as root): both ignored,
            // as such a server's commands end up without capabilities
            // anyway — the ambient set is cleared here and no_new_privs
            // makes exec ignore file capabilities.
            for cap in 0..64 as libc::c_ulong {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, zero, zero, zero);
            }
            let clear_all = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
            libc::prctl(libc::PR_CAP_AMBIENT, clear_all, zero, zero, zero);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) != 0 {
                return Err(io::Error::last_os_error());
            }
            if ruleset >= 0 && libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0 {
                return Err(io::Error::last_os_error());
            }
            seccomp::install()?;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ruleset;
    }
    Ok(())
}

/// A classic-BPF seccomp filter for commands: `setsid` and `setpgid` fail
/// (nothing can leave the process group that is killed at the end), and
/// so do changes of mode, owner and extended attributes, which Landlock
/// does not cover (a command could otherwise `chmod u+s` a system binary
/// it may read, or `chown` a file outside the root). io_uring fails too:
/// its operations (`IORING_OP_SETXATTR`, `IORING_OP_FSETXATTR`, …) run in
/// the kernel without passing this filter. System V IPC fails too
/// (`shm*`, `msg*`, `sem*`): Landlock does not cover it, so a command
/// could attach to another process's segment, queue or semaphores of the
/// server's uid, or create ones that outlive it and the server. x86_64
/// and aarch64 have one call each, no `ipc` multiplexer (that is 32-bit
/// x86's, whose ABI is killed here). Every other system call is allowed.
/// Other system-call ABIs (x32, 32-bit compat) kill the process: their
/// numbers differ, and no filter here covers them.
#[cfg(target_os = "linux")]
mod seccomp {
    use std::io;

    use libc::{sock_filter, sock_fprog};

    /// `AUDIT_ARCH_X86_64`.
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E;
    /// `AUDIT_ARCH_AARCH64`.
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("the exec seccomp filter knows x86_64 and aarch64 only");

    /// `setxattrat`, `removexattrat` (Linux 6.13) and `fchmodat2` (6.6):
    /// the same numbers on every architecture.
    const SETXATTRAT: u32 = 463;
    const REMOVEXATTRAT: u32 = 466;
    const FCHMODAT2: u32 = 452;

    /// Refused system calls (EPERM).
    #[cfg(target_arch = "x86_64")]
    const DENIED: &[u32] = &[
        libc::SYS_setsid as u32,
        libc::SYS_setpgid as u32,
        libc::SYS_chmod as u32,
        libc::SYS_fchmod as u32,
        libc::SYS_fchmodat as u32,
        FCHMODAT2,
        libc::SYS_chown as u32,
        libc::SYS_fchown as u32,
        libc::SYS_lchown as u32,
        libc::SYS_fchownat as u32,
        libc::SYS_setxattr as u32,
        libc::SYS_lsetxattr as u32,
        libc::SYS_fsetxattr as u32,
        libc::SYS_removexattr as u32,
        libc::SYS_lremovexattr as u32,
        libc::SYS_fremovexattr as u32,
        SETXATTRAT,
        REMOVEXATTRAT,
        libc::SYS_io_uring_setup as u32,
        libc::SYS_io_uring_enter as u32,
        libc::SYS_io_uring_register as u32,
    ];
    #[cfg(target_arch = "aarch64")]
    const DENIED: &[u32] = &[
        libc::SYS_setsid as u32,
        libc::SYS_setpgid as u32,
        libc::SYS_fchmod as u32,
        libc::SYS_fchmodat as u32,
        FCHMODAT2,
        libc::SYS_fchown as u32,
        libc::SYS_fchownat as u32,
        libc::SYS_setxattr as u32,
        libc::SYS_lsetxattr as u32,
        libc::SYS_fsetxattr as u32,
        libc::SYS_removexattr as u32,
        libc::SYS_lremovexattr as u32,
        libc::SYS_fremovexattr as u32,
        SETXATTRAT,
        REMOVEXATTRAT,
        libc::SYS_io_uring_setup as u32,
        libc::SYS_io_uring_enter as u32,
        libc::SYS_io_uring_register as u32,
    ];

    const LOAD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    /// `struct seccomp_data`: `nr` at offset 0, `arch` at 4.
    const NR: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    /// x32 system calls on x86_64 have this bit set.
    const X32_BIT: u32 = 0x4000_0000;
    /// System V IPC, which Landlock does not cover (see the module doc):
    /// the same names on both architectures.
    const SYSV_IPC: &[u32] = &[
        libc::SYS_shmget as u32,
        libc::SYS_shmat as u32,
        libc::SYS_shmdt as u32,
        libc::SYS_shmctl as u32,
        libc::SYS_msgget as u32,
        libc::SYS_msgsnd as u32,
        libc::SYS_msgrcv as u32,
        libc::SYS_msgctl as u32,
        libc::SYS_semget as u32,
        libc::SYS_semop as u32,
        libc::SYS_semtimedop as u32,
        libc::SYS_semctl as u32,
    ];
    const LEN: usize = DENIED.len() + SYSV_IPC.len() + 7;

    const fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    /// Load arch; not native → kill; load nr; x32 bit → kill; each denied
    /// number → EPERM; allow. Jump offsets count from the next instruction.
    const fn build() -> [sock_filter; LEN] {
        let kill = LEN - 1;
        let deny = LEN - 2;
        let allow = LEN - 3;
        let mut f = [ins(RET, 0, 0, libc::SECCOMP_RET_KILL_PROCESS); LEN];
        f[0] = ins(LOAD, 0, 0, ARCH_OFFSET);
        f[1] = ins(JEQ, 0, (kill - 2) as u8, ARCH);
        f[2] = ins(LOAD, 0, 0, NR);
        f[3] = ins(JGE, (kill - 4) as u8, 0, X32_BIT);
        let mut i = 0;
        while i < DENIED.len() + SYSV_IPC.len() {
            let at = 4 + i;
            let nr = if i < DENIED.len() {
                DENIED[i]
            } else {
                SYSV_IPC[i - DENIED.len()]
            };
            f[at] = ins(JEQ, (deny - at - 1) as u8, 0, nr);
            i += 1;
        }
        f[allow] = ins(RET, 0, 0, libc::SECCOMP_RET_ALLOW);
        f[deny] = ins(RET, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        f[kill] = ins(RET, 0, 0, libc::SECCOMP_RET_KILL_PROCESS);
        f
    }

    static FILTER: [sock_filter; LEN] = build();

    /// Installs the filter on the calling thread (the child, after fork).
    pub(super) fn install() -> io::Result<()> {
        let prog = sock_fprog {
            len: FILTER.len() as u16,
            filter: FILTER.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at the static filter, which the kernel
        // copies; no_new_privs is already set.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const sock_fprog,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Sends `signal` to every process in `group`; false once none is left.
fn signal_group(group: i32, signal: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals a process group; it
    // takes only integers.
    unsafe { libc::kill(-group, signal) == 0 }
}

/// Whether `group` has a process that has not exited. A zombie still
/// counts for kill(2), and its reaper (init, for orphans) may take its
/// time — over a second on some systems — so `/proc` decides where it can.
fn group_alive(group: i32) -> bool {
    if !signal_group(group, 0) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|p| p.pgrp == group && !p.zombie)
    })
}

/// Ends every process of `group`: SIGTERM, then SIGKILL to whatever is
/// left after [`GRACE`]. Returns at once if the group is already empty.
async fn kill_group(group: i32) {
    if !signal_group(group, libc::SIGTERM) {
        return;
    }
    let until = Instant::now() + GRACE;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !group_alive(group) {
            return;
        }
    }
    signal_group(group, libc::SIGKILL);
}

/// Kills `group` with SIGKILL at once, without [`GRACE`]: it broke a
/// limit, and a fork bomb must not fork on through a grace period. The
/// signal is sent again each interval while the group lives (a fork racing
/// the first one), for at most [`GRACE`].
async fn kill_group_now(group: i32) {
    let until = Instant::now() + GRACE;
    while signal_group(group, libc::SIGKILL) && Instant::now() < until {
        tokio::time::sleep(WATCH_INTERVAL).await;
        if !group_alive(group) {
            return;
        }
    }
}

/// One scan of `/proc`: the tasks, memory and CPU time of `group`. The
/// group's members cannot leave it (`setsid`/`setpgid` are refused), so
/// what is not found here is not the command's.
fn group_usage(group: i32) -> Usage {
    let mut usage = Usage::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return usage;
    };
    // SAFETY: sysconf takes and returns integers.
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as u64,
        _ => 100,
    };
    let mut cpu_ticks = 0u64;
    let mut stat = String::with_capacity(512);
    for e in dir.flatten() {
        let name = e.file_name();
        if !name
            .as_encoded_bytes()
            .first()
            .is_some_and(u8::is_ascii_digit)
        {
            continue;
        }
        let path = e.path();
        stat.clear();
        let read = std::fs::File::open(path.join("stat"))
            .and_then(|mut f| io::Read::read_to_string(&mut f, &mut stat));
        if read.is_err() {
            continue;
        }
        let Some(p) = parse_stat(&stat) else {
            continue;
        };
        if p.pgrp != group {
            continue;
        }
        usage.tasks += p.threads.max(1);
        cpu_ticks += p.cpu_ticks;
        if !p.zombie {
            usage.memory += resident_private(&path);
        }
    }
    usage.cpu = Duration::from_millis(cpu_ticks.saturating_mul(1000) / ticks);
    usage
}

/// The fields of `/proc/PID/stat` the watcher needs.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    pgrp: i32,
    zombie: bool,
    /// utime + stime + cutime + cstime, in clock ticks.
    cpu_ticks: u64,
    threads: u64,
}

/// Parses "PID (COMM) STATE PPID PGRP … UTIME STIME CUTIME CSTIME …
/// NUM_THREADS …" (proc(5)); COMM may hold anything but the last ')'.
fn parse_stat(stat: &str) -> Option<Stat> {
    let (_, rest) = stat.rsplit_once(')')?;
    // Field 3 (state) is index 0 here.
    let f: Vec<&str> = rest.split_whitespace().take(18).collect();
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        pgrp: f.get(2)?.parse().ok()?,
        zombie: matches!(f.first(), Some(&"Z") | Some(&"X")),
        cpu_ticks: num(11)? + num(12)? + num(13)? + num(14)?,
        threads: num(17)?,
    })
}

/// A process's resident anonymous and shared-memory bytes (`RssAnon` and
/// `RssShmem` of `/proc/PID/status`); 0 if it is gone.
fn resident_private(proc_dir: &Path) -> u64 {
    let Ok(status) = std::fs::read_to_string(proc_dir.join("status")) else {
        return 0;
    };
    status
        .lines()
        .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssShmem:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// Measures `group` every [`WATCH_INTERVAL`] and returns the first limit
/// it passes; never returns while it stays within them.
async fn watch(group: i32, limits: ExecLimits) -> Breach {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let usage = group_usage(group);
        if let Some(b) = limits.breach(&usage) {
            tracing::info!(group, ?usage, "command over a limit: {:?}", b);
            return b;
        }
    }
}

/// Forwards one pipe, counting against the shared output budget; past it,
/// stops and says so.
async fn pump(
    mut r: impl AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<ExecMsg>,
    budget: Arc<(AtomicU64, Notify)>,
    max: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let before = budget.0.fetch_add(n as u64, Ordering::SeqCst);
        let allowed = max.saturating_sub(before).min(n as u64) as usize;
        if allowed > 0
            && tx
                .send(ExecMsg::Out(stream, buf[..allowed].to_vec()))
                .await
                .is_err()
        {
            break;
        }
        if allowed < n {
            budget.1.notify_one();
            break;
        }
    }
}

/// Kills a command's group if its watcher is dropped before the end (the
/// server shutting down): the runtime's kill-on-drop reaches only the
/// leader.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            signal_group(group, libc::SIGKILL);
        }
    }
}

/// How a command's run ended.
enum End {
    /// It exited (status, or minus the signal that ended it).
    Exited(i32),
    /// Its output passed the limit.
    OverLimit,
    /// It ran past the time limit.
    TimedOut,
    /// It passed one of its [`ExecLimits`].
    Breach(Breach),
    /// Its session is gone: nobody reads the output.
    Gone,
}

/// Watches a running command to its end. The time limit covers the whole
/// exec, output included: at the deadline the group is killed and the pipe
/// readers stop even if something (an inherited descriptor) keeps a pipe
/// open. When the command ends for any reason its whole process group is
/// killed, so background jobs do not outlive it; over one of `limits`, at
/// once.
async fn supervise(
    mut child: tokio::process::Child,
    group: i32,
    (out, err): (
        impl AsyncRead + Unpin + Send + 'static,
        impl AsyncRead + Unpin + Send + 'static,
    ),
    tx: mpsc::Sender<ExecMsg>,
    limit: Duration,
    max_output: u64,
    limits: ExecLimits,
) {
    let mut guard = GroupGuard(Some(group));
    let deadline = Instant::now() + limit;
    let budget = Arc::new((AtomicU64::new(0), Notify::new()));
    let mut pumps = [
        tokio::spawn(pump(
            out,
            Stream::Stdout,
            tx.clone(),
            budget.clone(),
            max_output,
        )),
        tokio::spawn(pump(
            err,
            Stream::Stderr,
            tx.clone(),
            budget.clone(),
            max_output,
        )),
    ];
    let mut end = tokio::select! {
        // Over the limit wins over a command that ended meanwhile: cut
        // output is never reported as a clean run.
        biased;
        _ = budget.1.notified() => End::OverLimit,
        _ = tx.closed() => End::Gone,
        b = watch(group, limits) => End::Breach(b),
        r = tokio::time::timeout_at(deadline, child.wait()) => match r {
            Ok(Ok(st)) => End::Exited(st.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                -st.signal().unwrap_or(1)
            })),
            Ok(Err(_)) => End::Exited(-1),
            Err(_) => End::TimedOut,
        },
    };
    if let End::Breach(_) = end {
        kill_group_now(group).await;
    }
    kill_group(group).await;
    guard.0 = None;
    if !matches!(end, End::Exited(_)) {
        // The leader was in the group; reap it (bounded all the same).
        let _ = tokio::time::timeout(GRACE, child.wait()).await;
    }
    // The pipes close once the group is dead. A descriptor passed outside
    // it could hold them open: the readers get until the deadline, and at
    // least a moment after a kill to forward what the pipes still hold.
    let until = deadline.max(Instant::now() + Duration::from_millis(200));
    let pumps_done = match end {
        End::Gone => false,
        _ => tokio::time::timeout_at(until, async {
            for p in &mut pumps {
                let _ = p.await;
            }
        })
        .await
        .is_ok(),
    };
    for p in &pumps {
        p.abort();
    }
    if !pumps_done {
        if let End::Exited(_) = end {
            end = End::TimedOut;
        }
    }
    // The command may have ended just as its output passed the limit: the
    // pumps have counted everything by now.
    if budget.0.load(Ordering::SeqCst) > max_output {
        end = End::OverLimit;
    }
    let stopped = |why: &str| ExecMsg::Out(Stream::Stderr, format!("ferry: {why}\n").into_bytes());
    let status = match end {
        End::Exited(status) => status,
        End::OverLimit => {
            let why = format!("command stopped: output over the limit of {max_output} bytes");
            let _ = tx.send(stopped(&why)).await;
            -9
        }
        End::TimedOut => {
            let _ = tx.send(stopped("command timed out")).await;
            -9
        }
        End::Breach(b) => {
            let _ = tx.send(stopped(&limits.message(b))).await;
            -9
        }
        End::Gone => return,
    };
    let _ = tx.send(ExecMsg::Exit(status)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_missing_or_too_old_refuses_with_the_reason_and_the_way_out() {
        for (probe, why) in [
            (Err(libc::ENOSYS), "has no Landlock"),
            (Err(libc::EOPNOTSUPP), "disabled"),
            (Ok(1), "ABI is 1"),
            (Ok(2), "ABI is 2"),
        ] {
            let e = check_abi(probe).expect_err("must refuse");
            assert!(e.contains(why), "{e}");
            let msg = ConfineError::Unavailable(e).to_string();
            assert!(msg.contains("--exec-unconfined"), "{msg}");
            assert!(msg.contains("refusing to start"), "{msg}");
        }
        assert_eq!(check_abi(Ok(3)), Ok(3));
        assert_eq!(check_abi(Ok(7)), Ok(7));
    }

    #[test]
    fn unconfined_is_refused_with_read_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Confinement::new(dir.path(), true, true),
            Err(ConfineError::ReadOnlyUnconfined)
        ));
        assert!(!Confinement::new(dir.path(), false, true)
            .unwrap()
            .confined());
    }

    /// Landlock does not cover System V IPC: a command could attach to
    /// another process's shared memory, message queue or semaphores (same
    /// uid: the server's), or leave a segment behind that outlives it.
    /// Each call, made in a confined child with arguments that are merely
    /// invalid (`EINVAL`/`ENOENT` unfiltered, nothing created), must fail
    /// with EPERM from the filter.
    #[cfg(target_os = "linux")]
    #[test]
    fn every_system_v_ipc_call_is_refused() {
        use libc::c_long;
        use std::os::unix::process::CommandExt as _;
        // A key nobody uses, so the get calls find nothing (ENOENT).
        let key = 0x7e57_0000 | (std::process::id() as c_long & 0xffff);
        let null = 0 as c_long;
        let calls: [(&str, c_long, [c_long; 5]); 12] = [
            (
                "shmget",
                libc::SYS_shmget,
                [libc::IPC_PRIVATE as c_long, 0, 0, 0, 0],
            ),
            ("shmat", libc::SYS_shmat, [-1, null, 0, 0, 0]),
            ("shmdt", libc::SYS_shmdt, [null, 0, 0, 0, 0]),
            (
                "shmctl",
                libc::SYS_shmctl,
                [-1, libc::IPC_STAT as c_long, null, 0, 0],
            ),
            ("msgget", libc::SYS_msgget, [key, 0, 0, 0, 0]),
            ("msgsnd", libc::SYS_msgsnd, [-1, null, 0, 0, 0]),
            ("msgrcv", libc::SYS_msgrcv, [-1, null, 0, 0, 0]),
            (
                "msgctl",
                libc::SYS_msgctl,
                [-1, libc::IPC_STAT as c_long, null, 0, 0],
            ),
            ("semget", libc::SYS_semget, [key, 0, 0, 0, 0]),
            ("semop", libc::SYS_semop, [-1, null, 0, 0, 0]),
            ("semtimedop", libc::SYS_semtimedop, [-1, null, 0, null, 0]),
            (
                "semctl",
                libc::SYS_semctl,
                [-1, 0, libc::IPC_STAT as c_long, null, 0],
            ),
        ];
        for (name, nr, a) in calls {
            let mut cmd = std::process::Command::new("/bin/true");
            // SAFETY: raw system calls only, as in `start`; the errno is
            // read without allocating.
            unsafe {
                cmd.pre_exec(move || {
                    enter_child(-1, &ExecLimits::default())?;
                    let r = libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]);
                    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    if r == -1 && errno == libc::EPERM {
                        Ok(())
                    } else if r == -1 {
                        Err(io::Error::from_raw_os_error(errno))
                    } else {
                        // It succeeded (no message: no allocation here).
                        Err(io::ErrorKind::Other.into())
                    }
                });
            }
            let r = cmd.status();
            assert!(
                r.as_ref().is_ok_and(|s| s.success()),
                "{name} was not refused with EPERM: {r:?}"
            );
        }
    }

    #[test]
    fn stat_lines_give_group_threads_and_cpu_whatever_the_name() {
        // A name with ") " and digits in it must not shift the fields.
        let line = "4242 (a) 1 2 (x) S 1 777 777 0 -1 4194560 10 0 0 0 \
                    150 50 30 20 20 0 3 0 123 4096 100 18446744073709551615";
        let p = parse_stat(line).unwrap();
        assert_eq!(
            p,
            Stat {
                pgrp: 777,
                zombie: false,
                cpu_ticks: 250,
                threads: 3
            }
        );
        let z = parse_stat("9 (sh) Z 1 9 9 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0").unwrap();
        assert!(z.zombie);
        assert_eq!(parse_stat("9 (sh) S 1"), None);
    }

    #[test]
    fn each_limit_is_reported_with_its_value() {
        let l = ExecLimits {
            max_procs: 32,
            max_memory: 64 << 20,
            max_cpu: Duration::from_secs(2),
        };
        let at = Usage {
            tasks: 32,
            memory: 64 << 20,
            cpu: Duration::from_secs(2),
        };
        assert_eq!(l.breach(&at), None, "at each limit is within it");
        for (usage, breach, msg) in [
            (
                Usage { tasks: 33, ..at },
                Breach::Procs,
                "more than 32 processes",
            ),
            (
                Usage {
                    memory: (64 << 20) + 1,
                    ..at
                },
                Breach::Memory,
                "memory over the limit of 67108864 bytes",
            ),
            (
                Usage {
                    cpu: Duration::from_millis(2010),
                    ..at
                },
                Breach::Cpu,
                "CPU time over the limit of 2 s",
            ),
        ] {
            assert_eq!(l.breach(&usage), Some(breach));
            assert!(l.message(breach).ends_with(msg), "{}", l.message(breach));
        }
    }

    /// The test's own process group (the test harness's): at least this
    /// process and its threads, its memory, some CPU; one scan's cost.
    #[test]
    fn a_scan_finds_this_process_group() {
        // SAFETY: getpgrp takes nothing and cannot fail.
        let group = unsafe { libc::getpgrp() };
        let v = vec![1u8; 8 << 20];
        let t = std::time::Instant::now();
        let u = group_usage(group);
        let took = t.elapsed();
        assert!(u.tasks >= 2, "{u:?}");
        assert!(u.memory >= 8 << 20, "{u:?}");
        assert_eq!(v.len(), 8 << 20);
        assert_eq!(group_usage(-5), Usage::default());
        eprintln!("one /proc scan: {took:?} ({u:?})");
    }

    /// `--user-dirs`: the user's directory was opened (O_NOFOLLOW), then a
    /// local user swapped its path for a symlink elsewhere before the
    /// confinement was built. The rule and the command's directory come
    /// from the open descriptor: the command stays in the real directory
    /// and cannot read where the symlink leads.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_root_swapped_for_a_symlink_after_opening_does_not_widen_the_rules() {
        use std::os::fd::AsFd;
        use std::os::unix::process::CommandExt as _;
        if check_abi(landlock_abi()).is_err() {
            eprintln!("skipped: no Landlock");
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let alice = top.path().join("alice");
        let elsewhere = top.path().join("elsewhere");
        std::fs::create_dir(&alice).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(alice.join("mine.txt"), b"mine").unwrap();
        std::fs::write(elsewhere.join("secret.txt"), b"secret").unwrap();
        let opened = std::fs::File::open(&alice).unwrap();
        // The swap: alice moves away, a symlink takes its name.
        let moved = top.path().join("alice.moved");
        std::fs::rename(&alice, &moved).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &alice).unwrap();
        let c = Confinement::new_at(opened.as_fd(), &alice, false, false).unwrap();
        let ruleset = c.raw_fd();
        let root_raw = std::os::fd::AsRawFd::as_raw_fd(&opened);
        let run = |args: &[&std::ffi::OsStr]| {
            let mut cmd = std::process::Command::new("/bin/cat");
            cmd.args(args);
            // SAFETY: raw system calls only, as in `start`.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::fchdir(root_raw) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    enter_child(ruleset, &ExecLimits::default())
                });
            }
            cmd.output().unwrap()
        };
        let o = run(&["mine.txt".as_ref()]);
        assert_eq!(o.stdout, b"mine", "runs in the opened directory: {o:?}");
        let o = run(&[elsewhere.join("secret.txt").as_os_str()]);
        assert!(
            !o.status.success(),
            "the symlink's target is out of reach: {o:?}"
        );
        let o = run(&[alice.join("secret.txt").as_os_str()]);
        assert!(!o.status.success(), "through the symlink too: {o:?}");
        let o = run(&[moved.join("mine.txt").as_os_str()]);
        assert_eq!(
            o.stdout, b"mine",
            "the opened directory by its new name: {o:?}"
        );
    }
}
