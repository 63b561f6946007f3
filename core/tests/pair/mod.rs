//! A client and a server wired back to back in memory, with a fake clock and
//! a toy in-memory file store on the server side (as quinn-proto's `Pair`).
//! Tests script the client; the server answers like a real driver would.
#![allow(dead_code, clippy::large_enum_variant)]

use std::collections::{BTreeMap, VecDeque};
use std::string::{String, ToString};
use std::vec::Vec;

use ferry_core::digest::{self, Sum};
use ferry_core::{
    Client, ClientEvent, Config, Entry, Error, Instant, Kind, Overwrite, Request, Server,
    ServerConfig, ServerEvent, Stream, Verifier,
};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";

/// A client event, owned so tests can compare sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    Connected(u32, u32),
    LoggedIn,
    LoginFailed(Error),
    Echo(String),
    Done,
    Cwd(String),
    Entry(Entry),
    ListEnd,
    Offer(u64),
    Accepted(u64, Option<String>),
    Data(Vec<u8>),
    TransferEnd(bool),
    Sum(Sum),
    Output(Stream, Vec<u8>),
    ExecEnd(i32, bool),
    Failed(Error),
    Closed(Error),
}

/// What the server driver saw, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SRec {
    LoggedIn(Option<String>),
    LoginFailed(Error, u8),
    PutEnd(bool),
    GetEnd(bool),
    Cancelled(Error),
    Closed(Error),
}

/// How the wire cuts the byte stream into reads.
#[derive(Debug, Clone)]
pub enum Split {
    /// Everything queued in one read.
    Whole,
    /// Reads of these sizes, cycled.
    Cycle(Vec<usize>),
}

pub struct Wire {
    pub bytes: VecDeque<u8>,
    split: Split,
    turn: usize,
    /// Absolute stream offset of the next byte to leave.
    pub sent: u64,
    /// Flip the byte at this stream offset (XOR 0xFF) as it passes.
    pub flip_at: Option<u64>,
}

impl Wire {
    fn new(split: Split) -> Self {
        Wire {
            bytes: VecDeque::new(),
            split,
            turn: 0,
            sent: 0,
            flip_at: None,
        }
    }

    fn next_read(&mut self) -> Vec<u8> {
        let n = match &self.split {
            Split::Whole => self.bytes.len(),
            Split::Cycle(v) => {
                let n = v[self.turn % v.len()].max(1);
                self.turn += 1;
                n
            }
        };
        let n = n.min(self.bytes.len());
        let mut out: Vec<u8> = self.bytes.drain(..n).collect();
        if let Some(at) = self.flip_at {
            if at >= self.sent && at < self.sent + n as u64 {
                out[(at - self.sent) as usize] ^= 0xFF;
            }
        }
        self.sent += n as u64;
        out
    }

    fn unread(&mut self, rest: &[u8]) {
        self.sent -= rest.len() as u64;
        for &b in rest.iter().rev() {
            self.bytes.push_front(b);
        }
    }
}

/// The server's toy store.
#[derive(Default)]
pub struct Store {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: Vec<String>,
    /// Partial uploads kept for `--resume`.
    pub partial: BTreeMap<String, Vec<u8>>,
    pub cwd: String,
}

impl Store {
    /// Renames a file; an existing target is refused unless `replace`.
    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        let (from, to) = (self.resolve(from), self.resolve(to));
        if !self.files.contains_key(&from) {
            return Err(Error::NotFound);
        }
        if !replace && (self.files.contains_key(&to) || self.dirs.contains(&to)) {
            return Err(Error::Exists);
        }
        let d = self.files.remove(&from).unwrap();
        self.files.insert(to, d);
        Ok(())
    }

    fn resolve(&self, p: &str) -> String {
        if p.starts_with('/') || self.cwd.is_empty() {
            p.trim_start_matches('/').to_string()
        } else {
            format!("{}/{}", self.cwd, p)
        }
    }
}

struct Upload {
    target: String,
    body: Vec<u8>,
}

pub struct Pair {
    pub now: Instant,
    pub client: Client<Vec<u8>>,
    pub server: Server<Vec<u8>>,
    pub to_server: Wire,
    pub to_client: Wire,
    pub events: Vec<Rec>,
    pub server_events: Vec<SRec>,
    pub store: Store,
    pub users: Vec<(String, Verifier)>,
    /// Client side of a get: the bytes held locally (prefix for resume,
    /// then the body as it arrives).
    pub local: Vec<u8>,
    /// Client side of a put: the whole file; sent from the accepted offset.
    pub upload: Vec<u8>,
    upload_pos: usize,
    uploading: bool,
    /// Stop sending a put body after this many bytes (simulates a client
    /// that vanishes).
    pub upload_limit: Option<usize>,
    srv_get: Option<(Vec<u8>, usize, bool)>,
    srv_put: Option<Upload>,
    pub client_closed: bool,
    pub server_closed: bool,
    /// Each finished transfer's digest as the client computed it.
    pub client_sums: Vec<Sum>,
    /// Each finished transfer's digest as the server computed it.
    pub server_sums: Vec<Sum>,
    /// Digests the server vouches for on a get instead of hashing
    /// (`Server::offer_vouched`), by path.
    pub vouch: BTreeMap<String, Sum>,
    /// Prefix bytes the server was asked to read and hash, per get.
    pub server_prefix_fed: Vec<u64>,
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        allow_anonymous: true,
        allow_exec: true,
        ..ServerConfig::new([9; 32])
    }
}

impl Pair {
    pub fn new() -> Self {
        Self::with(
            Config::default(),
            server_config(),
            256 * 1024,
            256 * 1024,
            Split::Whole,
        )
    }

    pub fn with(
        cc: Config,
        sc: ServerConfig,
        client_buf: usize,
        server_buf: usize,
        split: Split,
    ) -> Self {
        let now = Instant::from_millis(1_000);
        let client = Client::new(now, cc, vec![0; client_buf], vec![0; client_buf]).unwrap();
        let server = Server::new(now, sc, vec![0; server_buf], vec![0; server_buf]).unwrap();
        let verifier = Verifier::new(PASSWORD, b"pair salt", 4096).unwrap();
        Pair {
            now,
            client,
            server,
            to_server: Wire::new(split.clone()),
            to_client: Wire::new(split),
            events: Vec::new(),
            server_events: Vec::new(),
            store: Store::default(),
            users: vec![(USER.to_string(), verifier)],
            local: Vec::new(),
            upload: Vec::new(),
            upload_pos: 0,
            uploading: false,
            upload_limit: None,
            srv_get: None,
            srv_put: None,
            client_closed: false,
            server_closed: false,
            client_sums: Vec::new(),
            server_sums: Vec::new(),
            vouch: BTreeMap::new(),
            server_prefix_fed: Vec::new(),
        }
    }

    /// Drives both sides until nothing moves (bounded).
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pair did not settle");
    }

    /// Takes the client events recorded so far.
    pub fn take(&mut self) -> Vec<Rec> {
        std::mem::take(&mut self.events)
    }

    pub fn step(&mut self) -> bool {
        let mut progress = false;
        progress |= self.pump_client_body();
        progress |= self.pump_server_body();
        let mut buf = [0u8; 4096];
        while let Some(n) = self.client.poll_transmit(&mut buf) {
            self.to_server.bytes.extend(&buf[..n]);
            progress = true;
        }
        while let Some(n) = self.server.poll_transmit(&mut buf) {
            self.to_client.bytes.extend(&buf[..n]);
            progress = true;
        }
        progress |= self.deliver_to_server();
        progress |= self.deliver_to_client();
        progress |= self.client_events();
        progress |= self.server_events();
        progress
    }

    fn deliver_to_server(&mut self) -> bool {
        if self.to_server.bytes.is_empty() || self.server_closed {
            return false;
        }
        let chunk = self.to_server.next_read();
        match self.server.handle_input(self.now, &chunk) {
            Ok(n) => {
                self.to_server.unread(&chunk[n..]);
                self.server_events();
                n > 0
            }
            Err(_) => {
                self.to_server.bytes.clear();
                false
            }
        }
    }

    fn deliver_to_client(&mut self) -> bool {
        if self.to_client.bytes.is_empty() || self.client_closed {
            return false;
        }
        let chunk = self.to_client.next_read();
        match self.client.handle_input(self.now, &chunk) {
            Ok(n) => {
                self.to_client.unread(&chunk[n..]);
                self.client_events();
                n > 0
            }
            Err(_) => {
                self.to_client.bytes.clear();
                false
            }
        }
    }

    fn pump_client_body(&mut self) -> bool {
        if !self.uploading {
            return false;
        }
        let mut progress = false;
        loop {
            let limit = self
                .upload_limit
                .unwrap_or(usize::MAX)
                .min(self.upload.len());
            if self.client.remaining() == 0 {
                break;
            }
            let (upload, pos) = (&self.upload, self.upload_pos);
            let n = self
                .client
                .send_with(|buf| {
                    let n = buf.len().min(limit.saturating_sub(pos));
                    buf[..n].copy_from_slice(&upload[pos..pos + n]);
                    (n, n)
                })
                .unwrap();
            if n == 0 {
                break;
            }
            self.upload_pos += n;
            progress = true;
        }
        if self.client.remaining() == 0 {
            self.uploading = false;
        }
        progress
    }

    fn pump_server_body(&mut self) -> bool {
        let Some((data, pos, true)) = &mut self.srv_get else {
            return false;
        };
        let mut progress = false;
        loop {
            if self.server.remaining() == 0 {
                break;
            }
            let at = *pos;
            let n = self
                .server
                .send_with(|buf| {
                    let n = buf.len().min(data.len() - at);
                    buf[..n].copy_from_slice(&data[at..at + n]);
                    (n, n)
                })
                .unwrap();
            if n == 0 {
                break;
            }
            *pos += n;
            progress = true;
        }
        if *pos == data.len() {
            self.srv_get = None;
        }
        progress
    }

    fn client_events(&mut self) -> bool {
        let mut any = false;
        while let Some(ev) = self.client.poll_event() {
            any = true;
            let rec = match ev {
                ClientEvent::Connected(n) => Rec::Connected(n.max_frame, n.chunk),
                ClientEvent::LoggedIn => Rec::LoggedIn,
                ClientEvent::LoginFailed(e) => Rec::LoginFailed(e),
                ClientEvent::Echo(t) => Rec::Echo(t.to_string()),
                ClientEvent::Done => Rec::Done,
                ClientEvent::Cwd(p) => Rec::Cwd(p.to_string()),
                ClientEvent::Entry(e) => Rec::Entry(e),
                ClientEvent::ListEnd => Rec::ListEnd,
                ClientEvent::Offer { size } => Rec::Offer(size),
                ClientEvent::Accepted { offset, name } => {
                    Rec::Accepted(offset, name.map(|n| n.to_string()))
                }
                ClientEvent::Data(d) => {
                    let d = d.to_vec();
                    self.local.extend_from_slice(&d);
                    Rec::Data(d)
                }
                ClientEvent::TransferEnd { verified, sum } => {
                    self.client_sums.push(sum);
                    Rec::TransferEnd(verified)
                }
                ClientEvent::Sum(sum) => Rec::Sum(sum),
                ClientEvent::Output { stream, data } => Rec::Output(stream, data.to_vec()),
                ClientEvent::ExecEnd { status, no_output } => Rec::ExecEnd(status, no_output),
                ClientEvent::Failed(e) => Rec::Failed(e),
                ClientEvent::Closed(e) => Rec::Closed(e),
            };
            match &rec {
                Rec::Offer(size) => {
                    let offset = (self.local.len() as u64).min(*size);
                    self.local.truncate(offset as usize);
                    self.client.accept(offset).unwrap();
                    if offset > 0 {
                        let prefix = self.local.clone();
                        self.client.feed_prefix(&prefix).unwrap();
                    }
                }
                Rec::Accepted(offset, _) => {
                    let offset = *offset as usize;
                    if offset > 0 {
                        let prefix = self.upload[..offset].to_vec();
                        self.client.feed_prefix(&prefix).unwrap();
                    }
                    self.upload_pos = offset;
                    self.uploading = true;
                }
                Rec::Failed(_) => self.uploading = false,
                Rec::Closed(_) => self.client_closed = true,
                _ => {}
            }
            self.events.push(rec);
        }
        any
    }

    fn server_events(&mut self) -> bool {
        let mut any = false;
        while let Some(ev) = self.server.poll_event() {
            any = true;
            match ev {
                ServerEvent::Connected(_) => {}
                ServerEvent::LoginRequest { user } => {
                    let v = self
                        .users
                        .iter()
                        .find(|(u, _)| u == user.as_str())
                        .map(|(_, v)| v.clone());
                    self.server.login_verifier(v.as_ref(), &[7; 18]).unwrap();
                }
                ServerEvent::LoggedIn { user } => self
                    .server_events
                    .push(SRec::LoggedIn(user.map(|u| u.to_string()))),
                ServerEvent::LoginFailed {
                    error, failures, ..
                } => self.server_events.push(SRec::LoginFailed(error, failures)),
                ServerEvent::Request(req) => self.serve(req),
                ServerEvent::SendBody { offset } => {
                    let (data, _, _) = self.srv_get.take().unwrap();
                    // Nothing to hash when the digest is vouched for.
                    let need = self.server.prefix_needed();
                    self.server_prefix_fed.push(need);
                    if need > 0 {
                        let from = (offset - need) as usize;
                        self.server
                            .feed_prefix(&data[from..offset as usize])
                            .unwrap();
                    }
                    self.srv_get = Some((data, offset as usize, true));
                }
                ServerEvent::Data(d) => {
                    let d = d.to_vec();
                    self.srv_put.as_mut().unwrap().body.extend_from_slice(&d);
                }
                ServerEvent::PutEnd { verified, sum } => {
                    self.server_sums.push(sum);
                    let up = self.srv_put.take().unwrap();
                    if verified {
                        self.store.partial.remove(&up.target);
                        self.store.files.insert(up.target, up.body);
                        self.server.finish_put().unwrap();
                    }
                    self.server_events.push(SRec::PutEnd(verified));
                }
                ServerEvent::GetEnd { verified, sum } => {
                    self.server_sums.push(sum);
                    self.server_events.push(SRec::GetEnd(verified));
                }
                ServerEvent::Cancelled(e) => {
                    self.keep_partial();
                    self.srv_get = None;
                    self.server_events.push(SRec::Cancelled(e));
                }
                ServerEvent::Closed(e) => {
                    self.keep_partial();
                    self.server_closed = true;
                    self.server_events.push(SRec::Closed(e));
                }
            }
        }
        any
    }

    fn keep_partial(&mut self) {
        if let Some(up) = self.srv_put.take() {
            self.store.partial.insert(up.target, up.body);
        }
    }

    fn serve(&mut self, req: Request) {
        let s = &mut self.server;
        let store = &mut self.store;
        match req {
            Request::Get { path } => match store.files.get(&store.resolve(&path)) {
                Some(data) => {
                    let vouched = self.vouch.get(&store.resolve(&path)).copied();
                    s.offer_vouched(data.len() as u64, vouched).unwrap();
                    self.srv_get = Some((data.clone(), 0, false));
                }
                None => s.refuse(Error::NotFound).unwrap(),
            },
            Request::Put {
                path,
                size,
                overwrite,
                resume,
            } => {
                let mut target = store.resolve(&path);
                let mut name = None;
                if store.files.contains_key(&target) {
                    match overwrite {
                        Overwrite::Fail => return s.refuse(Error::Exists).unwrap(),
                        Overwrite::Replace => {}
                        Overwrite::KeepBoth => {
                            target = (0u32..)
                                .map(|i| ferry_core::naming::keep_both_name(&target, i).to_string())
                                .find(|c| !store.files.contains_key(c))
                                .unwrap();
                            name = Some(target.clone());
                        }
                    }
                }
                if size > 64 * 1024 * 1024 {
                    return s.refuse(Error::NoSpace).unwrap();
                }
                let prefix = match (resume, store.partial.get(&target)) {
                    (true, Some(p)) if p.len() as u64 <= size => p.clone(),
                    _ => Vec::new(),
                };
                s.accept_put(prefix.len() as u64, name.as_deref()).unwrap();
                s.feed_prefix(&prefix).unwrap();
                self.srv_put = Some(Upload {
                    target,
                    body: prefix,
                });
            }
            Request::List { path } => {
                let dir = store.resolve(&path);
                let prefix = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                };
                for (name, data) in &store.files {
                    if let Some(rest) = name.strip_prefix(&prefix) {
                        if !rest.contains('/') {
                            s.list_entry(&entry(rest, data.len() as u64)).unwrap();
                        }
                    }
                }
                s.list_end().unwrap();
            }
            Request::Stat { path } => match store.files.get(&store.resolve(&path)) {
                Some(d) => s.reply_entry(&entry(&path, d.len() as u64)).unwrap(),
                None => s.refuse(Error::NotFound).unwrap(),
            },
            Request::Digest { path } => match store.files.get(&store.resolve(&path)) {
                Some(d) => {
                    let alg = s.negotiated().unwrap().digest;
                    s.reply_sum(&digest::digest(alg, d).unwrap()).unwrap()
                }
                None => s.refuse(Error::NotFound).unwrap(),
            },
            Request::Cd { path } => {
                let dir = store.resolve(&path);
                if store.dirs.contains(&dir) || dir.is_empty() {
                    store.cwd = dir;
                    s.reply_cwd(&format!("/{}", store.cwd)).unwrap();
                } else {
                    s.refuse(Error::NotFound).unwrap();
                }
            }
            Request::Pwd => s.reply_cwd(&format!("/{}", store.cwd)).unwrap(),
            Request::Mkdir { path } => {
                let dir = store.resolve(&path);
                if store.dirs.contains(&dir) || store.files.contains_key(&dir) {
                    s.refuse(Error::Exists).unwrap();
                } else {
                    store.dirs.push(dir);
                    s.reply_ok().unwrap();
                }
            }
            Request::Remove { path } => match store.files.remove(&store.resolve(&path)) {
                Some(_) => s.reply_ok().unwrap(),
                None => s.refuse(Error::NotFound).unwrap(),
            },
            Request::Rename { from, to } => match store.rename(&from, &to, false) {
                Ok(()) => s.reply_ok().unwrap(),
                Err(e) => s.refuse(e).unwrap(),
            },
            Request::RenameReplace { from, to } => match store.rename(&from, &to, true) {
                Ok(()) => s.reply_ok().unwrap(),
                Err(e) => s.refuse(e).unwrap(),
            },
            Request::Exec { command } => {
                let mut words = command.split_whitespace();
                match words.next() {
                    Some("echo") => {
                        let rest: Vec<&str> = words.collect();
                        let line = format!("{}\n", rest.join(" "));
                        let mut sent = 0;
                        while sent < line.len() {
                            sent += s
                                .exec_output(Stream::Stdout, &line.as_bytes()[sent..])
                                .unwrap();
                        }
                        s.exec_end(0).unwrap();
                    }
                    Some("warn") => {
                        s.exec_output(Stream::Stderr, b"warning\n").unwrap();
                        s.exec_end(2).unwrap();
                    }
                    Some("true") => s.exec_end(0).unwrap(),
                    Some("false") => s.exec_end(1).unwrap(),
                    _ => s.refuse(Error::ExecFailed).unwrap(),
                }
            }
        }
    }

    // ---- client-side helpers ----

    pub fn login(&mut self) {
        self.drive();
        self.client.login(USER, PASSWORD, &[1; 18]).unwrap();
        self.drive();
        assert_eq!(
            self.events.last(),
            Some(&Rec::LoggedIn),
            "{:?}",
            self.events
        );
        self.events.clear();
    }

    pub fn put(&mut self, path: &str, data: &[u8], overwrite: Overwrite, resume: bool) -> Vec<Rec> {
        self.upload = data.to_vec();
        self.client
            .put(path, data.len() as u64, overwrite, resume)
            .unwrap();
        self.drive();
        self.take()
    }

    pub fn get(&mut self, path: &str) -> (Vec<u8>, Vec<Rec>) {
        self.local.clear();
        self.client.get(path).unwrap();
        self.drive();
        (std::mem::take(&mut self.local), self.take())
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = Instant::from_millis(self.now.as_millis() + ms);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

pub fn entry(name: &str, size: u64) -> Entry {
    Entry {
        name: heapless::String::try_from(name).unwrap(),
        kind: Kind::File,
        size,
        modified: 0,
        mode: 0o644,
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
