#!/bin/bash
# stop.sh RUNDIR: stops what start.sh RUNDIR started (by pid).
for p in $(cat "$1"/pids 2>/dev/null); do kill "$p" 2>/dev/null; done
rm -f "$1"/pids
