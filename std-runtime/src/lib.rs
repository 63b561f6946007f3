//! Ferry's std runtime: the `ferry` server and client library, on
//! [`ferry_core`]. The sockets, files and processes live here; the protocol
//! lives in the core. The `ferry` binary's command line and interactive
//! shell (`src/bin/ferry/`) are glue over this API.
//!
//! Embedding a server:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry::FerryError> {
//! use ferry::server::{ListenAddr, ServeOptions, Server};
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

pub mod admission;
pub mod client;
pub mod error;
pub mod exec;
pub mod fsroot;
pub mod listing;
pub mod server;
pub mod session;
pub mod sums;
pub mod url;
pub mod users;
mod writer;

pub use client::{Client, ConnectOptions, TransferOptions};
pub use error::{exit, FerryError};
pub use server::{ListenAddr, ServeOptions, Server};
pub use url::FerryUrl;
