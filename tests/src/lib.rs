//! `migrated-tests`: the integration-test harness.
//!
//! Tests spawn the real `migrated` binary ([`Daemon`]) on loopback with free
//! ports and temporary directories, then drive it with stock clients
//! ([`virsh`], [`python`]) or with hand-written wire bytes ([`raw`]), which
//! are deliberately independent of our own encoder so a bug there cannot hide
//! itself.
//!
//! Tests needing `virsh` or python3-libvirt call [`require_binary`] /
//! [`require_python_libvirt`]: locally a missing tool prints a loud
//! `SKIPPED: ...` and the test returns early; with `CI` set it fails.

pub mod clients;
pub mod daemon;
pub mod fault;
pub mod raw;
pub mod wait;

pub use clients::{
    python, require_binary, require_python_libvirt, run_with_timeout, virsh, Pki, VirshEvents,
};
pub use daemon::{
    free_port, migratectl_binary, migrated_binary, random_uuid, Daemon, DaemonBuilder,
};
pub use wait::wait_until;
