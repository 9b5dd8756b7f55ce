//! The deploy and rollback plans: pure functions of the request, the
//! rendered configuration and the observed host state. They return a list
//! of steps; `exec::apply` carries them out. Their `Display` is the
//! `--dry-run` output.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{self, timeouts, RemoteCommand};
use super::egress;
use super::release::{
    front_lock_file, project_name, saved_logs_file, vhost_file, HostLayout, ReleaseId, Slot,
    SlotNetwork,
};
use super::render::{RenderError, RenderedFile, Target, Templates};
use crate::config::app::{AppEnvironment, AppFile};
use crate::config::inventory::Host;
use crate::config::settings::{AppSettings, HealthCheck, StoragePath};
use crate::config::values::{AbsPath, DomainName, GitTag, Port};
use crate::secret::{AppSecret, Secret};

/// `state.json` on a host: what each slot of an app environment serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    pub active: Option<SlotRelease>,
    pub backup: Option<SlotRelease>,
    /// Newest first, at most `HISTORY_LEN` entries.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRelease {
    pub slot: Slot,
    pub release: ReleaseId,
    pub tag: GitTag,
    pub deployed_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    pub action: String,
    pub release: ReleaseId,
    pub slot: Slot,
    pub at: String,
}

const HISTORY_LEN: usize = 20;

/// The most of one replaced slot's logs a host keeps: the newest bytes of
/// `<release>-<slot>.log` (the containers' own logs hold up to 30 MB each).
pub const SAVED_LOGS_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// How many kept logs of replaced slots a host keeps per app environment,
/// the newest.
pub const SAVED_LOGS_KEEP: usize = 10;

/// What berth read from the host before planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub state: HostState,
    /// Releases whose code is complete on the host (`releases/<id>/code`).
    pub complete_releases: Vec<ReleaseId>,
    /// Whether the active slot answered its health path with 200.
    pub active_healthy: bool,
    /// The `berth.yml` of the active and backup releases, read from their
    /// code on the host (a release without one is absent here).
    pub settings: Vec<(ReleaseId, AppSettings)>,
    /// The length of the app environment's storage image, if it has one.
    pub storage_image_len: Option<u64>,
}

impl Observed {
    /// The settings of a release on the host: its own `berth.yml`, or the
    /// default when it has none.
    pub fn settings_of(&self, release: &ReleaseId) -> AppSettings {
        self.settings
            .iter()
            .find(|(id, _)| id == release)
            .map(|(_, settings)| settings.clone())
            .unwrap_or_default()
    }
}

/// One thing to do on a host. A step that runs commands holds each as
/// it will run (`RemoteCommand`); the others hold what they write or
/// probe, with their time limits.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Copy the checkout into a staging directory, hard-linking unchanged
    /// files from `link_dest`, then rename it into place.
    SyncCode {
        mkdir: RemoteCommand,
        staging: AbsPath,
        code_dir: AbsPath,
        link_dest: Option<AbsPath>,
        /// Held by the remote rsync while it writes, waited for at most
        /// `lock_wait`.
        lock: AbsPath,
        lock_wait: Duration,
        move_into_place: RemoteCommand,
    },
    UploadConf {
        mkdir: RemoteCommand,
        dir: AbsPath,
        files: Vec<RenderedFile>,
        timeout: Duration,
    },
    /// Write the app's secrets where compose reads them for the slot's php
    /// container (mode 0600). Only the names are ever shown.
    UploadSecrets {
        path: AbsPath,
        names: Vec<String>,
        contents: Secret,
        timeout: Duration,
    },
    /// Set the app environment's egress policy in the host's firewall
    /// (`berth egress apply`, run as root), before its containers start.
    ApplyEgress {
        command: RemoteCommand,
        allowed: usize,
    },
    /// Before `compose up` replaces a slot's containers: append their logs
    /// (both containers', time-ordered, from after what an earlier save
    /// of theirs kept) to `<dir>/<release>-<slot>.log`, the release read
    /// from the containers' `berth.release` label; keep the newest
    /// `max_bytes` of it and the newest `keep` files. A slot without
    /// containers, or a save that fails, leaves the deploy going.
    SaveLogs {
        command: RemoteCommand,
        slot: Slot,
        /// What the state says runs in the slot, for the plan's text.
        replaced: Option<ReleaseId>,
        dir: AbsPath,
        max_bytes: u64,
        keep: usize,
    },
    /// Make the app environment's storage directories (owned by the
    /// containers' user) with `berth storage ensure`, run as root, before
    /// a slot mounts them.
    EnsureStorage {
        command: RemoteCommand,
        paths: Vec<StoragePath>,
    },
    /// Start a slot's containers. A slot network of the same name with
    /// another subnet (made by a berth before fixed addresses) is taken
    /// down with its containers first: compose refuses to change a
    /// network's subnet in place.
    ComposeUp {
        project: String,
        command: RemoteCommand,
    },
    WaitHealthy {
        project: String,
        address: String,
        port: Port,
        /// The path, and the status and text a healthy answer has.
        check: HealthCheck,
        domain: DomainName,
        timeout: Duration,
        interval: Duration,
        /// Shows the slot's last log lines when it is not healthy in time.
        logs: RemoteCommand,
    },
    /// Under the host's front lock: install the vhost, `nginx -t`
    /// (restoring the previous vhost if it fails), reload.
    SwitchFront {
        vhost: AbsPath,
        command: RemoteCommand,
    },
    /// Wait until the front's reloaded workers serve the new vhost: a
    /// reload returns before they do. `in_a_row` fresh connections must
    /// see it: one after a switch that waited for the old workers, more
    /// when it could not (no pid file), since any of them may still
    /// accept.
    WaitFront {
        address: String,
        port: u16,
        domain: DomainName,
        release: ReleaseId,
        in_a_row: u32,
        timeout: Duration,
        interval: Duration,
    },
    RecordState {
        path: AbsPath,
        state: HostState,
        timeout: Duration,
    },
    Prune {
        dirs: Vec<AbsPath>,
        command: RemoteCommand,
    },
}

impl Step {
    /// The `--dry-run` lines under the step's title: each command it runs,
    /// as it will run.
    pub fn command_lines(&self) -> Vec<String> {
        match self {
            Step::SyncCode {
                mkdir,
                move_into_place,
                ..
            } => vec![mkdir.to_string(), move_into_place.to_string()],
            Step::UploadConf { mkdir, .. } => vec![mkdir.to_string()],
            Step::ApplyEgress { command, .. }
            | Step::SaveLogs { command, .. }
            | Step::EnsureStorage { command, .. }
            | Step::ComposeUp { command, .. }
            | Step::SwitchFront { command, .. }
            | Step::Prune { command, .. } => vec![command.to_string()],
            Step::WaitHealthy { logs, .. } => vec![format!("if not healthy: {logs}")],
            Step::UploadSecrets { .. } | Step::WaitFront { .. } | Step::RecordState { .. } => {
                Vec::new()
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::SyncCode {
                code_dir,
                link_dest,
                ..
            } => {
                write!(f, "sync code to {code_dir}")?;
                if let Some(prev) = link_dest {
                    write!(f, " (unchanged files hard-linked from {prev})")?;
                }
                Ok(())
            }
            Step::UploadConf { dir, files, .. } => {
                let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                write!(f, "upload {} to {dir}", names.join(", "))
            }
            Step::UploadSecrets { path, names, .. } => {
                if names.is_empty() {
                    write!(f, "write no secrets to {path} (mode 0600)")
                } else {
                    write!(
                        f,
                        "write the secrets {} to {path} (mode 0600)",
                        names.join(", ")
                    )
                }
            }
            Step::ApplyEgress { allowed, .. } => write!(
                f,
                "apply the egress policy ({allowed} allowed destination{})",
                if *allowed == 1 { "" } else { "s" }
            ),
            Step::SaveLogs {
                slot,
                replaced,
                dir,
                max_bytes,
                keep,
                ..
            } => {
                match replaced {
                    Some(release) => write!(
                        f,
                        "keep the logs of {release} in slot {slot} in {}",
                        saved_logs_file(dir, release, *slot)
                    )?,
                    None => write!(f, "keep the logs of any containers in slot {slot} in {dir}")?,
                }
                write!(
                    f,
                    " (the newest {} MiB of each, the newest {keep} files)",
                    max_bytes / (1024 * 1024)
                )
            }
            Step::EnsureStorage { paths, .. } => {
                let names: Vec<&str> = paths.iter().map(StoragePath::as_str).collect();
                write!(f, "ensure the storage directories {}", names.join(", "))
            }
            Step::ComposeUp { project, .. } => write!(f, "start {project} (compose up)"),
            Step::WaitHealthy {
                address,
                port,
                check,
                timeout,
                ..
            } => write!(
                f,
                "wait until http://{address}:{port}{} {} (at most {}s)",
                check.path,
                check.expectation(),
                timeout.as_secs()
            ),
            Step::SwitchFront { vhost, .. } => {
                write!(f, "switch the front: write {vhost}, nginx -t, reload")
            }
            Step::WaitFront {
                address,
                port,
                release,
                ..
            } => write!(
                f,
                "wait until the front on {address}:{port} serves {release}"
            ),
            Step::RecordState { path, state, .. } => {
                let active = state.active.as_ref().map_or("none".to_string(), |a| {
                    format!("{} in {}", a.release, a.slot)
                });
                write!(f, "record state in {path}: active {active}")
            }
            Step::Prune { dirs, .. } => {
                let names: Vec<String> = dirs.iter().map(ToString::to_string).collect();
                write!(f, "remove old releases: {}", names.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What brings the warm backup back when a step fails before the front
    /// switch: the candidate starts in the backup's slot, replacing its
    /// containers, so they are started again from the backup's own files.
    pub on_failure: Vec<Step>,
    /// Why there is nothing to do, when `steps` is empty.
    pub note: Option<String>,
}

impl Plan {
    fn new(steps: Vec<Step>) -> Plan {
        Plan {
            steps,
            on_failure: Vec::new(),
            note: None,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(note) = &self.note {
            writeln!(f, "{note}")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{}. {step}", i + 1)?;
            for line in step.command_lines() {
                writeln!(f, "   {line}")?;
            }
        }
        if !self.on_failure.is_empty() {
            writeln!(
                f,
                "if a step before the switch fails, restore the warm backup:"
            )?;
            for step in &self.on_failure {
                writeln!(f, "   - {step}")?;
                for line in step.command_lines() {
                    writeln!(f, "     {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// One app environment on its host: everything a plan needs besides state.
#[derive(Clone, Copy)]
pub struct Release<'a> {
    pub app: &'a AppFile,
    pub env: &'a AppEnvironment,
    pub host: &'a Host,
    pub templates: &'a Templates,
    /// The `berth.yml` of the release the plan starts or switches to.
    pub settings: &'a AppSettings,
    /// How many releases to keep on the host besides the active and backup.
    pub keep: usize,
    pub health_timeout_secs: u64,
    /// The time stamp written into `state.json` (read by the caller).
    pub now: &'a str,
    /// The app's secrets, for the php container of a slot that starts.
    pub secrets: &'a [AppSecret],
}

impl Release<'_> {
    fn layout(&self) -> HostLayout {
        HostLayout::new(&self.host.base_dir, &self.app.id, self.env)
    }

    /// The app environment's egress policy, applied by the host's root
    /// berth: both slots' networks, each allowed address and port, and
    /// the host's mail relay at the app's rate when the app has mail.
    fn egress(&self) -> Step {
        let policy = egress::Policy {
            app: self.app.id.clone(),
            env: self.env.name.clone(),
            slot_ports: self.env.ports.to_vec(),
            allow: self
                .app
                .egress
                .iter()
                .flat_map(|e| {
                    e.ports.iter().map(|port| egress::Destination {
                        address: e.address,
                        port: port.get(),
                    })
                })
                .collect(),
            per_minute: self
                .app
                .mail
                .as_ref()
                .zip(self.host.mail.as_ref())
                .map(|(mail, host)| {
                    let relay = egress::Destination {
                        address: host.relay.ip(),
                        port: host.relay.port(),
                    };
                    (relay, mail.per_minute)
                })
                .into_iter()
                .collect(),
        };
        let mut args = policy.apply_args();
        // Recorded on the host for `berth host boot`.
        args.extend(["--base-dir".to_string(), self.host.base_dir.to_string()]);
        Step::ApplyEgress {
            command: command::as_root(&self.host.root_berth, args, timeouts::EGRESS),
            allowed: policy.destinations(),
        }
    }

    fn render(
        &self,
        release: &ReleaseId,
        slot: Slot,
        backup: Option<Slot>,
    ) -> Result<Vec<RenderedFile>, RenderError> {
        self.templates.render(&Target {
            app: self.app,
            env: self.env,
            host: self.host,
            release,
            slot,
            backup,
            settings: self.settings,
        })
    }

    /// Makes the storage directories `berth.yml` declares, as root on the
    /// host; `None` when it declares none.
    fn storage(&self) -> Option<Step> {
        if self.settings.storage.is_empty() {
            return None;
        }
        let request = super::storage::Request {
            base_dir: self.host.base_dir.clone(),
            app: self.app.id.clone(),
            env: self.env.name.clone(),
            size: self.app.limits.storage?,
            paths: self.settings.storage.clone(),
            // Set by the root side from sudo; not an argument.
            owner: None,
        };
        Some(Step::EnsureStorage {
            command: command::as_root(&self.host.root_berth, request.args(), timeouts::STORAGE),
            paths: self.settings.storage.clone(),
        })
    }

    /// Probes a slot's health path on the host; the compose file is named so
    /// a failure can show the slot's logs.
    fn health(&self, slot: Slot, compose_file: AbsPath) -> Step {
        let project = project_name(&self.app.id, self.env, slot);
        Step::WaitHealthy {
            logs: command::compose_logs(&self.host.docker, &project, &compose_file),
            project,
            address: self.host.publish_address.to_string(),
            port: slot.port(self.env),
            check: self.settings.health_or(&self.app.health_path),
            domain: self.env.domains[0].clone(),
            timeout: Duration::from_secs(self.health_timeout_secs),
            interval: timeouts::HEALTH_INTERVAL,
        }
    }

    /// Starts `slot`'s containers from `compose_file`.
    fn compose_up(&self, slot: Slot, compose_file: &AbsPath) -> Step {
        let project = project_name(&self.app.id, self.env, slot);
        Step::ComposeUp {
            command: command::compose_up(
                &self.host.docker,
                &project,
                compose_file,
                &self.layout().compose_lock_file(slot),
                &SlotNetwork::for_port(slot.port(self.env).get()).cidr(),
            ),
            project,
        }
    }

    /// Installs the vhost of `release` and waits until the front serves it.
    fn switch_front(&self, conf_dir: &AbsPath, release: &ReleaseId) -> [Step; 2] {
        let front = &self.host.front;
        let listen = front.listen.ip();
        let address = if listen.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            listen.to_string()
        };
        let vhost = vhost_file(&front.include_dir, &self.app.id, self.env);
        [
            Step::SwitchFront {
                command: command::switch_front(
                    &front_lock_file(&self.host.base_dir),
                    &vhost,
                    &conf_dir.join("front.conf"),
                    front.pid_file.as_ref(),
                    &front.test_command,
                    &front.reload_command,
                ),
                vhost,
            },
            Step::WaitFront {
                address,
                port: front.listen.port(),
                domain: self.env.domains[0].clone(),
                release: release.clone(),
                in_a_row: if front.pid_file.is_some() { 1 } else { 10 },
                timeout: timeouts::FRONT_DEADLINE,
                interval: timeouts::FRONT_INTERVAL,
            },
        ]
    }

    fn record(
        &self,
        state: &HostState,
        active: SlotRelease,
        backup: Option<SlotRelease>,
        action: &str,
    ) -> Step {
        let mut history = vec![HistoryEntry {
            action: action.to_string(),
            release: active.release.clone(),
            slot: active.slot,
            at: self.now.to_string(),
        }];
        history.extend(state.history.iter().take(HISTORY_LEN - 1).cloned());
        Step::RecordState {
            path: self.layout().state_file(),
            state: HostState {
                active: Some(active),
                backup,
                history,
            },
            timeout: timeouts::WRITE_FILES,
        }
    }
}

/// The release id of `tag`: with the commit the checkout verified when it is
/// known; else (a rollback to a tag) the release of that tag already on the
/// host, newest first as the history lists them; else the tag alone.
pub fn release_id(tag: &GitTag, commit: Option<&str>, observed: &Observed) -> ReleaseId {
    if commit.is_some() {
        return ReleaseId::new(tag, commit);
    }
    let plain = ReleaseId::new(tag, None);
    let of_tag = |id: &ReleaseId| {
        id == &plain
            || id
                .as_str()
                .strip_prefix(plain.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hex| hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let state = &observed.state;
    let known = state.active.iter().chain(&state.backup).map(|s| &s.release);
    let history = state.history.iter().map(|h| &h.release);
    known
        .chain(history)
        .chain(&observed.complete_releases)
        .find(|id| of_tag(id) && observed.complete_releases.contains(id))
        .cloned()
        .unwrap_or(plain)
}

/// Plans the release of `tag` (from a checkout) into the idle slot.
pub fn deploy(
    r: &Release,
    tag: &GitTag,
    release: &ReleaseId,
    observed: &Observed,
) -> Result<Plan, RenderError> {
    let mut plan = start_in_idle_slot(r, tag, release, observed, "deploy")?;
    if plan.note.is_none() {
        plan.note = storage_note(r, observed);
    }
    Ok(plan)
}

/// Says when the storage image is not the size `limits.storage` asks for:
/// `storage ensure` never resizes it (docs/host-runtime.md).
fn storage_note(r: &Release, observed: &Observed) -> Option<String> {
    let quota = r.app.limits.storage?;
    let len = observed.storage_image_len?;
    if r.settings.storage.is_empty() || len == quota.bytes() {
        return None;
    }
    Some(format!(
        "note: the storage image holds {len} bytes, not limits.storage {} ({} bytes); resize it by hand (docs/host-runtime.md, \"Storage: resizing\")",
        quota.php(),
        quota.bytes()
    ))
}

/// Plans a restart without downtime: the active release starts afresh in
/// the idle slot, is health-checked and takes over; the containers it
/// replaces stay warm as the backup. `None` when nothing is active.
pub fn restart(r: &Release, observed: &Observed) -> Option<Result<Plan, RenderError>> {
    let active = observed.state.active.as_ref()?;
    let fresh = Observed {
        active_healthy: false,
        ..observed.clone()
    };
    Some(start_in_idle_slot(
        r,
        &active.tag,
        &active.release,
        &fresh,
        "restart",
    ))
}

fn start_in_idle_slot(
    r: &Release,
    tag: &GitTag,
    release: &ReleaseId,
    observed: &Observed,
    action: &str,
) -> Result<Plan, RenderError> {
    let layout = r.layout();
    let release = release.clone();
    let state = &observed.state;
    if let Some(active) = &state.active {
        if active.release == release && observed.active_healthy {
            return Ok(Plan {
                note: Some(format!(
                    "{release} is already live in slot {}; nothing to do",
                    active.slot
                )),
                ..Plan::new(Vec::new())
            });
        }
    }
    let slot = state.active.as_ref().map_or(Slot::Blue, |a| a.slot.other());
    let backup = state.active.as_ref().map(|a| a.slot);
    let conf_dir = layout.conf_dir(&release, slot);
    let mut steps = Vec::new();
    if !observed.complete_releases.contains(&release) {
        let (staging, code_dir) = (layout.staging_dir(&release), layout.code_dir(&release));
        steps.push(Step::SyncCode {
            mkdir: command::mkdir(&staging),
            move_into_place: command::move_into_place(&staging, &code_dir),
            staging,
            code_dir,
            link_dest: state.active.as_ref().map(|a| layout.code_dir(&a.release)),
            lock: layout.sync_lock_file(),
            lock_wait: timeouts::SYNC_LOCK_WAIT,
        });
    }
    // The containers compose up replaces: the backup's, when it is in the
    // idle slot (else whatever a failed release left there, if anything).
    let replaced = state
        .backup
        .as_ref()
        .filter(|b| b.slot == slot)
        .map(|b| b.release.clone());
    steps.extend(start_slot(r, &release, slot, backup, &conf_dir, replaced)?);
    steps.extend(r.switch_front(&conf_dir, &release));
    let active = SlotRelease {
        slot,
        release: release.clone(),
        tag: tag.clone(),
        deployed_at: r.now.to_string(),
    };
    steps.push(r.record(state, active, state.active.clone(), action));
    let dirs = prune(
        r,
        observed,
        &[Some(&release), state.active.as_ref().map(|a| &a.release)],
    );
    if !dirs.is_empty() {
        steps.push(Step::Prune {
            command: command::remove(&dirs),
            dirs,
        });
    }
    let on_failure = match &state.backup {
        Some(backup) if backup.slot == slot => restore_slot(r, backup),
        _ => Vec::new(),
    };
    Ok(Plan {
        on_failure,
        ..Plan::new(steps)
    })
}

/// Starts `backup`'s containers again from its own compose file, and waits
/// until they are healthy: the warm backup is back as it was.
fn restore_slot(r: &Release, backup: &SlotRelease) -> Vec<Step> {
    let file = r
        .layout()
        .conf_dir(&backup.release, backup.slot)
        .join("compose.yml");
    vec![
        r.compose_up(backup.slot, &file),
        r.health(backup.slot, file),
    ]
}

fn start_slot(
    r: &Release,
    release: &ReleaseId,
    slot: Slot,
    backup: Option<Slot>,
    conf_dir: &AbsPath,
    replaced: Option<ReleaseId>,
) -> Result<Vec<Step>, RenderError> {
    let files = r.render(release, slot, backup)?;
    let file = conf_dir.join("compose.yml");
    let logs_dir = r.layout().saved_logs_dir();
    let mut steps = vec![
        upload_conf(conf_dir, files),
        Step::UploadSecrets {
            path: r.layout().secrets_file(slot),
            names: r.secrets.iter().map(|s| s.name.clone()).collect(),
            contents: crate::secret::env_file(r.secrets),
            timeout: timeouts::WRITE_FILES,
        },
        r.egress(),
    ];
    steps.extend(r.storage());
    steps.extend([
        Step::SaveLogs {
            command: command::save_logs(
                &r.host.docker,
                &r.app.id,
                &r.env.name,
                slot,
                &logs_dir,
                SAVED_LOGS_MAX_BYTES,
                SAVED_LOGS_KEEP,
            ),
            slot,
            replaced,
            dir: logs_dir,
            max_bytes: SAVED_LOGS_MAX_BYTES,
            keep: SAVED_LOGS_KEEP,
        },
        r.compose_up(slot, &file),
        r.health(slot, file),
    ]);
    Ok(steps)
}

/// Writes the rendered `files` into `dir`.
fn upload_conf(dir: &AbsPath, files: Vec<RenderedFile>) -> Step {
    Step::UploadConf {
        mkdir: command::mkdir(dir),
        dir: dir.clone(),
        files,
        timeout: timeouts::WRITE_FILES,
    }
}

/// Release directories beyond the newest `keep`, never the ones in use.
fn prune(r: &Release, observed: &Observed, in_use: &[Option<&ReleaseId>]) -> Vec<AbsPath> {
    let layout = r.layout();
    let mut candidates: Vec<&ReleaseId> = observed
        .complete_releases
        .iter()
        .filter(|id| !in_use.contains(&Some(id)))
        .collect();
    // Newest first by the history's order; releases never deployed go last.
    let rank = |id: &ReleaseId| {
        observed
            .state
            .history
            .iter()
            .position(|h| &h.release == id)
            .unwrap_or(usize::MAX)
    };
    candidates.sort_by_key(|id| rank(id));
    candidates
        .into_iter()
        .skip(r.keep)
        .map(|id| layout.release_dir(id))
        .collect()
}

/// Why a rollback cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("environment {0} has no warm backup release on its host")]
    NoBackup(String),
    #[error(transparent)]
    Render(#[from] RenderErrorText),
}

/// A render error kept as text, so `RollbackError` stays comparable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderErrorText(pub String);

/// Plans a switch to the warm backup slot: a vhost switch and a reload, no
/// container start. The backup is probed first, so a dead backup is never
/// switched to.
pub fn rollback(r: &Release, observed: &Observed) -> Result<Plan, RollbackError> {
    let state = &observed.state;
    let (Some(active), Some(backup)) = (&state.active, &state.backup) else {
        return Err(RollbackError::NoBackup(r.env.name.to_string()));
    };
    let layout = r.layout();
    let conf_dir = layout.conf_dir(&backup.release, backup.slot);
    let files = r
        .render(&backup.release, backup.slot, Some(active.slot))
        .map_err(|e| RenderErrorText(e.to_string()))?;
    let steps = vec![
        r.health(backup.slot, conf_dir.join("compose.yml")),
        upload_conf(
            &conf_dir,
            files
                .into_iter()
                .filter(|f| f.name == "front.conf")
                .collect(),
        ),
    ];
    let mut steps = steps;
    steps.extend(r.switch_front(&conf_dir, &backup.release));
    steps.push(r.record(state, backup.clone(), Some(active.clone()), "rollback"));
    Ok(Plan::new(steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Inventory;

    use crate::plan::fixtures::{APP, INVENTORY};

    #[test]
    fn an_app_with_mail_may_reach_the_hosts_relay_at_its_rate() {
        let app = AppFile::parse(
            "app.yml",
            &format!("{APP}mail: {{from: noreply@shop.example.com, per_minute: 4}}\n"),
        )
        .unwrap();
        let step = release_of(&app, &AppSettings::default(), &[], |r| r.egress());
        let Step::ApplyEgress { command, allowed } = step else {
            panic!("not the egress step");
        };
        assert_eq!(allowed, 1);
        assert_eq!(command.timeout, Duration::from_secs(60));
        assert_eq!(
            command.argv[13..],
            [
                "--allow-per-minute",
                "10.0.0.25:2525=4",
                "--base-dir",
                "/srv/berth"
            ]
            .map(String::from)
        );
        assert_eq!(command.argv.len(), 17);
    }

    #[test]
    fn the_front_switch_waits_for_the_old_workers_when_it_knows_the_master() {
        let conf_dir: AbsPath = "/srv/berth/example/test/releases/v1/conf-blue"
            .parse()
            .unwrap();
        let release = ReleaseId::try_from("v1".to_string()).unwrap();
        let app = AppFile::parse("app.yml", APP).unwrap();
        let waits = |inventory: &str| {
            release_on(inventory, &app, &AppSettings::default(), &[], |r| {
                match r.switch_front(&conf_dir, &release) {
                    // bash -c SWITCH_FRONT bash LOCK VHOST STAGED PID_FILE …
                    [Step::SwitchFront { command, .. }, Step::WaitFront { in_a_row, .. }] => {
                        (command.argv[7].clone(), in_a_row)
                    }
                    other => panic!("{other:?}"),
                }
            })
        };
        // Without the pid file, ten fresh answers in a row; with it, the
        // switch waits for the old workers and one answer proves it.
        assert_eq!(waits(INVENTORY), (String::new(), 10));
        let with_pid = INVENTORY.replacen(
            "      reload_command:",
            "      pid_file: /run/nginx.pid\n      reload_command:",
            1,
        );
        assert_ne!(with_pid, INVENTORY, "the fixture has a reload_command");
        assert_eq!(waits(&with_pid), ("/run/nginx.pid".to_string(), 1));
    }

    /// `app`'s test environment on the production-like host, with the
    /// code's `settings` and the job's `secrets`.
    fn release_of<T>(
        app: &AppFile,
        settings: &AppSettings,
        secrets: &[AppSecret],
        f: impl FnOnce(&Release) -> T,
    ) -> T {
        release_on(INVENTORY, app, settings, secrets, f)
    }

    /// As `release_of`, on the first host of `inventory`.
    fn release_on<T>(
        inventory: &str,
        app: &AppFile,
        settings: &AppSettings,
        secrets: &[AppSecret],
        f: impl FnOnce(&Release) -> T,
    ) -> T {
        let inventory = Inventory::parse("inventory.yml", inventory).unwrap();
        let templates = Templates::embedded();
        f(&Release {
            app,
            env: &app.environments[0],
            host: &inventory.hosts[0],
            templates: &templates,
            settings,
            keep: 1,
            health_timeout_secs: 30,
            secrets,
            now: "2026-11-22T12:00:00Z",
        })
    }

    /// The skeleton's test environment on the production-like host.
    fn with_release<T>(f: impl FnOnce(&Release) -> T) -> T {
        let app = AppFile::parse("app.yml", APP).unwrap();
        release_of(&app, &AppSettings::default(), &[], f)
    }

    /// The plan that releases v1.0.0 to a host as `observed`.
    fn release_v1(release: &Release, observed: &Observed) -> Plan {
        let tag = "v1.0.0".parse().unwrap();
        deploy(release, &tag, &release_id(&tag, None, observed), observed).unwrap()
    }

    /// The plan of a first release of v1.0.0.
    fn first_release(release: &Release) -> Plan {
        release_v1(release, &Observed::default())
    }

    fn plan_with(observed: &Observed, tag: &str) -> Plan {
        with_release(|release| {
            let tag = tag.parse().unwrap();
            deploy(release, &tag, &release_id(&tag, None, observed), observed).unwrap()
        })
    }

    fn live(slot: Slot, tag: &str) -> SlotRelease {
        SlotRelease {
            slot,
            release: ReleaseId::new(&tag.parse().unwrap(), None),
            tag: tag.parse().unwrap(),
            deployed_at: "2026-11-21T00:00:00Z".into(),
        }
    }

    /// The plan's step titles, without the commands under them.
    fn lines(plan: &Plan) -> Vec<String> {
        plan.to_string()
            .lines()
            .filter(|line| !line.starts_with(' '))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_first_release_goes_to_blue_without_a_backup() {
        let plan = plan_with(&Observed::default(), "v1.0.0");
        // The `--dry-run` text: each step, and under it each command as it
        // will run (embedded scripts by name).
        assert_eq!(
            plan.to_string(),
            r#"1. sync code to /srv/berth/example/test/releases/v1.0.0/code
   mkdir -p /srv/berth/example/test/releases/.staging-v1.0.0
   sh -c <MOVE_INTO_PLACE script> sh /srv/berth/example/test/releases/.staging-v1.0.0 /srv/berth/example/test/releases/v1.0.0/code
2. upload front.conf, nginx.conf, php-fpm.conf, php.ini, msmtprc, compose.yml to /srv/berth/example/test/releases/v1.0.0/conf-blue
   mkdir -p /srv/berth/example/test/releases/v1.0.0/conf-blue
3. write no secrets to /srv/berth/example/test/secrets-blue.env (mode 0600)
4. apply the egress policy (0 allowed destinations)
   /usr/bin/sudo -n /usr/local/bin/berth egress apply --app example --env test --slot-port 18001 --slot-port 18002 --base-dir /srv/berth
5. keep the logs of any containers in slot blue in /srv/berth/example/test/logs (the newest 8 MiB of each, the newest 10 files)
   bash -c <SAVE_LOGS script> bash /srv/berth/example/test/logs 8388608 10 example test blue /usr/bin/docker
6. start berth-example-test-blue (compose up)
   flock -w 600 /srv/berth/example/test/.compose-blue.lock bash -c <COMPOSE_UP script> bash berth-example-test-blue /srv/berth/example/test/releases/v1.0.0/conf-blue/compose.yml 10.226.50.136/29 1 /usr/bin/docker /usr/bin/docker-compose
7. wait until http://127.0.0.1:18001/health.php answers 200 (at most 30s)
   if not healthy: /usr/bin/docker-compose -p berth-example-test-blue -f /srv/berth/example/test/releases/v1.0.0/conf-blue/compose.yml logs --no-color --tail 20
8. switch the front: write /etc/nginx/berth.d/berth-example-test.conf, nginx -t, reload
   bash -c <SWITCH_FRONT script> bash /srv/berth/.front.lock /etc/nginx/berth.d/berth-example-test.conf /srv/berth/example/test/releases/v1.0.0/conf-blue/front.conf '' 2 /usr/sbin/nginx -t /usr/sbin/nginx -s reload
9. wait until the front on 127.0.0.1:80 serves v1.0.0
10. record state in /srv/berth/example/test/state.json: active v1.0.0 in blue
"#
        );
        // What the names stand for, and how long each command may run.
        let commands: Vec<(&str, u64)> = plan
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::SaveLogs { command, .. }
                | Step::ComposeUp { command, .. }
                | Step::SwitchFront { command, .. } => Some(command),
                Step::SyncCode {
                    move_into_place, ..
                } => Some(move_into_place),
                _ => None,
            })
            .map(|c| {
                let script = c.argv.iter().position(|a| a == "-c").unwrap() + 1;
                (c.argv[script].as_str(), c.timeout.as_secs())
            })
            .collect();
        assert_eq!(
            commands,
            [
                (crate::plan::scripts::MOVE_INTO_PLACE.text, 300),
                (crate::plan::scripts::SAVE_LOGS.text, 120),
                (crate::plan::scripts::COMPOSE_UP.text, 900),
                (crate::plan::scripts::SWITCH_FRONT.text, 120),
            ]
        );
        let Step::WaitFront {
            timeout, interval, ..
        } = &plan.steps[8]
        else {
            panic!("wait front")
        };
        assert_eq!((timeout.as_secs(), interval.as_millis()), (15, 50));
        let Step::UploadConf { files, .. } = &plan.steps[1] else {
            panic!("upload")
        };
        assert!(!files[0].contents.contains("backup;"), "no backup yet");
    }

    #[test]
    fn compose_and_docker_run_as_the_inventory_says() {
        let app = AppFile::parse("app.yml", APP).unwrap();
        let plugin = format!(
            "{INVENTORY}    docker: {{command: [/opt/docker/bin/docker], compose_command: [/opt/docker/bin/docker, compose]}}\n"
        );
        let plan = release_on(&plugin, &app, &AppSettings::default(), &[], first_release);
        let text = plan.to_string();
        let shown: Vec<&str> = text.lines().filter(|l| l.contains("docker")).collect();
        assert_eq!(
            shown,
            [
                "   bash -c <SAVE_LOGS script> bash /srv/berth/example/test/logs 8388608 10 example test blue /opt/docker/bin/docker",
                "   flock -w 600 /srv/berth/example/test/.compose-blue.lock bash -c <COMPOSE_UP script> bash berth-example-test-blue /srv/berth/example/test/releases/v1.0.0/conf-blue/compose.yml 10.226.50.136/29 1 /opt/docker/bin/docker /opt/docker/bin/docker compose",
                "   if not healthy: /opt/docker/bin/docker compose -p berth-example-test-blue -f /srv/berth/example/test/releases/v1.0.0/conf-blue/compose.yml logs --no-color --tail 20",
            ]
        );
    }

    #[test]
    fn a_release_with_storage_ensures_it_as_root_and_checks_its_own_health() {
        let app = AppFile::parse(
            "app.yml",
            &APP.replace("  pids: 128\n", "  pids: 128\n  storage: 64M\n"),
        )
        .unwrap();
        let settings = AppSettings::parse(
            "berth.yml",
            "storage: [data, var/sessions]\nhealth: {path: /ready.php, status: 204, contains: \"db: ok\"}\n",
            &app,
        )
        .unwrap();
        let plan = release_of(&app, &settings, &[], first_release);
        let lines = lines(&plan);
        assert_eq!(
            lines[4],
            "5. ensure the storage directories data, var/sessions"
        );
        assert_eq!(
            lines[7],
            "8. wait until http://127.0.0.1:18001/ready.php answers 204 with \"db: ok\" (at most 30s)"
        );
        let Step::EnsureStorage { command, .. } = &plan.steps[4] else {
            panic!("ensure storage")
        };
        assert_eq!(
            command.to_string(),
            "/usr/bin/sudo -n /usr/local/bin/berth storage ensure --base-dir /srv/berth --app example --env test --size 64M --path data --path var/sessions"
        );
        // Storage is ensured before the slot that mounts it starts.
        assert!(matches!(plan.steps[6], Step::ComposeUp { .. }));
        assert_eq!(plan.note, None);

        // An image of another size than the quota is reported, not resized.
        let resized = Observed {
            storage_image_len: Some(16 << 20),
            ..Observed::default()
        };
        let plan = release_of(&app, &settings, &[], |r| release_v1(r, &resized));
        assert_eq!(
            plan.note.as_deref(),
            Some("note: the storage image holds 16777216 bytes, not limits.storage 64M (67108864 bytes); resize it by hand (docs/host-runtime.md, \"Storage: resizing\")")
        );
        let same = Observed {
            storage_image_len: Some(64 << 20),
            ..Observed::default()
        };
        let plan = release_of(&app, &settings, &[], |r| release_v1(r, &same));
        assert_eq!(plan.note, None);
    }

    #[test]
    fn the_next_release_goes_to_the_idle_slot_and_keeps_the_old_one_warm() {
        let observed = Observed {
            state: HostState {
                active: Some(live(Slot::Blue, "v1.0.0")),
                backup: None,
                history: Vec::new(),
            },
            complete_releases: vec![
                ReleaseId::new(&"v0.8.0".parse().unwrap(), None),
                ReleaseId::new(&"v0.9.0".parse().unwrap(), None),
                ReleaseId::new(&"v1.0.0".parse().unwrap(), None),
            ],
            active_healthy: true,
            ..Observed::default()
        };
        let plan = plan_with(&observed, "v2.0.0");
        let Step::SyncCode { link_dest, .. } = &plan.steps[0] else {
            panic!("sync")
        };
        assert_eq!(
            link_dest.as_ref().unwrap().as_str(),
            "/srv/berth/example/test/releases/v1.0.0/code"
        );
        let Step::UploadConf { dir, files, .. } = &plan.steps[1] else {
            panic!("upload")
        };
        assert!(dir.as_str().ends_with("/conf-green"));
        assert!(files[0]
            .contents
            .contains("server 127.0.0.1:18002 max_fails=1"));
        assert!(files[0].contents.contains("server 127.0.0.1:18001 backup;"));
        let Some(Step::RecordState { state, .. }) = plan
            .steps
            .iter()
            .find(|s| matches!(s, Step::RecordState { .. }))
        else {
            panic!("record")
        };
        assert_eq!(state.active.as_ref().unwrap().slot, Slot::Green);
        assert_eq!(state.backup.as_ref().unwrap().tag.as_str(), "v1.0.0");
        assert_eq!(state.history[0].action, "deploy");
        // keep = 1: one old release stays besides the active and backup ones.
        let Some(Step::Prune { dirs, .. }) = plan.steps.last() else {
            panic!("prune")
        };
        assert_eq!(dirs.len(), 1);
        assert!(
            !dirs.iter().any(|d| d.as_str().ends_with("/v1.0.0")),
            "the backup is never pruned"
        );
    }

    #[test]
    fn the_replaced_backups_logs_are_kept_before_compose_up() {
        let observed = Observed {
            state: HostState {
                active: Some(live(Slot::Green, "v2.0.0")),
                backup: Some(live(Slot::Blue, "v1.0.0")),
                history: Vec::new(),
            },
            complete_releases: vec![ReleaseId::new(&"v2.0.0".parse().unwrap(), None)],
            active_healthy: true,
            settings: Vec::new(),
            storage_image_len: None,
        };
        let plan = plan_with(&observed, "v3.0.0");
        let save = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::SaveLogs { .. }))
            .expect("a save step");
        assert!(matches!(
            &plan.steps[save + 1],
            Step::ComposeUp { project, .. } if project == "berth-example-test-blue"
        ));
        let save_blue = [
            "keep the logs of v1.0.0 in slot blue in /srv/berth/example/test/logs/v1.0.0-blue.log (the newest 8 MiB of each, the newest 10 files)".to_string(),
            "bash -c <SAVE_LOGS script> bash /srv/berth/example/test/logs 8388608 10 example test blue /usr/bin/docker".to_string(),
        ];
        let shown = |step: &Step| {
            let mut lines = vec![step.to_string()];
            lines.extend(step.command_lines());
            lines
        };
        assert_eq!(shown(&plan.steps[save]), save_blue);
        let Step::SaveLogs { command, .. } = &plan.steps[save] else {
            panic!("save")
        };
        assert_eq!(command.argv[2], crate::plan::scripts::SAVE_LOGS.text);
        assert_eq!(command.timeout, Duration::from_secs(120));
        // A restart replaces the same containers the same way.
        let plan = with_release(|release| restart(release, &observed).unwrap().unwrap());
        assert!(plan.steps.iter().any(|step| shown(step) == save_blue));
    }

    #[test]
    fn a_release_already_live_plans_nothing() {
        let observed = Observed {
            state: HostState {
                active: Some(live(Slot::Green, "v2.0.0")),
                ..HostState::default()
            },
            complete_releases: vec![ReleaseId::new(&"v2.0.0".parse().unwrap(), None)],
            active_healthy: true,
            ..Observed::default()
        };
        let plan = plan_with(&observed, "v2.0.0");
        assert!(plan.steps.is_empty());
        assert_eq!(
            plan.to_string(),
            "v2.0.0 is already live in slot green; nothing to do\n"
        );

        // The state says so, but the slot does not answer (its containers
        // are gone): release it again, into the other slot.
        let observed = Observed {
            active_healthy: false,
            ..observed
        };
        let plan = plan_with(&observed, "v2.0.0");
        assert!(matches!(
            &plan.steps[4],
            Step::ComposeUp { project, .. } if project == "berth-example-test-blue"
        ));
    }

    #[test]
    fn secrets_are_planned_by_name_and_their_values_never_print() {
        let app = AppFile::parse("app.yml", APP).unwrap();
        let secrets = [
            AppSecret::from_variable("BERTH_SECRET_API_KEY", "k3y-value-1").unwrap(),
            AppSecret::from_variable("BERTH_SECRET_DB_PASSWORD", "pa55-value-2").unwrap(),
        ];
        let plan = release_of(&app, &AppSettings::default(), &secrets, first_release);
        assert_eq!(
            lines(&plan)[2],
            "3. write the secrets API_KEY, DB_PASSWORD to /srv/berth/example/test/secrets-blue.env (mode 0600)"
        );
        let Step::UploadSecrets { contents, .. } = &plan.steps[2] else {
            panic!("secrets third: {plan}")
        };
        assert_eq!(
            contents.expose(),
            "API_KEY=k3y-value-1\nDB_PASSWORD=pa55-value-2\n"
        );
        for shown in [plan.to_string(), format!("{plan:?}")] {
            assert!(
                !shown.contains("k3y-value-1") && !shown.contains("pa55-value-2"),
                "{shown}"
            );
        }
        // No rendered file holds a value: compose names the file only.
        let Step::UploadConf { files, .. } = &plan.steps[1] else {
            panic!("conf second")
        };
        for file in files {
            assert!(!file.contents.contains("k3y-value-1"), "{}", file.name);
        }
        let compose = files.iter().find(|f| f.name == "compose.yml").unwrap();
        assert!(
            compose
                .contents
                .contains("env_file: [\"/srv/berth/example/test/secrets-blue.env\"]"),
            "{}",
            compose.contents
        );
    }

    #[test]
    fn a_release_into_the_backups_slot_plans_to_restore_the_backup_if_it_fails() {
        let observed = Observed {
            state: HostState {
                active: Some(live(Slot::Blue, "v1.0.0")),
                backup: Some(live(Slot::Green, "v0.9.0")),
                history: Vec::new(),
            },
            complete_releases: vec![
                ReleaseId::new(&"v0.9.0".parse().unwrap(), None),
                ReleaseId::new(&"v1.0.0".parse().unwrap(), None),
            ],
            active_healthy: true,
            settings: Vec::new(),
            storage_image_len: None,
        };
        let plan = plan_with(&observed, "v2.0.0");
        let text = plan.to_string();
        let restore: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("if a step"))
            .collect();
        assert_eq!(
            restore,
            [
                "if a step before the switch fails, restore the warm backup:",
                "   - start berth-example-test-green (compose up)",
                // The backup's own files, not the candidate's.
                "     flock -w 600 /srv/berth/example/test/.compose-green.lock bash -c <COMPOSE_UP script> bash berth-example-test-green /srv/berth/example/test/releases/v0.9.0/conf-green/compose.yml 10.226.50.144/29 1 /usr/bin/docker /usr/bin/docker-compose",
                "   - wait until http://127.0.0.1:18002/health.php answers 200 (at most 30s)",
                "     if not healthy: /usr/bin/docker-compose -p berth-example-test-green -f /srv/berth/example/test/releases/v0.9.0/conf-green/compose.yml logs --no-color --tail 20",
            ]
        );

        // Without a backup there is nothing to restore.
        let first = plan_with(&Observed::default(), "v1.0.0");
        assert!(first.on_failure.is_empty());
        assert!(!first.to_string().contains("restore"));
    }

    #[test]
    fn a_rollback_switches_to_the_backup_without_starting_containers() {
        assert_eq!(
            with_release(|release| rollback(release, &Observed::default())),
            Err(RollbackError::NoBackup("test".into()))
        );
        let observed = Observed {
            state: HostState {
                active: Some(live(Slot::Green, "v2.0.0")),
                backup: Some(live(Slot::Blue, "v1.0.0")),
                history: Vec::new(),
            },
            complete_releases: Vec::new(),
            active_healthy: true,
            ..Observed::default()
        };
        let plan = with_release(|release| rollback(release, &observed)).unwrap();
        assert!(!plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::ComposeUp { .. } | Step::SyncCode { .. })));
        assert!(
            matches!(plan.steps[0], Step::WaitHealthy { .. }),
            "the backup is probed first"
        );
        let Some(Step::RecordState { state, .. }) = plan.steps.last() else {
            panic!("record")
        };
        assert_eq!(state.active.as_ref().unwrap().slot, Slot::Blue);
        assert_eq!(state.backup.as_ref().unwrap().slot, Slot::Green);
        assert_eq!(state.history[0].action, "rollback");
    }

    #[test]
    fn state_files_from_a_host_are_validated() {
        let bad = r#"{"active":{"slot":"blue","release":"../../etc","tag":"v1","deployed_at":"x"},"backup":null}"#;
        assert!(serde_json::from_str::<HostState>(bad).is_err());
        let bad_tag = r#"{"active":{"slot":"blue","release":"v1","tag":"v1;id","deployed_at":"x"},"backup":null}"#;
        assert!(serde_json::from_str::<HostState>(bad_tag).is_err());
    }

    #[test]
    fn a_rollback_to_a_tag_finds_its_release_with_the_commit() {
        let tag: GitTag = "v1.0.0".parse().unwrap();
        let with_commit = ReleaseId::new(&tag, Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(with_commit.as_str(), "v1.0.0-0123456789ab");
        let mut observed = Observed::default();
        assert_eq!(release_id(&tag, None, &observed).as_str(), "v1.0.0");
        observed.complete_releases = vec![
            ReleaseId::new(&"v1.0.1".parse().unwrap(), None),
            with_commit.clone(),
        ];
        assert_eq!(release_id(&tag, None, &observed), with_commit);
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        assert_eq!(
            release_id(&tag, Some(other), &observed).as_str(),
            "v1.0.0-fedcba987654"
        );
    }
}
