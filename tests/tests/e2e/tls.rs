//! TLS: `ferry serve --tls-cert/--tls-key` and `ferrys://` URLs, with a CA
//! and a server certificate made here at test time. The client checks the
//! certificate: an unknown CA, a wrong name and a plain client all fail
//! clearly; with `--ca` every command works, and nothing of the Ferry
//! protocol is visible on the wire.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ferry_tests::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// Writes ca.pem, cert.pem and key.pem for a server named `names`.
fn make_pki(dir: &Path, names: &[&str]) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Ferry test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// A TLS server on a fresh root; the root lives as long as the guard.
fn tls_server(pki: &Path) -> (Server, TempDir) {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let cert = pki.join("cert.pem");
    let key = pki.join("key.pem");
    let s = Server::start(
        &root,
        &[
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    (s, dir)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn transfers_over_tls_with_the_certificate_checked() {
    let pki = TempDir::new().unwrap();
    make_pki(pki.path(), &["localhost", "127.0.0.1"]);
    let (s, _root) = tls_server(pki.path());
    let ca = pki.path().join("ca.pem");
    let url = |p: &str| format!("ferrys://{}/{p}", s.addr);
    let local = TempDir::new().unwrap();
    let data = random_bytes(3 << 20, 9);
    let src = local.path().join("f.bin");
    fs::write(&src, &data).unwrap();

    // put, ls, stat --digest, get: all through TLS.
    let mut c = ferry();
    c.arg("put")
        .arg(&src)
        .arg(url("f.bin"))
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(s.root.join("f.bin")).unwrap(), data);
    let mut c = ferry();
    c.arg("ls").arg(url("")).arg("--ca").arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3145728  f.bin"));
    let back = local.path().join("back.bin");
    let mut c = ferry();
    c.arg("get")
        .arg(url("f.bin"))
        .arg(&back)
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(&back).unwrap(), data);
    let mut c = ferry();
    c.arg("stat")
        .arg("--digest=md5")
        .arg(url("f.bin"))
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&md5_file(&src)));

    // Without our CA the certificate is not trusted: a clear failure.
    let mut c = ferry();
    c.arg("ls").arg(url(""));
    let o = run(c);
    assert_eq!(code(&o), 7);
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));

    // The certificate must name the host: `localhost` is in it, a made-up
    // name that also points at the server is not.
    let port = s.addr.rsplit(':').next().unwrap();
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferrys://localhost:{port}/"))
        .arg("--ca")
        .arg(&ca);
    assert_eq!(code(&run(c)), 0);

    // A plain client against the TLS port fails, and gets no Ferry bytes.
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferry://{}/", s.addr))
        .args(["--timeout", "3"]);
    let o = run(c);
    assert_ne!(code(&o), 0);
    let mut raw = TcpStream::connect(&s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&raw_hello()).unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(
        !buf.windows(4).any(|w| w == b"FRRY"),
        "a plain hello got a plain answer"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pki = TempDir::new().unwrap();
    make_pki(pki.path(), &["files.example"]);
    let (s, _root) = tls_server(pki.path());
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferrys://{}/", s.addr))
        .arg("--ca")
        .arg(pki.path().join("ca.pem"));
    let o = run(c);
    assert_eq!(code(&o), 7);
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
}

#[test]
fn serve_rejects_a_bad_certificate_file() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let mut c = ferry();
    c.arg("serve").arg(dir.path()).args([
        "--anonymous",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        dir.path().join("cert.pem").to_str().unwrap(),
        "--tls-key",
        dir.path().join("key.pem").to_str().unwrap(),
    ]);
    let o = run(c);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("cert.pem"), "{}", stderr(&o));
}

/// Forwards each connection to a Unix socket at `path` to the TCP address
/// `to`, byte for byte (as an SSH-forwarded socket would), until dropped.
struct UnixRelay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl UnixRelay {
    fn start(path: &Path, to: &str) -> UnixRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (stop2, to) = (stop.clone(), to.to_string());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((u, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                u.set_nonblocking(false).unwrap();
                let t = TcpStream::connect(&to).unwrap();
                let (mut u2, mut t2) = (u.try_clone().unwrap(), t.try_clone().unwrap());
                let (mut u, mut t) = (u, t);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u, &mut t);
                    let _ = t.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut t2, &mut u2);
                    let _ = u2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        UnixRelay { stop }
    }
}

impl Drop for UnixRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `ferrys://` with `--socket` speaks TLS over the socket, checking the
/// certificate against the URL's host as over TCP; it never falls back to
/// plain text.
#[test]
fn ferrys_over_a_unix_socket_is_tls_with_the_certificate_checked() {
    let pki = TempDir::new().unwrap();
    make_pki(pki.path(), &["localhost"]);
    let (s, _root) = tls_server(pki.path());
    let ca = pki.path().join("ca.pem");
    let sock = pki.path().join("relay.sock");
    let _relay = UnixRelay::start(&sock, &s.addr);
    let local = TempDir::new().unwrap();
    let src = local.path().join("f.txt");
    fs::write(&src, "over a socket, in TLS\n").unwrap();

    // With the CA and the certificate's name (the host is only checked,
    // not connected to), put and ls work.
    let mut c = ferry();
    c.arg("put")
        .arg(&src)
        .arg("ferrys://localhost/f.txt")
        .arg("--socket")
        .arg(&sock)
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(s.root.join("f.txt")).unwrap(),
        "over a socket, in TLS\n"
    );
    let mut c = ferry();
    c.args(["ls", "ferrys://localhost/", "--socket"])
        .arg(&sock)
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("f.txt"));

    // An untrusted CA, and a name the certificate does not carry, fail.
    let mut c = ferry();
    c.args(["ls", "ferrys://localhost/", "--socket"]).arg(&sock);
    let o = run(c);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
    let mut c = ferry();
    c.args(["ls", "ferrys://files.example/", "--socket"])
        .arg(&sock)
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));

    // A plain server on a Unix socket: ferrys:// refuses to talk to it.
    let plain = TempDir::new().unwrap();
    let plain_sock = plain.path().join("plain.sock");
    let listen = format!("unix:{}", plain_sock.display());
    let _p = Server::start(plain.path(), &["--anonymous", "--listen", &listen]);
    let mut c = ferry();
    c.args(["ls", "ferrys://localhost/", "--timeout", "3", "--socket"])
        .arg(&plain_sock)
        .arg("--ca")
        .arg(&ca);
    let o = run(c);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}
