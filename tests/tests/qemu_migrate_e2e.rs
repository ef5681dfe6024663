//! Live migration of a real QEMU guest (256 MiB, the workload kernel
//! dirtying 64 MiB per pass) between two `migrated` daemons, driven by stock
//! `virsh` and by `migratectl`: regular, `--p2p`, `--p2p --tunnelled`,
//! `--compressed`, `--auto-converge`. After each the source's QEMU is gone,
//! the destination's is the only one running the guest, and the workload
//! counted past its value before the migration.

mod migrate_support;
mod qemu_support;

use qemu_support::{domstate, job_free, moved_and_counting, status_pid, QemuHosts};

#[derive(Clone, Copy)]
enum Tool {
    Virsh,
    Migratectl,
}

fn live(tool: Tool, name: &str, flags: &[&str]) {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let started = std::time::Instant::now();
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let (uuid, before) = hosts.running_guest(name);
    eprintln!("{name}: counting at {before} after {:?}", started.elapsed());
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let mut args = vec!["migrate", "--live"];
    args.extend_from_slice(flags);
    if matches!(tool, Tool::Virsh) {
        // On a loaded 2-core machine TCG may not converge before virsh's
        // deadline: pause the guest after 20 s, as operators do.
        args.extend(["--timeout", "20"]);
    }
    args.extend([name, b.as_str()]);
    match tool {
        Tool::Virsh => hosts.virsh_ok(&a, &args),
        Tool::Migratectl => hosts.ctl_ok(&a, &args),
    };
    eprintln!("{name}: migrated after {:?}", started.elapsed());
    assert_eq!(domstate(&b, name).as_deref(), Some("running"));
    // Defined on A, so A keeps its (inactive) config.
    assert_eq!(domstate(&a, name).as_deref(), Some("shut off"));
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    eprintln!("{name}: counting on B after {:?}", started.elapsed());
    assert!(job_free(&a, name) && job_free(&b, name), "a job is left");
    hosts.virsh_ok(&b, &["destroy", name]);
    assert_eq!(
        domstate(&b, name),
        None,
        "transient guest gone after destroy"
    );
}

#[test]
fn qemu_virsh_live_regular() {
    live(Tool::Virsh, "q-regular", &[]);
}

#[test]
fn qemu_virsh_live_p2p() {
    live(Tool::Virsh, "q-p2p", &["--p2p"]);
}

#[test]
fn qemu_migratectl_live_p2p_tunnelled() {
    live(Tool::Migratectl, "q-tunnel", &["--p2p", "--tunnelled"]);
}

#[test]
fn qemu_virsh_live_compressed() {
    live(Tool::Virsh, "q-compressed", &["--compressed"]);
}

#[test]
fn qemu_migratectl_live_auto_converge() {
    live(Tool::Migratectl, "q-autoconv", &["--auto-converge"]);
}

/// `Data processed:` of `domjobinfo --completed` on `uri`, in bytes.
fn completed_data_processed(hosts: &QemuHosts, uri: &str, name: &str) -> u64 {
    let info = hosts.virsh_ok(uri, &["domjobinfo", "--completed", name]);
    let line = info
        .lines()
        .find(|l| l.starts_with("Data processed:"))
        .unwrap_or_else(|| panic!("no 'Data processed' in domjobinfo:\n{info}"));
    let mut words = line["Data processed:".len()..].split_whitespace();
    let value: f64 = words
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable line {line:?}"));
    let unit = match words.next() {
        Some("B") => 1.0,
        Some("KiB") => 1024.0,
        Some("MiB") => 1024.0 * 1024.0,
        Some("GiB") => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unknown unit {other:?} in {line:?}"),
    };
    (value * unit) as u64
}

/// A dirtying guest's migration moves at least its working set: the
/// completed job statistics on both sides say so (the destination's come
/// from the source's final figures, carried in the cookie).
#[test]
fn qemu_dirtying_guest_job_stats_count_the_working_set() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-stats";
    let (uuid, before) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    hosts.ctl_ok(&a, &["migrate", "--live", "--p2p", name, &b]);
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    let working_set = u64::from(qemu_support::DIRTY_MIB) << 20;
    for (side, uri) in [("source", &a), ("destination", &b)] {
        let processed = completed_data_processed(&hosts, uri, name);
        eprintln!("{side}: data processed {processed} bytes");
        assert!(
            processed >= working_set,
            "{side} reports {processed} bytes processed, less than the {working_set} bytes \
             the guest rewrites every pass\n{}",
            hosts.logs()
        );
    }
}

/// The SPICE port of `name`'s live definition on `uri`.
fn spice_port(hosts: &QemuHosts, uri: &str, name: &str) -> u16 {
    let xml = hosts.virsh_ok(uri, &["dumpxml", name]);
    let graphics = xml
        .split("<graphics")
        .nth(1)
        .unwrap_or_else(|| panic!("no graphics in\n{xml}"));
    let port = graphics
        .split("port='")
        .nth(1)
        .or_else(|| graphics.split("port=\"").nth(1))
        .and_then(|rest| rest.split(['\'', '"']).next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no spice port in\n{xml}"));
    assert!(port > 0, "spice port {port}");
    port
}

/// Graphics relocation: the destination puts its QEMU's actual SPICE port
/// in Prepare's cookie and the source's QEMU is told with
/// `client_migrate_info` before `migrate` (libvirt's
/// qemuMigrationSrcGraphicsRelocate). The source daemon logs QEMU's
/// acceptance of that command with the host and port it sent.
#[test]
fn qemu_spice_clients_are_relocated_to_the_destination() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    for (name, flags) in [("q-spice", &[][..]), ("q-spice-p2p", &["--p2p"][..])] {
        let (xml, uuid) = hosts.guest_xml(name, 64, 8);
        let xml = xml.replace(
            "</domain>",
            "<devices><graphics type='spice' autoport='yes' listen='127.0.0.1'/></devices></domain>",
        );
        hosts.define_xml(&a, name, &xml);
        hosts.virsh_ok(&a, &["start", name]);
        let src_port = spice_port(&hosts, &a, name);
        let before = qemu_support::counter_above(&a, name, 0, &hosts);
        let src_pid = status_pid(&hosts.a, name).expect("source status file");
        let mut args = vec!["migrate", "--live"];
        args.extend_from_slice(flags);
        args.extend([name, b.as_str()]);
        hosts.virsh_ok(&a, &args);
        moved_and_counting(&hosts, name, &uuid, src_pid, before);
        let dst_port = spice_port(&hosts, &b, name);
        // Both QEMUs listened on 127.0.0.1 at the same time.
        assert_ne!(src_port, dst_port);
        let log = hosts.a.logs();
        let relocated = log
            .lines()
            .filter(|l| l.contains("client_migrate_info accepted") && l.contains(name))
            .collect::<Vec<_>>();
        assert_eq!(
            relocated.len(),
            1,
            "{name}: not exactly one accepted client_migrate_info\n{}",
            hosts.logs()
        );
        let line = relocated[0];
        assert!(
            line.contains("hostname=127.0.0.1") && line.contains(&format!("port=Some({dst_port})")),
            "{name}: relocated elsewhere than B's spice port {dst_port}: {line}"
        );
        assert!(
            !log.contains("unable to provide data for graphics client relocation"),
            "{}",
            hosts.logs()
        );
        hosts.virsh_ok(&b, &["destroy", name]);
    }
}
