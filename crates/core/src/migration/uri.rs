//! Data-plane URIs: `tcp:host:port` (what libvirt's Prepare answers) and
//! `tcp://host:port` (what users write), IPv6 literals in brackets.

use crate::error::{Error, Result};

/// A parsed `tcp` data URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUri {
    /// Host name or IP literal (brackets removed).
    pub host: String,
    /// Port, if the URI has one.
    pub port: Option<u16>,
}

impl DataUri {
    /// Parses `tcp:h:p`, `tcp://h:p`, `tcp:[v6]:p` (port optional).
    ///
    /// # Errors
    /// [`Error::InvalidArg`] naming the URI for another scheme, an empty host or
    /// a bad port.
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidArg {
            operation: "virDomainMigratePerform3Params",
            reason: format!("migration URI '{uri}': {reason}"),
        };
        let rest = uri
            .strip_prefix("tcp:")
            .ok_or_else(|| bad("only the tcp scheme is supported"))?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("bad port")))
            .transpose()?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port` for connecting (brackets around IPv6).
    ///
    /// # Errors
    /// [`Error::InvalidArg`] when the URI has no port.
    pub fn socket_addr(&self) -> Result<String> {
        let port = self.port.ok_or_else(|| Error::InvalidArg {
            operation: "virDomainMigratePerform3Params",
            reason: format!("migration URI for host '{}' has no port", self.host),
        })?;
        Ok(if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        })
    }

    /// libvirt's Prepare answer form: `tcp:host:port` (no `//`).
    pub fn format_libvirt(host: &str, port: u16) -> String {
        if host.contains(':') {
            format!("tcp:[{host}]:{port}")
        } else {
            format!("tcp:{host}:{port}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tcp_forms_and_ipv6_parse() {
        for (s, host, port) in [
            ("tcp:127.0.0.1:49152", "127.0.0.1", Some(49152)),
            ("tcp://127.0.0.1:49153", "127.0.0.1", Some(49153)),
            ("tcp://127.0.0.1", "127.0.0.1", None),
            ("tcp:[::1]:5", "::1", Some(5)),
            ("tcp://[::1]", "::1", None),
        ] {
            let u = DataUri::parse(s).expect(s);
            assert_eq!((u.host.as_str(), u.port), (host, port), "{s}");
        }
        assert_eq!(
            DataUri::parse("tcp:[::1]:5")
                .expect("v6")
                .socket_addr()
                .expect("port"),
            "[::1]:5"
        );
        assert_eq!(DataUri::format_libvirt("127.0.0.1", 7), "tcp:127.0.0.1:7");
    }

    #[test]
    fn bad_uris_are_invalid_arg() {
        for s in [
            "rdma://h:1",
            "tcp:",
            "tcp://:5",
            "tcp:h:99999",
            "tcp:[::1",
            "x",
        ] {
            let err = DataUri::parse(s).expect_err(s);
            assert_eq!(err.code(), crate::error::ErrorCode::InvalidArg);
        }
        assert!(DataUri::parse("tcp:h")
            .expect("no port")
            .socket_addr()
            .is_err());
    }
}
