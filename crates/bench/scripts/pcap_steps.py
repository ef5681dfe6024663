"""Server time per RPC procedure, and per offline migration, from a loopback
capture of libvirt-protocol traffic (stand-alone: not embedded in the bench).

Usage:
  tcpdump -i lo -s 2000 -w /tmp/cap.pcap 'tcp port 16509 or tcp port 16510 or ...'
  python3 pcap_steps.py /tmp/cap.pcap NAME=PORT,PORT [NAME=PORT,PORT ...]

A call's server time is the capture time of its reply minus that of the call
(matched by connection and serial). Migrations are the windows from the
first call after a DOMAIN_LOOKUP_BY_NAME (23) to the reply of
DOMAIN_MIGRATE_CONFIRM3_PARAMS (307), as `py_migrate.py` times them.
Assumes each RPC message starts a TCP segment (true for the small messages
of these sequences on loopback)."""
import collections
import statistics
import struct
import sys

PROGRAM = 0x20008086
STEPS = {302: "Begin3", 212: "GetState", 303: "Prepare3", 304: "Perform3", 306: "Finish3", 307: "Confirm3"}


def replies(path, ports):
    """(call time, reply time, server port, procedure) for every answered call."""
    with open(path, "rb") as f:
        header = f.read(24)
        link = struct.unpack("<I", header[20:24])[0]
        skip = {1: 14, 113: 16}.get(link, 4)  # Ethernet, Linux cooked, loopback
        calls = {}
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, usec, incl, _ = struct.unpack("<IIII", rec)
            data, t = f.read(incl), sec + usec / 1e6
            ip = data[skip:]
            if len(ip) < 20 or ip[9] != 6:
                continue
            tcp = ip[(ip[0] & 15) * 4:]
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4:]
            while len(payload) >= 24:
                length, prog, _, proc, kind, serial = struct.unpack(">IIIiii", payload[:24])
                if prog != PROGRAM or length < 24:
                    break
                if dport in ports and kind == 0:
                    calls[(sport, dport, serial)] = (t, proc)
                elif sport in ports and kind == 1 and (dport, sport, serial) in calls:
                    t0, p = calls.pop((dport, sport, serial))
                    yield t0, t, sport, p
                payload = payload[length:]


def main():
    servers = {}
    for arg in sys.argv[2:]:
        name, ports = arg.split("=", 1)
        servers[name] = {int(p) for p in ports.split(",")}
    events = sorted(replies(sys.argv[1], set().union(*servers.values())))
    for name, ports in servers.items():
        per_proc = collections.defaultdict(list)
        migrations, cur = [], None
        for t0, t1, port, proc in (e for e in events if e[2] in ports):
            per_proc[proc].append((t1 - t0) * 1e3)
            if proc == 23:
                cur = {"start": None, "server": 0.0, "calls": 0, "steps": collections.Counter()}
                continue
            if cur is None:
                continue
            cur["start"] = cur["start"] or t0
            cur["server"] += t1 - t0
            cur["calls"] += 1
            cur["steps"][proc] += (t1 - t0) * 1e3
            if proc == 307:
                cur["wall"] = t1 - cur["start"]
                migrations.append(cur)
                cur = None
        print(f"{name}:")
        for proc in sorted(per_proc):
            v = per_proc[proc]
            print(f"  proc {proc:4d} n {len(v):4d} median {statistics.median(v):7.3f} ms min {min(v):7.3f} ms")
        if migrations:
            med = lambda xs: statistics.median(xs)
            print(f"  {len(migrations)} migrations, {med([m['calls'] for m in migrations])} calls each: "
                  f"wall {med([m['wall'] for m in migrations]) * 1e3:.3f} ms, in the servers "
                  f"{med([m['server'] for m in migrations]) * 1e3:.3f} ms, outside "
                  f"{med([m['wall'] - m['server'] for m in migrations]) * 1e3:.3f} ms")
            for proc, step in STEPS.items():
                print(f"    {step:9s} {med([m['steps'][proc] for m in migrations]):7.3f} ms")


if __name__ == "__main__":
    main()
