# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by tests/rig/{up,down,smoke}.  Sourced, not executed.
#
# The rig is a "host" on this machine that berth reaches exactly as in
# production: over SSH as user deploy, with Docker and a front nginx.

RIG=${BERTH_RIG:-/tmp/berth-rig}
RIG_SSH_HOST=127.0.0.1
RIG_SSH_PORT=2222
RIG_SSH_USER=deploy
RIG_FRONT_LISTEN=127.0.0.1:8080
RIG_RUNTIME_IMAGE=berth/php-nginx:8.2-bookworm

SSH_DIR=$RIG/ssh
SSHD_CONFIG=$SSH_DIR/sshd_config
SSHD_PID=$SSH_DIR/sshd.pid
FRONT=$RIG/front
FRONT_CONF=$FRONT/nginx.conf
FRONT_PID=$FRONT/nginx.pid

# DNS servers for berth's DNS sync (docs/rig.md, "DNS servers").
RIG_PDNS_DNS_PORT=5300
RIG_PDNS_API_PORT=8081
RIG_BIND_PORT=5301
RIG_TSIG_KEY_NAME=berth-rig-key
RIG_TSIG_WRONG_KEY_NAME=berth-rig-wrong
RIG_TSIG_ALGORITHM=hmac-sha256
# Twelve zones, one per test (claimed by index), and one for the benchmark.
RIG_BIND_ZONES="z0.rfc2136.test z1.rfc2136.test z2.rfc2136.test z3.rfc2136.test z4.rfc2136.test z5.rfc2136.test z6.rfc2136.test z7.rfc2136.test z8.rfc2136.test z9.rfc2136.test z10.rfc2136.test z11.rfc2136.test"
RIG_BIND_BENCH_ZONE=bench.rfc2136.test

# PowerDNS's backend: lmdb, or gsqlite3 (tests/rig/up explains the choice).
RIG_PDNS_BACKEND=${BERTH_RIG_PDNS_BACKEND:-gsqlite3}

PDNS_DIR=$RIG/pdns
PDNS_CONF=$PDNS_DIR/pdns.conf
# The database; removed and made anew each time PowerDNS starts.
PDNS_DATA=$PDNS_DIR/data
# pdns_server writes <socket-dir>/pdns.pid itself (write-pid=yes).
PDNS_PID=$PDNS_DIR/pdns.pid
# Secrets are generated once and kept across down/up, like the ssh keys.
PDNS_API_KEY_FILE=$PDNS_DIR/api-key
BIND_DIR=$RIG/bind
NAMED_CONF=$BIND_DIR/named.conf
NAMED_PID=$BIND_DIR/named.pid
BIND_ZONE_DIR=$BIND_DIR/zones
TSIG_KEY_FILE=$BIND_DIR/$RIG_TSIG_KEY_NAME.key
TSIG_WRONG_KEY_FILE=$BIND_DIR/$RIG_TSIG_WRONG_KEY_NAME.key

# A process id from a pid file, printed only if that process is still the
# one we started.  pid_max is 32768 here and PIDs wrap within minutes during
# a cargo build, so a bare `kill -0` could hit an unrelated process: the
# process's command line must also contain every given string.
pid_if_ours() {
  local pidfile=$1 pid cmdline want
  shift
  [[ -r $pidfile ]] || return 1
  read -r pid <"$pidfile" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for want in "$@"; do
    [[ $cmdline == *"$want"* ]] || return 1
  done
  printf '%s\n' "$pid"
}

# `sshd -D -e -f $SSHD_CONFIG` (listener) still running?
sshd_pid() { pid_if_ours "$SSHD_PID" /usr/sbin/sshd "-f $SSHD_CONFIG"; }

# Front nginx master still running?  nginx rewrites its title to
# "nginx: master process <original argv>".
front_pid() { pid_if_ours "$FRONT_PID" "nginx: master process" "$FRONT_CONF"; }

# PowerDNS (`pdns_server --config-dir=$PDNS_DIR`, foreground) still running?
pdns_pid() { pid_if_ours "$PDNS_PID" pdns_server "--config-dir=$PDNS_DIR"; }

# BIND (`named -g -c $NAMED_CONF`, foreground) still running?
named_pid() { pid_if_ours "$NAMED_PID" named "-c $NAMED_CONF"; }

# The base64 secret of a key file written by tsig-keygen.
tsig_secret() { sed -n 's/^[[:space:]]*secret "\(.*\)";$/\1/p' "$1"; }

# All descendants of a pid (children first-level, then theirs, ...), from
# /proc/*/stat's ppid field.  Used to find the per-connection sshd processes
# and the commands they run, which outlive the listener.
descendants() {
  local root=$1 stat pid rest ppid line
  declare -A kids=()
  for stat in /proc/[0-9]*/stat; do
    # Field 2 (comm) may contain spaces; everything after the last ')' is safe.
    { read -r line <"$stat"; } 2>/dev/null || continue
    pid=${stat#/proc/}
    pid=${pid%/stat}
    rest=${line##*) }
    read -r _ ppid _ <<<"$rest"
    kids[$ppid]+=" $pid"
  done
  local queue=("$root") p c
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for c in ${kids[$p]:-}; do
      printf '%s\n' "$c"
      queue+=("$c")
    done
  done
}

# One-letter state of a process (R, S, Z, ...), from /proc/PID/stat.  Field
# 2 (comm) may contain spaces; everything after the last ')' is safe.
proc_state() {
  local line
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }
  printf '%s\n' "${line%% *}"
}

# Number of threads of a process, from /proc/PID/status.
proc_threads() {
  local key value
  { while read -r key value _; do
    [[ $key == Threads: ]] && printf '%s\n' "$value" && return 0
  done <"/proc/$1/status"; } 2>/dev/null
  return 1
}

# Wait (bounded) until a pid is gone.  Returns 1 if it is still there.
wait_gone() {
  local pid=$1 deadline=$((SECONDS + ${2:-5}))
  while [[ -e /proc/$pid ]]; do
    # A zombie has exited already; its parent will reap it.  But in a
    # threaded server (pdns_server, named) the main thread turns Z first
    # while other threads still run and hold its sockets: only a zombie
    # with one thread left is gone.
    [[ $(proc_state "$pid") == Z && $(proc_threads "$pid") == 1 ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# Client options for ssh as deploy with strict host key checking against the
# rig's own known_hosts only (no ~/.ssh, no global file, no agent, no prompt).
ssh_opts() {
  printf '%s\n' -p "$RIG_SSH_PORT" -i "$SSH_DIR/deploy_key" \
    -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
    -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o ConnectTimeout=5 -o LogLevel=ERROR
}
