"""lookupByName + XMLDesc pairs per second through python3-libvirt.

Usage: py_rpc.py URI GUEST SECS THREADS
Prints one JSON object: pairs_per_s, pair_ms_median, pair_ms_p99, n.
THREADS threads, one connection each; every loop is bounded by SECS."""
import json, sys, threading, time
import libvirt

uri, guest, secs, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
libvirt.registerErrorHandler(lambda *a: None, None)
conns = [libvirt.open(uri) for _ in range(threads)]
for c in conns:                      # warm-up, uncounted
    for _ in range(20):
        c.lookupByName(guest).XMLDesc(0)
lat = [[] for _ in range(threads)]
start = time.monotonic()
deadline = start + secs
def work(i):
    c, out = conns[i], lat[i]
    while True:
        t = time.monotonic()
        if t >= deadline:
            break
        c.lookupByName(guest).XMLDesc(0)
        out.append(time.monotonic() - t)
ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
elapsed = time.monotonic() - start
for c in conns:
    c.close()
allv = sorted(x for l in lat for x in l)
n = len(allv)
def pct(p):
    if not allv:
        return None
    k = max(0, min(n - 1, int(-(-p * n // 100)) - 1))   # nearest rank
    return allv[k] * 1e3
print(json.dumps({"pairs_per_s": n / elapsed if elapsed > 0 else 0, "n": n,
                  "pair_ms_median": pct(50), "pair_ms_p99": pct(99)}))
