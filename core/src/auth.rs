//! Login: SCRAM-SHA-256 (RFC 5802, RFC 7677) and the verifier the server
//! stores.
//!
//! The password never crosses the wire and the server keeps only
//! `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` (PostgreSQL's text
//! form). The client proves it knows the password; the server proves it knows
//! the verifier, so a client cannot be fooled by an impostor that merely says
//! "ok". Nonces and salts come from the driver: the core has no RNG.
//! SASLprep is not applied: names and passwords are compared as UTF-8 bytes.

use core::fmt;

use base64ct::{Base64, Encoding};
use heapless::{String, Vec};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::message::{ScramText, User, MAX_USER};

type HmacSha256 = Hmac<Sha256>;

/// Highest PBKDF2 iteration count a client accepts from a server; more would
/// let a hostile server burn the client's CPU.
pub const MAX_ITERATIONS: u32 = 100_000;
/// Iteration count for new verifiers (RFC 7677's minimum).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Longest salt, in bytes.
pub const MAX_SALT: usize = 64;
/// Longest password, in bytes.
pub const MAX_PASSWORD: usize = 128;
/// Longest nonce (each side's part, as printable text).
pub const MAX_NONCE: usize = 64;

const KEY_LEN: usize = 32;
type Key = [u8; KEY_LEN];
type Nonce = String<MAX_NONCE>;
type FullNonce = String<{ 2 * MAX_NONCE }>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; KEY_LEN],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

fn b64<const N: usize>(bytes: &[u8]) -> Result<String<N>, Error> {
    let mut buf = [0u8; 128];
    let s = Base64::encode(bytes, &mut buf).map_err(|_| Error::Internal)?;
    let mut out = String::new();
    out.push_str(s).map_err(|_| Error::Internal)?;
    Ok(out)
}

fn unb64<'a>(s: &str, out: &'a mut [u8]) -> Result<&'a [u8], Error> {
    Base64::decode(s, out)
        .map(|b| -> &[u8] { b })
        .map_err(|_| Error::Malformed)
}

fn unb64_key(s: &str) -> Result<Key, Error> {
    let mut buf = [0u8; KEY_LEN];
    let n = unb64(s, &mut buf)?.len();
    if n != KEY_LEN {
        return Err(Error::Malformed);
    }
    Ok(buf)
}

fn push<const N: usize>(out: &mut String<N>, parts: &[&str]) -> Result<(), Error> {
    for p in parts {
        out.push_str(p).map_err(|_| Error::Malformed)?;
    }
    Ok(())
}

/// A nonce as SCRAM text: printable ASCII without `,` (RFC 5802 §7).
fn check_nonce(n: &str) -> Result<(), Error> {
    if n.is_empty() || !n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(Error::Malformed);
    }
    Ok(())
}

/// Turns the driver's random bytes into a nonce.
pub fn nonce_from_random(random: &[u8]) -> Result<String<MAX_NONCE>, Error> {
    if random.len() < 8 || random.len() > 32 {
        return Err(Error::BadUsage);
    }
    b64(random)
}

/// The stand-in salt for an unknown user: stable per name, unguessable
/// without the server's secret, so probing names learns nothing.
pub(crate) fn fake_salt(secret: &[u8; 32], user: &str) -> [u8; 16] {
    let mac = hmac(secret, &[b"ferry fake salt", user.as_bytes()]);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&mac[..16]);
    salt
}

/// The salted verifier a server stores for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8, MAX_SALT>,
    stored_key: Key,
    server_key: Key,
}

impl Verifier {
    /// Derives a verifier from a password (PBKDF2 with `iterations` rounds).
    pub fn new(password: &str, salt: &[u8], iterations: u32) -> Result<Self, Error> {
        if salt.is_empty() || iterations == 0 {
            return Err(Error::BadUsage);
        }
        let salt = Vec::from_slice(salt).map_err(|_| Error::BadUsage)?;
        let sp = salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&sp, &[b"Client Key"]);
        Ok(Verifier {
            iterations,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac(&sp, &[b"Server Key"]),
        })
    }

    /// Parses `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or(Error::Malformed)?;
        let (params, keys) = rest.split_once('$').ok_or(Error::Malformed)?;
        let (iter, salt) = params.split_once(':').ok_or(Error::Malformed)?;
        let (stored, server) = keys.split_once(':').ok_or(Error::Malformed)?;
        let iterations: u32 = iter.parse().map_err(|_| Error::Malformed)?;
        if iterations == 0 {
            return Err(Error::Malformed);
        }
        let mut buf = [0u8; MAX_SALT];
        let salt = Vec::from_slice(unb64(salt, &mut buf)?).map_err(|_| Error::Malformed)?;
        if salt.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(Verifier {
            iterations,
            salt,
            stored_key: unb64_key(stored)?,
            server_key: unb64_key(server)?,
        })
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let salt: String<96> = b64(&self.salt).map_err(|_| fmt::Error)?;
        let stored: String<48> = b64(&self.stored_key).map_err(|_| fmt::Error)?;
        let server: String<48> = b64(&self.server_key).map_err(|_| fmt::Error)?;
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations, salt, stored, server
        )
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Escapes a user name for SCRAM (`,` → `=2C`, `=` → `=3D`).
fn escape_user(user: &str, out: &mut ScramText) -> Result<(), Error> {
    for c in user.chars() {
        let r = match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        };
        r.map_err(|_| Error::BadUsage)?;
    }
    Ok(())
}

fn unescape_user(s: &str) -> Result<User, Error> {
    let mut out = User::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]).map_err(|_| Error::Malformed)?;
        let code = rest.get(i + 1..i + 3).ok_or(Error::Malformed)?;
        let c = match code {
            "2C" => ',',
            "3D" => '=',
            _ => return Err(Error::Malformed),
        };
        out.push(c).map_err(|_| Error::Malformed)?;
        rest = &rest[i + 3..];
    }
    out.push_str(rest).map_err(|_| Error::Malformed)?;
    if out.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(out)
}

/// Splits `key=value`, checking the key.
fn attr(part: Option<&str>, key: char) -> Result<&str, Error> {
    let part = part.ok_or(Error::Malformed)?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(Error::Malformed);
    }
    Ok(&part[2..])
}

/// The client's side of one SCRAM exchange.
pub(crate) struct ScramClient {
    password: String<MAX_PASSWORD>,
    client_first_bare: ScramText,
    nonce: Nonce,
    server_signature: Key,
}

impl ScramClient {
    /// Starts an exchange; returns the state and the client-first-message.
    pub fn start(user: &str, password: &str, nonce: &str) -> Result<(Self, ScramText), Error> {
        if user.is_empty() || user.len() > MAX_USER {
            return Err(Error::BadUsage);
        }
        check_nonce(nonce).map_err(|_| Error::BadUsage)?;
        let mut bare = ScramText::new();
        push(&mut bare, &["n="])?;
        escape_user(user, &mut bare)?;
        push(&mut bare, &[",r=", nonce]).map_err(|_| Error::BadUsage)?;
        let mut first = ScramText::new();
        push(&mut first, &["n,,", &bare]).map_err(|_| Error::BadUsage)?;
        let state = ScramClient {
            password: crate::message::bounded(password, Error::BadUsage)?,
            client_first_bare: bare,
            nonce: crate::message::bounded(nonce, Error::BadUsage)?,
            server_signature: [0; KEY_LEN],
        };
        Ok((state, first))
    }

    /// Answers the server-first-message with the client-final-message.
    pub fn server_first(&mut self, server_first: &str) -> Result<ScramText, Error> {
        let mut parts = server_first.split(',');
        let nonce = attr(parts.next(), 'r')?;
        let salt = attr(parts.next(), 's')?;
        let iter = attr(parts.next(), 'i')?;
        check_nonce(nonce)?;
        if !nonce.starts_with(self.nonce.as_str()) || nonce.len() == self.nonce.len() {
            return Err(Error::ServerAuthFailed);
        }
        let iterations: u32 = iter.parse().map_err(|_| Error::Malformed)?;
        if iterations == 0 {
            return Err(Error::Malformed);
        }
        if iterations > MAX_ITERATIONS {
            return Err(Error::IterationsTooHigh);
        }
        let mut salt_buf = [0u8; MAX_SALT];
        let salt = unb64(salt, &mut salt_buf)?;
        let sp = salted_password(self.password.as_bytes(), salt, iterations);
        // Overwrite the password's bytes, not just its length.
        let len = self.password.len();
        self.password.clear();
        for _ in 0..len {
            let _ = self.password.push('\0');
        }
        self.password.clear();

        let mut without_proof = ScramText::new();
        push(&mut without_proof, &["c=biws,r=", nonce])?;
        let auth = [
            self.client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_key = hmac(&sp, &[b"Client Key"]);
        let stored_key = sha256(&client_key);
        let signature = hmac(&stored_key, &auth);
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        let server_key = hmac(&sp, &[b"Server Key"]);
        self.server_signature = hmac(&server_key, &auth);
        let proof: String<48> = b64(&proof)?;
        let mut last = without_proof;
        push(&mut last, &[",p=", &proof])?;
        Ok(last)
    }

    /// Checks the server-final-message: the server must prove it holds the
    /// verifier.
    pub fn server_final(&self, server_final: &str) -> Result<(), Error> {
        if server_final.starts_with("e=") {
            return Err(Error::AuthFailed);
        }
        let v = attr(server_final.split(',').next(), 'v')?;
        let sig = unb64_key(v).map_err(|_| Error::ServerAuthFailed)?;
        if bool::from(sig.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(Error::ServerAuthFailed)
        }
    }
}

/// A parsed client-first-message.
pub(crate) struct ClientFirst {
    pub user: User,
    pub bare: ScramText,
    pub nonce: Nonce,
}

impl ClientFirst {
    /// Empty, to parse into.
    pub const fn new() -> Self {
        ClientFirst {
            user: User::new(),
            bare: ScramText::new(),
            nonce: Nonce::new(),
        }
    }
}

/// Parses `n,,n=<user>,r=<nonce>` (no channel binding, no authzid).
#[cfg(test)]
pub(crate) fn parse_client_first(msg: &str) -> Result<ClientFirst, Error> {
    let mut out = ClientFirst::new();
    parse_client_first_into(msg, &mut out)?;
    Ok(out)
}

/// As `parse_client_first`, into `out` where it lies (the server's login
/// state: built and moved, it was a 460-byte copy on a device's stack).
pub(crate) fn parse_client_first_into(msg: &str, out: &mut ClientFirst) -> Result<(), Error> {
    let bare = msg
        .strip_prefix("n,,")
        .or_else(|| msg.strip_prefix("y,,"))
        .ok_or(Error::Malformed)?;
    let mut parts = bare.split(',');
    out.user = unescape_user(attr(parts.next(), 'n')?)?;
    let nonce = attr(parts.next(), 'r')?;
    check_nonce(nonce)?;
    let too_long = |_| Error::Malformed;
    out.bare.clear();
    out.bare.push_str(bare).map_err(too_long)?;
    out.nonce.clear();
    out.nonce.push_str(nonce).map_err(too_long)
}

/// The server's side of one SCRAM exchange, after the client-first-message.
pub(crate) struct ScramServer {
    client_first_bare: ScramText,
    server_first: ScramText,
    nonce: FullNonce,
    gs2_b64: &'static str,
    stored_key: Key,
    server_key: Key,
    /// False when the user does not exist: the exchange runs the same way
    /// and fails at the end, revealing nothing.
    known: bool,
}

impl ScramServer {
    /// An exchange not begun, to [`Self::begin`] where it lies.
    pub const fn new() -> Self {
        ScramServer {
            client_first_bare: ScramText::new(),
            server_first: ScramText::new(),
            nonce: FullNonce::new(),
            gs2_b64: "biws",
            stored_key: [0; KEY_LEN],
            server_key: [0; KEY_LEN],
            known: false,
        }
    }

    /// Begins the exchange in place from the client-first-message's bare
    /// part and nonce (`y_flag`: it began `y,,`), and builds the
    /// server-first-message ([`Self::server_first`]). With no verifier
    /// (unknown user) a stand-in with `fake_salt` and `fake_iterations` is
    /// used so the answer looks the same as a real user's: give the count
    /// most real verifiers use, or the iteration count alone tells unknown
    /// users apart. In place because the exchange is the server's state:
    /// built and moved it was three copies of its 856 bytes on a device's
    /// stack.
    pub fn begin(
        &mut self,
        (client_first_bare, client_nonce, y_flag): (&str, &str, bool),
        verifier: Option<&Verifier>,
        (fake_salt, fake_iterations): (&[u8], u32),
        server_nonce: &str,
    ) -> Result<(), Error> {
        check_nonce(server_nonce).map_err(|_| Error::BadUsage)?;
        let (iterations, salt) = match verifier {
            Some(v) => {
                self.stored_key = v.stored_key;
                self.server_key = v.server_key;
                self.known = true;
                (v.iterations, &v.salt[..])
            }
            None => {
                self.stored_key = [0; KEY_LEN];
                self.server_key = [0; KEY_LEN];
                self.known = false;
                (fake_iterations.max(1), fake_salt)
            }
        };
        self.nonce.clear();
        push(&mut self.nonce, &[client_nonce, server_nonce])?;
        let salt: String<96> = b64(salt)?;
        let mut iter_buf = [0u8; 10];
        let iter = fmt_u32(iterations, &mut iter_buf);
        self.server_first.clear();
        push(
            &mut self.server_first,
            &["r=", &self.nonce, ",s=", &salt, ",i=", iter],
        )?;
        self.client_first_bare.clear();
        push(&mut self.client_first_bare, &[client_first_bare])?;
        self.gs2_b64 = if y_flag { "eSws" } else { "biws" };
        Ok(())
    }

    /// The server-first-message, once begun.
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Verifies the client-final-message; on success returns the
    /// server-final-message.
    pub fn client_final(&self, msg: &str) -> Result<ScramText, Error> {
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(Error::Malformed)?;
        let mut parts = without_proof.split(',');
        let cb = attr(parts.next(), 'c')?;
        let nonce = attr(parts.next(), 'r')?;
        // Extensions may follow (RFC 5802 §7); none is understood here.
        let proof = unb64_key(proof)?;
        if cb != self.gs2_b64 || nonce != self.nonce.as_str() {
            return Err(Error::AuthFailed);
        }
        let auth = [
            self.client_first_bare.as_bytes(),
            b",",
            self.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let signature = hmac(&self.stored_key, &auth);
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(signature) {
            *k ^= s;
        }
        let ok = sha256(&client_key).ct_eq(&self.stored_key);
        if !bool::from(ok) || !self.known {
            return Err(Error::AuthFailed);
        }
        let sig: String<48> = b64(&hmac(&self.server_key, &auth))?;
        let mut out = ScramText::new();
        push(&mut out, &["v=", &sig])?;
        Ok(out)
    }
}

fn fmt_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3.
    const USER: &str = "user";
    const PASSWORD: &str = "pencil";
    const CNONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SNONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";

    /// An exchange begun from a parsed client-first, and its
    /// server-first-message.
    fn start(
        first: &ClientFirst,
        client_first: &str,
        verifier: Option<&Verifier>,
        fake: (&[u8], u32),
        server_nonce: &str,
    ) -> Result<(ScramServer, ScramText), Error> {
        let mut s = ScramServer::new();
        let y = client_first.starts_with("y,,");
        s.begin((&first.bare, &first.nonce, y), verifier, fake, server_nonce)?;
        let server_first = ScramText::try_from(s.server_first()).unwrap();
        Ok((s, server_first))
    }
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> Verifier {
        let mut salt = [0u8; 16];
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==", &mut salt).unwrap();
        Verifier::new(PASSWORD, salt, 4096).unwrap()
    }

    #[test]
    fn rfc7677_client_side() {
        let (mut c, first) = ScramClient::start(USER, PASSWORD, CNONCE).unwrap();
        assert_eq!(first.as_str(), CLIENT_FIRST);
        let last = c.server_first(SERVER_FIRST).unwrap();
        assert_eq!(last.as_str(), CLIENT_FINAL);
        c.server_final(SERVER_FINAL).unwrap();
        assert_eq!(
            c.server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(Error::ServerAuthFailed)
        );
    }

    #[test]
    fn rfc7677_server_side() {
        let v = rfc_verifier();
        let first = parse_client_first(CLIENT_FIRST).unwrap();
        assert_eq!(first.user.as_str(), "user");
        let (s, server_first) = start(&first, CLIENT_FIRST, Some(&v), (&[], 1), SNONCE).unwrap();
        assert_eq!(server_first.as_str(), SERVER_FIRST);
        assert_eq!(s.client_final(CLIENT_FINAL).unwrap().as_str(), SERVER_FINAL);
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let v = rfc_verifier();
        let first = parse_client_first(CLIENT_FIRST).unwrap();
        let (mut c, _) = ScramClient::start(USER, "pencil2", CNONCE).unwrap();
        let (s, sf) = start(&first, CLIENT_FIRST, Some(&v), (&[], 1), SNONCE).unwrap();
        let last = c.server_first(&sf).unwrap();
        assert_eq!(s.client_final(&last), Err(Error::AuthFailed));

        let salt = [7u8; 16];
        let (s, sf) = start(&first, CLIENT_FIRST, None, (&salt, 4096), SNONCE).unwrap();
        let (mut c, _) = ScramClient::start(USER, PASSWORD, CNONCE).unwrap();
        let last = c.server_first(&sf).unwrap();
        assert_eq!(s.client_final(&last), Err(Error::AuthFailed));
        // The stand-in uses the iteration count it is given, so it can
        // match the real users'.
        let (_, sf) = start(&first, CLIENT_FIRST, None, (&salt, 600_000), SNONCE).unwrap();
        assert!(sf.ends_with(",i=600000"), "{sf}");
    }

    #[test]
    fn verifier_text_round_trips() {
        let v = rfc_verifier();
        let mut buf = std::string::String::new();
        use core::fmt::Write;
        write!(buf, "{v}").unwrap();
        assert!(buf.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(Verifier::parse(&buf).unwrap(), v);
        for bad in [
            "",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
            "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
            "SCRAM-SHA-256$4096:!!$a:b",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_refuses_excessive_iterations() {
        let (mut c, _) = ScramClient::start(USER, PASSWORD, CNONCE).unwrap();
        let sf = "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100001";
        assert_eq!(c.server_first(sf).err(), Some(Error::IterationsTooHigh));
    }

    #[test]
    fn usernames_escape_and_unescape() {
        let (_, first) = ScramClient::start("a,b=c", PASSWORD, CNONCE).unwrap();
        assert_eq!(first.as_str(), "n,,n=a=2Cb=3Dc,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(parse_client_first(&first).unwrap().user.as_str(), "a,b=c");
        for bad in [
            "n,,n=a=2,r=x",
            "n,,n=,r=x",
            "p=x,,n=a,r=x",
            "n,,r=x,n=a",
            "n,,n=a,r=a b",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad}");
        }
    }
}
