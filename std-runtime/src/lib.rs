//! Ferry's std runtime: the `ferry` server and client library, on
//! [`ferry_core`]. The sockets, files and processes live here; the protocol
//! lives in the core. The `ferry` binary's command line and interactive
//! shell (`src/bin/ferry/`) are glue over this API.
//!
//! Embedding a server:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry::FerryError> {
//! use ferry::{ListenAddr, ServeOptions, Server};
//! let opts = ServeOptions {
//!     root: "/srv/files".into(),
//!     listen: vec![ListenAddr::parse("127.0.0.1:7070")?],
//!     anonymous: true,
//!     ..ServeOptions::default()
//! };
//! let server = Server::bind(opts).await?;
//! println!("listening on {:?}", server.addresses());
//! server.run().await
//! # }
//! ```
//!
//! Embedding a client:
//!
//! ```no_run
//! # fn demo() -> Result<(), ferry::FerryError> {
//! use ferry::{Client, FerryUrl};
//! let url = FerryUrl::parse("ferry://alice@127.0.0.1:7070/docs/report.pdf")?;
//! let mut client = Client::connect(&url, None)?;
//! client.login(url.user.as_deref(), Some("secret"))?;
//! let size = client.get_file(&url.path, "report.pdf".as_ref(), &Default::default())?;
//! println!("{size} bytes, MD5 verified");
//! # Ok(()) }
//! ```

// The API: the root's re-exports, the admission limits a server takes, the
// URL form, and the users file. Everything else is the implementation.
pub mod admission;
mod budget;
mod client;
mod error;
mod exec;
mod fsroot;
mod kept_digests;
mod listing;
mod mapping;
mod objstore;
mod sendfile;
mod serial;
mod server;
mod session;
pub mod url;
pub mod users;
mod writer;

pub use client::{Client, ConnectOptions, GetItem, LongEntry, PutItem, TransferOptions};
pub use error::{exit, FerryError};
pub use exec::ExecLimits;
pub use sendfile::SendFile;
pub use serial::SerialStream;
pub use server::{ListenAddr, ServeOptions, Server};
pub use url::FerryUrl;
