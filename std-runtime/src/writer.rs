//! A body written to its file by a thread of its own.

use std::io::{self, Write};

use ferry_core::Error;

use crate::mapping::map_io;

/// Writes a body's chunks on a thread of its own, in order, through a
/// small pool of buffers (no allocation per chunk), so the receiving side
/// hashes the next chunk while the last one is written. Used where hashing
/// is the bottleneck (MD5, SHA-256) and the body is large; measured A/B in
/// docs/BENCHMARKS.md.
///
/// Dropping a writer (a session that ends without `keep`, `commit` or
/// `discard`) also waits for it, so no write lands after its owner is gone.
pub(crate) struct Writer {
    /// The buffer being filled, handed over once it holds [`Self::BATCH`].
    filling: Option<Vec<u8>>,
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Writer {
    /// Smaller bodies are written in place: a thread is not worth it.
    pub(crate) const MIN_BODY: u64 = 8 << 20;
    /// Buffers in flight between the session and the writer.
    const DEPTH: usize = 3;
    /// Bytes handed over at a time: each handover wakes the other thread,
    /// so several chunks go together.
    const BATCH: usize = 1 << 20;

    pub(crate) fn start(mut file: std::fs::File) -> Result<Writer, Error> {
        let (full, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::DEPTH);
        let (back, empty) = std::sync::mpsc::sync_channel(Self::DEPTH + 1);
        for _ in 0..Self::DEPTH {
            let _ = back.send(Vec::new());
        }
        let thread = std::thread::Builder::new()
            .name("ferry-upload".into())
            .spawn(move || -> io::Result<()> {
                for buf in rx {
                    let r = file.write_all(&buf);
                    let _ = back.send(buf);
                    // On a failure stop: the session's next write notices.
                    r?;
                }
                Ok(())
            })
            .map_err(|e| map_io(&e))?;
        Ok(Writer {
            filling: None,
            full: Some(full),
            empty,
            thread: Some(thread),
        })
    }

    /// Queues `data`; fails once the thread has stopped (then `finish`
    /// says why).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let buf = match self.filling.as_mut() {
            Some(buf) => buf,
            None => {
                // A buffer comes back once written; none means the thread
                // stopped.
                let Ok(mut buf) = self.empty.recv() else {
                    return Err(Error::Io);
                };
                buf.clear();
                self.filling.insert(buf)
            }
        };
        buf.extend_from_slice(data);
        if buf.len() >= Self::BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> Result<(), Error> {
        let Some(buf) = self.filling.take() else {
            return Ok(());
        };
        let full = self.full.as_ref().ok_or(Error::Io)?;
        full.send(buf).map_err(|_| Error::Io)
    }

    /// Waits until every byte is written; the first write error, if any.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        self.join()
    }

    fn join(&mut self) -> Result<(), Error> {
        let handed = self.hand_over();
        drop(self.full.take());
        match self.thread.take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => handed,
            Some(Ok(Err(e))) => Err(map_io(&e)),
            Some(Err(_)) => Err(Error::Internal),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Closes `file` on a thread of its own when it is large. Opened just
/// before a rename replaces it, it is the replaced file's last reference
/// once the rename is done, and its pages are freed when it closes: for
/// a 512 MiB file on tmpfs, 4 % of the server's CPU for a whole BLAKE3
/// put (`perf`: `renameat2` → `shmem_evict_inode`), on the thread that
/// answers the client. Small files close in place.
pub(crate) fn close_in_background(file: std::fs::File) {
    if file.metadata().is_ok_and(|md| md.len() >= Writer::MIN_BODY) {
        // Without a thread the closure, and the file, close here.
        let _ = std::thread::Builder::new()
            .name("ferry-release".into())
            .spawn(move || drop(file));
    }
}

/// Whether a body is worth a writer thread: large, and hashed with a
/// digest slow enough that hashing is the bottleneck.
pub(crate) fn worth_it(body: u64, digest: Option<ferry_core::digest::Algorithm>) -> bool {
    body >= Writer::MIN_BODY && digest != Some(ferry_core::digest::Algorithm::Blake3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_thread_writes_in_order_and_reports_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = Writer::start(std::fs::File::create(&path).unwrap()).unwrap();
        let mut want = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i; 1000 + usize::from(i)];
            w.write(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);

        // /dev/full: every write fails with ENOSPC; the session hears
        // "no space" at a later write or at the end, never success.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        if let Ok(full) = full {
            let mut w = Writer::start(full).unwrap();
            // A write fails once the thread has stopped; the thread's own
            // error (what `Upload::write` reports) says why.
            let mut stopped = false;
            let batch = vec![1; Writer::BATCH];
            for _ in 0..(Writer::DEPTH * 4) {
                if w.write(&batch).is_err() {
                    stopped = true;
                    break;
                }
            }
            assert!(stopped, "writes into /dev/full never failed");
            assert_eq!(w.finish(), Err(Error::NoSpace));
        }
    }
}
