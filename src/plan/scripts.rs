//! The shell scripts berth runs on a host, embedded. `plan::command`
//! builds the argv that calls them (`bash -c SCRIPT bash ARGS…`); the
//! `--dry-run` text shows them by name. They take every program and path
//! as an argument, never from text spliced into the script.

/// An embedded script and the name `--dry-run` shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub name: &'static str,
    pub text: &'static str,
}

/// Every script a plan may run, for showing a command's argv.
pub const ALL: [Script; 4] = [SWITCH_FRONT, COMPOSE_UP, SAVE_LOGS, MOVE_INTO_PLACE];

/// Renames a synced staging directory into place (`$1` staging, `$2` the
/// code directory), replacing what an interrupted earlier run left there.
pub const MOVE_INTO_PLACE: Script = Script {
    name: "MOVE_INTO_PLACE",
    text: r#"mkdir -p "$(dirname "$2")" && rm -rf -- "$2" && mv -- "$1" "$2""#,
};

/// Installs a vhost under the host's front lock: keep the old file, move the
/// new one in, `nginx -t`; on failure put the old one back; then reload.
/// With the master's pid file, it then waits (at most 10 s) until each
/// worker of before the reload is gone or titled "shutting down": nginx
/// sets that title as it handles the master's QUIT and closes its
/// listening sockets, so from then on only new workers accept.
/// Arguments: lock, vhost, staged file, pid file (or ""), the test
/// command's length, the test command, the reload command.
pub const SWITCH_FRONT: Script = Script {
    name: "SWITCH_FRONT",
    text: r#"set -u
exec 9>"$1" && flock -w 60 9 || { echo "front lock $1 not taken" >&2; exit 90; }
vhost=$2 staged=$3 pidfile=$4 n=$5
shift 5
# Checked before anything changes: without them the switch could not tell
# when the old workers stop accepting.
if [ -n "$pidfile" ]; then
  command -v pgrep >/dev/null || { echo "pgrep (procps) is missing on the host: needed with front.pid_file" >&2; exit 94; }
  [ -r "$pidfile" ] || { echo "front.pid_file $pidfile is not readable" >&2; exit 94; }
fi
test_cmd=("${@:1:n}")
reload_cmd=("${@:n+1}")
if [ -e "$vhost" ]; then cp -p -- "$vhost" "$vhost.berth-prev"; had=1; else had=0; fi
cp -- "$staged" "$vhost.berth-new" && mv -f -- "$vhost.berth-new" "$vhost" || exit 93
if ! out=$("${test_cmd[@]}" 2>&1); then
  if [ "$had" = 1 ]; then mv -f -- "$vhost.berth-prev" "$vhost"; else rm -f -- "$vhost"; fi
  printf '%s\n' "$out" >&2
  exit 91
fi
old=
if [ -n "$pidfile" ]; then
  old=$(pgrep -P "$(cat -- "$pidfile")" -f 'worker process') || old=
fi
"${reload_cmd[@]}" || exit 92
rm -f -- "$vhost.berth-prev"
for pid in $old; do
  for _ in $(seq 500); do
    title=$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline") || break
    case $title in ''|*'shutting down'*) break;; esac
    sleep 0.02
  done
done
exit 0
"#,
};

/// `compose up` for a slot (`$1` project, `$2` compose file, `$3` the
/// slot network's subnet, `$4` the length of the docker command, then the
/// docker command and the compose command, from the inventory). A slot
/// network with another subnet, made by a berth before slot networks had
/// fixed addresses, is taken down first with the slot's containers:
/// compose refuses to change it in place. The slot is the idle one, whose
/// containers `up` replaces anyway.
pub const COMPOSE_UP: Script = Script {
    name: "COMPOSE_UP",
    text: r#"set -e
project=$1 file=$2 want=$3 n=$4
shift 4
docker=("${@:1:n}")
compose=("${@:n+1}")
subnet=$("${docker[@]}" network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$project" 2>/dev/null) || subnet=
if [ -n "$subnet" ] && [ "$subnet" != "$want " ]; then
  echo "slot network $project has subnet $subnet, not $want: taking the slot down to recreate it" >&2
  "${compose[@]}" -p "$project" -f "$file" down --remove-orphans
fi
exec "${compose[@]}" -p "$project" -f "$file" up -d --remove-orphans"#,
};

/// Keeps the logs of a slot's containers before `compose up` replaces them
/// (`$1` the directory, `$2` the most bytes of a file, `$3` how many files,
/// `$4` app, `$5` env, `$6` slot, then the docker command). Each
/// container's `docker logs -t`, prefixed with its role, from after the
/// newest line an earlier save of the same release and slot kept, is
/// sorted by time (Docker's stamps have a fixed width) and appended to `<release>-<slot>.log`; the file
/// keeps its newest `$2` bytes (whole lines), the directory its newest
/// `$3` files. Files and directory are the deploy user's alone (umask
/// 077). Says what it did; always exits 0.
pub const SAVE_LOGS: Script = Script {
    name: "SAVE_LOGS",
    text: r#"set -u
export LC_ALL=C
# The kept logs are the app's and its visitors': the deploy user's only.
umask 077
dir=$1 max=$2 keep=$3 app=$4 env=$5 slot=$6
shift 6
docker=("$@")
ids=$("${docker[@]}" ps -aq --filter "label=berth.app=$app" --filter "label=berth.env=$env" --filter "label=berth.slot=$slot") || { echo "logs of slot $slot not kept: could not list its containers"; exit 0; }
[ -n "$ids" ] || { echo "slot $slot has no containers: no logs to keep"; exit 0; }
mkdir -p -- "$dir" || { echo "logs of slot $slot not kept: cannot create $dir"; exit 0; }
new=$(mktemp -d "$dir/.new.XXXXXX") || { echo "logs of slot $slot not kept: no room in $dir"; exit 0; }
trap 'rm -rf -- "$new"' EXIT
for id in $ids; do
  labels=$("${docker[@]}" inspect -f '{{index .Config.Labels "berth.release"}} {{index .Config.Labels "berth.role"}}' "$id" 2>/dev/null) || { echo "container $id is gone: its logs are not kept"; continue; }
  release=${labels% *} role=${labels#* }
  case $release in ''|[!A-Za-z0-9]*|*..*|*[!A-Za-z0-9._+-]*) echo "container $id has no usable berth.release label: its logs are not kept"; continue;; esac
  case $role in php|web) ;; *) continue;; esac
  file=$dir/$release-$slot.log
  last=$(tail -n 1 -- "$file" 2>/dev/null | cut -d ' ' -f 2)
  since=()
  [ -n "$last" ] && since=(--since "$last")
  "${docker[@]}" logs -t "${since[@]}" "$id" 2>&1 | awk -v role="$role" -v last="$last" '$1 > last { print role " " $0 }' >> "$new/$release" \
    || echo "the logs of container $id were not all read"
done
for chunk in "$new"/*; do
  [ -e "$chunk" ] || continue
  release=${chunk##*/}
  file=$dir/$release-$slot.log
  lines=$(wc -l < "$chunk")
  sort -s -k 2,2 -- "$chunk" >> "$file" || { echo "logs of $release in slot $slot not kept: writing $file failed"; continue; }
  if [ "$(stat -c %s -- "$file")" -gt "$max" ]; then
    tail -c "$max" -- "$file" | tail -n +2 > "$new/trimmed" && mv -f -- "$new/trimmed" "$file"
  fi
  echo "kept $lines lines of $release in slot $slot in $file"
done
ls -t -- "$dir"/*.log 2>/dev/null | tail -n +$((keep + 1)) | while IFS= read -r old; do rm -f -- "$old"; done
exit 0"#,
};
