//! `berth checkout` (main pipeline, after the merge): for each environment
//! the merge changed in `release.yml`, fetches the tag and checks out
//! exactly the commit the merged `release.yml` pins. A tag moved after
//! approval stops the release. Nothing here reads a merge request note.

use std::path::PathBuf;

use serde_json::json;

use super::approval::{
    app_dir_at, is_commit_id, local_repo, pipeline_commit, release_at, CodeRemote,
};
use super::gitlab::{connect, management_project, usage};
use super::CommandError;
use crate::cli::EnvSelection;
use crate::config::Problems;
use crate::env::Env;
use crate::exec::git;
use crate::exec::gitlab::calls;
use crate::plan::release::ReleaseId;
use crate::plan::review::{approved_commit_problem, changed_environments};
use crate::report::dotenv::Outputs;
use crate::report::Reporter;

pub fn run(
    args: &EnvSelection,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let dir = &args.app_dir.app_dir;
    let project = management_project(None, env)?;
    let sha = pipeline_commit(env, "checkout")?;
    let repo = local_repo(dir)?;
    // What the protected branch says now, read from the pipeline's commit,
    // and what it said before this change (the push's previous tip, or
    // the commit's first parent when GitLab gives none).
    let app_dir = app_dir_at(&repo, &sha)??;
    let before_sha = match env.commit_before_sha.as_deref() {
        Some(before) if is_commit_id(before) && before.bytes().any(|b| b != b'0') => {
            Some(before.to_string())
        }
        _ => repo.first_parent(&sha).map_err(CommandError::Failed)?,
    };
    let before = match &before_sha {
        Some(before) => release_at(&repo, before)?,
        None => None,
    };
    let gitlab = connect(env)?;
    let failed = |e: crate::exec::gitlab::GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let merge_request = calls::merged_request_for(&gitlab, &project, &sha)
        .map_err(failed)?
        .ok_or_else(|| {
            usage(
                &format!("no merged merge request produced commit {sha}"),
                "releases happen only through merged release requests; open one with `berth request`",
            )
        })?;
    let wanted: Vec<_> = changed_environments(before.as_ref(), &app_dir.release)
        .into_iter()
        .filter(|r| {
            args.env
                .as_deref()
                .is_none_or(|only| only == r.env.as_str())
        })
        .collect();
    let remote = CodeRemote::new(&gitlab, env, app_dir.app.code_repo.as_str());
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", merge_request.iid.to_string());
    let mut problems = Vec::new();
    let mut done = Vec::new();
    for release in &wanted {
        let code_dir: PathBuf = if wanted.len() == 1 {
            dir.join("codes")
        } else {
            dir.join(format!("codes-{}", release.env))
        };
        // The approved commit is the one release.yml pins; the tag must
        // still name it, or nothing is released.
        let fetched = if dry_run {
            git::remote_tag_commit(&remote.url, remote.auth, &release.tag)
                .map_err(CommandError::Failed)?
                .unwrap_or_else(|| "(no such tag)".to_string())
        } else {
            git::checkout_tag(&code_dir, &remote.url, remote.auth, &release.tag)?.commit
        };
        if let Some(problem) = approved_commit_problem(release, &fetched) {
            problems.push(problem);
            continue;
        }
        let name = release.env.as_str().to_uppercase().replace('-', "_");
        let id = ReleaseId::new(&release.tag, Some(&fetched));
        outputs.set(&format!("BERTH_{name}_REF"), release.tag.as_str());
        outputs.set(&format!("BERTH_{name}_COMMIT"), fetched.as_str());
        outputs.set(&format!("BERTH_{name}_RELEASE"), id.as_str());
        outputs.set(
            &format!("BERTH_{name}_CODE"),
            code_dir.display().to_string(),
        );
        reporter.info(&format!(
            "{}: {} {} at {} in {}",
            release.env,
            if dry_run {
                "would check out"
            } else {
                "checked out"
            },
            release.tag,
            fetched,
            code_dir.display()
        ));
        done.push(
            json!({"env": release.env, "ref": release.tag, "commit": fetched, "dir": code_dir}),
        );
    }
    if !problems.is_empty() {
        return Err(CommandError::Invalid(Problems(problems)));
    }
    let envs: Vec<&str> = wanted.iter().map(|r| r.env.as_str()).collect();
    outputs.set("BERTH_ENVIRONMENTS", envs.join(" "));
    if !dry_run {
        outputs.write(env.dotenv.as_deref())?;
    }
    reporter.result(
        &format!(
            "{}: {}",
            if dry_run { "dry run, verified (nothing checked out)" } else { "checked out and verified" },
            if envs.is_empty() {
                "nothing to release".to_string()
            } else {
                envs.join(", ")
            }
        ),
        &json!({"merge_request": merge_request.iid, "commit": sha, "checked_out": done, "dry_run": dry_run}),
    );
    Ok(())
}
