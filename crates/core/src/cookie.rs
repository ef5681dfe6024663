//! Migration cookies: the XML document the two daemons hand each other through
//! every step of a v3 migration (the client relays it unchanged).
//!
//! The format is ours (libvirt's QEMU cookie, `qemu_migration_cookie.c`, is the
//! model; libvirt-wire.md §10): UTF-8 XML followed by one NUL byte, the length
//! including the NUL; an empty cookie means "no information".
//!
//! ```xml
//! <migrated-cookie version='1'>
//!   <guest name='web1' uuid='…'/>
//!   <job id='…'/>                               <!-- the same id in both hosts' logs -->
//!   <source hostname='a' uuid='…'/>            <!-- the source host, set by Begin -->
//!   <destination hostname='b' uuid='…'/>       <!-- the destination host, set by Prepare -->
//!   <feature name='persistent'/>                <!-- mandatory: understand it or refuse -->
//!   <lockstate driver='none'><leases>…</leases></lockstate>
//!   <graphics type='spice' port='5901' tlsPort='-1' listen='192.0.2.1'/>  <!-- the destination's, set by Prepare; tlsSubject='…' optional -->
//!   <capabilities><cap name='compression' value='lz4'/></capabilities>
//!   <nbd port='49153'><disk target='vdb' capacity='4194304'/></nbd>  <!-- storage copy: disks from Begin, port from Prepare -->
//!   <persistent>escaped inactive domain XML</persistent>
//!   <statistics><stat name='downtime' value='12'/>…</statistics>
//! </migrated-cookie>
//! ```
//!
//! Every cookie produced or accepted is at most [`MIGRATE_COOKIE_MAX`] bytes
//! (DESIGN.md "Cookies and their limit"). Elements this version does not know
//! are skipped, so a newer peer can add optional data; data the receiver must
//! act on is announced with `<feature name=…/>`, and an unknown name there is
//! refused ([`KNOWN_FEATURES`]).

use std::io::Cursor;

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};
use uuid::Uuid;

use crate::domain::HostIdentity;
use crate::error::{Error, Result};
use crate::migration::Role;

/// The largest cookie `migrated` produces or accepts, NUL included (16 KiB).
pub const MIGRATE_COOKIE_MAX: usize = 16384;

/// The cookie format version this code writes and reads.
pub const COOKIE_VERSION: u32 = 1;

/// Root element name.
const ROOT: &str = "migrated-cookie";

/// Feature names a receiver understands; any other mandatory feature is refused.
pub const KNOWN_FEATURES: &[&str] = &[
    feature::LOCKSTATE,
    feature::PERSISTENT,
    feature::GRAPHICS,
    feature::CAPABILITIES,
    feature::STATISTICS,
    feature::NBD,
];

/// Names of the features a cookie can declare mandatory.
pub mod feature {
    /// Lock/lease state that the destination must take over.
    pub const LOCKSTATE: &str = "lockstate";
    /// The persistent definition to define on the destination (PERSIST_DEST).
    pub const PERSISTENT: &str = "persistent";
    /// Graphics relocation data.
    pub const GRAPHICS: &str = "graphics";
    /// Negotiated data-plane capabilities.
    pub const CAPABILITIES: &str = "capabilities";
    /// Statistics of the completed transfer.
    pub const STATISTICS: &str = "statistics";
    /// Storage copy over NBD (NON_SHARED_DISK / NON_SHARED_INC): the disks
    /// to copy, then the destination's NBD server port.
    pub const NBD: &str = "nbd";
}

/// Lock manager state handed to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// Lock manager name (`none` when the guest holds no leases).
    pub driver: String,
    /// Opaque lease state.
    pub leases: String,
}

/// Where graphics clients should reconnect once the guest has moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsRelocation {
    /// `vnc` or `spice`.
    pub kind: String,
    /// Plain port on the destination.
    pub port: i32,
    /// TLS port (spice), -1 when none.
    pub tls_port: i32,
    /// Address clients should connect to.
    pub listen: Option<String>,
    /// Subject of the destination's TLS certificate (spice with TLS).
    pub tls_subject: Option<String>,
}

/// One negotiated capability, e.g. `compression` = `lz4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Capability name.
    pub name: String,
    /// Its value (`yes`/`no` or a setting).
    pub value: String,
}

/// One disk of a storage copy, as libvirt's cookie names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdDisk {
    /// Guest device name (`vdb`).
    pub target: String,
    /// Virtual size on the source in bytes.
    pub capacity: u64,
}

/// The storage copy of a migration (libvirt's `<nbd>` cookie element): Begin
/// lists the disks the source will copy, Prepare answers the port of the
/// destination's NBD server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nbd {
    /// The destination's NBD server port (Prepare's cookie); `None` in
    /// Begin's, and when the server listens on a UNIX socket (`disks_uri`).
    pub port: Option<u16>,
    /// The disks to copy.
    pub disks: Vec<NbdDisk>,
}

/// A cookie's content. Build one with [`Cookie::new`], then set what the step carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Guest name on the source (the original name, even with a new `dname`).
    pub name: String,
    /// Guest UUID.
    pub uuid: Uuid,
    /// The migration job's id, shared by both hosts.
    pub job_id: Uuid,
    /// The source host, once known.
    pub source: Option<HostIdentity>,
    /// The destination host, once known.
    pub destination: Option<HostIdentity>,
    /// Lock state to take over.
    pub lockstate: Option<LockState>,
    /// Graphics relocation data.
    pub graphics: Option<GraphicsRelocation>,
    /// Negotiated capabilities.
    pub capabilities: Vec<Capability>,
    /// Inactive domain XML to define on the destination.
    pub persistent: Option<String>,
    /// Statistics as `(job-stats key, value)` pairs.
    pub statistics: Vec<(String, u64)>,
    /// Storage copy over NBD.
    pub nbd: Option<Nbd>,
    /// Mandatory features: every element above that is present and must be acted on.
    pub features: Vec<String>,
}

impl Cookie {
    /// A cookie naming the guest and the job, with nothing else.
    pub fn new(name: impl Into<String>, uuid: Uuid, job_id: Uuid) -> Self {
        Self {
            name: name.into(),
            uuid,
            job_id,
            source: None,
            destination: None,
            lockstate: None,
            graphics: None,
            capabilities: Vec::new(),
            persistent: None,
            statistics: Vec::new(),
            nbd: None,
            features: Vec::new(),
        }
    }

    /// The value of capability `name`, if negotiated.
    pub fn capability(&self, name: &str) -> Option<&str> {
        self.capabilities
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.as_str())
    }

    /// The statistic `key`, if present.
    pub fn statistic(&self, key: &str) -> Option<u64> {
        self.statistics
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// Adds `name` to the mandatory features (once).
    pub fn require(&mut self, name: &str) {
        if !self.features.iter().any(|f| f == name) {
            self.features.push(name.to_owned());
        }
    }

    /// The peer's host as this cookie names it, seen from `local_role`.
    pub fn peer(&self, local_role: Role) -> Option<&HostIdentity> {
        match local_role {
            Role::Source => self.destination.as_ref(),
            Role::Destination => self.source.as_ref(),
        }
    }

    /// Refuses a cookie whose peer host is this host.
    ///
    /// # Errors
    /// [`Error::Internal`] "Attempt to migrate guest to the same host `<uuid>`"
    /// (libvirt's words, `qemuMigrationCookieXMLParse`).
    pub fn check_not_same_host(&self, local: &HostIdentity, local_role: Role) -> Result<()> {
        match self.peer(local_role) {
            Some(peer) if peer.uuid == local.uuid => Err(Error::internal(format!(
                "Attempt to migrate guest to the same host {}",
                peer.uuid
            ))),
            _ => Ok(()),
        }
    }

    /// Serialises the cookie: XML, then one NUL byte.
    ///
    /// # Errors
    /// [`Error::MigrateCookieTooLarge`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) when the result
    /// exceeds [`MIGRATE_COOKIE_MAX`] (e.g. a huge persistent definition).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 1);
        let version = COOKIE_VERSION.to_string();
        start(&mut w, ROOT, &[("version", version.as_str())], false)?;
        let uuid = self.uuid.to_string();
        start(
            &mut w,
            "guest",
            &[("name", self.name.as_str()), ("uuid", uuid.as_str())],
            true,
        )?;
        let job = self.job_id.to_string();
        start(&mut w, "job", &[("id", job.as_str())], true)?;
        for (tag, host) in [("source", &self.source), ("destination", &self.destination)] {
            if let Some(host) = host {
                let uuid = host.uuid.to_string();
                start(
                    &mut w,
                    tag,
                    &[
                        ("hostname", host.hostname.as_str()),
                        ("uuid", uuid.as_str()),
                    ],
                    true,
                )?;
            }
        }
        for f in &self.features {
            start(&mut w, "feature", &[("name", f.as_str())], true)?;
        }
        if let Some(lock) = &self.lockstate {
            start(
                &mut w,
                "lockstate",
                &[("driver", lock.driver.as_str())],
                false,
            )?;
            text_element(&mut w, "leases", &lock.leases)?;
            end(&mut w, "lockstate")?;
        }
        if let Some(g) = &self.graphics {
            let port = g.port.to_string();
            let tls = g.tls_port.to_string();
            let mut attrs = vec![
                ("type", g.kind.as_str()),
                ("port", port.as_str()),
                ("tlsPort", tls.as_str()),
            ];
            if let Some(listen) = &g.listen {
                attrs.push(("listen", listen.as_str()));
            }
            if let Some(subject) = &g.tls_subject {
                attrs.push(("tlsSubject", subject.as_str()));
            }
            start(&mut w, "graphics", &attrs, true)?;
        }
        if !self.capabilities.is_empty() {
            start(&mut w, "capabilities", &[], false)?;
            for c in &self.capabilities {
                start(
                    &mut w,
                    "cap",
                    &[("name", c.name.as_str()), ("value", c.value.as_str())],
                    true,
                )?;
            }
            end(&mut w, "capabilities")?;
        }
        if let Some(xml) = &self.persistent {
            text_element(&mut w, "persistent", xml)?;
        }
        if !self.statistics.is_empty() {
            start(&mut w, "statistics", &[], false)?;
            for (k, v) in &self.statistics {
                let v = v.to_string();
                start(
                    &mut w,
                    "stat",
                    &[("name", k.as_str()), ("value", v.as_str())],
                    true,
                )?;
            }
            end(&mut w, "statistics")?;
        }
        if let Some(nbd) = &self.nbd {
            let port = nbd.port.map(|p| p.to_string());
            let attrs: Vec<(&str, &str)> = port.iter().map(|p| ("port", p.as_str())).collect();
            start(&mut w, "nbd", &attrs, nbd.disks.is_empty())?;
            if !nbd.disks.is_empty() {
                for d in &nbd.disks {
                    let capacity = d.capacity.to_string();
                    start(
                        &mut w,
                        "disk",
                        &[
                            ("target", d.target.as_str()),
                            ("capacity", capacity.as_str()),
                        ],
                        true,
                    )?;
                }
                end(&mut w, "nbd")?;
            }
        }
        end(&mut w, ROOT)?;
        let mut bytes = w.into_inner().into_inner();
        bytes.push(0);
        check_size(bytes.len())?;
        Ok(bytes)
    }

    /// Parses a received cookie; an empty one is `Ok(None)`.
    ///
    /// # Errors
    /// - [`Error::MigrateCookieTooLarge`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) over
    ///   [`MIGRATE_COOKIE_MAX`], checked before anything is parsed;
    /// - [`Error::MigrateCookie`] (`VIR_ERR_INTERNAL_ERROR`) when it is not
    ///   NUL-terminated, not UTF-8, not well-formed, of another version, lacks the
    ///   guest or job, or requires a feature not in [`KNOWN_FEATURES`].
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        check_size(bytes.len())?;
        let Some((0, text)) = bytes.split_last() else {
            return Err(bad("migration cookie is not NUL-terminated"));
        };
        let text = std::str::from_utf8(text).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        if text.contains('\0') {
            return Err(bad("embedded NUL byte"));
        }
        parse(text).map(Some)
    }
}

fn check_size(size: usize) -> Result<()> {
    if size > MIGRATE_COOKIE_MAX {
        Err(Error::MigrateCookieTooLarge {
            size,
            max: MIGRATE_COOKIE_MAX,
        })
    } else {
        Ok(())
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::MigrateCookie {
        reason: reason.into(),
    }
}

type W = Writer<Cursor<Vec<u8>>>;

fn write(w: &mut W, ev: Event<'_>) -> Result<()> {
    w.write_event(ev)
        .map_err(|e| Error::internal(format!("formatting migration cookie: {e}")))
}

fn start(w: &mut W, name: &str, attrs: &[(&str, &str)], empty: bool) -> Result<()> {
    let el = BytesStart::new(name).with_attributes(attrs.iter().copied());
    write(
        w,
        if empty {
            Event::Empty(el)
        } else {
            Event::Start(el)
        },
    )
}

fn end(w: &mut W, name: &str) -> Result<()> {
    write(w, Event::End(BytesEnd::new(name)))
}

fn text_element(w: &mut W, name: &str, text: &str) -> Result<()> {
    start(w, name, &[], false)?;
    write(w, Event::Text(BytesText::new(text)))?;
    end(w, name)
}

/// Attributes of an element as owned `(name, value)` pairs.
fn attrs(e: &BytesStart<'_>) -> Result<Vec<(String, String)>> {
    e.attributes()
        .map(|a| {
            let a = a.map_err(|err| bad(format!("bad attribute: {err}")))?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a
                .unescape_value()
                .map_err(|err| bad(format!("bad value of attribute '{key}': {err}")))?
                .into_owned();
            Ok((key, value))
        })
        .collect()
}

fn attr<'a>(list: &'a [(String, String)], el: &str, name: &str) -> Result<&'a str> {
    list.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| bad(format!("<{el}> lacks attribute '{name}'")))
}

fn uuid_attr(list: &[(String, String)], el: &str, name: &str) -> Result<Uuid> {
    let v = attr(list, el, name)?;
    Uuid::parse_str(v).map_err(|e| bad(format!("<{el} {name}='{v}'> is not a UUID: {e}")))
}

fn num_attr<T: std::str::FromStr>(list: &[(String, String)], el: &str, name: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let v = attr(list, el, name)?;
    v.parse()
        .map_err(|e| bad(format!("<{el} {name}='{v}'> is not a number: {e}")))
}

/// Reads the text content up to the end of the current element.
fn read_text(reader: &mut Reader<&[u8]>, el: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Text(t)) => out.push_str(
                &t.unescape()
                    .map_err(|e| bad(format!("bad text in <{el}>: {e}")))?,
            ),
            Ok(Event::CData(t)) => out.push_str(&String::from_utf8_lossy(&t)),
            Ok(Event::End(_)) => return Ok(out),
            Ok(Event::Eof) => return Err(bad(format!("unterminated <{el}>"))),
            Ok(Event::Start(_)) | Ok(Event::Empty(_)) => {
                return Err(bad(format!("unexpected element inside <{el}>")))
            }
            Ok(_) => {}
            Err(e) => return Err(bad(format!("malformed XML: {e}"))),
        }
    }
}

fn parse(text: &str) -> Result<Cookie> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut guest: Option<(String, Uuid)> = None;
    let mut job_id: Option<Uuid> = None;
    let mut cookie = Cookie::new(String::new(), Uuid::nil(), Uuid::nil());
    let mut depth = 0usize;
    let mut saw_root = false;
    // Element whose children we are reading (lockstate, capabilities, statistics),
    // or an unknown element being skipped.
    let mut section: Option<String> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| bad(format!("malformed XML: {e}")))?;
        let (e, is_empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    section = None;
                }
                continue;
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(bad("a DOCTYPE is not allowed")),
            Event::Text(_) if depth <= 1 => return Err(bad("unexpected text")),
            _ => continue,
        };
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let a = attrs(&e)?;
        match (depth, section.as_deref()) {
            (0, _) => {
                if saw_root || name != ROOT {
                    return Err(bad(format!("root element is <{name}>, expected <{ROOT}>")));
                }
                saw_root = true;
                let version: u32 = num_attr(&a, ROOT, "version")?;
                if version != COOKIE_VERSION {
                    return Err(bad(format!(
                        "cookie version {version} is not supported (this host reads version {COOKIE_VERSION})"
                    )));
                }
            }
            (1, _) => match name.as_str() {
                "guest" => {
                    guest = Some((
                        attr(&a, "guest", "name")?.to_owned(),
                        uuid_attr(&a, "guest", "uuid")?,
                    ))
                }
                "job" => job_id = Some(uuid_attr(&a, "job", "id")?),
                "source" | "destination" => {
                    let host = HostIdentity {
                        hostname: attr(&a, &name, "hostname")?.to_owned(),
                        uuid: uuid_attr(&a, &name, "uuid")?,
                    };
                    if name == "source" {
                        cookie.source = Some(host);
                    } else {
                        cookie.destination = Some(host);
                    }
                }
                "feature" => {
                    let f = attr(&a, "feature", "name")?;
                    if !KNOWN_FEATURES.contains(&f) {
                        return Err(bad(format!(
                            "unknown mandatory migration cookie feature '{f}'"
                        )));
                    }
                    cookie.require(f);
                }
                "lockstate" => {
                    cookie.lockstate = Some(LockState {
                        driver: attr(&a, "lockstate", "driver")?.to_owned(),
                        leases: String::new(),
                    });
                }
                "graphics" => {
                    cookie.graphics = Some(GraphicsRelocation {
                        kind: attr(&a, "graphics", "type")?.to_owned(),
                        port: num_attr(&a, "graphics", "port")?,
                        tls_port: num_attr(&a, "graphics", "tlsPort")?,
                        listen: attr(&a, "graphics", "listen").ok().map(str::to_owned),
                        tls_subject: attr(&a, "graphics", "tlsSubject").ok().map(str::to_owned),
                    })
                }
                "nbd" => {
                    cookie.nbd = Some(Nbd {
                        port: match attr(&a, "nbd", "port") {
                            Ok(_) => Some(num_attr(&a, "nbd", "port")?),
                            Err(_) => None,
                        },
                        disks: Vec::new(),
                    })
                }
                "persistent" if !is_empty => {
                    cookie.persistent = Some(read_text(&mut reader, "persistent")?);
                    continue;
                }
                _ => {}
            },
            (2, Some("lockstate")) if name == "leases" && !is_empty => {
                let leases = read_text(&mut reader, "leases")?;
                if let Some(lock) = cookie.lockstate.as_mut() {
                    lock.leases = leases;
                }
                continue;
            }
            (2, Some("capabilities")) if name == "cap" => cookie.capabilities.push(Capability {
                name: attr(&a, "cap", "name")?.to_owned(),
                value: attr(&a, "cap", "value")?.to_owned(),
            }),
            (2, Some("nbd")) if name == "disk" => {
                let disk = NbdDisk {
                    target: attr(&a, "disk", "target")?.to_owned(),
                    capacity: num_attr(&a, "disk", "capacity")?,
                };
                if let Some(nbd) = cookie.nbd.as_mut() {
                    nbd.disks.push(disk);
                }
            }
            (2, Some("statistics")) if name == "stat" => cookie.statistics.push((
                attr(&a, "stat", "name")?.to_owned(),
                num_attr(&a, "stat", "value")?,
            )),
            _ => {}
        }
        if depth == 1 && !is_empty {
            section = Some(name);
        }
        if !is_empty {
            depth += 1;
        }
    }
    if !saw_root {
        return Err(bad("no root element"));
    }
    let (name, uuid) = guest.ok_or_else(|| bad("no <guest> element"))?;
    cookie.name = name;
    cookie.uuid = uuid;
    cookie.job_id = job_id.ok_or_else(|| bad("no <job> element"))?;
    for f in &cookie.features {
        let present = match f.as_str() {
            feature::LOCKSTATE => cookie.lockstate.is_some(),
            feature::PERSISTENT => cookie.persistent.is_some(),
            feature::GRAPHICS => cookie.graphics.is_some(),
            feature::CAPABILITIES => !cookie.capabilities.is_empty(),
            feature::STATISTICS => !cookie.statistics.is_empty(),
            feature::NBD => cookie.nbd.is_some(),
            _ => false,
        };
        if !present {
            return Err(bad(format!("mandatory feature '{f}' has no data")));
        }
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn host(name: &str, n: u128) -> HostIdentity {
        HostIdentity {
            hostname: name.into(),
            uuid: Uuid::from_u128(n),
        }
    }

    fn full() -> Cookie {
        let mut c = Cookie::new("web<1>", Uuid::from_u128(7), Uuid::from_u128(9));
        c.source = Some(host("a", 1));
        c.destination = Some(host("b", 2));
        c.lockstate = Some(LockState {
            driver: "none".into(),
            leases: "l&1".into(),
        });
        c.graphics = Some(GraphicsRelocation {
            kind: "spice".into(),
            port: 5901,
            tls_port: 5902,
            listen: Some("192.0.2.1".into()),
            tls_subject: Some("C=XX,O=Ex & Co,CN='b'".into()),
        });
        c.capabilities.push(Capability {
            name: "compression".into(),
            value: "lz4".into(),
        });
        c.persistent = Some("<domain type='test'><name>x</name></domain>".into());
        c.statistics.push(("downtime".into(), 12));
        c.nbd = Some(Nbd {
            port: Some(49153),
            disks: vec![NbdDisk {
                target: "vdb".into(),
                capacity: 4 << 20,
            }],
        });
        for f in [
            feature::PERSISTENT,
            feature::LOCKSTATE,
            feature::STATISTICS,
            feature::NBD,
        ] {
            c.require(f);
        }
        c
    }

    #[test]
    fn full_cookie_round_trips_and_is_nul_terminated() {
        let c = full();
        let bytes = c.encode().expect("encodes");
        assert_eq!(bytes.last(), Some(&0));
        assert!(bytes.starts_with(b"<migrated-cookie version=\"1\">"));
        let back = Cookie::decode(&bytes).expect("decodes").expect("non-empty");
        assert_eq!(back, c);
        assert_eq!(back.capability("compression"), Some("lz4"));
        assert_eq!(back.statistic("downtime"), Some(12));
    }

    #[test]
    fn nbd_of_begin_and_of_prepare_round_trip() {
        let mut begin = Cookie::new("a", Uuid::from_u128(1), Uuid::from_u128(2));
        begin.nbd = Some(Nbd {
            port: None,
            disks: vec![
                NbdDisk {
                    target: "vdb".into(),
                    capacity: 1 << 30,
                },
                NbdDisk {
                    target: "vdc".into(),
                    capacity: 512,
                },
            ],
        });
        begin.require(feature::NBD);
        let mut prepare = begin.clone();
        prepare.nbd = Some(Nbd {
            port: Some(49200),
            disks: Vec::new(),
        });
        for c in [begin, prepare] {
            let bytes = c.encode().expect("encodes");
            assert_eq!(Cookie::decode(&bytes).expect("decodes"), Some(c));
        }
        let bad = "<migrated-cookie version='1'><guest name='a' uuid='00000000-0000-0000-0000-000000000001'/>\
                   <job id='00000000-0000-0000-0000-000000000002'/><nbd port='99999'/></migrated-cookie>\0";
        assert!(Cookie::decode(bad.as_bytes()).is_err(), "port out of range");
    }

    #[test]
    fn empty_cookie_means_no_information() {
        assert_eq!(Cookie::decode(&[]).expect("empty is fine"), None);
    }

    #[test]
    fn oversized_cookie_is_refused_naming_size_and_limit() {
        let mut big = vec![b' '; MIGRATE_COOKIE_MAX + 1];
        big[MIGRATE_COOKIE_MAX] = 0;
        let err = Cookie::decode(&big).expect_err("16385 bytes");
        assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
        let msg = err.to_string();
        assert!(msg.contains("16385") && msg.contains("16384"), "{msg}");

        let mut c = full();
        c.persistent = Some("x".repeat(MIGRATE_COOKIE_MAX));
        let err = c.encode().expect_err("we never produce one either");
        assert!(matches!(
            err,
            Error::MigrateCookieTooLarge {
                max: MIGRATE_COOKIE_MAX,
                ..
            }
        ));
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let mut c = full();
        let base = c.encode().expect("encodes").len();
        let pad = MIGRATE_COOKIE_MAX - base;
        c.persistent = Some(format!(
            "{}{}",
            c.persistent.clone().unwrap_or_default(),
            " ".repeat(pad)
        ));
        let bytes = c.encode().expect("exactly at the limit");
        assert_eq!(bytes.len(), MIGRATE_COOKIE_MAX);
        Cookie::decode(&bytes).expect("accepted");
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        for input in [
            &b"garbage"[..],
            b"garbage\0",
            b"<migrated-cookie version='1'>\0",
            b"<other/>\0",
            b"<migrated-cookie version='2'><guest name='a' uuid='00000000-0000-0000-0000-000000000001'/><job id='00000000-0000-0000-0000-000000000001'/></migrated-cookie>\0",
            b"<migrated-cookie version='1'><job id='x'/></migrated-cookie>\0",
            b"<migrated-cookie version='1'></migrated-cookie>\0",
            b"\xff\xfe\0",
            b"<!DOCTYPE x><migrated-cookie version='1'/>\0",
        ] {
            let err = Cookie::decode(input).expect_err("refused");
            assert_eq!(err.code(), ErrorCode::InternalError, "{err}");
            assert!(err.to_string().contains("migration cookie"), "{err}");
        }
    }

    #[test]
    fn unknown_mandatory_feature_is_refused_but_unknown_elements_are_skipped() {
        let base = "<migrated-cookie version='1'><guest name='a' uuid='00000000-0000-0000-0000-000000000001'/>\
                    <job id='00000000-0000-0000-0000-000000000002'/>";
        let err = Cookie::decode(
            format!("{base}<feature name='frobnicate'/></migrated-cookie>\0").as_bytes(),
        )
        .expect_err("unknown feature");
        assert!(err.to_string().contains("'frobnicate'"), "{err}");
        let ok = Cookie::decode(
            format!("{base}<future a='1'><x/></future></migrated-cookie>\0").as_bytes(),
        )
        .expect("optional unknown data is skipped")
        .expect("cookie");
        assert_eq!(ok.name, "a");
    }

    #[test]
    fn mandatory_feature_without_its_data_is_refused() {
        let text = "<migrated-cookie version='1'><guest name='a' uuid='00000000-0000-0000-0000-000000000001'/>\
                    <job id='00000000-0000-0000-0000-000000000002'/><feature name='persistent'/></migrated-cookie>\0";
        assert!(Cookie::decode(text.as_bytes()).is_err());
    }

    #[test]
    fn same_host_is_an_internal_error_naming_the_uuid() {
        let c = full();
        let err = c
            .check_not_same_host(&host("b", 2), Role::Source)
            .expect_err("same as destination");
        assert_eq!(err.code(), ErrorCode::InternalError);
        assert!(
            err.to_string().contains(
                "Attempt to migrate guest to the same host 00000000-0000-0000-0000-000000000002"
            ),
            "{err}"
        );
        c.check_not_same_host(&host("c", 3), Role::Source)
            .expect("another host");
        c.check_not_same_host(&host("b", 2), Role::Destination)
            .expect("the destination itself is not the peer of the destination");
        assert!(c
            .check_not_same_host(&host("a", 1), Role::Destination)
            .is_err());
    }
}
