//! The served root: every path a client names is resolved beneath it.
//!
//! Two layers: names are normalised here (`.`/`..`/empty components, NUL,
//! absolute vs relative to the session's directory), and then every file
//! operation goes through a `cap_std::fs::Dir` opened on the root, which
//! refuses to follow `..` or symlinks out of it (openat2 `RESOLVE_BENEATH`
//! where the kernel has it). String checks alone would miss a symlink.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, File, OpenOptions};
use ferry_core::digest::{Algorithm, Hasher, Sum};
use ferry_core::{Entry, Error, Kind, Overwrite};

use crate::listing::Listing;
use crate::sums::Version;
use crate::writer::Writer;

/// The root directory being served.
pub struct Root {
    dir: Dir,
    path: PathBuf,
}

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

/// Resolves `path` against the session directory `cwd` (both relative to
/// the root; a leading `/` means the root). `..` may climb back up but never
/// above the root; NUL bytes and backslash-escapes of `/` are refused.
pub fn resolve(cwd: &Path, path: &str) -> Result<PathBuf, Error> {
    if path.contains('\0') {
        return Err(Error::OutsideRoot);
    }
    let mut out: Vec<&str> = Vec::new();
    let cwd_s = cwd.to_str().ok_or(Error::InvalidPath)?;
    if !path.starts_with('/') {
        out.extend(cwd_s.split('/').filter(|c| !c.is_empty() && *c != "."));
    }
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(Error::OutsideRoot)?;
            }
            c => out.push(c),
        }
    }
    Ok(out.iter().collect())
}

/// The path as cap-std wants it: `.` for the root itself.
fn rel(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
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

/// The last component of a resolved path.
fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("/")
}

/// Whether `name` is a partial upload's (`.NAME.ferry-part`), which
/// listings hide.
pub(crate) fn is_part_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".ferry-part")
}

/// The hidden sibling that holds a partial upload of `target` (kept for
/// `--resume`, never under the real name).
pub fn part_path(target: &Path) -> PathBuf {
    let name = format!(".{}.ferry-part", file_name(target));
    match target.parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

/// An upload being received.
pub struct Upload {
    /// Final name, relative to the root.
    pub target: PathBuf,
    /// Partial file, relative to the root.
    pub part: PathBuf,
    file: File,
    /// For large bodies, a thread that owns `file`'s writes, so the session
    /// hashes the next chunk while the last one is written.
    writer: Option<Writer>,
    /// Write through a writer thread (see [`crate::writer::worth_it`]).
    pub background: bool,
    /// A write failed: every later one fails the same way (no write may
    /// land after a lost one).
    failed: Option<Error>,
    /// Bytes already held (resume offset).
    pub offset: u64,
    /// Size of the whole file.
    pub size: u64,
    replace: bool,
}

impl Root {
    /// Opens the root directory.
    pub fn open(path: &Path) -> io::Result<Root> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(Root {
            dir,
            path: path.canonicalize()?,
        })
    }

    /// The root's real path (for running commands in it).
    pub fn real_path(&self, rel_path: &Path) -> PathBuf {
        self.path.join(rel_path)
    }

    /// Describes one path (symlinks inside the root are followed).
    pub fn stat(&self, p: &Path) -> Result<Entry, Error> {
        let md = self.dir.metadata(rel(p)).map_err(|e| map_io(&e))?;
        Ok(entry_of(file_name(p), &md))
    }

    /// Checks that `p` is a directory (for cd).
    pub fn check_dir(&self, p: &Path) -> Result<(), Error> {
        let md = self.dir.metadata(rel(p)).map_err(|e| map_io(&e))?;
        if md.is_dir() {
            Ok(())
        } else {
            Err(Error::NotADirectory)
        }
    }

    /// Opens a directory for listing, read as it is sent (see
    /// [`Listing`]): in directory order, partial uploads hidden.
    pub fn list(&self, p: &Path) -> Result<Listing, Error> {
        let dir = self.dir.read_dir(rel(p)).map_err(|e| map_io(&e))?;
        Ok(Listing::new(dir))
    }

    /// Opens a regular file to send; returns it and its size.
    ///
    /// Opened non-blocking and checked after the open (not before, which
    /// would race): a FIFO or a device in the root must not hang the
    /// session in `open` or feed it endless bytes. On a regular file the
    /// flag changes nothing.
    pub fn open_read(&self, p: &Path) -> Result<(std::fs::File, std::fs::Metadata), Error> {
        use cap_std::fs::OpenOptionsExt as _;
        let mut opts = OpenOptions::new();
        opts.read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let f = self.dir.open_with(rel(p), &opts).map_err(|e| map_io(&e))?;
        let f = f.into_std();
        let md = f.metadata().map_err(|e| map_io(&e))?;
        if md.is_dir() {
            return Err(Error::IsADirectory);
        }
        if !md.is_file() {
            return Err(Error::Permission);
        }
        Ok((f, md))
    }

    /// The digest of a whole file (`ferry stat --digest`), always hashed
    /// afresh; with the file's version if it did not change meanwhile.
    pub fn digest(&self, p: &Path, alg: Algorithm) -> Result<(Sum, Option<Version>), Error> {
        let (mut f, md) = self.open_read(p)?;
        let before = Version::of(&md);
        let mut h = Hasher::new(alg).ok_or(Error::Internal)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    let after = f.metadata().ok().map(|md| Version::of(&md));
                    return Ok((h.finish(), (after == Some(before)).then_some(before)));
                }
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(&e)),
            }
        }
    }

    /// Creates a directory.
    pub fn mkdir(&self, p: &Path) -> Result<(), Error> {
        self.dir.create_dir(rel(p)).map_err(|e| map_io(&e))
    }

    /// Removes a file or an empty directory.
    pub fn remove(&self, p: &Path) -> Result<(), Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::Permission);
        }
        let md = self.dir.symlink_metadata(p).map_err(|e| map_io(&e))?;
        if md.is_dir() {
            self.dir.remove_dir(p).map_err(|e| map_io(&e))
        } else {
            self.dir.remove_file(p).map_err(|e| map_io(&e))
        }
    }

    /// Renames within the root, refusing an existing `to` with `Exists`
    /// (`docs/PROTOCOL.md#messages`). Atomic where the kernel has
    /// `renameat2(RENAME_NOREPLACE)`: a check then a rename would replace
    /// a file created between the two.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), Error> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::{renameat_with, RenameFlags};
            use rustix::io::Errno;
            match renameat_with(
                &from_dir,
                from_name,
                &to_dir,
                to_name,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Ok(()),
                // A file system without the flag: check, then rename.
                Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
                Err(e) => return Err(map_io(&e.into())),
            }
        }
        if to_dir.symlink_metadata(to_name).is_ok() {
            return Err(Error::Exists);
        }
        from_dir
            .rename(from_name, &to_dir, to_name)
            .map_err(|e| map_io(&e))
    }

    /// Renames within the root, replacing `to` if it exists (`ferry mv
    /// --overwrite replace`): the kernel's rename, atomic.
    pub fn rename_replacing(&self, from: &Path, to: &Path) -> Result<(), Error> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        from_dir
            .rename(from_name, &to_dir, to_name)
            .map_err(|e| map_io(&e))
    }

    /// The directory holding `p`, opened beneath the root (so a symlink on
    /// the way cannot lead out), and `p`'s last component. The root itself
    /// has no parent: renaming it is refused.
    fn parent_of<'p>(&self, p: &'p Path) -> Result<(Dir, &'p std::ffi::OsStr), Error> {
        let name = p.file_name().ok_or(Error::Permission)?;
        let parent = p.parent().unwrap_or(Path::new(""));
        let dir = self.dir.open_dir(rel(parent)).map_err(|e| map_io(&e))?;
        Ok((dir, name))
    }

    fn exists(&self, p: &Path) -> bool {
        self.dir.symlink_metadata(p).is_ok()
    }

    /// Free bytes on the root's file system.
    fn free_space(&self) -> Option<u64> {
        let s = rustix::fs::fstatvfs(&self.dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// Prepares to receive `size` bytes for `p` under `policy`: picks the
    /// final name, refuses before any body byte if it cannot be stored, and
    /// opens (or, with `resume`, reopens) the partial file.
    pub fn begin_upload(
        &self,
        p: &Path,
        size: u64,
        policy: Overwrite,
        resume: bool,
    ) -> Result<Upload, Error> {
        if p.as_os_str().is_empty() {
            return Err(Error::IsADirectory);
        }
        let mut target = p.to_path_buf();
        let existing = match self.dir.metadata(p) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A dangling or escaping symlink is not "free to create".
                if self.dir.symlink_metadata(p).is_ok() {
                    return Err(Error::OutsideRoot);
                }
                None
            }
            Err(e) => return Err(map_io(&e)),
        };
        if let Some(md) = existing {
            if md.is_dir() {
                return Err(Error::IsADirectory);
            }
            match policy {
                Overwrite::Fail => return Err(Error::Exists),
                Overwrite::Replace => {}
                Overwrite::KeepBoth => {
                    let base = file_name(p).to_string();
                    let parent = p.parent().unwrap_or(Path::new("")).to_path_buf();
                    let mut n = 0u32;
                    loop {
                        let name = if n == 0 {
                            format!("{base}.new")
                        } else {
                            format!("{base}.new.{n}")
                        };
                        let cand = parent.join(name);
                        if !self.exists(&cand) {
                            target = cand;
                            break;
                        }
                        n = n.checked_add(1).ok_or(Error::Exists)?;
                    }
                }
            }
        } else if let Some(parent) = p.parent() {
            // The directory must exist and stay inside the root.
            self.check_dir(parent)?;
        }
        let part = part_path(&target);
        let held = match (resume, self.dir.metadata(&part)) {
            (true, Ok(md)) if md.is_file() && md.len() <= size => md.len(),
            _ => 0,
        };
        if let Some(free) = self.free_space() {
            if size - held > free {
                return Err(Error::NoSpace);
            }
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).read(true);
        let mut file = self.dir.open_with(&part, &opts).map_err(|e| map_io(&e))?;
        file.set_len(held).map_err(|e| map_io(&e))?;
        file.seek(SeekFrom::Start(held)).map_err(|e| map_io(&e))?;
        Ok(Upload {
            target,
            part,
            file,
            writer: None,
            background: false,
            failed: None,
            offset: held,
            size,
            replace: policy == Overwrite::Replace,
        })
    }
}

impl Upload {
    /// Reads the held prefix back, `f` getting it piece by piece (to hash).
    pub fn read_prefix(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.file.seek(SeekFrom::Start(0)).map_err(|e| map_io(&e))?;
        let mut left = self.offset;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = self.file.read(&mut buf[..want]).map_err(|e| map_io(&e))?;
            if n == 0 {
                return Err(Error::Io);
            }
            f(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Appends body bytes; with `background`, through a writer thread
    /// (call after `read_prefix`).
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.write_once(data);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    fn write_once(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.background && self.writer.is_none() {
            let file = self.file.try_clone().map_err(|e| map_io(&e))?;
            self.writer = Some(Writer::start(file.into_std())?);
        }
        let r = match &mut self.writer {
            Some(w) => w.write(data),
            None => return self.file.write_all(data).map_err(|e| map_io(&e)),
        };
        // The thread stopped: its own error says why (no space…).
        r.map_err(|_| self.flush().err().unwrap_or(Error::Io))
    }

    /// Waits until every byte is written; the first write error, if any.
    fn flush(&mut self) -> Result<(), Error> {
        match self.writer.take() {
            Some(w) => w.finish(),
            None => Ok(()),
        }
    }

    /// Makes the verified upload the real file: fsync, then rename over the
    /// target (refusing if it appeared meanwhile and replacing was not
    /// asked for).
    /// Returns where it is and its version (after the rename, which moves
    /// the change time).
    pub fn commit(mut self, root: &Root) -> Result<(PathBuf, Version), Error> {
        self.flush()?;
        self.file.sync_all().map_err(|e| map_io(&e))?;
        if !self.replace && root.exists(&self.target) {
            return Err(Error::Exists);
        }
        root.dir
            .rename(&self.part, &root.dir, &self.target)
            .map_err(|e| map_io(&e))?;
        let md = (self.file.try_clone().map(File::into_std))
            .and_then(|f| f.metadata())
            .map_err(|e| map_io(&e))?;
        Ok((self.target, Version::of(&md)))
    }

    /// Keeps what arrived as resumable state (a dropped client).
    pub fn keep(mut self) {
        let _ = self.flush();
        let _ = self.file.sync_all();
    }

    /// Deletes the partial file (a checksum mismatch: the bytes are bad).
    pub fn discard(mut self, root: &Root) {
        let _ = self.flush();
        drop(self.file);
        let _ = root.dir.remove_file(&self.part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_beneath_the_root() {
        let cwd = Path::new("a/b");
        assert_eq!(resolve(cwd, "c.txt").unwrap(), PathBuf::from("a/b/c.txt"));
        assert_eq!(resolve(cwd, "/c.txt").unwrap(), PathBuf::from("c.txt"));
        assert_eq!(resolve(cwd, "../../x").unwrap(), PathBuf::from("x"));
        assert_eq!(resolve(cwd, "././/d/").unwrap(), PathBuf::from("a/b/d"));
        assert_eq!(resolve(Path::new(""), "").unwrap(), PathBuf::from(""));
        for bad in [
            "../../../x",
            "/..",
            "a/../../../..",
            "x\0y",
            "/../etc/passwd",
        ] {
            assert_eq!(resolve(cwd, bad), Err(Error::OutsideRoot), "{bad:?}");
        }
    }

    #[test]
    fn part_files_are_hidden_siblings() {
        assert_eq!(
            part_path(Path::new("d/f.txt")),
            PathBuf::from("d/.f.txt.ferry-part")
        );
        assert_eq!(part_path(Path::new("f")), PathBuf::from(".f.ferry-part"));
    }
}
