//! `berth status`: what runs where, read from the host.

use serde_json::json;

use super::target::{observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::StatusArgs;
use crate::env::Env;
use crate::exec::remote::Remote;
use crate::report::Reporter;

pub fn run(args: &StatusArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let env_names: Vec<String> = match &args.env {
        Some(name) => vec![name.clone()],
        None => crate::config::AppDir::load(&args.app_dir.app_dir)?
            .app
            .environments
            .iter()
            .map(|e| e.name.to_string())
            .collect(),
    };
    let mut text = Vec::new();
    let mut report = Vec::new();
    for name in &env_names {
        let target = EnvTarget::load(&args.app_dir, &args.access, name, &None, env)?;
        let (observed, containers) = runtime()?.block_on(async {
            let remote = Remote::connect(target.host(), &target.ssh_key).await?;
            let observed = observe(&remote, &target).await?;
            let filter_app = format!("label=berth.app={}", target.app_dir.app.id);
            let filter_env = format!("label=berth.env={}", target.env);
            let containers = remote
                .run(
                    "list containers",
                    &[
                        "docker", "ps", "-a", "--filter", &filter_app, "--filter", &filter_env,
                        "--format", "{{.Label \"berth.slot\"}} {{.Label \"berth.role\"}} {{.Label \"berth.release\"}} {{.Status}}",
                    ],
                )
                .await?
                .stdout;
            Ok::<_, CommandError>((observed, containers))
        })?;
        let state = &observed.state;
        let describe = |r: &Option<crate::plan::deploy::SlotRelease>| {
            r.as_ref().map_or("none".to_string(), |r| {
                format!(
                    "{} ({}) in {} since {}",
                    r.tag, r.release, r.slot, r.deployed_at
                )
            })
        };
        text.push(format!(
            "{} {} on {}\n  active: {}{}\n  backup: {}\n  url:    {}\n  containers:\n{}",
            target.app_dir.app.id,
            target.env,
            target.host().name,
            describe(&state.active),
            match (&state.active, observed.active_healthy) {
                (Some(_), true) => ", healthy",
                (Some(_), false) => ", NOT answering its health path",
                (None, _) => "",
            },
            describe(&state.backup),
            target.url(),
            containers
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
        report.push(json!({
            "env": target.env,
            "host": target.host().name,
            "url": target.url(),
            "state": state,
            "active_healthy": observed.active_healthy,
            "containers": containers.lines().collect::<Vec<_>>(),
        }));
    }
    reporter.result(
        &text.join("\n"),
        &json!({ "ok": true, "environments": report }),
    );
    Ok(())
}
