//! # ferry-device
//!
//! Ferry where it was made for: a microcontroller-class device with a
//! TCP/IP stack (smoltcp) and no heap. ferry-core's `Server` is bound to
//! smoltcp TCP sockets ([`net::FerryDevice`]) and serves a fixed-capacity
//! RAM file store ([`store::RamStore`]) and a few built-in commands for
//! `exec` (`uptime`, `free`, `ls`, `echo`, `md5 FILE`) — there is no shell.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`. The `ferry-device` binary (feature
//! `std`) runs the same library on a Linux TAP interface or, through
//! [`serial::SerialDevice`] and ferry-core's link layer, on a serial line
//! (a pseudo-terminal on Linux); `sim` joins two smoltcp interfaces in
//! memory, with faults, for tests.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// No heap to box large variants into; sizes are fixed by the protocol.
#![allow(clippy::large_enum_variant)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod app;
pub mod net;
pub mod serial;
pub mod sim;
pub mod store;

pub use app::Auth;
pub use net::{FerryDevice, PORT};
pub use store::RamStore;
