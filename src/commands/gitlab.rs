//! Reaching GitLab from a command: the client and the management project.

use crate::config::values::{ProjectPath, ValueError};
use crate::env::Env;
use crate::exec::gitlab::{GitLab, Token};

use super::CommandError;

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
