//! Test-driver guest definitions for the migration benchmarks.

/// Namespace of the test driver's workload metadata.
const WORKLOAD_NS: &str = "https://migrated.dev/xmlns/test/1";

/// A memory-dirtying workload: pages written per second over a working set.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Pages written per second.
    pub dirty_pages_per_sec: u64,
    /// Size of the region written, MiB.
    pub working_set_mib: u64,
}

/// `<domain type='test'>` named `name` with `memory_mib` of memory; idle
/// unless `workload` is given.
pub fn test_guest_xml(name: &str, memory_mib: u64, workload: Option<Workload>) -> String {
    let metadata = workload.map_or_else(String::new, |w| {
        format!(
            "  <metadata>\n    <migrated:workload xmlns:migrated=\"{WORKLOAD_NS}\" \
             dirty_pages_per_sec=\"{}\" working_set_mib=\"{}\"/>\n  </metadata>\n",
            w.dirty_pages_per_sec, w.working_set_mib
        )
    });
    format!(
        "<domain type='test'>\n  <name>{name}</name>\n  <memory unit='MiB'>{memory_mib}</memory>\n  \
         <vcpu>1</vcpu>\n  <os><type>hvm</type></os>\n{metadata}</domain>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_guest_has_no_metadata() {
        let xml = test_guest_xml("g1", 64, None);
        assert!(xml.contains("<name>g1</name>"));
        assert!(xml.contains("<memory unit='MiB'>64</memory>"));
        assert!(!xml.contains("metadata"));
    }

    #[test]
    fn workload_lands_in_the_metadata() {
        let xml = test_guest_xml(
            "g2",
            1024,
            Some(Workload {
                dirty_pages_per_sec: 5000,
                working_set_mib: 128,
            }),
        );
        assert!(xml.contains("dirty_pages_per_sec=\"5000\""));
        assert!(xml.contains("working_set_mib=\"128\""));
        assert!(xml.contains(WORKLOAD_NS));
    }
}
