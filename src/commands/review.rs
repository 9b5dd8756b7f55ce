//! `berth check` and `berth plan`: the merge request pipeline of a release
//! request. Both judge exactly the pipeline's commit (`CI_COMMIT_SHA`, which
//! must be the merge request's head), read `release.yml` and `app.yml` from
//! that commit with git, and reach the code repository over git; both keep
//! berth's one note on the merge request up to date. They run without
//! deploy secrets.

use std::collections::BTreeMap;

use serde_json::json;
use similar::TextDiff;

use super::approval::{
    app_dir_at, is_commit_id, local_repo, pipeline_commit, release_at, CodeRemote,
};
use super::gitlab::{connect, keep_note, merge_request_iid, project_path};
use super::{inventory_path, CommandError};
use crate::cli::MergeRequestArgs;
use crate::config::release::RequestedRelease;
use crate::config::settings::{self, AppSettings};
use crate::config::values::ProjectPath;
use crate::config::values::{CommitId, GitTag};
use crate::config::{AppDir, Inventory, Problems};
use crate::env::Env;
use crate::exec::git::{self, FileDelta, LocalRepo};
use crate::exec::gitlab::calls::{self, MergeRequestInfo};
use crate::exec::gitlab::GitLab;
use crate::plan::release::{ReleaseId, Slot};
use crate::plan::render::{Target, Templates};
use crate::plan::review::{
    change_problems, changed_environments, head_problem, pinned_commit_problem,
};
use crate::report::dotenv::Outputs;
use crate::report::note::{self, Change, CommitLine, EnvPlan, FileChange, PlannedRef, PLAN_MARKER};
use crate::report::records;
use crate::report::Reporter;

/// What both commands observe: the merge request as GitLab sees it, and
/// the pipeline's own commit and the request's base, read with git.
struct Review {
    gitlab: GitLab,
    project: ProjectPath,
    merge_request: MergeRequestInfo,
    repo: LocalRepo,
    /// `CI_COMMIT_SHA`: the one commit this pipeline judges.
    head: String,
}

impl Review {
    fn open(args: &MergeRequestArgs, env: &Env, command: &str) -> Result<Review, CommandError> {
        let iid = merge_request_iid(args.merge_request, env)?;
        let head = pipeline_commit(env, command)?;
        let project = project_path(env)?;
        let repo = local_repo(&args.app_dir.app_dir)?;
        let gitlab = connect(env)?;
        let merge_request =
            calls::merge_request(&gitlab, project.as_str(), iid).map_err(anyhow::Error::new)?;
        Ok(Review {
            gitlab,
            project,
            merge_request,
            repo,
            head,
        })
    }

    /// Stops when the merge request's head is not this pipeline's commit:
    /// the verdict would be about something else than what can be merged.
    fn require_current_head(&self) -> Result<(), CommandError> {
        match head_problem(
            &self.head,
            self.merge_request.sha.as_deref(),
            self.merge_request.iid,
        ) {
            Some(problem) => Err(CommandError::Invalid(Problems(vec![problem]))),
            None => Ok(()),
        }
    }

    /// The commit the request's diff starts from (GitLab's diff base).
    fn base(&self) -> Result<String, CommandError> {
        self.merge_request
            .diff_refs
            .as_ref()
            .and_then(|refs| refs.base_sha.clone())
            .filter(|sha| is_commit_id(sha))
            .ok_or_else(|| {
                CommandError::Failed(anyhow::anyhow!(
                    "GitLab gave no diff base for merge request !{}; re-run the job when the merge request's diff is ready",
                    self.merge_request.iid
                ))
            })
    }

    /// Keeps berth's one note on the merge request: observes the note
    /// berth's user wrote, plans the write, then applies it, or with
    /// `--dry-run` prints it.
    fn note(&self, body: &str, dry_run: bool, reporter: &Reporter) -> Result<(), CommandError> {
        keep_note(
            &self.gitlab,
            &self.project,
            self.merge_request.iid,
            PLAN_MARKER,
            body,
            dry_run,
            reporter,
        )
    }
}

pub fn check(
    args: &MergeRequestArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let review = Review::open(args, env, "check")?;
    review.require_current_head()?;
    let iid = review.merge_request.iid;
    let base = review.base()?;
    let changes = review
        .repo
        .changes(&base, &review.head)
        .map_err(|e| CommandError::Failed(e.context("compare the request with its base")))?;
    let mut problems = change_problems(&changes);
    let mut requested = Vec::new();
    match app_dir_at(&review.repo, &review.head)? {
        Err(invalid) => problems.extend(invalid.0),
        Ok(app_dir) => {
            let before = release_at(&review.repo, &base)?;
            let code = app_dir.app.code_repo.as_str();
            let remote = CodeRemote::new(&review.gitlab, env, code);
            for release in changed_environments(before.as_ref(), &app_dir.release) {
                let now = git::remote_tag_commit(&remote.url, remote.auth, &release.tag)
                    .map_err(CommandError::Failed)?;
                match pinned_commit_problem(release, code, now.as_deref()) {
                    Some(problem) => problems.push(problem),
                    None => requested.push((
                        release.env.to_string(),
                        release.tag.to_string(),
                        now.unwrap_or_default(),
                    )),
                }
            }
        }
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        review.note(&note::check_failed_note(&lines), dry_run, reporter)?;
        return Err(CommandError::Invalid(Problems(problems)));
    }
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", iid.to_string());
    if !dry_run {
        outputs.write(env.dotenv.as_deref())?;
    }
    let summary: Vec<String> = requested
        .iter()
        .map(|(env, tag, commit)| format!("{env} → {tag} at {commit}"))
        .collect();
    reporter.result(
        &format!(
            "check passed: !{iid} at {} changes only release.yml; {}",
            review.head,
            if summary.is_empty() { "no environment changes".to_string() } else { summary.join(", ") }
        ),
        &json!({"ok": true, "merge_request": iid, "commit": review.head, "requested": requested.iter().map(|(e, t, c)| json!({"env": e, "ref": t, "commit": c})).collect::<Vec<_>>()}),
    );
    Ok(())
}

pub fn plan(
    args: &MergeRequestArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let inventory = match inventory_path(&args.inventory.inventory, env) {
        Some(path) => Some(Inventory::load(&path)?),
        None => None,
    };
    let review = Review::open(args, env, "plan")?;
    review.require_current_head()?;
    let base = review.base()?;
    // A request check refuses gets no plan: its app.yml (code repository,
    // limits) is not the approved one. check's note says why.
    let changes = review
        .repo
        .changes(&base, &review.head)
        .map_err(|e| CommandError::Failed(e.context("compare the request with its base")))?;
    let refused = change_problems(&changes);
    if !refused.is_empty() {
        return Err(CommandError::Invalid(Problems(refused)));
    }
    let app_dir = app_dir_at(&review.repo, &review.head)??;
    let before = release_at(&review.repo, &base)?;
    let history = calls::release_history(&review.gitlab, review.project.as_str())
        .map_err(anyhow::Error::new)?;
    let live = records::latest(&history.records);
    let code = app_dir.app.code_repo.as_str();
    let remote = CodeRemote::new(&review.gitlab, env, code);
    let changed = changed_environments(before.as_ref(), &app_dir.release);

    // Everything the comparisons need, in one fetch of the code repository.
    let live_tags: Vec<GitTag> = changed
        .iter()
        .filter_map(|r| live.get(r.env.as_str()))
        .filter_map(|record| record.tag.parse().ok())
        .collect();
    let live_commits: Vec<CommitId> = changed
        .iter()
        .filter_map(|r| live.get(r.env.as_str()))
        .filter_map(|record| record.commit.as_deref()?.parse().ok())
        .collect();
    let tags: Vec<&GitTag> = changed.iter().map(|r| &r.tag).chain(&live_tags).collect();
    let fetched = git::fetch_for_compare(
        &remote.url,
        remote.auth,
        &tags,
        &live_commits.iter().collect::<Vec<_>>(),
    )
    .map_err(CommandError::Failed)?;

    let mut plans = Vec::new();
    for release in changed {
        let mut warnings = Vec::new();
        let now = git::remote_tag_commit(&remote.url, remote.auth, &release.tag)
            .map_err(CommandError::Failed)?;
        if let Some(problem) = pinned_commit_problem(release, code, now.as_deref()) {
            warnings.push(problem.message);
        }
        let requested = PlannedRef {
            tag: release.tag.to_string(),
            commit: release
                .commit
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "not pinned".to_string()),
        };
        let live_record = live.get(release.env.as_str());
        let live_ref = live_record.map(|r| PlannedRef {
            tag: r.tag.clone(),
            commit: r.commit.clone().unwrap_or_else(|| "unknown".to_string()),
        });
        let live_commit: Option<CommitId> =
            live_record.and_then(|r| r.commit.as_deref()?.parse().ok());
        let (commits, total_commits, files, total_files) = match (&live_commit, &release.commit) {
            (Some(from), Some(to)) if from != to => {
                match fetched.compare(from, to).map_err(CommandError::Failed)? {
                    Some(comparison) => summarize(comparison),
                    None => {
                        warnings.push(format!(
                            "the live commit {from} or the requested commit {to} is not in the code repository, so the commits between them cannot be listed"
                        ));
                        (Vec::new(), 0, Vec::new(), 0)
                    }
                }
            }
            (None, Some(_)) if live_record.is_some() => {
                warnings.push("the live release's commit is not recorded, so the commits between them cannot be listed".to_string());
                (Vec::new(), 0, Vec::new(), 0)
            }
            _ => (Vec::new(), 0, Vec::new(), 0),
        };
        // Each side's berth.yml, from the code repository at its commit.
        let new_settings = settings_at(&fetched, release.commit.as_ref(), &app_dir.app)?;
        let old_settings = settings_at(&fetched, live_commit.as_ref(), &app_dir.app)?;
        if new_settings.problems.is_some() {
            warnings.push(
                "the requested commit's berth.yml is invalid, so the deploy will refuse it (its problems are at the top of the configuration diff)".to_string(),
            );
        }
        let config_diff = match &inventory {
            Some(inventory) => config_diff(
                &app_dir,
                inventory,
                release,
                live_ref.as_ref(),
                (&old_settings, &new_settings),
            )?,
            None => settings_diff(&old_settings, &new_settings),
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
            warnings,
        });
    }
    let body = note::plan_note(review.merge_request.iid, &plans, &history.ignored);
    review.note(&body, dry_run, reporter)?;
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MERGE_REQUEST", review.merge_request.iid.to_string());
    if !dry_run {
        outputs.write(env.dotenv.as_deref())?;
    }
    let lines: Vec<String> = plans
        .iter()
        .map(|p| {
            format!(
                "{}: {} → {} at {} ({} commits, {} files)",
                p.env,
                p.live.as_ref().map(|l| l.tag.as_str()).unwrap_or("nothing"),
                p.requested.tag,
                p.requested.commit,
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
            "plan {} on !{}\n{}",
            if dry_run { "made (not posted: dry run)" } else { "posted" },
            review.merge_request.iid,
            lines.join("\n")
        ),
        &json!({"merge_request": review.merge_request.iid, "commit": review.head, "planned": planned, "ignored_records": history.ignored}),
    );
    Ok(())
}

type Summary = (Vec<CommitLine>, usize, Vec<FileChange>, usize);

fn summarize(comparison: git::Comparison) -> Summary {
    let total_commits = comparison.commits.len();
    let commits = comparison
        .commits
        .iter()
        .take(note::MAX_COMMITS)
        .map(|c| CommitLine {
            short_id: c.id.chars().take(8).collect(),
            title: c.title.clone(),
            author: c.author.clone(),
        })
        .collect();
    let total_files = comparison.files.len();
    let files = comparison
        .files
        .iter()
        .take(note::MAX_FILES)
        .map(|d| {
            let change = match d.change {
                FileDelta::Added => Change::Added,
                FileDelta::Deleted => Change::Deleted,
                FileDelta::Renamed => Change::Renamed,
                FileDelta::Modified => Change::Modified,
            };
            FileChange {
                change,
                path: d.new_path.clone(),
                old_path: (d.change == FileDelta::Renamed).then(|| d.old_path.clone()),
            }
        })
        .collect();
    (commits, total_commits, files, total_files)
}

/// One side's `berth.yml`: its text as committed (empty without one), what
/// it says (the default when it is absent or invalid), and its problems.
struct SettingsAt {
    text: String,
    settings: AppSettings,
    problems: Option<String>,
}

/// Reads `berth.yml` at `commit` of the fetched code repository and
/// validates it as a deploy will (without the checkout's directory checks).
fn settings_at(
    fetched: &git::Fetched,
    commit: Option<&CommitId>,
    app: &crate::config::AppFile,
) -> Result<SettingsAt, CommandError> {
    let none = SettingsAt {
        text: String::new(),
        settings: AppSettings::default(),
        problems: None,
    };
    let Some(commit) = commit else {
        return Ok(none);
    };
    let limit = crate::config::yaml::MAX_FILE_BYTES;
    let found = fetched
        .file(commit, settings::FILE_NAME, limit)
        .map_err(CommandError::Failed)?;
    let invalid = |why: String| SettingsAt {
        text: String::new(),
        settings: AppSettings::default(),
        problems: Some(why),
    };
    Ok(match found {
        crate::plan::review::FileAt::Missing => none,
        crate::plan::review::FileAt::NotRegular { .. } => invalid(format!(
            "{}: is not a regular file (a link?), which berth does not read",
            settings::FILE_NAME
        )),
        crate::plan::review::FileAt::TooLarge { size } => invalid(format!(
            "{}: file is {size} bytes, more than the {limit} bytes berth reads",
            settings::FILE_NAME
        )),
        crate::plan::review::FileAt::Regular { bytes, .. } => match String::from_utf8(bytes) {
            Err(_) => invalid(format!("{}: file is not UTF-8 text", settings::FILE_NAME)),
            Ok(text) => match AppSettings::parse(settings::FILE_NAME, &text, app) {
                Ok(settings) => SettingsAt {
                    text,
                    settings,
                    problems: None,
                },
                Err(problems) => SettingsAt {
                    text,
                    settings: AppSettings::default(),
                    problems: Some(problems.to_string()),
                },
            },
        },
    })
}

/// The requested `berth.yml`'s problems (as comment lines) and its diff
/// against the live one's, at the top of the configuration diff.
fn settings_diff(old: &SettingsAt, new: &SettingsAt) -> String {
    let mut diff = String::new();
    if let Some(problems) = &new.problems {
        for line in problems.lines() {
            diff.push_str(&format!("# {line}\n"));
        }
    }
    if old.text != new.text {
        diff.push_str(
            &TextDiff::from_lines(&old.text, &new.text)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("a/{}", settings::FILE_NAME),
                    &format!("b/{}", settings::FILE_NAME),
                )
                .to_string(),
        );
    }
    diff
}

/// The rendered configuration of the live release against the requested
/// one, both rendered into the same slot so that only real changes show,
/// each with its own `berth.yml`, whose own diff comes first.
fn config_diff(
    app_dir: &AppDir,
    inventory: &Inventory,
    release: &RequestedRelease,
    live: Option<&PlannedRef>,
    (old_settings, new_settings): (&SettingsAt, &SettingsAt),
) -> Result<String, CommandError> {
    let app = &app_dir.app;
    let app_env = app
        .environment(&release.env)
        .expect("AppDir checked the environment");
    let Some(host) = inventory.host(&app_env.host) else {
        return Ok(String::new());
    };
    let templates = Templates::embedded();
    let render = |tag: &crate::config::values::GitTag,
                  settings: &AppSettings|
     -> Result<Vec<crate::plan::render::RenderedFile>, CommandError> {
        let id = ReleaseId::new(tag, None);
        templates
            .render(&Target {
                app,
                env: app_env,
                host,
                release: &id,
                slot: Slot::Blue,
                backup: Some(Slot::Green),
                settings,
            })
            .map_err(|e| CommandError::Failed(anyhow::Error::new(e)))
    };
    let new_files = render(&release.tag, &new_settings.settings)?;
    let old_files = match live.and_then(|l| l.tag.parse::<crate::config::values::GitTag>().ok()) {
        Some(tag) => render(&tag, &old_settings.settings)?,
        None => Vec::new(),
    };
    let mut diff = settings_diff(old_settings, new_settings);
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
