//! Tunables a driver sets when it creates a [`Client`](crate::Client) or
//! [`Server`](crate::Server).

use core::time::Duration;

use crate::digest::Digests;

/// Settings shared by both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Body chunk size this side prefers; the effective size is the minimum
    /// of both sides' preferences and of the peer's largest frame.
    pub chunk_size: u32,
    /// Time allowed for the peer's hello to arrive.
    pub handshake_timeout: Duration,
    /// Time allowed from start until login completes.
    pub login_timeout: Duration,
    /// Close a logged-in session that has neither received nor sent anything
    /// for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Body digests this side supports, in preference order. MD5 is always
    /// acceptable to a server; a client whose list leaves MD5 out refuses to
    /// fall back to it ([`Error::DigestRefused`](crate::Error::DigestRefused)).
    pub digests: Digests,
    /// The most gets or puts this side announces it holds in flight
    /// (`docs/PROTOCOL.md#pipelining`), capped by the endpoint type's `W`;
    /// 0 means `W`. Lower it to measure or to spare a busy server.
    pub window: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chunk_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(300)),
            digests: Digests::available(),
            window: 0,
        }
    }
}

/// Server-only settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Settings shared with the client role.
    pub conn: Config,
    /// Accept anonymous logins.
    pub allow_anonymous: bool,
    /// Run `exec` requests: advertised in the hello; when false the server
    /// refuses each with `ExecDisabled` itself (the driver still decides
    /// each one it is given).
    pub allow_exec: bool,
    /// Refuse every write (put, mkdir, remove, rename) with `ReadOnly`:
    /// advertised in the hello and enforced by the server itself.
    pub read_only: bool,
    /// Failed logins after which the connection is closed.
    pub max_login_failures: u8,
    /// A random secret from the driver, so the stand-in salt given for an
    /// unknown user is stable per name and unguessable: the exchange looks
    /// the same whether or not the user exists.
    pub secret: [u8; 32],
    /// The PBKDF2 iteration count shown for an unknown user: set it to the
    /// count the real verifiers use, so that number gives nothing away.
    pub unknown_user_iterations: u32,
}

impl ServerConfig {
    /// Settings for a server whose unknown-user salts derive from
    /// `secret`: 32 random bytes from the driver's RNG, fresh at each
    /// start (there is no default: a fixed secret, zeros above all, would
    /// let anyone tell unknown users from real ones by their salts). The
    /// rest are defaults: no anonymous login, no exec, writable, three
    /// failed logins, [`DEFAULT_ITERATIONS`](crate::auth::DEFAULT_ITERATIONS)
    /// shown for unknown users.
    pub fn new(secret: [u8; 32]) -> Self {
        ServerConfig {
            conn: Config::default(),
            allow_anonymous: false,
            allow_exec: false,
            read_only: false,
            max_login_failures: 3,
            secret,
            unknown_user_iterations: crate::auth::DEFAULT_ITERATIONS,
        }
    }
}
