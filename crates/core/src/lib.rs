//! migrated-core: the "calls" layer shared by the daemon, the client and the drivers.
//!
//! It owns the libvirt error vocabulary, the domain XML model, typed parameters,
//! migration flags, the `Driver` trait with its support tables, migration cookies
//! and the migration job state machines. It knows nothing about sockets or framing.

pub mod abi;
pub mod driver;
pub mod error;
pub mod flags;
pub mod support;
pub mod typed_params;
pub mod xml;

pub use error::{Error, Result};
