//! What the binary prints for people: directory entries, `stat` fields
//! and a command's output (shared by the command line and the shell).

use std::io::Write;

use ferry::{exit, Client, FerryError, LongEntry};
use ferry_core::{Kind, Stream};

/// Prints an entry the way `ls` shows it.
pub fn format_entry(e: &ferry_core::Entry) -> String {
    let suffix = if e.kind == Kind::Dir { "/" } else { "" };
    format!("{:>12}  {}{}", e.size, e.name, suffix)
}

/// An entry the way `ls -l` shows it: kind and permission bits, size,
/// modification time (UTC, to the minute), name (`/` after a directory).
pub fn format_long(e: &ferry_core::Entry, name: &str) -> String {
    let kind = match e.kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Other => '?',
    };
    let mut mode = String::from(kind);
    for (who, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (e.mode >> who) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(match (bits & 1 != 0, e.mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    let when = i64::try_from(e.modified)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "-".repeat(16),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        );
    let suffix = if e.kind == Kind::Dir { "/" } else { "" };
    format!("{mode} {:>12}  {when}  {name}{suffix}", e.size)
}

/// Prints `ls -l` of several names (one batch: [`Client::long_batch`]):
/// a file's own line, a directory's entries (under a `NAME:` heading
/// when there are several names). The first failure is returned, the
/// others printed.
pub fn print_long(c: &mut Client, names: &[String]) -> Result<(), FerryError> {
    let mut out = std::io::stdout().lock();
    let mut first_error = None;
    let headings = names.len() > 1;
    for (i, (name, got)) in names.iter().zip(c.long_batch(names)).enumerate() {
        match got {
            Ok(LongEntry {
                listing: Some(entries),
                ..
            }) => {
                if headings {
                    let _ = writeln!(out, "{}{name}:", if i > 0 { "\n" } else { "" });
                }
                for e in entries {
                    let _ = writeln!(out, "{}", format_long(&e, &e.name));
                }
            }
            Ok(LongEntry { entry, .. }) => {
                let _ = writeln!(out, "{}", format_long(&entry, name));
            }
            Err(e) => match first_error {
                None => first_error = Some(FerryError::remote(name, e)),
                Some(_) => eprintln!("ferry: ls {}", FerryError::remote(name, e)),
            },
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `stat` output, one field per line.
pub fn format_stat(e: &ferry_core::Entry) -> String {
    let kind = match e.kind {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Other => "other",
    };
    format!(
        "name: {}\nkind: {kind}\nsize: {}\nmodified: {}\nmode: {:04o}",
        e.name, e.size, e.modified, e.mode
    )
}

/// Runs a command, streaming its output; exit 1 if it failed remotely,
/// saying so with `place` (where it ran, as the user named it).
pub fn exec_and_print(c: &mut Client, command: &str, place: &str) -> Result<i32, FerryError> {
    let (status, no_output) = c.exec(command, |s, d| {
        let _ = match s {
            Stream::Stdout => std::io::stdout().write_all(d),
            Stream::Stderr => std::io::stderr().write_all(d),
        };
    })?;
    let _ = std::io::stdout().flush();
    if no_output {
        println!("command ran, no output");
    }
    if status != 0 {
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" {place}")
        };
        eprintln!("ferry: exec{place}: remote command {command:?} exited with status {status}");
        return Ok(1);
    }
    Ok(exit::OK)
}
