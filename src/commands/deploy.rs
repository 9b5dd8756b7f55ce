//! `berth deploy`: observe the host, plan, apply, report.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::target::{lock_observe_plan_apply, now_utc, read_settings, Applied, EnvTarget};
use super::CommandError;
use crate::cli::DeployArgs;
use crate::config::settings::AppSettings;
use crate::config::values::GitTag;
use crate::env::Env;
use crate::plan::deploy::{self, Step};
use crate::plan::release::Slot;
use crate::report::dotenv::Outputs;
use crate::report::outcome::Outcome;
use crate::report::Reporter;

pub fn run(
    args: &DeployArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let t = &args.target;
    let target = EnvTarget::load(&t.app_dir, &t.access, &t.env, &t.templates, env)?;
    let code = args
        .code
        .clone()
        .unwrap_or_else(|| t.app_dir.app_dir.join("codes"));
    let options = Options {
        keep: args.keep,
        health_timeout_secs: t.health_timeout,
        dry_run,
    };
    let tag = target
        .app_dir
        .release
        .get(&target.env)
        .map(|requested| requested.tag.clone())
        .ok_or_else(|| CommandError::Usage {
            message: format!("release.yml requests no tag for environment {}", target.env),
            hint: format!(
                "add `{}: {{ ref: TAG }}` under environments in release.yml",
                target.env
            ),
        })?;
    if !code.is_dir() {
        return Err(CommandError::Usage {
            message: format!("code checkout {} does not exist", code.display()),
            hint: "run `berth checkout` first, or pass --code DIR".into(),
        });
    }
    let commit = args.commit.as_deref();
    if let Some(commit) = commit {
        if commit.len() != 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CommandError::Usage {
                message: format!("--commit {commit:?} is not a full commit id"),
                hint: "pass the 40-character id berth checkout wrote as BERTH_<ENV>_COMMIT".into(),
            });
        }
    }
    let result = deploy_target(&target, &tag, commit, Some(&code), options, reporter);
    if dry_run {
        return result.map(|_| ());
    }
    finish(
        &target,
        "deploy",
        tag.as_str(),
        commit,
        result,
        args.outcome.as_deref(),
        env,
    )
}

/// Ends a deploy, rollback or restart: writes the outcome file for `berth
/// report` (also on failure) and, on success, the job outputs
/// `BERTH_DEPLOY_ENV`, `_URL`, `_REF`, `_RELEASE` and `_SLOT`.
pub(super) fn finish(
    target: &EnvTarget,
    action: &'static str,
    tag: &str,
    commit: Option<&str>,
    result: Result<Option<Slot>, CommandError>,
    outcome_file: Option<&Path>,
    env: &Env,
) -> Result<(), CommandError> {
    if let Some(path) = outcome_file {
        outcome_of(target, action, tag, commit, &result).write(path)?;
    }
    let slot = result?;
    let mut outputs = Outputs::default();
    outputs.set("BERTH_DEPLOY_ENV", target.env.as_str());
    outputs.set("BERTH_DEPLOY_URL", target.url());
    outputs.set("BERTH_DEPLOY_REF", tag);
    if let Ok(parsed) = tag.parse::<GitTag>() {
        let release = crate::plan::release::ReleaseId::new(&parsed, commit);
        outputs.set("BERTH_DEPLOY_RELEASE", release.as_str());
    }
    if let Some(slot) = slot {
        outputs.set("BERTH_DEPLOY_SLOT", slot.name());
    }
    Ok(outputs.write(env.dotenv.as_deref())?)
}

/// The outcome file of a deploy, rollback or restart of `target`.
fn outcome_of(
    target: &EnvTarget,
    action: &str,
    tag: &str,
    commit: Option<&str>,
    result: &Result<Option<Slot>, CommandError>,
) -> Outcome {
    let (ok, slot, failed_step, log_tail) = match result {
        Ok(slot) => (true, slot.map(|s| s.name().to_string()), None, Vec::new()),
        Err(error) => {
            let step = match error {
                CommandError::Stopped(failed) => failed.step.clone(),
                _ => "before the first step".to_string(),
            };
            let text = match error {
                CommandError::Stopped(failed) => format!("{:#}", failed.source),
                other => other.to_string(),
            };
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let tail = lines[lines.len().saturating_sub(30)..].to_vec();
            (false, None, Some(step), tail)
        }
    };
    Outcome {
        action: action.to_string(),
        env: target.env.to_string(),
        tag: tag.to_string(),
        commit: commit.map(str::to_string),
        release: tag
            .parse::<GitTag>()
            .ok()
            .map(|tag| crate::plan::release::ReleaseId::new(&tag, commit).to_string()),
        host: target.host().name.to_string(),
        slot,
        url: target.url(),
        ok,
        failed_step,
        log_tail,
        time: now_utc(),
    }
}

/// How a deploy behaves, beyond what it deploys.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub keep: usize,
    pub health_timeout_secs: u64,
    pub dry_run: bool,
}

/// Releases `tag` to the target's environment, syncing its code from the
/// checkout `code`. Without a checkout, the release must already be on the
/// host (a rollback to an older release).
pub fn deploy_target(
    target: &EnvTarget,
    tag: &GitTag,
    commit: Option<&str>,
    code: Option<&Path>,
    options: Options,
    reporter: &Reporter,
) -> Result<Option<Slot>, CommandError> {
    // The checkout's berth.yml, checked before anything reaches the host.
    let checkout_settings = match code {
        Some(code) => {
            check_code_size(target, code, reporter)?;
            Some(AppSettings::load(code, &target.app_dir.app)?)
        }
        None => None,
    };
    let now = now_utc();
    let applied = lock_observe_plan_apply(
        target,
        code,
        options.dry_run,
        reporter,
        async |remote, observed| {
            let id = deploy::release_id(tag, commit, observed);
            // Without a checkout, the release on the host brings its own.
            let settings = match &checkout_settings {
                Some(settings) => settings.clone(),
                None => read_settings(remote, target, &id)
                    .await?
                    .unwrap_or_default(),
            };
            let release =
                target.release(options.keep, options.health_timeout_secs, &now, &settings);
            let plan = deploy::deploy(&release, tag, &id, observed)
                .context("render the release configuration")?;
            if code.is_none()
                && plan
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::SyncCode { .. }))
            {
                return Err(CommandError::Usage {
                message: format!("release {tag} is not on host {}", target.host().name),
                hint: "only releases still on the host can be rolled back to; deploy older tags through release.yml".into(),
            });
            }
            Ok(plan)
        },
    )?;
    let Some(Applied { plan, .. }) = applied else {
        return Ok(None);
    };
    let url = target.url();
    reporter.result(
        &format!("{tag} is live in {}: {url}", target.env),
        &json!({ "ok": true, "env": target.env, "tag": tag, "url": url }),
    );
    let active = plan.steps.iter().rev().find_map(|step| match step {
        Step::RecordState { state, .. } => state.active.as_ref().map(|a| a.slot),
        _ => None,
    });
    Ok(active)
}

/// Counts the checkout as the sync would copy it and refuses a release
/// over `limits.code` before anything reaches the host.
fn check_code_size(
    target: &EnvTarget,
    code: &Path,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let measured = crate::exec::tree::measure(code)
        .with_context(|| format!("measure the code checkout {}", code.display()))?;
    let limits = &target.app_dir.app.limits.code;
    reporter.detail(&format!(
        "code to sync: {measured} (limits.code: {}, {} files)",
        limits.size.php(),
        limits.files
    ));
    crate::plan::code::check(
        &target.app_file.display().to_string(),
        limits,
        &measured,
        &format!("the code checkout {}", code.display()),
    )?;
    Ok(())
}
