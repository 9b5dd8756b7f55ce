//! `berth rollback`: switch an environment to its warm backup slot.

use serde_json::json;

use super::deploy::{deploy_target, finish, Options};
use super::gitlab::history_access;
use super::gitlab::project_path;
use super::report::record_release;
use super::target::{lock_observe_plan_apply, now_utc, EnvTarget};
use super::CommandError;
use crate::cli::RollbackArgs;
use crate::config::values::{GitTag, ScalarValue};
use crate::env::Env;
use crate::exec::gitlab::calls;
use crate::plan::deploy;
use crate::plan::release::Slot;
use crate::report::records::NewRecord;
use crate::report::Reporter;

pub fn run(
    args: &RollbackArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let t = &args.target;
    let target = EnvTarget::load(&t.app_dir, &t.access, &t.env, &t.templates, env)?;
    if let Some(to) = &args.to {
        // An older release still on the host goes through the whole
        // health-checked deploy path, without syncing code.
        let tag = GitTag::parse(to).map_err(|e| CommandError::Usage {
            message: format!("--to: {}", e.message),
            hint: e.hint,
        })?;
        let options = Options {
            keep: usize::MAX,
            health_timeout_secs: t.health_timeout,
            dry_run,
        };
        let result = deploy_target(&target, &tag, None, None, options, reporter);
        if dry_run {
            return result.map(|_| ());
        }
        if let Ok(slot) = &result {
            record_rollback(env, &target, &tag, None, *slot, reporter)?;
        }
        return finish(
            &target,
            "rollback",
            tag.as_str(),
            None,
            result,
            args.outcome.as_deref(),
            env,
        );
    }
    let now = now_utc();
    let backup = lock_observe_plan_apply(&target, None, dry_run, reporter, async |_, observed| {
        // The backup is probed with its own release's health check.
        let settings = observed
            .state
            .backup
            .as_ref()
            .map(|b| observed.settings_of(&b.release))
            .unwrap_or_default();
        let release = target.release(0, t.health_timeout, &now, &settings);
        deploy::rollback(&release, observed).map_err(|e| CommandError::Usage {
            message: e.to_string(),
            hint: "a rollback switches to the previous release, which exists after a second deploy"
                .into(),
        })
    })
    .map(|applied| applied.and_then(|a| a.observed.state.backup));
    let backup = match backup {
        Ok(Some(backup)) => backup,
        Ok(None) => return Ok(()),
        Err(e) => {
            let outcome = args.outcome.as_deref();
            return finish(&target, "rollback", "previous", None, Err(e), outcome, env);
        }
    };
    // GitLab is called outside the async runtime: its client blocks.
    record_rollback(
        env,
        &target,
        &backup.tag,
        Some(backup.release.as_str()),
        Some(backup.slot),
        reporter,
    )?;
    let slot = Ok(Some(backup.slot));
    finish(
        &target,
        "rollback",
        backup.tag.as_str(),
        None,
        slot,
        args.outcome.as_deref(),
        env,
    )?;
    let url = target.url();
    reporter.result(
        &format!("{} ({}) is live again in {}: {url}", backup.tag, backup.slot, target.env),
        &json!({ "ok": true, "env": target.env, "tag": backup.tag, "slot": backup.slot, "url": url }),
    );
    Ok(())
}

/// Adds the rollback to the release history in GitLab, when the job can
/// reach it, so that plans show what really serves. The commit comes from
/// the earlier record of the same release.
fn record_rollback(
    env: &Env,
    target: &EnvTarget,
    tag: &GitTag,
    release: Option<&str>,
    slot: Option<Slot>,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let Some(access) = history_access(env) else {
        return Ok(());
    };
    let (gitlab, project) = access?;
    let history = calls::release_history(&gitlab, &project)
        .map_err(|e| CommandError::Failed(anyhow::Error::new(e)))?;
    let earlier = history
        .records
        .iter()
        .filter(|r| r.env == target.env.as_str())
        .filter(|r| match release {
            Some(id) => r.release == id,
            None => r.tag == tag.as_str(),
        })
        .max_by_key(|r| r.number);
    let new = NewRecord {
        env: target.env.to_string(),
        tag: tag.to_string(),
        commit: earlier.and_then(|r| r.commit.clone()),
        release: release
            .map(str::to_string)
            .or_else(|| earlier.map(|r| r.release.clone()))
            .unwrap_or_else(|| tag.to_string()),
        host: target.host().name.to_string(),
        slot: slot.map(|s| s.name().to_string()),
        time: now_utc(),
        action: "rollback",
    };
    let at = env.commit_sha.as_deref().unwrap_or("main");
    let name = record_release(&gitlab, &project_path(env)?, at, &new, env, None)?;
    reporter.info(&format!("recorded the rollback as {name}"));
    Ok(())
}
