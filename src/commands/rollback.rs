//! `berth rollback`: switch an environment to its warm backup slot.

use serde_json::json;

use super::deploy::{deploy_target, Options};
use super::target::{lock_env, now_utc, observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::RollbackArgs;
use crate::config::values::{GitTag, ScalarValue};
use crate::env::Env;
use crate::exec::apply::apply;
use crate::exec::remote::Remote;
use crate::plan::deploy;
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
        return deploy_target(&target, &tag, None, None, options, reporter).map(|_| ());
    }
    let now = now_utc();
    let release = target.release(0, t.health_timeout, &now);
    let layout = target.layout();
    runtime()?.block_on(async {
        let remote = Remote::connect(target.host(), &target.ssh_key).await?;
        let _lock = lock_env(&remote, &layout).await?;
        let observed = observe(&remote, &target).await?;
        let plan = deploy::rollback(&release, &observed).map_err(|e| CommandError::Usage {
            message: e.to_string(),
            hint: "a rollback switches to the previous release, which exists after a second deploy".into(),
        })?;
        if dry_run {
            reporter.result(&plan.to_string(), &json!({ "ok": true, "dry_run": true, "plan": plan.to_string() }));
            return Ok(());
        }
        apply(&remote, &plan, None, reporter)
            .await
            .map_err(CommandError::Stopped)?;
        let backup = observed.state.backup.expect("the plan checked the backup");
        let url = target.url();
        reporter.result(
            &format!("{} ({}) is live again in {}: {url}", backup.tag, backup.slot, target.env),
            &json!({ "ok": true, "env": target.env, "tag": backup.tag, "slot": backup.slot, "url": url }),
        );
        Ok(())
    })
}
