//! Facts about the host and QEMU that the driver reports: capabilities,
//! node info, the QEMU version, a guest's CPU time.

use migrated_core::domain::{HostIdentity, NodeInfo};

use crate::command::Accel;

pub(super) fn proc_cpu_time_ns(pid: i32) -> u64 {
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks,
    // counted after the parenthesised command name (which may hold spaces).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    total.saturating_mul(1_000_000_000 / hz)
}

pub(super) fn capabilities_xml(host: &HostIdentity, emulator: Option<&std::path::Path>) -> String {
    let kvm = if Accel::detect() == Accel::Kvm {
        "      <domain type='kvm'/>\n"
    } else {
        ""
    };
    let emulator = emulator
        .map(|p| {
            format!(
                "      <emulator>{}</emulator>\n",
                xml_escape(&p.to_string_lossy())
            )
        })
        .unwrap_or_default();
    format!(
        "<capabilities>\n  <host>\n    <uuid>{}</uuid>\n    <cpu>\n      <arch>x86_64</arch>\n    </cpu>\n  </host>\n  \
         <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n{emulator}      \
         <domain type='qemu'/>\n{kvm}    </arch>\n  </guest>\n</capabilities>\n",
        host.uuid
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// `QEMU emulator version 7.2.22 (...)` → 7 002 022.
pub(super) fn parse_version(text: &str) -> Option<u64> {
    let rest = text.split("version ").nth(1)?;
    let triple = rest.split_whitespace().next()?;
    let mut parts = triple.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some(major * 1_000_000 + minor * 1_000 + micro)
}

pub(super) fn node_info() -> NodeInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i32);
    let cpus = std::thread::available_parallelism()
        .map(|n| i32::try_from(n.get()).unwrap_or(i32::MAX))
        .unwrap_or(1);
    NodeInfo {
        model: "x86_64".into(),
        memory_kib,
        cpus,
        mhz,
        nodes: 1,
        sockets: 1,
        cores: cpus,
        threads: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn parses_qemu_version_lines() {
        assert_eq!(
            parse_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright"
            ),
            Some(7_002_022)
        );
        assert_eq!(
            parse_version("QEMU emulator version 9.1\n"),
            Some(9_001_000)
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn cpu_time_of_this_process_is_positive_and_of_a_missing_one_zero() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(proc_cpu_time_ns(std::process::id() as i32) > 0);
        assert_eq!(proc_cpu_time_ns(-5), 0);
    }

    #[test]
    fn capabilities_name_the_host_and_qemu_domain_type() {
        let host = HostIdentity {
            hostname: "h".into(),
            uuid: Uuid::nil(),
        };
        let xml = capabilities_xml(
            &host,
            Some(std::path::Path::new("/usr/bin/qemu-system-x86_64")),
        );
        assert!(xml.contains(&Uuid::nil().to_string()));
        assert!(xml.contains("<domain type='qemu'/>"));
        assert!(xml.contains("<emulator>/usr/bin/qemu-system-x86_64</emulator>"));
    }
}
