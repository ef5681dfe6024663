//! Facts about the host and QEMU that the driver reports: capabilities,
//! node info, the QEMU version, a guest's CPU time and resident size.

use migrated_core::domain::{CellMemory, CpuTimes, HostIdentity, NodeInfo, NodeMemory};

use migrated_core::tune::{cpu_stats, CpuStats, PerCpuStats};
use migrated_core::typed_params::{TypedParams, TypedValue};
use migrated_core::{Error, Result};

use crate::command::Accel;

/// CPU time (user + system) of a process or thread, from its `/proc` stat
/// file; 0 when it is gone.
pub(super) fn proc_cpu_time_ns(pid: i32) -> u64 {
    proc_stat(&format!("/proc/{pid}/stat")).map_or(0, |s| s.cpu_time_ns)
}

/// `virsh cpu-stats` of the QEMU process `pid`: the total from its `/proc`
/// stat file (`cpu_time`, `user_time`, `system_time`, as libvirt's from the
/// guest's cgroup); the split by host CPU is not kept anywhere without a
/// cgroup v1 `cpuacct` group per guest, so it is refused as libvirt refuses
/// it on a cgroup v2 host, after the counting queries.
///
/// # Errors
/// `VIR_ERR_OPERATION_INVALID` when the process is gone.
pub(super) fn proc_cpu_stats(pid: i32, host_cpus: usize) -> Result<CpuStats> {
    let stat = proc_stat(&format!("/proc/{pid}/stat"))
        .ok_or_else(|| Error::invalid("domain is not running"))?;
    Ok(CpuStats {
        total: TypedParams::new()
            .with(cpu_stats::CPU_TIME, TypedValue::ULLong(stat.cpu_time_ns))
            .with(cpu_stats::USER_TIME, TypedValue::ULLong(stat.user_ns))
            .with(cpu_stats::SYSTEM_TIME, TypedValue::ULLong(stat.system_ns)),
        per_cpu: PerCpuStats::Unknown {
            host_cpus,
            reason: "CPU statistics per host CPU need a cgroup cpuacct group per guest, \
                     which this driver does not create (use --total)"
                .to_owned(),
        },
    })
}

/// What a `/proc/.../stat` file says about CPU use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    /// utime + stime, in ns.
    pub cpu_time_ns: u64,
    /// utime, in ns.
    pub user_ns: u64,
    /// stime, in ns.
    pub system_ns: u64,
    /// The CPU it last ran on (field 39, `processor`).
    pub cpu: i32,
}

/// Reads a `/proc/PID/stat` or `/proc/PID/task/TID/stat` file.
pub(super) fn proc_stat(path: &str) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(path).ok()?)
}

fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    // Fields are counted after the parenthesised command name (which may
    // hold spaces): the rest starts at field 3 (state), so field N is at
    // index N - 3.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let user = u64::try_from(field(14)?).ok()?;
    let system = u64::try_from(field(15)?).ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
    Some(ProcStat {
        cpu_time_ns: ns(user.saturating_add(system)),
        user_ns: ns(user),
        system_ns: ns(system),
        cpu: field(39).and_then(|c| i32::try_from(c).ok()).unwrap_or(-1),
    })
}

/// Resident set size of a process in KiB, from `/proc/PID/statm`.
pub(super) fn proc_rss_kib(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096);
    Some(pages * page / 1024)
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

/// `s` escaped for XML text and single-quoted attribute values.
pub(super) fn xml_escape(s: &str) -> String {
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

/// Clock ticks of `/proc/stat` in ns.
fn tick_ns() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// The host's memory from `/proc/meminfo`. The host is described as one
/// NUMA cell (as [`node_info`] does), holding all of it.
pub(super) fn node_memory() -> Option<NodeMemory> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(meminfo: &str) -> Option<NodeMemory> {
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (total_kib, free_kib) = (kib("MemTotal:")?, kib("MemFree:")?);
    Some(NodeMemory {
        total_kib,
        free_kib,
        buffers_kib: kib("Buffers:").unwrap_or(0),
        cached_kib: kib("Cached:").unwrap_or(0),
        cells: vec![CellMemory {
            total_kib,
            free_kib,
        }],
    })
}

/// CPU time of host CPU `cpu` (or all) from `/proc/stat`.
pub(super) fn node_cpu_times(cpu: Option<u32>) -> Option<CpuTimes> {
    parse_proc_stat_cpu(&std::fs::read_to_string("/proc/stat").ok()?, cpu)
}

fn parse_proc_stat_cpu(stat: &str, cpu: Option<u32>) -> Option<CpuTimes> {
    let label = cpu.map_or_else(|| "cpu".to_owned(), |n| format!("cpu{n}"));
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    // user nice system idle iowait irq softirq, in ticks.
    let t: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| t.get(i).copied().unwrap_or(0).saturating_mul(tick_ns());
    Some(CpuTimes {
        kernel_ns: at(2) + at(5) + at(6),
        user_ns: at(0) + at(1),
        idle_ns: at(3),
        iowait_ns: at(4),
    })
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
        assert!(proc_rss_kib(std::process::id() as i32).is_some_and(|k| k > 0));
        assert_eq!(proc_rss_kib(-5), None);
    }

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        // A thread name with spaces and a ')' in it; utime 150, stime 50,
        // processor 1.
        let line = "4242 (CPU 0/KVM) x) R 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 1 0 \
                    100 200 300 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_proc_stat(line).expect("parsed");
        assert_eq!(stat.cpu, 1);
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
        assert_eq!(stat.cpu_time_ns, 200 * (1_000_000_000 / hz));
        assert_eq!(stat.user_ns, 150 * (1_000_000_000 / hz));
        assert_eq!(stat.system_ns, 50 * (1_000_000_000 / hz));
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn host_memory_and_cpu_times_are_read_as_libvirt_groups_them() {
        let mem = parse_meminfo(
            "MemTotal:  1000 kB\nMemFree:  400 kB\nBuffers:  10 kB\nCached:  200 kB\n",
        )
        .expect("parsed");
        assert_eq!(
            (mem.total_kib, mem.free_kib, mem.buffers_kib, mem.cached_kib),
            (1000, 400, 10, 200)
        );
        assert_eq!(mem.cells.len(), 1);
        assert_eq!(parse_meminfo("nothing"), None);
        let stat = "cpu  10 1 5 100 7 2 3 0 0 0\ncpu0 4 0 2 50 3 1 1 0 0 0\n";
        let all = parse_proc_stat_cpu(stat, None).expect("all");
        let t = tick_ns();
        assert_eq!(
            (all.user_ns, all.kernel_ns, all.idle_ns, all.iowait_ns),
            (11 * t, 10 * t, 100 * t, 7 * t)
        );
        assert_eq!(
            parse_proc_stat_cpu(stat, Some(0)).map(|c| c.idle_ns),
            Some(50 * t)
        );
        assert_eq!(parse_proc_stat_cpu(stat, Some(1)), None);
        assert!(node_memory().is_some() && node_cpu_times(None).is_some());
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
