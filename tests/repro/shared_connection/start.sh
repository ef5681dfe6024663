#!/bin/bash
# start.sh BIN DRIVER RUNDIR [A B PA PB]: two daemons (A, B; default ports
# 17740/17741) at debug level, each behind a packet-logging proxy (PA -> A,
# PB -> B; default 17750/17751). Pids go to RUNDIR/pids (stop.sh RUNDIR).
# Migration ports: MPA / MPB (default 49980-49987 / 49990-49997).
set -e
BIN=$1; DRV=$2; R=$3; A=${4:-17740}; B=${5:-17741}; PA=${6:-17750}; PB=${7:-17751}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$R"; mkdir -p "$R"/a/state "$R"/a/run "$R"/b/state "$R"/b/run; : > "$R"/none.toml
LOGF="info,migrated=debug,migrated_rpc=trace,migrated_daemon=debug"
daemon() { # name port uuid-suffix ports
    setsid "$BIN" --config "$R"/none.toml --listen tcp://127.0.0.1:$2 --drivers "$DRV" \
        --state-dir "$R/$1/state" --runtime-dir "$R/$1/run" \
        --host-uuid 11111111-2222-3333-4444-5555555555$3 --hostname host-$1 --log-filter "$LOGF" \
        --migration-ports "$4" --migration-address 127.0.0.1 > "$R/$1.log" 2>&1 &
    echo $! >> "$R"/pids
}
daemon a "$A" 01 "${MPA:-49980-49987}"
daemon b "$B" 02 "${MPB:-49990-49997}"
setsid /usr/bin/python3 "$HERE"/proxy.py "$PA" "$A" "$R"/proxy-a.log > /dev/null 2>&1 & echo $! >> "$R"/pids
setsid /usr/bin/python3 "$HERE"/proxy.py "$PB" "$B" "$R"/proxy-b.log > /dev/null 2>&1 & echo $! >> "$R"/pids
sleep 1; echo started
