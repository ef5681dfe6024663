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
//! | [`endpoint`] | [`Endpoint`]: one side of a migration; [`RemoteEndpoint`] over a connection |
//! | [`sequencer`] | [`sequencer::migrate`]: the five migration steps and the failure rule, once |
//! | [`migrate_tunnel`] | [`TunnelSink`]: the source end of a tunnelled migration stream |
//! | `migrate` | [`Domain::migrate`] (managed) and [`Domain::migrate_to_uri`] (peer-to-peer) |
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
pub mod endpoint;
pub mod error;
mod migrate;
pub mod migrate_tunnel;
pub mod sequencer;
mod transport;
pub mod uri;

pub use connection::{Connection, OpenFlags};
pub use domain::{Domain, JobInfo};
pub use endpoint::{DataTarget, Endpoint, Protocol, RemoteEndpoint};
pub use error::{Error, Result};
pub use migrate_tunnel::{TunnelPump, TunnelSink};
pub use migrated_rpc::ClientStream;
pub use uri::{Address, ConnectUri, Transport};
