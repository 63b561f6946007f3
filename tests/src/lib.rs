//! End-to-end tests of the real binaries live in this crate's `tests/`
//! directory once the std runtime (issue #4) exists.
