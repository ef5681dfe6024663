//! Daemon configuration: the command line, the TOML file, and their merge.
//!
//! Every key of `/etc/migrated/migrated.toml` is also a flag with the same name
//! (underscores become dashes). Precedence is flag > file > built-in default.
//! A missing *default* config file is fine; a missing file named with
//! `--config` is an error, because the operator asked for it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use serde::Deserialize;
use uuid::Uuid;

use migrated_driver_qemu::tls::MigrationTls;

use crate::error::{Error, Result};

/// Where the configuration file is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/migrated/migrated.toml";
/// Default of `max_client_outbound_bytes`: 64 MiB of unsent replies/events.
pub const DEFAULT_MAX_CLIENT_OUTBOUND_BYTES: usize = 64 * 1024 * 1024;
/// Default of `max_client_queued_requests`: calls waiting beyond the ones in flight.
pub const DEFAULT_MAX_CLIENT_QUEUED_REQUESTS: usize = 32;
/// Default of `handshake_timeout`, seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u32 = 30;
/// libvirt's plain TCP port.
pub const DEFAULT_TCP_PORT: u16 = 16509;
/// libvirt's TLS port.
pub const DEFAULT_TLS_PORT: u16 = 16514;

const LONG_ABOUT: &str = "\
migrated: a live-migration daemon that speaks libvirt's remote protocol, so stock
virsh and python3-libvirt can drive it.

Every option can also be set in the TOML config file (key = option name with
underscores, e.g. `state_dir = \"/srv/migrated\"`). A flag beats the file, the
file beats the built-in default.

Listen addresses (repeat --listen for several):
  tcp://127.0.0.1:16509            plain TCP (no encryption, no authentication)
  tls://0.0.0.0:16514              TLS, client certificate required
  unix:/run/migrated/migrated-sock         local read-write socket (mode 0600)
  unix-ro:/run/migrated/migrated-sock-ro   local read-only socket (mode 0666)
  unix:PATH?mode=0660&readonly=1   local socket with explicit mode / read-only flag
Without --listen (and without socket activation) the daemon listens on the two
local sockets in the runtime directory. Under systemd socket activation the
sockets passed in LISTEN_FDS are used, named by FileDescriptorName=
(rw, ro, tcp, tls).

Examples:
  # a lab host reachable by `virsh -c test+tcp://127.0.0.1:16509/default`
  migrated --listen tcp://127.0.0.1:16509 --drivers test

  # a second daemon on the same machine (its own port, dirs and host UUID)
  migrated --listen tcp://127.0.0.1:16609 --state-dir /tmp/b/state \\
      --runtime-dir /tmp/b/run --host-uuid 2f0d5a1e-6c1b-4a8e-9d1f-0b1c2d3e4f50

  # production: TLS with libvirt's certificate layout, only one admin DN
  migrated --listen tls://0.0.0.0:16514 --tls-allowed-dn 'C=GB,O=Example,CN=*'

Migration data: `virsh migrate --tls` has the two QEMUs encrypt the stream
with the files of --migrate-tls-x509-cert-dir (qemu.conf's
migrate_tls_x509_cert_dir layout: ca-cert.pem, server-cert.pem, server-key.pem,
client-cert.pem, client-key.pem; default /etc/pki/qemu), each side verifying
the other's certificate unless --migrate-tls-x509-verify false.

Environment: MIGRATED_LOG overrides --log-filter (tracing EnvFilter syntax,
e.g. MIGRATED_LOG=migrated=debug,migrated_rpc=trace).
Signals: SIGTERM/SIGINT stop gracefully (running calls finish, then exit 0);
SIGHUP re-reads the config file and applies the log filter, the TLS files and
the allowed-DN list (other changes need a restart).";

/// Command-line flags of `migrated`; every flag is optional so the merge can
/// tell "not given" from "given with the default value".
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "migrated", version, about = "live-migration daemon speaking libvirt's remote protocol", long_about = LONG_ABOUT)]
pub struct Args {
    /// Config file (TOML); default /etc/migrated/migrated.toml, ignored when missing.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (repeatable): tcp://IP:PORT, tls://IP:PORT, unix:PATH, unix-ro:PATH.
    #[arg(long = "listen", value_name = "URL")]
    pub listen: Vec<Listen>,
    /// Directory for persistent state (domain configs, migration journal) [default: /var/lib/migrated].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory for runtime files (sockets, QMP sockets, pid files) [default: /run/migrated].
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// This host's UUID (default: /etc/machine-id, else SMBIOS product_uuid).
    #[arg(long, value_name = "UUID")]
    pub host_uuid: Option<Uuid>,
    /// Host name reported to clients (default: the kernel's host name).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Hypervisor drivers to enable, comma separated; the first is the default for an empty URI [default: test,qemu].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub drivers: Option<Vec<DriverKind>>,
    /// Maximum number of concurrent client connections [default: 5000].
    #[arg(long, value_name = "N")]
    pub max_clients: Option<usize>,
    /// Maximum number of connections still in their TLS handshake [default: 20].
    #[arg(long, value_name = "N")]
    pub max_anonymous_clients: Option<usize>,
    /// Maximum calls in flight per client connection [default: 5].
    #[arg(long, value_name = "N")]
    pub max_client_requests: Option<usize>,
    /// Calls per client waiting for a slot beyond max_client_requests; when full the daemon
    /// stops reading that client's socket until a call ends [default: 32].
    #[arg(long, value_name = "N")]
    pub max_client_queued_requests: Option<usize>,
    /// Seconds a new TLS connection has to finish its handshake before it is closed [default: 30].
    #[arg(long, value_name = "SECS")]
    pub handshake_timeout: Option<u32>,
    /// Maximum concurrent migration jobs [default: 16].
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<usize>,
    /// Unsent reply/event bytes per client before it is disconnected as a slow reader [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_client_outbound_bytes: Option<usize>,
    /// Seconds of silence before the daemon pings a client that asked for keepalive, 0 = never [default: 5].
    #[arg(long, value_name = "SECS")]
    pub keepalive_interval: Option<u32>,
    /// Unanswered pings after which a client is disconnected [default: 5].
    #[arg(long, value_name = "N")]
    pub keepalive_count: Option<u32>,
    /// Server certificate (PEM) [default: /etc/pki/libvirt/servercert.pem].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) [default: /etc/pki/libvirt/private/serverkey.pem].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate that client certificates must chain to (PEM) [default: /etc/pki/CA/cacert.pem].
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Glob a client certificate's subject DN must match (repeatable; not given = any;
    /// `tls_allowed_dn = []` in the file = nobody).
    #[arg(long = "tls-allowed-dn", value_name = "GLOB")]
    pub tls_allowed_dn: Vec<String>,
    /// Log filter in tracing EnvFilter syntax; env MIGRATED_LOG overrides [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Port range for incoming migration data, FIRST-LAST [default: 49152-49215].
    #[arg(long, value_name = "FIRST-LAST")]
    pub migration_ports: Option<PortRange>,
    /// Address the destination binds for incoming migration data.
    #[arg(long, value_name = "IP")]
    pub migration_address: Option<IpAddr>,
    /// Seconds a prepared incoming migration may wait for Finish3 without
    /// receiving data before it is cancelled as abandoned; 0 = never [default: 300].
    #[arg(long, value_name = "SECS")]
    pub migration_prepare_timeout_secs: Option<u64>,
    /// Serve Prometheus metrics over HTTP at IP:PORT, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the QEMU migration TLS credentials used by `virsh migrate --tls`
    /// (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem)
    /// [default: /etc/pki/qemu].
    #[arg(long, value_name = "DIR")]
    pub migrate_tls_x509_cert_dir: Option<PathBuf>,
    /// Whether migration TLS peers must present a certificate from the CA [default: true].
    #[arg(long, value_name = "BOOL")]
    pub migrate_tls_x509_verify: Option<bool>,
}

/// The TOML file: the same keys as [`Args`], snake_case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listen: Vec<Listen>,
    state_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    host_uuid: Option<Uuid>,
    hostname: Option<String>,
    drivers: Option<Vec<DriverKind>>,
    max_clients: Option<usize>,
    max_anonymous_clients: Option<usize>,
    max_client_requests: Option<usize>,
    max_client_queued_requests: Option<usize>,
    handshake_timeout: Option<u32>,
    max_jobs: Option<usize>,
    max_client_outbound_bytes: Option<usize>,
    keepalive_interval: Option<u32>,
    keepalive_count: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    /// `None` (key absent) = any valid certificate; `Some([])` = nobody.
    tls_allowed_dn: Option<Vec<String>>,
    log_filter: Option<String>,
    migration_ports: Option<PortRange>,
    migration_address: Option<IpAddr>,
    migration_prepare_timeout_secs: Option<u64>,
    metrics_listen: Option<SocketAddr>,
    migrate_tls_x509_cert_dir: Option<PathBuf>,
    migrate_tls_x509_verify: Option<bool>,
}

/// A hypervisor driver the daemon can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// `test:///default`: in-process guests.
    Test,
    /// `qemu:///system`: QEMU guests.
    Qemu,
}

/// One listening address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Listen {
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TLS over TCP.
    Tls(SocketAddr),
    /// A local socket.
    Unix(UnixListen),
}

/// A local (UNIX domain) listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListen {
    /// Socket path.
    pub path: PathBuf,
    /// Connections through this socket may only call read-only procedures.
    pub readonly: bool,
    /// File mode of the socket (e.g. 0o600).
    pub mode: u32,
}

/// Default mode of the read-write socket: root only, like libvirt's.
pub const UNIX_RW_MODE: u32 = 0o600;
/// Default mode of the read-only socket: everyone may look.
pub const UNIX_RO_MODE: u32 = 0o666;

impl FromStr for Listen {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: &'static str| Error::ListenSpec {
            spec: spec.to_owned(),
            reason,
        };
        if let Some(rest) = spec.strip_prefix("tcp://") {
            return parse_socket_addr(rest, DEFAULT_TCP_PORT)
                .map(Listen::Tcp)
                .ok_or_else(|| bad("expected tcp://IP[:PORT]"));
        }
        if let Some(rest) = spec.strip_prefix("tls://") {
            return parse_socket_addr(rest, DEFAULT_TLS_PORT)
                .map(Listen::Tls)
                .ok_or_else(|| bad("expected tls://IP[:PORT]"));
        }
        let (readonly, rest) = if let Some(rest) = spec.strip_prefix("unix-ro:") {
            (true, rest)
        } else if let Some(rest) = spec.strip_prefix("unix:") {
            (false, rest)
        } else {
            return Err(bad("scheme must be tcp://, tls://, unix: or unix-ro:"));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(bad("missing socket path"));
        }
        let mut unix = UnixListen {
            path: PathBuf::from(path),
            readonly,
            mode: if readonly { UNIX_RO_MODE } else { UNIX_RW_MODE },
        };
        let mut mode_given = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("mode", value)) => {
                    unix.mode = u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| bad("mode must be octal, e.g. mode=0660"))?;
                    mode_given = true;
                }
                Some(("readonly", "1" | "yes" | "true")) => unix.readonly = true,
                Some(("readonly", "0" | "no" | "false")) => unix.readonly = false,
                _ => return Err(bad("unknown query; expected mode=OCTAL or readonly=0|1")),
            }
        }
        if unix.readonly && !mode_given {
            unix.mode = UNIX_RO_MODE;
        }
        Ok(Listen::Unix(unix))
    }
}

impl TryFrom<String> for Listen {
    type Error = Error;

    fn try_from(spec: String) -> Result<Self> {
        spec.parse()
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "tcp://{addr}"),
            Listen::Tls(addr) => write!(f, "tls://{addr}"),
            Listen::Unix(u) => write!(
                f,
                "unix:{}?mode={:04o}&readonly={}",
                u.path.display(),
                u.mode,
                u8::from(u.readonly)
            ),
        }
    }
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`; host names are refused on purpose so the
/// daemon never depends on name resolution at start-up.
fn parse_socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// An inclusive port range, written `FIRST-LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::PortRange(text.to_owned());
        let (first, last) = text.split_once('-').ok_or_else(bad)?;
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl TryFrom<String> for PortRange {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

/// TLS file locations and the client-DN policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM) [default: /etc/pki/libvirt/private/serverkey.pem].
    pub key: PathBuf,
    /// CA bundle for client certificates (PEM).
    pub ca: PathBuf,
    /// Globs the client subject DN must match: `None` = any certificate from
    /// the CA, an empty list = nobody (libvirt's `tls_allowed_dn_list` semantics).
    pub allowed_dn: Option<Vec<String>>,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file the configuration was read from, if any (SIGHUP re-reads it).
    pub source: Option<PathBuf>,
    /// Listening addresses given by flag or file; empty = socket activation or defaults.
    pub listen: Vec<Listen>,
    /// Persistent state directory.
    pub state_dir: PathBuf,
    /// Runtime directory.
    pub runtime_dir: PathBuf,
    /// This host's UUID.
    pub host_uuid: Uuid,
    /// Host name reported by CONNECT_GET_HOSTNAME.
    pub hostname: String,
    /// Enabled drivers, in the order given.
    pub drivers: Vec<DriverKind>,
    /// Global connection limit.
    pub max_clients: usize,
    /// Connections still in their TLS handshake.
    pub max_anonymous_clients: usize,
    /// Calls in flight per connection.
    pub max_client_requests: usize,
    /// Calls per connection waiting for a slot before the socket is not read.
    pub max_client_queued_requests: usize,
    /// Seconds allowed for a TLS handshake.
    pub handshake_timeout: u32,
    /// Concurrent migration jobs.
    pub max_jobs: usize,
    /// Unsent bytes per connection before a slow reader is disconnected.
    pub max_client_outbound_bytes: usize,
    /// Keepalive interval in seconds (0 = off).
    pub keepalive_interval: u32,
    /// Keepalive count.
    pub keepalive_count: u32,
    /// TLS material and policy.
    pub tls: TlsFiles,
    /// Log filter (EnvFilter syntax), before MIGRATED_LOG is applied.
    pub log_filter: String,
    /// Ports for incoming migration data.
    pub migration_ports: PortRange,
    /// Address to bind incoming migration data to, if not the default.
    pub migration_address: Option<IpAddr>,
    /// Seconds a Prepare may wait for Finish3 without data (0 = never).
    pub migration_prepare_timeout_secs: u64,
    /// Where the Prometheus text endpoint listens; `None` = no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// QEMU-native TLS of migration streams (`VIR_MIGRATE_TLS`): credentials
    /// directory and peer verification.
    pub migration_tls: MigrationTls,
}

/// [`Config::migration_prepare_timeout_secs`] as the migration manager wants it.
pub fn prepare_timeout(config: &Config) -> Option<std::time::Duration> {
    Some(config.migration_prepare_timeout_secs)
        .filter(|&s| s != 0)
        .map(std::time::Duration::from_secs)
}

impl Config {
    /// Reads the config file named by `args` (or the default one) and merges
    /// it under the flags.
    ///
    /// # Errors
    /// [`Error::ReadConfig`] when an explicitly named file cannot be read,
    /// [`Error::ParseConfig`] for invalid TOML or unknown keys,
    /// [`Error::NoHostUuid`] when no host UUID can be found.
    pub fn load(args: &Args) -> Result<Self> {
        let (file, source) = match &args.config {
            Some(path) => (read_file(path)?, Some(path.clone())),
            None => {
                let path = Path::new(DEFAULT_CONFIG_PATH);
                if path.exists() {
                    (read_file(path)?, Some(path.to_path_buf()))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        Self::merge(args, file, source, &HostProbe::system())
    }

    fn merge(
        args: &Args,
        file: FileConfig,
        source: Option<PathBuf>,
        probe: &HostProbe,
    ) -> Result<Self> {
        let listen = if args.listen.is_empty() {
            file.listen
        } else {
            args.listen.clone()
        };
        let host_uuid = match args.host_uuid.or(file.host_uuid) {
            Some(uuid) => uuid,
            None => probe.host_uuid()?,
        };
        let hostname = match args.hostname.clone().or(file.hostname) {
            Some(name) => name,
            None => probe.hostname(),
        };
        let allowed_dn = if args.tls_allowed_dn.is_empty() {
            file.tls_allowed_dn
        } else {
            Some(args.tls_allowed_dn.clone())
        };
        let mut drivers = args
            .drivers
            .clone()
            .or(file.drivers)
            .unwrap_or_else(|| vec![DriverKind::Test, DriverKind::Qemu]);
        dedup_in_order(&mut drivers);
        Ok(Config {
            source,
            listen,
            state_dir: pick(&args.state_dir, file.state_dir, "/var/lib/migrated".into()),
            runtime_dir: pick(&args.runtime_dir, file.runtime_dir, "/run/migrated".into()),
            host_uuid,
            hostname,
            drivers,
            max_clients: pick(&args.max_clients, file.max_clients, 5000),
            max_anonymous_clients: pick(
                &args.max_anonymous_clients,
                file.max_anonymous_clients,
                20,
            ),
            max_client_requests: pick(&args.max_client_requests, file.max_client_requests, 5),
            max_client_queued_requests: pick(
                &args.max_client_queued_requests,
                file.max_client_queued_requests,
                DEFAULT_MAX_CLIENT_QUEUED_REQUESTS,
            ),
            handshake_timeout: pick(
                &args.handshake_timeout,
                file.handshake_timeout,
                DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            ),
            max_jobs: pick(&args.max_jobs, file.max_jobs, 16),
            max_client_outbound_bytes: pick(
                &args.max_client_outbound_bytes,
                file.max_client_outbound_bytes,
                DEFAULT_MAX_CLIENT_OUTBOUND_BYTES,
            ),
            keepalive_interval: pick(&args.keepalive_interval, file.keepalive_interval, 5),
            keepalive_count: pick(&args.keepalive_count, file.keepalive_count, 5),
            tls: TlsFiles {
                cert: pick(
                    &args.tls_cert,
                    file.tls_cert,
                    "/etc/pki/libvirt/servercert.pem".into(),
                ),
                key: pick(
                    &args.tls_key,
                    file.tls_key,
                    "/etc/pki/libvirt/private/serverkey.pem".into(),
                ),
                ca: pick(&args.tls_ca, file.tls_ca, "/etc/pki/CA/cacert.pem".into()),
                allowed_dn,
            },
            log_filter: pick(&args.log_filter, file.log_filter, "info".to_owned()),
            migration_ports: pick(
                &args.migration_ports,
                file.migration_ports,
                PortRange {
                    first: 49152,
                    last: 49215,
                },
            ),
            migration_address: args.migration_address.or(file.migration_address),
            migration_prepare_timeout_secs: pick(
                &args.migration_prepare_timeout_secs,
                file.migration_prepare_timeout_secs,
                migrated_core::migration::DEFAULT_PREPARE_TIMEOUT.as_secs(),
            ),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            migration_tls: MigrationTls {
                dir: pick(
                    &args.migrate_tls_x509_cert_dir,
                    file.migrate_tls_x509_cert_dir,
                    migrated_driver_qemu::tls::DEFAULT_DIR.into(),
                ),
                verify_peer: pick(
                    &args.migrate_tls_x509_verify,
                    file.migrate_tls_x509_verify,
                    true,
                ),
            },
        })
    }

    /// The listeners to open when neither flags, file nor systemd name any:
    /// libvirt's pair of local sockets in the runtime directory.
    pub fn default_listeners(&self) -> Vec<Listen> {
        vec![
            Listen::Unix(UnixListen {
                path: self.runtime_dir.join("migrated-sock"),
                readonly: false,
                mode: UNIX_RW_MODE,
            }),
            Listen::Unix(UnixListen {
                path: self.runtime_dir.join("migrated-sock-ro"),
                readonly: true,
                mode: UNIX_RO_MODE,
            }),
        ]
    }

    /// Re-reads the settings SIGHUP may change (log filter, allowed DNs) from
    /// the config file, keeping command-line values, which still win.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn reload(&self, args: &Args) -> Result<Self> {
        let file = match &self.source {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let probe = HostProbe {
            machine_id: None,
            product_uuid: None,
            hostname: Some(self.hostname.clone()),
        };
        let mut args = args.clone();
        args.host_uuid = Some(self.host_uuid);
        Self::merge(&args, file, self.source.clone(), &probe)
    }
}

fn pick<T: Clone>(flag: &Option<T>, file: Option<T>, default: T) -> T {
    flag.clone().or(file).unwrap_or(default)
}

fn dedup_in_order(drivers: &mut Vec<DriverKind>) {
    let mut seen = Vec::with_capacity(drivers.len());
    drivers.retain(|d| {
        if seen.contains(d) {
            false
        } else {
            seen.push(*d);
            true
        }
    });
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| Error::ParseConfig {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Where host identity comes from; a value so tests need not touch /etc.
struct HostProbe {
    machine_id: Option<String>,
    product_uuid: Option<String>,
    hostname: Option<String>,
}

impl HostProbe {
    fn system() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        HostProbe {
            machine_id: read("/etc/machine-id"),
            product_uuid: read("/sys/class/dmi/id/product_uuid"),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }

    /// /etc/machine-id (32 hex digits) first: it is unique per installation,
    /// whereas SMBIOS UUIDs are often duplicated across cloned hardware.
    fn host_uuid(&self) -> Result<Uuid> {
        [&self.machine_id, &self.product_uuid]
            .into_iter()
            .flatten()
            .filter_map(|text| Uuid::parse_str(text.trim()).ok())
            .find(|uuid| !uuid.is_nil())
            .ok_or(Error::NoHostUuid)
    }

    fn hostname(&self) -> String {
        self.hostname
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> HostProbe {
        HostProbe {
            machine_id: Some("3d1219c7c4c5404aaa1f6d2a48adfda4\n".into()),
            product_uuid: None,
            hostname: Some("hosta\n".into()),
        }
    }

    fn parse_args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("migrated").chain(argv.iter().copied()))
            .expect("test arguments parse")
    }

    #[test]
    fn listen_urls_parse_into_transports() {
        assert_eq!(
            "tcp://127.0.0.1:16509".parse::<Listen>().ok(),
            Some(Listen::Tcp("127.0.0.1:16509".parse().expect("addr")))
        );
        assert_eq!(
            "tls://0.0.0.0".parse::<Listen>().ok(),
            Some(Listen::Tls("0.0.0.0:16514".parse().expect("addr")))
        );
        assert_eq!(
            "tcp://[::1]:7".parse::<Listen>().ok(),
            Some(Listen::Tcp("[::1]:7".parse().expect("addr")))
        );
        let Ok(Listen::Unix(ro)) = "unix-ro:/run/m/sock-ro".parse::<Listen>() else {
            panic!("unix-ro did not parse");
        };
        assert!(ro.readonly);
        assert_eq!(ro.mode, UNIX_RO_MODE);
        let Ok(Listen::Unix(q)) = "unix:/x?mode=0660&readonly=1".parse::<Listen>() else {
            panic!("query form did not parse");
        };
        assert_eq!(
            (q.path.as_path(), q.mode, q.readonly),
            (Path::new("/x"), 0o660, true)
        );
    }

    #[test]
    fn bad_listen_urls_are_refused() {
        for spec in [
            "http://1.2.3.4",
            "tcp://localhost:1",
            "tcp://1.2.3.4:99999",
            "unix:",
            "unix:/x?mode=999",
            "unix:/x?color=red",
        ] {
            assert!(spec.parse::<Listen>().is_err(), "{spec} was accepted");
        }
    }

    #[test]
    fn port_range_needs_first_not_above_last() {
        assert_eq!(
            "49152-49215".parse::<PortRange>().ok(),
            Some(PortRange {
                first: 49152,
                last: 49215
            })
        );
        assert!("5-4".parse::<PortRange>().is_err());
        assert!("0-4".parse::<PortRange>().is_err());
        assert!("5".parse::<PortRange>().is_err());
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let file: FileConfig = toml::from_str(
            r#"
            state_dir = "/file/state"
            runtime_dir = "/file/run"
            max_clients = 7
            drivers = ["test"]
            listen = ["tcp://127.0.0.1:1"]
            "#,
        )
        .expect("valid toml");
        let args = parse_args(&[
            "--state-dir",
            "/flag/state",
            "--listen",
            "tcp://127.0.0.1:2",
        ]);
        let cfg = Config::merge(&args, file, None, &probe()).expect("merge");
        assert_eq!(cfg.state_dir, Path::new("/flag/state"));
        assert_eq!(cfg.runtime_dir, Path::new("/file/run"));
        assert_eq!(cfg.max_clients, 7);
        assert_eq!(cfg.max_client_requests, 5);
        assert_eq!(cfg.drivers, vec![DriverKind::Test]);
        assert_eq!(
            cfg.listen,
            vec![Listen::Tcp("127.0.0.1:2".parse().expect("addr"))]
        );
        assert_eq!(cfg.tls.ca, Path::new("/etc/pki/CA/cacert.pem"));
    }

    #[test]
    fn host_uuid_comes_from_machine_id_unless_given() {
        let cfg =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(
            cfg.host_uuid.to_string(),
            "3d1219c7-c4c5-404a-aa1f-6d2a48adfda4"
        );
        assert_eq!(cfg.hostname, "hosta");
        let given = "2f0d5a1e-6c1b-4a8e-9d1f-0b1c2d3e4f50";
        let cfg = Config::merge(
            &parse_args(&["--host-uuid", given]),
            FileConfig::default(),
            None,
            &probe(),
        )
        .expect("merge");
        assert_eq!(cfg.host_uuid.to_string(), given);
    }

    #[test]
    fn missing_host_uuid_sources_are_an_error() {
        let probe = HostProbe {
            machine_id: None,
            product_uuid: Some("not a uuid".into()),
            hostname: None,
        };
        let err = Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe)
            .expect_err("no uuid source");
        assert!(matches!(err, Error::NoHostUuid));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("max_clientz = 3").is_err());
    }

    #[test]
    fn explicit_missing_config_file_is_an_error() {
        let args = parse_args(&["--config", "/nonexistent/migrated.toml"]);
        assert!(matches!(Config::load(&args), Err(Error::ReadConfig { .. })));
    }

    #[test]
    fn allowed_dn_unset_differs_from_empty() {
        let unset =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(unset.tls.allowed_dn, None);
        let file: FileConfig = toml::from_str("tls_allowed_dn = []").expect("valid toml");
        let empty = Config::merge(&parse_args(&[]), file, None, &probe()).expect("merge");
        assert_eq!(empty.tls.allowed_dn, Some(Vec::new()));
        let file: FileConfig = toml::from_str("tls_allowed_dn = []").expect("valid toml");
        let flag = Config::merge(
            &parse_args(&["--tls-allowed-dn", "CN=*"]),
            file,
            None,
            &probe(),
        )
        .expect("merge");
        assert_eq!(flag.tls.allowed_dn, Some(vec!["CN=*".to_owned()]));
    }

    #[test]
    fn queue_and_handshake_limits_are_keys_and_flags() {
        let defaults =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(
            defaults.max_client_queued_requests,
            DEFAULT_MAX_CLIENT_QUEUED_REQUESTS
        );
        assert_eq!(defaults.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT_SECS);
        let file: FileConfig =
            toml::from_str("max_client_queued_requests = 3\nhandshake_timeout = 4")
                .expect("valid toml");
        let cfg = Config::merge(&parse_args(&[]), file.clone(), None, &probe()).expect("merge");
        assert_eq!(
            (cfg.max_client_queued_requests, cfg.handshake_timeout),
            (3, 4)
        );
        let args = parse_args(&[
            "--max-client-queued-requests",
            "7",
            "--handshake-timeout",
            "8",
        ]);
        let cfg = Config::merge(&args, file, None, &probe()).expect("merge");
        assert_eq!(
            (cfg.max_client_queued_requests, cfg.handshake_timeout),
            (7, 8)
        );
    }

    /// Every key of the shipped sample, uncommented, is a key the daemon knows.
    #[test]
    fn sample_config_keys_all_parse() {
        let sample = include_str!("../../../deploy/migrated.toml");
        let mut text = String::new();
        for line in sample.lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let Some((key, _)) = rest.split_once(" = ") else {
                continue;
            };
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                // Drop trailing comments after the value.
                let value = rest.split_once("  #").map_or(rest, |(v, _)| v);
                text.push_str(value.trim_end());
                text.push('\n');
            }
        }
        assert!(text.contains("max_client_queued_requests"), "{text}");
        let file: FileConfig = toml::from_str(&text).expect("sample keys parse");
        assert_eq!(file.handshake_timeout, Some(30));
    }

    #[test]
    fn outbound_limit_is_a_key_and_a_flag() {
        let file: FileConfig =
            toml::from_str("max_client_outbound_bytes = 4096").expect("valid toml");
        let cfg = Config::merge(&parse_args(&[]), file, None, &probe()).expect("merge");
        assert_eq!(cfg.max_client_outbound_bytes, 4096);
        let cfg = Config::merge(
            &parse_args(&["--max-client-outbound-bytes", "100"]),
            FileConfig::default(),
            None,
            &probe(),
        )
        .expect("merge");
        assert_eq!(cfg.max_client_outbound_bytes, 100);
        let cfg =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(
            cfg.max_client_outbound_bytes,
            DEFAULT_MAX_CLIENT_OUTBOUND_BYTES
        );
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_a_key_and_a_flag() {
        let cfg =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(cfg.metrics_listen, None);
        let file: FileConfig =
            toml::from_str("metrics_listen = \"127.0.0.1:9464\"").expect("valid toml");
        let cfg = Config::merge(&parse_args(&[]), file, None, &probe()).expect("merge");
        assert_eq!(cfg.metrics_listen, "127.0.0.1:9464".parse().ok());
        let file: FileConfig =
            toml::from_str("metrics_listen = \"127.0.0.1:9464\"").expect("valid toml");
        let args = parse_args(&["--metrics-listen", "127.0.0.1:1"]);
        let cfg = Config::merge(&args, file, None, &probe()).expect("merge");
        assert_eq!(cfg.metrics_listen, "127.0.0.1:1".parse().ok());
    }

    #[test]
    fn migration_tls_defaults_to_libvirts_directory_and_verifies() {
        let cfg =
            Config::merge(&parse_args(&[]), FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(cfg.migration_tls, MigrationTls::default());
        assert_eq!(cfg.migration_tls.dir, Path::new("/etc/pki/qemu"));
        assert!(cfg.migration_tls.verify_peer);
        let file: FileConfig = toml::from_str(
            "migrate_tls_x509_cert_dir = \"/file/tls\"\nmigrate_tls_x509_verify = false",
        )
        .expect("valid toml");
        let args = parse_args(&["--migrate-tls-x509-cert-dir", "/flag/tls"]);
        let cfg = Config::merge(&args, file, None, &probe()).expect("merge");
        assert_eq!(cfg.migration_tls.dir, Path::new("/flag/tls"));
        assert!(!cfg.migration_tls.verify_peer);
    }

    #[test]
    fn drivers_flag_is_comma_separated() {
        let args = parse_args(&["--drivers", "qemu,test,qemu"]);
        let cfg = Config::merge(&args, FileConfig::default(), None, &probe()).expect("merge");
        assert_eq!(cfg.drivers, vec![DriverKind::Qemu, DriverKind::Test]);
    }
}
