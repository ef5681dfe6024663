//! python3-libvirt between two migrated daemons: `dom.migrate3(dconn,
//! params, flags)` (managed) and `dom.migrateToURI3(...)` (peer-to-peer),
//! each watched by `domainEventRegisterAny` callbacks for the source's
//! MIGRATION_ITERATION and JOB_COMPLETED events.

mod migrate_support;

use migrate_support::{define, persistent, state, Hosts};
use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{python, require_python_libvirt};

#[test]
fn python_migrate3_then_migrate_to_uri3_back() {
    if require_python_libvirt().is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "py-g", "", true);
    let script = format!(
        r#"
import threading, time
import libvirt

# Before opening: connections only deliver events with a loop registered.
libvirt.virEventRegisterDefaultImpl()
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()

seen = []
def on_iteration(conn, dom, iteration, host):
    seen.append((host, 'iteration', dom.name(), iteration))
def on_completed(conn, dom, params, host):
    seen.append((host, 'completed', dom.name(), params))

def check(host, name):
    deadline = time.time() + 20
    while not any(e[0] == host and e[1] == 'completed' for e in seen) and time.time() < deadline:
        time.sleep(0.05)
    mine = [e for e in seen if e[0] == host]
    iterations = [e[3] for e in mine if e[1] == 'iteration' and e[2] == name]
    done = [e[3] for e in mine if e[1] == 'completed' and e[2] == name]
    ok = (len(iterations) >= 1 and iterations == list(range(1, len(iterations) + 1))
          and len(done) == 1 and done[0].get('memory_iteration') == iterations[-1])
    stats = done[0] if done else {{}}
    print(host, 'events', ok, stats.get('operation'), stats.get('success'),
          stats.get('data_total', 0) > 0, 'time_elapsed' in stats, len(mine))

s = libvirt.open('{a}')
d = libvirt.open('{b}')
dom = s.lookupByName('py-g')
for conn, host in ((s, 'a'), (d, 'b')):
    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, on_iteration, host)
    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, on_completed, host)
params = {{libvirt.VIR_MIGRATE_PARAM_DEST_NAME: 'py-renamed',
          libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100}}
new = dom.migrate3(d, params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST)
print('there', new.name(), new.state()[0], new.isPersistent())
check('a', 'py-g')
rc = new.migrateToURI3('{a}', {{libvirt.VIR_MIGRATE_PARAM_DEST_NAME: 'py-g'}},
                       libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
back = s.lookupByName('py-g')
print('back', rc, back.state()[0])
check('b', 'py-renamed')
d.close()
s.close()
"#
    );
    let out = python(&script);
    assert!(
        out.status.success(),
        "python failed: {}{}\n{}",
        stdout_of(&out),
        stderr_of(&out),
        hosts.logs()
    );
    let text = stdout_of(&out);
    // state 1 = running
    assert!(text.contains("there py-renamed 1 1"), "{text}");
    assert!(text.contains("back 0 1"), "{text}");
    // Each source saw its passes from 1 and one JOB_COMPLETED whose
    // statistics (a dict: operation 5 = migration out, success, data_total,
    // time_elapsed, memory_iteration = the last pass) match them; a
    // destination, being one only, saw nothing until its own leg.
    assert!(text.contains("a events True 5 True True True"), "{text}");
    assert!(text.contains("b events True 5 True True True"), "{text}");
    assert_eq!(state(&a, "py-g").as_deref(), Some("running"));
    // the p2p leg was without PERSIST_DEST|UNDEFINE_SOURCE: B keeps its
    // persistent config of the renamed guest, shut off
    assert_eq!(state(&b, "py-renamed").as_deref(), Some("shut off"));
    assert!(persistent(&b, "py-renamed"));
}

#[test]
fn python_sees_invalid_arg_for_an_unknown_flag_bit_and_nothing_moves() {
    if require_python_libvirt().is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "py-t", "", true);
    let script = format!(
        r#"
import libvirt
s = libvirt.open('{a}')
dom = s.lookupByName('py-t')
try:
    dom.migrateToURI3('{b}', {{}}, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_TUNNELLED | libvirt.VIR_MIGRATE_PEER2PEER | (1 << 29))
    print('unexpected success')
except libvirt.libvirtError as e:
    print('code', e.get_error_code())
print('state', dom.state()[0])
"#
    );
    let out = python(&script);
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    // unknown flag bit 29 → VIR_ERR_INVALID_ARG (8)
    assert!(text.contains("code 8"), "{text}");
    assert!(text.contains("state 1"), "{text}");
    assert_eq!(state(&b, "py-t"), None);
}
