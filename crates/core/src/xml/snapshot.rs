//! The `<domainsnapshot>` document of libvirt's snapshot API
//! (src/conf/snapshot_conf.c): what a client asks for when it creates a
//! snapshot, and what `virDomainSnapshotGetXMLDesc` answers.
//!
//! Reading is strict as for `<domain>`: an unknown element or attribute is
//! an error naming its path. As libvirt, the elements only a snapshot that
//! exists can carry (`<state>`, `<creationTime>`, `<parent>`, `<domain>`)
//! are read only when the snapshot is redefined ([`SnapshotParse::redefine`]);
//! a new snapshot takes them from the domain.

use std::fmt;
use std::str::FromStr;

use super::domain::DomainDef;
use super::error::{Result, XmlError};
use super::read::{once, Node};
use super::tree::{self, Element};
use super::write::{AttrValue, Writer};
use super::FormatOptions;

/// `virDomainSnapshotState`: the domain's state when the snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    /// `nostate`.
    NoState,
    /// `running`.
    Running,
    /// `blocked`.
    Blocked,
    /// `paused`.
    Paused,
    /// `shutdown`.
    Shutdown,
    /// `shutoff`.
    Shutoff,
    /// `crashed`.
    Crashed,
    /// `pmsuspended`.
    PmSuspended,
    /// `disk-snapshot`: disks only, of a running domain.
    DiskSnapshot,
}

const STATES: &[(SnapshotState, &str)] = &[
    (SnapshotState::NoState, "nostate"),
    (SnapshotState::Running, "running"),
    (SnapshotState::Blocked, "blocked"),
    (SnapshotState::Paused, "paused"),
    (SnapshotState::Shutdown, "shutdown"),
    (SnapshotState::Shutoff, "shutoff"),
    (SnapshotState::Crashed, "crashed"),
    (SnapshotState::PmSuspended, "pmsuspended"),
    (SnapshotState::DiskSnapshot, "disk-snapshot"),
];

impl SnapshotState {
    /// Whether reverting to it leaves the domain running or paused.
    pub fn is_active(self) -> bool {
        matches!(self, SnapshotState::Running | SnapshotState::Paused)
    }
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = STATES
            .iter()
            .find(|(s, _)| s == self)
            .map_or("nostate", |(_, n)| n);
        f.write_str(name)
    }
}

impl FromStr for SnapshotState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        STATES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(state, _)| *state)
            .ok_or_else(|| "unknown snapshot state".to_owned())
    }
}

/// `virDomainSnapshotLocation`: where a memory or disk snapshot lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotLocation {
    /// `no`: not snapshotted.
    No,
    /// `internal`: inside the disk image (qcow2).
    Internal,
    /// `external`: in a separate file.
    External,
    /// `manual`: the user takes care of it.
    Manual,
}

const LOCATIONS: &[(SnapshotLocation, &str)] = &[
    (SnapshotLocation::No, "no"),
    (SnapshotLocation::Internal, "internal"),
    (SnapshotLocation::External, "external"),
    (SnapshotLocation::Manual, "manual"),
];

impl fmt::Display for SnapshotLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = LOCATIONS
            .iter()
            .find(|(l, _)| l == self)
            .map_or("no", |(_, n)| n);
        f.write_str(name)
    }
}

impl FromStr for SnapshotLocation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        LOCATIONS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(loc, _)| *loc)
            .ok_or_else(|| "unknown snapshot location".to_owned())
    }
}

impl AttrValue for SnapshotLocation {
    fn write_value(&self, out: &mut String) -> bool {
        out.push_str(&self.to_string());
        true
    }
}

/// `<memory snapshot=… file=…/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotMemory {
    /// Where the memory goes; `None` lets the driver choose.
    pub snapshot: Option<SnapshotLocation>,
    /// The file of an external memory snapshot.
    pub file: Option<String>,
}

/// `<disks><disk name=… snapshot=…>`: one disk of the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDisk {
    /// The disk's target (`vda`) or source path.
    pub name: String,
    /// Where its snapshot goes; `None` lets the driver choose.
    pub snapshot: Option<SnapshotLocation>,
    /// `type` of an external snapshot's source (`file`, `block`).
    pub source_type: Option<String>,
    /// The file of an external snapshot.
    pub source_file: Option<String>,
    /// `<driver type=…>` of an external snapshot.
    pub driver_type: Option<String>,
}

/// How [`SnapshotDef::parse`] reads a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotParse {
    /// `VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE`: the document describes an
    /// existing snapshot, so its state, time, parent and domain are read.
    pub redefine: bool,
    /// The driver's own stored form: also `<active>` (whether it is current).
    pub internal: bool,
}

/// A domain snapshot's definition (`virDomainSnapshotDef`).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDef {
    /// The snapshot's name, unique within its domain.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The domain's state when it was taken.
    pub state: SnapshotState,
    /// Seconds since the epoch when it was taken.
    pub creation_time: i64,
    /// The snapshot that was current when it was taken.
    pub parent: Option<String>,
    /// The memory part.
    pub memory: SnapshotMemory,
    /// The disks, in the domain's order.
    pub disks: Vec<SnapshotDisk>,
    /// The domain definition when it was taken.
    pub domain: Option<DomainDef>,
    /// Stored form only: whether it is the domain's current snapshot.
    pub current: bool,
}

impl SnapshotDef {
    /// Parses a `<domainsnapshot>` document. A missing name becomes the
    /// creation time in seconds, as libvirt names it.
    ///
    /// # Errors
    /// Any [`XmlError`] of malformed or unknown content; a redefinition
    /// without a name or a state.
    pub fn parse(xml: &str, how: SnapshotParse, now: i64) -> Result<Self> {
        let root = tree::parse(xml)?;
        Self::from_element(&root, xml, how, now)
    }

    /// Reads one `<domainsnapshot>` element of `xml`.
    pub(crate) fn from_element(
        root: &Element,
        xml: &str,
        how: SnapshotParse,
        now: i64,
    ) -> Result<Self> {
        if root.name != "domainsnapshot" {
            return Err(XmlError::NotASnapshot {
                found: format!("<{}>", root.name),
            });
        }
        let node = Node::root(root);
        let mut name = None;
        let mut description = None;
        let mut state = None;
        let mut creation_time = None;
        let mut parent = None;
        let mut memory = None;
        let mut disks = None;
        let mut domain = None;
        let mut active = None;
        for c in node.children() {
            match c.name() {
                "name" => once(&mut name, c, Node::text)?,
                "description" => once(&mut description, c, Node::text)?,
                "state" => once(&mut state, c, Node::text_parse::<SnapshotState>)?,
                "creationTime" => once(&mut creation_time, c, Node::text_parse::<i64>)?,
                "parent" => once(&mut parent, c, read_parent)?,
                "memory" => once(&mut memory, c, read_memory)?,
                "disks" => once(&mut disks, c, read_disks)?,
                "domain" => once(&mut domain, c, |n| {
                    let span = n.element().span.clone();
                    let text = xml.get(span).unwrap_or_default();
                    DomainDef::parse(text)
                })?,
                "active" if how.internal => once(&mut active, c, Node::text_parse::<u8>)?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        let name = match name {
            Some(n) if !n.is_empty() => n,
            _ if how.redefine => {
                return Err(XmlError::MissingElement {
                    path: "domainsnapshot/name".into(),
                })
            }
            _ => now.to_string(),
        };
        let (state, creation_time, parent, domain) = if how.redefine {
            let state = state.ok_or_else(|| XmlError::MissingElement {
                path: "domainsnapshot/state".into(),
            })?;
            (state, creation_time.unwrap_or(now), parent, domain)
        } else {
            // The driver fills the state and the domain in.
            (SnapshotState::NoState, now, None, None)
        };
        Ok(Self {
            name,
            description,
            state,
            creation_time,
            parent,
            memory: memory.unwrap_or_default(),
            disks: disks.unwrap_or_default(),
            domain,
            current: active.is_some_and(|a| a != 0),
        })
    }

    /// Whether any part lives outside the disk images
    /// (`virDomainSnapshotIsExternal`).
    pub fn is_external(&self) -> bool {
        self.memory.snapshot == Some(SnapshotLocation::External)
            || self
                .disks
                .iter()
                .any(|d| d.snapshot == Some(SnapshotLocation::External))
    }

    /// Formats the snapshot in libvirt's layout; `secure` includes the
    /// domain's secrets, `internal` adds `<active>` (the stored form).
    pub fn format(&self, secure: bool, internal: bool) -> String {
        let mut w = Writer::with_capacity(4096);
        self.write(&mut w, secure, internal);
        w.finish()
    }

    pub(crate) fn write(&self, w: &mut Writer, secure: bool, internal: bool) {
        w.elem("domainsnapshot", &[], |w| {
            w.text("name", &[], &self.name);
            w.opt_text("description", self.description.as_deref());
            w.text("state", &[], &self.state.to_string());
            if let Some(parent) = &self.parent {
                w.elem("parent", &[], |w| w.text("name", &[], parent));
            }
            w.text("creationTime", &[], &self.creation_time.to_string());
            if self.memory.snapshot.is_some() || self.memory.file.is_some() {
                w.empty(
                    "memory",
                    &[
                        ("snapshot", &self.memory.snapshot),
                        ("file", &self.memory.file),
                    ],
                );
            }
            if !self.disks.is_empty() {
                w.elem("disks", &[], |w| {
                    for d in &self.disks {
                        write_disk(w, d);
                    }
                });
            }
            if let Some(dom) = &self.domain {
                let xml = dom.format(&FormatOptions {
                    secure,
                    inactive: true,
                    migratable: false,
                });
                for line in xml.lines() {
                    w.raw(line);
                }
            }
            if internal {
                w.text("active", &[], if self.current { "1" } else { "0" });
            }
        });
    }
}

fn write_disk(w: &mut Writer, d: &SnapshotDisk) {
    let attrs: [(&str, &dyn AttrValue); 3] = [
        ("name", &d.name),
        ("snapshot", &d.snapshot),
        ("type", &d.source_type),
    ];
    w.elem("disk", &attrs, |w| {
        if let Some(t) = &d.driver_type {
            w.empty("driver", &[("type", t)]);
        }
        if let Some(f) = &d.source_file {
            w.empty("source", &[("file", f)]);
        }
    });
}

fn read_parent(node: Node<'_>) -> Result<String> {
    let mut name = None;
    for c in node.children() {
        match c.name() {
            "name" => once(&mut name, c, Node::text)?,
            _ => return Err(c.unsupported()),
        }
    }
    let path = format!("{}/name", node.path());
    node.finish()?;
    name.ok_or(XmlError::MissingElement { path })
}

fn read_memory(node: Node<'_>) -> Result<SnapshotMemory> {
    node.leaf(|n| {
        Ok(SnapshotMemory {
            snapshot: n.attr_parse::<SnapshotLocation>("snapshot")?,
            file: n.attr("file"),
        })
    })
}

fn read_disks(node: Node<'_>) -> Result<Vec<SnapshotDisk>> {
    let mut disks = Vec::new();
    for c in node.children() {
        match c.name() {
            "disk" => disks.push(read_disk(c)?),
            _ => return Err(c.unsupported()),
        }
    }
    node.finish()?;
    Ok(disks)
}

fn read_disk(mut node: Node<'_>) -> Result<SnapshotDisk> {
    let mut disk = SnapshotDisk {
        name: node.req_attr("name")?,
        snapshot: node.attr_parse::<SnapshotLocation>("snapshot")?,
        source_type: node.attr("type"),
        ..SnapshotDisk::default()
    };
    let mut source = None;
    let mut driver = None;
    for c in node.children() {
        match c.name() {
            "source" => once(&mut source, c, |n| n.leaf(|n| Ok(n.attr("file"))))?,
            "driver" => once(&mut driver, c, |n| n.leaf(|n| Ok(n.attr("type"))))?,
            _ => return Err(c.unsupported()),
        }
    }
    node.finish()?;
    disk.source_file = source.flatten();
    disk.driver_type = driver.flatten();
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "<domain type='test'><name>vm</name><memory unit='MiB'>4</memory>\
                          <os><type>hvm</type></os></domain>";

    #[test]
    fn a_new_snapshot_reads_name_description_memory_and_disks_only() {
        let xml = format!(
            "<domainsnapshot><name>s1</name><description>before upgrade</description>\
             <state>paused</state><creationTime>5</creationTime>\
             <parent><name>s0</name></parent>\
             <memory snapshot='internal'/>\
             <disks><disk name='vda' snapshot='internal'/></disks>{DOMAIN}</domainsnapshot>"
        );
        let def = SnapshotDef::parse(&xml, SnapshotParse::default(), 1000).expect("parses");
        assert_eq!(def.name, "s1");
        assert_eq!(def.description.as_deref(), Some("before upgrade"));
        assert_eq!(def.creation_time, 1000);
        assert_eq!(def.parent, None);
        assert!(def.domain.is_none());
        assert_eq!(def.memory.snapshot, Some(SnapshotLocation::Internal));
        assert_eq!(def.disks[0].name, "vda");
    }

    #[test]
    fn a_missing_name_becomes_the_creation_time() {
        let def = SnapshotDef::parse("<domainsnapshot/>", SnapshotParse::default(), 1234)
            .expect("parses");
        assert_eq!(def.name, "1234");
    }

    #[test]
    fn redefinition_round_trips_through_the_stored_form() {
        let xml = format!(
            "<domainsnapshot><name>s1</name><state>running</state>\
             <creationTime>42</creationTime><parent><name>s0</name></parent>\
             <memory snapshot='internal'/>\
             <disks><disk name='vda' snapshot='external' type='file'>\
             <driver type='qcow2'/><source file='/x.qcow2'/></disk></disks>\
             {DOMAIN}<active>1</active></domainsnapshot>"
        );
        let how = SnapshotParse {
            redefine: true,
            internal: true,
        };
        let def = SnapshotDef::parse(&xml, how, 0).expect("parses");
        assert_eq!(def.state, SnapshotState::Running);
        assert_eq!(def.creation_time, 42);
        assert_eq!(def.parent.as_deref(), Some("s0"));
        assert!(def.current);
        assert!(def.is_external());
        assert_eq!(def.domain.as_ref().map(|d| d.name.as_str()), Some("vm"));
        let again = SnapshotDef::parse(&def.format(true, true), how, 0).expect("reparses");
        assert_eq!(again, def);
        // The public form has no <active>.
        assert!(!def.format(false, false).contains("<active>"));
    }

    #[test]
    fn public_layout_is_libvirts() {
        let def = SnapshotDef {
            name: "s1".into(),
            description: None,
            state: SnapshotState::Shutoff,
            creation_time: 7,
            parent: Some("s0".into()),
            memory: SnapshotMemory {
                snapshot: Some(SnapshotLocation::No),
                file: None,
            },
            disks: vec![SnapshotDisk {
                name: "vda".into(),
                snapshot: Some(SnapshotLocation::Internal),
                ..SnapshotDisk::default()
            }],
            domain: None,
            current: false,
        };
        assert_eq!(
            def.format(false, false),
            "<domainsnapshot>\n  <name>s1</name>\n  <state>shutoff</state>\n  <parent>\n    \
             <name>s0</name>\n  </parent>\n  <creationTime>7</creationTime>\n  \
             <memory snapshot='no'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n  \
             </disks>\n</domainsnapshot>\n"
        );
    }

    #[test]
    fn bad_documents_are_refused() {
        let how = SnapshotParse::default();
        for bad in [
            "<domainsnapshot>",
            "<domain/>",
            "<domainsnapshot><bogus/></domainsnapshot>",
            "<domainsnapshot><memory snapshot='sideways'/></domainsnapshot>",
            "<domainsnapshot><name>a</name><name>b</name></domainsnapshot>",
            "<domainsnapshot><active>1</active></domainsnapshot>",
        ] {
            assert!(SnapshotDef::parse(bad, how, 0).is_err(), "{bad} accepted");
        }
        let redefine = SnapshotParse {
            redefine: true,
            internal: false,
        };
        assert!(SnapshotDef::parse(
            "<domainsnapshot><name>a</name></domainsnapshot>",
            redefine,
            0
        )
        .is_err());
    }
}
