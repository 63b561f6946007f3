//! What the binary prints for people: directory entries, `stat` fields
//! and a command's output (shared by the command line and the shell).

use std::io::Write;

use ferry::{exit, Client, FerryError};
use ferry_core::{Kind, Stream};

/// Prints an entry the way `ls` shows it.
pub fn format_entry(e: &ferry_core::Entry) -> String {
    let suffix = if e.kind == Kind::Dir { "/" } else { "" };
    format!("{:>12}  {}{}", e.size, e.name, suffix)
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
