//! Carries out a deploy or rollback plan on a connected host, step by step.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::remote::Remote;
use crate::plan::deploy::{Plan, Step};
use crate::report::Reporter;

/// A step that failed, with its number in the plan.
#[derive(Debug, thiserror::Error)]
#[error("step {number} ({step}) failed")]
pub struct StepFailed {
    pub number: usize,
    pub step: String,
    /// Whether the front was already switched to the new release before
    /// the failure; if not, the previous release still serves.
    pub front_switched: bool,
    /// Whether the plan's restore of the warm backup ran, and how it went.
    pub backup: BackupAfterFailure,
    #[source]
    pub source: anyhow::Error,
}

/// The warm backup after a failed step.
#[derive(Debug)]
pub enum BackupAfterFailure {
    /// Nothing to restore: no backup, or the front was already switched.
    Untouched,
    Restored,
    /// Restoring it failed: the backup slot may not serve.
    NotRestored(anyhow::Error),
}

/// Runs every step in order; stops at the first failure.
pub async fn apply(
    remote: &Remote,
    plan: &Plan,
    code: Option<&Path>,
    reporter: &Reporter,
) -> Result<(), StepFailed> {
    let mut front_switched = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let started = Instant::now();
        reporter.info(&format!("{}. {step}", i + 1));
        if let Err(source) = run_step(remote, step, code, reporter).await {
            let backup = if front_switched || plan.on_failure.is_empty() {
                BackupAfterFailure::Untouched
            } else {
                reporter.info(&format!("step {} failed: restoring the warm backup", i + 1));
                restore(remote, &plan.on_failure, reporter).await
            };
            return Err(StepFailed {
                number: i + 1,
                step: step.to_string(),
                front_switched,
                backup,
                source,
            });
        }
        front_switched |= matches!(step, Step::SwitchFront { .. });
        reporter.detail(&format!("   done in {} ms", started.elapsed().as_millis()));
    }
    Ok(())
}

/// Runs the plan's restore steps, stopping at the first failure.
async fn restore(remote: &Remote, steps: &[Step], reporter: &Reporter) -> BackupAfterFailure {
    for step in steps {
        reporter.info(&format!("   - {step}"));
        if let Err(e) = run_step(remote, step, None, reporter).await {
            return BackupAfterFailure::NotRestored(e.context(format!("{step}")));
        }
    }
    BackupAfterFailure::Restored
}

async fn run_step(
    remote: &Remote,
    step: &Step,
    code: Option<&Path>,
    reporter: &Reporter,
) -> Result<()> {
    match step {
        Step::SyncCode {
            staging,
            code_dir,
            link_dest,
            lock,
        } => {
            let Some(code) = code else {
                bail!("no code checkout was given to sync");
            };
            remote
                .run(
                    "create the staging directory",
                    &["mkdir", "-p", staging.as_str()],
                )
                .await?;
            remote
                .rsync(code, staging, link_dest.as_ref(), lock)
                .await?;
            remote
                .run(
                    "move the release into place",
                    &[
                        "sh",
                        "-c",
                        "mkdir -p \"$(dirname \"$2\")\" && rm -rf -- \"$2\" && mv -- \"$1\" \"$2\"",
                        "sh",
                        staging.as_str(),
                        code_dir.as_str(),
                    ],
                )
                .await?;
        }
        Step::UploadConf { dir, files } => {
            remote
                .run("create the conf directory", &["mkdir", "-p", dir.as_str()])
                .await?;
            // One channel per file over the same SSH session, all at once.
            let paths: Vec<_> = files.iter().map(|file| dir.join(&file.name)).collect();
            let writes = paths
                .iter()
                .zip(files)
                .map(|(path, file)| remote.write_file(path, file.contents.as_bytes()));
            futures_util::future::try_join_all(writes).await?;
        }
        Step::UploadSecrets { path, contents, .. } => {
            remote
                .write_private_file(path, contents.expose().as_bytes())
                .await?;
        }
        Step::ApplyEgress { command, .. } => {
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            remote.run("apply the egress policy", &argv).await?;
        }
        Step::SaveLogs {
            app,
            env,
            slot,
            dir,
            max_bytes,
            keep,
            ..
        } => {
            let (max_bytes, keep) = (max_bytes.to_string(), keep.to_string());
            let output = remote
                .output(
                    &[
                        "bash",
                        "-c",
                        SAVE_LOGS,
                        "bash",
                        dir.as_str(),
                        &max_bytes,
                        &keep,
                        app.as_str(),
                        env.as_str(),
                        slot.name(),
                    ],
                    None,
                )
                .await?;
            // The script says what it kept or why not; it never stops a
            // deploy (an old container already gone is not a failure).
            let said = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            for line in said.lines() {
                reporter.detail(&format!("   {line}"));
            }
        }
        Step::EnsureStorage { command, .. } => {
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            remote.run("ensure the storage directories", &argv).await?;
        }
        Step::ComposeUp {
            project,
            file,
            lock,
            subnet,
        } => {
            remote
                .run(
                    "compose up",
                    &[
                        "flock",
                        "-w",
                        "600",
                        lock.as_str(),
                        "bash",
                        "-c",
                        COMPOSE_UP,
                        "bash",
                        project,
                        file.as_str(),
                        subnet,
                    ],
                )
                .await?;
        }
        Step::WaitHealthy {
            project,
            file,
            address,
            port,
            check,
            domain,
            timeout_secs,
        } => {
            let path = &check.path;
            let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
            loop {
                let last = match remote
                    .http_get(address, &port.to_string(), path.as_str(), domain.as_str())
                    .await
                {
                    Ok((status, body)) if check.passes(status, &body) => break,
                    Ok((status, _)) if status != check.status => format!("answered {status}"),
                    Ok((status, _)) => format!(
                        "answered {status} without the text {}",
                        crate::config::values::quoted(
                            check.contains.as_ref().map_or("", |t| t.as_str())
                        )
                    ),
                    Err(e) => format!("{e:#}"),
                };
                if Instant::now() >= deadline {
                    let logs = remote
                        .output(
                            &[
                                "docker-compose",
                                "-p",
                                project,
                                "-f",
                                file.as_str(),
                                "logs",
                                "--no-color",
                                "--tail",
                                "20",
                            ],
                            None,
                        )
                        .await
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default();
                    bail!(
                        "{path} on {address}:{port} was not healthy after {timeout_secs}s (last: {last})\n--- last log lines of {project}\n{}",
                        logs.trim_end()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Step::SwitchFront {
            lock,
            vhost,
            staged,
            test,
            reload,
            pid_file,
        } => {
            let mut argv: Vec<&str> = vec![
                "bash",
                "-c",
                SWITCH_FRONT,
                "bash",
                lock.as_str(),
                vhost.as_str(),
                staged.as_str(),
                pid_file
                    .as_ref()
                    .map_or("", crate::config::values::AbsPath::as_str),
            ];
            let count = test.len().to_string();
            argv.push(&count);
            argv.extend(test.iter().map(|a| a.as_str()));
            argv.extend(reload.iter().map(|a| a.as_str()));
            let output = remote.output(&argv, None).await?;
            match output.status.code() {
                Some(0) => {}
                Some(91) => bail!(
                    "the front nginx refused the new vhost; the previous one was restored:\n{}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                _ => bail!(
                    "switching the front nginx failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            }
        }
        Step::WaitFront {
            address,
            port,
            domain,
            release,
            in_a_row,
        } => {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut seen = 0;
            loop {
                let body = remote
                    .http_get(
                        address,
                        &port.to_string(),
                        "/.berth/release",
                        domain.as_str(),
                    )
                    .await;
                let last = match body {
                    Ok((200, body)) if body.trim() == release.as_str() => {
                        seen += 1;
                        if seen >= *in_a_row {
                            break;
                        }
                        continue;
                    }
                    Ok((status, body)) => format!("answered {status}: {}", body.trim()),
                    Err(e) => format!("{e:#}"),
                };
                seen = 0;
                if Instant::now() >= deadline {
                    bail!("the front on {address}:{port} did not serve {release} within 15s (last: {last})");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Step::RecordState { path, state } => {
            let json = serde_json::to_vec_pretty(state).context("serialize state.json")?;
            remote.write_file(path, &json).await?;
        }
        Step::Prune { dirs } => {
            let mut argv = vec!["rm", "-rf", "--"];
            argv.extend(dirs.iter().map(|d| d.as_str()));
            remote.run("remove old releases", &argv).await?;
        }
    }
    Ok(())
}

/// Installs a vhost under the host's front lock: keep the old file, move the
/// new one in, `nginx -t`; on failure put the old one back; then reload.
/// With the master's pid file, it then waits (at most 10 s) until each
/// worker of before the reload is gone or titled "shutting down": nginx
/// sets that title as it handles the master's QUIT and closes its
/// listening sockets, so from then on only new workers accept.
/// Arguments: lock, vhost, staged file, pid file (or ""), the test
/// command's length, the test command, the reload command.
const SWITCH_FRONT: &str = r#"set -u
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
"#;

/// `docker-compose up` for a slot (`$1` project, `$2` compose file, `$3`
/// the slot network's subnet). A slot network with another subnet, made by
/// a berth before slot networks had fixed addresses, is taken down first
/// with the slot's containers: compose refuses to change it in place. The
/// slot is the idle one, whose containers `up` replaces anyway.
const COMPOSE_UP: &str = r#"set -e
subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$1" 2>/dev/null) || subnet=
if [ -n "$subnet" ] && [ "$subnet" != "$3 " ]; then
  echo "slot network $1 has subnet $subnet, not $3: taking the slot down to recreate it" >&2
  docker-compose -p "$1" -f "$2" down --remove-orphans
fi
exec docker-compose -p "$1" -f "$2" up -d --remove-orphans"#;

/// Keeps the logs of a slot's containers before `compose up` replaces them
/// (`$1` the directory, `$2` the most bytes of a file, `$3` how many files,
/// `$4` app, `$5` env, `$6` slot). Each container's `docker logs -t`,
/// prefixed with its role, from after the newest line an earlier save of
/// the same release and slot kept, is sorted by time (Docker's stamps
/// have a fixed width) and appended to `<release>-<slot>.log`; the file
/// keeps its newest `$2` bytes (whole lines), the directory its newest
/// `$3` files. Files and directory are the deploy user's alone (umask
/// 077). Says what it did; always exits 0.
const SAVE_LOGS: &str = r#"set -u
export LC_ALL=C
# The kept logs are the app's and its visitors': the deploy user's only.
umask 077
dir=$1 max=$2 keep=$3 slot=$6
ids=$(docker ps -aq --filter "label=berth.app=$4" --filter "label=berth.env=$5" --filter "label=berth.slot=$slot") || { echo "logs of slot $slot not kept: could not list its containers"; exit 0; }
[ -n "$ids" ] || { echo "slot $slot has no containers: no logs to keep"; exit 0; }
mkdir -p -- "$dir" || { echo "logs of slot $slot not kept: cannot create $dir"; exit 0; }
new=$(mktemp -d "$dir/.new.XXXXXX") || { echo "logs of slot $slot not kept: no room in $dir"; exit 0; }
trap 'rm -rf -- "$new"' EXIT
for id in $ids; do
  labels=$(docker inspect -f '{{index .Config.Labels "berth.release"}} {{index .Config.Labels "berth.role"}}' "$id" 2>/dev/null) || { echo "container $id is gone: its logs are not kept"; continue; }
  release=${labels% *} role=${labels#* }
  case $release in ''|[!A-Za-z0-9]*|*..*|*[!A-Za-z0-9._+-]*) echo "container $id has no usable berth.release label: its logs are not kept"; continue;; esac
  case $role in php|web) ;; *) continue;; esac
  file=$dir/$release-$slot.log
  last=$(tail -n 1 -- "$file" 2>/dev/null | cut -d ' ' -f 2)
  since=()
  [ -n "$last" ] && since=(--since "$last")
  docker logs -t "${since[@]}" "$id" 2>&1 | awk -v role="$role" -v last="$last" '$1 > last { print role " " $0 }' >> "$new/$release" \
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
exit 0"#;
