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
//!   `refuse`, … (which [`app::Session`] calls for a server); body bytes go
//!   out with `send_with(|buf| (n, value))`, written straight into the
//!   output buffer (or copied with `send_body`). They queue output and return at once with a `Result`; a
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
//! ### Buffers
//!
//! Every buffer is the caller's (an array, a `Vec<u8>`, a `&mut [u8]`: any
//! [`Buffer`]), sized up front as in sunset and rustls; the core never
//! grows one, and a buffer too small to work says the size it needs:
//!
//! - A connection's **input buffer** holds one whole frame and bounds the
//!   largest frame the peer may send: at least [`MIN_INPUT_BUFFER`] bytes.
//!   Its **output buffer** holds the hello and one frame and bounds the
//!   largest frame sent: at least [`MIN_OUTPUT_BUFFER`] bytes. Larger
//!   buffers mean larger frames and fewer round trips.
//! - `Client::new` and `Server::new` refuse a shorter one with
//!   [`SetupError::InsufficientSize`]: an [`InsufficientSize`] naming the
//!   buffer ([`BufferKind`], the input buffer checked first) and the exact
//!   size that works (as rustls's `InsufficientSizeError { required_size }`).
//!   Every [`SetupError`] converts into [`Error::BadUsage`], so `?` works
//!   in code that only knows [`Error`].
//! - `poll_transmit(buf)` copies what fits in a buffer of any size and
//!   `handle_input` takes what fits in the input buffer: neither fails for
//!   size.
//! - The scratch buffer lent to [`app::Session::progress`] (and the
//!   drivers' `serve`) may be any size of one byte or more; larger is
//!   fewer reads. An empty one is [`Error::BadUsage`] at the first call.
//!
//! ```
//! use ferry_core::{BufferKind, Client, Config, Instant, InsufficientSize, SetupError,
//!                  MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER};
//!
//! let (now, config) = (Instant::ZERO, Config::default());
//! let r = Client::new(now, config, vec![0; 4096], vec![0; 1000]);
//! let Err(SetupError::InsufficientSize(short)) = r else { unreachable!() };
//! assert_eq!(short, InsufficientSize { buffer: BufferKind::Output, required: MIN_OUTPUT_BUFFER });
//! assert_eq!(short.to_string(), "output buffer too small: 1049 bytes needed");
//! // Exactly that much works.
//! let client = Client::new(now, config, vec![0; MIN_INPUT_BUFFER], vec![0; short.required]);
//! assert!(client.is_ok());
//! ```
//!
//! ## Serving: the `app` layer
//!
//! A server rarely answers events by hand. [`app::Session`] is the one
//! server application, over any [`app::Store`] (files, listings, commands,
//! users): it polls the server's events and answers them, hashes resumed
//! transfers' prefixes, and streams bodies, listings and command output.
//! Its pump replaces the event loop, in sunset's `Runner::progress` style:
//! after any input (`handle_input`, `handle_eof`, `handle_timeout`) call
//! `session.progress(&mut server, &mut store, scratch)` and do what it says:
//!
//! - [`app::Progress::Transmit`]: transmit everything queued, then call
//!   `progress` again (a get body streams this way);
//! - [`app::Progress::Wait`]: nothing moves until input arrives, the
//!   instant of `poll_timeout` comes (call `handle_timeout`), or the store
//!   has news of its own (a command's output);
//! - [`app::Progress::Closed`]: transmit what is left, close the socket.
//!
//! [`driver::blocking::serve`] and [`driver::asynch::serve`] are this loop
//! over an `embedded-io` transport.
//!
//! ## Example
//!
//! A client and a server wired together in memory, the server being a
//! one-file [`app::Store`] behind [`app::Session`]: anonymous login, a put,
//! the same put refused (the file exists), a get of the file back with its
//! digest verified, and the idle deadline closing the session.
//!
//! ```
//! use core::time::Duration;
//! use ferry_core::app::{Accepted, Progress, Session, Store};
//! use ferry_core::digest::{Algorithm, Sum};
//! use ferry_core::{Client, ClientEvent, Config, Error, Instant, Overwrite, Server,
//!                  ServerConfig};
//!
//! /// The server's "disk": one named file.
//! #[derive(Default)]
//! struct Disk { name: String, data: Vec<u8> }
//!
//! impl Store for Disk {
//!     type File = ();
//!     type Upload = (String, Vec<u8>);
//!     type Listing = ();
//!     type Exec = ();
//!     fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
//!         buf.fill(4); // a real server asks its RNG
//!         Ok(())
//!     }
//!     fn open(&mut self, path: &str) -> Result<((), u64), Error> {
//!         match path == self.name {
//!             true => Ok(((), self.data.len() as u64)),
//!             false => Err(Error::NotFound),
//!         }
//!     }
//!     // Straight into the connection's output buffer: no copy in between.
//!     fn read_at(&mut self, _: &mut (), at: u64, buf: &mut [u8]) -> Result<usize, Error> {
//!         let rest = &self.data[at as usize..];
//!         let n = rest.len().min(buf.len());
//!         buf[..n].copy_from_slice(&rest[..n]);
//!         Ok(n)
//!     }
//!     fn begin_upload(&mut self, path: &str, _size: u64, overwrite: Overwrite,
//!                     _resume: bool, _: Algorithm) -> Result<Accepted<Self::Upload>, Error> {
//!         if path == self.name && overwrite == Overwrite::Fail {
//!             return Err(Error::Exists); // refused before any body byte
//!         }
//!         Ok(Accepted { upload: (path.into(), Vec::new()), offset: 0, stored_as: None })
//!     }
//!     fn write(&mut self, up: &mut Self::Upload, data: &[u8]) -> Result<(), Error> {
//!         up.1.extend_from_slice(data);
//!         Ok(())
//!     }
//!     // Called only once the digest matched.
//!     fn commit(&mut self, (name, data): Self::Upload, _: Sum) -> Result<(), Error> {
//!         (self.name, self.data) = (name, data);
//!         Ok(())
//!     }
//! }
//!
//! let mut now = Instant::ZERO;
//! let server_cfg = ServerConfig { allow_anonymous: true, ..ServerConfig::new([7; 32]) };
//! // Caller-owned buffers: arrays here, `Vec<u8>` or `&mut [u8]` work too.
//! let mut client = Client::new(now, Config::default(), [0u8; 4096], [0u8; 4096])?;
//! let mut server = Server::new(now, server_cfg, [0u8; 4096], [0u8; 4096])?;
//! let (mut disk, mut session, mut scratch) = (Disk::default(), Session::new(), [0u8; 512]);
//!
//! let file = "床前明月光，疑是地上霜。".repeat(200).into_bytes();
//! let mut fetched: Vec<u8> = Vec::new(); // what the client got back
//! let (mut sent, mut step, mut verified) = (0, 0, 0);
//! let (mut refused, mut closed) = (None, None);
//! let mut wire = [0u8; 4096];
//!
//! for _ in 0..1000 {
//!     // Client → server; the session answers what came in.
//!     while let Some(n) = client.poll_transmit(&mut wire) {
//!         assert_eq!(server.handle_input(now, &wire[..n])?, n);
//!         if let Progress::Closed(e) = session.progress(&mut server, &mut disk, &mut scratch)? {
//!             closed = Some(e);
//!         }
//!     }
//!     // Transmit, then call again while it says so (a get body streams).
//!     loop {
//!         let next = session.progress(&mut server, &mut disk, &mut scratch)?;
//!         // Server → client.
//!         while let Some(n) = server.poll_transmit(&mut wire) {
//!             client.handle_input(now, &wire[..n])?;
//!             while let Some(event) = client.poll_event() {
//!                 match event {
//!                     ClientEvent::Connected(_) => client.login_anonymous()?,
//!                     ClientEvent::LoggedIn | ClientEvent::Accepted { .. } => {}
//!                     ClientEvent::Offer { .. } => client.accept(0)?,
//!                     ClientEvent::Data(bytes) => fetched.extend_from_slice(bytes),
//!                     ClientEvent::TransferEnd { verified: true, .. } => verified += 1,
//!                     ClientEvent::Failed(e) => refused = Some(e),
//!                     ClientEvent::Closed(e) => assert_eq!(e, Error::Timeout),
//!                     other => panic!("unexpected {other:?}"),
//!                 }
//!             }
//!         }
//!         match next {
//!             Progress::Transmit => continue,
//!             Progress::Wait => break,
//!             Progress::Closed(e) => {
//!                 closed = Some(e);
//!                 break;
//!             }
//!         }
//!     }
//!     if closed.is_some() {
//!         break;
//!     }
//!     // The client's script: put, the same put again, get; then silence.
//!     if client.is_idle() {
//!         step += 1;
//!         match step {
//!             1 | 2 => client.put("诗.txt", file.len() as u64, Overwrite::Fail, false)?,
//!             3 => client.get("诗.txt")?,
//!             4 => {} // the get's `Done` goes out
//!             _ => {
//!                 // Nobody speaks: at the idle deadline the server closes.
//!                 now = now + Duration::from_secs(300);
//!                 assert_eq!(server.poll_timeout(), Some(now));
//!                 server.handle_timeout(now);
//!             }
//!         }
//!     }
//!     // The client streams a put body as output room allows.
//!     sent += client.send_with(|buf| {
//!         let n = buf.len().min(file.len() - sent);
//!         buf[..n].copy_from_slice(&file[sent..sent + n]);
//!         (n, n)
//!     })?;
//! }
//! assert_eq!(verified, 2);
//! assert_eq!(refused, Some(Error::Exists));
//! assert_eq!(closed, Some(Error::Timeout));
//! assert!(server.is_closed());
//! assert_eq!(disk.data, file);
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
pub mod brief;
mod client;
mod config;
mod decode;
pub mod digest;
pub mod driver;
mod endpoint;
mod error;
pub mod link;
// Wire internals: the frame layout and the message enum. Public for the
// workspace's wire tests, benches and fuzz targets, not part of the API;
// what a driver needs of them is re-exported below.
#[doc(hidden)]
pub mod frame;
#[doc(hidden)]
pub mod message;
pub mod naming;
mod server;
mod setup;
mod time;
mod transfer;

#[cfg(test)]
mod tests;

pub use auth::Verifier;
pub use client::{Client, ClientRole, Event as ClientEvent};
pub use config::{Config, ServerConfig};
pub use endpoint::{Buffer, Endpoint, Negotiated, MIN_INPUT_BUFFER, MIN_OUTPUT_BUFFER};
pub use error::{Error, Result};
pub use message::{
    Entry, Kind, Name, Overwrite, Path, Request, Stream, Text, User, MAX_NAME, MAX_PATH, MAX_TEXT,
    MAX_USER, MIN_FRAME,
};
pub use server::{Event as ServerEvent, Server, ServerRole};
pub use setup::{BufferKind, InsufficientSize, SetupError};
pub use time::Instant;
