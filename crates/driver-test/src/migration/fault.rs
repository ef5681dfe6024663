//! Test-only fault injection for the data plane: a guest whose definition
//! carries
//!
//! ```xml
//! <metadata>
//!   <migrated:fault xmlns:migrated="https://migrated.dev/xmlns/test/1"
//!                   at="prepare|perform|finish" after_bytes="1048576"/>
//! </metadata>
//! ```
//!
//! fails that step of its first migration attempt through a given backend
//! (Perform after `after_bytes` bytes sent, default 1 MiB). Each fault fires
//! once per guest and backend, so the retry that tests make succeeds. The
//! definition travels to the destination, so `prepare` and `finish` fire there.
//! Compiled in debug builds and with the `fault-injection` feature; release
//! builds ignore the element.

use std::collections::HashSet;
use std::sync::Mutex;

use migrated_core::xml::DomainDef;
use uuid::Uuid;

use crate::workload::METADATA_NS;

/// Local name of the fault element.
pub const FAULT_ELEMENT: &str = "fault";

/// Default for `after_bytes`.
const DEFAULT_AFTER_BYTES: u64 = 1 << 20;

/// Where a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Prepare fails (nothing is created).
    Prepare,
    /// Perform fails after sending some bytes.
    Perform {
        /// Bytes sent before the failure.
        after_bytes: u64,
    },
    /// Finish fails (the incoming guest is killed).
    Finish,
}

impl FaultPoint {
    fn kind(self) -> &'static str {
        match self {
            FaultPoint::Prepare => "prepare",
            FaultPoint::Perform { .. } => "perform",
            FaultPoint::Finish => "finish",
        }
    }
}

/// The fault configured in `def`, if any (and if this build injects faults).
pub fn configured(def: &DomainDef) -> Option<FaultPoint> {
    if !cfg!(any(debug_assertions, feature = "fault-injection")) {
        return None;
    }
    let attrs = def.metadata_element(METADATA_NS, FAULT_ELEMENT)?;
    let after_bytes = attrs
        .get("after_bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_AFTER_BYTES);
    match attrs.get("at").map(String::as_str) {
        Some("prepare") => Some(FaultPoint::Prepare),
        Some("perform") => Some(FaultPoint::Perform { after_bytes }),
        Some("finish") => Some(FaultPoint::Finish),
        _ => None,
    }
}

/// Remembers which faults already fired.
#[derive(Debug, Default)]
pub(crate) struct Fired(Mutex<HashSet<(Uuid, &'static str)>>);

impl Fired {
    /// Whether `point` should fire now for `uuid` (true only the first time).
    pub fn arm(&self, uuid: Uuid, point: FaultPoint) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((uuid, point.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(meta: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='test'><name>f</name><memory unit='MiB'>4</memory>{meta}\
             <os><type>hvm</type></os></domain>"
        ))
        .expect("xml")
    }

    #[test]
    fn faults_are_read_from_metadata_and_fire_once() {
        assert_eq!(configured(&def("")), None);
        let d = def(
            "<metadata><migrated:fault xmlns:migrated='https://migrated.dev/xmlns/test/1' \
             at='perform' after_bytes='4096'/></metadata>",
        );
        let point = configured(&d).expect("configured");
        assert_eq!(point, FaultPoint::Perform { after_bytes: 4096 });
        let fired = Fired::default();
        assert!(fired.arm(d.uuid, point));
        assert!(!fired.arm(d.uuid, point), "second attempt runs clean");
        assert!(
            fired.arm(d.uuid, FaultPoint::Finish),
            "other points are separate"
        );
    }
}
