//! migrated-core: the "calls" layer shared by the daemon, the client and the drivers.
//!
//! It owns the libvirt error vocabulary ([`error`]), the domain XML model
//! ([`xml`]), typed parameters ([`typed_params`]), flag words ([`flags`]), the
//! values drivers hand back ([`domain`]), the [`driver::Driver`] trait with its
//! support tables ([`support`]), migration cookies and the migration job state
//! machines. It knows nothing about sockets or framing.

pub mod abi;
pub mod console;
pub mod cookie;
pub mod domain;
pub mod driver;
pub mod error;
pub mod event;
pub mod flags;
pub mod hotplug;
pub mod hvsupport;
pub mod job;
pub mod keycode;
pub mod migration;
pub mod qemu_monitor;
pub mod save_image;
pub mod savefile;
pub mod snapshot;
pub mod support;
pub mod sysinfo;
pub mod tune;
pub mod typed_params;
pub mod wire;
pub mod xml;

pub use error::{Error, Result};
