//! The names both sides derive from a target name — one home for each rule
//! so client and server cannot drift apart (docs/PROTOCOL.md#put).
//!
//! - A partial upload or download lives beside its target as
//!   `.NAME.ferry-part`; that namespace is reserved: no request may name
//!   it, listings hide it.
//! - `Overwrite::KeepBoth` stores beside an existing `NAME` as `NAME.new`,
//!   then `NAME.new.1`, `NAME.new.2`, …
//!
//! Allocation-free: each name is a [`Display`](core::fmt::Display) value to
//! write wherever the caller keeps names.

use core::fmt;

/// The suffix of a part file's name.
pub const PART_SUFFIX: &str = ".ferry-part";

/// Whether `name` (one path component) is in the reserved part-file
/// namespace: it starts with `.` and ends with [`PART_SUFFIX`].
pub fn is_part_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(PART_SUFFIX)
}

/// The part file's name for a target named `name`: `.NAME.ferry-part`.
pub fn part_name(name: &str) -> PartName<'_> {
    PartName(name)
}

/// See [`part_name`].
#[derive(Debug, Clone, Copy)]
pub struct PartName<'a>(&'a str);

impl fmt::Display for PartName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ".{}{PART_SUFFIX}", self.0)
    }
}

/// The `n`th keep-both candidate for `name` (`n` from 0): `NAME.new`, then
/// `NAME.new.1`, `NAME.new.2`, …
pub fn keep_both_name(name: &str, n: u32) -> KeepBothName<'_> {
    KeepBothName(name, n)
}

/// See [`keep_both_name`].
#[derive(Debug, Clone, Copy)]
pub struct KeepBothName<'a>(&'a str, u32);

impl fmt::Display for KeepBothName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            0 => write!(f, "{}.new", self.0),
            n => write!(f, "{}.new.{n}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf([u8; 64], usize);
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
    fn show(d: impl fmt::Display) -> Buf {
        let mut b = Buf([0; 64], 0);
        fmt::write(&mut b, format_args!("{d}")).unwrap();
        b
    }

    #[test]
    fn names_are_as_the_spec_says() {
        let b = show(part_name("测试.txt"));
        assert_eq!(&b.0[..b.1], ".测试.txt.ferry-part".as_bytes());
        let b = show(keep_both_name("a.txt", 0));
        assert_eq!(&b.0[..b.1], b"a.txt.new");
        let b = show(keep_both_name("a.txt", 2));
        assert_eq!(&b.0[..b.1], b"a.txt.new.2");
        assert!(is_part_name(".x.ferry-part") && is_part_name(".ferry-part"));
        assert!(!is_part_name("x.ferry-part") && !is_part_name(".x.ferry-parts"));
    }
}
