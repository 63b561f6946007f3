//! Ferry over a serial line (`--serial DEVICE`, `--listen serial:DEVICE`):
//! the port is opened with the `serialport` crate (baud, 8N1, raw mode),
//! ferry-core's link layer (docs/PROTOCOL.md#serial-link) runs over it in
//! a tokio task, and each link the two sides bring up is handed out as a
//! byte stream ([`DuplexStream`], `AsyncRead + AsyncWrite`) for one
//! session. When the link resets (the peer restarted) or goes down
//! (nothing heard for its dead time), the task drops its end of that
//! stream: the session reads EOF and its writes fail, as on a closed
//! socket.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use ferry_core::link::{Link, LinkConfig, LinkEvent};
use ferry_core::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tracing::{debug, warn};

type L = Link<Vec<u8>, 16>;

/// The largest payload of one link frame.
const MAX_PAYLOAD: u16 = 1024;
/// What the stream buffers between the session and the link, each way.
const PIPE: usize = 64 * 1024;
/// How long a session's last bytes may take to be acknowledged before
/// the link starts over for the next one.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Opens the serial device `path` at `baud`: 8N1, raw, no flow control,
/// non-blocking. Pseudo-terminals work the same (the tests' virtual line).
pub(crate) fn open_port(path: &Path, baud: u32) -> io::Result<OwnedFd> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, flock, FlockOperation, OFlags};
    let port = serialport::new(path.to_string_lossy(), baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        // Not TIOCEXCL: a process that exits without closing the port
        // (`process::exit`, a kill) would leave it set on a pty whose
        // master stays open, refusing the next `ferry` on that line. The
        // exclusive flock below keeps a second `ferry` off the port just
        // as well, and goes with the process.
        .exclusive(false)
        .open_native()
        .map_err(|e| match e.kind {
            serialport::ErrorKind::Io(kind) => io::Error::new(kind, e.description),
            serialport::ErrorKind::NoDevice => {
                io::Error::new(io::ErrorKind::NotFound, e.description)
            }
            _ => io::Error::other(e.description),
        })?;
    // SAFETY: `into_raw_fd` hands over the open descriptor it owned (its
    // destructor does not run), so it is owned exactly once from here.
    let fd = unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) };
    flock(&fd, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        io::Error::new(
            io::ErrorKind::ResourceBusy,
            "the port is in use by another process",
        )
    })?;
    fcntl_setfl(&fd, fcntl_getfl(&fd)? | OFlags::NONBLOCK)?;
    Ok(fd)
}

/// How often the link's figures are logged (at debug level).
const STATS_EVERY: Duration = Duration::from_secs(5);

/// The least time between two calls of the link's `handle_timeout`.
const TIMER_GAP: Duration = Duration::from_millis(2);

/// A random epoch for a link (a restart must pick another).
fn epoch() -> u32 {
    getrandom::u32().unwrap_or_else(|_| {
        // No randomness: the clock still differs from one start to the next.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32)
    })
}

/// What the link task does when a session closes its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnClose {
    /// Nothing: the stream was the process's only one (the client).
    Stay,
    /// Start the link over with a new epoch once the session's last bytes
    /// are acknowledged, so the peer's session ends too and the next one
    /// begins on a fresh stream (the server).
    Restart,
}

/// Starts the link task on the open `port` (in the current runtime); a
/// stream comes out of the receiver each time a link comes up. The task
/// ends when the receiver is dropped or the port fails.
pub(crate) fn spawn_link(
    port: OwnedFd,
    baud: u32,
    on_close: OnClose,
    name: String,
) -> io::Result<mpsc::Receiver<DuplexStream>> {
    // SAFETY: an `OwnedFd` is open and keeps the same descriptor until
    // the `AsyncFd` drops it.
    let port = unsafe { AsyncFd::register(port) }.map_err(io::Error::from)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(e) = run_link(port, baud, on_close, tx).await {
            warn!(port = %name, error = %e, "serial line failed");
        }
    });
    Ok(rx)
}

async fn run_link(
    port: AsyncFd<OwnedFd>,
    baud: u32,
    on_close: OnClose,
    streams: mpsc::Sender<DuplexStream>,
) -> io::Result<()> {
    let start = tokio::time::Instant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let cfg = LinkConfig {
        max_payload: MAX_PAYLOAD,
        baud: baud.max(300),
        ..LinkConfig::default()
    };
    let buf = vec![0u8; L::buffer_len(usize::from(MAX_PAYLOAD))];
    let mut link = L::new(now(), cfg, epoch(), buf)
        .map_err(|e| io::Error::other(format!("serial link: {e}")))?;
    // This side's end of the current session's stream.
    let mut reader: Option<ReadHalf<DuplexStream>> = None;
    let mut writer: Option<WriteHalf<DuplexStream>> = None;
    // Session bytes read and not yet taken by the link.
    let mut up = Vec::with_capacity(PIPE);
    let mut up_off = 0;
    // Link bytes read and not yet written to the session.
    let mut down = vec![0u8; 16 * 1024];
    let (mut down_off, mut down_len) = (0, 0);
    // The session closed its stream: start over once its last bytes are
    // acknowledged, or at this deadline.
    let mut closing: Option<tokio::time::Instant> = None;
    let mut line = vec![0u8; 4096];
    let mut timed_out = start;
    // What the link did, logged (debug) every few seconds: how a noisy
    // line is taken (resends, timeouts, the payload chosen).
    let mut stats_at = start;
    loop {
        if stats_at.elapsed() >= STATS_EVERY {
            stats_at = tokio::time::Instant::now();
            debug!(stats = ?link.stats(), "serial link");
        }
        while let Some(e) = link.poll_event() {
            debug!(event = ?e, stats = ?link.stats(), "serial link");
            // Whatever happened, the stream so far is gone.
            (reader, writer) = (None, None);
            up.clear();
            up_off = 0;
            (down_off, down_len) = (0, 0);
            closing = None;
            if e == LinkEvent::Up {
                let (ours, theirs) = tokio::io::duplex(PIPE);
                match streams.try_send(theirs) {
                    Ok(()) => {
                        let (r, w) = tokio::io::split(ours);
                        (reader, writer) = (Some(r), Some(w));
                    }
                    // Nobody takes streams any more.
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                    // The last one was not taken (a client has its one
                    // session): no session on this link.
                    Err(mpsc::error::TrySendError::Full(_)) => {}
                }
            }
        }
        // Stream bytes both ways, as far as each side takes them.
        if up_off < up.len() {
            up_off += link.write(&up[up_off..]);
            if up_off == up.len() {
                up.clear();
                up_off = 0;
            }
        }
        if down_off == down_len && writer.is_some() {
            down_len = link.read(&mut down);
            down_off = 0;
        }
        if let Some(at) = closing {
            if link.unacknowledged() == 0 || tokio::time::Instant::now() >= at {
                closing = None;
                link.restart(now(), epoch());
                continue;
            }
        }
        let out_len = link.transmit(now()).len();
        // Not again within 2 ms of the last: a timer that stays due while
        // the port takes nothing (a probe waiting to go out) must not spin.
        let timer = link
            .poll_timeout()
            .map(|t| (start + Duration::from_millis(t.as_millis())).max(timed_out + TIMER_GAP));
        let want_up = reader.is_some() && up.is_empty() && closing.is_none();
        let want_down = down_off < down_len;
        tokio::select! {
            r = port.readable() => {
                let mut guard = r?;
                match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut line[..])?)) {
                    Ok(Ok(0)) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                    Ok(Ok(n)) => link.handle_line(now(), &line[..n]),
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            r = port.writable(), if out_len > 0 => {
                let mut guard = r?;
                let out = link.transmit(now());
                match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), out)?)) {
                    Ok(Ok(n)) => link.transmit_done(n),
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            _ = sleep_until(timer) => {
                timed_out = tokio::time::Instant::now();
                link.handle_timeout(now());
            }
            r = read_some(&mut reader, &mut up), if want_up => match r {
                Ok(0) | Err(_) => {
                    // The session is over (it closed or dropped its end).
                    debug!(stats = ?link.stats(), "serial session over");
                    (reader, writer) = (None, None);
                    (down_off, down_len) = (0, 0);
                    if on_close == OnClose::Restart {
                        closing = Some(tokio::time::Instant::now() + FLUSH_LIMIT);
                    }
                }
                Ok(_) => {}
            },
            r = write_some(&mut writer, &down[down_off..down_len]), if want_down => match r {
                Ok(n) if n > 0 => down_off += n,
                _ => {
                    // Nobody reads it: drop what the link gave.
                    (down_off, down_len) = (0, 0);
                }
            },
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads what the session wrote into `buf` (empty on entry).
async fn read_some(
    reader: &mut Option<ReadHalf<DuplexStream>>,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    match reader {
        Some(r) => r.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

/// Writes link bytes to the session.
async fn write_some(
    writer: &mut Option<WriteHalf<DuplexStream>>,
    bytes: &[u8],
) -> io::Result<usize> {
    match writer {
        Some(w) => w.write(bytes).await,
        None => Ok(0),
    }
}

/// Opens `path`, starts the link in the current runtime and waits up to
/// `limit` for it to come up: the stream for the one session.
pub(crate) async fn connect(
    path: &Path,
    baud: u32,
    limit: Duration,
) -> io::Result<(DuplexStream, mpsc::Receiver<DuplexStream>)> {
    let port = open_port(path, baud)?;
    let mut rx = spawn_link(port, baud, OnClose::Stay, path.display().to_string())?;
    match tokio::time::timeout(limit, rx.recv()).await {
        Ok(Some(s)) => Ok((s, rx)),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the serial line failed",
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer on the serial line",
        )),
    }
}

/// The client's blocking side of a serial link: a runtime of its own
/// (one worker, which drives the link while the caller hashes or writes
/// files) and the session's stream. Reads wake after `tick` with
/// `WouldBlock`, as a socket's read timeout does; a write that cannot go
/// out within `write_timeout` fails the same way.
pub struct SerialStream {
    rt: tokio::runtime::Runtime,
    stream: DuplexStream,
    /// Keeps the link task's channel open (later links go unserved).
    _later: mpsc::Receiver<DuplexStream>,
    tick: Duration,
    write_timeout: Duration,
}

impl SerialStream {
    /// Opens `path` at `baud` and waits up to `limit` for the link.
    pub(crate) fn open(
        path: &Path,
        baud: u32,
        limit: Duration,
        tick: Duration,
        write_timeout: Duration,
    ) -> io::Result<SerialStream> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (stream, later) = rt.block_on(connect(path, baud, limit))?;
        Ok(SerialStream {
            rt,
            stream,
            _later: later,
            tick,
            write_timeout,
        })
    }
}

impl io::Read for SerialStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (s, tick) = (&mut self.stream, self.tick);
        // The timer is made inside the runtime (`timeout` needs one).
        match self
            .rt
            .block_on(async { tokio::time::timeout(tick, s.read(buf)).await })
        {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl io::Write for SerialStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (s, limit) = (&mut self.stream, self.write_timeout);
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, s.write(buf)).await })
        {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
