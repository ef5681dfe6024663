//! migrated-client: the "calls" layer seen from the client side.
//!
//! Opens a connection by libvirt URI ([`uri`]), performs libvirt's open
//! sequence over `migrated-rpc`, and offers typed calls on the connection
//! ([`Connection`]) and on domains ([`Domain`]). Values come back as
//! `migrated-core` types. It depends on `rpc`, `proto`, `xdr` and `core`,
//! never on the daemon or drivers.
//!
//! | module | holds |
//! |---|---|
//! | [`uri`] | [`ConnectUri`]: libvirt URI parsing, CONNECT_OPEN name, default URI |
//! | `transport` | URI → socket / TLS stream → `RpcClient` |
//! | [`connection`] | [`Connection`]: open/close sequence, generic typed [`Connection::call`], host calls, lookups |
//! | [`domain`] | [`Domain`]: per-guest calls (life cycle, info, XML, jobs, migration tuning) |
//! | [`error`] | [`Error`]: remote errors keep libvirt's code, domain and message |
//!
//! ```no_run
//! # async fn demo() -> migrated_client::Result<()> {
//! use migrated_client::{Connection, OpenFlags};
//! let conn = Connection::open("test+tcp://127.0.0.1:16509/default", OpenFlags::default()).await?;
//! let dom = conn.lookup_domain("guest").await?;
//! println!("{} is {:?}", dom.name(), dom.state().await?.state);
//! conn.close().await?;
//! # Ok(()) }
//! ```

pub mod connection;
pub mod domain;
pub mod error;
mod transport;
pub mod uri;

pub use connection::{Connection, OpenFlags};
pub use domain::{Domain, JobInfo};
pub use error::{Error, Result};
pub use migrated_rpc::ClientStream;
pub use uri::{Address, ConnectUri, Transport};
