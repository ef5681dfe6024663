//! migrated-driver-qemu: real guests run by QEMU, driven over QMP.
//!
//! Layer: a driver (see `docs/architecture.md`); it implements core's
//! `Driver` trait and never sees the wire. The parts, bottom up:
//!
//! - [`qmp`]: an async QMP client (bounded reads, ids, events, fd passing);
//! - [`command`]: the QEMU command line for a guest ([`command::LaunchSpec`]);
//! - [`process`]: spawning QEMU, watching it exit through a pidfd, and
//!   re-attaching to it after a daemon restart;
//! - [`spec`]: from a domain definition to a launch spec;
//! - [`driver`]: [`QemuDriver`], the lifecycle over all of the above, with
//!   persistent configs, [`status`] files and re-attach after a restart;
//! - [`migration`]: QEMU-side migration steps over QMP (events, waiting for
//!   completion), shared by save/restore and live migration;
//! - [`savefile`]: the header of `virsh save` images (save/restore itself is
//!   part of [`QemuDriver`]);
//! - [`backend`]: [`backend::QemuBackend`], core's `MigrationBackend`
//!   (Prepare/Perform/Finish/Confirm over QEMU migration, direct or
//!   tunnelled), with [`relay`] for the tunnel's local descriptors and
//!   `memlock` for the locked-memory limit a zero-copy migration needs;
//! - [`tls`]: QEMU-native TLS on the migration stream (`VIR_MIGRATE_TLS`);
//! - [`workload`]: the project's own tiny guest kernel (built from
//!   `guest/` by `build.rs`) and how to read its counter;
//! - [`support`]: what the driver declares it implements ([`SUPPORT`]).
//!
//! Errors are this crate's [`Error`] below the driver and core's error
//! (libvirt codes) at the `Driver`/`MigrationBackend` surface
//! ([`Error::into_core`]).

pub mod backend;
pub mod command;
pub mod driver;
pub mod error;
mod files;
mod memlock;
pub mod migration;
pub mod process;
pub mod qmp;
mod relay;
pub mod savefile;
pub mod spec;
pub mod status;
pub mod storage_migration;
mod store;
pub mod support;
pub mod tls;
pub mod workload;

pub use driver::{QemuConfig, QemuDriver, URI};
pub use error::{Error, Result};
pub use support::SUPPORT;
