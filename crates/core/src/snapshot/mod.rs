//! The snapshot metadata of one domain, as libvirt keeps it
//! (`virDomainSnapshotObjList` and src/conf/virdomainmomentobjlist.c): a
//! forest of [`SnapshotDef`]s linked by their parent names, with at most one
//! current snapshot. Drivers keep one per domain and do the hypervisor part
//! (disk images, memory) around these bookkeeping steps; both drivers share
//! the listing filters, the parent links and the deletion rules here.

mod prepare;

pub use prepare::{
    align_disks, assign_external_names, check_create_flags, check_revert_flags,
    check_transient_revert, check_undefine, external_name, now, state_of,
};

use crate::error::{Error, Result};
use crate::flags::{check_flags, snapshot as snapflags};
use crate::xml::{tree_children, SnapshotDef, SnapshotParse, SnapshotState};

/// The snapshots of one domain, in creation order (so parents come before
/// their children, which libvirt's TOPOLOGICAL listing promises).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshots {
    list: Vec<SnapshotDef>,
    current: Option<String>,
}

/// libvirt's error for a name that is not there.
pub fn not_found(name: &str) -> Error {
    Error::NoDomainSnapshot {
        reason: format!("no domain snapshot with matching name '{name}'"),
    }
}

impl Snapshots {
    /// How many snapshots there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The snapshot called `name`.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN_SNAPSHOT` with libvirt's message.
    pub fn get(&self, name: &str) -> Result<&SnapshotDef> {
        self.list
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found(name))
    }

    /// The current snapshot's name.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Makes `name` (which must exist) the current snapshot, or none.
    pub fn set_current(&mut self, name: Option<&str>) {
        self.current = name
            .filter(|n| self.list.iter().any(|s| s.name == *n))
            .map(str::to_owned);
    }

    /// Adds a new snapshot whose state and domain the driver filled in: its
    /// parent is the current snapshot and it becomes current.
    ///
    /// # Errors
    /// libvirt's "domain moment … already exists" for a taken name.
    pub fn add(&mut self, mut def: SnapshotDef) -> Result<()> {
        if self.list.iter().any(|s| s.name == def.name) {
            return Err(Error::SnapshotExists { name: def.name });
        }
        def.parent = self.current.clone();
        def.current = false;
        self.current = Some(def.name.clone());
        self.list.push(def);
        Ok(())
    }

    /// Checks a new snapshot's name before the driver takes it (so nothing
    /// is done to the disks for a name that is taken).
    ///
    /// # Errors
    /// As [`Snapshots::add`].
    pub fn check_new(&self, name: &str) -> Result<()> {
        if self.list.iter().any(|s| s.name == name) {
            return Err(Error::SnapshotExists {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// `VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE`: restores or replaces the
    /// metadata of a snapshot (`virDomainSnapshotRedefinePrep`); with
    /// `make_current` it becomes the current one.
    ///
    /// # Errors
    /// libvirt's refusals: a parent that does not exist, a parent loop, a
    /// redefinition without the domain it was taken of.
    pub fn redefine(&mut self, mut def: SnapshotDef, make_current: bool) -> Result<()> {
        if def.domain.is_none() {
            return Err(Error::SnapshotConfig {
                reason: format!(
                    "snapshot '{}' lacks the domain definition it was taken of",
                    def.name
                ),
            });
        }
        if let Some(parent) = &def.parent {
            if *parent == def.name || self.is_ancestor(&def.name, parent) {
                return Err(Error::invalid(format!(
                    "parent {parent} would create cycle to {}",
                    def.name
                )));
            }
            if self.get(parent).is_err() {
                return Err(Error::invalid(format!(
                    "parent {parent} for snapshot {} not found",
                    def.name
                )));
            }
        }
        def.current = false;
        let name = def.name.clone();
        match self.list.iter_mut().find(|s| s.name == name) {
            Some(slot) => *slot = def,
            None => self.list.push(def),
        }
        if make_current {
            self.current = Some(name);
        }
        Ok(())
    }

    /// Whether `ancestor` is an ancestor of (or is) `name`.
    fn is_ancestor(&self, ancestor: &str, name: &str) -> bool {
        let mut cur = Some(name.to_owned());
        // Bounded: a chain visits each snapshot at most once.
        for _ in 0..=self.list.len() {
            match cur {
                Some(n) if n == ancestor => return true,
                Some(n) => cur = self.get(&n).ok().and_then(|s| s.parent.clone()),
                None => return false,
            }
        }
        false
    }

    /// The names of `name`'s children.
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SnapshotDef> + 'a {
        self.list
            .iter()
            .filter(move |s| s.parent.as_deref() == Some(name))
    }

    /// `name` and its descendants, parents first.
    fn subtree(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_owned()];
        let mut i = 0;
        while i < out.len() {
            let kids: Vec<String> = self.children(&out[i]).map(|s| s.name.clone()).collect();
            out.extend(kids);
            i += 1;
        }
        out
    }

    /// The names `virDomainListAllSnapshots` (`of` = `None`) or
    /// `virDomainSnapshotListAllChildren` (`of` = the snapshot) answer for
    /// `flags`, parents before children.
    ///
    /// # Errors
    /// Unknown flags; `VIR_ERR_NO_DOMAIN_SNAPSHOT` for an unknown `of`.
    pub fn list(&self, of: Option<&str>, flags: u32) -> Result<Vec<String>> {
        use snapflags::list::*;
        let api = if of.is_some() {
            "virDomainSnapshotListAllChildren"
        } else {
            "virDomainListAllSnapshots"
        };
        check_flags(
            api,
            u64::from(flags),
            u64::from(ROOTS | TOPOLOGICAL | FILTERS_ALL),
        )?;
        let candidates: Vec<&SnapshotDef> = match of {
            None if flags & ROOTS != 0 => self.list.iter().filter(|s| s.parent.is_none()).collect(),
            None => self.list.iter().collect(),
            Some(name) => {
                self.get(name)?;
                let names = if flags & DESCENDANTS != 0 {
                    self.subtree(name).split_off(1)
                } else {
                    self.children(name).map(|s| s.name.clone()).collect()
                };
                self.list
                    .iter()
                    .filter(|s| names.contains(&s.name))
                    .collect()
            }
        };
        // Every snapshot here has metadata: asking only for ones without
        // lists nothing (libvirt's virDomainMomentObjListGetNames).
        if flags & (METADATA | NO_METADATA) == NO_METADATA {
            return Ok(Vec::new());
        }
        Ok(candidates
            .into_iter()
            .filter(|s| self.matches(s, flags))
            .map(|s| s.name.clone())
            .collect())
    }

    fn matches(&self, snap: &SnapshotDef, flags: u32) -> bool {
        use snapflags::list::*;
        let leaf = self.children(&snap.name).next().is_none();
        let leaves_ok = match flags & (LEAVES | NO_LEAVES) {
            LEAVES => leaf,
            NO_LEAVES => !leaf,
            _ => true,
        };
        let state_bits = flags & (INACTIVE | ACTIVE | DISK_ONLY);
        let state_ok = state_bits == 0
            || match snap.state {
                SnapshotState::Shutoff => state_bits & INACTIVE != 0,
                SnapshotState::DiskSnapshot => state_bits & DISK_ONLY != 0,
                _ => state_bits & ACTIVE != 0,
            };
        let location_ok = match flags & (INTERNAL | EXTERNAL) {
            INTERNAL => !snap.is_external(),
            EXTERNAL => snap.is_external(),
            _ => true,
        };
        leaves_ok && state_ok && location_ok
    }

    /// `virDomainSnapshotDelete`'s bookkeeping: removes `name` (and with
    /// `CHILDREN` its descendants, with `CHILDREN_ONLY` only those), links
    /// the children of a removed snapshot to its parent, and moves the
    /// current mark to the nearest survivor as libvirt does. Returns the
    /// removed snapshots, children before parents, for the driver to delete
    /// their data.
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN_SNAPSHOT`. Flags are the driver's to check.
    pub fn remove(&mut self, name: &str, flags: u32) -> Result<Vec<SnapshotDef>> {
        use snapflags::delete::{CHILDREN, CHILDREN_ONLY};
        let parent = self.get(name)?.parent.clone();
        let mut doomed = if flags & (CHILDREN | CHILDREN_ONLY) != 0 {
            self.subtree(name)
        } else {
            vec![name.to_owned()]
        };
        if flags & CHILDREN_ONLY != 0 {
            doomed.remove(0);
        }
        let current = self.current.clone();
        if let Some(cur) = current.as_deref() {
            if doomed.iter().any(|d| d == cur) {
                // A removed descendant was current: its deleted ancestor's
                // place goes to the snapshot deleted (children-only keeps it).
                self.current = if flags & CHILDREN_ONLY != 0 {
                    Some(name.to_owned())
                } else {
                    parent.clone()
                };
            }
        }
        if flags & (CHILDREN | CHILDREN_ONLY) == 0 {
            for s in self.list.iter_mut() {
                if s.parent.as_deref() == Some(name) {
                    s.parent.clone_from(&parent);
                }
            }
        }
        let mut removed = Vec::new();
        for d in doomed.iter().rev() {
            if let Some(pos) = self.list.iter().position(|s| s.name == *d) {
                removed.push(self.list.remove(pos));
            }
        }
        Ok(removed)
    }

    /// `DOMAIN_SNAPSHOT_LOOKUP_BY_NAME` / `HAS_METADATA`: that `name` exists.
    ///
    /// # Errors
    /// Unknown flags; `VIR_ERR_NO_DOMAIN_SNAPSHOT`.
    pub fn lookup(&self, name: &str, flags: u32) -> Result<()> {
        check_flags("virDomainSnapshotLookupByName", u64::from(flags), 0)?;
        self.get(name).map(drop)
    }

    /// `DOMAIN_SNAPSHOT_GET_XML_DESC`: the public XML of `name`.
    ///
    /// # Errors
    /// Unknown flags; `VIR_ERR_NO_DOMAIN_SNAPSHOT`.
    pub fn xml_desc(&self, name: &str, flags: u32) -> Result<String> {
        use snapflags::xml::SECURE;
        check_flags(
            "virDomainSnapshotGetXMLDesc",
            u64::from(flags),
            u64::from(SECURE),
        )?;
        Ok(self.get(name)?.format(flags & SECURE != 0, false))
    }

    /// `DOMAIN_SNAPSHOT_CURRENT` and friends: the current snapshot's name.
    ///
    /// # Errors
    /// Unknown flags.
    pub fn current_of(&self, flags: u32) -> Result<Option<String>> {
        check_flags("virDomainSnapshotCurrent", u64::from(flags), 0)?;
        Ok(self.current.clone())
    }

    /// `DOMAIN_SNAPSHOT_GET_PARENT`: the parent of `name`.
    ///
    /// # Errors
    /// Unknown flags; `VIR_ERR_NO_DOMAIN_SNAPSHOT` for an unknown name or
    /// a root (libvirt's "does not have a parent").
    pub fn parent_of(&self, name: &str, flags: u32) -> Result<String> {
        check_flags("virDomainSnapshotGetParent", u64::from(flags), 0)?;
        self.get(name)?
            .parent
            .clone()
            .ok_or_else(|| Error::NoDomainSnapshot {
                reason: format!("snapshot '{name}' does not have a parent"),
            })
    }

    /// The stored form: every snapshot in libvirt's internal layout (with
    /// `<active>` marking the current one) inside `<snapshots>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<snapshots>\n");
        for s in &self.list {
            let mut s = s.clone();
            s.current = self.current.as_deref() == Some(s.name.as_str());
            out.push_str(&s.format(true, true));
        }
        out.push_str("</snapshots>\n");
        out
    }

    /// [`Snapshots::to_xml`] for a file that must be read back: refused
    /// before it is written when it would exceed what a reader accepts.
    ///
    /// # Errors
    /// `VIR_ERR_CONFIG_UNSUPPORTED` past [`crate::xml::MAX_XML_BYTES`].
    pub fn to_stored(&self) -> Result<String> {
        let xml = self.to_xml();
        if xml.len() > crate::xml::MAX_XML_BYTES {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "snapshot metadata of this domain would take {} bytes, more than {}",
                    xml.len(),
                    crate::xml::MAX_XML_BYTES
                ),
            });
        }
        Ok(xml)
    }

    /// Reads [`Snapshots::to_xml`]'s form back.
    ///
    /// # Errors
    /// [`Error::SnapshotXml`] for a document that is not that form; a
    /// snapshot whose parent is missing is an error too (the file is
    /// damaged, and guessing would lose the tree).
    pub fn from_xml(xml: &str) -> Result<Self> {
        let how = SnapshotParse {
            redefine: true,
            internal: true,
        };
        let defs = tree_children(xml, "snapshots", |el, text| {
            SnapshotDef::from_element(el, text, how, 0)
        })
        .map_err(Error::SnapshotXml)?;
        let mut out = Self::default();
        for def in defs {
            if out.list.iter().any(|s| s.name == def.name) {
                return Err(Error::SnapshotExists { name: def.name });
            }
            if def.current {
                out.current = Some(def.name.clone());
            }
            out.list.push(def);
        }
        for s in &out.list {
            if let Some(p) = &s.parent {
                out.get(p)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::snapshot::{delete, list};
    use crate::xml::{SnapshotMemory, SnapshotState};

    fn snap(name: &str, state: SnapshotState) -> SnapshotDef {
        SnapshotDef {
            name: name.into(),
            description: None,
            state,
            creation_time: 1,
            parent: None,
            memory: SnapshotMemory::default(),
            disks: Vec::new(),
            domain: crate::xml::DomainDef::parse(
                "<domain type='test'><name>vm</name><memory unit='MiB'>4</memory>\
                 <os><type>hvm</type></os></domain>",
            )
            .ok(),
            current: false,
        }
    }

    /// a ─ b ─ c, and d under a (made after reverting to a).
    fn forest() -> Snapshots {
        let mut s = Snapshots::default();
        s.add(snap("a", SnapshotState::Shutoff)).expect("a");
        s.add(snap("b", SnapshotState::Running)).expect("b");
        s.add(snap("c", SnapshotState::Running)).expect("c");
        s.set_current(Some("a"));
        s.add(snap("d", SnapshotState::Paused)).expect("d");
        s
    }

    #[test]
    fn new_snapshots_hang_under_the_current_one() {
        let s = forest();
        assert_eq!(s.get("b").expect("b").parent.as_deref(), Some("a"));
        assert_eq!(s.get("d").expect("d").parent.as_deref(), Some("a"));
        assert_eq!(s.current(), Some("d"));
        let mut s = s;
        assert!(matches!(
            s.add(snap("b", SnapshotState::Running)),
            Err(Error::SnapshotExists { .. })
        ));
    }

    #[test]
    fn listing_filters_as_libvirt() {
        let s = forest();
        assert_eq!(s.list(None, 0).expect("all"), ["a", "b", "c", "d"]);
        assert_eq!(s.list(None, list::ROOTS).expect("roots"), ["a"]);
        assert_eq!(s.list(None, list::LEAVES).expect("leaves"), ["c", "d"]);
        assert_eq!(s.list(None, list::NO_LEAVES).expect("inner"), ["a", "b"]);
        assert_eq!(s.list(None, list::INACTIVE).expect("inactive"), ["a"]);
        assert_eq!(s.list(None, list::ACTIVE).expect("active"), ["b", "c", "d"]);
        assert!(s.list(None, list::NO_METADATA).expect("none").is_empty());
        assert_eq!(s.list(Some("a"), 0).expect("children"), ["b", "d"]);
        assert_eq!(
            s.list(Some("a"), list::DESCENDANTS).expect("descendants"),
            ["b", "c", "d"]
        );
        assert!(matches!(
            s.list(Some("zz"), 0),
            Err(Error::NoDomainSnapshot { .. })
        ));
        assert!(matches!(
            s.list(None, 1 << 20),
            Err(Error::UnknownFlags { .. })
        ));
    }

    #[test]
    fn deleting_one_reparents_its_children() {
        let mut s = forest();
        let gone = s.remove("a", 0).expect("remove a");
        assert_eq!(gone.len(), 1);
        assert_eq!(s.list(None, list::ROOTS).expect("roots"), ["b", "d"]);
        assert_eq!(s.current(), Some("d"));
    }

    #[test]
    fn deleting_children_moves_the_current_mark() {
        let mut s = forest();
        let gone: Vec<String> = s
            .remove("a", delete::CHILDREN_ONLY)
            .expect("children only")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(gone, ["c", "d", "b"]);
        assert_eq!(s.current(), Some("a"));

        let mut s = forest();
        s.set_current(Some("c"));
        s.remove("b", delete::CHILDREN).expect("subtree");
        assert_eq!(s.list(None, 0).expect("left"), ["a", "d"]);
        assert_eq!(s.current(), Some("a"));
    }

    #[test]
    fn redefinition_checks_the_parent() {
        let mut s = forest();
        let mut orphan = snap("e", SnapshotState::Running);
        orphan.parent = Some("nope".into());
        assert!(s.redefine(orphan, false).is_err());
        let mut cycle = snap("a", SnapshotState::Shutoff);
        cycle.parent = Some("c".into());
        assert!(s.redefine(cycle, false).is_err());
        let mut fine = snap("e", SnapshotState::Running);
        fine.parent = Some("c".into());
        s.redefine(fine, true).expect("redefine");
        assert_eq!(s.current(), Some("e"));
    }

    #[test]
    fn the_stored_form_round_trips() {
        let s = forest();
        let back = Snapshots::from_xml(&s.to_xml()).expect("loads");
        assert_eq!(back.list(None, 0).expect("names"), ["a", "b", "c", "d"]);
        assert_eq!(back.current(), Some("d"));
        assert_eq!(back.get("c").expect("c").parent.as_deref(), Some("b"));
        assert!(Snapshots::from_xml("<snapshots><bogus/></snapshots>").is_err());
        assert!(Snapshots::from_xml("<other/>").is_err());
    }
}
