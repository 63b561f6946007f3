use super::*;
use crate::digest::Digests;

/// A role that is sending one body, for the shared methods alone.
struct Sending {
    transfer: Option<Transfer>,
    sent: Option<Sum>,
}

impl Role for Sending {
    fn hello_received(&mut self) -> bool {
        true
    }
    fn transfer(&self) -> Option<&Transfer> {
        self.transfer.as_ref()
    }
    fn sending(&mut self) -> Option<&mut Transfer> {
        self.transfer.as_mut()
    }
    fn receiving(&mut self) -> Option<&mut Transfer> {
        None
    }
    fn discarding(&self) -> bool {
        false
    }
    fn body_sent(&mut self, sum: Sum) {
        self.transfer = None;
        self.sent = Some(sum);
    }
}

fn link() -> Link<[u8; 2048]> {
    let mut l = Link::new(
        Instant::ZERO,
        Config::default(),
        Side::Client,
        0,
        1,
        [0u8; 2048],
        [0u8; 2048],
    )
    .unwrap();
    l.negotiated = Some(Negotiated {
        version: 2,
        window: 1,
        peer_flags: 0,
        max_frame: 1024,
        chunk: 512,
        digest: Algorithm::Md5,
        peer_digests: Digests::MD5_ONLY,
    });
    l
}

fn sender(size: u64) -> Endpoint<[u8; 2048], Sending> {
    let role = Sending {
        transfer: Some(Transfer::new(size, 0, Algorithm::Md5).unwrap()),
        sent: None,
    };
    Endpoint::from_parts(link(), role)
}

#[test]
fn send_with_frames_what_the_closure_wrote_and_hands_back_its_value() {
    let mut e = sender(5);
    e.transmit_done(usize::MAX); // the hello
    let r = e.send_with(|buf| {
        assert_eq!(buf.len(), 5, "at most what is left of the body");
        buf[..3].copy_from_slice(b"abc");
        (3, "mine")
    });
    assert_eq!(r, Ok("mine"));
    assert_eq!(e.remaining(), 2);
    assert_eq!(e.transmit_buf(), b"\x02\x00\x00\x00\x03abc");
    e.transmit_done(usize::MAX);
    // The last bytes: the trailer follows by itself.
    e.send_with(|buf| {
        buf[..2].copy_from_slice(b"de");
        (2, ())
    })
    .unwrap();
    assert_eq!(e.remaining(), 0);
    assert!(e.role.sent.is_some());
    assert_eq!(&e.transmit_buf()[..7], b"\x02\x00\x00\x00\x02de");
    assert_eq!(e.transmit_buf()[7], 1, "then a message frame: the trailer");
}

#[test]
fn send_with_refuses_a_claim_past_the_room_given() {
    let mut e = sender(5);
    let r = e.send_with(|buf| (buf.len() + 1, ()));
    assert_eq!(r, Err(Error::BadUsage));
    assert_eq!(e.remaining(), 5);
}

#[test]
fn a_full_buffer_leaves_room_for_a_reply_once_transmitted() {
    let mut e = sender(1 << 20);
    // Fill the output buffer with body frames, as a get's pump does,
    // until no chunk fits.
    while e.send_with(|buf| (buf.len().min(1), buf.len())).unwrap() > 0 {}
    assert_eq!(e.send_with(|buf| (0, buf.len())), Ok(0));
    // Everything goes out; room for a reply (a cancel's trailer) must
    // come back without another chunk being asked for.
    e.transmit_done(usize::MAX);
    assert!(e.link.can_send_msg());
}

#[test]
fn sending_counts_as_activity_for_the_idle_timer() {
    let mut c = link();
    c.set_phase(Phase::Session);
    let idle = c.config.idle_timeout.unwrap().as_millis() as u64;
    let mut now = 0;
    for _ in 0..5 {
        now += idle - 1;
        c.handle_timeout(Instant::from_millis(now));
        assert!(c.closed.is_none());
        c.send_frame(FrameKind::Data, b"x").unwrap();
        c.transmit_done(usize::MAX);
    }
    c.handle_timeout(Instant::from_millis(now + idle));
    assert_eq!(c.closed, Some(Error::Timeout));
}

#[test]
fn outside_a_body_send_with_offers_no_room() {
    let mut e = sender(0);
    e.role.transfer = None;
    assert_eq!(e.send_with(|buf| (0, buf.len())), Ok(0));
    assert_eq!(e.send_with(|_| (1, ())), Err(Error::BadUsage));
    assert_eq!(e.send_with(|buf| (0, buf.len())), Ok(0));
}

// ---- a buffer too small says the size it needs ----

use crate::config::ServerConfig;
use crate::setup::{BufferKind, InsufficientSize, SetupError};
use crate::{Client, Server};
use std::string::ToString;
use std::vec;

fn short(buffer: BufferKind, required: usize) -> SetupError {
    SetupError::InsufficientSize(InsufficientSize { buffer, required })
}

/// Both constructors, over `Vec` buffers of these lengths.
fn both(in_len: usize, out_len: usize) -> [Result<(), SetupError>; 2] {
    let now = Instant::ZERO;
    let (i, o) = (vec![0u8; in_len], vec![0u8; out_len]);
    let c = Client::new(now, Config::default(), i.clone(), o.clone()).map(drop);
    let s = Server::new(now, ServerConfig::new([1; 32]), i, o).map(drop);
    [c, s]
}

#[test]
fn a_short_input_buffer_says_the_exact_size_it_needs() {
    let e = short(BufferKind::Input, MIN_INPUT_BUFFER);
    for len in [0, 1, MIN_INPUT_BUFFER / 2, MIN_INPUT_BUFFER - 1] {
        assert_eq!(both(len, MIN_OUTPUT_BUFFER), [Err(e), Err(e)], "{len}");
    }
    assert_eq!(both(MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER), [Ok(()), Ok(())]);
}

#[test]
fn a_short_output_buffer_says_the_exact_size_it_needs() {
    let e = short(BufferKind::Output, MIN_OUTPUT_BUFFER);
    for len in [0, MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER - 1] {
        assert_eq!(both(MIN_INPUT_BUFFER, len), [Err(e), Err(e)], "{len}");
    }
    assert_eq!(both(MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER), [Ok(()), Ok(())]);
}

#[test]
fn with_both_short_the_input_is_named_first_then_the_output() {
    let [c, _] = both(10, 10);
    let Err(SetupError::InsufficientSize(need)) = c else {
        panic!("{c:?}");
    };
    assert_eq!(need.buffer, BufferKind::Input);
    let [c, _] = both(need.required, 10);
    assert_eq!(c, Err(short(BufferKind::Output, MIN_OUTPUT_BUFFER)));
}

#[test]
fn the_minimum_sizes_hold_a_whole_frame_and_the_hello() {
    assert_eq!(MIN_INPUT_BUFFER, HEADER_LEN + MIN_FRAME as usize);
    assert_eq!(
        MIN_OUTPUT_BUFFER,
        HELLO_LEN + HEADER_LEN + MIN_FRAME as usize
    );
    // At exactly the minimum the hello is queued and a whole control
    // message still fits behind it.
    let mut l = Link::new(
        Instant::ZERO,
        Config::default(),
        Side::Server,
        0,
        1,
        vec![0u8; MIN_INPUT_BUFFER],
        vec![0u8; MIN_OUTPUT_BUFFER],
    )
    .unwrap();
    assert_eq!(l.transmit_buf().len(), HELLO_LEN);
    assert!(l.can_send_msg());
}

#[test]
fn the_size_error_reads_well_and_is_bad_usage_for_question_mark() {
    let e = InsufficientSize {
        buffer: BufferKind::Input,
        required: MIN_INPUT_BUFFER,
    };
    assert_eq!(e.to_string(), "input buffer too small: 1029 bytes needed");
    assert_eq!(SetupError::from(e).to_string(), e.to_string());
    assert_eq!(Error::from(e), Error::BadUsage);
    assert_eq!(Error::from(SetupError::ZeroChunkSize), Error::BadUsage);
    // `?` in code that only knows `Error`.
    fn build() -> Result<(), Error> {
        Client::new(Instant::ZERO, Config::default(), vec![0; 8], vec![0; 8])?;
        Ok(())
    }
    assert_eq!(build(), Err(Error::BadUsage));
    // Never on the wire: it is a local mistake.
    assert!(Error::from(e).is_local());
}

#[test]
fn server_refusal_constructors_report_short_buffers_too() {
    let now = Instant::ZERO;
    let cfg = ServerConfig::new([1; 32]);
    let r = Server::new_busy(now, cfg, vec![0u8; MIN_INPUT_BUFFER], vec![0u8; 100]).map(drop);
    assert_eq!(r, Err(short(BufferKind::Output, MIN_OUTPUT_BUFFER)));
    let r = Server::new_refused(now, cfg, vec![0u8; 1], vec![0u8; 1], Error::Penalised).map(drop);
    assert_eq!(r, Err(short(BufferKind::Input, MIN_INPUT_BUFFER)));
}
