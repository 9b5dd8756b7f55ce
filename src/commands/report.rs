//! `berth report` (main pipeline, last stage, runs even when a deploy
//! failed): the result per environment as a note on the merged merge
//! request, a commit status, and a release record tag per release.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::deploy::Outcome;
use super::gitlab::{connect, management_project, missing};
use super::CommandError;
use crate::cli::ReportArgs;
use crate::env::Env;
use crate::exec::gitlab::{calls, ErrorKind, GitLab, GitLabError};
use crate::plan::history::ReleaseRecord;
use crate::plan::note::{report_note, EnvOutcome};
use crate::report::Reporter;

pub fn run(
    args: &ReportArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let project = management_project(None, env)?;
    let Some(sha) = env.commit_sha.clone() else {
        return Err(missing(
            "CI_COMMIT_SHA is not set",
            "berth report runs in the main-branch pipeline",
        ));
    };
    let outcomes = read_outcomes(&args.outcome)?;
    let gitlab = connect(env)?;
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let merge_request = calls::merged_request_for(&gitlab, &project, &sha).map_err(failed)?;
    if dry_run {
        return dry_run_report(
            &gitlab,
            &project,
            &sha,
            &outcomes,
            merge_request.map(|m| m.iid),
            reporter,
        );
    }
    let mut notes = Vec::new();
    for outcome in &outcomes {
        let record = if outcome.ok && outcome.action == "deploy" {
            Some(record_release(
                &gitlab,
                &project,
                &sha,
                &NewRecord::of(outcome),
                env,
                merge_request.as_ref().map(|m| m.iid),
            )?)
        } else {
            None
        };
        notes.push(EnvOutcome {
            action: outcome.action.clone(),
            env: outcome.env.clone(),
            tag: outcome.tag.clone(),
            commit: outcome.commit.clone().unwrap_or_default(),
            url: outcome.ok.then(|| outcome.url.clone()),
            failed_step: outcome.failed_step.clone(),
            log_tail: outcome.log_tail.clone(),
            record,
        });
    }
    if let Some(mr) = &merge_request {
        calls::add_note(
            &gitlab,
            &project,
            mr.iid,
            &report_note(env.pipeline_url.as_deref(), &notes),
        )
        .map_err(failed)?;
    }
    let all_ok = outcomes.iter().all(|o| o.ok);
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match &o.failed_step {
            None => format!("{} {} released", o.env, o.tag),
            Some(step) => format!("{} {} failed at {step}", o.env, o.tag),
        })
        .collect();
    let description = if summary.is_empty() {
        "nothing released".to_string()
    } else {
        summary.join("; ")
    };
    calls::commit_status(
        &gitlab,
        &project,
        &sha,
        all_ok,
        "berth/release",
        env.pipeline_url.as_deref(),
        &description,
    )
    .map_err(failed)?;
    reporter.result(
        &format!("reported: {description}"),
        &json!({"ok": all_ok, "merge_request": merge_request.map(|m| m.iid), "environments": notes.iter().map(|n| json!({"env": n.env, "ref": n.tag, "record": n.record, "failed_step": n.failed_step})).collect::<Vec<_>>()}),
    );
    Ok(())
}

/// What `report` would write, printed; nothing is written.
fn dry_run_report(
    gitlab: &GitLab,
    project: &str,
    sha: &str,
    outcomes: &[Outcome],
    merge_request: Option<u64>,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let mut history = calls::release_history(gitlab, project).map_err(failed)?;
    let mut lines = Vec::new();
    for outcome in outcomes.iter().filter(|o| o.ok && o.action == "deploy") {
        let number = history.next_number(&outcome.env).map_err(|why| {
            CommandError::Failed(anyhow::anyhow!("number the release record: {why}"))
        })?;
        lines.push(format!(
            "POST projects/{project}/repository/tags  tag_name=deployed/{}/{number} ref={sha} ({} {})",
            outcome.env, outcome.tag, outcome.commit.as_deref().unwrap_or("")
        ));
        // Later outcomes of the same environment number after this one.
        history.records.push(ReleaseRecord {
            env: outcome.env.clone(),
            number,
            tag: outcome.tag.clone(),
            commit: None,
            release: outcome.tag.clone(),
            host: outcome.host.clone(),
            slot: "unknown".into(),
            time: outcome.time.clone(),
            pipeline: None,
            merge_request,
            action: "deploy".into(),
        });
    }
    if let Some(iid) = merge_request {
        lines.push(format!(
            "POST projects/{project}/merge_requests/{iid}/notes  (the report note)"
        ));
    }
    let all_ok = outcomes.iter().all(|o| o.ok);
    lines.push(format!(
        "POST projects/{project}/statuses/{sha}  name=berth/release state={}",
        if all_ok { "success" } else { "failed" }
    ));
    reporter.result(
        &format!(
            "dry run: report would write (nothing was written):\n{}",
            lines.join("\n")
        ),
        &json!({"dry_run": true, "writes": lines}),
    );
    Ok(())
}

fn read_outcomes(paths: &[PathBuf]) -> Result<Vec<Outcome>, CommandError> {
    let mut outcomes = Vec::new();
    for path in paths {
        if !path.exists() {
            // A deploy job that did not run (a manual production deploy
            // not started yet) leaves no outcome: nothing to report.
            continue;
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let outcome: Outcome = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a deploy outcome written by berth deploy",
                path.display()
            )
        })?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What a new release record says; `record_release` numbers it.
pub(super) struct NewRecord {
    pub env: String,
    pub tag: String,
    pub commit: Option<String>,
    pub release: String,
    pub host: String,
    pub slot: Option<String>,
    pub time: String,
    pub action: &'static str,
}

impl NewRecord {
    fn of(outcome: &Outcome) -> NewRecord {
        NewRecord {
            env: outcome.env.clone(),
            tag: outcome.tag.clone(),
            commit: outcome.commit.clone(),
            release: outcome
                .release
                .clone()
                .unwrap_or_else(|| outcome.tag.clone()),
            host: outcome.host.clone(),
            slot: outcome.slot.clone(),
            time: outcome.time.clone(),
            action: "deploy",
        }
    }
}

/// Writes `deployed/<env>/<n>` on `at` (a commit or branch), unless this
/// pipeline's record of the same release exists already (a re-run);
/// returns the tag name.
pub(super) fn record_release(
    gitlab: &GitLab,
    project: &str,
    at: &str,
    new: &NewRecord,
    env: &Env,
    merge_request: Option<u64>,
) -> Result<String, CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    for _ in 0..5 {
        let history = calls::release_history(gitlab, project).map_err(failed)?;
        if let Some(existing) = history.records.iter().find(|r| {
            r.env == new.env
                && r.tag == new.tag
                && r.pipeline == env.pipeline_url
                && r.time == new.time
        }) {
            return Ok(existing.tag_name());
        }
        let number = history.next_number(&new.env).map_err(|why| {
            CommandError::Failed(anyhow::anyhow!("number the release record: {why}"))
        })?;
        let record = ReleaseRecord {
            env: new.env.clone(),
            number,
            tag: new.tag.clone(),
            commit: new
                .commit
                .clone()
                .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit())),
            release: new.release.clone(),
            host: new.host.clone(),
            slot: new.slot.clone().unwrap_or_else(|| "unknown".into()),
            time: new.time.clone(),
            pipeline: env.pipeline_url.clone(),
            merge_request,
            action: new.action.to_string(),
        };
        match calls::create_record(gitlab, project, &record, at) {
            Ok(()) => return Ok(record.tag_name()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // A tag berth does not believe holds the number: reading
                // again would find the same, so say which and why.
                let name = record.tag_name();
                if let Some(ignored) = history.ignored.iter().find(|i| i.tag == name) {
                    return Err(CommandError::Failed(anyhow::anyhow!(
                        "cannot write the release record {name}: a tag of that name exists, and berth does not believe it ({}); an admin must delete it, or protect deployed/* before anyone else can tag",
                        ignored.why
                    )));
                }
                // Another job took this number first: read again.
                continue;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "could not number the release record of {}: tags kept appearing",
        new.env
    )))
}
