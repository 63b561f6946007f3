//! The scratch buffer lent to [`Session::progress`]: any size of one
//! byte or more works; an empty one is refused at once.

use std::vec;
use std::vec::Vec;

use super::*;
use crate::client::Event as ClientEvent;
use crate::config::{Config, ServerConfig};
use crate::time::Instant;
use crate::{Client, Server};

/// One read-only file, `f`.
struct OneFile(Vec<u8>);

impl Store for OneFile {
    type File = ();
    type Upload = ();
    type Listing = ();
    type Exec = ();
    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(3);
        Ok(())
    }
    fn open(&mut self, path: &str) -> Result<((), u64), Error> {
        match path {
            "f" => Ok(((), self.0.len() as u64)),
            _ => Err(Error::NotFound),
        }
    }
    fn read_at(&mut self, _: &mut (), at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = &self.0[at as usize..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
    fn begin_upload(
        &mut self,
        _: &str,
        _: u64,
        _: Overwrite,
        _: bool,
        _: Algorithm,
    ) -> Result<Accepted<()>, Error> {
        Err(Error::ReadOnly)
    }
    fn write(&mut self, _: &mut (), _: &[u8]) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn commit(&mut self, _: (), _: Sum) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
}

type Pair = (Client<Vec<u8>>, Server<Vec<u8>>);

fn pair() -> Pair {
    let now = Instant::ZERO;
    let cfg = ServerConfig {
        allow_anonymous: true,
        ..ServerConfig::new([9; 32])
    };
    let c = Client::new(now, Config::default(), vec![0; 4096], vec![0; 4096]).unwrap();
    let s = Server::new(now, cfg, vec![0; 4096], vec![0; 4096]).unwrap();
    (c, s)
}

/// Client bytes to the server.
fn to_server((c, s): &mut Pair) {
    while !c.transmit_buf().is_empty() {
        let taken = s.handle_input(Instant::ZERO, c.transmit_buf()).unwrap();
        c.transmit_done(taken);
    }
}

/// Runs the session with `scratch` until it waits, handing the client
/// every byte; returns the digests the client received.
fn run(
    p: &mut Pair,
    store: &mut OneFile,
    session: &mut Session<OneFile>,
    scratch: &mut [u8],
) -> Vec<Sum> {
    let mut sums = Vec::new();
    for _ in 0..100 {
        to_server(p);
        let next = session.progress(&mut p.1, store, scratch).unwrap();
        let (c, s) = p;
        while !s.transmit_buf().is_empty() {
            let taken = c.handle_input(Instant::ZERO, s.transmit_buf()).unwrap();
            s.transmit_done(taken);
            while let Some(ev) = c.poll_event() {
                match ev {
                    ClientEvent::Connected(_) => c.login_anonymous().unwrap(),
                    ClientEvent::Sum(sum) => sums.push(sum),
                    _ => {}
                }
            }
        }
        if next == Progress::Wait && c.transmit_buf().is_empty() {
            break;
        }
    }
    sums
}

#[test]
fn an_empty_scratch_is_refused_before_any_event_is_taken() {
    let mut p = pair();
    let mut store = OneFile(vec![1; 10]);
    let mut session = Session::new();
    to_server(&mut p);
    let r = session.progress(&mut p.1, &mut store, &mut []);
    assert_eq!(r, Err(Error::BadUsage));
    // Nothing was taken: the same session goes on with a real one.
    assert!(!session.is_closed());
    assert!(!p.1.transmit_buf().is_empty(), "only the hello is queued");
    run(&mut p, &mut store, &mut session, &mut [0; 1]);
    assert!(p.0.is_logged_in());
}

#[test]
fn a_one_byte_scratch_is_enough_to_hash_a_file() {
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    for len in [1, 2, 1000, 5000] {
        let mut p = pair();
        let mut store = OneFile(data.clone());
        let mut session = Session::new();
        let mut scratch = vec![0; len];
        run(&mut p, &mut store, &mut session, &mut scratch);
        assert!(p.0.is_logged_in());
        p.0.digest("f").unwrap();
        let sums = run(&mut p, &mut store, &mut session, &mut scratch);
        let alg = p.0.negotiated().unwrap().digest;
        let mut h = Hasher::new(alg).unwrap();
        h.update(&data);
        assert_eq!(sums, [h.finish()], "scratch of {len}");
    }
}
