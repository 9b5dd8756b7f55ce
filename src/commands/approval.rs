//! What `check`, `plan` and `checkout` observe to bind a release to what
//! the admin approved: the management repository's files read from the
//! pipeline's commit (git objects, not the work tree), and the code
//! repository reached over git with the app's deploy token.

use super::gitlab::missing;
use super::CommandError;
use crate::config::release::{self, ReleaseFile};
use crate::config::{app, AppDir, Problems};
use crate::env::Env;
use crate::exec::git::{GitAuth, LocalRepo};
use crate::exec::gitlab::GitLab;
use crate::plan::review::file_text;

/// The commit this pipeline runs for (`CI_COMMIT_SHA`), checked to be a
/// full commit id.
pub(super) fn pipeline_commit(env: &Env, command: &str) -> Result<String, CommandError> {
    match env.commit_sha.as_deref() {
        Some(sha) if is_commit_id(sha) => Ok(sha.to_string()),
        Some(other) => Err(missing(
            &format!("CI_COMMIT_SHA {other:?} is not a full commit id"),
            "GitLab sets it to the 40-character id of the pipeline's commit",
        )),
        None => Err(missing(
            "CI_COMMIT_SHA is not set",
            &format!("berth {command} runs in a GitLab pipeline, which sets it"),
        )),
    }
}

pub(super) fn is_commit_id(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The job's checkout of the management repository, opened as git.
pub(super) fn local_repo(dir: &std::path::Path) -> Result<LocalRepo, CommandError> {
    LocalRepo::open(dir).map_err(|e| {
        missing(
            &format!("{e:#}"),
            "run in the job's checkout of the management repository (the runner's clone, GIT_STRATEGY fetch or clone)",
        )
    })
}

/// One of the two files as committed in `commit`.
fn text_at(
    repo: &LocalRepo,
    commit: &str,
    name: &str,
) -> Result<Result<String, Problems>, CommandError> {
    let file = repo
        .file(commit, name, crate::config::yaml::MAX_FILE_BYTES)
        .map_err(|e| {
            CommandError::Failed(e.context(format!("read {name} from commit {commit}")))
        })?;
    Ok(file_text(name, commit, file))
}

/// `release.yml` and `app.yml` as committed in `commit`, parsed and
/// checked against each other.
pub(super) fn app_dir_at(
    repo: &LocalRepo,
    commit: &str,
) -> Result<Result<AppDir, Problems>, CommandError> {
    let release_text = text_at(repo, commit, release::FILE_NAME)?;
    let app_text = text_at(repo, commit, app::FILE_NAME)?;
    Ok(AppDir::parse(
        (release::FILE_NAME, release_text),
        (app::FILE_NAME, app_text),
    ))
}

/// `release.yml` as committed in `commit`, when it exists and parses (the
/// base of a comparison: a broken base only means every environment
/// counts as changed).
pub(super) fn release_at(
    repo: &LocalRepo,
    commit: &str,
) -> Result<Option<ReleaseFile>, CommandError> {
    Ok(text_at(repo, commit, release::FILE_NAME)?
        .ok()
        .and_then(|text| ReleaseFile::parse(release::FILE_NAME, &text).ok()))
}

/// The code repository over git: its URL on this GitLab and the
/// credentials to read it (the app's deploy token when the job has it,
/// else berth's GitLab token).
pub(super) struct CodeRemote<'a> {
    pub url: String,
    pub auth: GitAuth<'a>,
}

impl<'a> CodeRemote<'a> {
    pub fn new(gitlab: &'a GitLab, env: &'a Env, code_repo: &str) -> CodeRemote<'a> {
        let url = format!("{}{code_repo}.git", gitlab.server_url());
        let auth = match (&env.code_user, &env.code_token) {
            (Some(user), Some(secret)) => GitAuth::Basic { user, secret },
            _ => GitAuth::Token(gitlab.token()),
        };
        CodeRemote { url, auth }
    }
}
