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
//! - [`handler`]: the rpc `Dispatcher`: sessions and the per-call gate;
//! - [`dispatch`]: one `match` over the decoded call, by area;
//! - [`drivers`]: which URI opens which driver;
//! - [`listen`]: listeners from flags/file/systemd, TLS re-arming on SIGHUP;
//! - [`capabilities`]: the capabilities XML (host, migration features, guests);
//! - [`docs`]: the man page and completions (`--generate-docs`);
//! - [`metrics`]: the optional Prometheus endpoint;
//! - [`wire`]: every `remote_error` the daemon sends;
//! - [`error`]: set-up failures.

pub mod capabilities;
pub mod config;
pub mod dispatch;
pub mod docs;
pub mod drivers;
pub mod error;
pub mod handler;
pub mod listen;
pub mod metrics;
pub mod reaper;
pub mod systemd;
pub mod wire;

pub use error::{Error, Result};
