//! Reaching GitLab from a command: the client and the management project.

use crate::config::values::{ProjectPath, ValueError};
use crate::env::Env;
use crate::exec::gitlab::apply::Applier;
use crate::exec::gitlab::calls;
use crate::exec::gitlab::{GitLab, GitLabError, Token};
use crate::plan::gitlab::GitLabPlan;
use crate::report::note;
use crate::report::Reporter;

use super::CommandError;

/// Keeps berth's one note that starts with `marker` on a merge request:
/// observes the note berth's user wrote, plans the write (none when the
/// body is unchanged), then applies it, or with `--dry-run` prints it.
pub(super) fn keep_note(
    gitlab: &GitLab,
    project: &ProjectPath,
    iid: u64,
    marker: &str,
    body: &str,
    dry_run: bool,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let me = calls::current_user(gitlab).map_err(failed)?;
    let existing =
        calls::find_own_note(gitlab, project.as_str(), iid, &me, marker).map_err(failed)?;
    let plan: GitLabPlan = note::keep_note(
        project,
        iid,
        existing.as_ref().map(|(id, b)| (*id, b.as_str())),
        body,
    )
    .into_iter()
    .collect::<Vec<_>>()
    .into();
    if dry_run {
        reporter.info(&format!(
            "dry run, nothing was written; berth would write:\n{plan}"
        ));
        return Ok(());
    }
    Applier::new(gitlab)
        .apply_all(&plan)
        .map_err(|(_, e)| CommandError::Failed(anyhow::Error::new(e)))?;
    Ok(())
}

/// The merge request of this pipeline: the flag, else `CI_MERGE_REQUEST_IID`.
pub(super) fn merge_request_iid(flag: Option<u64>, env: &Env) -> Result<u64, CommandError> {
    match flag {
        Some(iid) => Ok(iid),
        None => env
            .merge_request_iid
            .as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                missing(
                    "which merge request? CI_MERGE_REQUEST_IID is not set",
                    "run in a merge request pipeline, or pass --merge-request IID",
                )
            }),
    }
}

/// The GitLab client from `CI_API_V4_URL` and `BERTH_GITLAB_TOKEN`.
pub(super) fn connect(env: &Env) -> Result<GitLab, CommandError> {
    let Some(api) = &env.gitlab_api else {
        return Err(missing(
            "CI_API_V4_URL is not set",
            "GitLab sets it in every job; elsewhere set it to https://<gitlab>/api/v4",
        ));
    };
    let Some(token) = &env.gitlab_token else {
        return Err(missing(
            "BERTH_GITLAB_TOKEN is not set",
            "set it as a masked CI/CD variable holding berth's access token (docs/gitlab.md)",
        ));
    };
    Ok(GitLab::new(api, Token::Private(token.clone()))?)
}

/// GitLab and the management project, when this run can reach them
/// (`CI_API_V4_URL`, `BERTH_GITLAB_TOKEN` and `CI_PROJECT_PATH` all set):
/// commands that also work without GitLab use it for the release history.
pub(super) fn history_access(env: &Env) -> Option<Result<(GitLab, String), CommandError>> {
    let configured =
        env.gitlab_api.is_some() && env.gitlab_token.is_some() && env.project_path.is_some();
    configured.then(|| Ok((connect(env)?, management_project(None, env)?)))
}

/// The management project's path: the flag, else `CI_PROJECT_PATH`.
pub(super) fn management_project(flag: Option<&str>, env: &Env) -> Result<String, CommandError> {
    flag.map(str::to_string)
        .or_else(|| env.project_path.clone())
        .ok_or_else(|| {
            missing(
                "which management project? CI_PROJECT_PATH is not set",
                "run in a GitLab job, or pass --project GROUP/APP",
            )
        })
}

/// The management project (`CI_PROJECT_PATH`) as a validated path.
pub(super) fn project_path(env: &Env) -> Result<ProjectPath, CommandError> {
    management_project(None, env)?
        .parse()
        .map_err(|e: ValueError| missing(&format!("CI_PROJECT_PATH: {}", e.message), &e.hint))
}

/// A CI/CD variable the job must provide is missing (exit code 4).
pub(super) fn missing(message: &str, hint: &str) -> CommandError {
    CommandError::NotAvailable {
        message: message.to_string(),
        hint: hint.to_string(),
    }
}

pub(super) fn usage(message: &str, hint: &str) -> CommandError {
    CommandError::Usage {
        message: message.to_string(),
        hint: hint.to_string(),
    }
}
