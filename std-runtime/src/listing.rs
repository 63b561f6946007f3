//! A directory listing read from the directory handle as the client drains
//! it (`docs/PROTOCOL.md#list-and-entry`): a client that stops reading holds one
//! directory read buffer (rustix caps it at ~24 KiB) and one entry of the
//! server's memory, however large the directory. Holding the whole listing
//! instead cost ~290 bytes per entry (58 MB for 200 000 entries) per
//! stalled session. The price is directory order on the wire: sorting
//! needs every name at once, so the std client sorts what it receives.

use cap_std::fs::ReadDir;
use ferry_core::{Entry, Error};

use crate::mapping::{entry_of, is_part_name, map_io};

/// A listing in progress.
pub struct Listing {
    dir: ReadDir,
    /// The directory has no more entries.
    done: bool,
}

impl Listing {
    /// A listing of the directory `dir` was opened on.
    pub fn new(dir: ReadDir) -> Listing {
        Listing { dir, done: false }
    }

    /// The next entry to send, `None` at the end. Partial uploads, names
    /// that are not UTF-8 and entries gone before they could be described
    /// are skipped.
    pub fn next_entry(&mut self) -> Option<Result<Entry, Error>> {
        while !self.done {
            let Some(item) = self.dir.next() else {
                self.done = true;
                break;
            };
            let item = match item {
                Ok(item) => item,
                Err(e) => return Some(Err(map_io(&e))),
            };
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_part_name(name) {
                continue;
            }
            if let Ok(md) = item.metadata() {
                return Some(Ok(entry_of(name, &md)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many entries the directory has, the listing holds none
    /// of them (the session keeps the one it could not send yet): the rest stay in the directory until asked for.
    #[test]
    fn a_listing_holds_at_most_one_entry_and_hides_part_files() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("f{i:03}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join(".f000.ferry-part"), b"partial").unwrap();
        let root = cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority());
        let mut list = Listing::new(root.unwrap().read_dir(".").unwrap());
        let mut names = Vec::new();
        while let Some(e) = list.next_entry() {
            names.push(e.unwrap().name.to_string());
        }
        assert!(list.next_entry().is_none(), "stays at the end");
        names.sort();
        let expected: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
        assert_eq!(names, expected);
        assert!(std::mem::size_of::<Listing>() < 1024);
    }
}
