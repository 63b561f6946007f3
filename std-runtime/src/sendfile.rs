//! Get bodies sent straight from the file with sendfile(2), not through
//! user space.
//!
//! When the server keeps a file's digest (`crate::kept_digests`), the core
//! neither hashes nor reads a get's body bytes once they are in its output
//! buffer: it frames them and counts them. So for such a get the session
//! leaves each chunk's payload in the file — `Store::read_at` records
//! where in the output buffer it belongs and which file bytes go there
//! ([`FileSpans::defer`]) — and the driver, writing the output, sends the
//! frame header the core wrote from the buffer and the payload from the
//! page cache ([`Plain::sendfile`]). The file's read copy and the copy out
//! of the buffer become one kernel-side transfer (on TCP the socket takes
//! references to the file's pages).
//!
//! Plain TCP and Unix sockets only: TLS and the serial link need the
//! bytes themselves. The client checks every byte against the digest, as
//! for any get, so a file changed under a send is caught there; a file
//! that changed since its offer is refused before its chunk is framed
//! (`Error::Io`, as a read would), and one that shrinks between that
//! check and the send ends the connection (the frame was promised).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, Interest};

/// Which connections send kept-digest get bodies from the file
/// (`ferry serve --sendfile`).
///
/// On loopback it moves work rather than saving it: the server's read copy
/// was what brought the file into the cache the client then copies from,
/// and without it the client — the side that limits a get — copies from
/// memory instead. Measured on a 512 MiB BLAKE3 get over 127.0.0.1 (5
/// interleaved runs): server CPU 195 → 80 ms, client 405 → 473 ms
/// (bench/notes.md). Over a network the client's copy is from its own
/// NIC's buffers either way, so only the server's saving remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendFile {
    /// Peers on other machines: not loopback addresses, not Unix sockets.
    #[default]
    Remote,
    /// Every plain TCP and Unix-socket connection.
    Always,
    /// None: every body is read and written through the server's buffer.
    Never,
}

impl SendFile {
    /// Whether a connection from `peer` (`None`: a Unix socket) sends
    /// from files.
    pub(crate) fn applies(self, peer: Option<std::net::IpAddr>) -> bool {
        match self {
            SendFile::Always => true,
            SendFile::Never => false,
            SendFile::Remote => peer.is_some_and(|ip| !ip.is_loopback()),
        }
    }
}

/// Payload bytes of one framed chunk, left in the file.
pub(crate) struct Span {
    /// Where the payload sits in the output buffer (an address: the
    /// buffer is a mapping that never moves, and the core does not
    /// compact it while it holds queued bytes).
    addr: usize,
    len: usize,
    file: Arc<File>,
    offset: u64,
}

/// The payloads queued in the output buffer that are to come from files,
/// in buffer order.
#[derive(Default)]
pub(crate) struct FileSpans {
    /// The core's output buffer, when the connection is a plain socket
    /// (else nothing is deferred).
    output: Option<Range<usize>>,
    queue: VecDeque<Span>,
}

/// What the driver writes next.
pub(crate) enum Next<'a> {
    /// This many bytes from the output buffer.
    Buffer(usize),
    /// The payload at the front of the buffer, from its file.
    File(&'a Span),
}

impl FileSpans {
    /// Spans for a connection whose core writes into `output`.
    pub(crate) fn new(output: &[u8]) -> FileSpans {
        let start = output.as_ptr() as usize;
        FileSpans {
            output: Some(start..start + output.len()),
            ..FileSpans::default()
        }
    }

    /// Called before the core runs: every span queued before was sent,
    /// or belongs to a chunk the core never framed.
    pub(crate) fn begin(&mut self) {
        self.queue.clear();
    }

    /// Takes `len` bytes at `offset` of `file` as the payload of the chunk
    /// the core is filling in `buf`; `false` (nothing taken) when `buf`
    /// is not in the output buffer or this connection cannot send from
    /// files.
    pub(crate) fn defer(&mut self, buf: &[u8], file: &Arc<File>, offset: u64, len: usize) -> bool {
        let addr = buf.as_ptr() as usize;
        let inside = self
            .output
            .as_ref()
            .is_some_and(|o| o.contains(&addr) && addr + len <= o.end && len <= buf.len());
        if !inside || len == 0 {
            return false;
        }
        // A chunk filled before at this place or after it was never framed.
        while self.queue.back().is_some_and(|s| s.addr >= addr) {
            self.queue.pop_back();
        }
        self.queue.push_back(Span {
            addr,
            len,
            file: file.clone(),
            offset,
        });
        true
    }

    /// What to write next out of `pending` (the core's queued output).
    /// `Err` if a span straddles the queue's end: a bug, as the core
    /// frames whole chunks.
    pub(crate) fn next(&mut self, pending: &[u8]) -> Result<Next<'_>, ferry_core::Error> {
        let base = pending.as_ptr() as usize;
        let end = base + pending.len();
        // Behind what is being written: never framed.
        while self.queue.front().is_some_and(|s| s.addr < base) {
            self.queue.pop_front();
        }
        match self.queue.front() {
            Some(s) if s.addr < end && s.addr + s.len > end => Err(ferry_core::Error::Internal),
            Some(s) if s.addr == base => Ok(Next::File(s)),
            Some(s) if s.addr < end => Ok(Next::Buffer(s.addr - base)),
            _ => Ok(Next::Buffer(pending.len())),
        }
    }

    /// `n` bytes of the front span went out.
    pub(crate) fn sent(&mut self, n: usize) {
        if let Some(s) = self.queue.front_mut() {
            s.addr += n;
            s.len -= n.min(s.len);
            s.offset += n as u64;
            if s.len == 0 {
                self.queue.pop_front();
            }
        }
    }
}

/// A stream the server serves a session over.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// The socket itself where bytes written to it reach the peer as
    /// they are; `None` under TLS and on the serial link.
    fn plain(&self) -> Option<Plain<'_>> {
        None
    }
}

/// A plain socket, to send file bytes into.
pub(crate) enum Plain<'a> {
    Tcp(&'a tokio::net::TcpStream),
    Unix(&'a tokio::net::UnixStream),
}

impl Socket for tokio::net::TcpStream {
    fn plain(&self) -> Option<Plain<'_>> {
        Some(Plain::Tcp(self))
    }
}

impl Socket for tokio::net::UnixStream {
    fn plain(&self) -> Option<Plain<'_>> {
        Some(Plain::Unix(self))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket for tokio_rustls::server::TlsStream<S> {}

impl Socket for tokio::io::DuplexStream {}

impl Plain<'_> {
    /// Writes the bytes queued ahead of a payload sent from a file (a
    /// frame header, mostly): on TCP with `MSG_MORE`, so the kernel sends
    /// them in one segment with the payload that follows instead of a
    /// 5-byte one of their own (which cost the receiving client a wake-up
    /// and a read per chunk). `None`: write them as usual.
    pub(crate) async fn send_ahead(&self, bytes: &[u8]) -> Option<io::Result<usize>> {
        let Plain::Tcp(s) = self else {
            return None;
        };
        loop {
            if let Err(e) = s.writable().await {
                return Some(Err(e));
            }
            let r = s.try_io(Interest::WRITABLE, || {
                rustix::net::send(s, bytes, rustix::net::SendFlags::MORE).map_err(io::Error::from)
            });
            match r {
                Err(e) if try_again(&e) => {}
                r => return Some(r),
            }
        }
    }

    /// Sends up to `span.len` bytes of its file from its offset, waiting
    /// until the socket takes some; how many went. 0: the file ended
    /// early.
    pub(crate) async fn sendfile(&self, span: &Span) -> io::Result<usize> {
        fn send(to: impl std::os::fd::AsFd, span: &Span) -> io::Result<usize> {
            let mut at = span.offset;
            rustix::fs::sendfile(to, &*span.file, Some(&mut at), span.len).map_err(io::Error::from)
        }
        loop {
            let r = match self {
                Plain::Tcp(s) => {
                    s.writable().await?;
                    s.try_io(Interest::WRITABLE, || send(s, span))
                }
                Plain::Unix(s) => {
                    s.writable().await?;
                    s.try_io(Interest::WRITABLE, || send(s, span))
                }
            };
            match r {
                Err(e) if try_again(&e) => {}
                r => return r,
            }
        }
    }
}

/// A socket's "not now": wait until it is writable and try again.
fn try_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<File> {
        Arc::new(tempfile::tempfile().unwrap())
    }

    #[test]
    fn spans_are_found_in_the_queued_output_and_stale_ones_dropped() {
        let out = vec![0u8; 1000];
        let f = file();
        let mut spans = FileSpans::new(&out);
        spans.begin();
        // Not in the output buffer (a scratch buffer): read as usual.
        let scratch = vec![0u8; 100];
        assert!(!spans.defer(&scratch, &f, 0, 100));
        // Header 5 bytes, payload 100, header, payload 50.
        assert!(spans.defer(&out[5..105], &f, 0, 100));
        assert!(spans.defer(&out[110..200], &f, 100, 50));
        let pending = &out[0..160];
        assert!(matches!(spans.next(pending), Ok(Next::Buffer(5))));
        assert!(
            matches!(spans.next(&out[5..160]), Ok(Next::File(s)) if s.len == 100 && s.offset == 0)
        );
        spans.sent(40);
        assert!(
            matches!(spans.next(&out[45..160]), Ok(Next::File(s)) if s.len == 60 && s.offset == 40)
        );
        spans.sent(60);
        assert!(matches!(spans.next(&out[105..160]), Ok(Next::Buffer(5))));
        assert!(matches!(spans.next(&out[110..160]), Ok(Next::File(s)) if s.len == 50));
        spans.sent(50);
        assert!(matches!(spans.next(&out[160..160]), Ok(Next::Buffer(0))));

        // A chunk filled again at the same place replaces the one never
        // framed; a span past the queue's end is a bug, not a send.
        spans.begin();
        assert!(spans.defer(&out[5..105], &f, 0, 100));
        assert!(spans.defer(&out[5..105], &f, 7, 30));
        assert!(matches!(spans.next(&out[5..35]), Ok(Next::File(s)) if s.offset == 7));
        assert!(spans.next(&out[5..20]).is_err());
    }

    #[test]
    fn by_default_only_peers_on_other_machines_are_sent_from_files() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: std::net::IpAddr = "::1".parse().unwrap();
        let far: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!SendFile::Remote.applies(Some(lo)));
        assert!(!SendFile::Remote.applies(Some(lo6)));
        assert!(
            !SendFile::Remote.applies(None),
            "a Unix socket is this machine"
        );
        assert!(SendFile::Remote.applies(Some(far)));
        assert!(SendFile::Always.applies(Some(lo)) && SendFile::Always.applies(None));
        assert!(!SendFile::Never.applies(Some(far)));
    }

    #[test]
    fn a_connection_that_cannot_send_files_defers_nothing() {
        let out = vec![0u8; 100];
        let mut spans = FileSpans::default();
        assert!(!spans.defer(&out[5..50], &file(), 0, 45));
        assert!(matches!(spans.next(&out), Ok(Next::Buffer(100))));
    }

    #[tokio::test]
    async fn sendfile_moves_the_file_bytes_into_a_socket() {
        use std::io::Write;
        use tokio::io::AsyncReadExt;
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let f = Arc::new(f);
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut span = Span {
            addr: 0,
            len: 250_000,
            file: f,
            offset: 1000,
        };
        let plain = a.plain().unwrap();
        while span.len > 0 {
            let n = plain.sendfile(&span).await.unwrap();
            assert!(n > 0);
            span.len -= n;
            span.offset += n as u64;
        }
        drop(a);
        assert_eq!(reader.await.unwrap(), data[1000..251_000]);
    }
}
