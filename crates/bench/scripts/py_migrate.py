"""Times virDomainMigrate3 calls through python3-libvirt with both
connections already open, so neither virsh's start-up nor connection
set-up is in the figure: the daemons' own cost of a migration.

Usage: py_migrate.py URI0 URI1 GUEST FROM MODE SETTLE_S [MIGURI0 MIGURI1]
MODE is offline or live; SETTLE_S is the pause before each live migration. Migrates GUEST from host FROM (0 or 1) to the
other host and back. Prints one JSON object: ms (one wall time per call)."""
import json, sys, time
import libvirt

uris = [sys.argv[1], sys.argv[2]]
guest, at, mode, settle = sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
miguris = sys.argv[7:9] if len(sys.argv) >= 9 else ["", ""]
conns = [libvirt.open(u) for u in uris]
if mode == "offline":
    flags = (libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
             | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
else:
    flags = libvirt.VIR_MIGRATE_LIVE
out = []
for _ in range(2):
    to = 1 - at
    dom = conns[at].lookupByName(guest)
    params = {}
    if mode != "offline" and miguris[to]:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = miguris[to]
    if mode != "offline":
        time.sleep(settle)       # the pause every live series gets
    t = time.monotonic()
    dom.migrate3(conns[to], params, flags)
    out.append((time.monotonic() - t) * 1e3)
    at = to
for c in conns:
    c.close()
print(json.dumps({"ms": out}))
