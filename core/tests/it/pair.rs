//! A client and a server wired back to back in memory, with a fake clock and
//! a toy in-memory file store on the server side (as quinn-proto's `Pair`).
//! Tests script the client; the server answers like a real driver would.
#![allow(dead_code, clippy::large_enum_variant)]

use std::collections::{BTreeMap, VecDeque};
use std::string::{String, ToString};
use std::vec::Vec;

use ferry_core::app::{self, Abort, Accepted, ExecPoll, GetEnd, Progress, Session};
use ferry_core::digest::{Algorithm, Sum};
use ferry_core::{
    Client, ClientEvent, Config, Entry, Error, Instant, Kind, Overwrite, Path, Server,
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
    Refused(Error),
    SendBody(u64),
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
    pub fn new(split: Split) -> Self {
        Wire {
            bytes: VecDeque::new(),
            split,
            turn: 0,
            sent: 0,
            flip_at: None,
        }
    }

    pub fn next_read(&mut self) -> Vec<u8> {
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

    pub fn unread(&mut self, rest: &[u8]) {
        self.sent -= rest.len() as u64;
        for &b in rest.iter().rev() {
            self.bytes.push_front(b);
        }
    }
}

/// The server's toy store: the server half of the pair, as an
/// [`app::Store`] behind the core's one server session.
#[derive(Default)]
pub struct Store {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: Vec<String>,
    /// Partial uploads kept for `--resume`.
    pub partial: BTreeMap<String, Vec<u8>>,
    pub cwd: String,
    pub users: Vec<(String, Verifier)>,
    /// What the server application saw, for assertions.
    pub server_events: Vec<SRec>,
    /// Each finished transfer's digest as the server computed it.
    pub server_sums: Vec<Sum>,
    /// Digests the server vouches for on a get instead of hashing
    /// (`Server::offer_vouched`), by path.
    pub vouch: BTreeMap<String, Sum>,
    /// Prefix bytes the server read back to hash, per get.
    pub server_prefix_fed: Vec<u64>,
    /// Writes fail with `NoSpace` once an upload would pass this many bytes.
    pub fail_writes_after: Option<usize>,
    /// Gets announce this many bytes more than the file has (a file that
    /// shrinks while it is sent).
    pub shrink_by: u64,
    /// Only this path shrinks, when set.
    pub shrink_only: Option<String>,
    /// The held prefix of the get in progress ends here.
    prefix_until: u64,
    /// Events seen (to tell the pair something moved).
    pub seen: usize,
    /// Every event the server application saw but body bytes, in order
    /// (`Debug`), for comparisons.
    pub log: Vec<String>,
    /// Handles (files open for a get, uploads begun) not given back yet.
    pub open_handles: isize,
    /// How each get ended, by path.
    pub get_ends: Vec<(String, GetEnd)>,
    /// Uploads ended unstored, by target.
    pub put_aborts: Vec<(String, Abort)>,
}

impl Store {
    /// Renames a file; an existing target is refused unless `replace`.
    fn rename_file(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
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

pub struct Upload {
    target: String,
    body: Vec<u8>,
}

/// A toy command's output still to send, and its status.
pub struct Exec(VecDeque<(Stream, Vec<u8>)>, i32);

impl app::Store for Store {
    type File = (String, Vec<u8>);
    type Upload = Upload;
    type Listing = std::vec::IntoIter<Entry>;
    type Exec = Exec;

    fn verifier(&self, user: &str) -> Option<&Verifier> {
        self.users.iter().find(|(u, _)| u == user).map(|(_, v)| v)
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(7);
        Ok(())
    }

    fn on_event(&mut self, ev: &ServerEvent<'_>) -> Result<(), Error> {
        self.seen += 1;
        self.log.push(format!("{ev:?}"));
        let rec = match ev {
            ServerEvent::LoggedIn { user } => SRec::LoggedIn(user.as_ref().map(|u| u.to_string())),
            ServerEvent::LoginFailed {
                error, failures, ..
            } => SRec::LoginFailed(*error, *failures),
            ServerEvent::PutEnd { verified, sum } => {
                self.server_sums.push(*sum);
                SRec::PutEnd(*verified)
            }
            ServerEvent::GetEnd { verified, sum } => {
                self.server_sums.push(*sum);
                SRec::GetEnd(*verified)
            }
            ServerEvent::Cancelled(e) => SRec::Cancelled(*e),
            ServerEvent::Closed(e) => SRec::Closed(*e),
            ServerEvent::SendBody { offset } => {
                self.server_prefix_fed.push(0);
                self.prefix_until = *offset;
                return Ok(());
            }
            _ => return Ok(()),
        };
        self.server_events.push(rec);
        Ok(())
    }

    fn open(&mut self, path: &str) -> Result<(Self::File, u64), Error> {
        let path = self.resolve(path);
        let data = self.files.get(&path).ok_or(Error::NotFound)?.clone();
        let shrinks = self.shrink_only.as_ref().is_none_or(|p| *p == path);
        let size = data.len() as u64 + if shrinks { self.shrink_by } else { 0 };
        self.open_handles += 1;
        Ok(((path, data), size))
    }

    fn read_at(&mut self, file: &mut Self::File, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let (at, file) = (at as usize, &file.1);
        let n = buf.len().min(file.len().saturating_sub(at));
        buf[..n].copy_from_slice(&file[at..at + n]);
        if (at as u64) < self.prefix_until {
            *self.server_prefix_fed.last_mut().unwrap() += n as u64;
        }
        Ok(n)
    }

    fn close(&mut self, file: Self::File, end: GetEnd) {
        self.prefix_until = 0;
        self.open_handles -= 1;
        self.get_ends.push((file.0, end));
    }

    fn kept_digest(&mut self, file: &Self::File, _alg: Algorithm) -> Option<Sum> {
        self.vouch.get(&file.0).copied()
    }

    fn begin_upload(
        &mut self,
        path: &str,
        size: u64,
        overwrite: Overwrite,
        resume: bool,
        _digest: Algorithm,
    ) -> Result<Accepted<Upload>, Error> {
        let mut target = self.resolve(path);
        let mut stored_as = None;
        if self.files.contains_key(&target) {
            match overwrite {
                Overwrite::Fail => return Err(Error::Exists),
                Overwrite::Replace => {}
                Overwrite::KeepBoth => {
                    target = (0u32..)
                        .map(|i| ferry_core::naming::keep_both_name(&target, i).to_string())
                        .find(|c| !self.files.contains_key(c))
                        .unwrap();
                    stored_as = Some(Path::try_from(target.as_str()).unwrap());
                }
            }
        }
        if size > 64 * 1024 * 1024 {
            return Err(Error::NoSpace);
        }
        let body = match (resume, self.partial.get(&target)) {
            (true, Some(p)) if p.len() as u64 <= size => p.clone(),
            _ => Vec::new(),
        };
        self.open_handles += 1;
        Ok(Accepted {
            offset: body.len() as u64,
            upload: Upload { target, body },
            stored_as,
        })
    }

    fn read_part_at(&mut self, up: &mut Upload, at: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let at = at as usize;
        let n = buf.len().min(up.body.len().saturating_sub(at));
        buf[..n].copy_from_slice(&up.body[at..at + n]);
        Ok(n)
    }

    fn write(&mut self, up: &mut Upload, data: &[u8]) -> Result<(), Error> {
        if self
            .fail_writes_after
            .is_some_and(|max| up.body.len() + data.len() > max)
        {
            return Err(Error::NoSpace);
        }
        up.body.extend_from_slice(data);
        Ok(())
    }

    fn commit(&mut self, up: Upload, _sum: Sum) -> Result<(), Error> {
        self.open_handles -= 1;
        self.partial.remove(&up.target);
        self.files.insert(up.target, up.body);
        Ok(())
    }

    fn keep(&mut self, up: Upload, why: Abort) {
        self.open_handles -= 1;
        self.put_aborts.push((up.target.clone(), why));
        self.partial.insert(up.target, up.body);
    }

    fn discard(&mut self, _up: Upload) {
        self.open_handles -= 1;
    }

    fn list(&mut self, path: &str) -> Result<Self::Listing, Error> {
        let dir = self.resolve(path);
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let entries: Vec<Entry> = self
            .files
            .iter()
            .filter_map(|(name, data)| {
                let rest = name.strip_prefix(&prefix)?;
                (!rest.contains('/')).then(|| entry(rest, data.len() as u64))
            })
            .collect();
        Ok(entries.into_iter())
    }

    fn next_entry(&mut self, l: &mut Self::Listing, slot: &mut Entry) -> Result<bool, Error> {
        Ok(l.next().map(|e| *slot = e).is_some())
    }

    fn stat(&mut self, path: &str) -> Result<Entry, Error> {
        let d = self.files.get(&self.resolve(path)).ok_or(Error::NotFound)?;
        Ok(entry(path, d.len() as u64))
    }

    fn cd(&mut self, path: &str, cwd: &mut Path) -> Result<(), Error> {
        let dir = self.resolve(path);
        if !(self.dirs.contains(&dir) || dir.is_empty()) {
            return Err(Error::NotFound);
        }
        self.cwd = dir;
        self.pwd(cwd)
    }

    fn pwd(&mut self, cwd: &mut Path) -> Result<(), Error> {
        *cwd = Path::try_from(format!("/{}", self.cwd).as_str()).map_err(|_| Error::InvalidPath)?;
        Ok(())
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let dir = self.resolve(path);
        if self.dirs.contains(&dir) || self.files.contains_key(&dir) {
            return Err(Error::Exists);
        }
        self.dirs.push(dir);
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let p = self.resolve(path);
        self.files.remove(&p).map(drop).ok_or(Error::NotFound)
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), Error> {
        self.rename_file(from, to, replace)
    }

    fn exec(&mut self, command: &str) -> Result<Exec, Error> {
        let mut words = command.split_whitespace();
        let out = |s, b: &[u8]| VecDeque::from([(s, b.to_vec())]);
        Ok(match words.next() {
            Some("echo") => {
                let rest: Vec<&str> = words.collect();
                Exec(
                    out(Stream::Stdout, format!("{}\n", rest.join(" ")).as_bytes()),
                    0,
                )
            }
            Some("warn") => Exec(out(Stream::Stderr, b"warning\n"), 2),
            Some("true") => Exec(VecDeque::new(), 0),
            Some("false") => Exec(VecDeque::new(), 1),
            _ => return Err(Error::ExecFailed),
        })
    }

    fn exec_poll<'a>(&'a mut self, x: &'a mut Exec) -> ExecPoll<'a> {
        match x.0.front() {
            Some((s, d)) => ExecPoll::Output(*s, d),
            None => ExecPoll::Exit(x.1),
        }
    }

    fn exec_consume(&mut self, x: &mut Exec, n: usize) {
        if let Some((_, d)) = x.0.front_mut() {
            d.drain(..n);
            if d.is_empty() {
                x.0.pop_front();
            }
        }
    }
}

pub struct Pair {
    pub now: Instant,
    pub client: Client<Vec<u8>>,
    pub server: Server<Vec<u8>>,
    pub to_server: Wire,
    pub to_client: Wire,
    pub events: Vec<Rec>,
    pub store: Store,
    pub session: Session<Store>,
    scratch: Vec<u8>,
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
    pub client_closed: bool,
    pub server_closed: bool,
    /// Each finished transfer's digest as the client computed it.
    pub client_sums: Vec<Sum>,
    /// Two serial links and a simulated line between the two sides,
    /// instead of a reliable stream: each step is then a millisecond.
    pub line: Option<crate::line::Transport>,
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
            store: Store {
                users: vec![(USER.to_string(), verifier)],
                ..Store::default()
            },
            session: Session::new(),
            scratch: vec![0; 4096],
            local: Vec::new(),
            upload: Vec::new(),
            upload_pos: 0,
            uploading: false,
            upload_limit: None,
            client_closed: false,
            server_closed: false,
            client_sums: Vec::new(),
            line: None,
        }
    }

    /// A pair whose sides talk through `line` (two links, a faulty line).
    pub fn over(line: crate::line::Transport) -> Self {
        Pair {
            line: Some(line),
            ..Self::new()
        }
    }

    /// A new connection over the same line to the same store (after the
    /// link under the last one reset): fresh cores and session.
    pub fn reconnect(&mut self) {
        let line = self.line.take();
        let store = std::mem::take(&mut self.store);
        let now = self.now;
        *self = Self::new();
        self.now = now;
        self.client = Client::new(
            now,
            Config::default(),
            vec![0; 256 * 1024],
            vec![0; 256 * 1024],
        )
        .unwrap();
        self.server = Server::new(
            now,
            server_config(),
            vec![0; 256 * 1024],
            vec![0; 256 * 1024],
        )
        .unwrap();
        self.store = store;
        self.line = line;
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
        progress |= self.server_events();
        let mut buf = [0u8; 4096];
        while let Some(n) = self.client.poll_transmit(&mut buf) {
            match &mut self.line {
                Some(l) => l.client_sent(&buf[..n]),
                None => self.to_server.bytes.extend(&buf[..n]),
            }
            progress = true;
        }
        while let Some(n) = self.server.poll_transmit(&mut buf) {
            match &mut self.line {
                Some(l) => l.server_sent(&buf[..n]),
                None => self.to_client.bytes.extend(&buf[..n]),
            }
            progress = true;
        }
        progress |= self.carry();
        progress |= self.deliver_to_server();
        progress |= self.deliver_to_client();
        progress |= self.client_events();
        progress |= self.server_events();
        progress
    }

    /// Over a line: one millisecond of it, the sessions' timers, and a
    /// reset link closing the session above it as a reset socket does.
    fn carry(&mut self) -> bool {
        let Some(line) = &mut self.line else {
            return false;
        };
        self.now = Instant::from_millis(self.now.as_millis() + 1);
        let c = line.step(
            self.now.as_millis(),
            &mut self.to_server.bytes,
            &mut self.to_client.bytes,
        );
        if c.client_eof && !self.client_closed {
            self.to_client.bytes.clear();
            self.client.handle_eof(self.now);
        }
        if c.server_eof && !self.server_closed {
            self.to_server.bytes.clear();
            self.server.handle_eof(self.now);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        c.busy || c.client_eof || c.server_eof
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
                ClientEvent::Refused(e) => Rec::Refused(e),
                ClientEvent::SendBody { offset } => Rec::SendBody(offset),
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

    /// Runs the server application (the core's one session over the toy
    /// store); whether anything moved.
    fn server_events(&mut self) -> bool {
        let seen = self.store.seen;
        let p = self
            .session
            .progress(&mut self.server, &mut self.store, &mut self.scratch)
            .unwrap();
        match p {
            Progress::Closed(_) => {
                let first = !self.server_closed;
                self.server_closed = true;
                first || !self.server.transmit_buf().is_empty()
            }
            Progress::Transmit => true,
            Progress::Wait => self.store.seen != seen,
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
