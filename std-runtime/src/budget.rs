//! What one session may hold open, whatever its window: a v3 session may
//! have 1024 gets offered or puts accepted ahead of their bodies, and an
//! open file per request let one anonymous client take every descriptor
//! the server had (20 sessions: 20 000). Bodies go one at a time, in
//! order, so a few open files per session serve any window; the others
//! are opened when their body starts.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Files a session keeps open for gets offered and not yet sent (the
/// one being sent may take one more).
pub const GET_FILES: usize = 4;

/// Directories a session keeps open for puts accepted ahead of their
/// bodies: such a put's part file is made in the very directory it was
/// accepted in even if that is renamed meanwhile. Later ones reopen
/// theirs by path when their first byte comes (and fail if it moved).
pub const PUT_DIRS: usize = 2;

/// Descriptors one logged-in session may hold at once: its socket; the
/// get files ([`GET_FILES`] and the one being sent); the put directories
/// ([`PUT_DIRS`]) and the part being written with its directory and the
/// writer thread's copy; a listing; a command's pipes.
/// `tests/tests/descriptors.rs` counts them under window-1024 attacks.
pub const SESSION_FDS: usize = 16;

/// A count of things held open, shared by one session's handles.
#[derive(Clone, Default)]
pub struct Held(Arc<AtomicUsize>);

/// One counted thing; uncounted when dropped.
pub struct Counted(Arc<AtomicUsize>);

impl Held {
    /// Counts one more, unless `limit` are held already.
    pub fn take(&self, limit: usize) -> Option<Counted> {
        self.0
            .fetch_update(SeqCst, SeqCst, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Counted(self.0.clone()))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
