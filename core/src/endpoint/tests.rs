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
        [0u8; 2048],
        [0u8; 2048],
    )
    .unwrap();
    l.negotiated = Some(Negotiated {
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
