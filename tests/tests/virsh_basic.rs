//! Stock `virsh` against `migrated`: connection-level commands over TCP and
//! TLS, the domain lifecycle over TCP and a local socket, and many clients
//! at once.

use migrated_tests::clients::{assert_ok as ok, stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, wait_until, Daemon, Pki, VirshEvents};

const HOSTNAME: &str = "migrated-test-host";

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'>\n  <name>{name}</name>\n  <memory unit='MiB'>4</memory>\n  \
         <vcpu>1</vcpu>\n  <os><type arch='x86_64'>hvm</type></os>\n  <devices>\n    \
         <disk type='file' device='disk'><source file='/var/lib/test/{name}.img'/>\
         <target dev='vda' bus='virtio'/></disk>\n    \
         <interface type='network'><mac address='52:54:00:7e:57:01'/>\
         <source network='default'/><target dev='vnet0'/></interface>\n  </devices>\n</domain>\n"
    )
}

/// Writes `xml` to a file in `dir` and returns its path.
fn xml_file(dir: &std::path::Path, name: &str, xml: &str) -> String {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, xml).expect("write domain xml");
    path.display().to_string()
}

#[test]
fn virsh_version_hostname_uri_and_capabilities_over_tcp() {
    if require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().hostname(HOSTNAME).spawn();
    let uri = daemon.uri();
    let version = ok(&virsh(&uri, &["version"]), "virsh version");
    assert!(version.contains("Using API: TEST"), "{version}");
    assert!(version.contains("Running hypervisor: TEST"), "{version}");
    assert_eq!(
        ok(&virsh(&uri, &["hostname"]), "virsh hostname").trim(),
        HOSTNAME
    );
    assert_eq!(ok(&virsh(&uri, &["uri"]), "virsh uri").trim(), uri);
    let caps = ok(&virsh(&uri, &["capabilities"]), "virsh capabilities");
    assert!(caps.contains("<capabilities>"), "{caps}");
    assert!(
        caps.contains(daemon.host_uuid()),
        "host uuid missing from {caps}"
    );
    // The host's NUMA cells: the test driver's fictional host has two of
    // 8 GiB, as libvirt's test driver; virsh finds them in <topology>.
    assert!(caps.contains("<cells num='2'>"), "{caps}");
    let cells = ok(&virsh(&uri, &["freecell", "--all"]), "virsh freecell --all");
    for needle in [
        "0:    8388608 KiB",
        "1:    8388608 KiB",
        "Total:   16777216 KiB",
    ] {
        assert!(cells.contains(needle), "{needle:?} missing from {cells}");
    }
    let out_of_range = virsh(&uri, &["freecell", "2"]);
    assert!(!out_of_range.status.success());
    assert!(
        stderr_of(&out_of_range).contains("start cell 2 out of range (0-1)"),
        "{}",
        stderr_of(&out_of_range)
    );
    let mem = ok(&virsh(&uri, &["nodememstats"]), "virsh nodememstats");
    assert!(
        mem.contains("total  :             16777216 KiB") && mem.contains("cached :"),
        "{mem}"
    );
    // sysinfo: libvirt's test driver's fixed SMBIOS description.
    let sysinfo = ok(&virsh(&uri, &["sysinfo"]), "virsh sysinfo");
    assert!(
        sysinfo.starts_with("<sysinfo type='smbios'>\n  <bios>\n")
            && sysinfo.contains("    <entry name='version'>G4ETA1WW (2.61 )</entry>\n")
            && sysinfo.contains("    <entry name='release'>2.61</entry>\n  </bios>\n</sysinfo>"),
        "{sysinfo}"
    );
    // Like libvirt's test driver, no host CPU statistics.
    let cpu = virsh(&uri, &["nodecpustats"]);
    assert!(!cpu.status.success());
    assert!(
        stderr_of(&cpu).contains(
            "this function is not supported by the connection driver: virNodeGetCPUStats"
        ),
        "{}",
        stderr_of(&cpu)
    );
}

#[test]
fn virsh_over_tls_with_pkipath_and_refused_certificates() {
    if require_binary("virsh").is_none() {
        return;
    }
    let Some(pki) = Pki::generate() else { return };
    let daemon = Daemon::builder().tls(&pki).hostname(HOSTNAME).spawn();
    let good = ok(
        &virsh(&daemon.tls_uri(&pki), &["hostname"]),
        "virsh over TLS",
    );
    assert_eq!(good.trim(), HOSTNAME);
    let version = ok(
        &virsh(&daemon.tls_uri(&pki), &["version"]),
        "virsh version over TLS",
    );
    assert!(version.contains("Running hypervisor: TEST"), "{version}");

    // A client certificate from another CA: refused, naming the issuer problem.
    let foreign = virsh(
        &daemon.tls_uri_with(&pki.foreign_client_dir()),
        &["hostname"],
    );
    assert!(!foreign.status.success());
    let err = stderr_of(&foreign);
    assert!(
        err.contains("certificate") && err.contains("issuer"),
        "{err}"
    );

    // No client certificate at all: the server refuses and says why.
    let certless = virsh(
        &daemon.tls_uri_with(&pki.certless_client_dir()),
        &["hostname"],
    );
    assert!(!certless.status.success(), "{}", stdout_of(&certless));
    wait_until(
        std::time::Duration::from_secs(5),
        "the refusal in the daemon log",
        || daemon.logs().contains("no certificate").then_some(()),
    );
}

/// define → list --all → start → dominfo/domstate/dumpxml → suspend/resume
/// → destroy → undefine, checking each answer.
fn lifecycle(uri: &str, dir: &std::path::Path) {
    let name = "lifecycle-guest";
    let file = xml_file(dir, name, &domain_xml(name));
    let out = ok(&virsh(uri, &["define", &file]), "define");
    assert!(out.contains(&format!("Domain '{name}' defined")), "{out}");
    let list = ok(&virsh(uri, &["list", "--all"]), "list --all");
    let row = list.lines().find(|l| l.contains(name)).unwrap_or_default();
    assert!(row.contains("shut off"), "{list}");

    // Another name with the same UUID: libvirt's code and wording
    // (virDomainObjListAddLocked), "operation failed: " prefix included.
    let uuid = ok(&virsh(uri, &["domuuid", name]), "domuuid");
    let uuid = uuid.trim();
    let clash = domain_xml("lifecycle-clash")
        .replace("</name>", &format!("</name>\n  <uuid>{uuid}</uuid>"));
    let clash = virsh(uri, &["define", &xml_file(dir, "lifecycle-clash", &clash)]);
    assert!(!clash.status.success());
    let expected =
        format!("error: operation failed: domain '{name}' is already defined with uuid {uuid}");
    assert!(
        stderr_of(&clash).contains(&expected),
        "{expected:?} missing from {}",
        stderr_of(&clash)
    );

    ok(&virsh(uri, &["start", name]), "start");
    let info = ok(&virsh(uri, &["dominfo", name]), "dominfo");
    for needle in [
        "State:          running",
        "Persistent:     yes",
        "Max memory:     4096 KiB",
        "CPU(s):         1",
    ] {
        assert!(info.contains(needle), "{needle:?} missing from {info}");
    }
    assert_eq!(
        ok(&virsh(uri, &["domstate", name]), "domstate").trim(),
        "running"
    );
    let xml = ok(&virsh(uri, &["dumpxml", name]), "dumpxml");
    assert!(
        xml.contains(&format!("<name>{name}</name>")) && xml.contains("id='1'"),
        "{xml}"
    );
    let list = ok(&virsh(uri, &["list"]), "list");
    assert!(
        list.lines()
            .any(|l| l.contains(name) && l.contains("running")),
        "{list}"
    );

    // domstats: every group this daemon serves, with libvirt's names.
    let stats = ok(&virsh(uri, &["domstats", name]), "domstats");
    for needle in [
        &format!("Domain: '{name}'") as &str,
        "state.state=1",
        "state.reason=1",
        "cpu.time=",
        "balloon.current=4096",
        "balloon.maximum=4096",
        "vcpu.current=1",
        "vcpu.maximum=1",
        "vcpu.0.state=1",
    ] {
        assert!(stats.contains(needle), "{needle:?} missing from {stats}");
    }

    // vCPUs and memory, as `virsh vcpucount/vcpuinfo/vcpupin/dommemstat`
    // show them for a running guest.
    let count = ok(&virsh(uri, &["vcpucount", name]), "vcpucount");
    for needle in [
        "maximum      config",
        "maximum      live",
        "current      live",
    ] {
        assert!(count.contains(needle), "{needle:?} missing from {count}");
    }
    let vcpus = ok(&virsh(uri, &["vcpuinfo", name]), "vcpuinfo");
    assert!(
        vcpus.contains("VCPU:           0") && vcpus.contains("State:          running"),
        "{vcpus}"
    );
    let pins = ok(&virsh(uri, &["vcpupin", name]), "vcpupin");
    assert!(pins.lines().any(|l| l.trim().starts_with("0 ")), "{pins}");
    let mem = ok(&virsh(uri, &["dommemstat", name]), "dommemstat");
    assert!(mem.contains("actual 4096") && mem.contains("rss "), "{mem}");

    // Disks and interfaces, with libvirt's test driver's fictional figures:
    // the legacy block statistics (virsh falls back to them from the typed
    // call, which that driver lacks), no block info.
    let blk = ok(&virsh(uri, &["domblkstat", name, "vda"]), "domblkstat");
    for field in ["rd_req", "rd_bytes", "wr_req", "wr_bytes", "errs"] {
        assert!(
            blk.contains(&format!("vda {field} ")),
            "{field} missing from {blk}"
        );
    }
    let human = ok(
        &virsh(uri, &["domblkstat", name, "vda", "--human"]),
        "domblkstat --human",
    );
    assert!(
        human.contains("Device: vda") && human.contains("number of read operations:"),
        "{human}"
    );
    let unknown = virsh(uri, &["domblkstat", name, "vdz"]);
    assert!(
        !unknown.status.success()
            && stderr_of(&unknown).contains("error: invalid argument: invalid path: vdz\n"),
        "{}",
        stderr_of(&unknown)
    );
    // Block info: libvirt's test driver's fixed terabyte, by target or
    // source path; libvirt's words for a disk the guest lacks.
    for disk in ["vda", &format!("/var/lib/test/{name}.img")] {
        let info = ok(&virsh(uri, &["domblkinfo", name, disk]), "domblkinfo");
        assert_eq!(
            info.trim(),
            "Capacity:       1099506450432\nAllocation:     1099511627776\n\
             Physical:       1099511627776",
            "{disk}"
        );
    }
    let info = virsh(uri, &["domblkinfo", name, "vdz"]);
    assert!(
        !info.status.success()
            && stderr_of(&info)
                .contains("error: invalid argument: invalid path vdz not assigned to domain\n"),
        "{}",
        stderr_of(&info)
    );
    for device in ["vnet0", "52:54:00:7e:57:01"] {
        let net = ok(&virsh(uri, &["domifstat", name, device]), "domifstat");
        for field in ["rx_bytes", "rx_packets", "tx_bytes", "tx_drop"] {
            assert!(
                net.contains(&format!("{device} {field} ")),
                "{field} missing from {net}"
            );
        }
    }
    let unknown = virsh(uri, &["domifstat", name, "vnet9"]);
    assert!(
        !unknown.status.success()
            && stderr_of(&unknown)
                .contains("error: invalid argument: 'vnet9' is not a known interface\n"),
        "{}",
        stderr_of(&unknown)
    );

    // libvirt's test driver's words for a resume of a running guest and a
    // second suspend; the state does not change.
    let refused = |command: &str, words: &str| {
        let out = virsh(uri, &[command, name]);
        let expected = format!("error: internal error: domain '{name}' {words}\n");
        assert!(
            !out.status.success() && stderr_of(&out).contains(&expected),
            "{command}: {}",
            stderr_of(&out)
        );
    };
    refused("resume", "not paused");
    ok(&virsh(uri, &["suspend", name]), "suspend");
    assert_eq!(
        ok(&virsh(uri, &["domstate", name]), "domstate").trim(),
        "paused"
    );
    refused("suspend", "not running");
    assert_eq!(
        ok(&virsh(uri, &["domstate", "--reason", name]), "domstate").trim(),
        "paused (user)"
    );
    // Filters and groups: a paused guest is listed by --list-paused only,
    // and only the state group is sent when only it is asked for.
    let paused = ok(
        &virsh(uri, &["domstats", "--state", "--list-paused"]),
        "domstats --list-paused",
    );
    assert!(
        paused.contains("state.state=3") && !paused.contains("balloon."),
        "{paused}"
    );
    let running = ok(
        &virsh(uri, &["domstats", "--list-running"]),
        "domstats --list-running",
    );
    assert!(!running.contains(name), "{running}");
    // The block and interface groups, which libvirt's test driver does not
    // fill: left out when asked for, refused under --enforce with
    // libvirt's error.
    let devices = ok(
        &virsh(uri, &["domstats", "--block", "--interface", name]),
        "domstats --block --interface",
    );
    assert!(
        devices.contains(&format!("Domain: '{name}'"))
            && !devices.contains("block.")
            && !devices.contains("net."),
        "{devices}"
    );
    for (group, bits) in [("--block", "0x20"), ("--interface", "0x10")] {
        let enforced = virsh(uri, &["domstats", group, "--enforce", name]);
        assert!(!enforced.status.success());
        let err = stderr_of(&enforced);
        assert!(
            err.contains("argument unsupported") && err.contains(bits),
            "{err}"
        );
    }
    ok(&virsh(uri, &["resume", name]), "resume");
    assert_eq!(
        ok(&virsh(uri, &["domstate", name]), "domstate").trim(),
        "running"
    );
    // reboot, inject-nmi and send-key as libvirt's test driver: every
    // reboot mode is accepted and, under <on_reboot> restart (the
    // default), the guest runs on, booted; an NMI and keys change nothing,
    // but a code no key of the codeset has is refused (a name virsh does
    // not know, virsh refuses itself).
    ok(
        &virsh(uri, &["reboot", name, "--mode", "initctl"]),
        "reboot --mode initctl",
    );
    let state = ok(&virsh(uri, &["domstate", "--reason", name]), "domstate");
    assert_eq!(state.trim(), "running (booted)");
    ok(&virsh(uri, &["inject-nmi", name]), "inject-nmi");
    for keys in [
        &["KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_DELETE"][..],
        &["--codeset", "usb", "--holdtime", "50", "4"],
    ] {
        let args = [&["send-key", name][..], keys].concat();
        ok(&virsh(uri, &args), "send-key");
    }
    for (keys, words) in [
        (
            &["--codeset", "linux", "0x300"][..],
            "internal error: invalid keycode 768 of linux codeset",
        ),
        (&["KEY_NO_SUCH_KEY"], "invalid keycode: 'KEY_NO_SUCH_KEY'"),
    ] {
        let out = virsh(uri, &[&["send-key", name][..], keys].concat());
        assert!(!out.status.success(), "send-key {keys:?} succeeded");
        assert!(stderr_of(&out).contains(words), "{}", stderr_of(&out));
    }
    // domcontrol and iothreadinfo as libvirt's test driver: a ready
    // channel, no IOThreads in either definition; LIVE and CONFIG together
    // are refused.
    assert_eq!(
        ok(&virsh(uri, &["domcontrol", name]), "domcontrol").trim(),
        "ok"
    );
    for flags in [&[][..], &["--live"], &["--config"]] {
        let out = ok(
            &virsh(uri, &[&["iothreadinfo", name][..], flags].concat()),
            "iothreadinfo",
        );
        assert_eq!(out.trim(), "No IOThreads found for the domain", "{flags:?}");
    }
    let both = virsh(uri, &["iothreadinfo", name, "--live", "--config"]);
    assert!(
        !both.status.success() && stderr_of(&both).contains("mutually exclusive"),
        "{}",
        stderr_of(&both)
    );

    // setmem/setmaxmem as libvirt's test driver: the live balloon size
    // at once, the config for the next start, the maximum only offline.
    ok(&virsh(uri, &["setmem", name, "2M"]), "setmem");
    let info = ok(&virsh(uri, &["dominfo", name]), "dominfo after setmem");
    assert!(info.contains("Used memory:    2048 KiB"), "{info}");
    let mem = ok(
        &virsh(uri, &["dommemstat", name]),
        "dommemstat after setmem",
    );
    assert!(mem.contains("actual 2048"), "{mem}");
    for (args, words) in [
        (
            &["setmaxmem", name, "8M"][..],
            "cannot resize the maximum memory on an active domain",
        ),
        (
            &["setmem", name, "8M"][..],
            "error: invalid argument: cannot set memory higher than max memory\n",
        ),
        (
            &["setmem", name, "2M", "--live", "--config"][..],
            "mutually exclusive",
        ),
    ] {
        let out = virsh(uri, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr_of(&out).contains(words), "{}", stderr_of(&out));
    }
    ok(
        &virsh(uri, &["setmem", name, "3M", "--config"]),
        "setmem --config",
    );
    let inactive = ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    assert!(inactive.contains(">3072</currentMemory>"), "{inactive}");

    // Title, description and metadata elements: live and config apart, as
    // virsh desc / metadata / list --title show them.
    let out = ok(
        &virsh(uri, &["desc", name, "--live", "--title", "web tier"]),
        "desc --title",
    );
    assert!(out.contains("Domain title updated successfully"), "{out}");
    let titled = ok(&virsh(uri, &["list", "--title"]), "list --title");
    assert!(
        titled
            .lines()
            .any(|l| l.contains(name) && l.trim_end().ends_with("web tier")),
        "{titled}"
    );
    ok(
        &virsh(uri, &["desc", name, "--config", "kept for the next boot"]),
        "desc --config",
    );
    let live = ok(&virsh(uri, &["desc", name]), "desc (live)");
    assert!(live.contains("No description for domain"), "{live}");
    let config = ok(&virsh(uri, &["desc", name, "--config"]), "desc --config");
    assert_eq!(config.trim(), "kept for the next boot");
    let set = [
        "metadata",
        name,
        "https://example.org/h6",
        "--key",
        "h6",
        "--set",
        "<owner team='core'><since>2026</since></owner>",
    ];
    ok(&virsh(uri, &set), "metadata --set");
    let element = ok(
        &virsh(uri, &["metadata", name, "https://example.org/h6"]),
        "metadata",
    );
    // Handed back without its namespace (libvirt's virDomainGetMetadata),
    // kept with it in the domain XML.
    assert_eq!(
        element.trim(),
        "<owner team=\"core\"><since>2026</since></owner>"
    );
    let xml = ok(&virsh(uri, &["dumpxml", name]), "dumpxml with metadata");
    assert!(
        xml.contains("<title>web tier</title>") && xml.contains("<h6:owner"),
        "{xml}"
    );
    let missing = virsh(uri, &["metadata", name, "urn:none"]);
    assert!(!missing.status.success());
    assert!(
        stderr_of(&missing).contains("metadata not found"),
        "{}",
        stderr_of(&missing)
    );

    // Managed save keeps the guest's state for the next start.
    ok(&virsh(uri, &["managedsave", name]), "managedsave");
    let saved = ok(&virsh(uri, &["list", "--all", "--managed-save"]), "list");
    assert!(
        saved
            .lines()
            .any(|l| l.contains(name) && l.contains("saved")),
        "{saved}"
    );
    let info = ok(&virsh(uri, &["dominfo", name]), "dominfo after managedsave");
    assert!(info.contains("Managed save:   yes"), "{info}");
    let refused = virsh(uri, &["undefine", name]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("managed save image exists"),
        "{}",
        stderr_of(&refused)
    );
    ok(&virsh(uri, &["start", name]), "start from the managed save");
    let state = ok(&virsh(uri, &["domstate", "--reason", name]), "domstate");
    assert_eq!(state.trim(), "running (restored)");
    // The restored guest runs with the live size it was saved with.
    let info = ok(&virsh(uri, &["dominfo", name]), "dominfo after restore");
    assert!(info.contains("Managed save:   no"), "{info}");
    assert!(info.contains("Used memory:    2048 KiB"), "{info}");

    hotplug(uri, dir, name);
    ok(&virsh(uri, &["destroy", name]), "destroy");
    assert_eq!(
        ok(&virsh(uri, &["domstate", name]), "domstate").trim(),
        "shut off"
    );
    // Shut off: the configured counts only, and no memory statistics.
    let count = ok(&virsh(uri, &["vcpucount", name]), "vcpucount (shut off)");
    assert!(
        count.contains("current      config") && !count.contains("live"),
        "{count}"
    );
    for cmd in [
        &["dommemstat", name] as &[&str],
        &["domblkstat", name, "vda"],
    ] {
        let out = virsh(uri, cmd);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("domain is not running"),
            "{cmd:?}: {}",
            stderr_of(&out)
        );
    }
    // Shut off: no control channel; the config's (no) IOThreads, not the
    // live ones.
    for cmd in [
        &["domcontrol", name] as &[&str],
        &["iothreadinfo", name, "--live"],
    ] {
        let out = virsh(uri, cmd);
        assert!(
            !out.status.success()
                && stderr_of(&out)
                    .contains("error: Requested operation is not valid: domain is not running"),
            "{cmd:?}: {}",
            stderr_of(&out)
        );
    }
    let out = ok(
        &virsh(uri, &["iothreadinfo", name]),
        "iothreadinfo (shut off)",
    );
    assert_eq!(out.trim(), "No IOThreads found for the domain");
    let off = virsh(uri, &["reboot", name]);
    assert!(
        !off.status.success() && stderr_of(&off).contains("domain is not running"),
        "{}",
        stderr_of(&off)
    );
    // <on_reboot> destroy: a reboot shuts the guest off.
    let config = ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    let config = config.replace("<devices>", "<on_reboot>destroy</on_reboot>\n  <devices>");
    ok(
        &virsh(uri, &["define", &xml_file(dir, name, &config)]),
        "define with on_reboot",
    );
    ok(&virsh(uri, &["start", name]), "start");
    ok(&virsh(uri, &["reboot", name]), "reboot");
    let state = ok(&virsh(uri, &["domstate", "--reason", name]), "domstate");
    assert_eq!(state.trim(), "shut off (shutdown)");
    // Starting twice is refused with libvirt's wording.
    ok(&virsh(uri, &["start", name]), "start again");
    let twice = virsh(uri, &["start", name]);
    assert!(!twice.status.success());
    assert!(
        stderr_of(&twice).contains("already active"),
        "{}",
        stderr_of(&twice)
    );
    ok(&virsh(uri, &["managedsave", name]), "managedsave again");

    ok(
        &virsh(uri, &["undefine", "--managed-save", name]),
        "undefine --managed-save",
    );
    let list = ok(&virsh(uri, &["list", "--all"]), "list --all");
    assert!(!list.contains(name), "{list}");
    let gone = virsh(uri, &["dominfo", name]);
    assert!(!gone.status.success());
    assert!(
        stderr_of(&gone).contains("failed to get domain"),
        "{}",
        stderr_of(&gone)
    );
}

/// `virsh setvcpus` / `vcpucount`, `save` / `restore` and `domrename` on
/// the test driver, as libvirt's test driver answers them.
fn vcpus_save_and_rename(uri: &str, dir: &std::path::Path) {
    let name = "vcpu-guest";
    let xml = domain_xml(name).replace("<vcpu>1</vcpu>", "<vcpu current='2'>4</vcpu>");
    ok(
        &virsh(uri, &["define", &xml_file(dir, name, &xml)]),
        "define",
    );
    let count = |what: &str| ok(&virsh(uri, &["vcpucount", name]), what);
    let shown = count("vcpucount");
    for needle in [
        "maximum      config         4",
        "current      config         2",
    ] {
        assert!(shown.contains(needle), "{needle:?} missing from {shown}");
    }
    ok(
        &virsh(uri, &["setvcpus", name, "3", "--config"]),
        "setvcpus --config",
    );
    ok(
        &virsh(uri, &["setvcpus", name, "2", "--maximum", "--config"]),
        "setvcpus --maximum --config",
    );
    let inactive = ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    assert!(
        inactive.contains(">2</vcpu>") && !inactive.contains("current="),
        "{inactive}"
    );
    ok(
        &virsh(uri, &["setvcpus", name, "4", "--maximum", "--config"]),
        "setvcpus --maximum --config back",
    );
    let over = virsh(uri, &["setvcpus", name, "33", "--config"]);
    assert!(
        !over.status.success()
            && stderr_of(&over).contains("requested cpu amount exceeds maximum supported amount"),
        "{}",
        stderr_of(&over)
    );

    ok(&virsh(uri, &["start", name]), "start");
    ok(
        &virsh(uri, &["setvcpus", name, "3", "--live"]),
        "setvcpus --live",
    );
    let shown = count("vcpucount (running)");
    for needle in [
        "maximum      live           4",
        "current      live           3",
    ] {
        assert!(shown.contains(needle), "{needle:?} missing from {shown}");
    }
    let info = ok(&virsh(uri, &["dominfo", name]), "dominfo");
    assert!(info.contains("CPU(s):         3"), "{info}");
    let vcpus = ok(&virsh(uri, &["vcpuinfo", name]), "vcpuinfo");
    assert!(
        vcpus.contains("VCPU:           2") && !vcpus.contains("VCPU:           3"),
        "{vcpus}"
    );
    for (args, words) in [
        (
            &["setvcpus", name, "5"][..],
            "error: invalid argument: requested cpu amount exceeds maximum (5 > 4)\n",
        ),
        (
            &["setvcpus", name, "2", "--maximum", "--live", "--config"][..],
            "maximum vcpu count of a live domain can't be modified",
        ),
        (
            &["domrename", name, "renamed"][..],
            "cannot rename active domain",
        ),
    ] {
        let out = virsh(uri, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr_of(&out).contains(words),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }

    // Save stops the guest (reason saved); restore brings it back running
    // with the live vCPU count it had, or paused when asked.
    let image = dir.join("vcpu-guest.save").display().to_string();
    let out = ok(&virsh(uri, &["save", name, &image]), "save");
    assert!(
        out.contains(&format!("Domain '{name}' saved to {image}")),
        "{out}"
    );
    assert_eq!(
        ok(&virsh(uri, &["domstate", "--reason", name]), "domstate").trim(),
        "shut off (saved)"
    );
    ok(
        &virsh(uri, &["restore", &image, "--paused"]),
        "restore --paused",
    );
    assert_eq!(
        ok(&virsh(uri, &["domstate", "--reason", name]), "domstate").trim(),
        "paused (user)"
    );
    assert!(count("vcpucount (restored)").contains("current      live           3"));
    ok(&virsh(uri, &["save", name, &image]), "save paused");
    let uuid = ok(&virsh(uri, &["domuuid", name]), "domuuid");
    let bigger = domain_xml(name)
        .replace("<memory unit='MiB'>4", "<memory unit='MiB'>8")
        .replace("</name>", &format!("</name><uuid>{}</uuid>", uuid.trim()));
    let other = virsh(
        uri,
        &[
            "restore",
            &image,
            "--xml",
            &xml_file(dir, "bigger", &bigger),
        ],
    );
    assert!(
        !other.status.success() && stderr_of(&other).contains("unsupported configuration"),
        "{}",
        stderr_of(&other)
    );
    let not_image = virsh(uri, &["restore", &xml_file(dir, "not-an-image", &xml)]);
    assert!(
        !not_image.status.success() && stderr_of(&not_image).contains("image magic is incorrect"),
        "{}",
        stderr_of(&not_image)
    );
    // The image's XML and the state to restore to, read and rewritten as
    // libvirt's test driver does (save-image-dumpxml / save-image-define).
    let stored = ok(
        &virsh(uri, &["save-image-dumpxml", &image]),
        "save-image-dumpxml",
    );
    assert!(
        stored.contains(&format!("<name>{name}</name>")) && stored.contains("current='3'"),
        "{stored}"
    );
    let described = stored.replace(
        "</name>",
        "</name>\n  <description>kept in the image</description>",
    );
    let out = ok(
        &virsh(
            uri,
            &[
                "save-image-define",
                &image,
                &xml_file(dir, "described", &described),
                "--running",
            ],
        ),
        "save-image-define",
    );
    assert!(
        out.contains(&format!("State file {image} updated.")),
        "{out}"
    );
    let stored = ok(
        &virsh(uri, &["save-image-dumpxml", &image]),
        "save-image-dumpxml after define",
    );
    assert!(
        stored.contains("<description>kept in the image</description>"),
        "{stored}"
    );
    // Another guest's XML is refused and the image stays as it was.
    let foreign = virsh(
        uri,
        &[
            "save-image-define",
            &image,
            &xml_file(dir, "foreign", &domain_xml("foreign-guest")),
        ],
    );
    assert!(
        !foreign.status.success()
            && stderr_of(&foreign).contains("the replacement xml names another domain"),
        "{}",
        stderr_of(&foreign)
    );
    let missing = dir.join("missing.save").display().to_string();
    let gone = virsh(uri, &["save-image-dumpxml", &missing]);
    assert!(
        !gone.status.success()
            && stderr_of(&gone).contains(&format!(
                "error: cannot read domain image '{missing}': No such file or directory\n"
            )),
        "{}",
        stderr_of(&gone)
    );
    // Defined --running: restored running without being asked.
    ok(&virsh(uri, &["restore", &image]), "restore");
    assert_eq!(
        ok(&virsh(uri, &["domstate", "--reason", name]), "domstate").trim(),
        "running (restored)"
    );
    let desc = ok(&virsh(uri, &["desc", name]), "desc");
    assert_eq!(desc.trim(), "kept in the image");

    // Rename: shut off only; the config follows the new name.
    ok(&virsh(uri, &["destroy", name]), "destroy");
    let same = virsh(uri, &["domrename", name, name]);
    assert!(
        stderr_of(&same).contains("Can't rename domain to itself"),
        "{}",
        stderr_of(&same)
    );
    let out = ok(
        &virsh(uri, &["domrename", name, "renamed-guest"]),
        "domrename",
    );
    assert!(out.contains("Domain successfully renamed"), "{out}");
    let list = ok(&virsh(uri, &["list", "--all"]), "list --all");
    assert!(
        list.contains("renamed-guest") && !list.contains(name),
        "{list}"
    );
    let inactive = ok(
        &virsh(uri, &["dumpxml", "--inactive", "renamed-guest"]),
        "dumpxml",
    );
    assert!(
        inactive.contains("<name>renamed-guest</name>"),
        "{inactive}"
    );
    ok(&virsh(uri, &["undefine", "renamed-guest"]), "undefine");
}

/// Device hot-plug on the running test guest `name`: a disk live and in
/// the config (listed by both XMLs, a device-added event), an interface in
/// the config only, libvirt's errors, and both detached again.
fn hotplug(uri: &str, dir: &std::path::Path, name: &str) {
    let events = VirshEvents::spawn(uri, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(uri, name);
    let out = ok(
        &virsh(
            uri,
            &[
                "attach-disk",
                name,
                "/var/lib/test/b.img",
                "vdb",
                "--live",
                "--config",
            ],
        ),
        "attach-disk",
    );
    assert!(out.contains("Disk attached successfully"), "{out}");
    events.wait_for(
        &format!("event 'device-added' for domain '{name}': vdb"),
        std::time::Duration::from_secs(10),
    );
    for args in [
        &["domblklist", name] as &[&str],
        &["domblklist", name, "--inactive"],
    ] {
        let listed = ok(&virsh(uri, args), "domblklist");
        assert!(listed.contains("vdb      /var/lib/test/b.img"), "{listed}");
    }
    let again = virsh(
        uri,
        &["attach-disk", name, "/var/lib/test/c.img", "vdb", "--live"],
    );
    assert!(
        stderr_of(&again).contains("target vdb already exists"),
        "{}",
        stderr_of(&again)
    );
    let missing = xml_file(
        dir,
        "vdz",
        "<disk type='file'><source file='/x'/><target dev='vdz'/></disk>",
    );
    let gone = virsh(uri, &["detach-device", name, &missing, "--config"]);
    assert!(
        stderr_of(&gone).contains("device not found: no target device vdz"),
        "{}",
        stderr_of(&gone)
    );
    let video = xml_file(dir, "video", "<video><model type='vga'/></video>");
    let refused = virsh(uri, &["attach-device", name, &video, "--live"]);
    assert!(
        stderr_of(&refused).contains("live attach of device 'video' is not supported"),
        "{}",
        stderr_of(&refused)
    );
    let mac = "52:54:00:7e:57:02";
    let nic = [
        "attach-interface",
        name,
        "bridge",
        "br0",
        "--mac",
        mac,
        "--config",
    ];
    ok(&virsh(uri, &nic), "attach-interface --config");
    let config = ok(&virsh(uri, &["domiflist", name, "--inactive"]), "domiflist");
    assert!(config.contains(mac), "{config}");
    let live = ok(&virsh(uri, &["domiflist", name]), "domiflist");
    assert!(!live.contains(mac), "{live}");
    let detach = ["detach-interface", name, "bridge", "--mac", mac, "--config"];
    ok(&virsh(uri, &detach), "detach-interface --config");
    ok(
        &virsh(uri, &["detach-disk", name, "vdb", "--live", "--config"]),
        "detach-disk",
    );
    events.wait_for(
        &format!("event 'device-removed' for domain '{name}': vdb"),
        std::time::Duration::from_secs(10),
    );
    let listed = ok(
        &virsh(uri, &["domblklist", name, "--inactive"]),
        "domblklist",
    );
    assert!(!listed.contains("vdb"), "{listed}");
}

/// `virsh dump` and `virsh screenshot` on the test driver, as libvirt's test
/// driver answers them.
fn dump_and_screenshot(uri: &str, dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;

    let name = "dump-guest";
    ok(
        &virsh(uri, &["define", &xml_file(dir, name, &domain_xml(name))]),
        "define",
    );
    let core = dir.join("dump-guest.core");
    let core_arg = core.display().to_string();
    let stopped = virsh(uri, &["dump", name, &core_arg]);
    assert!(
        !stopped.status.success() && stderr_of(&stopped).contains("domain is not running"),
        "{}",
        stderr_of(&stopped)
    );
    assert!(!core.exists(), "a refused dump left a file");
    ok(&virsh(uri, &["start", name]), "start");

    let done = ok(&virsh(uri, &["dump", name, &core_arg]), "dump");
    assert!(
        done.contains(&format!("Domain '{name}' dumped to {core_arg}")),
        "{done}"
    );
    assert_eq!(std::fs::read(&core).expect("core"), b"TestGuestMagic\0");
    let mode = std::fs::metadata(&core).expect("core").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let state = ok(&virsh(uri, &["domstate", name]), "domstate");
    assert!(state.contains("running"), "{state}");

    for (args, text) in [
        (
            vec!["--memory-only"],
            "unsupported flags (0x10) in function testDomainCoreDumpWithFormat",
        ),
        (
            vec!["--live"],
            "unsupported flags (0x2) in function testDomainCoreDumpWithFormat",
        ),
        (vec!["--crash", "--reset"], "mutually exclusive"),
        (
            vec!["--format", "kdump-zlib"],
            "--format only works with --memory-only",
        ),
    ] {
        let mut all = vec!["dump", name, core_arg.as_str()];
        all.extend_from_slice(&args);
        let out = virsh(uri, &all);
        assert!(!out.status.success(), "{args:?} succeeded");
        // virsh runs the dump in a thread and sometimes loses the detail.
        let err = stderr_of(&out);
        assert!(
            err.contains(text) || err.contains("Failed to core dump domain"),
            "{args:?}: {err}"
        );
    }
    let unwritable = virsh(uri, &["dump", name, "/nonexistent-dir/guest.core"]);
    let err = stderr_of(&unwritable);
    assert!(
        !unwritable.status.success()
            && err.contains("coredump")
            && err.contains("No such file or directory"),
        "{err}"
    );
    let read_only = virsh(uri, &["-r", "dump", name, &core_arg]);
    assert!(
        !read_only.status.success() && stderr_of(&read_only).contains("operation forbidden"),
        "{}",
        stderr_of(&read_only)
    );

    let shot = dir.join("screen.png");
    let shot_arg = shot.display().to_string();
    let saved = ok(&virsh(uri, &["screenshot", name, &shot_arg]), "screenshot");
    assert!(saved.contains("image/png"), "{saved}");
    let png = std::fs::read(&shot).expect("screenshot file");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 100,
        "{} bytes",
        png.len()
    );
    // As libvirt's test driver: any screen number, the same image.
    let other = dir.join("screen2.png");
    ok(
        &virsh(
            uri,
            &[
                "screenshot",
                name,
                &other.display().to_string(),
                "--screen",
                "3",
            ],
        ),
        "screenshot --screen 3",
    );
    assert_eq!(std::fs::read(&other).expect("second screenshot"), png);

    let crashed = ok(
        &virsh(uri, &["dump", name, &core_arg, "--crash"]),
        "dump --crash",
    );
    assert!(crashed.contains("dumped"), "{crashed}");
    let state = ok(&virsh(uri, &["domstate", name, "--reason"]), "domstate");
    assert!(state.contains("shut off (crashed)"), "{state}");
    ok(&virsh(uri, &["undefine", name]), "undefine");
}

#[test]
fn domain_lifecycle_through_virsh_over_tcp() {
    if require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    lifecycle(&daemon.uri(), dir.path());
    vcpus_save_and_rename(&daemon.uri(), dir.path());
    dump_and_screenshot(&daemon.uri(), dir.path());
}

#[test]
fn domain_lifecycle_through_virsh_over_unix_socket() {
    if require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().unix().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    lifecycle(&daemon.unix_uri(), dir.path());
}

#[test]
fn sixteen_concurrent_virsh_clients_leave_a_consistent_state() {
    if require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    std::thread::scope(|scope| {
        for i in 0..16 {
            let uri = uri.clone();
            let dir = dir.path();
            scope.spawn(move || {
                let name = format!("par-{i:02}");
                let file = xml_file(dir, &name, &domain_xml(&name));
                // One virsh process per client, several commands each.
                // A single argument is parsed by virsh as a ';'-separated script.
                let script = format!("define {file}; start {name}; destroy {name}; start {name}");
                let out = virsh(&uri, &[&script]);
                ok(&out, &format!("client {i}"));
            });
        }
    });
    let list = ok(&virsh(&uri, &["list", "--all", "--name"]), "list --all");
    let mut names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    names.sort_unstable();
    let expected: Vec<String> = (0..16).map(|i| format!("par-{i:02}")).collect();
    assert_eq!(names, expected);
    let running = ok(&virsh(&uri, &["list", "--name"]), "list");
    assert_eq!(
        running.lines().filter(|l| !l.trim().is_empty()).count(),
        16,
        "{running}"
    );
    // Distinct ids, one per running guest.
    let ids = ok(&virsh(&uri, &["list"]), "list");
    let mut id_list: Vec<u32> = ids
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    id_list.sort_unstable();
    id_list.dedup();
    assert_eq!(id_list.len(), 16, "{ids}");
    // Every config reached the disk.
    let stored = daemon.stored_configs().len();
    assert_eq!(
        stored,
        16,
        "stored configs in {}",
        daemon.state_dir().display()
    );
}
