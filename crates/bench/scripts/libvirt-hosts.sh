#!/usr/bin/env bash
# libvirt-hosts.sh -- one or two stock libvirtd "hosts" on this machine, for the
# side-by-side benchmarks (`cargo xtask bench ...`). Adapted from the project's
# shared/bench/libvirt-baseline.sh set-up, which it does not modify or need.
#
# Usage (as root):  libvirt-hosts.sh WORKDIR HOST...      HOST: a | b
# Env:              LVH_TLS_DIR=DIR   also listen on TLS with DIR's deploy/pki.sh files
#                                     (DIR/CA/cacert.pem, DIR/libvirt/servercert.pem,
#                                     DIR/libvirt/private/serverkey.pem)
#                   LVH_MAX_SECS=1800 stop by itself after this long
#
# Prints "READY" on stdout once every daemon answers `virsh version`, then
# keeps them running until its standard input reaches end of file (the bench
# closes it, or dies), then stops them and removes everything it made.
#
# The hosts:
#  * The whole script runs in a private mount namespace (unshare --mount) with
#    private /etc/nsswitch.conf (hosts: files), /etc/hosts, /etc/resolv.conf,
#    /etc/passwd and /etc/group bind-mounted over the real ones: no DNS query is
#    ever made, and Debian's libvirt wants a 'libvirt-qemu' user to exist.
#  * Each libvirtd runs in its own mount + UTS namespace with its own host name,
#    host_uuid and private dirs over /run/libvirt, /var/lib/libvirt,
#    /var/cache/libvirt, /var/log/libvirt and /etc/libvirt; TCP on 127.0.0.1
#    (A 16509, B 16510; TLS A 16514, B 16515), auth_tcp none, stock defaults
#    otherwise (max_client_requests 5, max_workers 20).
#  * qemu.conf: user root, no security driver, no cgroups, no virtlogd;
#    migration address 127.0.0.2 (A) / 127.0.0.3 (B) because libvirt refuses
#    127.0.0.1 there; migration ports A 49152-49215, B 49216-49279.
#  * libvirtd runs under a child subreaper: this machine's PID 1 reaps orphans
#    about 2 s late, and libvirt polls for the stopped source QEMU to vanish.
set -uo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
log() { printf '[libvirt-hosts %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[[ $# -ge 2 ]] || die "usage: libvirt-hosts.sh WORKDIR HOST..."
WORK=$1; shift
HOSTS=("$@")
MAX_SECS=${LVH_MAX_SECS:-1800}

if [[ -z ${LVH_INNER:-} ]]; then
  [[ $(id -u) -eq 0 ]] || die "must run as root (private mounts, namespaces)"
  PKGS=(qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
        python3-libvirt util-linux iproute2)
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      >&2 || die "apt-get install failed"
  fi
  export LVH_INNER=1
  exec unshare --mount --propagation private -- /bin/bash "$SELF" "$WORK" "${HOSTS[@]}"
fi

declare -A NAME=([a]=hosta.bench.test [b]=hostb.bench.test)
declare -A PORT=([a]=16509 [b]=16510)
declare -A TLSPORT=([a]=16514 [b]=16515)
declare -A ADDR=([a]=127.0.0.2 [b]=127.0.0.3)
declare -A HUUID=([a]=8a3e1f3c-5a1b-4c2d-9e3f-0000000000aa [b]=8a3e1f3c-5a1b-4c2d-9e3f-0000000000bb)
declare -A MIGMIN=([a]=49152 [b]=49216)
declare -A MIGMAX=([a]=49215 [b]=49279)
uri()  { printf 'qemu+tcp://127.0.0.1:%s/system' "${PORT[$1]}"; }
hdir() { echo "$WORK/host$1"; }

mkdir -p "$WORK/etc" || die "cannot create $WORK"
OUTER_MOUNTS=()
CREATED_DIRS=()

is_cmd() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q -- "$2"; }
stop_daemon() {
  local d pid i
  d=$(hdir "$1")
  pid=$(cat "$d/libvirtd.pid" 2>/dev/null)
  if [[ -n $pid ]] && is_cmd "$pid" /usr/sbin/libvirtd; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do is_cmd "$pid" /usr/sbin/libvirtd || break; sleep 0.1; done
    is_cmd "$pid" /usr/sbin/libvirtd && kill -KILL "$pid" 2>/dev/null
  fi
}
reap_ns() {
  local upid i c
  upid=$(cat "$(hdir "$1")/unshare.pid" 2>/dev/null)
  [[ -n $upid ]] || return 0
  for ((i = 0; i < 50; i++)); do is_cmd "$upid" unshare || return 0; sleep 0.1; done
  for c in $(ps -o pid= --ppid "$upid"); do kill -TERM "$c" 2>/dev/null; done
  sleep 0.5
  is_cmd "$upid" unshare && kill -KILL "$upid" 2>/dev/null
}
CLEANED=0
cleanup() {
  ((CLEANED)) && return; CLEANED=1
  set +e
  local x dom p pid
  for x in "${HOSTS[@]}"; do
    [[ -S $(hdir "$x")/run/libvirt-sock ]] || continue
    for dom in $(timeout 20 virsh -q -c "$(uri "$x")" list --all --name 2>/dev/null); do
      timeout 20 virsh -q -c "$(uri "$x")" destroy "$dom" >/dev/null 2>&1
      timeout 20 virsh -q -c "$(uri "$x")" undefine "$dom" >/dev/null 2>&1
    done
  done
  for x in "${HOSTS[@]}"; do stop_daemon "$x"; done
  for p in "$WORK"/host?/run/qemu/*.pid; do
    [[ -f $p ]] || continue
    pid=$(cat "$p"); [[ -n $pid ]] && is_cmd "$pid" qemu-system && kill -KILL "$pid" 2>/dev/null
  done
  for x in "${HOSTS[@]}"; do reap_ns "$x"; done
  for ((p = ${#OUTER_MOUNTS[@]} - 1; p >= 0; p--)); do umount "${OUTER_MOUNTS[p]}" 2>/dev/null; done
  for ((p = ${#CREATED_DIRS[@]} - 1; p >= 0; p--)); do rmdir "${CREATED_DIRS[p]}" 2>/dev/null; done
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for x in "${HOSTS[@]}"; do
  [[ -n ${PORT[$x]:-} ]] || die "unknown host '$x' (a or b)"
  for port in "${PORT[$x]}" "${TLSPORT[$x]}"; do
    ss -Hltn "sport = :$port" | grep -q . && die "TCP port $port is taken (a system libvirtd?)"
  done
done

# ---- private /etc
sed 's/^hosts:.*/hosts:          files/' /etc/nsswitch.conf > "$WORK/etc/nsswitch.conf"
printf 'nameserver 127.0.0.1\n' > "$WORK/etc/resolv.conf"
{
  printf '127.0.0.1 localhost %s\n::1 localhost\n' "$(hostname)"
  printf '%s %s %s\n' "${ADDR[a]}" "${NAME[a]}" "${NAME[a]%%.*}"
  printf '%s %s %s\n' "${ADDR[b]}" "${NAME[b]}" "${NAME[b]%%.*}"
} > "$WORK/etc/hosts"
cp /etc/passwd "$WORK/etc/passwd"; cp /etc/group "$WORK/etc/group"
getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> "$WORK/etc/group"
getent passwd libvirt-qemu >/dev/null ||
  echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> "$WORK/etc/passwd"
for f in nsswitch.conf resolv.conf hosts passwd group; do
  [[ -e /etc/$f ]] || touch "/etc/$f"
  mount --bind "$WORK/etc/$f" "/etc/$f" || die "bind mount /etc/$f failed"
  OUTER_MOUNTS+=("/etc/$f")
done
for t in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  [[ -d $t ]] || { mkdir -p "$t" && CREATED_DIRS+=("$t"); }
done

cat > "$WORK/subreaper.py" <<'PYEOF'
"""Run a command as a child subreaper and reap every orphan at once."""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:          # PR_SET_CHILD_SUBREAPER
    sys.exit('prctl(PR_SET_CHILD_SUBREAPER) failed')
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def fwd(sig, frame):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, fwd)
rc = 0
while True:
    try:
        p, st = os.wait()
    except ChildProcessError:
        break
    if p == pid:
        rc = os.waitstatus_to_exitcode(st)
sys.exit(rc)
PYEOF

# ---- daemons
start_daemon() {
  local x=$1 d tls_conf="listen_tls = 0"
  d=$(hdir "$x")
  mkdir -p "$d"/{run,lib,cache,log,etc}
  if [[ -n ${LVH_TLS_DIR:-} ]]; then
    tls_conf="listen_tls = 1
tls_port = \"${TLSPORT[$x]}\"
key_file = \"$LVH_TLS_DIR/libvirt/private/serverkey.pem\"
cert_file = \"$LVH_TLS_DIR/libvirt/servercert.pem\"
ca_file = \"$LVH_TLS_DIR/CA/cacert.pem\""
  fi
  cat > "$d/etc/libvirtd.conf" <<EOF
$tls_conf
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "${PORT[$x]}"
auth_tcp = "none"
auth_tls = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
host_uuid = "${HUUID[$x]}"
log_filters = "3:*"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  cat > "$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
migration_address = "${ADDR[$x]}"
migration_host = "${ADDR[$x]}"
migration_port_min = ${MIGMIN[$x]}
migration_port_max = ${MIGMAX[$x]}
EOF
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root \
    unshare --mount --uts --fork --propagation private -- /bin/bash -c '
      set -e
      hostname "$1"
      mount --bind "$2/run"   /run/libvirt
      mount --bind "$2/lib"   /var/lib/libvirt
      mount --bind "$2/cache" /var/cache/libvirt
      mount --bind "$2/log"   /var/log/libvirt
      mount --bind "$2/etc"   /etc/libvirt
      exec /usr/bin/python3 "$3" /usr/sbin/libvirtd --listen -f /etc/libvirt/libvirtd.conf -p "$2/libvirtd.pid"
    ' lvh-ns "${NAME[$x]}" "$d" "$WORK/subreaper.py" < /dev/null > "$d/daemon.out" 2>&1 &
  echo $! > "$d/unshare.pid"
}
wait_daemon() {
  local x=$1 i
  for ((i = 0; i < 120; i++)); do
    timeout 20 virsh -q -c "$(uri "$x")" version >/dev/null 2>&1 && return 0
    is_cmd "$(cat "$(hdir "$x")/unshare.pid")" unshare || break
    sleep 0.5
  done
  log "libvirtd $x failed to start:"
  cat "$(hdir "$x")/daemon.out" "$(hdir "$x")/log/libvirtd.log" >&2 2>/dev/null
  return 1
}

for x in "${HOSTS[@]}"; do start_daemon "$x"; done
for x in "${HOSTS[@]}"; do wait_daemon "$x" || exit 1; done
log "up: ${HOSTS[*]}"
echo READY

# ---- wait for the bench to let go (end of file on stdin), bounded in time
START=$SECONDS
while ((SECONDS - START < MAX_SECS)); do
  read -r -t 5 _
  rc=$?
  ((rc == 0)) && continue
  ((rc > 128)) && continue   # read timed out: check the deadline again
  break                      # end of file
done
exit 0
