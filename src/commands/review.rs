//! `berth check` and `berth plan`: the merge request pipeline of a release
//! request. Both run without deploy secrets; both keep berth's one note on
//! the merge request up to date.

use std::collections::BTreeMap;

use serde_json::json;
use similar::TextDiff;

use super::gitlab::{connect, management_project, missing, usage, Outputs};
use super::{inventory_path, CommandError};
use crate::cli::MergeRequestArgs;
use crate::config::release::{ReleaseFile, RequestedRelease};
use crate::config::{AppDir, Inventory, Problem, Problems};
use crate::env::Env;
use crate::exec::gitlab::calls::{self, MergeRequestInfo};
use crate::exec::gitlab::GitLab;
use crate::plan::history;
use crate::plan::note::{self, Change, CommitLine, EnvPlan, FileChange, PlannedRef, PLAN_MARKER};
use crate::plan::release::{ReleaseId, Slot};
use crate::plan::render::{Target, Templates};
use crate::report::Reporter;

/// What both commands start from.
struct Review {
    gitlab: GitLab,
    project: String,
    merge_request: MergeRequestInfo,
}

impl Review {
    fn open(args: &MergeRequestArgs, env: &Env) -> Result<Review, CommandError> {
        let iid = match args.merge_request {
            Some(iid) => iid,
            None => env
                .merge_request_iid
                .as_deref()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    missing(
                        "which merge request? CI_MERGE_REQUEST_IID is not set",
                        "run in a merge request pipeline, or pass --merge-request IID",
                    )
                })?,
        };
        let project = management_project(None, env)?;
        let gitlab = connect(env)?;
        let merge_request =
            calls::merge_request(&gitlab, &project, iid).map_err(anyhow::Error::new)?;
        Ok(Review {
            gitlab,
            project,
            merge_request,
        })
    }

    /// The environments whose ref this request changes: those that differ
    /// from release.yml on the target branch (all of them when it is absent).
    fn changed<'a>(
        &self,
        requested: &'a ReleaseFile,
    ) -> Result<Vec<&'a RequestedRelease>, CommandError> {
        let target = calls::file_at(
            &self.gitlab,
            &self.project,
            crate::config::release::FILE_NAME,
            &self.merge_request.target_branch,
        )
        .map_err(anyhow::Error::new)?;
        let target =
            target.and_then(|text| ReleaseFile::parse("release.yml (target branch)", &text).ok());
        Ok(requested
            .environments
            .iter()
            .filter(|r| target.as_ref().and_then(|t| t.get(&r.env)).map(|t| &t.tag) != Some(&r.tag))
            .collect())
    }

    fn note(&self, body: &str) -> Result<(), CommandError> {
        calls::upsert_note(
            &self.gitlab,
            &self.project,
            self.merge_request.iid,
            PLAN_MARKER,
            body,
        )
        .map_err(|e| CommandError::Failed(anyhow::Error::new(e)))
    }
}

pub fn check(args: &MergeRequestArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let review = Review::open(args, env)?;
    let iid = review.merge_request.iid;
    let mut problems = Vec::new();
    let diffs = calls::merge_request_diffs(&review.gitlab, &review.project, iid)
        .map_err(anyhow::Error::new)?;
    let mut outside: Vec<&str> = diffs
        .iter()
        .flat_map(|d| [d.old_path.as_str(), d.new_path.as_str()])
        .filter(|path| *path != crate::config::release::FILE_NAME)
        .collect();
    outside.sort_unstable();
    outside.dedup();
    for path in outside {
        problems.push(Problem {
            file: path.to_string(),
            line: None,
            column: None,
            key: String::new(),
            message:
                "this merge request changes it, but a release request may change only release.yml"
                    .into(),
            hint: "move other changes to a separate merge request for the platform team".into(),
        });
    }
    let mut requested = Vec::new();
    match AppDir::load(&args.app_dir.app_dir) {
        Err(invalid) => problems.extend(invalid.0),
        Ok(app_dir) => {
            for release in review.changed(&app_dir.release)? {
                let code = app_dir.app.code_repo.as_str();
                match calls::tag_commit(&review.gitlab, code, release.tag.as_str()).map_err(anyhow::Error::new)? {
                    Some(commit) => requested.push((release.env.to_string(), release.tag.to_string(), commit)),
                    None => problems.push(Problem {
                        file: crate::config::release::FILE_NAME.into(),
                        line: Some(release.mark.line),
                        column: Some(release.mark.column),
                        key: format!("environments.{}.ref", release.env),
                        message: format!("{} is not a tag of the code repository {code}", release.tag),
                        hint: format!("tag the commit in {code} and push the tag (git push origin TAG), then re-run"),
                    }),
                }
            }
        }
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        review.note(&note::check_failed_note(&lines))?;
        return Err(CommandError::Invalid(Problems(problems)));
    }
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", iid.to_string());
    outputs.write(env.dotenv.as_deref())?;
    let summary: Vec<String> = requested
        .iter()
        .map(|(env, tag, _)| format!("{env} → {tag}"))
        .collect();
    reporter.result(
        &format!(
            "check passed: !{iid} changes only release.yml; {}",
            if summary.is_empty() { "no environment changes".to_string() } else { summary.join(", ") }
        ),
        &json!({"ok": true, "merge_request": iid, "requested": requested.iter().map(|(e, t, c)| json!({"env": e, "ref": t, "commit": c})).collect::<Vec<_>>()}),
    );
    Ok(())
}

pub fn plan(args: &MergeRequestArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let app_dir = AppDir::load(&args.app_dir.app_dir)?;
    let inventory = match inventory_path(&args.inventory.inventory, env) {
        Some(path) => Some(Inventory::load(&path)?),
        None => None,
    };
    let review = Review::open(args, env)?;
    let records =
        calls::release_records(&review.gitlab, &review.project).map_err(anyhow::Error::new)?;
    let live = history::latest(records);
    let code = app_dir.app.code_repo.as_str();
    let mut plans = Vec::new();
    for release in review.changed(&app_dir.release)? {
        let tag = release.tag.as_str();
        let Some(commit) =
            calls::tag_commit(&review.gitlab, code, tag).map_err(anyhow::Error::new)?
        else {
            return Err(usage(
                &format!("{tag} is not a tag of the code repository {code}"),
                "berth check reports this too; push the tag, then re-run the pipeline",
            ));
        };
        let requested = PlannedRef {
            tag: tag.to_string(),
            commit,
        };
        let live_ref = live.get(release.env.as_str()).map(|r| PlannedRef {
            tag: r.tag.clone(),
            commit: r.commit.clone(),
        });
        let (commits, total_commits, files, total_files) = match &live_ref {
            Some(live_ref) if live_ref.commit != requested.commit => {
                let comparison =
                    calls::compare(&review.gitlab, code, &live_ref.commit, &requested.commit)
                        .map_err(anyhow::Error::new)?;
                summarize(comparison)
            }
            _ => (Vec::new(), 0, Vec::new(), 0),
        };
        let config_diff = match &inventory {
            Some(inventory) => config_diff(&app_dir, inventory, release, live_ref.as_ref())?,
            None => String::new(),
        };
        plans.push(EnvPlan {
            env: release.env.to_string(),
            live: live_ref,
            requested,
            commits,
            total_commits,
            files,
            total_files,
            config_diff,
        });
    }
    review.note(&note::plan_note(review.merge_request.iid, &plans))?;
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", review.merge_request.iid.to_string());
    outputs.write(env.dotenv.as_deref())?;
    let lines: Vec<String> = plans
        .iter()
        .map(|p| {
            format!(
                "{}: {} → {} ({} commits, {} files)",
                p.env,
                p.live.as_ref().map(|l| l.tag.as_str()).unwrap_or("nothing"),
                p.requested.tag,
                p.total_commits,
                p.total_files
            )
        })
        .collect();
    let planned: BTreeMap<&str, &PlannedRef> = plans
        .iter()
        .map(|p| (p.env.as_str(), &p.requested))
        .collect();
    reporter.result(
        &format!(
            "plan posted on !{}\n{}",
            review.merge_request.iid,
            lines.join("\n")
        ),
        &json!({"merge_request": review.merge_request.iid, "planned": planned}),
    );
    Ok(())
}

type Summary = (Vec<CommitLine>, usize, Vec<FileChange>, usize);

fn summarize(comparison: calls::Comparison) -> Summary {
    let total_commits = comparison.commits.len();
    let commits = comparison
        .commits
        .iter()
        .rev()
        .take(note::MAX_COMMITS)
        .map(|c| CommitLine {
            short_id: c.short_id.clone(),
            title: c.title.clone(),
            author: c.author_name.clone(),
        })
        .collect();
    let total_files = comparison.diffs.len();
    let files = comparison
        .diffs
        .iter()
        .take(note::MAX_FILES)
        .map(|d| {
            let change = if d.new_file {
                Change::Added
            } else if d.deleted_file {
                Change::Deleted
            } else if d.renamed_file {
                Change::Renamed
            } else {
                Change::Modified
            };
            FileChange {
                change,
                path: d.new_path.clone(),
                old_path: d.renamed_file.then(|| d.old_path.clone()),
            }
        })
        .collect();
    (commits, total_commits, files, total_files)
}

/// The rendered configuration of the live release against the requested
/// one, both rendered into the same slot so that only real changes show.
fn config_diff(
    app_dir: &AppDir,
    inventory: &Inventory,
    release: &RequestedRelease,
    live: Option<&PlannedRef>,
) -> Result<String, CommandError> {
    let app = &app_dir.app;
    let app_env = app
        .environment(&release.env)
        .expect("AppDir checked the environment");
    let Some(host) = inventory.host(&app_env.host) else {
        return Ok(String::new());
    };
    let templates = Templates::embedded();
    let render = |tag: &crate::config::values::GitTag| -> Result<Vec<crate::plan::render::RenderedFile>, CommandError> {
        let id = ReleaseId::new(tag, None);
        templates
            .render(&Target { app, env: app_env, host, release: &id, slot: Slot::Blue, backup: Some(Slot::Green) })
            .map_err(|e| CommandError::Failed(anyhow::Error::new(e)))
    };
    let new_files = render(&release.tag)?;
    let old_files = match live.and_then(|l| l.tag.parse::<crate::config::values::GitTag>().ok()) {
        Some(tag) => render(&tag)?,
        None => Vec::new(),
    };
    let mut diff = String::new();
    for file in &new_files {
        let old = old_files
            .iter()
            .find(|f| f.name == file.name)
            .map(|f| f.contents.as_str())
            .unwrap_or("");
        if old != file.contents {
            diff.push_str(
                &TextDiff::from_lines(old, &file.contents)
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("a/{}", file.name), &format!("b/{}", file.name))
                    .to_string(),
            );
        }
    }
    Ok(diff)
}
