//! # ferry-core
//!
//! The whole Ferry protocol as two sans-IO state machines, [`Client`] and
//! [`Server`]: `#![no_std]`, no allocation, no unsafe. The core never touches
//! a socket, a clock, a file or an RNG; its driver feeds bytes, time and
//! randomness in, and takes bytes and events out. The same code runs in the
//! tokio server, on a microcontroller over smoltcp, and in tests wired
//! back-to-back in memory. Wire format: `docs/PROTOCOL.md`.
//!
//! DRIVING_CONTRACT
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unused_must_use)]

#[cfg(test)]
extern crate std;

pub mod auth;
mod client;
mod config;
mod conn;
pub mod digest;
mod error;
pub mod frame;
pub mod message;
mod server;
mod time;
mod transfer;

#[cfg(test)]
mod tests;

pub use auth::Verifier;
pub use client::{Client, Event as ClientEvent};
pub use config::{Config, ServerConfig};
pub use conn::{Buffer, Negotiated, MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER};
pub use error::{Error, Result};
pub use message::{Entry, Kind, Overwrite, Request, Stream};
pub use server::{Event as ServerEvent, Server};
pub use time::Instant;
