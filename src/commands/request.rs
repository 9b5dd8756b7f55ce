//! `berth request --env ENV --ref TAG`: the outside developer's way to ask
//! for a release. It reads the management repository's `main` (`app.yml`,
//! `release.yml`), the commit the tag names in the code repository, and
//! the merge requests open from the request's branch; plans
//! (`plan::gitlab::request`); and opens a merge request from
//! `release/<env>-<tag>` whose one commit changes only that environment's
//! `ref` and `commit` in `release.yml`. With `--dry-run` it prints the two
//! writes and makes none.
//!
//! Asking twice is harmless: an open merge request for the same branch is
//! shown, not duplicated.

use super::gitlab::connect;
use super::CommandError;
use crate::cli::RequestArgs;
use crate::config::decode::Problems;
use crate::config::values::{CommitId, EnvName, GitTag, ProjectPath, ScalarValue};
use crate::config::AppFile;
use crate::env::Env;
use crate::exec::gitlab::apply::{Applied, Applier};
use crate::exec::gitlab::onboarding::read_file;
use crate::exec::gitlab::{calls, ErrorKind, GitLab, GitLabError};
use crate::plan::gitlab::request::{
    self, branch_name, problem, Observed, OpenRequest, Planned, Request,
};
use crate::plan::gitlab::GitLabWrite;
use crate::report::dotenv::Outputs;
use crate::report::Reporter;

pub fn run(
    args: &RequestArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let env_name = EnvName::parse(&args.env);
    let tag = GitTag::parse(&args.tag);
    let (env_name, tag) = match (env_name, tag) {
        (Ok(env_name), Ok(tag)) => (env_name, tag),
        (env_name, tag) => {
            let problems = [
                env_name.err().map(|e| problem("--env", e.message, &e.hint)),
                tag.err().map(|e| problem("--ref", e.message, &e.hint)),
            ];
            return Err(CommandError::Invalid(Problems(
                problems.into_iter().flatten().collect(),
            )));
        }
    };
    let asked = Request {
        project: management_project(args, env)?,
        env: env_name,
        tag,
    };
    let gitlab = connect(env)?;
    let observed = observe(&gitlab, &asked)?;
    let planned = request::plan(&asked, &observed)?;
    let (env_name, tag, main) = (&asked.env, &asked.tag, &observed.default_branch);
    match planned {
        Planned::Unchanged { commit } => {
            reporter.result(
                &format!(
                    "release.yml on {main} already asks for {tag} ({}) in {env_name}: nothing to request",
                    &commit.as_str()[..12]
                ),
                &serde_json::json!({"ok": true, "unchanged": true, "env": env_name, "ref": tag, "commit": commit}),
            );
            Ok(())
        }
        Planned::Open(open) => done(&open, &asked, None, true, env, reporter),
        Planned::Writes { plan, .. } if dry_run => {
            reporter.result(
                plan.to_string().trim_end(),
                &serde_json::json!({
                    "ok": true, "dry_run": true, "env": env_name, "ref": tag,
                    "writes": plan.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            );
            Ok(())
        }
        Planned::Writes { commit, plan } => {
            let failed = |e: crate::exec::gitlab::apply::ApplyError| CommandError::Failed(e.into());
            let mut applier = Applier::new(&gitlab);
            for write in &plan {
                match applier.apply(write) {
                    Ok(Applied::MergeRequest { iid, web_url }) => {
                        reporter.info(&write.to_string());
                        let opened = OpenRequest { iid, web_url };
                        return done(&opened, &asked, Some(&commit), false, env, reporter);
                    }
                    Ok(_) => reporter.info(&write.to_string()),
                    // Opened meanwhile by another run for the same branch.
                    Err(e)
                        if e.kind() == ErrorKind::AlreadyExists
                            && matches!(write, GitLabWrite::CreateMergeRequest(_)) =>
                    {
                        let branch = branch_name(&asked.env, &asked.tag);
                        return match calls::open_request_from(
                            &gitlab,
                            asked.project.as_str(),
                            &branch,
                        )
                        .map_err(|e| CommandError::Failed(e.into()))?
                        {
                            Some((iid, web_url)) => {
                                let open = OpenRequest { iid, web_url };
                                done(&open, &asked, None, true, env, reporter)
                            }
                            None => Err(failed(e)),
                        };
                    }
                    Err(e) => return Err(failed(e)),
                }
            }
            Err(CommandError::Failed(anyhow::anyhow!(
                "the request's plan opened no merge request"
            )))
        }
    }
}

/// Everything the request is planned from: the project's default branch,
/// `app.yml` and `release.yml` there (not the local checkout's, so a stale
/// checkout cannot revert anything), the tag's commit in the code
/// repository, and an open merge request from the request's branch.
fn observe(gitlab: &GitLab, asked: &Request) -> Result<Observed, CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(e.into());
    let project = &asked.project;
    let main = calls::default_branch(gitlab, project.as_str()).map_err(failed)?;
    let read = |path: &str| {
        read_file(gitlab, project, path, &main)
            .map_err(|e| CommandError::Failed(e.into()))?
            .ok_or_else(|| {
                CommandError::Failed(anyhow::anyhow!(
                    "{project} has no {path} on {main}: is it an app's management repository?"
                ))
            })
    };
    let app = AppFile::parse(&format!("{project}:app.yml"), &read("app.yml")?.text)?;
    let release = read("release.yml")?;
    // The tags API's `commit` is the commit an annotated tag points at.
    let tag_commit = match calls::tag_commit(gitlab, app.code_repo.as_str(), asked.tag.as_str())
        .map_err(failed)?
    {
        None => None,
        Some(id) => Some(CommitId::parse(&id).map_err(|e| {
            CommandError::Failed(anyhow::anyhow!(
                "GitLab names {} as the commit of tag {}: {}",
                crate::config::values::quoted(&id),
                asked.tag,
                e.message
            ))
        })?),
    };
    let open = calls::open_request_from(
        gitlab,
        project.as_str(),
        &branch_name(&asked.env, &asked.tag),
    )
    .map_err(failed)?
    .map(|(iid, web_url)| OpenRequest { iid, web_url });
    Ok(Observed {
        server_url: gitlab.server_url().to_string(),
        default_branch: main,
        app,
        release_text: release.text,
        release_last_commit: release.last_commit_id,
        tag_commit,
        open,
    })
}

/// The management project: the flag, `CI_PROJECT_PATH`, or the path of
/// the checkout's `origin` remote.
fn management_project(args: &RequestArgs, env: &Env) -> Result<ProjectPath, CommandError> {
    let given = args.project.clone().or_else(|| env.project_path.clone());
    let path = match given {
        Some(path) => path,
        None => origin_project(&args.app_dir.app_dir).ok_or_else(|| {
            super::gitlab::usage(
                "which management project? Not given, CI_PROJECT_PATH is not set, and the directory has no origin remote",
                "run in a checkout of the management repository, or pass --project GROUP/APP",
            )
        })?,
    };
    ProjectPath::parse(&path).map_err(|e| super::gitlab::usage(&e.message, &e.hint))
}

/// `deploy/shop` from an origin URL such as
/// `https://gitlab.example.com/deploy/shop.git` or
/// `git@gitlab.example.com:deploy/shop.git`.
fn origin_project(dir: &std::path::Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let remote = repo.find_remote("origin").ok()?;
    project_of_url(remote.url().ok()?)
}

fn project_of_url(url: &str) -> Option<String> {
    let path = match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => parsed.path().to_string(),
        _ => url.split_once(':')?.1.to_string(),
    };
    let path = path.trim_matches('/');
    Some(path.strip_suffix(".git").unwrap_or(path).to_string())
}

fn done(
    request: &OpenRequest,
    asked: &Request,
    commit: Option<&CommitId>,
    existed: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let (env_name, tag) = (&asked.env, &asked.tag);
    let text = if existed {
        format!(
            "a merge request for {tag} to {env_name} is already open: {}",
            request.web_url
        )
    } else {
        format!(
            "opened merge request !{} (Release {tag} to {env_name}): {}",
            request.iid, request.web_url
        )
    };
    reporter.result(
        &text,
        &serde_json::json!({
            "ok": true, "existing": existed, "iid": request.iid,
            "web_url": request.web_url, "env": env_name, "ref": tag, "commit": commit,
        }),
    );
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MR_IID", request.iid.to_string());
    outputs.set("BERTH_MR_URL", request.web_url.as_str());
    Ok(outputs.write(env.dotenv.as_deref())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls_name_the_project() {
        for (url, want) in [
            ("https://gitlab.example.com/deploy/shop.git", "deploy/shop"),
            ("http://oauth2:x@127.0.0.1:9/a/b/c.git", "a/b/c"),
            ("git@gitlab.example.com:deploy/shop.git", "deploy/shop"),
            (
                "ssh://git@gitlab.example.com:2222/deploy/shop",
                "deploy/shop",
            ),
        ] {
            assert_eq!(project_of_url(url).as_deref(), Some(want), "{url}");
        }
    }
}
