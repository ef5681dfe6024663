//! `migrated-daemon`: the `migrated` binary's library half.
//!
//! Layer: binaries. It turns a configuration into listening sockets, hands
//! every connection to the rpc server (`migrated-rpc`), and answers each
//! remote-program call by calling a hypervisor driver (`migrated-core`'s
//! `Driver` trait). Map of the crate:
//!
//! - [`config`]: flags + TOML file → [`config::Config`];
//! - [`systemd`]: socket activation and sd_notify;
//! - [`reaper`]: child-subreaper duty for daemonized QEMU processes;
//! - [`error`]: set-up failures.

pub mod config;
pub mod error;
pub mod reaper;
pub mod systemd;

pub use error::{Error, Result};
