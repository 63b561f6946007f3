//! The device on smoltcp: `N` session sockets plus one that only answers
//! "server busy", all listening on [`PORT`], each paired with a ferry-core
//! `Server`. The caller owns the interface, the socket set and the socket
//! buffers; [`FerryDevice::poll`] moves bytes between sockets and sessions.

use ferry_core::app::{Progress, Session};
use ferry_core::{Instant, ServerConfig};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::app::{Auth, Conn, DeviceStore};
use crate::store::RamStore;

/// The TCP port Ferry listens on.
pub const PORT: u16 = 7070;

/// The application of one session over the device's store.
type AppSession<'s, const FILES: usize, const BYTES: usize> =
    Session<DeviceStore<'s, FILES, BYTES>>;

struct Slot<'s, const FILES: usize, const BYTES: usize> {
    handle: SocketHandle,
    conn: Option<Conn>,
    session: AppSession<'s, FILES, BYTES>,
}

/// A Ferry server on smoltcp with a RAM store of `FILES` files and `BYTES`
/// bytes, serving `N` sessions at once.
pub struct FerryDevice<'s, const FILES: usize, const BYTES: usize, const N: usize> {
    /// The files (borrowed, so a firmware can place the store in a static
    /// of its own: no 256 KiB copy through the stack), with who may log
    /// in; derefs to the [`RamStore`].
    pub store: DeviceStore<'s, FILES, BYTES>,
    slots: [Slot<'s, FILES, BYTES>; N],
    busy: Slot<'s, FILES, BYTES>,
    config: ServerConfig,
}

impl<'s, const FILES: usize, const BYTES: usize, const N: usize> FerryDevice<'s, FILES, BYTES, N> {
    /// A device on `sessions` (one TCP socket each) plus `busy`, the socket
    /// that tells one client too many that the server is full. `random`
    /// fills buffers with random bytes (nonces, the server secret).
    pub fn new(
        store: &'s mut RamStore<FILES, BYTES>,
        sessions: [SocketHandle; N],
        busy: SocketHandle,
        auth: Auth,
        random: fn(&mut [u8]),
    ) -> Self {
        let config = crate::app::server_config(&auth, random);
        let slot = |handle| Slot {
            handle,
            conn: None,
            session: Session::new(),
        };
        FerryDevice {
            store: DeviceStore {
                ram: store,
                auth,
                random,
                now: Instant::ZERO,
            },
            slots: sessions.map(slot),
            busy: slot(busy),
            config,
        }
    }

    /// Refuses every write (put, mkdir, remove, rename) when `on`: the
    /// core server enforces it and says so in its hello. (Sessions already
    /// open keep the setting they started with.)
    pub fn set_read_only(&mut self, on: bool) {
        self.config.read_only = on;
    }

    /// Serves every socket once; call after each `Interface::poll`.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'_>) {
        self.store.now = now;
        let busy = core::iter::once((&mut self.busy, true));
        for (slot, is_busy) in self.slots.iter_mut().map(|s| (s, false)).chain(busy) {
            pump(slot, is_busy, &mut self.store, &self.config, now, sockets);
        }
    }

    /// The earliest session deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref()?.poll_timeout())
            .min()
    }

    /// Sessions currently connected.
    pub fn active_sessions(&self) -> usize {
        self.slots.iter().filter(|s| s.conn.is_some()).count()
    }
}

/// Moves bytes between one socket and its session, and lets the core's
/// session answer what came in.
fn pump<'s, const FILES: usize, const BYTES: usize>(
    slot: &mut Slot<'s, FILES, BYTES>,
    busy: bool,
    store: &mut DeviceStore<'s, FILES, BYTES>,
    config: &ServerConfig,
    now: Instant,
    sockets: &mut SocketSet<'_>,
) {
    let sock = sockets.get_mut::<tcp::Socket>(slot.handle);
    if !sock.is_open() {
        // Closed (or reset): drop the session, listen again.
        if slot.conn.take().is_some() {
            slot.session.end(store);
        }
        slot.session = Session::new();
        let _ = sock.listen(PORT);
        return;
    }
    if slot.conn.is_none() {
        if sock.state() != tcp::State::Established {
            return;
        }
        let bufs = ([0; crate::app::FRAME_BUF], [0; crate::app::FRAME_BUF]);
        let c = if busy {
            Conn::new_busy(now, *config, bufs.0, bufs.1)
        } else {
            Conn::new(now, *config, bufs.0, bufs.1)
        };
        match c {
            Ok(c) => slot.conn = Some(c),
            Err(_) => {
                sock.abort();
                return;
            }
        }
    }
    let Some(conn) = slot.conn.as_mut() else {
        return;
    };
    conn.handle_timeout(now);
    // For hashing a resumed get's held prefix.
    let mut scratch = [0u8; 256];
    let mut eof = false;
    // Bounded, so one busy session cannot starve the others.
    for _ in 0..64 {
        // Peer bytes straight into the session's input buffer, as much as
        // it takes. Draining the socket here, not one frame per poll, keeps
        // the TCP window open: otherwise a Linux sender waits for a window
        // update that only comes at the next wake-up (100 ms on TAP).
        let mut got = false;
        while sock.can_recv() {
            let buf = conn.input_buf();
            if buf.is_empty() {
                break;
            }
            match sock.recv_slice(buf) {
                Ok(n) if n > 0 => {
                    conn.input_filled(now, n);
                    got = true;
                }
                _ => break,
            }
        }
        if !eof && !sock.may_recv() {
            conn.handle_eof(now);
            eof = true;
        }
        let Ok(next) = slot.session.progress(conn, store, &mut scratch) else {
            slot.session.end(store);
            sock.abort();
            return;
        };
        let mut sent = false;
        while sock.can_send() {
            let pending = conn.transmit_buf();
            if pending.is_empty() {
                break;
            }
            match sock.send_slice(pending) {
                Ok(n) if n > 0 => {
                    conn.transmit_done(n);
                    sent = true;
                }
                _ => break,
            }
        }
        let again = match next {
            Progress::Closed(_) => false,
            // More may follow once the socket takes it.
            Progress::Transmit => sent || got,
            Progress::Wait => got,
        };
        if !again {
            break;
        }
    }
    if conn.is_closed() {
        sock.close();
    }
}
