//! `berth report` (main pipeline, last stage, runs even when a deploy
//! failed): the result per environment as a note on the merged merge
//! request, a commit status, and a release record tag per release.

use serde_json::json;

use super::approval::pipeline_commit;
use super::gitlab::{connect, project_path};
use super::CommandError;
use crate::cli::ReportArgs;
use crate::config::values::ProjectPath;
use crate::env::Env;
use crate::exec::gitlab::apply::Applier;
use crate::exec::gitlab::{calls, ErrorKind, GitLab, GitLabError};
use crate::plan::gitlab::{CommitState, CommitStatus, GitLabPlan, GitLabWrite};
use crate::report::note::{report_note, EnvOutcome};
use crate::report::outcome::{self, Outcome};
use crate::report::records::{History, NewRecord, ReleaseRecord};
use crate::report::Reporter;

pub fn run(
    args: &ReportArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let project = project_path(env)?;
    let sha = pipeline_commit(env, "report")?;
    let outcomes = outcome::read_all(&args.outcome)?;
    let gitlab = connect(env)?;
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let merge_request = calls::merged_request_for(&gitlab, project.as_str(), &sha)
        .map_err(failed)?
        .map(|m| m.iid);
    let new: Vec<NewRecord> = outcomes
        .iter()
        .filter(|o| o.ok && o.action == "deploy")
        .map(NewRecord::of)
        .collect();
    let pipeline = env.pipeline_url.as_deref();
    let all_ok = outcomes.iter().all(|o| o.ok);
    let description = status_description(&outcomes);
    // Observe, plan, apply; a record number another job took meanwhile
    // means observing and planning again.
    for _ in 0..5 {
        let history = calls::release_history(&gitlab, project.as_str()).map_err(failed)?;
        let planned = history
            .plan_records(&new, pipeline, merge_request)
            .map_err(|why| {
                CommandError::Failed(anyhow::anyhow!("number the release records: {why}"))
            })?;
        let notes: Vec<EnvOutcome> = outcomes
            .iter()
            .map(|outcome| EnvOutcome {
                action: outcome.action.clone(),
                env: outcome.env.clone(),
                tag: outcome.tag.clone(),
                commit: outcome.commit.clone().unwrap_or_default(),
                url: outcome.ok.then(|| outcome.url.clone()),
                failed_step: outcome.failed_step.clone(),
                log_tail: outcome.log_tail.clone(),
                record: planned
                    .iter()
                    .find(|p| p.record.env == outcome.env && p.record.tag == outcome.tag)
                    .filter(|_| outcome.ok && outcome.action == "deploy")
                    .map(|p| p.record.tag_name()),
            })
            .collect();
        let mut plan = GitLabPlan::default();
        for record in planned.iter().filter(|p| !p.exists) {
            plan.push(record_write(&project, &sha, &record.record));
        }
        if let Some(iid) = merge_request {
            plan.push(GitLabWrite::CreateNote {
                project: project.clone(),
                merge_request: iid,
                body: report_note(pipeline, &notes),
            });
        }
        plan.push(GitLabWrite::SetCommitStatus(CommitStatus {
            project: project.clone(),
            sha: sha.clone(),
            state: if all_ok {
                CommitState::Success
            } else {
                CommitState::Failed
            },
            name: "berth/release".into(),
            target_url: pipeline.map(str::to_string),
            description: description.clone(),
        }));
        if dry_run {
            reporter.result(
                &format!("dry run, nothing was written; berth report would write:\n{plan}"),
                &json!({"dry_run": true, "writes": plan.iter().map(|w| w.to_string()).collect::<Vec<_>>()}),
            );
            return Ok(());
        }
        match apply_report(&gitlab, &plan, &history)? {
            Applied::Done => {
                reporter.result(
                    &format!("reported: {description}"),
                    &json!({"ok": all_ok, "merge_request": merge_request, "environments": notes.iter().map(|n| json!({"env": n.env, "ref": n.tag, "record": n.record, "failed_step": n.failed_step})).collect::<Vec<_>>()}),
                );
                return Ok(());
            }
            Applied::NumberTaken => continue,
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "could not number the release records: other jobs kept taking the numbers"
    )))
}

/// The commit status's description: per environment, released or the
/// step that failed.
fn status_description(outcomes: &[Outcome]) -> String {
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match &o.failed_step {
            None => format!("{} {} released", o.env, o.tag),
            Some(step) => format!("{} {} failed at {step}", o.env, o.tag),
        })
        .collect();
    if summary.is_empty() {
        "nothing released".to_string()
    } else {
        summary.join("; ")
    }
}

/// A release record as the annotated tag that holds it, on `at`.
fn record_write(project: &ProjectPath, at: &str, record: &ReleaseRecord) -> GitLabWrite {
    GitLabWrite::CreateTag {
        project: project.clone(),
        name: record.tag_name(),
        target: at.to_string(),
        message: record.message(),
    }
}

enum Applied {
    Done,
    /// A record's number was taken meanwhile by another job.
    NumberTaken,
}

/// Sends the report's writes in order. A record tag that exists already
/// is another job's (observe again), unless it is a tag berth does not
/// believe, which only an admin can clear.
fn apply_report(
    gitlab: &GitLab,
    plan: &GitLabPlan,
    history: &History,
) -> Result<Applied, CommandError> {
    let mut applier = Applier::new(gitlab);
    for write in plan {
        match applier.apply(write) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let GitLabWrite::CreateTag { name, .. } = write else {
                    return Err(CommandError::Failed(anyhow::Error::new(e)));
                };
                if let Some(ignored) = history.ignored.iter().find(|i| &i.tag == name) {
                    return Err(CommandError::Failed(anyhow::anyhow!(
                        "cannot write the release record {name}: a tag of that name exists, and berth does not believe it ({}); an admin must delete it, or protect deployed/* before anyone else can tag",
                        ignored.why
                    )));
                }
                return Ok(Applied::NumberTaken);
            }
            Err(e) => return Err(CommandError::Failed(anyhow::Error::new(e))),
        }
    }
    Ok(Applied::Done)
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

/// Writes one release record (a rollback's) on `at`, unless this
/// pipeline's record of it exists already; returns the tag name.
pub(super) fn record_release(
    gitlab: &GitLab,
    project: &ProjectPath,
    at: &str,
    new: &NewRecord,
    env: &Env,
    merge_request: Option<u64>,
) -> Result<String, CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    for _ in 0..5 {
        let history = calls::release_history(gitlab, project.as_str()).map_err(failed)?;
        let planned = history
            .plan_records(
                std::slice::from_ref(new),
                env.pipeline_url.as_deref(),
                merge_request,
            )
            .map_err(|why| {
                CommandError::Failed(anyhow::anyhow!("number the release record: {why}"))
            })?;
        let record = &planned[0];
        if record.exists {
            return Ok(record.record.tag_name());
        }
        let plan: GitLabPlan = vec![record_write(project, at, &record.record)].into();
        match apply_report(gitlab, &plan, &history)? {
            Applied::Done => return Ok(record.record.tag_name()),
            Applied::NumberTaken => continue,
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "could not number the release record of {}: tags kept appearing",
        new.env
    )))
}
