//! libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?query][#fragment]`.
//!
//! Mirrors what libvirt's remote driver (`src/remote/remote_driver.c`,
//! `doRemoteOpen` and `remoteSplitURIScheme`) does with a URI before it opens
//! a socket:
//!
//! * the transport comes from the scheme suffix (`+tcp`, `+tls`, `+unix`);
//!   without one it is TLS when a host is given and the local Unix socket
//!   otherwise;
//! * the query parameters the client itself consumes (`socket`, `pkipath`,
//!   `no_verify`, ...) are taken out, every other one is passed through to
//!   the server;
//! * the name sent in `CONNECT_OPEN` is the URI without transport, user, host
//!   and port (`test+tcp://h:1234/default` → `test:///default`), or the
//!   explicit `name=` parameter, or `""` for the `remote` driver (the server
//!   chooses).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Environment variable naming the URI `migratectl` uses without `-c`.
pub const DEFAULT_URI_ENV: &str = "MIGRATED_DEFAULT_URI";

/// URI used when neither `-c` nor [`DEFAULT_URI_ENV`] is given.
pub const FALLBACK_URI: &str = "qemu:///system";

/// Default TCP port (libvirt's `LIBVIRTD_TCP_PORT`).
pub const DEFAULT_TCP_PORT: u16 = 16509;

/// Default TLS port (libvirt's `LIBVIRTD_TLS_PORT`).
pub const DEFAULT_TLS_PORT: u16 = 16514;

/// The daemon's read-write Unix socket.
pub const DEFAULT_SOCKET: &str = "/run/migrated/migrated-sock";

/// The daemon's read-only Unix socket.
pub const DEFAULT_SOCKET_RO: &str = "/run/migrated/migrated-sock-ro";

/// Query parameters libvirt's remote driver consumes instead of passing them on.
const CLIENT_PARAMS: &[&str] = &[
    "name",
    "command",
    "socket",
    "auth",
    "sshauth",
    "netcat",
    "keyfile",
    "pkipath",
    "known_hosts",
    "known_hosts_verify",
    "tls_priority",
    "mode",
    "proxy",
    "no_sanity",
    "no_verify",
    "no_tty",
    "authfile",
];

/// Returns the URI to use when the caller gave none: `$MIGRATED_DEFAULT_URI`
/// when set and non-empty, else [`FALLBACK_URI`].
pub fn default_uri() -> String {
    match std::env::var(DEFAULT_URI_ENV) {
        Ok(uri) if !uri.is_empty() => uri,
        _ => FALLBACK_URI.to_owned(),
    }
}

/// How the client reaches the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP (`+tcp`), no encryption.
    Tcp,
    /// TLS with x509 certificates (`+tls`, or no suffix with a host).
    Tls,
    /// Local Unix socket (`+unix`, or no suffix and no host).
    Unix,
}

impl Transport {
    /// The scheme suffix libvirt uses for this transport.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Unix => "unix",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to connect, resolved from a [`ConnectUri`] with libvirt's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// TCP to `host:port` (host as written, IPv6 without brackets).
    Tcp {
        /// Host name or IP literal.
        host: String,
        /// Port number.
        port: u16,
    },
    /// TLS to `host:port`; `host` is also the name the certificate must match.
    Tls {
        /// Host name or IP literal.
        host: String,
        /// Port number.
        port: u16,
    },
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Tls { host, port } if host.contains(':') => write!(f, "tls://[{host}]:{port}"),
            Self::Tls { host, port } => write!(f, "tls://{host}:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A parsed libvirt connection URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectUri {
    /// The original text.
    pub original: String,
    /// Driver part of the scheme (`qemu`, `test`, `remote`).
    pub driver: String,
    /// Transport chosen from the scheme suffix or libvirt's defaults.
    pub transport: Transport,
    /// `user@` part, if any (unused by our transports, kept for display).
    pub user: Option<String>,
    /// Host, without IPv6 brackets; `None` for local URIs.
    pub host: Option<String>,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// Path, including the leading `/` (may be empty).
    pub path: String,
    /// Fragment after `#`, if any.
    pub fragment: Option<String>,
    /// Query parameters consumed by the client.
    pub params: ClientParams,
    /// Query parameters passed through to the server, raw (still escaped).
    pub passthrough: Vec<(String, String)>,
}

/// The query parameters the client acts on itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientParams {
    /// `name=`: overrides the name sent in `CONNECT_OPEN`.
    pub name: Option<String>,
    /// `socket=`: Unix socket path.
    pub socket: Option<PathBuf>,
    /// `pkipath=`: directory holding `cacert.pem`, `clientcert.pem`, ...
    pub pkipath: Option<PathBuf>,
    /// `no_verify=1`: ignore failures of the server certificate checks.
    pub no_verify: bool,
    /// `no_sanity=1`: skip the sanity check of our own certificate files.
    pub no_sanity: bool,
    /// `mode=`: libvirt's daemon selection (`auto`, `legacy`, `direct`).
    pub mode: Option<String>,
    /// `tls_priority=`: GnuTLS priority string (accepted, not interpreted).
    pub tls_priority: Option<String>,
    /// `auth=`: authentication method the caller insists on (only "none" is implemented).
    pub auth: Option<String>,
}

impl ConnectUri {
    /// Parses a libvirt URI.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] for text that is not a URI, an unknown or
    /// unsupported transport (`ssh`, `ext`, `libssh*`), a bad port, or a
    /// non-boolean `no_verify`/`no_sanity`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUri {
            uri: text.to_owned(),
            reason,
        };

        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| invalid("no scheme (expected driver[+transport]://...)".into()))?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(invalid(format!("invalid scheme '{scheme}'")));
        }
        let (driver, transport_name) = match scheme.split_once('+') {
            Some((driver, transport)) => (driver, Some(transport)),
            None => (scheme, None),
        };
        if driver.is_empty() {
            return Err(invalid("empty driver name".into()));
        }

        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment.to_owned())),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => match after.find('/') {
                Some(slash) => (Some(&after[..slash]), &after[slash..]),
                None => (Some(after), ""),
            },
            None => (None, rest),
        };

        let (user, host, port) = match authority {
            Some(authority) => parse_authority(authority).map_err(invalid)?,
            None => (None, None, None),
        };

        let transport = match transport_name {
            // libvirt compares transport names case-insensitively
            Some(name) => match name.to_ascii_lowercase().as_str() {
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                "unix" => Transport::Unix,
                "ssh" | "ext" | "libssh" | "libssh2" => {
                    return Err(invalid(format!("transport '{name}' is not supported")))
                }
                _ => {
                    return Err(invalid(format!(
                        "transport in URL not recognised (should be tls|unix|tcp): '{name}'"
                    )))
                }
            },
            None if host.is_some() => Transport::Tls,
            None => Transport::Unix,
        };

        let mut params = ClientParams::default();
        let mut passthrough = Vec::new();
        for pair in query
            .unwrap_or("")
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
        {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key).map_err(&invalid)?;
            if !CLIENT_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(&key)) {
                passthrough.push((raw_key.to_owned(), raw_value.to_owned()));
                continue;
            }
            let value = percent_decode(raw_value).map_err(&invalid)?;
            match key.to_ascii_lowercase().as_str() {
                "name" => params.name = Some(value),
                "socket" => params.socket = Some(PathBuf::from(value)),
                "pkipath" => params.pkipath = Some(PathBuf::from(value)),
                "no_verify" => params.no_verify = parse_flag(&key, &value).map_err(&invalid)?,
                "no_sanity" => params.no_sanity = parse_flag(&key, &value).map_err(&invalid)?,
                "mode" => params.mode = Some(value),
                "tls_priority" => params.tls_priority = Some(value),
                "auth" => params.auth = Some(value),
                // consumed by libvirt for ssh-based transports, meaningless here
                _ => {}
            }
        }

        Ok(Self {
            original: text.to_owned(),
            driver: driver.to_owned(),
            transport,
            user,
            host,
            port,
            path: path.to_owned(),
            fragment,
            params,
            passthrough,
        })
    }

    /// The name sent in `CONNECT_OPEN`, computed like libvirt's `doRemoteOpen`:
    /// the explicit `name=` parameter; else `""` for the `remote` driver;
    /// else `driver://` + path + passed-through query + fragment
    /// (`test+tcp://h:1234/default` → `test:///default`).
    pub fn remote_name(&self) -> String {
        if let Some(name) = &self.params.name {
            return name.clone();
        }
        if self.driver.eq_ignore_ascii_case("remote") {
            return String::new();
        }
        // libvirt's virURIFormat forces an empty authority, hence the `//`
        let mut name = format!("{}://{}", self.driver, self.path);
        if !self.passthrough.is_empty() {
            name.push('?');
            let query: Vec<String> = self
                .passthrough
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            name.push_str(&query.join("&"));
        }
        if let Some(fragment) = &self.fragment {
            name.push('#');
            name.push_str(fragment);
        }
        name
    }

    /// Where to connect, with libvirt's default ports and our default sockets
    /// (the read-only socket when `readonly` is set and no `socket=` is given).
    pub fn address(&self, readonly: bool) -> Address {
        let host = || self.host.clone().unwrap_or_else(|| "localhost".to_owned());
        match self.transport {
            Transport::Tcp => Address::Tcp {
                host: host(),
                port: self.port.unwrap_or(DEFAULT_TCP_PORT),
            },
            Transport::Tls => Address::Tls {
                host: host(),
                port: self.port.unwrap_or(DEFAULT_TLS_PORT),
            },
            Transport::Unix => Address::Unix(match &self.params.socket {
                Some(path) => path.clone(),
                None if readonly => PathBuf::from(DEFAULT_SOCKET_RO),
                None => PathBuf::from(DEFAULT_SOCKET),
            }),
        }
    }
}

impl fmt::Display for ConnectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl std::str::FromStr for ConnectUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Splits `[user@]host[:port]`; the host may be a bracketed IPv6 literal.
type Authority = (Option<String>, Option<String>, Option<u16>);

fn parse_authority(authority: &str) -> std::result::Result<Authority, String> {
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, rest)) => (Some(percent_decode(user)?), rest),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "unterminated '[' in host".to_owned())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected '{after}' after IPv6 address")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| format!("invalid port '{port}'"))?,
        ),
    };
    let host = (!host.is_empty())
        .then(|| percent_decode(host))
        .transpose()?;
    Ok((user, host, port))
}

/// libvirt parses these with `virStrToLong_i`: any integer, non-zero is true.
fn parse_flag(key: &str, value: &str) -> std::result::Result<bool, String> {
    value
        .trim()
        .parse::<i64>()
        .map(|v| v != 0)
        .map_err(|_| format!("failed to parse value of URI component {key}: '{value}'"))
}

/// Undoes `%XX` escapes (no `+` → space: libvirt's URIs are not form data).
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in '{text}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("escaped text in '{text}' is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConnectUri {
        match ConnectUri::parse(text) {
            Ok(uri) => uri,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn tcp_uri_with_port_sends_name_without_transport_host_and_port() {
        let uri = parse("test+tcp://h:1234/default");
        assert_eq!(uri.driver, "test");
        assert_eq!(uri.transport, Transport::Tcp);
        assert_eq!(uri.host.as_deref(), Some("h"));
        assert_eq!(uri.port, Some(1234));
        assert_eq!(uri.remote_name(), "test:///default");
        assert_eq!(
            uri.address(false),
            Address::Tcp {
                host: "h".into(),
                port: 1234
            }
        );
    }

    #[test]
    fn tcp_without_port_uses_16509() {
        let uri = parse("qemu+tcp://127.0.0.1/system");
        assert_eq!(
            uri.address(false),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 16509
            }
        );
        assert_eq!(uri.remote_name(), "qemu:///system");
    }

    #[test]
    fn tls_suffix_uses_16514() {
        let uri = parse("test+tls://h/default");
        assert_eq!(uri.transport, Transport::Tls);
        assert_eq!(
            uri.address(false),
            Address::Tls {
                host: "h".into(),
                port: 16514
            }
        );
        assert_eq!(uri.remote_name(), "test:///default");
    }

    #[test]
    fn host_without_transport_defaults_to_tls() {
        let uri = parse("qemu://host.example/system");
        assert_eq!(uri.transport, Transport::Tls);
        assert_eq!(
            uri.address(false),
            Address::Tls {
                host: "host.example".into(),
                port: 16514
            }
        );
    }

    #[test]
    fn no_host_means_local_unix_socket() {
        let uri = parse("qemu:///system");
        assert_eq!(uri.transport, Transport::Unix);
        assert_eq!(uri.host, None);
        assert_eq!(uri.address(false), Address::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(uri.address(true), Address::Unix(DEFAULT_SOCKET_RO.into()));
        assert_eq!(uri.remote_name(), "qemu:///system");
    }

    #[test]
    fn unix_socket_parameter_is_consumed_and_decoded() {
        let uri = parse("test+unix:///default?socket=/tmp/a%20b/sock");
        assert_eq!(uri.transport, Transport::Unix);
        assert_eq!(uri.address(true), Address::Unix("/tmp/a b/sock".into()));
        assert!(uri.passthrough.is_empty());
        assert_eq!(uri.remote_name(), "test:///default");
    }

    #[test]
    fn client_params_are_consumed_and_others_passed_through() {
        let uri = parse("qemu+tls://h/system?pkipath=/etc/pki/x&no_verify=1&foo=bar&no_sanity=0&mode=direct&x=%2F");
        assert_eq!(
            uri.params.pkipath.as_deref(),
            Some(std::path::Path::new("/etc/pki/x"))
        );
        assert!(uri.params.no_verify);
        assert!(!uri.params.no_sanity);
        assert_eq!(uri.params.mode.as_deref(), Some("direct"));
        assert_eq!(
            uri.passthrough,
            vec![
                ("foo".to_owned(), "bar".to_owned()),
                ("x".to_owned(), "%2F".to_owned())
            ]
        );
        assert_eq!(uri.remote_name(), "qemu:///system?foo=bar&x=%2F");
    }

    #[test]
    fn client_param_names_are_case_insensitive() {
        let uri = parse("qemu+tls://h/system?No_Verify=2");
        assert!(uri.params.no_verify);
        assert!(uri.passthrough.is_empty());
    }

    #[test]
    fn explicit_name_parameter_overrides_computed_name() {
        let uri = parse("test+tcp://h/default?name=test:///other");
        assert_eq!(uri.remote_name(), "test:///other");
    }

    #[test]
    fn remote_driver_lets_the_server_choose() {
        assert_eq!(parse("remote+tcp://h/").remote_name(), "");
        assert_eq!(parse("remote://h/").remote_name(), "");
    }

    #[test]
    fn fragment_is_kept_in_name() {
        assert_eq!(
            parse("test+tcp://h/default#frag").remote_name(),
            "test:///default#frag"
        );
    }

    #[test]
    fn user_and_ipv6_host_are_parsed() {
        let uri = parse("qemu+tcp://root@[::1]:9000/system");
        assert_eq!(uri.user.as_deref(), Some("root"));
        assert_eq!(uri.host.as_deref(), Some("::1"));
        assert_eq!(
            uri.address(false),
            Address::Tcp {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(uri.remote_name(), "qemu:///system");
    }

    #[test]
    fn transport_is_case_insensitive() {
        assert_eq!(parse("test+TCP://h/default").transport, Transport::Tcp);
    }

    #[test]
    fn bad_uris_are_refused_with_reason() {
        for (text, needle) in [
            ("nonsense", "no scheme"),
            ("test+foo://h/default", "not recognised"),
            ("qemu+ssh://h/system", "not supported"),
            ("test+tcp://h:99999/default", "invalid port"),
            ("test+tcp://h:abc/default", "invalid port"),
            ("test+tcp://[::1/default", "unterminated"),
            ("test+tls://h/default?no_verify=yes", "no_verify"),
            ("test+unix:///default?socket=%zz", "percent"),
            ("+tcp://h/", "empty driver"),
        ] {
            match ConnectUri::parse(text) {
                Ok(uri) => panic!("{text} parsed as {uri:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{text}: {e}"),
            }
        }
    }

    #[test]
    fn default_uri_falls_back_to_qemu_system() {
        // the only test touching this variable, so no race with other tests
        std::env::remove_var(DEFAULT_URI_ENV);
        assert_eq!(default_uri(), FALLBACK_URI);
        std::env::set_var(DEFAULT_URI_ENV, "test+tcp://127.0.0.1:1/default");
        assert_eq!(default_uri(), "test+tcp://127.0.0.1:1/default");
        std::env::set_var(DEFAULT_URI_ENV, "");
        assert_eq!(default_uri(), FALLBACK_URI);
        std::env::remove_var(DEFAULT_URI_ENV);
    }
}
