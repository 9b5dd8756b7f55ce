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

# Wait (bounded) until a pid is gone.  Returns 1 if it is still there.
wait_gone() {
  local pid=$1 deadline=$((SECONDS + ${2:-5}))
  while [[ -e /proc/$pid ]]; do
    # A zombie has exited already; its parent will reap it.
    [[ $(proc_state "$pid") == Z ]] && return 0
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
