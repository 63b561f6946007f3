//! The device on a serial line: one session at a time over ferry-core's
//! link layer (`ferry_core::link`, docs/PROTOCOL.md#serial-link), no
//! TCP/IP stack. The caller moves line bytes (a UART's) in and out and
//! passes the time; [`SerialDevice::poll`] moves stream bytes between the
//! link and the session. A link reset or loss ends the session (the
//! client then connects again and resumes); the next one starts when the
//! link is up again.

use ferry_core::app::{Progress, Session};
use ferry_core::link::{Link, LinkConfig, LinkEvent};
use ferry_core::Instant;

use crate::app::{Auth, DeviceStore};
use crate::store::RamStore;

/// Frames in flight each way: a small receiver's window.
pub const WINDOW: usize = 4;
/// The largest data frame payload: 256 bytes keeps a noisy line moving
/// and the buffers small.
pub const MAX_PAYLOAD: usize = 256;
/// Core buffers per session (each direction): the protocol's smallest
/// (1 KiB frames; [`ferry_core::MIN_OUTPUT_BUFFER`]), half the TCP
/// device's. A line of 256-byte link frames gains nothing from larger
/// ones, and a device's RAM is mostly its buffers.
pub const FRAME_BUF: usize = if ferry_core::MIN_OUTPUT_BUFFER > ferry_core::MIN_INPUT_BUFFER {
    ferry_core::MIN_OUTPUT_BUFFER
} else {
    ferry_core::MIN_INPUT_BUFFER
};

/// The core server of one session on the line.
type Conn<'s> = ferry_core::Server<&'s mut [u8]>;

/// The link's buffer (see [`Link::buffer_len`]).
pub const LINK_BUF: usize = Link::<&'static mut [u8], WINDOW>::buffer_len(MAX_PAYLOAD);

/// The device's buffers: the link's and the session's input and output,
/// 4.7 KB in all. Lent to [`SerialDevice::new`] rather than held by value,
/// so a firmware keeps them in a zero-initialised static: built on the
/// stack and moved into place, they and the device around them took
/// 11 KB of stack at boot on a Cortex-M4, more than serving a session.
pub struct Buffers {
    link: [u8; LINK_BUF],
    input: [u8; FRAME_BUF],
    output: [u8; FRAME_BUF],
}

impl Buffers {
    /// Zeroed buffers (`const`, for a static).
    pub const fn new() -> Self {
        Buffers {
            link: [0; LINK_BUF],
            input: [0; FRAME_BUF],
            output: [0; FRAME_BUF],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// A Ferry server on a serial line with a RAM store of `FILES` files and
/// `BYTES` bytes.
pub struct SerialDevice<'s, const FILES: usize, const BYTES: usize> {
    /// The files and who may log in.
    pub store: DeviceStore<'s, FILES, BYTES>,
    link: Link<&'s mut [u8], WINDOW>,
    /// The core server, made once and restarted in place for each
    /// session (`open` while one runs).
    conn: Conn<'s>,
    open: bool,
    session: Session<DeviceStore<'s, FILES, BYTES>>,
    /// Sessions served since start (each link up is one).
    pub sessions: u32,
}

impl<'s, const FILES: usize, const BYTES: usize> SerialDevice<'s, FILES, BYTES> {
    /// A device on a line of `baud` bits per second, in `buffers` (a
    /// static's, on a firmware); `random` fills buffers with random bytes
    /// (the link's epoch, nonces, the secret). The link's and the core
    /// server's set-up errors come back here, once, rather than at each
    /// session's start.
    pub fn new(
        now: Instant,
        store: &'s mut RamStore<FILES, BYTES>,
        buffers: &'s mut Buffers,
        auth: Auth,
        random: fn(&mut [u8]),
        baud: u32,
    ) -> Result<Self, ferry_core::SetupError> {
        let mut epoch = [0u8; 4];
        random(&mut epoch);
        let config = crate::app::server_config(&auth, random);
        let cfg = LinkConfig {
            max_payload: MAX_PAYLOAD as u16,
            baud,
            ..LinkConfig::default()
        };
        let link = Link::new(now, cfg, u32::from_le_bytes(epoch), &mut buffers.link[..])?;
        Ok(SerialDevice {
            store: DeviceStore {
                ram: store,
                auth,
                random,
                now,
            },
            link,
            conn: Conn::new(now, config, &mut buffers.input[..], &mut buffers.output[..])?,
            open: false,
            session: Session::new(),
            sessions: 0,
        })
    }

    /// Bytes from the line.
    pub fn handle_line(&mut self, now: Instant, bytes: &[u8]) {
        self.link.handle_line(now, bytes);
    }

    /// Line bytes to send now; then [`Self::transmit_done`].
    pub fn transmit(&mut self, now: Instant) -> &[u8] {
        self.link.transmit(now)
    }

    /// `n` bytes of [`Self::transmit`] went out.
    pub fn transmit_done(&mut self, n: usize) {
        self.link.transmit_done(n);
    }

    /// When to poll again at the latest.
    pub fn poll_at(&self) -> Option<Instant> {
        let conn = self.conn.poll_timeout().filter(|_| self.open);
        match (self.link.poll_timeout(), conn) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the link's timers and the session: call after line input,
    /// after sending, and at [`Self::poll_at`].
    // Not inlined into the driver's loop: its locals (the scratch buffer,
    // the event in hand) then take stack only while it runs.
    #[inline(never)]
    pub fn poll(&mut self, now: Instant) {
        self.store.now = now;
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
        }
        while let Some(e) = self.link.poll_event() {
            // Whatever happened, the stream so far is gone.
            self.end();
            if e == LinkEvent::Up {
                self.start(now);
            }
        }
        if !self.open {
            return;
        }
        let conn = &mut self.conn;
        conn.handle_timeout(now);
        // For hashing a resumed file's held prefix and digest requests:
        // an MD5 block a read (the RAM store's reads are copies), so the
        // stack under the session is 192 bytes shorter than with 256.
        let mut scratch = [0u8; 64];
        // Bounded: a full window each way at most per poll.
        for _ in 0..16 {
            let mut moved = false;
            let buf = conn.input_buf();
            if !buf.is_empty() {
                let n = self.link.read(buf);
                if n > 0 {
                    conn.input_filled(now, n);
                    moved = true;
                }
            }
            let next = match self.session.progress(conn, &mut self.store, &mut scratch) {
                Ok(p) => p,
                Err(_) => Progress::Closed(ferry_core::Error::Internal),
            };
            let pending = conn.transmit_buf();
            if !pending.is_empty() {
                let n = self.link.write(pending);
                if n > 0 {
                    conn.transmit_done(n);
                    moved = true;
                }
            }
            if let Progress::Closed(_) = next {
                if conn.transmit_buf().is_empty() {
                    // Said its last word: the session ends, the link stays
                    // (the next session starts when the peer restarts it).
                    self.end();
                    return;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// A new session on a new link: the server restarted in place.
    fn start(&mut self, now: Instant) {
        self.conn.restart(now);
        self.open = true;
        self.sessions = self.sessions.wrapping_add(1);
    }

    /// Not inlined: the session's end hands its handles back to the store
    /// (a few hundred bytes of stack only while it runs).
    #[inline(never)]
    fn end(&mut self) {
        if self.open {
            self.open = false;
            self.session.end(&mut self.store);
        }
        self.session = Session::new();
    }

    /// Whether a session is open.
    pub fn in_session(&self) -> bool {
        self.open
    }
}
