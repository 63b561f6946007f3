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
    std::thread::spawn(move || {
        let mut io = FromStd::new(stream);
        let mut server = Server::new(
            Instant::ZERO,
            server_config(),
            vec![0; 65_536],
            vec![0; 65_536],
        )
        .unwrap();
        let mut st = store();
        blocking::serve(&mut io, &mut server, &mut st, &mut [0; 4096], clock()).unwrap()
    })
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
