//! # ferry-core
//!
//! The whole Ferry protocol as two sans-IO state machines, [`Client`] and
//! [`Server`]: `#![no_std]`, no allocation, no unsafe. The core never touches
//! a socket, a clock, a file or an RNG; its driver feeds bytes, time and
//! randomness in, and takes bytes and events out. The same code runs in the
//! tokio server, on a microcontroller over smoltcp, and in tests wired
//! back-to-back in memory. Wire format: `docs/PROTOCOL.md`.
//!
//! ## The driving contract
//!
//! Methods fall into four groups (as in quinn-proto's `Connection`):
//!
//! - **Getters** — `negotiated`, `is_idle`, `is_closed`, `remaining`: no
//!   side effects.
//! - **Inputs** — `handle_input(now, bytes) -> consumed` (or the copy-free
//!   `input_buf` + `input_filled`), `handle_eof`, `handle_timeout(now)`.
//!   `now` must never go backwards. `handle_input` may take fewer bytes than
//!   offered when the input buffer is full: drain events, then offer the rest.
//! - **Commands and replies** — the client's `login`, `get`, `put`, `list`,
//!   `exec`, … and the server's `offer`, `accept_put`, `list_entry`,
//!   `refuse`, …; body bytes go out with `send_buffer` + `commit_send` (or
//!   `send_body`). They queue output and return at once with a `Result`; a
//!   call in the wrong state is [`Error::BadUsage`], a full output buffer is
//!   [`Error::BufferFull`] (transmit, then retry).
//! - **Outputs** — `poll_event`, `poll_transmit` (or the copy-free
//!   `transmit_buf` + `transmit_done`), `poll_timeout`.
//!
//! After **any** input, command or reply, the driver drains every output:
//! `poll_event` until `None` (answering events that ask for a reply before
//! polling the next one), then `poll_transmit` until `None`, then reads
//! `poll_timeout` and waits for input or that instant. When a reply has
//! freed output room the server resumes taking input, so poll events again
//! after transmitting. Once a `Closed` event came out and `is_closed()` is
//! true, the driver closes the socket.
//!
//! Body bytes arrive as `Event::Data(&[u8])` borrowed from the connection's
//! input buffer — the buffer the driver handed in — valid until the next
//! call. Frames are delivered whole, so however the stream is split (one
//! byte per read, or many frames in one read) the events are the same.
//!
//! ## Example
//!
//! A client and a server wired together in memory: anonymous login, a put,
//! and a get of the same file back with its MD5 verified.
//!
//! ```
//! use ferry_core::{Client, ClientEvent, Config, Instant, Overwrite, Request, Server,
//!                  ServerConfig, ServerEvent};
//!
//! let now = Instant::ZERO;
//! let server_cfg = ServerConfig { allow_anonymous: true, ..ServerConfig::default() };
//! // Caller-owned buffers: arrays here, `Vec<u8>` or `&mut [u8]` work too.
//! let mut client = Client::new(now, Config::default(), [0u8; 4096], [0u8; 4096])?;
//! let mut server = Server::new(now, server_cfg, [0u8; 4096], [0u8; 4096])?;
//!
//! let file = "床前明月光，疑是地上霜。".repeat(200).into_bytes();
//! let mut stored: Vec<u8> = Vec::new(); // the server's "disk"
//! let mut fetched: Vec<u8> = Vec::new(); // what the client got back
//! let (mut sent, mut served) = (0, None::<usize>);
//! let (mut step, mut verified) = (0, 0);
//! let mut wire = [0u8; 4096];
//!
//! for _ in 0..1000 {
//!     // Client → server.
//!     while let Some(n) = client.poll_transmit(&mut wire) {
//!         let taken = server.handle_input(now, &wire[..n])?;
//!         assert_eq!(taken, n);
//!         while let Some(event) = server.poll_event() {
//!             match event {
//!                 ServerEvent::Request(Request::Put { .. }) => server.accept_put(0, None)?,
//!                 ServerEvent::Data(bytes) => stored.extend_from_slice(bytes),
//!                 ServerEvent::PutEnd { verified: true, .. } => server.finish_put()?,
//!                 ServerEvent::Request(Request::Get { .. }) => server.offer(stored.len() as u64)?,
//!                 ServerEvent::SendBody { offset } => served = Some(offset as usize),
//!                 _ => {}
//!             }
//!         }
//!     }
//!     // The server streams a get body as output room allows.
//!     if let Some(pos) = served.as_mut() {
//!         let buf = server.send_buffer();
//!         let n = buf.len().min(stored.len() - *pos);
//!         buf[..n].copy_from_slice(&stored[*pos..*pos + n]);
//!         server.commit_send(n)?;
//!         *pos += n;
//!     }
//!     // Server → client.
//!     while let Some(n) = server.poll_transmit(&mut wire) {
//!         client.handle_input(now, &wire[..n])?;
//!         while let Some(event) = client.poll_event() {
//!             match event {
//!                 ClientEvent::Connected(_) => client.login_anonymous()?,
//!                 ClientEvent::LoggedIn | ClientEvent::Accepted { .. } => {}
//!                 ClientEvent::Offer { .. } => client.accept(0)?,
//!                 ClientEvent::Data(bytes) => fetched.extend_from_slice(bytes),
//!                 ClientEvent::TransferEnd { verified: true, .. } => verified += 1,
//!                 other => panic!("unexpected {other:?}"),
//!             }
//!         }
//!     }
//!     // The client's script: put, then get.
//!     if client.is_idle() {
//!         step += 1;
//!         match step {
//!             1 => client.put("诗.txt", file.len() as u64, Overwrite::Fail, false)?,
//!             2 => client.get("诗.txt")?,
//!             _ => break,
//!         }
//!     }
//!     let buf = client.send_buffer();
//!     let n = buf.len().min(file.len() - sent);
//!     if n > 0 {
//!         buf[..n].copy_from_slice(&file[sent..sent + n]);
//!         client.commit_send(n)?;
//!         sent += n;
//!     }
//! }
//! assert_eq!(verified, 2);
//! assert_eq!(stored, file);
//! assert_eq!(fetched, file);
//! # Ok::<(), ferry_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unused_must_use)]
// Without a heap there is nothing to box large variants into; events and
// states are short-lived values sized by the protocol's bounds.
#![allow(clippy::large_enum_variant)]

#[cfg(test)]
extern crate std;

pub mod app;
pub mod auth;
mod client;
mod config;
mod conn;
pub mod digest;
pub mod driver;
mod error;
pub mod frame;
pub mod message;
pub mod naming;
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
pub use message::{Entry, Kind, Overwrite, Path, Request, Stream};
pub use server::{Event as ServerEvent, Server};
pub use time::Instant;
