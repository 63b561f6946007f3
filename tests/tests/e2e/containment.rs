//! A malicious server cannot make the client write outside the directory
//! it was given (scp's CVE-2019-6111), nor replace a local file against the
//! overwrite policy.

use std::fs;
use std::net::TcpListener;

use embedded_io_adapters::std::FromStd;
use ferry_core::app;
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::driver::blocking;
use ferry_core::{Entry, Error, Instant, Kind, Overwrite, Server, ServerConfig};
use ferry_tests::*;

/// Serves a directory `evil` whose listing names `../escaped.txt`, and
/// answers any get with the same few bytes.
#[derive(Default)]
struct Evil;

fn entry(name: &str, kind: Kind) -> Entry {
    Entry {
        name: name.try_into().unwrap(),
        kind,
        size: 5,
        modified: 0,
        mode: 0o644,
    }
}

impl app::Store for Evil {
    type File = ();
    type Upload = ();
    type Listing = std::vec::IntoIter<Entry>;
    type Exec = ();

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(1);
        Ok(())
    }

    fn open(&mut self, _path: &str) -> Result<((), u64), Error> {
        Ok(((), 5))
    }

    fn read_at(&mut self, _: &mut (), at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = b"pwned".get(at as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn digest(&mut self, _: &str, _: Algorithm, _: &mut [u8]) -> Result<Sum, Error> {
        Err(Error::Permission)
    }

    fn begin_upload(
        &mut self,
        _: &str,
        _: u64,
        _: Overwrite,
        _: bool,
        _: Algorithm,
    ) -> Result<app::Accepted<()>, Error> {
        Err(Error::Permission)
    }

    fn write(&mut self, _: &mut (), _: &[u8]) -> Result<(), Error> {
        Err(Error::Permission)
    }

    fn commit(&mut self, _: (), _: Sum) -> Result<(), Error> {
        Err(Error::Permission)
    }

    fn list(&mut self, _: &str) -> Result<Self::Listing, Error> {
        let names = [
            "ok.txt",
            "../escaped.txt",
            "/tmp/abs.txt",
            "sub/../../up.txt",
        ];
        let all: Vec<Entry> = names.iter().map(|n| entry(n, Kind::File)).collect();
        Ok(all.into_iter())
    }

    fn next_entry(&mut self, l: &mut Self::Listing, slot: &mut Entry) -> Result<bool, Error> {
        Ok(l.next().map(|e| *slot = e).is_some())
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        Ok(if path.ends_with("evil") {
            entry("evil", Kind::Dir)
        } else {
            entry("x", Kind::File)
        })
    }

    fn cd(&mut self, _: &str, _: &mut ferry_core::Path) -> Result<(), Error> {
        Err(Error::Permission)
    }

    fn pwd(&mut self, _: &mut ferry_core::Path) -> Result<(), Error> {
        Err(Error::Permission)
    }
}

fn evil_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in l.incoming().take(4) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let cfg = ServerConfig {
                    allow_anonymous: true,
                    ..ServerConfig::new([8; 32])
                };
                let mut server =
                    Server::new(Instant::ZERO, cfg, vec![0; 65_536], vec![0; 65_536]).unwrap();
                let mut io = FromStd::new(stream);
                let _ = blocking::serve(&mut io, &mut server, &mut Evil, &mut [0; 256], || {
                    Instant::ZERO
                });
            });
        }
    });
    addr
}

#[test]
fn a_malicious_listing_cannot_steer_get_r_outside_the_target() {
    let addr = evil_server();
    let top = TempDir::new().unwrap();
    let dest = top.path().join("a/b/dest");
    fs::create_dir_all(top.path().join("a/b")).unwrap();
    let mut c = ferry();
    c.arg("get")
        .arg("-r")
        .arg(format!("ferry://{addr}/evil"))
        .arg(&dest)
        .arg("--quiet");
    let o = run(c);
    assert_ne!(code(&o), 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unsafe name"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Nothing outside dest: not in a/b, not in a, not in the temp root.
    for dir in [
        top.path().to_path_buf(),
        top.path().join("a"),
        top.path().join("a/b"),
    ] {
        for e in fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                ["a", "b", "dest"].contains(&name.to_str().unwrap()),
                "{} in {}",
                name.to_string_lossy(),
                dir.display()
            );
        }
    }
    assert!(
        !std::path::Path::new("/tmp/abs.txt").exists()
            || fs::read("/tmp/abs.txt").unwrap() != b"pwned"
    );
}

#[test]
fn a_server_cannot_replace_a_local_file_without_the_policy() {
    let addr = evil_server();
    let dir = TempDir::new().unwrap();
    let mine = dir.path().join("mine.txt");
    fs::write(&mine, b"precious").unwrap();
    let mut c = ferry();
    c.arg("get")
        .arg(format!("ferry://{addr}/whatever"))
        .arg(&mine)
        .arg("--quiet");
    assert_eq!(code(&run(c)), 6);
    assert_eq!(fs::read(&mine).unwrap(), b"precious");
}

/// A symlink or a hard link planted at the download's partial file
/// (`.NAME.ferry-part` in a shared directory) is never written through,
/// with or without `--resume`: the file outside keeps its bytes and the
/// download lands under its name, whole.
#[test]
fn a_planted_link_at_the_local_part_file_is_not_written_through() {
    let s = ferry_tests::Server::anonymous(&[]);
    let body = random_bytes(50_000, 11);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let top = TempDir::new().unwrap();
    let victim = top.path().join("victim");
    let dl = top.path().join("dl");
    std::fs::create_dir(&dl).unwrap();
    for (i, resume) in [false, true, false, true].into_iter().enumerate() {
        std::fs::write(&victim, b"precious").unwrap();
        let part = dl.join(".f.ferry-part");
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(dl.join("f"));
        if i < 2 {
            std::os::unix::fs::symlink(&victim, &part).unwrap();
        } else {
            std::fs::hard_link(&victim, &part).unwrap();
        }
        let mut c = ferry();
        c.arg("get").arg(s.url("f")).arg(&dl).arg("--quiet");
        if resume {
            c.arg("--resume");
        }
        let o = run(c);
        assert_eq!(
            code(&o),
            0,
            "case {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "case {i}");
        let got = std::fs::symlink_metadata(dl.join("f")).unwrap();
        assert!(got.is_file(), "case {i}: a regular file, not a link");
        assert!(std::fs::read(dl.join("f")).unwrap() == body, "case {i}");
    }
}
