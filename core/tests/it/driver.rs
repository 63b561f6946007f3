//! The embedded-io drivers over real sockets on loopback: TCP on 127.0.0.1
//! and [::1], a Unix socket, and the async driver.

#[path = "../../examples/support/memstore.rs"]
mod memstore;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Instant as StdInstant;

use embedded_io_adapters::std::FromStd;
use ferry_core::digest::md5;
use ferry_core::driver::{asynch, blocking};
use ferry_core::{
    Client, Config, Error, Instant, Overwrite, Server, ServerConfig, Stream, Verifier,
};
use memstore::MemStore;

fn clock() -> impl FnMut() -> Instant + Clone {
    let start = StdInstant::now();
    move || Instant::from_millis(start.elapsed().as_millis() as u64)
}

fn store() -> MemStore {
    let mut s = MemStore::default();
    s.users.push((
        "bob".into(),
        Verifier::new("hunter2", b"salt-bob", 4096).unwrap(),
    ));
    s
}

fn server_config() -> ServerConfig {
    ServerConfig {
        allow_exec: true,
        ..ServerConfig::new([4; 32])
    }
}

/// Serves one connection on its own thread; returns the close reason.
fn spawn_server<S: Read + Write + Send + 'static>(stream: S) -> std::thread::JoinHandle<Error> {
    std::thread::spawn(move || serve_one::<1, S>(stream, 65_536, store()).0)
}

/// Serves one connection over `stream` with a window of `W`, `buf`-byte
/// buffers and the store `st`: the close reason and the store.
fn serve_one<const W: usize, S: Read + Write>(
    stream: S,
    buf: usize,
    mut st: MemStore,
) -> (Error, MemStore) {
    let mut io = FromStd::new(stream);
    let mut server =
        Server::<_, W>::with_window(Instant::ZERO, server_config(), vec![0; buf], vec![0; buf])
            .unwrap();
    let why = blocking::serve(&mut io, &mut server, &mut st, &mut [0; 4096], clock()).unwrap();
    (why, st)
}

type Driven<S> = blocking::BlockingClient<FromStd<S>, Vec<u8>, Box<dyn FnMut() -> Instant>>;

/// A blocking client over `stream` with `buf`-byte buffers, handshake done.
fn connect<S: Read + Write>(stream: S, buf: usize) -> Driven<S> {
    let client = Client::new(Instant::ZERO, Config::default(), vec![0; buf], vec![0; buf]).unwrap();
    let clock: Box<dyn FnMut() -> Instant> = Box::new(clock());
    blocking::BlockingClient::connect(FromStd::new(stream), client, clock).unwrap()
}

fn exercise<S: Read + Write>(stream: S) {
    let mut c = connect(stream, 65_536);
    assert_eq!(
        c.login("bob", "wrong", &[1; 16]).unwrap_err().protocol(),
        Some(Error::AuthFailed)
    );
    c.login("bob", "hunter2", &[2; 16]).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let mut pos = 0;
    c.put(
        "数据.bin",
        data.len() as u64,
        Overwrite::Fail,
        false,
        |buf| {
            let n = buf.len().min(data.len() - pos);
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        },
    )
    .unwrap();
    // Same name again: refused before any body byte, session goes on.
    let err = c.put("数据.bin", 1, Overwrite::Fail, false, |_| {
        panic!("no body may be sent")
    });
    assert_eq!(err.unwrap_err().protocol(), Some(Error::Exists));
    let mut names = Vec::new();
    c.list("/", |e| names.push((e.name.to_string(), e.size)))
        .unwrap();
    assert_eq!(names, vec![("数据.bin".to_string(), 3_000_000)]);
    let mut back = Vec::new();
    let got = c
        .get("数据.bin", |d| {
            back.extend_from_slice(d);
            Ok(())
        })
        .unwrap();
    assert_eq!(got.size, 3_000_000);
    assert_eq!(md5(&back), md5(&data));
    // The negotiated digest names itself; the server's digest request
    // agrees with the transfer's.
    let alg = c.client().negotiated().unwrap().digest;
    assert_eq!(got.sum, ferry_core::digest::digest(alg, &data).unwrap());
    assert_eq!(c.digest("数据.bin").unwrap(), got.sum);
    assert_eq!(
        c.get("missing", |_| Ok(())).unwrap_err().protocol(),
        Some(Error::NotFound)
    );
    // Resume: the first 1 000 000 bytes are already here; only the rest
    // crosses, and the MD5 still covers the whole file.
    let (mut read, mut rest) = (0, Vec::new());
    let prefix = |buf: &mut [u8]| {
        let n = buf.len().min(1_000_000 - read);
        buf[..n].copy_from_slice(&data[read..read + n]);
        read += n;
        Ok(n)
    };
    c.get_resume("数据.bin", 1_000_000, prefix, |d| {
        rest.extend_from_slice(d);
        Ok(())
    })
    .unwrap();
    assert_eq!(rest, data[1_000_000..]);
    // A wrong held prefix fails the whole-file check.
    let r = c.get_resume("数据.bin", 10, |b| Ok(b.len().min(10)), |_| Ok(()));
    assert_eq!(r.unwrap_err().protocol(), Some(Error::ChecksumMismatch));
    // More held than the file has: refused before any body byte.
    let r = c.get_resume("数据.bin", 5_000_000, |_| Ok(0), |_| panic!("no body"));
    assert_eq!(r.unwrap_err().protocol(), Some(Error::BadOffset));
    assert_eq!(c.echo("still", false).unwrap().as_str(), "still");
    let mut out = Vec::new();
    assert_eq!(
        c.exec("echo 你好", |s, d| out.push((s, d.to_vec())))
            .unwrap(),
        (0, false)
    );
    assert_eq!(out, vec![(Stream::Stdout, "你好\n".as_bytes().to_vec())]);
    assert_eq!(
        c.exec("true", |_, _| panic!("no output")).unwrap(),
        (0, true)
    );
    assert_eq!(c.echo("abc", true).unwrap().as_str(), "ABC");
}

/// The whole exercise over TCP on a listener; a clean close at the end.
fn over_tcp(l: TcpListener) {
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let server = spawn_server(l.accept().unwrap().0);
    exercise(client);
    assert_eq!(server.join().unwrap(), Error::Closed);
}

#[test]
fn blocking_driver_over_tcp_ipv4() {
    over_tcp(TcpListener::bind("127.0.0.1:0").unwrap());
}

#[test]
fn blocking_driver_over_tcp_ipv6() {
    match TcpListener::bind("[::1]:0") {
        Ok(l) => over_tcp(l),
        Err(_) => eprintln!("SKIPPED: no IPv6 loopback here"),
    }
}

#[test]
fn blocking_driver_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("ferry-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ferry.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let server = spawn_server(l.accept().unwrap().0);
    exercise(client);
    assert_eq!(server.join().unwrap(), Error::Closed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_survives_a_client_that_vanishes_mid_put() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut raw = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let server = spawn_server(l.accept().unwrap().0);
    // Log in through the driver on a clone of the socket, then speak raw.
    let mut c = connect(raw.try_clone().unwrap(), 8192);
    c.login("bob", "hunter2", &[3; 16]).unwrap();
    drop(c);
    // Announce a put by hand and send part of the body, then vanish.
    let mut buf = [0u8; 256];
    let req = ferry_core::message::Message::Request(ferry_core::Request::Put {
        path: "x".try_into().unwrap(),
        size: 1000,
        overwrite: Overwrite::Fail,
        resume: false,
    });
    let n = ferry_core::frame::encode_message(&req, &mut buf).unwrap();
    raw.write_all(&buf[..n]).unwrap();
    raw.write_all(&[2, 0, 0, 0, 10, 1, 2, 3]).unwrap();
    drop(raw);
    assert_eq!(server.join().unwrap(), Error::Truncated);
}

/// The async driver, polled by a minimal executor over std sockets.
mod async_io {
    use std::future::Future;
    use std::io::{Read, Write};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    pub struct Blocking<T>(pub T);

    impl<T> embedded_io_async::ErrorType for Blocking<T> {
        type Error = std::io::Error;
    }
    impl<T: Read> embedded_io_async::Read for Blocking<T> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            self.0.read(buf)
        }
    }
    impl<T: Write> embedded_io_async::Write for Blocking<T> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.0.write(buf)
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            self.0.flush()
        }
    }

    pub fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

#[test]
fn async_driver_runs_the_same_exchange() {
    use async_io::{block_on, Blocking};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let accepted = l.accept().unwrap().0;
    let server = std::thread::spawn(move || {
        block_on(async move {
            let mut io = Blocking(accepted);
            let mut server =
                Server::new(Instant::ZERO, server_config(), vec![0; 8192], vec![0; 8192]).unwrap();
            let mut st = store();
            asynch::serve(&mut io, &mut server, &mut st, &mut [0; 4096], clock())
                .await
                .unwrap()
        })
    });
    block_on(async move {
        let client = Client::new(
            Instant::ZERO,
            Config::default(),
            vec![0; 8192],
            vec![0; 8192],
        )
        .unwrap();
        let mut c = asynch::AsyncClient::connect(Blocking(stream), client, clock())
            .await
            .unwrap();
        c.login("bob", "hunter2", &[9; 16]).await.unwrap();
        let data = vec![7u8; 100_000];
        let mut pos = 0;
        c.put("a", data.len() as u64, Overwrite::Fail, false, |buf| {
            let n = buf.len().min(data.len() - pos);
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        })
        .await
        .unwrap();
        let mut got = 0;
        c.get("a", |d| {
            got += d.len();
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(got, 100_000);
        assert_eq!(c.stat("a").await.unwrap().size, 100_000);
    });
    assert_eq!(server.join().unwrap(), Error::Closed);
}

// ---- put_many / get_many, pipelined, against `serve` ----

/// A transport that keeps a copy of every byte written through it.
struct Recorded<S>(S, std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl<S: Read> Read for Recorded<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<S: Write> Write for Recorded<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Files to upload with `put_many`; how each ended.
struct Uploads {
    files: Vec<(String, Vec<u8>)>,
    pos: Vec<usize>,
    /// Reading this item fails after this many bytes (a local read error).
    fail_read: Option<(usize, usize)>,
    accepted: Vec<usize>,
    done: Vec<Option<Result<ferry_core::digest::Sum, Error>>>,
    /// Send each pre-agreed where the client may (`docs/PROTOCOL.md#pre-agreed-puts`).
    agreed: bool,
}

impl Uploads {
    /// `files`, reading item `fail_read.0` failing after `fail_read.1`
    /// bytes; `agreed`: pre-agreed where the client may.
    fn new(files: &[(String, Vec<u8>)], fail_read: (usize, usize), agreed: bool) -> Self {
        Uploads {
            pos: vec![0; files.len()],
            fail_read: Some(fail_read),
            accepted: Vec::new(),
            done: vec![None; files.len()],
            files: files.to_vec(),
            agreed,
        }
    }
}

impl ferry_core::driver::Puts for Uploads {
    fn request<B: ferry_core::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut Client<B, W>,
    ) -> Result<(), Error> {
        let (name, data) = &self.files[i];
        if self.agreed && client.can_put_agreed() {
            return client.put_agreed(name, data.len() as u64, Overwrite::Fail);
        }
        client.put(name, data.len() as u64, Overwrite::Fail, false)
    }
    fn accepted(&mut self, i: usize, _name: Option<&str>) {
        self.accepted.push(i);
    }
    fn read(&mut self, i: usize, buf: &mut [u8]) -> Result<usize, Error> {
        let data = &self.files[i].1;
        let end = match self.fail_read {
            Some((f, n)) if f == i => {
                if self.pos[i] >= n {
                    return Err(Error::Io);
                }
                n
            }
            _ => data.len(),
        };
        let n = buf.len().min(end - self.pos[i]);
        buf[..n].copy_from_slice(&data[self.pos[i]..self.pos[i] + n]);
        self.pos[i] += n;
        Ok(n)
    }
    fn done(&mut self, i: usize, result: Result<ferry_core::digest::Sum, Error>) {
        assert!(self.done[i].is_none(), "item {i} ended twice");
        self.done[i] = Some(result);
    }
}

/// Files to fetch with `get_many`; what came and how each ended.
struct Downloads {
    names: Vec<String>,
    /// Offers of these items are refused (`Exists`: a local file in the way).
    refuse: Vec<usize>,
    /// Writing this item fails once it holds this many bytes.
    fail_write: Option<(usize, usize)>,
    got: Vec<Vec<u8>>,
    done: Vec<Option<Result<ferry_core::driver::Got, Error>>>,
}

impl ferry_core::driver::Gets for Downloads {
    fn request<B: ferry_core::Buffer, const W: usize>(
        &mut self,
        i: usize,
        client: &mut Client<B, W>,
    ) -> Result<(), Error> {
        client.get(&self.names[i])
    }
    fn offered(&mut self, i: usize, _size: u64) -> Result<(), Error> {
        if self.refuse.contains(&i) {
            return Err(Error::Exists);
        }
        Ok(())
    }
    fn write(&mut self, i: usize, data: &[u8]) -> Result<(), Error> {
        if matches!(self.fail_write, Some((f, n)) if f == i && self.got[i].len() + data.len() > n) {
            return Err(Error::NoSpace);
        }
        self.got[i].extend_from_slice(data);
        Ok(())
    }
    fn done(&mut self, i: usize, result: Result<ferry_core::driver::Got, Error>) {
        assert!(self.done[i].is_none(), "item {i} ended twice");
        self.done[i] = Some(result);
    }
}

/// The messages in a recorded client stream, after its hello.
fn sent_frames(
    stream: &[u8],
) -> Vec<(
    ferry_core::frame::FrameKind,
    Option<ferry_core::message::Message>,
)> {
    use ferry_core::frame::{self, FrameKind, HEADER_LEN, HELLO_LEN};
    let mut out = Vec::new();
    let mut rest = &stream[HELLO_LEN..];
    while rest.len() >= HEADER_LEN {
        let (kind, len) =
            frame::read_header(rest[..HEADER_LEN].try_into().unwrap(), u32::MAX).unwrap();
        let payload = &rest[HEADER_LEN..HEADER_LEN + len as usize];
        let msg = (kind == FrameKind::Msg).then(|| frame::decode_message(payload).unwrap());
        out.push((kind, msg));
        rest = &rest[HEADER_LEN + len as usize..];
    }
    out
}

/// `serve` with a window of `W` over `b`, in a thread, the store holding
/// a file `taken`; the reason it stopped and the store.
fn serve_with_taken<const W: usize, S: Read + Write + Send + 'static>(
    b: S,
) -> std::thread::JoinHandle<(Error, MemStore)> {
    let mut st = store();
    st.files.insert("taken".into(), b"old".to_vec());
    std::thread::spawn(move || serve_one::<W, S>(b, 16_384, st))
}

/// A client of window 8 over `stream`, logged in as bob.
fn window_8_client<S: Read + Write>(
    stream: S,
) -> blocking::BlockingClient<FromStd<S>, Vec<u8>, Box<dyn FnMut() -> Instant>, 8> {
    let client = Client::<_, 8>::with_window(
        Instant::ZERO,
        Config::default(),
        vec![0; 16_384],
        vec![0; 16_384],
    )
    .unwrap();
    let clock: Box<dyn FnMut() -> Instant> = Box::new(clock());
    let mut c = blocking::BlockingClient::connect(FromStd::new(stream), client, clock).unwrap();
    c.login("bob", "hunter2", &[5; 16]).unwrap();
    c
}

/// `n` files to upload, sizes growing by `step`, the one at `taken`
/// named `taken` (it exists on the server).
fn upload_files(n: usize, prefix: &str, step: usize, taken: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("{prefix}{i:02}"),
                (0..(i * step + 5)).map(|b| (b * 7 + i) as u8).collect(),
            )
        })
        .collect();
    files[taken].0 = "taken".into();
    files
}

/// Every put ended once, as it should: `taken` refused (`Exists`), the
/// one whose read failed with `Io`, the others stored with the digest of
/// their bytes.
fn assert_puts_ended(
    done: &[Option<Result<ferry_core::digest::Sum, Error>>],
    files: &[(String, Vec<u8>)],
    taken: usize,
    unreadable: usize,
) {
    for (i, d) in done.iter().enumerate() {
        match (i, d) {
            (i, Some(Err(Error::Exists))) if i == taken => {}
            (i, Some(Err(Error::Io))) if i == unreadable => {}
            (_, Some(Ok(sum))) if i != taken && i != unreadable => {
                let want = ferry_core::digest::digest(sum.algorithm(), &files[i].1);
                assert_eq!(Some(*sum), want, "put {i}");
            }
            _ => panic!("put {i}: {d:?}"),
        }
    }
}

/// `put_many` and `get_many` with a window of 8 against `serve` with a
/// window of 8, over a socket pair: 20 files each way, with a refused
/// put, a local read failure, a missing file, a refused offer and a
/// local write failure among them. Every item ends once, as it should;
/// the first eight requests go out back to back.
#[test]
fn put_many_and_get_many_against_serve_with_a_window() {
    let (a, b) = UnixStream::pair().unwrap();
    let up = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let down = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server_out = down.clone();
    let server = serve_with_taken::<8, _>(Recorded(b, server_out));
    // The client in a thread of its own, so that a batch that hangs (both
    // sides waiting to read) fails the test instead of stalling it.
    let (tx, rx) = std::sync::mpsc::channel();
    let client_out = up.clone();
    std::thread::spawn(move || {
        let up = client_out;
        let mut c = window_8_client(Recorded(a, up.clone()));
        assert_eq!(c.client().negotiated().unwrap().window, 8);
        let login_bytes = up.lock().unwrap().len();

        let files = upload_files(20, "f", 3_001, 3);
        let mut puts = Uploads::new(&files, (11, 20_000), false);
        c.put_many(20, &mut puts).unwrap();
        assert_puts_ended(&puts.done, &files, 3, 11);
        assert!(!puts.accepted.contains(&3));
        // Eight requests back to back before any body: pipelined.
        let frames = sent_frames(&up.lock().unwrap()[..]);
        let skip = sent_frames(&up.lock().unwrap()[..login_bytes]).len();
        let first: Vec<_> = frames[skip..skip + 9].iter().map(|f| f.0).collect();
        assert!(
            frames[skip..skip + 8]
                .iter()
                .all(|f| matches!(f.1, Some(ferry_core::message::Message::Request(_)))),
            "{first:?}"
        );
        assert!(c.client().is_idle());

        let mut names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        names[5] = "missing".into();
        let mut gets = Downloads {
            names,
            refuse: vec![7],
            fail_write: Some((13, 10_000)),
            got: vec![Vec::new(); 20],
            done: vec![None; 20],
        };
        c.get_many(20, &mut gets).unwrap();
        for (i, d) in gets.done.iter().enumerate() {
            let r = d.as_ref().unwrap_or_else(|| panic!("get {i} never ended"));
            match i {
                5 => assert_eq!(r, &Err(Error::NotFound)),
                7 => assert_eq!(r, &Err(Error::Exists)),
                13 => assert_eq!(r, &Err(Error::NoSpace)),
                3 => assert_eq!(gets.got[i], b"old"),
                // The put whose read failed was never stored.
                11 => assert_eq!(r, &Err(Error::NotFound)),
                _ => {
                    let got = r.as_ref().unwrap();
                    assert_eq!(got.size, files[i].1.len() as u64, "get {i}");
                    assert_eq!(gets.got[i], files[i].1, "get {i}");
                }
            }
        }
        assert!(c.client().is_idle());

        // Listings pipelined (`list_many`): five go out back to back,
        // each answered whole, in order.
        struct Listed {
            counts: Vec<usize>,
            done: Vec<Option<Result<(), Error>>>,
        }
        impl ferry_core::driver::Lists for Listed {
            fn path(&self, _: usize) -> &str {
                ""
            }
            fn entry(&mut self, i: usize, _: &ferry_core::Entry) {
                assert!(self.done[i].is_none(), "an entry after its end");
                self.counts[i] += 1;
            }
            fn done(&mut self, i: usize, result: Result<(), Error>) {
                assert!(self.done[..i].iter().all(Option::is_some), "out of order");
                self.done[i] = Some(result);
            }
        }
        let before = sent_frames(&up.lock().unwrap()[..]).len();
        let mut l = Listed {
            counts: vec![0; 5],
            done: vec![None; 5],
        };
        c.list_many(5, &mut l).unwrap();
        assert_eq!(l.done, vec![Some(Ok(())); 5]);
        assert!(l.counts.iter().all(|&n| n == 19), "{:?}", l.counts);
        let frames = sent_frames(&up.lock().unwrap()[..]);
        assert!(
            frames[before..before + 5].iter().all(|f| matches!(
                f.1,
                Some(ferry_core::message::Message::Request(
                    ferry_core::message::Request::List { .. }
                ))
            )),
            "{:?}",
            &frames[before..]
        );
        assert!(c.client().is_idle());
        // The session goes on after the batches.
        assert_eq!(c.echo("after", false).unwrap().as_str(), "after");
        drop(c);
        tx.send(()).unwrap();
    });
    match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let last = |s: &[u8]| -> Vec<String> {
                let f = sent_frames(s);
                f[f.len().saturating_sub(12)..]
                    .iter()
                    .map(|(k, m)| m.as_ref().map_or(format!("{k:?}"), |m| format!("{m:?}")))
                    .collect()
            };
            panic!(
                "the batches hung: both sides wait to read. Last sent by the client: \
                 {:#?}\nby the server: {:#?}",
                last(&up.lock().unwrap()),
                last(&down.lock().unwrap())
            )
        }
        Err(e) => panic!("the client failed (its panic is above): {e}"),
    }
    let (why, st) = server.join().unwrap();
    assert_eq!(why, Error::Closed);
    assert_eq!(st.stored, 18);
}

/// `put_many` sending pre-agreed puts, more of them (40) than the client
/// has room for (8) and past the server's window (4), against `serve`
/// over a socket pair: a refused one (its name exists) and a local read
/// failure among them. Every item ends once, as it should, and the rest
/// are stored with their digest.
#[test]
fn put_many_pre_agreed_past_the_clients_room() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = serve_with_taken::<4, _>(b);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut c = window_8_client(a);
        let files = upload_files(40, "g", 301, 5);
        let mut puts = Uploads::new(&files, (17, 2_000), true);
        c.put_many(40, &mut puts).unwrap();
        tx.send((puts, files)).unwrap();
        drop(c);
    });
    let (puts, files) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the batch hung");
    assert_puts_ended(&puts.done, &files, 5, 17);
    let (_, st) = server.join().unwrap();
    assert_eq!(st.files.get("taken").unwrap(), b"old");
    for (i, (n, d)) in files.iter().enumerate() {
        if i != 5 && i != 17 {
            assert_eq!(st.files.get(n), Some(d), "{n}");
        }
    }
}
