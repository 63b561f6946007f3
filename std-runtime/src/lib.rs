//! Ferry's std runtime: client, server, CLI and interactive shell on
//! [`ferry_core`]. The sockets and files live here; the protocol lives in the
//! core. Issue #4 fills this crate.

pub use ferry_core as core;
