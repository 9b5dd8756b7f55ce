//! `berth checkout` (main pipeline, after the merge): checks out each
//! requested tag and verifies that it still names the commit the approved
//! plan showed. A tag moved after approval stops the release.

use std::path::PathBuf;

use serde_json::json;

use super::gitlab::{connect, management_project, missing, usage, Outputs};
use super::CommandError;
use crate::cli::EnvSelection;
use crate::config::{AppDir, Problem, Problems};
use crate::env::Env;
use crate::exec::git;
use crate::exec::gitlab::calls;
use crate::exec::gitlab::{GitLab, Token};
use crate::plan::note::{planned_refs, PLAN_MARKER};
use crate::plan::release::ReleaseId;
use crate::report::Reporter;

pub fn run(args: &EnvSelection, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let dir = &args.app_dir.app_dir;
    let app_dir = AppDir::load(dir)?;
    let project = management_project(None, env)?;
    let Some(sha) = env.commit_sha.as_deref() else {
        return Err(missing(
            "CI_COMMIT_SHA is not set",
            "berth checkout runs in the main-branch pipeline after a release request is merged",
        ));
    };
    let gitlab = connect(env)?;
    let failed = |e: crate::exec::gitlab::GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let merge_request = calls::merged_request_for(&gitlab, &project, sha)
        .map_err(failed)?
        .ok_or_else(|| {
            usage(
                &format!("no merged merge request produced commit {sha}"),
                "releases happen only through merged release requests; open one with `berth request`",
            )
        })?;
    // The plan note is written by the merge request jobs, which call GitLab
    // with the Reporter-level token (BERTH_MR_TOKEN): a note of that user,
    // or of this job's own, is berth's. Anyone else's is not trusted.
    let mut authors = vec![calls::current_user(&gitlab).map_err(failed)?];
    if let (Some(api), Some(token)) = (&env.gitlab_api, &env.mr_token) {
        let reviewer = GitLab::new(api, Token::Private(token.clone()))?;
        let user = calls::current_user(&reviewer).map_err(failed)?;
        if authors.iter().all(|a| a.id != user.id) {
            authors.push(user);
        }
    }
    let planned = calls::find_note_by(
        &gitlab,
        &project,
        merge_request.iid,
        &authors,
        PLAN_MARKER,
    )
    .map_err(failed)?
    .and_then(|(_, body)| planned_refs(&body))
    .ok_or_else(|| {
        let names: Vec<&str> = authors.iter().map(|a| a.username.as_str()).collect();
        usage(
            &format!(
                "merge request !{} has no plan from berth (a note by {})",
                merge_request.iid,
                names.join(" or ")
            ),
            "its pipeline must run `berth plan` before merging, and this job needs BERTH_MR_TOKEN, the token plan ran with; nothing was released",
        )
    })?;
    let wanted: Vec<_> = app_dir
        .release
        .environments
        .iter()
        .filter(|r| planned.contains_key(r.env.as_str()))
        .filter(|r| {
            args.env
                .as_deref()
                .is_none_or(|only| only == r.env.as_str())
        })
        .collect();
    let url = format!(
        "{}{}.git",
        gitlab.server_url(),
        app_dir.app.code_repo.as_str()
    );
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", merge_request.iid.to_string());
    let mut problems = Vec::new();
    let mut done = Vec::new();
    for release in &wanted {
        let plan = &planned[release.env.as_str()];
        let key = format!("environments.{}.ref", release.env);
        let problem = |message: String, hint: &str| Problem {
            file: crate::config::release::FILE_NAME.into(),
            line: Some(release.mark.line),
            column: Some(release.mark.column),
            key: key.clone(),
            message,
            hint: hint.into(),
        };
        if plan.tag != release.tag.as_str() {
            problems.push(problem(
                format!(
                    "main asks for {}, but the approved plan showed {}",
                    release.tag, plan.tag
                ),
                "release.yml changed after the plan; open a new release request",
            ));
            continue;
        }
        let code_dir: PathBuf = if wanted.len() == 1 {
            dir.join("codes")
        } else {
            dir.join(format!("codes-{}", release.env))
        };
        let resolved = git::checkout_tag(&code_dir, &url, gitlab.token(), &release.tag)?;
        if resolved.commit != plan.commit {
            problems.push(problem(
                format!(
                    "tag {} now names commit {}, but the approved plan showed {}: the tag was moved after approval; nothing was released",
                    release.tag, resolved.commit, plan.commit
                ),
                "tag a new release in the code repository and open a new release request",
            ));
            continue;
        }
        let name = release.env.as_str().to_uppercase().replace('-', "_");
        let id = ReleaseId::new(&release.tag, Some(&resolved.commit));
        outputs.set(&format!("BERTH_{name}_REF"), release.tag.as_str());
        outputs.set(&format!("BERTH_{name}_COMMIT"), resolved.commit.as_str());
        outputs.set(&format!("BERTH_{name}_RELEASE"), id.as_str());
        outputs.set(
            &format!("BERTH_{name}_CODE"),
            code_dir.display().to_string(),
        );
        reporter.info(&format!(
            "{}: checked out {} at {} in {}",
            release.env,
            release.tag,
            resolved.commit,
            code_dir.display()
        ));
        done.push(json!({"env": release.env, "ref": release.tag, "commit": resolved.commit, "dir": code_dir}));
    }
    if !problems.is_empty() {
        return Err(CommandError::Invalid(Problems(problems)));
    }
    let envs: Vec<&str> = wanted.iter().map(|r| r.env.as_str()).collect();
    outputs.set("BERTH_ENVIRONMENTS", envs.join(" "));
    outputs.write(env.dotenv.as_deref())?;
    reporter.result(
        &format!(
            "checked out and verified: {}",
            if envs.is_empty() {
                "nothing to release".to_string()
            } else {
                envs.join(", ")
            }
        ),
        &json!({"merge_request": merge_request.iid, "checked_out": done}),
    );
    Ok(())
}
