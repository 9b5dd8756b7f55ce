//! `berth restart`: restarts an environment without downtime. The active
//! release starts afresh in the idle slot, is health-checked, and takes
//! over; the containers it replaces stay warm as the backup.

use anyhow::Context;
use serde_json::json;

use super::deploy::finish;
use super::target::{lock_env, now_utc, observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::RestartArgs;
use crate::env::Env;
use crate::exec::apply::apply;
use crate::exec::remote::Remote;
use crate::plan::deploy;
use crate::plan::release::Slot;
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
    let release = target.release(usize::MAX, t.health_timeout, &now);
    let layout = target.layout();
    let result = runtime()?.block_on(async {
        let remote = Remote::connect(target.host(), &target.ssh_key).await?;
        let lock = lock_env(&remote, &layout).await?;
        let observed = observe(&remote, &target).await?;
        let Some(active) = observed.state.active.clone() else {
            return Err(CommandError::Usage {
                message: format!("nothing runs in {} yet", target.env),
                hint: "deploy a release first".into(),
            });
        };
        let plan = deploy::restart(&release, &observed)
            .expect("an active release was observed")
            .context("render the release configuration")?;
        if dry_run {
            reporter.result(
                &plan.to_string(),
                &json!({ "ok": true, "dry_run": true, "plan": plan.to_string() }),
            );
            return Ok((active.tag, None));
        }
        apply(&remote, &plan, None, reporter)
            .await
            .map_err(CommandError::Stopped)?;
        drop(lock);
        let _ = remote.close().await;
        Ok((active.tag, Some(active.slot.other())))
    });
    let (tag, result): (String, Result<Option<Slot>, CommandError>) = match result {
        Ok((tag, slot)) => (tag.to_string(), Ok(slot)),
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
