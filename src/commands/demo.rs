//! `berth demo`: a full local release of the bundled example plugin on this
//! machine. The test rig (`tests/rig/up`) is the host: it installs what it
//! needs, builds the runtime image offline and starts an sshd and a front
//! nginx; berth then deploys to it over SSH exactly as to a production host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::deploy::{deploy_target, Options};
use super::target::EnvTarget;
use super::{runtime, CommandError};
use crate::cli::{AppDirArg, DemoArgs, HostAccessArgs, InventoryArg};
use crate::env::Env;
use crate::report::Reporter;
use crate::rig::RigEnv;

const SKELETON_APP: &str = include_str!("../../mgmt-repo-skeleton/app.yml");

pub fn run(
    args: &DemoArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let repo = repository()?;
    // The developer's own files are read before anything starts.
    let code = match &args.code {
        Some(dir) if dir.is_dir() => dir.clone(),
        Some(dir) => {
            return Err(CommandError::Usage {
                message: format!("--code {}: not a directory", dir.display()),
                hint: "give the checkout of your plugin (the directory with its docroot)".into(),
            })
        }
        None => repo.join("examples/plugin"),
    };
    let app_yml = match &args.app_yml {
        Some(file) => std::fs::read_to_string(file).map_err(|e| CommandError::Usage {
            message: format!("--app-yml {}: {e}", file.display()),
            hint: "give an app.yml, e.g. a copy of mgmt-repo-skeleton/app.yml".into(),
        })?,
        None => SKELETON_APP.to_string(),
    };
    if dry_run {
        // The local host may not exist yet, so there is nothing to observe:
        // say what the demo does, and do none of it.
        reporter.result(
            &format!(
                "dry run, nothing was done; berth demo would:\n\
                 run {}/tests/rig/up (apt packages, the runtime image, sshd and the front nginx)\n\
                 install this berth as the host's root-run berth (egress policy)\n\
                 write the demo app and inventory under {}/demo\n\
                 release {} as {} to test on that host, and print its URL",
                repo.display(),
                rig_dir(env).display(),
                code.display(),
                if args.code.is_some() {
                    "a new release local-<time>"
                } else {
                    "v1.0.0"
                }
            ),
            &serde_json::json!({"dry_run": true}),
        );
        return Ok(());
    }
    reporter.info("starting the local host (tests/rig/up) ...");
    let status = Command::new(repo.join("tests/rig/up"))
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("run tests/rig/up")?;
    if !status.success() {
        return Err(anyhow::anyhow!("tests/rig/up failed ({status})").into());
    }
    let rig = RigEnv::read(Path::new(&rig_dir(env)).join("rig.env").as_path())?;
    let exe = std::env::current_exe().context("find this berth binary")?;
    rig.install_host_berth(&exe)?;

    let demo = PathBuf::from(rig.get("RIG")?).join("demo");
    let app_dir = demo.join("app");
    std::fs::create_dir_all(&app_dir).context("create the demo directory")?;
    std::fs::write(demo.join("inventory.yml"), rig.inventory()?)
        .context("write the demo inventory")?;
    std::fs::write(app_dir.join("app.yml"), app_yml).context("write the demo app.yml")?;
    // The bundled example is v1.0.0; a developer's code is a new release
    // on every run, so a changed checkout is always released.
    let tag = match &args.code {
        None => "v1.0.0".to_string(),
        Some(_) => format!(
            "local-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ),
    };
    std::fs::write(
        app_dir.join("release.yml"),
        format!("environments:\n  test:\n    ref: {tag}\n"),
    )
    .context("write the demo release.yml")?;

    let target = EnvTarget::load(
        &AppDirArg { app_dir },
        &HostAccessArgs {
            inventory: InventoryArg {
                inventory: Some(demo.join("inventory.yml")),
            },
            ssh_key: Some(PathBuf::from(rig.get("RIG_SSH_KEY")?)),
        },
        "test",
        &None,
        env,
    )?;
    let options = Options {
        keep: 3,
        health_timeout_secs: 60,
        dry_run: false,
    };
    let tag = tag.parse().expect("a valid tag");
    deploy_target(&target, &tag, None, Some(&code), options, reporter)?;
    reporter.info(&format!(
        "open {} (names under .localhost resolve to this machine), or: curl -H 'Host: {}' http://{}/",
        target.url(),
        target.app_env().domains[0],
        rig.get("RIG_FRONT_LISTEN")?
    ));
    if args.no_wait {
        return Ok(());
    }
    reporter.info("serving until interrupted (Ctrl-C); then the local host is stopped");
    runtime()?.block_on(async { tokio::signal::ctrl_c().await.context("wait for Ctrl-C") })?;
    let _ = Command::new(repo.join("tests/rig/down")).status();
    Ok(())
}

/// The berth repository: the current directory, or where berth was built.
fn repository() -> Result<PathBuf, CommandError> {
    let candidates = [
        std::env::current_dir().unwrap_or_default(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ];
    candidates
        .into_iter()
        .find(|dir| dir.join("tests/rig/up").is_file() && dir.join("examples/plugin").is_dir())
        .ok_or_else(|| CommandError::Usage {
            message: "berth demo needs the berth repository (tests/rig/up, examples/plugin)".into(),
            hint: "run it from a checkout of berth: cargo run --release -- demo".into(),
        })
}

fn rig_dir(env: &Env) -> PathBuf {
    env.rig_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp/berth-rig"))
}
