//! ferry-core's integration tests, one binary: the Pair harness (`pair.rs`)
//! and every test module compile and link once. `footprint.rs` stays a
//! binary of its own for its counting global allocator.
//!
//! Run one module with a filter: `cargo test -p ferry-core --test it -- session::`.

mod line;
mod pair;

mod decode;
mod digests;
mod docs;
mod driver;
mod limits;
mod link;
mod md5;
mod pipeline;
mod session;
mod spec;
mod split;
mod wire;
