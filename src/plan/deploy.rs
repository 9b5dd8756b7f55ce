//! The deploy and rollback plans: pure functions of the request, the
//! rendered configuration and the observed host state. They return a list
//! of steps; `exec::apply` carries them out. Their `Display` is the
//! `--dry-run` output.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::release::{front_lock_file, project_name, vhost_file, HostLayout, ReleaseId, Slot};
use super::render::{RenderError, RenderedFile, Target, Templates};
use crate::config::app::{AppEnvironment, AppFile};
use crate::config::inventory::Host;
use crate::config::values::{AbsPath, CommandArg, DomainName, GitTag, Port, UrlPath};

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

/// What berth read from the host before planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub state: HostState,
    /// Releases whose code is complete on the host (`releases/<id>/code`).
    pub complete_releases: Vec<ReleaseId>,
}

/// One thing to do on a host.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Copy the checkout into a staging directory, hard-linking unchanged
    /// files from `link_dest`, then rename it into place.
    SyncCode {
        staging: AbsPath,
        code_dir: AbsPath,
        link_dest: Option<AbsPath>,
    },
    UploadConf {
        dir: AbsPath,
        files: Vec<RenderedFile>,
    },
    ComposeUp {
        project: String,
        file: AbsPath,
    },
    WaitHealthy {
        project: String,
        file: AbsPath,
        address: String,
        port: Port,
        path: UrlPath,
        domain: DomainName,
        timeout_secs: u64,
    },
    /// Under the host's front lock: install the vhost, `nginx -t`
    /// (restoring the previous vhost if it fails), reload.
    SwitchFront {
        lock: AbsPath,
        vhost: AbsPath,
        staged: AbsPath,
        test: Vec<CommandArg>,
        reload: Vec<CommandArg>,
    },
    /// Wait until the front's reloaded workers serve the new vhost: a
    /// reload returns before they do.
    WaitFront {
        address: String,
        port: u16,
        domain: DomainName,
        release: ReleaseId,
    },
    RecordState {
        path: AbsPath,
        state: HostState,
    },
    Prune {
        dirs: Vec<AbsPath>,
    },
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
            Step::UploadConf { dir, files } => {
                let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                write!(f, "upload {} to {dir}", names.join(", "))
            }
            Step::ComposeUp { project, .. } => write!(f, "start {project} (compose up)"),
            Step::WaitHealthy {
                address,
                port,
                path,
                timeout_secs,
                ..
            } => write!(
                f,
                "wait until http://{address}:{port}{path} answers 200 (at most {timeout_secs}s)"
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
            Step::RecordState { path, state } => {
                let active = state.active.as_ref().map_or("none".to_string(), |a| {
                    format!("{} in {}", a.release, a.slot)
                });
                write!(f, "record state in {path}: active {active}")
            }
            Step::Prune { dirs } => {
                let names: Vec<String> = dirs.iter().map(ToString::to_string).collect();
                write!(f, "remove old releases: {}", names.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Why there is nothing to do, when `steps` is empty.
    pub note: Option<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(note) = &self.note {
            writeln!(f, "{note}")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{}. {step}", i + 1)?;
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
    /// How many releases to keep on the host besides the active and backup.
    pub keep: usize,
    pub health_timeout_secs: u64,
    /// The time stamp written into `state.json` (read by the caller).
    pub now: &'a str,
}

impl Release<'_> {
    fn layout(&self) -> HostLayout {
        HostLayout::new(&self.host.base_dir, &self.app.id, self.env)
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
        })
    }

    /// Probes a slot's health path on the host; the compose file is named so
    /// a failure can show the slot's logs.
    fn health(&self, slot: Slot, compose_file: AbsPath) -> Step {
        Step::WaitHealthy {
            project: project_name(&self.app.id, self.env, slot),
            file: compose_file,
            address: self.host.publish_address.to_string(),
            port: slot.port(self.env),
            path: self.app.health_path.clone(),
            domain: self.env.domains[0].clone(),
            timeout_secs: self.health_timeout_secs,
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
        [
            Step::SwitchFront {
                lock: front_lock_file(&self.host.base_dir),
                vhost: vhost_file(&front.include_dir, &self.app.id, self.env),
                staged: conf_dir.join("front.conf"),
                test: front.test_command.clone(),
                reload: front.reload_command.clone(),
            },
            Step::WaitFront {
                address,
                port: front.listen.port(),
                domain: self.env.domains[0].clone(),
                release: release.clone(),
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
        }
    }
}

/// Plans the release of `tag` (from a checkout) into the idle slot.
pub fn deploy(r: &Release, tag: &GitTag, observed: &Observed) -> Result<Plan, RenderError> {
    let layout = r.layout();
    let release = ReleaseId::new(tag, None);
    let state = &observed.state;
    if let Some(active) = &state.active {
        if active.release == release {
            return Ok(Plan {
                steps: Vec::new(),
                note: Some(format!(
                    "{release} is already live in slot {}; nothing to do",
                    active.slot
                )),
            });
        }
    }
    let slot = state.active.as_ref().map_or(Slot::Blue, |a| a.slot.other());
    let backup = state.active.as_ref().map(|a| a.slot);
    let conf_dir = layout.conf_dir(&release, slot);
    let mut steps = Vec::new();
    if !observed.complete_releases.contains(&release) {
        steps.push(Step::SyncCode {
            staging: layout.staging_dir(&release),
            code_dir: layout.code_dir(&release),
            link_dest: state.active.as_ref().map(|a| layout.code_dir(&a.release)),
        });
    }
    steps.extend(start_slot(r, &release, slot, backup, &conf_dir)?);
    steps.extend(r.switch_front(&conf_dir, &release));
    let active = SlotRelease {
        slot,
        release: release.clone(),
        tag: tag.clone(),
        deployed_at: r.now.to_string(),
    };
    steps.push(r.record(state, active, state.active.clone(), "deploy"));
    let dirs = prune(
        r,
        observed,
        &[Some(&release), state.active.as_ref().map(|a| &a.release)],
    );
    if !dirs.is_empty() {
        steps.push(Step::Prune { dirs });
    }
    Ok(Plan { steps, note: None })
}

fn start_slot(
    r: &Release,
    release: &ReleaseId,
    slot: Slot,
    backup: Option<Slot>,
    conf_dir: &AbsPath,
) -> Result<Vec<Step>, RenderError> {
    let files = r.render(release, slot, backup)?;
    let project = project_name(&r.app.id, r.env, slot);
    let file = conf_dir.join("compose.yml");
    Ok(vec![
        Step::UploadConf {
            dir: conf_dir.clone(),
            files,
        },
        Step::ComposeUp {
            project,
            file: file.clone(),
        },
        r.health(slot, file),
    ])
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
        Step::UploadConf {
            dir: conf_dir.clone(),
            files: files
                .into_iter()
                .filter(|f| f.name == "front.conf")
                .collect(),
        },
    ];
    let mut steps = steps;
    steps.extend(r.switch_front(&conf_dir, &backup.release));
    steps.push(r.record(state, backup.clone(), Some(active.clone()), "rollback"));
    Ok(Plan { steps, note: None })
}
