//! `ferry://[USER@]HOST[:PORT]/PATH` addresses; `ferrys://` for TLS.

use crate::error::FerryError;

/// The default port.
pub const DEFAULT_PORT: u16 = 7070;

/// A parsed remote address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FerryUrl {
    /// User to log in as; anonymous when `None`.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Remote path, percent-decoded; `/` when empty.
    pub path: String,
    /// `ferrys://`: the connection runs over TLS, the server's certificate
    /// checked against HOST.
    pub tls: bool,
}

impl FerryUrl {
    /// Parses a URL.
    pub fn parse(s: &str) -> Result<Self, FerryError> {
        let bad = |why: &str| {
            FerryError::Usage(format!(
                "bad URL {s:?}: {why} (expected ferry://[USER@]HOST[:PORT]/PATH, or ferrys:// for TLS)"
            ))
        };
        let (tls, rest) = match (s.strip_prefix("ferry://"), s.strip_prefix("ferrys://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(bad("must start with ferry:// or ferrys://")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(decode(u).map_err(|_| bad("bad user"))?), h),
            Some(_) => return Err(bad("empty user")),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("bad port"))?,
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (hostport.to_string(), DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let path = decode(path).map_err(|_| bad("bad percent-encoding"))?;
        Ok(FerryUrl {
            user,
            host,
            port,
            path,
            tls,
        })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Names the remote `path` (as the server knows it: decoded, from the
/// session's root) the way the user wrote the URL `raw`: `raw` itself when
/// it names `path`, else `raw`'s scheme, user, host and port followed by
/// `path`. Error messages use it so a refusal names what was refused in the
/// user's own terms, also for a file found under a directory URL or by `-r`.
pub fn name_remote(raw: &str, path: &str) -> String {
    match FerryUrl::parse(raw) {
        Ok(u) if u.path == path => raw.to_string(),
        Ok(_) => {
            let after_scheme = raw.find("://").map_or(0, |i| i + 3);
            let authority_end = raw[after_scheme..]
                .find('/')
                .map_or(raw.len(), |i| after_scheme + i);
            let sep = if path.starts_with('/') { "" } else { "/" };
            format!("{}{sep}{path}", &raw[..authority_end])
        }
        Err(_) => path.to_string(),
    }
}

/// Percent-decoding; raw UTF-8 passes through.
fn decode(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let u = FerryUrl::parse("ferry://alice@127.0.0.1:7071/docs/测试文件.txt").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.socket_addr(), "127.0.0.1:7071");
        assert_eq!(u.path, "/docs/测试文件.txt");
        let u = FerryUrl::parse("ferry://[::1]:9000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_deref()),
            ("::1", 9000, None)
        );
        assert_eq!(u.socket_addr(), "[::1]:9000");
        let u = FerryUrl::parse("ferry://localhost").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.tls), (DEFAULT_PORT, "/", false));
        let u = FerryUrl::parse("ferrys://files.example:7443/a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("files.example", 7443, true)
        );
        let u = FerryUrl::parse("ferry://h/a%20b%E6%B5%8B").unwrap();
        assert_eq!(u.path, "/a b测");
        for bad in [
            "http://h/",
            "ferry://",
            "ferry://h:x/",
            "ferry://[::1/",
            "ferry://@h/",
            "ferry://h/%zz",
        ] {
            assert!(FerryUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_paths_are_named_in_the_users_own_form() {
        let raw = "ferry://alice@[::1]:7071/docs/";
        assert_eq!(name_remote(raw, "/docs/"), raw);
        assert_eq!(
            name_remote(raw, "/docs/a b.txt"),
            "ferry://alice@[::1]:7071/docs/a b.txt"
        );
        assert_eq!(name_remote("ferrys://h/x", "y"), "ferrys://h/y");
        assert_eq!(name_remote("ferry://h", "/"), "ferry://h");
        assert_eq!(name_remote("ferry://h", "/a"), "ferry://h/a");
        assert_eq!(name_remote("ferry://h/a%20b", "/a b"), "ferry://h/a%20b");
        assert_eq!(name_remote("not a url", "/a"), "/a");
    }
}
