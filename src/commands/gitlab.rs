//! Reaching GitLab from a command: the client, the management project, and
//! the dotenv outputs a job hands to later jobs.

use std::fmt::Write as _;
use std::path::Path;

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

/// A job's outputs for later jobs (`artifacts: reports: dotenv:`): one
/// `KEY=value` per line, no quotes, no blank lines, no newlines in values.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    lines: Vec<(String, String)>,
}

impl Outputs {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value: String = value.into();
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let value = value.replace(['\n', '\r'], " ").trim().to_string();
        self.lines.retain(|(k, _)| k != key);
        self.lines.push((key.to_string(), value));
    }

    /// Writes the file named by `--dotenv`/`BERTH_DOTENV`, if any, merging
    /// with what an earlier berth command of the same job wrote there.
    pub fn write(&self, path: Option<&Path>) -> Result<(), CommandError> {
        let Some(path) = path else { return Ok(()) };
        let mut merged: Vec<(String, String)> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .filter(|(k, _)| !self.lines.iter().any(|(key, _)| key == k))
            .collect();
        merged.extend(self.lines.iter().cloned());
        let mut text = String::new();
        for (key, value) in &merged {
            let _ = writeln!(text, "{key}={value}");
        }
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("write the job outputs to {}: {e}", path.display()))?;
        Ok(())
    }
}
