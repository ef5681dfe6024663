#!/usr/bin/python3
"""Bounded reproducer: one thread migrates a dirtying guest at a low
bandwidth (migrate3 or migrateToURI3), pollers call jobStats / jobInfo /
migrateGetCompressionCache / info in a loop on the SAME connection.

usage: repro.py SRC_URI DST_URI DOM TRIES MODE [EVENTLOOP] [BW]
SRC_URI/DST_URI go through the proxies of start.sh; MODE: migrate3 | p2p |
both (alternates); EVENTLOOP 1 registers libvirt's default event loop (the
client then negotiates keepalive); BW in MiB/s. Directions alternate every
successful try; a migration still running after TRY_LIMIT is aborted on a
separate direct connection.
Any single call taking > STUCK s is reported (with its wall start time);
the process then exits after dumping all threads (faulthandler)."""
import faulthandler, os, sys, threading, time
import libvirt

src_uri, dst_uri, name, tries, mode = sys.argv[1:6]
tries = int(tries)
eventloop = len(sys.argv) > 6 and sys.argv[6] == '1'
bw = int(sys.argv[7]) if len(sys.argv) > 7 else 1
# proxy and daemon ports (start.sh's defaults), to reach a daemon directly
PORTS = {k: os.environ.get(k, v) for k, v in
         (('PROXY_A', '17750'), ('PROXY_B', '17751'), ('REAL_A', '17740'), ('REAL_B', '17741'))}
STUCK = 30.0
TRY_LIMIT = 90.0

if eventloop:
    libvirt.virEventRegisterDefaultImpl()
    def loop():
        while True:
            libvirt.virEventRunDefaultImpl()
    threading.Thread(target=loop, daemon=True).start()

libvirt.registerErrorHandler(lambda *a: None, None)
inflight = {}  # thread name -> (call, start)
inflight_lock = threading.Lock()
stats = {'calls': 0, 'errors': {}, 'max': {}}

def timed(tname, label, fn):
    t0 = time.time()
    with inflight_lock:
        inflight[tname] = (label, t0)
    try:
        return fn()
    except libvirt.libvirtError as e:
        key = '%s: %s' % (label, e.get_error_code())
        stats['errors'][key] = stats['errors'].get(key, 0) + 1
    finally:
        dt = time.time() - t0
        with inflight_lock:
            inflight.pop(tname, None)
            stats['calls'] += 1
            stats['max'][label] = max(stats['max'].get(label, 0), dt)

def poller(conn, dname, which, stop):
    dom = conn.lookupByName(dname)
    calls = {
        'jobStats': lambda: dom.jobStats(),
        'jobInfo': lambda: dom.jobInfo(),
        'compcache': lambda: dom.migrateGetCompressionCache(),
        'info': lambda: dom.info(),
    }
    tname = threading.current_thread().name
    n = 0
    while not stop.is_set() and n < 5000:
        for label in which:
            timed(tname, label, calls[label])
            n += 1
        time.sleep(0.002)

def watchdog(deadline):
    """True when something is stuck; prints what."""
    now = time.time()
    with inflight_lock:
        # the migration call is expected to be long; only the pollers count
        stuck = [(t, c, s) for t, (c, s) in inflight.items()
                 if t != 'migrate' and now - s > STUCK]
    for t, c, s in stuck:
        print('STUCK: thread %s call %s started %.6f (%.1fs ago)' % (t, c, s, now - s), flush=True)
    return bool(stuck)

conns = {}
def conn(uri):
    if uri not in conns:
        conns[uri] = libvirt.open(uri)
    return conns[uri]

here, there = src_uri, dst_uri
for i in range(tries):
    m = mode if mode != 'both' else ('migrate3' if i % 2 == 0 else 'p2p')
    s, d = conn(here), conn(there)
    dom = s.lookupByName(name)
    stop = threading.Event()
    pollers = [
        threading.Thread(name='p-stats', target=poller, args=(s, name, ['jobStats', 'compcache'], stop)),
        threading.Thread(name='p-info', target=poller, args=(s, name, ['jobInfo', 'info'], stop)),
        threading.Thread(name='p-cache', target=poller, args=(s, name, ['compcache', 'jobStats'], stop)),
    ]
    result = {}
    def migrate():
        t0 = time.time()
        params = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: bw}
        try:
            if m == 'migrate3':
                dom.migrate3(d, params, libvirt.VIR_MIGRATE_LIVE)
            else:
                # the destination URI as the source daemon reaches it
                dom.migrateToURI3(there.replace(':%s/' % PORTS['PROXY_B'], ':%s/' % PORTS['REAL_B'])
                                  .replace(':%s/' % PORTS['PROXY_A'], ':%s/' % PORTS['REAL_A']),
                                  params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
            result['ok'] = time.time() - t0
        except libvirt.libvirtError as e:
            result['err'] = str(e)
    mt = threading.Thread(name='migrate', target=lambda: timed('migrate', m, migrate))
    t0 = time.time()
    print('try %d %s %s -> %s start %.6f' % (i, m, here, there, t0), flush=True)
    mt.start()
    time.sleep(0.3)
    for p in pollers:
        p.start()
    deadline = t0 + TRY_LIMIT
    stuck = False
    while time.time() < deadline and mt.is_alive():
        mt.join(0.5)
        if watchdog(deadline):
            stuck = True
            break
    stop.set()
    for p in pollers:
        p.join(max(0.1, min(STUCK, deadline + STUCK - time.time())))
        if p.is_alive():
            stuck = True
    if mt.is_alive() and not stuck:
        # did not converge in time: abort it on a separate, direct connection
        # (not the one under test) and let the migrate call return
        direct = here.replace(':%s/' % PORTS['PROXY_A'], ':%s/' % PORTS['REAL_A']) \
                     .replace(':%s/' % PORTS['PROXY_B'], ':%s/' % PORTS['REAL_B'])
        try:
            libvirt.open(direct).lookupByName(name).abortJob()
        except libvirt.libvirtError as e:
            print('abort:', e, flush=True)
        mt.join(STUCK)
    if mt.is_alive() or stuck:
        watchdog(deadline)
        print('try %d: STUCK/TIMEOUT at %.6f; inflight=%r' % (i, time.time(), inflight), flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)
    print('try %d done in %.1fs: %r calls=%d max=%s errors=%s' % (
        i, time.time() - t0, result, stats['calls'],
        {k: round(v, 3) for k, v in stats['max'].items()}, stats['errors']), flush=True)
    stats = {'calls': 0, 'errors': {}, 'max': {}}
    if 'ok' in result:
        here, there = there, here
    else:
        time.sleep(1)
print('ALL DONE', flush=True)
os._exit(0)
