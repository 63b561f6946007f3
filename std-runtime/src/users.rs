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

    /// Writes the file atomically, mode 0600: a new temporary file beside
    /// it (a unique name, created with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a
    /// file or symlink planted at that name is never written through or
    /// reused with its mode), mode set on the open descriptor, fsync,
    /// rename over the target, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<(), FerryError> {
        use std::io::Write;
        let mut text = String::new();
        for (name, v) in &self.map {
            text.push_str(&format!("{name}:{v}\n"));
        }
        let (mut f, tmp) = create_temp(path)?;
        let written = f
            .write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| FerryError::local(&tmp, e))
            .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| FerryError::local(path, e)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return written;
        }
        // The rename is durable once the directory is synced.
        if let Ok(dir) = std::fs::File::open(parent_dir(path)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a new, empty temporary file for `path` in its directory, named
/// `.NAME.RANDOM.ferry-tmp`, exclusively (`O_EXCL|O_NOFOLLOW`: a name
/// that exists, symlink or not, is not opened) and with mode 0600 set on
/// the descriptor, whatever the umask.
fn create_temp(path: &Path) -> Result<(std::fs::File, std::path::PathBuf), FerryError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| FerryError::Other(format!("no randomness: {e}")))?;
        let tmp =
            parent_dir(path).join(format!(".{name}.{:016x}.ferry-tmp", u64::from_le_bytes(r)));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)
        {
            Ok(f) => {
                if let Err(e) = f.set_permissions(std::fs::Permissions::from_mode(0o600)) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(FerryError::local(&tmp, e));
                }
                return Ok((f, tmp));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(FerryError::local(&tmp, e)),
        }
    }
    Err(FerryError::local(path, last))
}

/// Why `name` cannot be a user in the file, if it cannot: the file stores
/// `NAME:VERIFIER` lines, trims them and skips those starting with `#`, so
/// a name that is empty, longer than 64 bytes (the protocol's limit),
/// starts with `#`, starts or ends with white space, or holds a `:` or a
/// control character would not be read back as written.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 64 {
        Some("is longer than 64 bytes")
    } else if name.starts_with('#') {
        Some("starts with '#' (a comment in the users file)")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("starts or ends with white space")
    } else if name.contains(':') {
        Some("contains ':' (the users file's separator)")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// Whether `name` can be stored faithfully (see [`name_problem`]).
pub fn valid_name(name: &str) -> bool {
    name_problem(name).is_none()
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

    #[test]
    fn names_the_file_cannot_hold_are_refused_and_others_round_trip() {
        for bad in [
            "",
            "#admin",
            " carol",
            "carol ",
            "\tbob",
            "bob\u{a0}",
            "a:b",
            "a\nb",
            "a\u{7f}b",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let good = [
            "alice",
            "a#b",
            "carol smith",
            "测试",
            "x-y.z_1",
            &"x".repeat(64),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        let mut u = Users::default();
        for name in good {
            assert!(valid_name(name), "{name:?}");
            u.set(name, Verifier::new("pw", b"salt", 4096).unwrap());
        }
        u.save(&path).unwrap();
        let back = Users::load(&path).unwrap();
        assert_eq!(back.len(), good.len());
        for name in good {
            assert!(back.get(name).is_some(), "{name:?} did not round-trip");
        }
    }

    #[test]
    fn save_never_writes_through_a_planted_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        for planted in [
            "users.ferry-tmp",
            "users.txt.ferry-tmp",
            ".users.txt.ferry-tmp",
        ] {
            std::os::unix::fs::symlink(&outside, dir.path().join(planted)).unwrap();
        }
        let mut u = Users::default();
        u.set("alice", Verifier::new("pw", b"salt", 4096).unwrap());
        u.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert!(md.is_file());
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.contains(".ferry-tmp") && !n.starts_with("users") && n != ".users.txt.ferry-tmp"
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
