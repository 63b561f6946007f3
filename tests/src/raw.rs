//! A client that speaks the protocol by hand, frame by frame, for tests
//! that must interleave sessions at exact points (two puts of one name,
//! a cancel after the first chunk) — what the real CLI never does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferry_core::digest::{digest, Algorithm, Sum};
use ferry_core::frame::{self, FrameKind, HEADER_LEN, HELLO_LEN};
use ferry_core::message::{bounded, Message, Overwrite, Request};

use crate::raw_hello;

/// One frame from the server.
#[derive(Debug)]
pub enum Frame {
    /// A control message.
    Msg(Box<Message>),
    /// Body or exec output bytes (the frame kind says which).
    Bytes(FrameKind, Vec<u8>),
}

/// An anonymous session on `addr`, MD5 negotiated (the raw hello offers
/// MD5 only), logged in.
pub struct Raw {
    s: TcpStream,
    /// The server's hello, as it came.
    pub server_hello: [u8; HELLO_LEN],
}

impl Raw {
    /// Connects, exchanges hellos and logs in anonymously.
    pub fn login(addr: &str) -> Raw {
        Self::login_with(addr, raw_hello())
    }

    /// As [`Self::login`], speaking version 3 with `window` requests in
    /// flight (`docs/PROTOCOL.md#versions`).
    pub fn login_v3(addr: &str, window: u16) -> Raw {
        let mut hello = frame::Hello::decode(&raw_hello()).expect("hello");
        hello.flags = frame::FLAG_V3 | ((window - 1) << frame::WINDOW_SHIFT);
        Self::login_with(addr, hello.encode())
    }

    fn login_with(addr: &str, hello: [u8; HELLO_LEN]) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        let mut r = Raw {
            s,
            server_hello: [0; HELLO_LEN],
        };
        r.s.write_all(&hello).unwrap();
        r.s.read_exact(&mut r.server_hello).expect("server hello");
        r.send(&Message::Anonymous);
        match r.msg() {
            Message::LoginOk => r,
            m => panic!("login: {m:?}"),
        }
    }

    /// A second handle on the connection, to write from another thread
    /// while this one reads.
    pub fn writer(&self) -> TcpStream {
        self.s.try_clone().expect("clone the socket")
    }

    /// Sends one control message.
    pub fn send(&mut self, m: &Message) {
        self.s.write_all(&crate::raw_frame(m)).unwrap();
    }

    /// Sends a request.
    pub fn request(&mut self, r: Request) {
        self.send(&Message::Request(r));
    }

    /// Sends body bytes as Data frames of at most 16 KiB.
    pub fn data(&mut self, body: &[u8]) {
        for chunk in body.chunks(16 * 1024) {
            let mut h = [0u8; HEADER_LEN];
            frame::write_header(&mut h, FrameKind::Data, chunk.len() as u32);
            self.s.write_all(&h).unwrap();
            self.s.write_all(chunk).unwrap();
        }
    }

    /// The next frame (panics on a closed connection or a 20 s silence).
    pub fn recv(&mut self) -> Frame {
        self.try_recv().expect("connection closed")
    }

    /// The next frame, or `None` once the server closed.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let mut h = [0u8; HEADER_LEN];
        self.s.read_exact(&mut h).ok()?;
        let (kind, len) = frame::read_header(&h, 1 << 20).expect("frame header");
        let mut payload = vec![0u8; len as usize];
        self.s.read_exact(&mut payload).ok()?;
        Some(match kind {
            FrameKind::Msg => {
                Frame::Msg(Box::new(frame::decode_message(&payload).expect("message")))
            }
            k => Frame::Bytes(k, payload),
        })
    }

    /// The next control message, skipping nothing (panics on bytes).
    pub fn msg(&mut self) -> Message {
        match self.recv() {
            Frame::Msg(m) => *m,
            f => panic!("expected a message, got {f:?}"),
        }
    }

    /// `Put` request; returns the server's answer (Accept or Error).
    pub fn put_request(&mut self, path: &str, size: u64, overwrite: Overwrite) -> Message {
        self.request(Request::Put {
            path: bounded(path, ferry_core::Error::InvalidPath).unwrap(),
            size,
            overwrite,
            resume: false,
        });
        self.msg()
    }

    /// The MD5 trailer of `body`.
    pub fn trailer(&mut self, body: &[u8]) {
        let sum: Sum = digest(Algorithm::Md5, body).unwrap();
        self.send(&Message::Trailer { sum });
    }
}

/// The error code a message carries, if it is an `Error`.
pub fn error_of(m: &Message) -> Option<ferry_core::Error> {
    match m {
        Message::Error { code } => Some(ferry_core::Error::from_code(*code)),
        _ => None,
    }
}

/// A blocking ferry-core client over TCP, as the drivers give it.
pub type Driven = ferry_core::driver::blocking::BlockingClient<
    embedded_io_adapters::std::FromStd<TcpStream>,
    Vec<u8>,
    Box<dyn FnMut() -> ferry_core::Instant>,
>;

/// Connects the core's blocking driver to `addr` and logs in anonymously.
pub fn driven_anonymous(addr: &str) -> Driven {
    use ferry_core::{Client, Config, Instant};
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let start = std::time::Instant::now();
    let clock: Box<dyn FnMut() -> Instant> =
        Box::new(move || Instant::from_millis(start.elapsed().as_millis() as u64));
    let core = Client::new(
        Instant::ZERO,
        Config::default(),
        vec![0; 70_000],
        vec![0; 70_000],
    )
    .expect("client");
    let mut c = ferry_core::driver::blocking::BlockingClient::connect(
        embedded_io_adapters::std::FromStd::new(stream),
        core,
        clock,
    )
    .expect("hello");
    c.login_anonymous().expect("login");
    c
}
