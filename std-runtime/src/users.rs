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
