//! The users file: one `NAME:SCRAM-SHA-256$…` line per user. It never holds
//! a password, only salted verifiers.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_core::Verifier;

use crate::error::FerryError;

/// Users and their verifiers.
#[derive(Debug, Default, Clone)]
pub struct Users {
    map: BTreeMap<String, Verifier>,
}

impl Users {
    /// Reads a users file; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<Self, FerryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(FerryError::local(path, e)),
        };
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                FerryError::Other(format!(
                    "{}:{}: expected NAME:SCRAM-SHA-256$...",
                    path.display(),
                    i + 1
                ))
            };
            let (name, v) = line.split_once(':').ok_or_else(bad)?;
            let v = Verifier::parse(v).map_err(|_| bad())?;
            map.insert(name.to_string(), v);
        }
        Ok(Users { map })
    }

    /// The verifier for `name`.
    pub fn get(&self, name: &str) -> Option<&Verifier> {
        self.map.get(name)
    }

    /// Adds or replaces a user.
    pub fn set(&mut self, name: &str, v: Verifier) {
        self.map.insert(name.to_string(), v);
    }

    /// The iteration count most verifiers use (the larger on a tie; the
    /// default when there are none): what an unknown user is shown, so the
    /// count does not tell who exists.
    pub fn typical_iterations(&self) -> u32 {
        let mut counts = BTreeMap::new();
        for v in self.map.values() {
            *counts.entry(v.iterations()).or_insert(0u32) += 1;
        }
        counts
            .into_iter()
            .max_by_key(|&(iters, n)| (n, iters))
            .map_or(ferry_core::auth::DEFAULT_ITERATIONS, |(iters, _)| iters)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Writes the file atomically (temp file, fsync, rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), FerryError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut text = String::new();
        for (name, v) in &self.map {
            text.push_str(&format!("{name}:{v}\n"));
        }
        let tmp = path.with_extension("ferry-tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| FerryError::local(&tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| FerryError::local(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| FerryError::local(path, e))
    }
}

/// A user name is usable if it is non-empty, at most 64 bytes and has no
/// `:` (the file's separator) or control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && !name.chars().any(|c| c == ':' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_shown_the_iteration_count_most_users_have() {
        let mut u = Users::default();
        assert_eq!(u.typical_iterations(), ferry_core::auth::DEFAULT_ITERATIONS);
        u.set("a", Verifier::new("pw", b"salt-a", 10_000).unwrap());
        u.set("b", Verifier::new("pw", b"salt-b", 20_000).unwrap());
        u.set("c", Verifier::new("pw", b"salt-c", 20_000).unwrap());
        assert_eq!(u.typical_iterations(), 20_000);
    }
}
