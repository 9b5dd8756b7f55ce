//! `berth status`: what runs where, read from the host.

use std::collections::BTreeMap;

use anyhow::Context;
use bollard::query_parameters::ListContainersOptionsBuilder;
use serde_json::json;

use super::gitlab::history_access;
use super::target::{observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::StatusArgs;
use crate::env::Env;
use crate::exec::gitlab::calls;
use crate::exec::remote::Remote;
use crate::plan::storage::Usage;
use crate::report::records::ReleaseRecord;
use crate::report::Reporter;

/// How many release records `status` lists per environment.
const HISTORY_SHOWN: usize = 5;

pub fn run(args: &StatusArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let env_names: Vec<String> = match &args.env {
        Some(name) => vec![name.clone()],
        None => crate::config::AppDir::load(&args.app_dir.app_dir)?
            .app
            .environments
            .iter()
            .map(|e| e.name.to_string())
            .collect(),
    };
    // The release history from GitLab, when this run can reach it.
    let gitlab_view = match history_access(env) {
        Some(access) => {
            let (gitlab, project) = access?;
            let failed = |e| CommandError::Failed(anyhow::Error::new(e));
            let records = calls::release_history(&gitlab, &project)
                .map_err(failed)?
                .records;
            let mut deployments = BTreeMap::new();
            for name in &env_names {
                let last = calls::last_deployment(&gitlab, &project, name).map_err(failed)?;
                deployments.insert(name.clone(), last);
            }
            Some((records, deployments))
        }
        None => None,
    };
    let (records, deployments) = match gitlab_view {
        Some((records, deployments)) => (Some(records), deployments),
        None => (None, BTreeMap::new()),
    };
    let mut text = Vec::new();
    let mut report = Vec::new();
    for name in &env_names {
        let target = EnvTarget::load(&args.app_dir, &args.access, name, &None, env)?;
        let (observed, containers, usage) = runtime()?.block_on(async {
            let remote = Remote::connect(target.host(), &target.ssh_key).await?;
            let observed = observe(&remote, &target).await?;
            let docker = remote.docker(&target.host().docker.socket).await?;
            let filters = std::collections::HashMap::from([(
                "label",
                vec![
                    format!("berth.app={}", target.app_dir.app.id),
                    format!("berth.env={}", target.env),
                ],
            )]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            let summaries = docker
                .list_containers(Some(options))
                .await
                .with_context(|| format!("list containers on host {}", target.host().name))?;
            let mut containers = Vec::new();
            for summary in summaries {
                // The list does not carry health on older Engine APIs.
                let health = match &summary.id {
                    Some(id) => docker
                        .inspect_container(id, None)
                        .await
                        .ok()
                        .and_then(|c| c.state)
                        .and_then(|s| s.health)
                        .and_then(|h| h.status)
                        .map(|s| s.to_string()),
                    None => None,
                };
                containers.push(Container::new(summary, health));
            }
            // The storage's own file system, when it is mounted.
            let storage = target.layout().storage_dir();
            let df = remote
                .output(
                    &[
                        "sh",
                        "-c",
                        "mountpoint -q \"$1\" && df -B1 --output=size,used,itotal,iused \"$1\" | tail -n 1",
                        "sh",
                        storage.as_str(),
                    ],
                    None,
                )
                .await?;
            let usage = Usage::parse(&String::from_utf8_lossy(&df.stdout));
            Ok::<_, CommandError>((observed, containers, usage))
        })?;
        let state = &observed.state;
        let describe = |r: &Option<crate::plan::deploy::SlotRelease>| {
            r.as_ref().map_or("none".to_string(), |r| {
                format!(
                    "{} ({}) in {} since {}",
                    r.tag, r.release, r.slot, r.deployed_at
                )
            })
        };
        text.push(format!(
            "{} {} on {}\n  active: {}{}\n  backup: {}\n  url:    {}\n  containers:\n{}{}",
            target.app_dir.app.id,
            target.env,
            target.host().name,
            describe(&state.active),
            match (&state.active, observed.active_healthy) {
                (Some(_), true) => ", healthy",
                (Some(_), false) => ", NOT answering its health path",
                (None, _) => "",
            },
            describe(&state.backup),
            target.url(),
            containers
                .iter()
                .map(|c| format!(
                    "    {} {} {} {} {}",
                    c.slot, c.role, c.release, c.state, c.health
                ))
                .collect::<Vec<_>>()
                .join("\n"),
            slot_mismatches(state, &containers)
                .iter()
                .map(|m| format!("\n  WARNING: {m}"))
                .collect::<String>()
        ));
        if let (Some(last), Some(image)) = (text.last_mut(), observed.storage_image_len) {
            last.push_str(&match usage {
                Some(usage) => format!("\n  storage: {usage}"),
                None => format!("\n  storage: {image}-byte image NOT mounted"),
            });
        }
        let mut history: Vec<&ReleaseRecord> = records
            .iter()
            .flatten()
            .filter(|r| r.env == target.env.as_str())
            .collect();
        history.sort_by_key(|r| std::cmp::Reverse(r.number));
        history.truncate(HISTORY_SHOWN);
        if records.is_some() {
            let lines: Vec<String> = history
                .iter()
                .map(|r| {
                    format!(
                        "    {} {} {} ({}) {} in {}",
                        r.tag_name(),
                        r.action,
                        r.tag,
                        r.release,
                        r.time,
                        r.slot
                    )
                })
                .collect();
            let lines = if lines.is_empty() {
                "    none".to_string()
            } else {
                lines.join("\n")
            };
            let deployment = match deployments.get(name).and_then(Option::as_ref) {
                Some(d) => format!(
                    "#{} {} ({}) at {}",
                    d.iid,
                    d.reference,
                    d.sha.chars().take(12).collect::<String>(),
                    d.created_at.as_deref().unwrap_or("?")
                ),
                None => "none".to_string(),
            };
            if let Some(last) = text.last_mut() {
                last.push_str(&format!(
                    "\n  history (GitLab):\n{lines}\n  last GitLab deployment: {deployment}"
                ));
            }
        }
        report.push(json!({
            "history": history,
            "gitlab_deployment": deployments.get(name).cloned().flatten(),
            "env": target.env,
            "host": target.host().name,
            "url": target.url(),
            "state": state,
            "active_healthy": observed.active_healthy,
            "mismatches": slot_mismatches(state, &containers),
            "containers": containers,
            "storage": usage,
        }));
    }
    reporter.result(
        &text.join("\n"),
        &json!({ "ok": true, "environments": report }),
    );
    Ok(())
}

/// Where a slot's containers run another release than `state.json` says
/// the slot holds (for example after a failed deploy whose backup could
/// not be restored).
fn slot_mismatches(
    state: &crate::plan::deploy::HostState,
    containers: &[Container],
) -> Vec<String> {
    let mut found = Vec::new();
    for (what, slot) in [("active", &state.active), ("backup", &state.backup)] {
        let Some(slot) = slot else { continue };
        let name = slot.slot.to_string();
        let mut others: Vec<&str> = containers
            .iter()
            .filter(|c| c.slot == name && c.release != slot.release.to_string())
            .map(|c| c.release.as_str())
            .collect();
        others.dedup();
        for release in others {
            found.push(format!(
                "slot {name} runs {release}, not the {what} release {}",
                slot.release
            ));
        }
    }
    found
}

/// One container of a slot, as Docker reports it.
#[derive(serde::Serialize)]
struct Container {
    slot: String,
    role: String,
    release: String,
    state: String,
    health: String,
}

impl Container {
    fn new(summary: bollard::models::ContainerSummary, health: Option<String>) -> Container {
        let labels = summary.labels.unwrap_or_default();
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        Container {
            slot: label("berth.slot"),
            role: label("berth.role"),
            release: label("berth.release"),
            state: summary
                .state
                .map_or_else(|| "unknown".to_string(), |s| s.to_string()),
            health: health.unwrap_or_else(|| "no healthcheck".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::deploy::{HostState, SlotRelease};

    fn container(slot: &str, release: &str) -> Container {
        Container {
            slot: slot.into(),
            role: "web".into(),
            release: release.into(),
            state: "running".into(),
            health: "healthy".into(),
        }
    }

    fn release(slot: &str, tag: &str) -> SlotRelease {
        serde_json::from_value(serde_json::json!({
            "slot": slot, "release": tag, "tag": tag, "deployed_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_slot_running_another_release_than_the_state_says_is_named() {
        let state = HostState {
            active: Some(release("green", "v2.0.0")),
            backup: Some(release("blue", "v1.0.0")),
            history: Vec::new(),
        };
        let agreeing = [container("green", "v2.0.0"), container("blue", "v1.0.0")];
        assert!(slot_mismatches(&state, &agreeing).is_empty());
        let failed = [
            container("green", "v2.0.0"),
            container("blue", "v3.0.0"),
            container("blue", "v3.0.0"),
        ];
        assert_eq!(
            slot_mismatches(&state, &failed),
            ["slot blue runs v3.0.0, not the backup release v1.0.0"]
        );
    }
}
