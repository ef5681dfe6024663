//! The hypervisor drivers this daemon serves, and which URI opens which.
//!
//! One instance per driver lives for the whole daemon and is shared by every
//! connection that opens its URI, as libvirtd shares its drivers.

use std::path::PathBuf;
use std::sync::Arc;

use migrated_core::driver::{Driver, HostIdentity};
use migrated_core::migration::{Manager, ManagerConfig, PausePoint};

use crate::config::{Config, DriverKind};
use crate::error::{Error, Result};

/// The URI of the test driver.
pub const TEST_URI: &str = "test:///default";
/// The URI of the QEMU driver.
pub const QEMU_URI: &str = "qemu:///system";

/// Enabled drivers, in the configured order (the first is the default for
/// an empty CONNECT_OPEN name).
#[derive(Clone, Default)]
pub struct DriverRegistry {
    drivers: Vec<(DriverKind, Arc<dyn Driver>)>,
    /// Migration managers of the drivers that can migrate.
    managers: Vec<(DriverKind, Arc<migrated_core::migration::Manager>)>,
    /// The test driver's memory checksum (reported by MIGRATION_STATUS so
    /// tests compare both sides of a migration).
    test_driver: Option<migrated_driver_test::TestDriver>,
    /// The QEMU driver, whose workload guests report their pass counter
    /// (MIGRATION_STATUS, so tests see a guest kept running).
    qemu_driver: Option<migrated_driver_qemu::QemuDriver>,
}

impl std::fmt::Debug for DriverRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<_> = self.drivers.iter().map(|(k, _)| *k).collect();
        f.debug_struct("DriverRegistry")
            .field("drivers", &kinds)
            .finish()
    }
}

impl DriverRegistry {
    /// A registry of already-built drivers (used by tests and by [`from_config`](Self::from_config)).
    pub fn new(drivers: Vec<(DriverKind, Arc<dyn Driver>)>) -> Self {
        DriverRegistry {
            drivers,
            managers: Vec::new(),
            test_driver: None,
            qemu_driver: None,
        }
    }

    /// Starts every driver the configuration enables (the QEMU driver also
    /// re-attaches to the guests it left running before a restart).
    ///
    /// # Errors
    /// [`Error::Driver`] when an enabled driver fails to start (e.g. its
    /// state directory is unreadable).
    pub async fn from_config(config: &Config) -> Result<Self> {
        let mut drivers: Vec<(DriverKind, Arc<dyn Driver>)> = Vec::new();
        let mut managers = Vec::new();
        let mut test_driver = None;
        let mut qemu_driver = None;
        for kind in &config.drivers {
            match kind {
                DriverKind::Test => {
                    let driver =
                        migrated_driver_test::TestDriver::new(&config.state_dir, host(config))
                            .map_err(|source| Error::Driver {
                                driver: "test",
                                source: Box::new(source),
                            })?;
                    tracing::info!(state_dir = %config.state_dir.display(), "test driver started");
                    let manager =
                        crate::dispatch::migration::test_driver_manager(config, driver.clone())
                            .map_err(|source| Error::Driver {
                                driver: "test",
                                source: Box::new(source),
                            })?;
                    manager.registry().set_max_jobs(config.max_jobs);
                    managers.push((DriverKind::Test, manager));
                    test_driver = Some(driver.clone());
                    drivers.push((DriverKind::Test, Arc::new(driver)));
                }
                DriverKind::Qemu => {
                    let mut qemu = migrated_driver_qemu::QemuConfig::new(
                        &config.state_dir,
                        &config.runtime_dir,
                    );
                    qemu.migration_tls = config.migration_tls.clone();
                    let driver = migrated_driver_qemu::QemuDriver::open(qemu, host(config))
                        .await
                        .map_err(|source| Error::Driver {
                            driver: "qemu",
                            source: Box::new(source),
                        })?;
                    tracing::info!("qemu driver started");
                    let manager =
                        qemu_manager(config, driver.clone()).map_err(|source| Error::Driver {
                            driver: "qemu",
                            source: Box::new(source),
                        })?;
                    manager.registry().set_max_jobs(config.max_jobs);
                    managers.push((DriverKind::Qemu, manager));
                    qemu_driver = Some(driver.clone());
                    drivers.push((DriverKind::Qemu, Arc::new(driver)));
                }
            }
        }
        Ok(DriverRegistry {
            drivers,
            managers,
            test_driver,
            qemu_driver,
        })
    }

    /// SHA-256 of a running test-driver guest's memory (hex), for tests.
    pub fn memory_checksum(&self, uri: &str, uuid: &uuid::Uuid) -> Option<String> {
        match kind_for_uri(uri)? {
            DriverKind::Test => Some(self.test_driver.as_ref()?.memory(uuid)?.checksum_hex()),
            DriverKind::Qemu => None,
        }
    }

    /// What MIGRATION_STATUS reports about a running guest's contents, for
    /// tests comparing both sides of a migration: `memory sha256 <hex>` for a
    /// test-driver guest, `workload counter <n>` for a QEMU guest running the
    /// project's workload kernel (read through QMP); `None` otherwise.
    pub async fn guest_detail(&self, uri: &str, uuid: &uuid::Uuid) -> Option<String> {
        match kind_for_uri(uri)? {
            DriverKind::Test => self
                .memory_checksum(uri, uuid)
                .map(|sum| format!("memory sha256 {sum}")),
            DriverKind::Qemu => {
                let driver = self.qemu_driver.as_ref()?;
                let dom = driver.lookup_by_uuid(uuid).await.ok()?;
                let qmp = driver.qmp(&dom).ok()?;
                let status = migrated_driver_qemu::workload::read_status(&qmp)
                    .await
                    .ok()?;
                Some(format!("workload counter {}", status.counter))
            }
        }
    }

    /// Every migration manager (one per driver that can migrate).
    pub fn managers(&self) -> impl Iterator<Item = &Arc<migrated_core::migration::Manager>> {
        self.managers.iter().map(|(_, m)| m)
    }

    /// The migration manager of the driver serving `uri` (a canonical URI
    /// from [`resolve`](Self::resolve)), if that driver can migrate.
    pub fn manager(&self, uri: &str) -> Option<Arc<migrated_core::migration::Manager>> {
        let kind = kind_for_uri(uri)?;
        self.managers
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| m.clone())
    }

    /// The driver for a CONNECT_OPEN name and its canonical URI; `None` or
    /// `""` picks the first enabled driver.
    pub fn resolve(&self, name: Option<&str>) -> Option<(Arc<dyn Driver>, &'static str)> {
        let wanted = match name.map(str::trim) {
            None | Some("") => self.drivers.first().map(|(kind, _)| *kind)?,
            Some(uri) => kind_for_uri(uri)?,
        };
        self.drivers
            .iter()
            .find(|(kind, _)| *kind == wanted)
            .map(|(kind, driver)| (driver.clone(), uri_of(*kind)))
    }
}

/// Where the QEMU driver's migration manager keeps its journal (and where a
/// test build looks for its `pause-at` request): a directory of its own, so
/// that with both drivers enabled neither manager's recovery sees, and
/// discards, the other's journalled jobs.
pub fn qemu_migration_dir(config: &Config) -> PathBuf {
    config.state_dir.join("qemu")
}

/// The QEMU driver's migration manager: QEMU-native migration through
/// [`QemuBackend`](migrated_driver_qemu::backend::QemuBackend), data
/// listeners on the configured port range and address. Inside a runtime it
/// also starts recovering the jobs journalled before a restart (after the
/// driver has re-attached to its guests, so recovery sees them).
///
/// # Errors
/// The manager's error when its journal directory cannot be created, or an
/// unknown `MIGRATED_PAUSE_AT` point.
pub fn qemu_manager(
    config: &Config,
    driver: migrated_driver_qemu::QemuDriver,
) -> migrated_core::Result<Arc<Manager>> {
    let mc = manager_config(config, qemu_migration_dir(config))?;
    let backend = migrated_driver_qemu::backend::QemuBackend::new(driver);
    let manager = Arc::new(Manager::new(mc, Arc::new(backend))?);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let m = manager.clone();
        rt.spawn(async move {
            match m.recover().await {
                Ok(done) => {
                    for r in done {
                        tracing::warn!(dom = %r.entry.name, job_id = %r.entry.job_id, action = ?r.action, "qemu migration job recovered");
                    }
                }
                Err(e) => tracing::error!(error = %e, "qemu migration recovery failed"),
            }
        });
    }
    Ok(manager)
}

/// The migration manager settings both drivers share (data ports, listen
/// address, Prepare timeout, test pause point), with the journal in `dir`.
pub(crate) fn manager_config(
    config: &Config,
    dir: impl Into<std::path::PathBuf>,
) -> migrated_core::Result<ManagerConfig> {
    let mut mc = ManagerConfig::new(dir, host(config));
    mc.port_range = config.migration_ports.first..=config.migration_ports.last;
    if let Some(addr) = config.migration_address {
        mc.listen_address = addr.to_string();
    }
    mc.prepare_timeout = crate::config::prepare_timeout(config);
    mc.pause_at = PausePoint::from_env()?;
    Ok(mc)
}

fn host(config: &Config) -> HostIdentity {
    HostIdentity {
        hostname: config.hostname.clone(),
        uuid: config.host_uuid,
    }
}

fn kind_for_uri(uri: &str) -> Option<DriverKind> {
    // libvirt accepts a trailing slash-less form too ("test:///default/" is not).
    // Query parameters the client library did not consume reach the driver,
    // which, as libvirt's, decides by scheme and path alone.
    let uri = uri.split_once('?').map_or(uri, |(base, _)| base);
    match uri {
        TEST_URI => Some(DriverKind::Test),
        QEMU_URI => Some(DriverKind::Qemu),
        _ => None,
    }
}

fn uri_of(kind: DriverKind) -> &'static str {
    match kind {
        DriverKind::Test => TEST_URI,
        DriverKind::Qemu => QEMU_URI,
    }
}

#[cfg(test)]
mod tests {
    use migrated_core::support::{MigrationDefaults, SupportTable};

    use super::*;

    static FAKE: SupportTable = SupportTable {
        driver: "Fake",
        error_domain: migrated_core::error::ErrorDomain::Domain,
        procedures: &[],
        migration_flags: 0,
        migration_params: &[],
        defaults: MigrationDefaults { flags: 0 },
        qemu_procedures: &[],
        device_stats: false,
    };

    struct Fake;

    impl Driver for Fake {
        fn support(&self) -> &'static SupportTable {
            &FAKE
        }
    }

    #[test]
    fn uris_resolve_only_to_enabled_drivers() {
        let registry =
            DriverRegistry::new(vec![(DriverKind::Test, Arc::new(Fake) as Arc<dyn Driver>)]);
        assert_eq!(
            registry.resolve(Some("test:///default")).map(|r| r.1),
            Some(TEST_URI)
        );
        assert_eq!(
            registry
                .resolve(Some("test:///default?foo=bar"))
                .map(|r| r.1),
            Some(TEST_URI),
            "parameters the client passed on are ignored, as by libvirt's drivers"
        );
        assert_eq!(registry.resolve(None).map(|r| r.1), Some(TEST_URI));
        assert_eq!(registry.resolve(Some("")).map(|r| r.1), Some(TEST_URI));
        assert!(registry.resolve(Some("qemu:///system")).is_none());
        assert!(registry.resolve(Some("xen:///")).is_none());
        assert!(DriverRegistry::default().resolve(None).is_none());
    }
}
