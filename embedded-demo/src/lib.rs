//! Ferry on a microcontroller-class device: ferry-core's server bound to
//! smoltcp sockets and a fixed-capacity RAM file store. Issue #5 fills this
//! crate.
#![no_std]
#![forbid(unsafe_code)]

pub use ferry_core as core;
