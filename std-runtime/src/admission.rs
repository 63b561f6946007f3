//! Who may start a session: the budget of connections that have not
//! logged in yet, and the per-address penalty for failed logins.
//!
//! Connections that have not logged in ("startups", after OpenSSH's
//! `MaxStartups`) get a budget of their own, apart from `--max-connections`,
//! which counts logged-in sessions only. When the budget (or one address's
//! share of it) is full, a new connection evicts the *oldest* startup
//! instead of being refused: idle or slow connections cannot keep a real
//! client out, they can only push each other out. The victim is not simply
//! the oldest of all: it comes from the network (IPv4 /24, IPv6 /48)
//! holding the most startups, so a flood from many addresses evicts its
//! own connections before a real client's one; within that network the
//! least advanced goes first (sent nothing, then no valid hello yet, then a
//! login started), and a connection that started a login is never evicted
//! while one that has not is there. Logged-in sessions are never evicted.
//!
//! Failed logins add penalty time to their address, like OpenSSH 9.8's
//! `PerSourcePenalties` (`authfail:5s`, `min:15s`, `max:600s`): once an
//! address's penalty is above the minimum, new connections and new login
//! attempts from it are refused with [`ferry_core::Error::Penalised`]
//! until the penalty has run out. Sessions already logged in are not
//! touched. See docs/SECURITY.md.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferry_core::ServerEvent;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// Most addresses the penalty table tracks (OpenSSH's `max-sources`
/// default); past it, the penalty ending soonest makes room for a new
/// address, and the server says so in its log.
pub(crate) const MAX_PENALISED_SOURCES: usize = 65_536;

/// Admission limits, from `ferry serve`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections that have not logged in, at most (`--max-startups`).
    pub max_startups: usize,
    /// Of those, at most this many from one address (0: no cap)
    /// (`--max-startups-per-ip`).
    pub max_startups_per_ip: usize,
    /// Penalty added per failed login (`--login-penalty`; zero: off).
    pub penalty: Duration,
    /// An address is refused once its penalty is above this
    /// (`--login-penalty-min`): one connection's three typos never are.
    pub penalty_min: Duration,
    /// The penalty never grows past this (`--login-penalty-max`).
    pub penalty_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_startups: 128,
            max_startups_per_ip: 64,
            penalty: Duration::from_secs(5),
            penalty_min: Duration::from_secs(15),
            penalty_max: Duration::from_secs(600),
        }
    }
}

/// The key limits and penalties are kept under: an IPv4 address, or an
/// IPv6 /64 (one host usually holds a whole /64, as OpenSSH assumes too).
pub(crate) fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// The server-wide admission state.
pub(crate) struct Admission {
    limits: Limits,
    startups: Mutex<Startups>,
    penalties: Mutex<HashMap<IpAddr, Penalty>>,
}

/// How far a connection that has not logged in got; eviction takes the
/// least advanced first (within the network it picks, see
/// [`Admission::start`]), and never one that started a login while one
/// that has not is there to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Progress {
    /// Nothing received yet.
    Silent,
    /// Bytes received (or a TLS handshake done), no valid hello yet.
    Sent,
    /// A valid hello.
    Hello,
    /// A login started (SCRAM client-first; an anonymous login is over at
    /// once and leaves the budget).
    Login,
}

/// The key eviction groups startups by: an IPv4 /24 or an IPv6 /48, so
/// that one host (or one small network) using many addresses still counts
/// as one; `None` (Unix sockets) is a group of its own.
pub(crate) fn network(ip: IpAddr) -> IpAddr {
    match source(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4([a, b, c, 0].into())
        }
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[3..].fill(0);
            IpAddr::V6(seg.into())
        }
    }
}

struct Live {
    src: Option<IpAddr>,
    net: Option<IpAddr>,
    progress: Progress,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Startups {
    next: u64,
    /// By age: the smallest id is the oldest.
    live: BTreeMap<u64, Live>,
    per_source: HashMap<IpAddr, usize>,
    per_net: HashMap<Option<IpAddr>, usize>,
}

fn uncount<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K) {
    if let Some(n) = map.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            map.remove(&k);
        }
    }
}

impl Startups {
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let l = self.live.remove(&id)?;
        if let Some(src) = l.src {
            uncount(&mut self.per_source, src);
        }
        uncount(&mut self.per_net, l.net);
        Some(l.notify)
    }

    /// The startup to evict when the whole budget is full: never one that
    /// started a login while another has not; then one from the network
    /// holding the most startups; within it the least advanced; then the
    /// oldest.
    fn budget_victim(&self) -> Option<u64> {
        self.live
            .iter()
            .min_by_key(|(id, l)| {
                let held = self.per_net.get(&l.net).copied().unwrap_or(0);
                (
                    l.progress == Progress::Login,
                    std::cmp::Reverse(held),
                    l.progress,
                    **id,
                )
            })
            .map(|(id, _)| *id)
    }

    /// The startup to evict when `src`'s share is full: its least advanced
    /// (a login started last), then its oldest.
    fn source_victim(&self, src: IpAddr) -> Option<u64> {
        self.live
            .iter()
            .filter(|(_, l)| l.src == Some(src))
            .min_by_key(|(id, l)| (l.progress, **id))
            .map(|(id, _)| *id)
    }
}

#[derive(Debug, Clone, Copy)]
struct Penalty {
    /// When the penalty has run out.
    until: Instant,
    /// Set once the penalty went above the minimum; the address is
    /// refused until `until`.
    active: bool,
}

/// Why a connection was evicted, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evicted {
    /// The whole startup budget was full.
    Budget,
    /// Its address's share was full.
    PerIp,
}

/// A connection counted as a startup until it logs in or closes.
pub(crate) struct Startup {
    admission: Arc<Admission>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Startup {
    /// Resolves when a newer connection evicted this one.
    pub async fn evicted(&self) {
        self.evicted.notified().await
    }

    /// Records that the connection got to `p` (never goes back).
    pub fn advanced(&self, p: Progress) {
        if let Some(l) = self.admission.startups().live.get_mut(&self.id) {
            l.progress = l.progress.max(p);
        }
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        self.admission.startups().remove(self.id);
    }
}

/// Whole seconds, rounded up: "retry in 0 s" would be wrong.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    /// Admission with these limits.
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            startups: Mutex::default(),
            penalties: Mutex::default(),
        }
    }

    fn startups(&self) -> MutexGuard<'_, Startups> {
        lock(&self.startups)
    }

    /// Counts a new connection from `ip` (`None`: a Unix socket) as a
    /// startup. If its address's share is full, one of that address's
    /// startups is evicted (the least advanced, then the oldest). If the
    /// whole budget is full, the victim is chosen so that a flood from
    /// many addresses pushes out its own connections rather than real
    /// users' (see [`Startups::budget_victim`]): never a connection that
    /// started a login while another has not; then one from the network
    /// (IPv4 /24, IPv6 /48) holding the most startups; within it the least
    /// advanced (one that sent nothing first); then the oldest. Returns the
    /// new ticket and why a connection was evicted, if one was.
    pub fn start(self: &Arc<Self>, ip: Option<IpAddr>) -> (Startup, Option<Evicted>) {
        let src = ip.map(source);
        let mut s = self.startups();
        let mut why = None;
        let per_ip = self.limits.max_startups_per_ip;
        if let Some(src) = src {
            if per_ip > 0 && s.per_source.get(&src).copied().unwrap_or(0) >= per_ip {
                if let Some(id) = s.source_victim(src) {
                    if let Some(n) = s.remove(id) {
                        n.notify_one();
                        why = Some(Evicted::PerIp);
                    }
                }
            }
        }
        while s.live.len() >= self.limits.max_startups.max(1) {
            let Some(id) = s.budget_victim() else {
                break;
            };
            if let Some(n) = s.remove(id) {
                n.notify_one();
                why = why.or(Some(Evicted::Budget));
            }
        }
        let id = s.next;
        s.next += 1;
        let evicted = Arc::new(Notify::new());
        let net = src.map(network);
        s.live.insert(
            id,
            Live {
                src,
                net,
                progress: Progress::Silent,
                notify: evicted.clone(),
            },
        );
        if let Some(src) = src {
            *s.per_source.entry(src).or_insert(0) += 1;
        }
        *s.per_net.entry(net).or_insert(0) += 1;
        drop(s);
        (
            Startup {
                admission: self.clone(),
                id,
                evicted,
            },
            why,
        )
    }

    /// Connections counted as startups now.
    #[cfg(test)]
    pub fn startups_now(&self) -> usize {
        self.startups().live.len()
    }

    /// How long `ip` is still refused for failed logins, if it is.
    pub fn penalised(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.limits.penalty.is_zero() {
            return None;
        }
        let src = source(ip);
        let mut table = lock(&self.penalties);
        let p = *table.get(&src)?;
        if p.until <= now {
            table.remove(&src);
            return None;
        }
        p.active.then(|| p.until - now)
    }

    /// Adds one failed login's penalty to `ip`. Returns how long it is now
    /// refused for if this failure made it (or kept it) refused.
    pub fn login_failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let l = self.limits;
        if l.penalty.is_zero() {
            return None;
        }
        let src = source(ip);
        let mut table = lock(&self.penalties);
        if !table.contains_key(&src) && table.len() >= MAX_PENALISED_SOURCES {
            table.retain(|_, p| p.until > now);
            if table.len() >= MAX_PENALISED_SOURCES {
                // Full of live penalties: the one ending soonest makes
                // room. Failing open instead would let a guesser who first
                // filled the table (cheap with IPv6) guess unpenalised.
                let soonest = table.iter().min_by_key(|(_, p)| p.until).map(|(k, _)| *k);
                if let Some(k) = soonest {
                    warn!(%src, dropped = %k, "penalty table full ({MAX_PENALISED_SOURCES} addresses): the penalty ending soonest made room");
                    table.remove(&k);
                }
            }
        }
        let p = table.entry(src).or_insert(Penalty {
            until: now,
            active: false,
        });
        let base = p.until.max(now);
        p.until = (base + l.penalty).min(now + l.penalty_max);
        if !p.active && p.until - now > l.penalty_min {
            p.active = true;
        }
        p.active.then(|| p.until - now)
    }
}

/// One connection's side of admission, for the loop that drives it: its
/// startup ticket until it logs in, then its session slot
/// (`--max-connections`), and its address for penalties.
pub(crate) struct Gate {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    peer: String,
    startup: Option<Startup>,
    /// Input seen already (told to admission once).
    sent: bool,
    slots: Arc<Semaphore>,
    session: Option<OwnedSemaphorePermit>,
    /// Seconds until a refused login may be tried again (for `Retry`).
    pub retry_secs: u32,
}

impl Gate {
    /// The gate of a connection from `ip` (`None`: a Unix socket) holding
    /// `startup` (`None`: refused already, or not counted).
    pub fn new(
        admission: Arc<Admission>,
        ip: Option<IpAddr>,
        peer: String,
        startup: Option<Startup>,
        slots: Arc<Semaphore>,
    ) -> Self {
        Gate {
            admission,
            ip,
            peer,
            startup,
            sent: false,
            slots,
            session: None,
            retry_secs: 0,
        }
    }

    /// The connection sent bytes: it is no longer among the first to be
    /// evicted.
    pub fn saw_input(&mut self) {
        if !self.sent {
            self.sent = true;
            self.advance(Progress::Sent);
        }
    }

    fn advance(&self, p: Progress) {
        if let Some(s) = &self.startup {
            s.advanced(p);
        }
    }

    /// Resolves when a newer connection evicted this one (never, once
    /// logged in).
    pub async fn evicted(&self) {
        match &self.startup {
            Some(s) => s.evicted().await,
            None => std::future::pending().await,
        }
    }

    /// Looks at an event before the session does; `Some(err)` means close
    /// the connection with `err` instead of passing the event on. A login
    /// attempt from a penalised address is refused before its password is
    /// checked; a failed one adds to the penalty; a successful one leaves
    /// the startup budget and takes a session slot (busy if none is free).
    pub fn check(&mut self, event: &ServerEvent<'_>) -> Option<ferry_core::Error> {
        match event {
            ServerEvent::Connected(_) => {
                self.advance(Progress::Hello);
                None
            }
            ServerEvent::LoginRequest { .. } => {
                self.advance(Progress::Login);
                let left = self.admission.penalised(self.ip?, Instant::now())?;
                self.retry_secs = u32::try_from(ceil_secs(left)).unwrap_or(u32::MAX);
                warn!(peer = %self.peer, retry_secs = self.retry_secs, "login refused: too many failed logins from this address");
                Some(ferry_core::Error::Penalised)
            }
            ServerEvent::LoginFailed { .. } => {
                let left = self.admission.login_failed(self.ip?, Instant::now())?;
                warn!(peer = %self.peer, secs = ceil_secs(left), "address penalised for failed logins: new connections from it are refused");
                None
            }
            ServerEvent::LoggedIn { .. } => {
                self.startup = None;
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => {
                        self.session = Some(p);
                        None
                    }
                    Err(_) => {
                        warn!(peer = %self.peer, "refused after login: server busy (--max-connections)");
                        Some(ferry_core::Error::Busy)
                    }
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admission(max: usize, per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission::new(Limits {
            max_startups: max,
            max_startups_per_ip: per_ip,
            ..Limits::default()
        }))
    }

    fn was_evicted(t: &Startup) -> bool {
        // `notify_one` leaves a permit: a pending wait completes at once.
        let fut = t.evicted();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::pin!(fut).poll(&mut cx).is_ready()
    }

    use std::future::Future;

    #[test]
    fn a_full_budget_evicts_the_oldest_startup() {
        let a = admission(3, 0);
        let (t1, e1) = a.start(Some(ip("10.0.0.1")));
        let (t2, _) = a.start(Some(ip("10.0.0.2")));
        let (t3, _) = a.start(None);
        assert_eq!(e1, None);
        assert_eq!(a.startups_now(), 3);
        let (t4, e4) = a.start(Some(ip("10.0.0.3")));
        assert_eq!(e4, Some(Evicted::Budget));
        assert!(was_evicted(&t1));
        assert!(!was_evicted(&t2) && !was_evicted(&t3) && !was_evicted(&t4));
        assert_eq!(a.startups_now(), 3);
        // The evicted ticket's drop does not uncount anyone else.
        drop(t1);
        assert_eq!(a.startups_now(), 3);
        drop(t2);
        assert_eq!(a.startups_now(), 2);
        let (_t5, e5) = a.start(None);
        assert_eq!(e5, None, "a closed startup freed its place");
    }

    #[test]
    fn an_address_at_its_cap_evicts_its_own_oldest_not_others() {
        let a = admission(10, 2);
        let (other, _) = a.start(Some(ip("10.0.0.9")));
        let (t1, _) = a.start(Some(ip("10.0.0.1")));
        let (t2, _) = a.start(Some(ip("10.0.0.1")));
        let (t3, e3) = a.start(Some(ip("10.0.0.1")));
        assert_eq!(e3, Some(Evicted::PerIp));
        assert!(was_evicted(&t1));
        assert!(!was_evicted(&other) && !was_evicted(&t2) && !was_evicted(&t3));
        assert_eq!(a.startups_now(), 3);
    }

    #[test]
    fn a_flood_from_many_addresses_evicts_its_own_network_first() {
        // Budget 8: a user from 10.0.0.1 (one startup) among seven flood
        // connections from 10.0.9.0/24 and 10.0.8.0/24, all older than
        // the flood's next ones.
        let a = admission(8, 0);
        let (user, _) = a.start(Some(ip("10.0.0.1")));
        let flood: Vec<_> = (0..7)
            .map(|i| a.start(Some(ip(&format!("10.0.{}.{i}", 8 + i % 2)))).0)
            .collect();
        let mut more = Vec::new();
        for i in 0..100 {
            let (t, e) = a.start(Some(ip(&format!("10.0.9.{}", 100 + i))));
            assert_eq!(e, Some(Evicted::Budget));
            more.push(t);
            assert!(
                !was_evicted(&user),
                "the user's startup survives the flood ({i})"
            );
        }
        assert!(flood.iter().any(was_evicted));
        assert_eq!(a.startups_now(), 8);
    }

    #[test]
    fn a_started_login_is_evicted_last_and_silent_ones_first() {
        let a = admission(3, 0);
        // Same network, same count: progress decides, then age.
        let (login, _) = a.start(Some(ip("10.0.0.1")));
        login.advanced(Progress::Login);
        let (hello, _) = a.start(Some(ip("10.0.0.2")));
        hello.advanced(Progress::Hello);
        let (silent, _) = a.start(Some(ip("10.0.0.3")));
        let (t4, _) = a.start(Some(ip("10.0.0.4")));
        assert!(was_evicted(&silent), "the silent one goes first");
        assert!(!was_evicted(&hello) && !was_evicted(&login));
        let (_t5, _) = a.start(Some(ip("10.0.0.5")));
        assert!(was_evicted(&t4), "then the next silent one");
        assert!(!was_evicted(&hello) && !was_evicted(&login));
        // A login started is kept even against a bigger network's others.
        let a = admission(3, 0);
        let (login, _) = a.start(Some(ip("10.0.7.1")));
        login.advanced(Progress::Login);
        let (_b, _) = a.start(Some(ip("10.0.7.2")));
        let (c, _) = a.start(Some(ip("10.0.6.1")));
        let (_d, _) = a.start(Some(ip("10.0.5.1")));
        assert!(!was_evicted(&login));
        assert!(
            was_evicted(&_b),
            "the bigger network's startup that has not logged in"
        );
        assert!(!was_evicted(&c));
        // Progress never goes back.
        login.advanced(Progress::Sent);
        let (_e, _) = a.start(Some(ip("10.0.4.1")));
        assert!(!was_evicted(&login));
    }

    #[test]
    fn networks_are_ipv4_24s_and_ipv6_48s() {
        assert_eq!(network(ip("127.0.2.7")), network(ip("127.0.2.200")));
        assert_ne!(network(ip("127.0.2.7")), network(ip("127.0.3.7")));
        assert_eq!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:ffff::1"))
        );
        assert_ne!(network(ip("2001:db8:1::1")), network(ip("2001:db8:2::1")));
        assert_eq!(network(ip("::ffff:10.0.0.1")), ip("10.0.0.0"));
    }

    #[test]
    fn a_logged_in_connection_leaves_the_budget() {
        let a = admission(1, 0);
        let (t1, _) = a.start(None);
        drop(t1); // what logging in does
        let (t2, e) = a.start(None);
        assert_eq!(e, None);
        assert!(!was_evicted(&t2));
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_source() {
        assert_eq!(source(ip("2001:db8::1")), source(ip("2001:db8::ffff:2")));
        assert_ne!(source(ip("2001:db8:0:1::1")), source(ip("2001:db8::1")));
        assert_eq!(source(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(source(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn penalties_add_up_block_above_the_minimum_and_run_out() {
        let a = Admission::new(Limits::default()); // 5 s each, min 15, max 600
        let t0 = Instant::now();
        let x = ip("192.0.2.7");
        for _ in 0..3 {
            assert_eq!(a.login_failed(x, t0), None, "15 s is not above the minimum");
        }
        assert_eq!(a.penalised(x, t0), None);
        assert_eq!(a.login_failed(x, t0), Some(Duration::from_secs(20)));
        assert_eq!(a.penalised(x, t0), Some(Duration::from_secs(20)));
        assert_eq!(
            a.penalised(x, t0 + Duration::from_secs(19)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(a.penalised(ip("192.0.2.8"), t0), None, "others are not");
        assert_eq!(a.penalised(x, t0 + Duration::from_secs(20)), None);
        // Run out: the next failure starts from nothing.
        assert_eq!(a.login_failed(x, t0 + Duration::from_secs(21)), None);
    }

    /// A table full of live penalties still penalises a new address: the
    /// penalty ending soonest makes room (it used to fail open).
    #[test]
    fn a_full_penalty_table_still_penalises_a_new_address() {
        let a = Admission::new(Limits::default());
        let t0 = Instant::now();
        for i in 0..MAX_PENALISED_SOURCES as u32 {
            let x = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = a.login_failed(x, t0 + Duration::from_millis(u64::from(i % 1000)));
        }
        let fresh = ip("192.0.2.9");
        for _ in 0..3 {
            let _ = a.login_failed(fresh, t0);
        }
        assert_eq!(
            a.login_failed(fresh, t0),
            Some(Duration::from_secs(20)),
            "tracked despite the full table"
        );
    }

    #[test]
    fn penalties_are_capped_at_the_maximum() {
        let a = Admission::new(Limits::default());
        let t0 = Instant::now();
        let x = ip("192.0.2.7");
        for _ in 0..1000 {
            let _ = a.login_failed(x, t0);
        }
        assert_eq!(a.penalised(x, t0), Some(Duration::from_secs(600)));
        // Drained in real time: penalties time apart add less.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(a.login_failed(x, later), Some(Duration::from_secs(505)));
    }

    #[test]
    fn a_zero_penalty_turns_penalties_off() {
        let a = Admission::new(Limits {
            penalty: Duration::ZERO,
            ..Limits::default()
        });
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(a.login_failed(ip("192.0.2.7"), t0), None);
        }
        assert_eq!(a.penalised(ip("192.0.2.7"), t0), None);
    }
}
