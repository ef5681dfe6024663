//! migrated-client: the "calls" layer seen from the client side.
//!
//! Opens a connection by libvirt URI ([`uri`]), performs libvirt's open
//! sequence over `migrated-rpc`, and offers typed calls on the connection
//! ([`Connection`]) and on domains ([`Domain`]). It depends on `rpc`, `proto`,
//! `xdr` and `core`, never on the daemon or drivers.
//!
//! | module | holds |
//! |---|---|
//! | [`uri`] | [`ConnectUri`]: libvirt URI parsing, CONNECT_OPEN name, default URI |
//! | [`transport`] | URI → socket / TLS stream → `RpcClient` (crate-private) |
//! | [`error`] | [`Error`]: remote errors keep libvirt's code, domain and message |

pub mod error;
mod transport;
pub mod uri;

pub use error::{Error, Result};
pub use uri::{Address, ConnectUri, Transport};
