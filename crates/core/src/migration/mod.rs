//! The migration engine's calls-layer half: the one request type every wire
//! variant becomes ([`request`]), the driver-facing [`backend`] trait, the
//! per-daemon [`Manager`] that runs each step with its checks, journal and
//! cookies, the tunnelled stream's packets ([`tunnel`]), data-plane URIs ([`uri`]) and test pause points ([`fault`]).
//!
//! The sequencer that strings the steps together (client-managed or
//! peer-to-peer) lives in the client crate; the drivers' data planes live in
//! the driver crates.

pub mod backend;
pub mod fault;
pub mod manager;
pub mod request;
pub mod tunnel;
pub mod uri;

pub use backend::{
    check_no_managed_save, check_no_snapshots, managed_save_on_destination,
    resumes_after_migration, BeginOut, DataOut, Incoming, MigrationBackend, PerformOut, PrepareOut,
};
pub use fault::PausePoint;
pub use manager::{
    Begin3Out, Finish3Out, Manager, ManagerConfig, Prepare3Out, Recovered, DEFAULT_PORT_RANGE,
    DEFAULT_PREPARE_TIMEOUT,
};
pub use request::{MigrateRequest, Role, Step, COMPRESSION_METHODS};
pub use tunnel::{PacketPool, TunnelChunk, TunnelReader, TunnelWriter, TUNNEL_PACKET};
pub use uri::DataUri;
