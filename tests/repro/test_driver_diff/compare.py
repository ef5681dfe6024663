#!/usr/bin/python3
"""Runs the same virsh command lines against libvirt 9.0's in-process test
driver (no daemon) and against migrated's test driver (a fresh daemon per
case, on loopback), and reports where exit code, stdout or stderr differ.

usage: compare.py MIGRATED_BINARY PORT [CASE-SUBSTRING...]

The report (both answers of every differing case) goes to
$WORK/report.txt, WORK being a fresh temporary directory named on stdout.
Every case runs with a timeout; every daemon is stopped before the next.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = ["d1.xml", "d2.xml", "dupuuid.xml", "dupname.xml", "bad.xml",
            "disk.xml", "nic.xml", "node.xml", "node_d1.xml"]
HOST_UUID = "2f0d5a1e-6c1b-4a8e-9d1f-0b1c2d3e4f50"


def start_daemon(binary, port, work):
    state = os.path.join(work, "daemon")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(os.path.join(state, "state"))
    os.makedirs(os.path.join(state, "run"))
    log = open(os.path.join(state, "log"), "w")
    proc = subprocess.Popen(
        [binary, "--listen", f"tcp://127.0.0.1:{port}", "--drivers", "test",
         "--state-dir", os.path.join(state, "state"),
         "--runtime-dir", os.path.join(state, "run"),
         "--host-uuid", HOST_UUID, "--hostname", "vm"],
        stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("migrated did not start")


def virsh(uri, cmds, work, readonly=False):
    args = ["virsh"] + (["-r"] if readonly else []) + ["-c", uri, cmds]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=20, cwd=work)
        return [r.returncode, r.stdout, r.stderr]
    except subprocess.TimeoutExpired:
        return ["timeout", "", ""]


def normalise(text, uris):
    # Deliberate differences that would hide the rest (see operations.md §12).
    text = re.sub(r"(?m)^(CPU time|Security model|Security DOI|Security label):.*\n", "", text)
    text = re.sub(r"(?m)^OS Type:        (linux|hvm)$", "OS Type:        X", text)
    for uri in uris:
        text = text.replace(uri, "URI")
    return text


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    binary, port, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    work = tempfile.mkdtemp(prefix="test-driver-diff-")
    for name in FIXTURES:
        shutil.copy(os.path.join(HERE, name), work)
    sys.path.insert(0, HERE)
    import cases

    ours = f"test+tcp://127.0.0.1:{port}/default"
    libvirt = {"empty": f"test://{work}/node.xml", "d1": f"test://{work}/node_d1.xml",
               "default": "test:///default"}
    uris = [ours] + list(libvirt.values())
    same = differ = 0
    with open(os.path.join(work, "report.txt"), "w") as report:
        for case in cases.CASES:
            if wanted and not any(w in case["name"] for w in wanted):
                continue
            cmds = case["cmds"].replace("@WORK@", work)
            daemon = start_daemon(binary, port, work)
            try:
                if case.get("ro"):
                    # libvirt: a node file with d1 running; ours: d1 started first.
                    virsh(ours, "define d1.xml; start d1", work)
                    lv = virsh(libvirt[case.get("node", "d1")], cmds, work, readonly=True)
                    us = virsh(ours, cmds, work, readonly=True)
                else:
                    lv = virsh(libvirt[case.get("node", "empty")], cmds, work)
                    us = virsh(ours, cmds, work)
            finally:
                daemon.terminate()
                daemon.wait()
            lv = [lv[0]] + [normalise(t, uris) for t in lv[1:]]
            us = [us[0]] + [normalise(t, uris) for t in us[1:]]
            verdict = "SAME" if lv == us else "DIFF"
            same, differ = same + (lv == us), differ + (lv != us)
            print(f"{verdict} {case['name']}")
            report.write(f"=== {verdict} {case['name']}: {cmds}\n")
            if lv != us:
                report.write(f"--- libvirt rc={lv[0]}\n{lv[1]}\n[stderr]\n{lv[2]}\n")
                report.write(f"--- migrated rc={us[0]}\n{us[1]}\n[stderr]\n{us[2]}\n")
    print(f"{same} same, {differ} different; report in {work}/report.txt")


if __name__ == "__main__":
    main()
