//! Settings as C structs: filled with the defaults by
//! `ferry_config_default` / `ferry_server_config_default`, then changed
//! field by field. Flags are `uint8_t` (0 or 1), never `bool`, so no value
//! C can store is invalid for Rust; everything is checked at init.

use core::time::Duration;

use ferry_core::digest::{Algorithm, Digests};
use ferry_core::{Config, ServerConfig};

use crate::error::{CResult, FerryError};
use crate::ffi::{done, put};

/// Settings shared by client and server (ferry-core's `Config`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryConfig {
    /// Body chunk size this side prefers, in bytes (not 0).
    pub chunk_size: u32,
    /// Time allowed for the peer's hello, in milliseconds.
    pub handshake_timeout_ms: u32,
    /// Time allowed from start until login completes, in milliseconds.
    pub login_timeout_ms: u32,
    /// Close a logged-in session idle this long, in milliseconds; 0 never.
    pub idle_timeout_ms: u32,
    /// Body digests this side offers, in preference order, as wire ids
    /// (1 MD5, 2 SHA-256, 3 BLAKE3), unused slots 0. Only digests this
    /// build carries (`ferry_digest_available`); MD5 is always accepted by
    /// a server, and a client that leaves it out refuses to fall back.
    pub digests: [u8; 4],
    /// Gets or puts this side announces it holds in flight; 0 is the
    /// most this library allows (1).
    pub window: u16,
}

/// Server settings (ferry-core's `ServerConfig`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryServerConfig {
    /// The shared settings.
    pub conn: FerryConfig,
    /// Accept anonymous logins (1) or not (0).
    pub allow_anonymous: u8,
    /// Refuse every write (put, mkdir, remove, rename) with `READ_ONLY`
    /// (1) or not (0).
    pub read_only: u8,
    /// Failed logins after which the connection is closed (not 0).
    pub max_login_failures: u8,
    /// 32 random bytes, fresh at each start: the unknown-user salts derive
    /// from them, so a fixed secret lets anyone tell unknown users from
    /// real ones. The default is zeros: fill it.
    pub secret: [u8; 32],
    /// The PBKDF2 iteration count shown for an unknown user: the count the
    /// real verifiers use.
    pub unknown_user_iterations: u32,
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl From<Config> for FerryConfig {
    fn from(c: Config) -> FerryConfig {
        FerryConfig {
            chunk_size: c.chunk_size,
            handshake_timeout_ms: ms(c.handshake_timeout),
            login_timeout_ms: ms(c.login_timeout),
            idle_timeout_ms: c.idle_timeout.map_or(0, ms),
            digests: c.digests.to_bytes(),
            window: c.window,
        }
    }
}

impl FerryConfig {
    /// The core's `Config`, or why not.
    pub(crate) fn to_core(self) -> CResult<Config> {
        let invalid = FerryError::FERRY_ERROR_INVALID_ARGUMENT;
        let mut prefs = [Algorithm::Md5; 4];
        let mut n = 0;
        for &id in &self.digests {
            if id == 0 {
                continue;
            }
            let a = Algorithm::from_id(id).ok_or(invalid)?;
            prefs[n] = a;
            n += 1;
        }
        // Every listed digest must be in this build, none twice.
        let digests = match n {
            0 => Digests::available(),
            _ => Digests::new(&prefs[..n]).map_err(|_| invalid)?,
        };
        if self.chunk_size == 0 || self.window > 1 {
            return Err(invalid);
        }
        let d = |ms: u32| Duration::from_millis(u64::from(ms));
        Ok(Config {
            chunk_size: self.chunk_size,
            handshake_timeout: d(self.handshake_timeout_ms),
            login_timeout: d(self.login_timeout_ms),
            idle_timeout: (self.idle_timeout_ms > 0).then(|| d(self.idle_timeout_ms)),
            digests,
            window: self.window,
        })
    }
}

impl FerryServerConfig {
    /// The core's `ServerConfig`, or why not.
    pub(crate) fn to_core(self) -> CResult<ServerConfig> {
        let flag = |v: u8| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT),
        };
        if self.max_login_failures == 0 || self.unknown_user_iterations == 0 {
            return Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT);
        }
        Ok(ServerConfig {
            conn: self.conn.to_core()?,
            allow_anonymous: flag(self.allow_anonymous)?,
            // No exec through the C store (docs/C-API.md): the server
            // refuses each with EXEC_DISABLED itself.
            allow_exec: false,
            read_only: flag(self.read_only)?,
            max_login_failures: self.max_login_failures,
            secret: self.secret,
            unknown_user_iterations: self.unknown_user_iterations,
        })
    }
}

/// Fills `out` with the defaults: 64 KiB chunks, 30 s handshake and login
/// deadlines, 300 s idle, every digest this build carries.
///
/// # Safety
/// `out` is NULL or valid for writing a `ferry_config`.
#[no_mangle]
pub unsafe extern "C" fn ferry_config_default(out: *mut FerryConfig) -> FerryError {
    // SAFETY: forwarded contract.
    done(unsafe { put(out, Config::default().into()) })
}

/// Fills `out` with the server defaults: the shared defaults, no
/// anonymous login, writable, three failed logins, 4096 iterations shown
/// for unknown users, and a zero `secret` that the caller must fill with
/// random bytes.
///
/// # Safety
/// `out` is NULL or valid for writing a `ferry_server_config`.
#[no_mangle]
pub unsafe extern "C" fn ferry_server_config_default(out: *mut FerryServerConfig) -> FerryError {
    let c = ServerConfig::new([0; 32]);
    let c = FerryServerConfig {
        conn: c.conn.into(),
        allow_anonymous: 0,
        read_only: 0,
        max_login_failures: c.max_login_failures,
        secret: c.secret,
        unknown_user_iterations: c.unknown_user_iterations,
    };
    // SAFETY: forwarded contract.
    done(unsafe { put(out, c) })
}

/// Whether this build carries the digest with wire id `id` (1 MD5, always;
/// 2 SHA-256 and 3 BLAKE3 with the `sha256` / `blake3` features).
#[no_mangle]
pub extern "C" fn ferry_digest_available(id: u8) -> bool {
    Algorithm::from_id(id).is_some_and(Algorithm::is_available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_bad_values_are_refused() {
        let c: FerryConfig = Config::default().into();
        assert_eq!(c.to_core(), Ok(Config::default()));
        let bad = [
            FerryConfig { chunk_size: 0, ..c },
            FerryConfig {
                digests: [9, 0, 0, 0],
                ..c
            },
            FerryConfig {
                digests: [1, 1, 0, 0],
                ..c
            },
            FerryConfig { window: 2, ..c },
        ];
        for b in bad {
            assert_eq!(
                b.to_core(),
                Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT),
                "{b:?}"
            );
        }
        let none = FerryConfig {
            idle_timeout_ms: 0,
            digests: [0; 4],
            ..c
        }
        .to_core()
        .unwrap();
        assert_eq!(none.idle_timeout, None);
        assert_eq!(none.digests, Digests::available());
        let mut s = core::mem::MaybeUninit::<FerryServerConfig>::uninit();
        // SAFETY: a valid out-pointer.
        assert_eq!(
            unsafe { ferry_server_config_default(s.as_mut_ptr()) },
            FerryError::FERRY_OK
        );
        // SAFETY: just written.
        let s = unsafe { s.assume_init() };
        assert_eq!(s.to_core().unwrap(), ServerConfig::new([0; 32]));
        let bad = FerryServerConfig {
            allow_anonymous: 2,
            ..s
        };
        assert_eq!(bad.to_core(), Err(FerryError::FERRY_ERROR_INVALID_ARGUMENT));
        assert!(
            ferry_digest_available(1) && !ferry_digest_available(0) && !ferry_digest_available(4)
        );
    }
}
