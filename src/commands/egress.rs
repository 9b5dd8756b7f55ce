//! `berth egress apply`: the host side of an app environment's egress
//! policy, run as root by a deploy (the inventory's `root_berth`).
//! Every argument is validated here again: the caller is the deploy user.

use crate::cli::EgressApplyArgs;
use crate::config::app::bounds::MAIL_PER_MINUTE;
use crate::config::values::{bounded_integer, quoted, AbsPath, AppId, EnvName, Port, ScalarValue};
use crate::env::Env;
use crate::exec::boot_record::{self, Kind};
use crate::exec::firewall;
use crate::plan::egress::{restore_input, Destination, Firewall, Policy};
use crate::report::Reporter;

use super::CommandError;

pub fn apply(
    args: &EgressApplyArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let policy = policy(args)?;
    let base_dir = args
        .base_dir
        .as_deref()
        .map(AbsPath::parse)
        .transpose()
        .map_err(|e| CommandError::Usage {
            message: format!("--base-dir: {}", e.message),
            hint: e.hint,
        })?;
    let _lock = if dry_run {
        None
    } else {
        Some(firewall::lock()?)
    };
    let observed = Firewall::parse(&firewall::list()?);
    let input = restore_input(&policy, &observed);
    if dry_run {
        reporter.result(
            &input,
            &serde_json::json!({"app": policy.app.to_string(), "env": policy.env.to_string(), "iptables_restore": input}),
        );
        return Ok(());
    }
    firewall::restore(&input)?;
    if let Some(base) = &base_dir {
        // What `berth host boot` sets again after a reboot.
        let mut record = policy.apply_args();
        record.extend(["--base-dir".to_string(), base.to_string()]);
        let env_dir = base.join(&format!("{}/{}", policy.app, policy.env));
        boot_record::write(&env_dir, env.sudo_uid, Kind::Egress, &record)?;
    }
    reporter.info(&format!(
        "egress policy of {}/{} set: {} allowed destination(s) ({})",
        policy.app,
        policy.env,
        policy.destinations(),
        policy.chain()
    ));
    Ok(())
}

fn policy(args: &EgressApplyArgs) -> Result<Policy, CommandError> {
    let usage = |message: String, hint: &str| CommandError::Usage {
        message,
        hint: hint.to_string(),
    };
    let app =
        AppId::parse(&args.app).map_err(|e| usage(format!("--app: {}", e.message), &e.hint))?;
    let env =
        EnvName::parse(&args.env).map_err(|e| usage(format!("--env: {}", e.message), &e.hint))?;
    let slot_ports = args
        .slot_ports
        .iter()
        .map(|p| Port::parse(p).map_err(|e| usage(format!("--slot-port: {}", e.message), &e.hint)))
        .collect::<Result<Vec<_>, _>>()?;
    let allow = args
        .allow
        .iter()
        .map(|d| {
            d.parse::<Destination>().map_err(|e| {
                usage(
                    format!("--allow: {e}"),
                    "give ADDRESS:PORT, e.g. 203.0.113.10:443",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let per_minute = args
        .allow_per_minute
        .iter()
        .map(|item| {
            let bad = |why: String| {
                usage(
                    format!("--allow-per-minute: {why}"),
                    "give ADDRESS:PORT=N, N a whole number of connections a minute, e.g. 10.0.0.25:25=10",
                )
            };
            let (destination, rate) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("{} has no '=N'", quoted(item))))?;
            let destination = destination.parse::<Destination>().map_err(bad)?;
            let rate = bounded_integer("rate", rate, MAIL_PER_MINUTE.0, MAIL_PER_MINUTE.1).map_err(|e| bad(e.message))?;
            Ok((destination, rate as u32))
        })
        .collect::<Result<_, CommandError>>()?;
    Ok(Policy {
        app,
        env,
        slot_ports,
        allow,
        per_minute,
    })
}
