//! When an endpoint gives up: the handshake and login deadlines count from
//! the start, the idle deadline from the last byte received or sent.

use crate::config::Config;
use crate::time::Instant;

/// Which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Handshake,
    Login,
    Session,
}

pub(crate) struct Deadlines {
    pub phase: Phase,
    start: Instant,
    last_activity: Instant,
    /// The latest `now` the driver passed in. Sending counts as activity
    /// at this time, so a side that only sends (a long put or get) is not
    /// idle.
    now: Instant,
}

impl Deadlines {
    pub fn new(now: Instant) -> Self {
        Deadlines {
            phase: Phase::Handshake,
            start: now,
            last_activity: now,
            now,
        }
    }

    /// The driver said it is `now` (never earlier than before).
    pub fn observe(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Bytes arrived at `now`.
    pub fn received(&mut self, now: Instant) {
        self.observe(now);
        self.last_activity = self.last_activity.max(now);
    }

    /// Bytes were queued for the peer, at the latest `now` seen.
    pub fn sent(&mut self) {
        self.last_activity = self.last_activity.max(self.now);
    }

    /// The handshake completed: the login deadline applies.
    pub fn hello_received(&mut self) {
        if self.phase == Phase::Handshake {
            self.phase = Phase::Login;
        }
    }

    /// The next deadline under `config`.
    pub fn next(&self, config: &Config) -> Option<Instant> {
        match self.phase {
            Phase::Handshake => Some(self.start + config.handshake_timeout),
            Phase::Login => Some(self.start + config.login_timeout),
            Phase::Session => config.idle_timeout.map(|d| self.last_activity + d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn each_phase_has_its_deadline_and_sending_keeps_a_session_alive() {
        let config = Config {
            handshake_timeout: Duration::from_millis(10),
            login_timeout: Duration::from_millis(20),
            idle_timeout: Some(Duration::from_millis(100)),
            ..Config::default()
        };
        let mut d = Deadlines::new(Instant::from_millis(1000));
        assert_eq!(d.next(&config), Some(Instant::from_millis(1010)));
        d.hello_received();
        assert_eq!(d.next(&config), Some(Instant::from_millis(1020)));
        d.phase = Phase::Session;
        d.received(Instant::from_millis(1050));
        assert_eq!(d.next(&config), Some(Instant::from_millis(1150)));
        d.observe(Instant::from_millis(1140));
        d.sent();
        assert_eq!(d.next(&config), Some(Instant::from_millis(1240)));
        // Time never goes backwards.
        d.observe(Instant::from_millis(1));
        d.sent();
        assert_eq!(d.next(&config), Some(Instant::from_millis(1240)));
    }
}
