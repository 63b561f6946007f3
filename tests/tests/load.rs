//! Slow and idle clients: 1 000 logged-in idle connections and a slowloris
//! (one byte per second) do not stop a normal client from transferring;
//! the slowloris is cut off by the login deadline.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferry_core::message::Message;
use ferry_tests::*;

const IDLE: usize = 1000;

fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        l.current = Some(max);
        let _ = setrlimit(Resource::Nofile, l);
    }
}

#[test]
fn a_thousand_idle_sessions_and_a_slowloris_do_not_stop_a_transfer() {
    raise_nofile();
    let s = Server::anonymous(&["--max-connections", "1100", "--login-timeout", "3"]);
    let addr = s.addr.clone();

    // A slowloris: the hello one byte per second.
    let slow = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 256];
            for b in raw_hello() {
                if c.write_all(&[b]).is_err() {
                    break;
                }
                // Drain what the server says; EOF means it hung up.
                let mut closed = false;
                let wait = Instant::now();
                while wait.elapsed() < Duration::from_secs(1) {
                    match c.read(&mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed || t.elapsed() > Duration::from_secs(30) {
                    break;
                }
            }
            t.elapsed()
        })
    };

    // A thousand sessions that log in and then say nothing. Each waits for
    // its login answer before the next connects: a burst of a thousand
    // connections that have not logged in would evict its own oldest
    // (--max-startups, tests/tests/admission.rs).
    let login = [raw_hello().to_vec(), raw_frame(&Message::Anonymous)].concat();
    let answer_len = ferry_core::frame::HELLO_LEN + raw_frame(&Message::LoginOk).len();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(&login).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = vec![0u8; answer_len];
        c.read_exact(&mut answer).unwrap();
        assert_eq!(&answer[..4], b"FRRY");
        assert_eq!(
            &answer[ferry_core::frame::HELLO_LEN..],
            raw_frame(&Message::LoginOk)
        );
        idle.push(c);
    }

    // A normal client transfers both ways meanwhile.
    let local = TempDir::new().unwrap();
    let data = random_bytes(10 << 20, 5);
    let src = local.path().join("f.bin");
    fs::write(&src, &data).unwrap();
    let t = Instant::now();
    let mut c = ferry();
    c.arg("put").arg(&src).arg(s.url("f.bin")).arg("--quiet");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let back = local.path().join("back.bin");
    let mut c = ferry();
    c.arg("get").arg(s.url("f.bin")).arg(&back).arg("--quiet");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(&back).unwrap(), data);
    eprintln!(
        "10 MiB put+get with {IDLE} idle sessions: {:?}",
        t.elapsed()
    );

    // The slowloris was cut off by the 3 s login deadline, not left to
    // dribble for the whole hello.
    let lasted = slow.join().unwrap();
    assert!(
        lasted >= Duration::from_secs(2) && lasted < Duration::from_secs(15),
        "slowloris lasted {lasted:?}"
    );
    // The idle sessions are all still open.
    for c in idle.iter_mut() {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 256];
        loop {
            match c.read(&mut b) {
                Ok(0) => panic!("an idle session was closed"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("an idle session failed: {e}"),
            }
        }
    }
}
