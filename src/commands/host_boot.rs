//! `berth host boot`: run as root at boot, before Docker starts the slots
//! again (docs/host-runtime.md, "After a reboot"). Storage mounts and
//! egress rules are kernel state that a reboot loses, while the containers
//! (`restart: unless-stopped`) come back with dockerd: without this, a
//! slot would write into the empty directory under its storage mount
//! point, and reach any address.
//!
//! Observe: every app environment directory under the base directory and
//! the records root's last `storage ensure` and `egress apply` left there.
//! Plan: each record read back through the command line's own parser and
//! checked to speak for its own directory. Apply: the same commands, in
//! order, storage before egress.

use clap::Parser;

use crate::cli::{Cli, Command, EgressCommand, HostBootArgs, StorageCommand};
use crate::config::values::{AbsPath, AppId, EnvName, ScalarValue};
use crate::env::Env;
use crate::exec::boot_record::{self, Kind};
use crate::report::Reporter;

use super::CommandError;

/// One command to run again.
#[derive(Debug)]
enum Replay {
    Storage(crate::cli::StorageEnsureArgs),
    Egress(crate::cli::EgressApplyArgs),
}

pub fn run(
    args: &HostBootArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let base = AbsPath::parse(&args.base_dir).map_err(|e| CommandError::Usage {
        message: format!("--base-dir: {}", e.message),
        hint: e.hint,
    })?;
    let mut failed = Vec::new();
    let mut replays = Vec::new();
    for (app, env_name) in app_environments(&base)? {
        let env_dir = base.join(&format!("{app}/{env_name}"));
        for kind in [Kind::Storage, Kind::Egress] {
            let record = match boot_record::read(&env_dir, kind) {
                Ok(None) => continue,
                Ok(Some(record)) => record,
                Err(e) => {
                    failed.push(format!("{env_dir}: {e:#}"));
                    continue;
                }
            };
            match replay(&base, &app, &env_name, kind, &record) {
                Ok(r) => replays.push((env_dir.clone(), record, r)),
                Err(why) => failed.push(format!("{env_dir}/{}: {why}", kind.file_name())),
            }
        }
    }
    if dry_run {
        let lines: Vec<String> = replays
            .iter()
            .map(|(_, record, _)| format!("berth {}", record.join(" ")))
            .chain(failed.iter().map(|f| format!("skip: {f}")))
            .collect();
        reporter.result(
            &format!(
                "dry run, nothing was done; berth host boot would run:\n{}",
                lines.join("\n")
            ),
            &serde_json::json!({"dry_run": true, "commands": lines}),
        );
        return Ok(());
    }
    let mut done = 0;
    for (env_dir, _, replay) in &replays {
        let result = match replay {
            Replay::Storage(a) => super::storage::ensure(a, false, env, reporter),
            Replay::Egress(a) => super::egress::apply(a, false, env, reporter),
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => failed.push(format!("{env_dir}: {e:#}")),
        }
    }
    if failed.is_empty() {
        reporter.info(&format!(
            "host boot: {done} storage and egress record(s) under {base} set again"
        ));
        return Ok(());
    }
    Err(CommandError::HostNotReady {
        message: format!(
            "host boot: {done} record(s) set again, {} failed:\n{}",
            failed.len(),
            failed.join("\n")
        ),
        hint: "fix each and run `berth host boot` again (it is idempotent); until then those apps' containers must stay stopped".to_string(),
    })
}

/// Every `<base>/<app>/<env>` whose names are an app id and an
/// environment name, sorted; anything else there is none of berth's.
fn app_environments(base: &AbsPath) -> Result<Vec<(AppId, EnvName)>, CommandError> {
    let mut found = Vec::new();
    let read = |dir: &str| -> Result<Vec<String>, CommandError> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("read {dir}: {e}"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    };
    for app in read(base.as_str())? {
        let Ok(app_id) = AppId::parse(&app) else {
            continue;
        };
        for env in read(&format!("{base}/{app}"))? {
            if let Ok(env_name) = EnvName::parse(&env) {
                found.push((app_id.clone(), env_name));
            }
        }
    }
    Ok(found)
}

/// A record as the command it replays: parsed like a command line, the
/// command its file name says, for its own directory only.
fn replay(
    base: &AbsPath,
    app: &AppId,
    env: &EnvName,
    kind: Kind,
    record: &[String],
) -> Result<Replay, String> {
    let cli =
        Cli::try_parse_from(std::iter::once("berth").chain(record.iter().map(String::as_str)))
            .map_err(|e| format!("not a berth command line: {}", e.kind()))?;
    let own = |a: &str, e: &str, b: Option<&str>| {
        a == app.as_str() && e == env.as_str() && b == Some(base.as_str())
    };
    match (kind, cli.command) {
        (Kind::Storage, Command::Storage(StorageCommand::Ensure(a)))
            if own(&a.app, &a.env, Some(&a.base_dir)) =>
        {
            Ok(Replay::Storage(a))
        }
        (Kind::Egress, Command::Egress(EgressCommand::Apply(a)))
            if own(&a.app, &a.env, a.base_dir.as_deref()) =>
        {
            Ok(Replay::Egress(a))
        }
        _ => Err(format!(
            "is not the {} of {app}/{env} under {base}",
            match kind {
                Kind::Storage => "storage ensure",
                Kind::Egress => "egress apply",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_record_replays_only_its_own_command_for_its_own_directory() {
        let base = AbsPath::parse("/srv/berth").unwrap();
        let app = AppId::parse("shop").unwrap();
        let env = EnvName::parse("test").unwrap();
        let storage = args(
            "storage ensure --base-dir /srv/berth --app shop --env test --size 64M --path data",
        );
        let egress = args("egress apply --app shop --env test --slot-port 18001 --slot-port 18002 --base-dir /srv/berth");
        assert!(matches!(
            replay(&base, &app, &env, Kind::Storage, &storage),
            Ok(Replay::Storage(_))
        ));
        assert!(matches!(
            replay(&base, &app, &env, Kind::Egress, &egress),
            Ok(Replay::Egress(_))
        ));
        let refused =
            |kind, record: &[String]| replay(&base, &app, &env, kind, record).unwrap_err();
        // The other kind's file, another app's or another base's command,
        // an egress record that names no base, anything else berth runs.
        let not_storage = "is not the storage ensure of shop/test under /srv/berth";
        let not_egress = "is not the egress apply of shop/test under /srv/berth";
        assert_eq!(refused(Kind::Storage, &egress), not_storage);
        assert_eq!(refused(Kind::Egress, &storage), not_egress);
        assert_eq!(
            refused(Kind::Storage, &args("storage ensure --base-dir /srv/berth --app bank --env test --size 64M --path data")),
            not_storage
        );
        assert_eq!(
            refused(
                Kind::Storage,
                &args(
                    "storage ensure --base-dir /tmp --app shop --env test --size 64M --path data"
                )
            ),
            not_storage
        );
        assert_eq!(
            refused(
                Kind::Egress,
                &args("egress apply --app shop --env test --slot-port 18001")
            ),
            not_egress
        );
        assert_eq!(
            refused(Kind::Egress, &args("deploy --env test")),
            not_egress
        );
        assert_eq!(
            refused(Kind::Storage, &args("storage ensure --size 64M --rm -rf /")),
            "not a berth command line: unexpected argument found"
        );
    }
}
