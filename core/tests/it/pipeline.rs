//! Several gets or puts in flight at once (`docs/PROTOCOL.md#pipelining`):
//! a windowed client and the core's one server [`Session`] over the toy
//! store of `pair.rs`, driven in-process on a wire that can cut the byte
//! stream anywhere. The client side is driven as `put_many`/`get_many`
//! drive it: requests while [`Client::can_pipeline`] allows, each event
//! mapped to its item by the order rules of the protocol.

use std::collections::VecDeque;

use ferry_core::app::{Abort, GetEnd, Progress, Session};
use ferry_core::frame::{self, FrameKind, HEADER_LEN, HELLO_LEN};
use ferry_core::message::Message;
use ferry_core::{
    Client, ClientEvent, Config, Error, Instant, Overwrite, Server, ServerConfig, ServerEvent,
};

use crate::pair::{bytes, server_config, Rec, Split, Store, Wire};

/// One item of a batch.
#[derive(Debug, Clone)]
pub enum Job {
    Put {
        path: String,
        data: Vec<u8>,
        overwrite: Overwrite,
    },
    Get {
        path: String,
    },
    /// A pre-agreed get: any size up to `max` (`docs/PROTOCOL.md#pre-agreed-gets`).
    Agreed {
        path: String,
        max: u64,
    },
    /// A pre-agreed put: its body right behind its request
    /// (`docs/PROTOCOL.md#pre-agreed-puts`).
    PutAgreed {
        path: String,
        data: Vec<u8>,
        overwrite: Overwrite,
    },
}

pub fn put(path: &str, data: &[u8]) -> Job {
    Job::Put {
        path: path.into(),
        data: data.to_vec(),
        overwrite: Overwrite::Fail,
    }
}

pub fn get(path: &str) -> Job {
    Job::Get { path: path.into() }
}

pub fn put_agreed(path: &str, data: &[u8]) -> Job {
    Job::PutAgreed {
        path: path.into(),
        data: data.to_vec(),
        overwrite: Overwrite::Fail,
    }
}

pub fn agreed(path: &str, max: u64) -> Job {
    Job::Agreed {
        path: path.into(),
        max,
    }
}

/// How an item ended: a put's stored name (`None`: as asked), a get's
/// bytes, or the error.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored(Option<String>),
    Got(Vec<u8>),
    Failed(Error),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Stored(n) => write!(f, "Stored({n:?})"),
            Outcome::Got(d) => write!(
                f,
                "Got({} bytes, md5 {:02x?})",
                d.len(),
                &ferry_core::digest::md5(d)[..4]
            ),
            Outcome::Failed(e) => write!(f, "Failed({e:?})"),
        }
    }
}

/// A windowed client (`CW`) and server (`SW`) back to back.
pub struct Pipe<const CW: usize, const SW: usize> {
    pub now: Instant,
    pub client: Client<Vec<u8>, CW>,
    pub server: Server<Vec<u8>, SW>,
    pub session: Session<Store, SW>,
    pub store: Store,
    pub to_server: Wire,
    pub to_client: Wire,
    /// Everything each side transmitted, for reading back the messages.
    pub up: Vec<u8>,
    pub down: Vec<u8>,
    scratch: Vec<u8>,
    /// Client events, in order.
    pub events: Vec<Rec>,
    /// Each item's own client events, by item.
    pub by_item: Vec<Vec<Rec>>,
    pub server_closed: Option<Error>,
    pub client_closed: Option<Error>,
    /// The link is cut: nothing more is delivered either way.
    pub cut: bool,

    // ---- the client driver ----
    jobs: Vec<Job>,
    next: usize,
    pub outcomes: Vec<Option<Outcome>>,
    /// Items sent, their answer not here yet.
    heads: VecDeque<usize>,
    /// Items accepted and not ended (puts and gets).
    bodies: VecDeque<usize>,
    /// Puts accepted whose body has not started.
    ready: VecDeque<usize>,
    /// Pre-agreed puts whose request is not answered yet (they are in
    /// `heads` and, until they end, in `bodies`).
    agreed: Vec<usize>,
    /// The put whose body goes out now, and how far.
    body: Option<(usize, usize)>,
    /// Bytes received per get item.
    got: Vec<Vec<u8>>,
    /// Stored names per put item.
    names: Vec<Option<String>>,
    /// Items whose offer the client refuses (`Exists`, as a local file
    /// in the way would).
    pub refuse: Vec<usize>,
    /// Cancel this item's body once this many of its bytes went or came.
    pub cancel_after: Option<(usize, usize)>,
    /// Right after answering this item's offer, cancel the oldest get
    /// accepted (its body in progress, or not started yet).
    pub cancel_at_offer: Option<usize>,
}

impl<const CW: usize, const SW: usize> Pipe<CW, SW> {
    pub fn new(split: Split) -> Self {
        Self::with(Config::default(), server_config(), 16 * 1024, split)
    }

    pub fn with(cc: Config, sc: ServerConfig, buf: usize, split: Split) -> Self {
        let now = Instant::from_millis(1_000);
        Pipe {
            now,
            client: Client::with_window(now, cc, vec![0; buf], vec![0; buf]).unwrap(),
            server: Server::with_window(now, sc, vec![0; buf], vec![0; buf]).unwrap(),
            session: Session::new(),
            store: Store::default(),
            to_server: Wire::new(split.clone()),
            to_client: Wire::new(split),
            up: Vec::new(),
            down: Vec::new(),
            scratch: vec![0; 4096],
            events: Vec::new(),
            by_item: Vec::new(),
            server_closed: None,
            client_closed: None,
            cut: false,
            jobs: Vec::new(),
            next: 0,
            outcomes: Vec::new(),
            heads: VecDeque::new(),
            bodies: VecDeque::new(),
            ready: VecDeque::new(),
            agreed: Vec::new(),
            body: None,
            got: Vec::new(),
            names: Vec::new(),
            refuse: Vec::new(),
            cancel_after: None,
            cancel_at_offer: None,
        }
    }

    /// A pair logged in anonymously, the hellos and login exchanged.
    pub fn logged_in(split: Split) -> Self {
        let mut p = Self::new(split);
        p.client.login_anonymous().unwrap();
        p.drive();
        assert_eq!(p.events.last(), Some(&Rec::LoggedIn), "{:?}", p.events);
        p.events.clear();
        p
    }

    /// Starts a batch: sends as many requests as the window allows.
    pub fn begin(&mut self, jobs: Vec<Job>) {
        let n = jobs.len();
        self.jobs = jobs;
        self.next = 0;
        self.outcomes = vec![None; n];
        self.by_item = vec![Vec::new(); n];
        self.got = vec![Vec::new(); n];
        self.names = vec![None; n];
        self.send_requests();
    }

    /// Runs a batch to its end; every item's outcome.
    pub fn batch(&mut self, jobs: Vec<Job>) -> Vec<Outcome> {
        self.begin(jobs);
        self.drive();
        self.finished()
    }

    /// Every item's outcome; panics if one has not ended.
    pub fn finished(&self) -> Vec<Outcome> {
        self.outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.clone()
                    .unwrap_or_else(|| panic!("item {i} never ended: {:?}", self.events))
            })
            .collect()
    }

    /// The client alone, as long as it has something to send: requests,
    /// bodies, onto the wire, nothing delivered. What one turn sends.
    pub fn client_turn(&mut self) {
        while self.send_requests() | self.pump_body() | self.transmit() {}
    }

    /// Drives both sides until nothing moves (bounded).
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pipe did not settle: {:?}", self.events);
    }

    pub fn step(&mut self) -> bool {
        let mut moved = self.send_requests();
        moved |= self.pump_body();
        moved |= self.run_server();
        moved |= self.transmit();
        moved |= self.deliver();
        moved |= self.client_events();
        moved |= self.run_server();
        moved
    }

    /// Moves what both sides queued onto the wires.
    pub fn transmit(&mut self) -> bool {
        let mut moved = false;
        let mut buf = [0u8; 4096];
        while let Some(n) = self.client.poll_transmit(&mut buf) {
            self.up.extend_from_slice(&buf[..n]);
            if !self.cut {
                self.to_server.bytes.extend(&buf[..n]);
            }
            moved = true;
        }
        while let Some(n) = self.server.poll_transmit(&mut buf) {
            self.down.extend_from_slice(&buf[..n]);
            if !self.cut {
                self.to_client.bytes.extend(&buf[..n]);
            }
            moved = true;
        }
        moved
    }

    fn deliver(&mut self) -> bool {
        if self.cut {
            return false;
        }
        let mut moved = false;
        if !self.to_server.bytes.is_empty() && self.server_closed.is_none() {
            let chunk = self.to_server.next_read();
            match self.server.handle_input(self.now, &chunk) {
                Ok(n) => {
                    self.to_server.unread(&chunk[n..]);
                    moved |= n > 0;
                }
                Err(_) => self.to_server.bytes.clear(),
            }
            moved |= self.run_server();
        }
        if !self.to_client.bytes.is_empty() && self.client_closed.is_none() {
            let chunk = self.to_client.next_read();
            match self.client.handle_input(self.now, &chunk) {
                Ok(n) => {
                    self.to_client.unread(&chunk[n..]);
                    moved |= n > 0;
                }
                Err(_) => self.to_client.bytes.clear(),
            }
            moved |= self.client_events();
        }
        moved
    }

    /// Both peers vanish: the link is cut and each side reads the end of
    /// its stream; what was on the wire is lost.
    pub fn vanish(&mut self) {
        self.cut = true;
        self.to_server.bytes.clear();
        self.to_client.bytes.clear();
        self.client.handle_eof(self.now);
        self.server.handle_eof(self.now);
    }

    /// The server application: the core's one session over the toy store.
    fn run_server(&mut self) -> bool {
        if self.server_closed.is_some() {
            return false;
        }
        let seen = self.store.seen;
        let p = self
            .session
            .progress(&mut self.server, &mut self.store, &mut self.scratch)
            .unwrap();
        match p {
            Progress::Closed(e) => {
                self.server_closed = Some(e);
                true
            }
            Progress::Transmit => true,
            Progress::Wait => self.store.seen != seen,
        }
    }

    // ---- the client driver ----

    fn end(&mut self, i: usize, outcome: Outcome) {
        assert!(
            self.outcomes[i].is_none(),
            "item {i} ended twice: {:?} then {outcome:?}",
            self.outcomes[i]
        );
        self.outcomes[i] = Some(outcome);
    }

    fn send_requests(&mut self) -> bool {
        let mut moved = false;
        while self.next < self.jobs.len() && self.client_closed.is_none() {
            let i = self.next;
            let r = match &self.jobs[i] {
                Job::Get { path } => {
                    if !self.client.can_pipeline(true) {
                        break;
                    }
                    self.client.get(path)
                }
                Job::Agreed { path, max } => {
                    if !self.client.can_pipeline(true) {
                        break;
                    }
                    self.client.get_agreed(path, 0, *max)
                }
                Job::Put {
                    path,
                    data,
                    overwrite,
                } => {
                    if !self.client.can_pipeline(false) {
                        break;
                    }
                    self.client.put(path, data.len() as u64, *overwrite, false)
                }
                Job::PutAgreed {
                    path,
                    data,
                    overwrite,
                } => {
                    if !self.client.can_put_agreed() {
                        break;
                    }
                    let r = self.client.put_agreed(path, data.len() as u64, *overwrite);
                    if r.is_ok() {
                        // Its body goes now, its answer comes later.
                        self.agreed.push(i);
                        self.bodies.push_back(i);
                        self.body = Some((i, 0));
                    }
                    r
                }
            };
            match r {
                Ok(()) => self.heads.push_back(i),
                Err(e) => self.end(i, Outcome::Failed(e)),
            }
            self.next += 1;
            moved = true;
        }
        moved
    }

    /// The put body in progress, as far as the output buffer takes it.
    fn pump_body(&mut self) -> bool {
        let Some((i, mut pos)) = self.body else {
            return false;
        };
        let (Job::Put { data, .. } | Job::PutAgreed { data, .. }) = &self.jobs[i] else {
            panic!("item {i} is no put")
        };
        let limit = match self.cancel_after {
            Some((c, n)) if c == i => n.min(data.len()),
            _ => data.len(),
        };
        let mut moved = false;
        loop {
            let n = self
                .client
                .send_with(|buf| {
                    let n = buf.len().min(limit - pos);
                    buf[..n].copy_from_slice(&data[pos..pos + n]);
                    (n, n)
                })
                .unwrap();
            if n == 0 {
                break;
            }
            pos += n;
            moved = true;
        }
        self.body = Some((i, pos));
        if self.client.remaining() == 0 {
            self.body = None;
        } else if pos == limit && limit < data.len() {
            // The cancel: the item ends here, the server acknowledges.
            self.client.cancel(Error::Cancelled).unwrap();
            self.body = None;
            self.bodies.retain(|&b| b != i);
            self.end(i, Outcome::Failed(Error::Cancelled));
            moved = true;
        }
        moved
    }

    fn client_events(&mut self) -> bool {
        let mut any = false;
        while let Some(ev) = self.client.poll_event() {
            any = true;
            let rec = match ev {
                ClientEvent::Connected(n) => Rec::Connected(n.max_frame, n.chunk),
                ClientEvent::LoggedIn => Rec::LoggedIn,
                ClientEvent::LoginFailed(e) => Rec::LoginFailed(e),
                ClientEvent::Entry(e) => Rec::Entry(e),
                ClientEvent::ListEnd => Rec::ListEnd,
                ClientEvent::Done => Rec::Done,
                ClientEvent::Offer { size } => Rec::Offer(size),
                ClientEvent::Accepted { offset, name } => {
                    Rec::Accepted(offset, name.map(|n| n.to_string()))
                }
                ClientEvent::SendBody { offset } => Rec::SendBody(offset),
                ClientEvent::Data(d) => Rec::Data(d.to_vec()),
                ClientEvent::TransferEnd { verified, .. } => Rec::TransferEnd(verified),
                ClientEvent::Failed(e) => Rec::Failed(e),
                ClientEvent::Refused(e) => Rec::Refused(e),
                ClientEvent::Closed(e) => Rec::Closed(e),
                other => panic!("unexpected client event {other:?}"),
            };
            let item = self.on_event(&rec);
            if let Some(i) = item {
                self.by_item[i].push(rec.clone());
            }
            self.events.push(rec);
        }
        any
    }

    /// Acts on one client event; the item it belongs to.
    fn on_event(&mut self, rec: &Rec) -> Option<usize> {
        let front = |q: &mut VecDeque<usize>| q.pop_front().expect("an item in flight");
        match rec {
            Rec::Offer(_) => {
                let i = front(&mut self.heads);
                if self.refuse.contains(&i) {
                    self.client.refuse(Error::Exists).unwrap();
                    self.end(i, Outcome::Failed(Error::Exists));
                } else {
                    self.client.accept(0).unwrap();
                    self.bodies.push_back(i);
                }
                if self.cancel_at_offer == Some(i) {
                    self.client.cancel(Error::Cancelled).unwrap();
                    let c = front(&mut self.bodies);
                    self.end(c, Outcome::Failed(Error::Cancelled));
                }
                Some(i)
            }
            Rec::Accepted(_, name) => {
                let i = front(&mut self.heads);
                self.names[i] = name.clone();
                if let Some(at) = self.agreed.iter().position(|&a| a == i) {
                    self.agreed.remove(at);
                    return Some(i);
                }
                self.bodies.push_back(i);
                if CW == 1 {
                    self.body = Some((i, 0));
                } else {
                    self.ready.push_back(i);
                }
                Some(i)
            }
            Rec::SendBody(_) => {
                let i = front(&mut self.ready);
                self.body = Some((i, 0));
                Some(i)
            }
            Rec::Data(d) => {
                let i = *self.bodies.front().expect("a body in progress");
                self.got[i].extend_from_slice(d);
                if matches!(self.cancel_after, Some((c, n)) if c == i && self.got[i].len() >= n) {
                    self.client.cancel(Error::Cancelled).unwrap();
                    self.bodies.pop_front();
                    self.end(i, Outcome::Failed(Error::Cancelled));
                }
                Some(i)
            }
            Rec::TransferEnd(verified) => {
                let i = front(&mut self.bodies);
                let outcome = match (&self.jobs[i], verified) {
                    (_, false) => Outcome::Failed(Error::ChecksumMismatch),
                    (Job::Put { .. } | Job::PutAgreed { .. }, true) => {
                        Outcome::Stored(self.names[i].clone())
                    }
                    (Job::Get { .. } | Job::Agreed { .. }, true) => {
                        Outcome::Got(std::mem::take(&mut self.got[i]))
                    }
                };
                self.end(i, outcome);
                Some(i)
            }
            // The oldest in flight failed.
            Rec::Failed(e) => {
                let i = self
                    .bodies
                    .pop_front()
                    .or_else(|| self.heads.pop_front())
                    .expect("an item in flight");
                self.ready.retain(|&r| r != i);
                if self.body.is_some_and(|b| b.0 == i) {
                    self.body = None;
                }
                self.end(i, Outcome::Failed(*e));
                Some(i)
            }
            // A later one, the oldest without an answer, was refused.
            Rec::Refused(e) => {
                let i = front(&mut self.heads);
                // A pre-agreed put cancelled already has ended.
                if let Some(at) = self.agreed.iter().position(|&a| a == i) {
                    self.agreed.remove(at);
                    if !self.bodies.contains(&i) {
                        return Some(i);
                    }
                    self.bodies.retain(|&b| b != i);
                }
                self.end(i, Outcome::Failed(*e));
                Some(i)
            }
            Rec::Closed(e) => {
                self.client_closed = Some(*e);
                self.body = None;
                self.ready.clear();
                // A pre-agreed put is in both.
                let mut left: Vec<usize> =
                    self.bodies.drain(..).chain(self.heads.drain(..)).collect();
                left.sort_unstable();
                left.dedup();
                for i in left.into_iter().chain(self.next..self.jobs.len()) {
                    self.end(i, Outcome::Failed(*e));
                }
                self.next = self.jobs.len();
                None
            }
            _ => None,
        }
    }
}

/// The messages in a recorded stream (after the hello), by name.
pub fn messages(stream: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = stream.get(HELLO_LEN..).unwrap_or_default();
    while rest.len() >= HEADER_LEN {
        let (kind, len) =
            frame::read_header(rest[..HEADER_LEN].try_into().unwrap(), u32::MAX).unwrap();
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len as usize) else {
            break;
        };
        if kind == FrameKind::Msg {
            out.push(frame::decode_message(payload).unwrap());
        }
        rest = &rest[HEADER_LEN + len as usize..];
    }
    out
}

fn is_request(m: &Message) -> bool {
    matches!(m, Message::Request(_))
}

/// How many of `msgs` are of the kind named `name` ([`Message::name`]).
fn count(msgs: &[Message], name: &str) -> usize {
    msgs.iter().filter(|m| m.name() == name).count()
}

fn stored(p: &Pipe<8, 8>, name: &str) -> Option<Vec<u8>> {
    p.store.files.get(name).cloned()
}

// ---- several in flight ----

#[test]
fn puts_go_out_together_and_all_are_stored() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("f{i}"), bytes(1000 + 7_000 * i, i as u64)))
        .collect();
    p.begin(files.iter().map(|(n, d)| put(n, d)).collect());
    // Every request in the first flight, before any answer came back.
    let first = messages(&[&[0; HELLO_LEN][..], p.client.transmit_buf()].concat());
    assert_eq!(
        first.iter().filter(|m| is_request(m)).count(),
        5,
        "{first:?}"
    );
    p.drive();
    assert_eq!(p.finished(), vec![Outcome::Stored(None); 5]);
    assert_eq!(p.client.negotiated().unwrap().window, 8);
    for (n, d) in &files {
        assert_eq!(stored(&p, n).as_ref(), Some(d), "{n}");
    }
    // Each item saw its answer, its body's start and its end.
    for (i, evs) in p.by_item.iter().enumerate() {
        assert_eq!(
            evs,
            &[
                Rec::Accepted(0, None),
                Rec::SendBody(0),
                Rec::TransferEnd(true)
            ],
            "item {i}"
        );
    }
    // On the wire: five requests, then the five accepts, before any body.
    let up = messages(&p.up);
    assert!(up[1..6].iter().all(is_request), "{up:?}");
    let down = messages(&p.down);
    assert!(
        down[1..6]
            .iter()
            .all(|m| matches!(m, Message::Accept { .. })),
        "{down:?}"
    );
    assert_eq!(p.store.open_handles, 0);
    assert!(p.client.is_idle());
}

#[test]
fn gets_go_out_together_and_all_arrive() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("g{i}"),
                bytes(if i == 3 { 0 } else { 500 + 9_000 * i }, i as u64),
            )
        })
        .collect();
    for (n, d) in &files {
        p.store.files.insert(n.clone(), d.clone());
    }
    p.begin(files.iter().map(|(n, _)| get(n)).collect());
    let first = messages(&[&[0; HELLO_LEN][..], p.client.transmit_buf()].concat());
    assert_eq!(
        first.iter().filter(|m| is_request(m)).count(),
        6,
        "{first:?}"
    );
    p.drive();
    let want: Vec<Outcome> = files.iter().map(|(_, d)| Outcome::Got(d.clone())).collect();
    assert_eq!(p.finished(), want);
    // Every offer came before any body: the server read all requests first.
    let down = messages(&p.down);
    assert!(
        down[1..7]
            .iter()
            .all(|m| matches!(m, Message::Offer { .. })),
        "{down:?}"
    );
    assert_eq!(p.store.open_handles, 0);
    assert_eq!(p.store.get_ends.len(), 6);
    assert!(p
        .store
        .get_ends
        .iter()
        .all(|(_, e)| matches!(e, GetEnd::Done { verified: true, .. })));
    assert!(p.client.is_idle());
}

/// Puts, then gets, then a listing, on one connection, as the std client
/// runs them: a batch, drained, then the next request. The core refuses
/// a listing while transfers are in flight.
#[test]
fn puts_gets_and_a_listing_in_sequence() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Cycle(vec![3, 700, 1, 4096]));
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("m{i}"), bytes(3_000 * i + 1, 40 + i as u64)))
        .collect();
    let mut jobs: Vec<Job> = files.iter().map(|(n, d)| put(n, d)).collect();
    jobs.extend(files.iter().rev().map(|(n, _)| get(n)));
    p.begin(jobs);
    assert_eq!(p.client.list(""), Err(Error::BadUsage));
    p.step();
    assert_eq!(p.client.list(""), Err(Error::BadUsage));
    p.drive();
    let mut want = vec![Outcome::Stored(None); 4];
    want.extend(files.iter().rev().map(|(_, d)| Outcome::Got(d.clone())));
    assert_eq!(p.finished(), want);
    // The gets waited for the puts to drain: no get went out behind a put.
    let up = messages(&p.up);
    let first_get = up
        .iter()
        .position(|m| matches!(m, Message::Request(ferry_core::Request::Get { .. })))
        .unwrap();
    let last_trailer = up
        .iter()
        .rposition(|m| matches!(m, Message::Trailer { .. }))
        .unwrap();
    assert!(first_get > last_trailer, "{up:?}");

    p.events.clear();
    p.client.list("").unwrap();
    p.drive();
    let mut listed: Vec<(String, u64)> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Rec::Entry(e) => Some((e.name.to_string(), e.size)),
            _ => None,
        })
        .collect();
    listed.sort();
    let want: Vec<(String, u64)> = files
        .iter()
        .map(|(n, d)| (n.clone(), d.len() as u64))
        .collect();
    assert_eq!(listed, want);
    assert_eq!(p.events.last(), Some(&Rec::ListEnd));
    // And a second batch after the listing.
    let again = p.batch(vec![get("m2"), get("m0")]);
    assert_eq!(
        again,
        vec![
            Outcome::Got(files[2].1.clone()),
            Outcome::Got(files[0].1.clone())
        ]
    );
    assert_eq!(p.store.open_handles, 0);
}

// ---- refusals and cancels ----

/// The second of four puts names a file that exists (`Overwrite::Fail`):
/// it alone fails, with `Exists`, and the others are stored.
#[test]
fn a_refused_put_in_the_middle_leaves_the_others() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.store.files.insert("b".into(), b"old".to_vec());
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(20_000 + i, i as u64)).collect();
    let names = ["a", "b", "c", "d"];
    let out = p.batch(names.iter().zip(&data).map(|(n, d)| put(n, d)).collect());
    assert_eq!(
        out,
        [
            Outcome::Stored(None),
            Outcome::Failed(Error::Exists),
            Outcome::Stored(None),
            Outcome::Stored(None)
        ]
    );
    // The refusal came while the first was in flight: `Refused`, not
    // `Failed`, and mapped to item 1.
    assert_eq!(p.by_item[1], [Rec::Refused(Error::Exists)]);
    assert_eq!(stored(&p, "b").unwrap(), b"old");
    for i in [0, 2, 3] {
        assert_eq!(stored(&p, names[i]).unwrap(), data[i]);
    }
    assert_eq!(p.store.open_handles, 0);

    // The first of a batch refused: the oldest in flight fails (`Failed`).
    let out = p.batch(vec![put("a", b"x"), put("e", b"e"), put("f", b"f")]);
    assert_eq!(
        out,
        [
            Outcome::Failed(Error::Exists),
            Outcome::Stored(None),
            Outcome::Stored(None)
        ]
    );
    assert_eq!(p.by_item[0], [Rec::Failed(Error::Exists)]);
    // Keep-both renames the one in the middle and says so.
    let out = p.batch(vec![
        put("g", b"g"),
        Job::Put {
            path: "a".into(),
            data: b"second a".to_vec(),
            overwrite: Overwrite::KeepBoth,
        },
        put("h", b"h"),
    ]);
    let Outcome::Stored(Some(name)) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(stored(&p, name).unwrap(), b"second a");
    assert_eq!(out[2], Outcome::Stored(None));
    assert_eq!(p.store.open_handles, 0);
}

#[test]
fn a_missing_file_in_the_middle_of_a_get_batch() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Cycle(vec![2, 1000]));
    let data: Vec<Vec<u8>> = (0..3).map(|i| bytes(30_000, i)).collect();
    for (n, d) in ["a", "c", "d"].iter().zip(&data) {
        p.store.files.insert(n.to_string(), d.clone());
    }
    let out = p.batch(vec![get("a"), get("missing"), get("c"), get("d")]);
    assert_eq!(
        out,
        [
            Outcome::Got(data[0].clone()),
            Outcome::Failed(Error::NotFound),
            Outcome::Got(data[1].clone()),
            Outcome::Got(data[2].clone())
        ]
    );
    assert_eq!(p.by_item[1], [Rec::Refused(Error::NotFound)]);
    // Missing first: the oldest in flight fails.
    let out = p.batch(vec![get("missing"), get("a")]);
    assert_eq!(
        out,
        [
            Outcome::Failed(Error::NotFound),
            Outcome::Got(data[0].clone())
        ]
    );
    assert_eq!(p.by_item[0], [Rec::Failed(Error::NotFound)]);
    assert_eq!(p.store.open_handles, 0);
}

/// The client refuses the second of four offers: the server hears which
/// (`Declined { index: 1 }`), the store gets that file back, and the
/// others arrive.
#[test]
fn the_client_refuses_one_offer_in_a_get_batch() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(25_000 + i, 10 + i as u64)).collect();
    let names = ["a", "b", "c", "d"];
    for (n, d) in names.iter().zip(&data) {
        p.store.files.insert(n.to_string(), d.clone());
    }
    p.refuse = vec![1];
    let out = p.batch(names.iter().map(|n| get(n)).collect());
    assert_eq!(
        out,
        [
            Outcome::Got(data[0].clone()),
            Outcome::Failed(Error::Exists),
            Outcome::Got(data[2].clone()),
            Outcome::Got(data[3].clone())
        ]
    );
    let declined: Vec<&String> = p
        .store
        .log
        .iter()
        .filter(|l| l.starts_with("Declined"))
        .collect();
    assert_eq!(declined, ["Declined { index: 1, error: Exists }"]);
    assert!(p
        .store
        .get_ends
        .contains(&("b".into(), GetEnd::Cancelled(Error::Exists))));
    assert_eq!(p.store.get_ends.len(), 4);
    assert_eq!(p.store.open_handles, 0);
    // A version-3 refusal is its own message, not an `Error` (which
    // would cancel the body in progress).
    let up = messages(&p.up);
    assert_eq!(count(&up, "refuse"), 1);
    assert!(
        !up.iter().any(|m| matches!(m, Message::Error { .. })),
        "{up:?}"
    );

    // Refusing the last, and the first.
    for refuse in [3, 0] {
        p.refuse = vec![refuse];
        let out = p.batch(names.iter().map(|n| get(n)).collect());
        for (i, o) in out.iter().enumerate() {
            let want = if i == refuse {
                Outcome::Failed(Error::Exists)
            } else {
                Outcome::Got(data[i].clone())
            };
            assert_eq!(o, &want, "refusing {refuse}, item {i}");
        }
        assert_eq!(p.store.open_handles, 0);
    }
}

/// A get cancelled mid-body: the server ends that body, the store closes
/// the file as cancelled, the gets behind it arrive whole.
#[test]
fn a_get_cancelled_mid_body_leaves_the_others() {
    for split in [Split::Whole, Split::Cycle(vec![1, 333, 4096])] {
        let mut p = Pipe::<8, 8>::logged_in(split.clone());
        let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(60_000, 20 + i)).collect();
        let names = ["a", "b", "c", "d"];
        for (n, d) in names.iter().zip(&data) {
            p.store.files.insert(n.to_string(), d.clone());
        }
        p.cancel_after = Some((1, 5_000));
        let out = p.batch(names.iter().map(|n| get(n)).collect());
        assert_eq!(out[1], Outcome::Failed(Error::Cancelled), "{split:?}");
        for i in [0, 2, 3] {
            assert_eq!(out[i], Outcome::Got(data[i].clone()), "{split:?} item {i}");
        }
        assert!(p.store.log.contains(&"Cancelled(Cancelled)".to_string()));
        assert!(p
            .store
            .get_ends
            .contains(&("b".into(), GetEnd::Cancelled(Error::Cancelled))));
        assert_eq!(p.store.open_handles, 0);
        // The session goes on.
        assert_eq!(p.batch(vec![get("b")]), [Outcome::Got(data[1].clone())]);
    }
}

/// A put cancelled mid-body: the server keeps what arrived (for a
/// resume), the puts behind it are stored.
#[test]
fn a_put_cancelled_mid_body_leaves_the_others() {
    for split in [Split::Whole, Split::Cycle(vec![1, 333, 4096])] {
        let mut p = Pipe::<8, 8>::logged_in(split.clone());
        let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(50_000, 30 + i)).collect();
        let names = ["a", "b", "c", "d"];
        p.cancel_after = Some((1, 20_000));
        let out = p.batch(names.iter().zip(&data).map(|(n, d)| put(n, d)).collect());
        assert_eq!(out[1], Outcome::Failed(Error::Cancelled), "{split:?}");
        for i in [0, 2, 3] {
            assert_eq!(out[i], Outcome::Stored(None), "{split:?} item {i}");
            assert_eq!(stored(&p, names[i]).unwrap(), data[i]);
        }
        assert_eq!(stored(&p, "b"), None);
        assert_eq!(
            p.store.put_aborts,
            [("b".into(), Abort::Cancelled(Error::Cancelled))]
        );
        assert_eq!(p.store.open_handles, 0);
        assert!(p.client.is_idle());
    }
}

// ---- the peer vanishes ----

/// The link is cut after every number of steps of a batch, up to its end:
/// every item ends with an error (or had ended), nothing panics, both
/// sides close, and the store has every handle back.
#[test]
fn the_peer_vanishing_with_requests_outstanding() {
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(40_000, 50 + i)).collect();
    for gets in [false, true] {
        for steps in 0..1000 {
            let mut p = Pipe::<8, 8>::logged_in(Split::Cycle(vec![1500]));
            let names = ["a", "b", "c", "d"];
            let jobs: Vec<Job> = if gets {
                for (n, d) in names.iter().zip(&data) {
                    p.store.files.insert(n.to_string(), d.clone());
                }
                names.iter().map(|n| get(n)).collect()
            } else {
                names.iter().zip(&data).map(|(n, d)| put(n, d)).collect()
            };
            p.begin(jobs);
            for _ in 0..steps {
                p.step();
            }
            let was_done = p.outcomes.iter().all(Option::is_some);
            p.vanish();
            p.drive();
            let out = p.finished();
            assert!(p.client_closed.is_some(), "gets {gets}, {steps} steps");
            assert!(p.server_closed.is_some(), "gets {gets}, {steps} steps");
            if !was_done {
                assert!(
                    out.iter().any(|o| matches!(o, Outcome::Failed(_))),
                    "gets {gets}, {steps} steps: {out:?}"
                );
            }
            for (i, o) in out.iter().enumerate() {
                match o {
                    Outcome::Got(d) => assert_eq!(d, &data[i]),
                    Outcome::Stored(_) => assert_eq!(stored_any(&p, names[i]), Some(&data[i])),
                    Outcome::Failed(_) => {}
                }
            }
            assert_eq!(p.store.open_handles, 0, "gets {gets}, {steps} steps");
            assert!(p.session.is_closed());
            if was_done {
                break;
            }
        }
    }
}

fn stored_any<'a, const C: usize, const S: usize>(
    p: &'a Pipe<C, S>,
    name: &str,
) -> Option<&'a Vec<u8>> {
    p.store.files.get(name)
}

// ---- windows and versions ----

fn mixed_batches<const C: usize, const S: usize>(p: &mut Pipe<C, S>) {
    let data: Vec<Vec<u8>> = (0..4)
        .map(|i| bytes(9_000 * i + 3, 60 + i as u64))
        .collect();
    let names = ["w0", "w1", "w2", "w3"];
    p.store.files.insert("w1".into(), b"in the way".to_vec());
    let out = p.batch(names.iter().zip(&data).map(|(n, d)| put(n, d)).collect());
    assert_eq!(
        out,
        [
            Outcome::Stored(None),
            Outcome::Failed(Error::Exists),
            Outcome::Stored(None),
            Outcome::Stored(None)
        ]
    );
    p.refuse = vec![2];
    let out = p.batch(vec![
        get("w0"),
        get("nope"),
        get("w2"),
        get("w3"),
        get("w1"),
    ]);
    assert_eq!(
        out,
        [
            Outcome::Got(data[0].clone()),
            Outcome::Failed(Error::NotFound),
            Outcome::Failed(Error::Exists),
            Outcome::Got(data[3].clone()),
            Outcome::Got(b"in the way".to_vec()),
        ]
    );
    p.refuse.clear();
    assert_eq!(p.store.open_handles, 0);
}

/// A client with a window of 8 against a server with 1, and the other
/// way round: everything works one at a time, window 1 negotiated.
#[test]
fn window_one_against_window_eight() {
    let mut p = Pipe::<8, 1>::logged_in(Split::Cycle(vec![7, 2048]));
    assert_eq!(p.client.negotiated().unwrap().window, 1);
    assert_eq!(p.server.negotiated().unwrap().window, 1);
    assert_eq!(p.client.version(), 3);
    p.begin(vec![put("x", b"x"), put("y", b"y")]);
    let first = messages(&[&[0; HELLO_LEN][..], p.client.transmit_buf()].concat());
    assert_eq!(
        first.iter().filter(|m| is_request(m)).count(),
        1,
        "one at a time"
    );
    assert!(!p.client.can_pipeline(false));
    p.drive();
    assert_eq!(p.finished(), vec![Outcome::Stored(None); 2]);
    mixed_batches(&mut p);

    let mut p = Pipe::<1, 8>::logged_in(Split::Cycle(vec![7, 2048]));
    assert_eq!(p.client.negotiated().unwrap().window, 1);
    assert_eq!(p.server.negotiated().unwrap().window, 1);
    mixed_batches(&mut p);
    // Never more than one request before its answer, on either pair.
    let up = messages(&p.up);
    let down = messages(&p.down);
    let answers = ["offer", "accept", "error"].map(|n| count(&down, n));
    assert_eq!(count(&up, "request"), answers.iter().sum::<usize>());
}

/// The hello's flags without bit 3 (version 3) and window: what a
/// version-2 peer sends.
fn as_version_2(wire: &mut Wire) {
    assert!(wire.bytes.len() >= HELLO_LEN);
    assert_eq!(wire.bytes[7] & 0x08, 0x08, "a version-3 hello");
    wire.bytes[6] = 0;
    wire.bytes[7] &= !0x08;
}

/// A pair whose hellos were patched to version 2, logged in.
fn version_2_pipe() -> Pipe<8, 8> {
    let mut p = Pipe::<8, 8>::new(Split::Whole);
    p.client.login_anonymous().unwrap();
    p.transmit();
    as_version_2(&mut p.to_server);
    as_version_2(&mut p.to_client);
    p.drive();
    p
}

/// A version-2 client (hello patched by hand): the server speaks version
/// 2 with window 1 to it, never sends it a version-3 message, and closes
/// on a second request sent before the first was answered.
#[test]
fn a_version_2_client_gets_window_1() {
    // Both hellos patched: the client then speaks version 2 as well.
    let mut p = version_2_pipe();
    assert_eq!((p.server.version(), p.server.window()), (2, 1));
    assert_eq!((p.client.version(), p.client.window()), (2, 1));
    assert!(p.events.contains(&Rec::LoggedIn));
    p.store.files.insert("a".into(), bytes(20_000, 1));
    p.store.files.insert("b".into(), bytes(20_000, 2));
    p.refuse = vec![1];
    let out = p.batch(vec![get("a"), get("b"), get("nope")]);
    assert_eq!(
        out,
        [
            Outcome::Got(bytes(20_000, 1)),
            Outcome::Failed(Error::Exists),
            Outcome::Failed(Error::NotFound)
        ]
    );
    p.refuse.clear();
    p.cancel_after = Some((0, 100));
    let out = p.batch(vec![get("a"), get("b")]);
    assert_eq!(
        out,
        [
            Outcome::Failed(Error::Cancelled),
            Outcome::Got(bytes(20_000, 2))
        ]
    );
    assert_eq!(p.store.open_handles, 0);
    // No version-3 message either way: refusals went as `Error`.
    let all: Vec<Message> = messages(&p.up)
        .into_iter()
        .chain(messages(&p.down))
        .collect();
    assert!(
        !all.iter()
            .any(|m| matches!(m, Message::Refuse { .. } | Message::Retry { .. })),
        "{all:?}"
    );

    // Two requests before the first answer break a window of 1.
    let mut p = Pipe::<1, 8>::new(Split::Whole);
    p.client.login_anonymous().unwrap();
    p.transmit();
    as_version_2(&mut p.to_server);
    p.drive();
    p.store.files.insert("a".into(), b"a".to_vec());
    let mut buf = [0u8; 64];
    for path in ["a", "a"] {
        let req = Message::Request(ferry_core::Request::Get {
            path: path.try_into().unwrap(),
        });
        let n = frame::encode_message(&req, &mut buf).unwrap();
        p.to_server.bytes.extend(&buf[..n]);
    }
    p.drive();
    assert_eq!(p.server_closed, Some(Error::UnexpectedFrame));
    assert_eq!(p.store.open_handles, 0);
}

/// A refused connection answers a version-2 client with `Error`, a
/// version-3 one with `Retry`.
#[test]
fn a_refused_version_2_client_hears_error_not_retry() {
    for v2 in [true, false] {
        let now = Instant::ZERO;
        let mut refused = Server::new_refused_retry(
            now,
            server_config(),
            vec![0; 4096],
            vec![0; 4096],
            Error::Penalised,
            30,
        )
        .unwrap();
        let mut c =
            Client::<_, 8>::with_window(now, Config::default(), vec![0; 4096], vec![0; 4096])
                .unwrap();
        let mut hello = [0u8; 64];
        let n = c.poll_transmit(&mut hello).unwrap();
        assert_eq!(n, HELLO_LEN);
        if v2 {
            hello[6] = 0;
            hello[7] &= !0x08;
        }
        refused.handle_input(now, &hello[..n]).unwrap();
        while let Some(ev) = refused.poll_event() {
            if matches!(ev, ServerEvent::Closed(_)) {
                break;
            }
        }
        let mut out = vec![0u8; 4096];
        let n = refused.poll_transmit(&mut out).unwrap();
        let msgs = messages(&out[..n]);
        if v2 {
            assert_eq!(
                msgs,
                [Message::Error {
                    code: Error::Penalised.code()
                }]
            );
        } else {
            assert_eq!(
                msgs,
                [Message::Retry {
                    code: Error::Penalised.code(),
                    seconds: 30
                }]
            );
        }
    }
}

/// A cancel sent right after the third offer's answer, before any body
/// byte came: it ends the oldest get accepted, whether its body had
/// started on the server or not, and the others arrive.
#[test]
fn a_cancel_before_any_body_ends_the_oldest_accepted() {
    for split in [
        Split::Whole,
        Split::Cycle(vec![1]),
        Split::Cycle(vec![9, 5000]),
    ] {
        let mut p = Pipe::<8, 8>::logged_in(split.clone());
        let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(30_000, 70 + i)).collect();
        let names = ["a", "b", "c", "d"];
        for (n, d) in names.iter().zip(&data) {
            p.store.files.insert(n.to_string(), d.clone());
        }
        p.cancel_at_offer = Some(2);
        let out = p.batch(names.iter().map(|n| get(n)).collect());
        assert_eq!(out[0], Outcome::Failed(Error::Cancelled), "{split:?}");
        for i in 1..4 {
            assert_eq!(out[i], Outcome::Got(data[i].clone()), "{split:?} item {i}");
        }
        assert!(p
            .store
            .get_ends
            .contains(&("a".into(), GetEnd::Cancelled(Error::Cancelled))));
        assert_eq!(p.store.open_handles, 0);
        assert!(p.client.is_idle());
    }
}

/// The server fails to read one file of a get batch mid-body (it
/// shrank): that get fails with `Io`, the client acknowledges, the rest
/// arrive.
#[test]
fn a_read_failure_in_the_middle_of_a_get_batch() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Cycle(vec![4096, 3]));
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(30_000, 80 + i)).collect();
    let names = ["a", "b", "c", "d"];
    for (n, d) in names.iter().zip(&data) {
        p.store.files.insert(n.to_string(), d.clone());
    }
    p.store.shrink_by = 10;
    p.store.shrink_only = Some("b".into());
    let out = p.batch(names.iter().map(|n| get(n)).collect());
    assert_eq!(out[1], Outcome::Failed(Error::Io));
    for i in [0, 2, 3] {
        assert_eq!(out[i], Outcome::Got(data[i].clone()), "item {i}");
    }
    assert!(p
        .store
        .get_ends
        .contains(&("b".into(), GetEnd::Failed(Error::Io))));
    assert_eq!(p.store.open_handles, 0);
    // The session goes on.
    p.store.shrink_by = 0;
    assert_eq!(p.batch(vec![get("b")]), [Outcome::Got(data[1].clone())]);
}

/// The store runs out of room in the second of four puts: the server
/// cancels that one mid-body, the client ends its body, and the puts
/// behind it are stored.
#[test]
fn a_write_failure_in_the_middle_of_a_put_batch() {
    for split in [Split::Whole, Split::Cycle(vec![1, 2000])] {
        let mut p = Pipe::<8, 8>::logged_in(split.clone());
        let data: Vec<Vec<u8>> = [3_000, 60_000, 3_000, 3_000]
            .iter()
            .enumerate()
            .map(|(i, &n)| bytes(n, 90 + i as u64))
            .collect();
        let names = ["a", "b", "c", "d"];
        p.store.fail_writes_after = Some(10_000);
        let out = p.batch(names.iter().zip(&data).map(|(n, d)| put(n, d)).collect());
        assert_eq!(out[1], Outcome::Failed(Error::NoSpace), "{split:?}");
        for i in [0, 2, 3] {
            assert_eq!(out[i], Outcome::Stored(None), "{split:?} item {i}");
            assert_eq!(stored(&p, names[i]).unwrap(), data[i]);
        }
        assert_eq!(
            p.store.put_aborts,
            [("b".into(), Abort::Failed(Error::NoSpace))]
        );
        assert_eq!(p.store.open_handles, 0);
        assert!(p.client.is_idle());
    }
}

/// Where `needle` first appears in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("in the stream")
}

/// A byte flipped in the middle of one body of a batch, either way: that
/// item fails its digest check, the others pass.
#[test]
fn a_corrupted_body_fails_only_its_item() {
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(20_000, 100 + i)).collect();
    let names = ["a", "b", "c", "d"];
    let puts = || -> Vec<Job> { names.iter().zip(&data).map(|(n, d)| put(n, d)).collect() };
    let gets = || -> Vec<Job> { names.iter().map(|n| get(n)).collect() };
    // A clean run finds where the second body's middle crosses the wire.
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.batch(puts());
    let up_at = find(&p.up, &data[1][10_000..10_032]) as u64;
    p.batch(gets());
    let down_at = find(&p.down, &data[1][10_000..10_032]) as u64;

    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.to_server.flip_at = Some(up_at);
    let out = p.batch(puts());
    assert_eq!(out[1], Outcome::Failed(Error::ChecksumMismatch));
    assert_eq!(stored(&p, "b"), None);
    for i in [0, 2, 3] {
        assert_eq!(out[i], Outcome::Stored(None), "item {i}");
        assert_eq!(stored(&p, names[i]).unwrap(), data[i]);
    }
    p.store.files.insert("b".into(), data[1].clone());
    p.to_client.flip_at = Some(down_at);
    let out = p.batch(gets());
    assert_eq!(out[1], Outcome::Failed(Error::ChecksumMismatch));
    for i in [0, 2, 3] {
        assert_eq!(out[i], Outcome::Got(data[i].clone()), "item {i}");
    }
    assert!(p.store.log.contains(&format!(
        "GetEnd {{ verified: false, sum: {:?} }}",
        p.store.server_sums[5]
    )));
    assert_eq!(p.store.open_handles, 0);
}

// ---- pre-agreed gets (docs/PROTOCOL.md#pre-agreed-gets) ----

/// Gets agreed in advance: the server lists `AGREED`, the client
/// sends no `Accept`, each body follows its offer, and every file
/// arrives, also with the stream cut into odd reads.
#[test]
fn pre_agreed_gets_need_no_accept_and_all_arrive() {
    for split in [Split::Whole, Split::Cycle(vec![3, 700, 1, 4096])] {
        let mut p = Pipe::<8, 8>::logged_in(split);
        assert!(p.client.negotiated().unwrap().agreed());
        let files: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| {
                (
                    format!("g{i}"),
                    bytes(if i == 2 { 0 } else { 3_000 * i }, i as u64),
                )
            })
            .collect();
        for (n, d) in &files {
            p.store.files.insert(n.clone(), d.clone());
        }
        let out = p.batch(files.iter().map(|(n, _)| agreed(n, 1 << 20)).collect());
        let want: Vec<Outcome> = files.iter().map(|(_, d)| Outcome::Got(d.clone())).collect();
        assert_eq!(out, want);
        let up = messages(&p.up);
        assert_eq!(count(&up, "get-agreed"), 5);
        assert!(
            !up.iter().any(|m| matches!(m, Message::Accept { .. })),
            "{up:?}"
        );
        assert_eq!(p.store.get_ends.len(), 5);
        assert!(p
            .store
            .get_ends
            .iter()
            .all(|(_, e)| matches!(e, GetEnd::Done { verified: true, .. })));
        assert_eq!(p.store.open_handles, 0);
        assert!(p.client.is_idle());
    }
}

/// An offer past the bound is answered as any offer (here, behind an
/// agreed one and ahead of another): exactly one `Accept` goes out, and
/// the bodies still come in request order. An agreed offer the driver
/// refuses has its body taken and cancelled when it starts; the rest
/// arrive.
#[test]
fn an_offer_past_the_bound_waits_for_its_accept_and_a_refused_agreed_one_is_cancelled() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(10_000 + i, 20 + i as u64)).collect();
    let names = ["a", "big", "c", "d"];
    for (n, d) in names.iter().zip(&data) {
        p.store.files.insert(n.to_string(), d.clone());
    }
    let jobs = vec![
        agreed("a", 20_000),
        agreed("big", 9_999),
        agreed("c", 20_000),
        agreed("d", 20_000),
    ];
    let out = p.batch(jobs.clone());
    let want: Vec<Outcome> = data.iter().map(|d| Outcome::Got(d.clone())).collect();
    assert_eq!(out, want);
    let up = messages(&p.up);
    assert_eq!(
        count(&up, "accept"),
        1,
        "only the offer past its bound: {up:?}"
    );

    p.refuse = vec![2];
    let out = p.batch(jobs);
    assert_eq!(
        out,
        [
            Outcome::Got(data[0].clone()),
            Outcome::Got(data[1].clone()),
            Outcome::Failed(Error::Exists),
            Outcome::Got(data[3].clone())
        ]
    );
    assert!(p
        .store
        .get_ends
        .contains(&("c".into(), GetEnd::Cancelled(Error::Exists))));
    assert_eq!(p.store.open_handles, 0);
    assert!(p.client.is_idle());
    // The session goes on.
    let out = p.batch(vec![agreed("a", 20_000)]);
    assert_eq!(out, [Outcome::Got(data[0].clone())]);
}

/// A version-2 client is never told of pre-agreed gets, and a core
/// client will not send one to a server that did not list them.
#[test]
fn a_version_2_session_has_no_pre_agreed_gets() {
    let mut p = version_2_pipe();
    assert!(!p.client.negotiated().unwrap().agreed());
    assert_eq!(p.client.get_agreed("a", 0, 10), Err(Error::Unsupported));
    p.store.files.insert("a".into(), bytes(5_000, 1));
    assert_eq!(p.batch(vec![get("a")]), [Outcome::Got(bytes(5_000, 1))]);
}

/// A get sent behind a login the server refuses fails with the login's
/// error, after `LoginFailed` (`Client::login_sent`): the driver that
/// reports either tells the user why the login failed, never "not
/// logged in".
#[test]
fn a_get_behind_a_refused_login_fails_with_the_logins_error() {
    let mut sc = server_config();
    sc.allow_anonymous = false;
    let mut p = Pipe::<8, 8>::with(Config::default(), sc, 16 * 1024, Split::Whole);
    p.store.files.insert("a".into(), bytes(100, 1));
    p.client.login_anonymous().unwrap();
    let out = p.batch(vec![get("a")]);
    assert_eq!(out, [Outcome::Failed(Error::AnonymousNotAllowed)]);
    let login = p
        .events
        .iter()
        .position(|e| *e == Rec::LoginFailed(Error::AnonymousNotAllowed));
    let failed = p
        .events
        .iter()
        .position(|e| *e == Rec::Failed(Error::AnonymousNotAllowed));
    assert!(login < failed && login.is_some(), "{:?}", p.events);
    // The server refused the get as not logged in; the session goes on.
    assert!(messages(&p.down).contains(&Message::Error {
        code: Error::NotLoggedIn.code()
    }));
    assert_eq!(p.server_closed, None);
}

// ---- pre-agreed puts (docs/PROTOCOL.md#pre-agreed-puts) ----

/// Puts agreed in advance: every request goes out with its body and
/// trailer in one turn, before any answer, beyond the server's window
/// (2 here: they never hold a place in it); the server answers each with
/// `Accept` and `Done`, and every file is stored, also with the stream cut
/// into odd reads. An empty file goes as a request and a trailer.
#[test]
fn pre_agreed_puts_go_with_their_bodies_in_one_turn() {
    for split in [Split::Whole, Split::Cycle(vec![3, 700, 1, 4096])] {
        let mut p = Pipe::<8, 2>::logged_in(split);
        assert!(p.client.negotiated().unwrap().agreed());
        assert_eq!(p.client.negotiated().unwrap().window, 2);
        let files: Vec<(String, Vec<u8>)> = (0..6)
            .map(|i| {
                (
                    format!("p{i}"),
                    bytes(if i == 3 { 0 } else { 700 * i }, i as u64),
                )
            })
            .collect();
        p.begin(files.iter().map(|(n, d)| put_agreed(n, d)).collect());
        p.client_turn();
        let up = messages(&p.up);
        assert_eq!(count(&up, "put-agreed"), 6, "{up:?}");
        assert_eq!(count(&up, "trailer"), 6, "{up:?}");
        assert!(p.down.len() <= HELLO_LEN + 8, "nothing answered yet");
        p.drive();
        let want = vec![Outcome::Stored(None); 6];
        assert_eq!(p.finished(), want);
        for (n, d) in &files {
            assert_eq!(p.store.files.get(n), Some(d), "{n}");
        }
        let down = messages(&p.down);
        assert_eq!(count(&down, "accept"), 6, "{down:?}");
        assert!(p.client.is_idle());
        assert_eq!(p.store.open_handles, 0);
    }
}

/// The second of four pre-agreed puts names a file that exists: the
/// server reads its body, drops it, and answers it with one `Error`
/// after its trailer (no `Accept`, no `Done`); the file is unchanged and
/// the others are stored. A keep-both put's chosen name comes in its
/// `Accept`.
#[test]
fn a_refused_pre_agreed_put_is_answered_once_after_its_body() {
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.store.files.insert("b".into(), b"old".to_vec());
    p.store.files.insert("k".into(), b"kept".to_vec());
    let data: Vec<Vec<u8>> = (0..4).map(|i| bytes(3_000 + i, 40 + i as u64)).collect();
    let mut jobs: Vec<Job> = ["a", "b", "c"]
        .iter()
        .zip(&data)
        .map(|(n, d)| put_agreed(n, d))
        .collect();
    jobs.push(Job::PutAgreed {
        path: "k".into(),
        data: data[3].clone(),
        overwrite: Overwrite::KeepBoth,
    });
    let out = p.batch(jobs);
    assert_eq!(
        out,
        [
            Outcome::Stored(None),
            Outcome::Failed(Error::Exists),
            Outcome::Stored(None),
            Outcome::Stored(Some("k.new".into()))
        ]
    );
    assert_eq!(p.store.files.get("b").unwrap(), b"old");
    assert_eq!(p.store.files.get("k.new").unwrap(), &data[3]);
    let down: Vec<&'static str> = messages(&p.down).iter().map(Message::name).collect();
    assert_eq!(
        down,
        ["login-ok", "accept", "done", "error", "accept", "done", "accept", "done"]
    );
    assert_eq!(p.store.open_handles, 0);
    // The session goes on: a get after them.
    assert_eq!(p.batch(vec![get("c")]), [Outcome::Got(data[2].clone())]);
}

/// A pre-agreed put cancelled mid-body (its local read failed): ended
/// once, whether the server had accepted it (its `Error(Cancelled)`
/// acknowledges) or refused it (its refusal does); nothing is stored
/// under its name and the puts after it go on.
#[test]
fn a_pre_agreed_put_cancelled_mid_body_ends_once() {
    for exists in [false, true] {
        let mut p = Pipe::<8, 8>::with(
            Config::default(),
            crate::pair::server_config(),
            4096,
            Split::Whole,
        );
        p.client.login_anonymous().unwrap();
        p.drive();
        if exists {
            p.store.files.insert("b".into(), b"old".to_vec());
        }
        let data: Vec<Vec<u8>> = (0..3).map(|i| bytes(3_000, 60 + i as u64)).collect();
        p.cancel_after = Some((1, 1_000));
        let out = p.batch(
            ["a", "b", "c"]
                .iter()
                .zip(&data)
                .map(|(n, d)| put_agreed(n, d))
                .collect(),
        );
        assert_eq!(
            out,
            [
                Outcome::Stored(None),
                Outcome::Failed(Error::Cancelled),
                Outcome::Stored(None)
            ],
            "exists: {exists}"
        );
        let b = p.store.files.get("b").map(Vec::as_slice);
        assert_eq!(b, exists.then_some(&b"old"[..]));
        assert_eq!(p.store.files.get("c"), Some(&data[2]));
        assert!(p.client.is_idle());
        assert_eq!(p.store.open_handles, 0);
    }
}

/// When pre-agreed puts may go: not in a version-2 session, not at a
/// window of 1, not behind a put waiting for its `Accept`, not behind a
/// get; and nothing is sent when refused.
#[test]
fn pre_agreed_puts_only_where_the_server_reads_their_body_at_once() {
    let mut p = version_2_pipe();
    assert_eq!(
        p.client.put_agreed("a", 1, Overwrite::Fail),
        Err(Error::Unsupported)
    );

    let mut one = Pipe::<1, 8>::logged_in(Split::Whole);
    assert!(!one.client.can_put_agreed());
    assert_eq!(
        one.client.put_agreed("a", 1, Overwrite::Fail),
        Err(Error::Unsupported)
    );

    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    assert!(p.client.can_put_agreed());
    p.client.put("x", 10, Overwrite::Fail, false).unwrap();
    assert!(!p.client.can_put_agreed(), "a put waits for its Accept");
    let before = p.client.transmit_buf().len();
    assert_eq!(
        p.client.put_agreed("a", 1, Overwrite::Fail),
        Err(Error::BadUsage)
    );
    assert_eq!(p.client.transmit_buf().len(), before, "nothing sent");

    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.client.get("x").unwrap();
    assert!(!p.client.can_put_agreed(), "a get in flight");
    let mut p = Pipe::<8, 8>::logged_in(Split::Whole);
    p.client.put_agreed("a", 2, Overwrite::Fail).unwrap();
    assert!(!p.client.can_put_agreed(), "its own body goes first");
    p.client.send_body(b"ab").unwrap();
    assert!(p.client.can_put_agreed());
}

/// More pre-agreed puts than the client has room for (`W` awaiting their
/// answer): the next waits for room, and every one is stored.
#[test]
fn more_pre_agreed_puts_than_the_client_has_room_for() {
    let mut p = Pipe::<4, 4>::logged_in(Split::Whole);
    let files: Vec<(String, Vec<u8>)> = (0..23)
        .map(|i| (format!("m{i}"), bytes(100 + i, i as u64)))
        .collect();
    let out = p.batch(files.iter().map(|(n, d)| put_agreed(n, d)).collect());
    assert_eq!(out, vec![Outcome::Stored(None); 23]);
    for (n, d) in &files {
        assert_eq!(p.store.files.get(n), Some(d), "{n}");
    }
}
