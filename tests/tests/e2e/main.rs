//! End-to-end tests of the real `ferry` binary, one test binary: the
//! modules link once and `ferry_bin()` builds the binary once for all of
//! them. The tests that measure time, memory or load under stress
//! (`admission.rs`, `badlinks.rs`, `listing_memory.rs`, `load.rs`,
//! `stalls.rs`) stay binaries of their own, so that they never run beside
//! these (cargo runs test binaries one after another).
//!
//! Run one module with a filter: `cargo test -p ferry-tests --test e2e -- paths::`.

mod agreed;
mod batches;
mod cli;
mod containment;
mod crash;
mod digests;
mod disk;
mod exec;
mod namespace;
mod paths;
mod roundtrips;
mod sessions;
mod spec;
mod tls;
mod transfer;
mod uploads;
mod userdirs;
