//! `berth restart`: restarts an environment without downtime. The active
//! release starts afresh in the idle slot, is health-checked, and takes
//! over; the containers it replaces stay warm as the backup.

use anyhow::Context;
use serde_json::json;

use super::deploy::finish;
use super::target::{lock_observe_plan_apply, now_utc, EnvTarget};
use super::CommandError;
use crate::cli::RestartArgs;
use crate::env::Env;
use crate::plan::deploy;
use crate::report::Reporter;

pub fn run(
    args: &RestartArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let t = &args.target;
    let target = EnvTarget::load(&t.app_dir, &t.access, &t.env, &t.templates, env)?;
    let now = now_utc();
    let applied = lock_observe_plan_apply(&target, None, dry_run, reporter, async |_, observed| {
        // The active release restarts with its own berth.yml.
        let settings = observed
            .state
            .active
            .as_ref()
            .map(|a| observed.settings_of(&a.release))
            .unwrap_or_default();
        let release = target.release(usize::MAX, t.health_timeout, &now, &settings);
        let plan = deploy::restart(&release, observed).ok_or_else(|| CommandError::Usage {
            message: format!("nothing runs in {} yet", target.env),
            hint: "deploy a release first".into(),
        })?;
        Ok(plan.context("render the release configuration")?)
    });
    // The restarted release moves to the slot that was idle.
    let (tag, result) = match applied {
        Ok(applied) => {
            let active = applied.and_then(|a| a.observed.state.active);
            let tag = active
                .as_ref()
                .map_or("unknown".to_string(), |a| a.tag.to_string());
            (tag, Ok(active.map(|a| a.slot.other())))
        }
        Err(e) => ("unknown".to_string(), Err(e)),
    };
    if dry_run {
        return result.map(|_| ());
    }
    let slot = result.as_ref().ok().copied().flatten();
    finish(
        &target,
        "restart",
        &tag,
        None,
        result,
        args.outcome.as_deref(),
        env,
    )?;
    let url = target.url();
    reporter.result(
        &format!(
            "{tag} restarted in {} ({}): {url}",
            target.env,
            slot.map_or("?", |s| s.name())
        ),
        &json!({ "ok": true, "env": target.env, "tag": tag, "slot": slot, "url": url }),
    );
    Ok(())
}
