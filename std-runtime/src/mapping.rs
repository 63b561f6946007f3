//! How the file system's answers map to the protocol's: I/O errors to
//! typed refusals, metadata to entries, and the names reserved for part
//! files. The served root ([`crate::fsroot`]), its listings
//! ([`crate::listing`]), the body writer ([`crate::writer`]) and the
//! client all use them; this module uses none of those.

use std::io;

use ferry_core::{Entry, Error, Kind};

pub use ferry_core::naming::is_part_name;

/// Maps an I/O error to the protocol's typed refusal.
pub fn map_io(e: &io::Error) -> Error {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound => Error::NotFound,
        AlreadyExists => Error::Exists,
        PermissionDenied if e.to_string().contains("outside") => Error::OutsideRoot,
        PermissionDenied => Error::Permission,
        StorageFull | QuotaExceeded => Error::NoSpace,
        FileTooLarge => Error::TooLarge,
        NotADirectory => Error::NotADirectory,
        IsADirectory => Error::IsADirectory,
        DirectoryNotEmpty => Error::NotEmpty,
        InvalidFilename | InvalidInput => Error::InvalidPath,
        ReadOnlyFilesystem => Error::ReadOnly,
        _ if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => Error::OutsideRoot,
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => Error::OutsideRoot,
        _ => Error::Io,
    }
}

/// The entry the server sends for `name` with metadata `md`
/// (`docs/PROTOCOL.md#list-and-entry`).
pub(crate) fn entry_of(name: &str, md: &cap_std::fs::Metadata) -> Entry {
    use cap_std::fs::MetadataExt;
    let kind = if md.is_dir() {
        Kind::Dir
    } else if md.is_file() {
        Kind::File
    } else if md.file_type().is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    let modified = md
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut bounded = ferry_core::message::Name::new();
    for c in name.chars() {
        if bounded.push(c).is_err() {
            break;
        }
    }
    Entry {
        name: bounded,
        kind,
        size: md.len(),
        modified,
        mode: md.mode() & 0o7777,
    }
}
