//! A malicious server cannot make the client write outside the directory
//! it was given (scp's CVE-2019-6111), nor replace a local file against the
//! overwrite policy.

use std::fs;
use std::net::TcpListener;

use embedded_io_adapters::std::FromStd;
use ferry_core::driver::{blocking, Handler};
use ferry_core::{Entry, Instant, Kind, Request, Server, ServerConfig, ServerEvent};
use ferry_tests::*;

/// Serves a directory `evil` whose listing names `../escaped.txt`, and
/// answers any get with the same few bytes.
#[derive(Default)]
struct Evil {
    pending: Option<Request>,
    sending: bool,
}

fn entry(name: &str, kind: Kind) -> Entry {
    Entry {
        name: name.try_into().unwrap(),
        kind,
        size: 5,
        modified: 0,
        mode: 0o644,
    }
}

impl Handler<Vec<u8>> for Evil {
    fn event(&mut self, ev: ServerEvent<'_>) {
        match ev {
            ServerEvent::Request(r) => self.pending = Some(r),
            ServerEvent::SendBody { .. } => self.sending = true,
            _ => {}
        }
    }

    fn respond(&mut self, s: &mut Server<Vec<u8>>) -> Result<(), ferry_core::Error> {
        if self.sending {
            let sent = s.send_with(|buf| match buf.get_mut(..5) {
                Some(head) => {
                    head.copy_from_slice(b"pwned");
                    (5, true)
                }
                None => (0, false),
            })?;
            self.sending = !sent;
        }
        match self.pending.take() {
            Some(Request::Stat { path }) if path.ends_with("evil") => {
                s.reply_entry(&entry("evil", Kind::Dir))
            }
            Some(Request::Stat { .. }) => s.reply_entry(&entry("x", Kind::File)),
            Some(Request::List { .. }) => {
                for name in [
                    "ok.txt",
                    "../escaped.txt",
                    "/tmp/abs.txt",
                    "sub/../../up.txt",
                ] {
                    s.list_entry(&entry(name, Kind::File))?;
                }
                s.list_end()
            }
            Some(Request::Get { .. }) => s.offer(5),
            Some(_) => s.refuse(ferry_core::Error::Permission),
            None => Ok(()),
        }
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
                let _ =
                    blocking::serve(&mut io, &mut server, &mut Evil::default(), || Instant::ZERO);
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
