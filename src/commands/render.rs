//! `berth render`: writes an environment's configuration into a directory,
//! or with `--dry-run` shows how it differs from what is there.

use anyhow::Context;
use serde_json::json;
use similar::TextDiff;

use super::{inventory_path, CommandError};
use crate::cli::RenderArgs;
use crate::config::settings::AppSettings;
use crate::config::values::{EnvName, ScalarValue};
use crate::config::{app_file_path, AppDir, Inventory};
use crate::env::Env;
use crate::plan::release::{ReleaseId, Slot};
use crate::plan::render::{write_files, Target, Templates};
use crate::report::Reporter;

pub fn run(
    args: &RenderArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let Some(inventory_file) = inventory_path(&args.inventory.inventory, env) else {
        return Err(CommandError::Usage {
            message: "no host inventory given".into(),
            hint: "pass --inventory FILE or set BERTH_INVENTORY".into(),
        });
    };
    let env_name = EnvName::parse(&args.env).map_err(|e| CommandError::Usage {
        message: format!("--env: {}", e.message),
        hint: e.hint,
    })?;
    let dir = &args.app_dir.app_dir;
    let app_dir = AppDir::load(dir)?;
    let inventory = Inventory::load(&inventory_file)?;
    app_dir.check_hosts(&inventory, &app_file_path(dir).display().to_string())?;

    let app = &app_dir.app;
    let Some(app_env) = app.environment(&env_name) else {
        return Err(CommandError::Usage {
            message: format!("app {} has no environment {env_name}", app.id),
            hint: format!(
                "app.yml defines: {}",
                app.environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let Some(requested) = app_dir.release.get(&env_name) else {
        return Err(CommandError::Usage {
            message: format!("release.yml requests no tag for environment {env_name}"),
            hint: format!("add `{env_name}: {{ ref: TAG }}` under environments in release.yml"),
        });
    };
    let host = inventory
        .host(&app_env.host)
        .expect("check_hosts verified the host exists");
    let slot: Slot = args.slot.parse().map_err(anyhow::Error::msg)?;
    let release = ReleaseId::new(&requested.tag, None);
    // The release's own berth.yml, from its checkout when there is one.
    let code = args.code.clone().unwrap_or_else(|| dir.join("codes"));
    let settings = if code.is_dir() {
        AppSettings::load(&code, app)?
    } else {
        reporter.detail(&format!(
            "no code checkout at {}: rendered without the app's berth.yml",
            code.display()
        ));
        AppSettings::default()
    };
    let templates_dir = args.templates.clone().or_else(|| env.templates_dir.clone());
    if let Some(dir) = &templates_dir {
        reporter.detail(&format!("templates: overrides from {}", dir.display()));
    }
    let files = Templates::with_overrides(templates_dir)
        .render(&Target {
            app,
            env: app_env,
            host,
            release: &release,
            slot,
            backup: Some(slot.other()),
            settings: &settings,
        })
        .context("render the release configuration")?;

    let out = &args.out;
    if dry_run {
        let mut text = String::new();
        let mut changes = Vec::new();
        for file in &files {
            let path = out.join(&file.name);
            let old = std::fs::read_to_string(&path).ok();
            let change = match &old {
                None => "create",
                Some(old) if old == &file.contents => "unchanged",
                Some(_) => "update",
            };
            text.push_str(&format!("{change} {}\n", path.display()));
            let diff = TextDiff::from_lines(old.as_deref().unwrap_or(""), &file.contents)
                .unified_diff()
                .header(&format!("a/{}", file.name), &format!("b/{}", file.name))
                .to_string();
            if change != "unchanged" {
                text.push_str(&diff);
            }
            changes.push(json!({ "file": file.name, "change": change, "diff": diff }));
        }
        reporter.result(
            text.trim_end(),
            &json!({ "ok": true, "dry_run": true, "files": changes }),
        );
        return Ok(());
    }
    write_files(out, &files)
        .with_context(|| format!("write the configuration to {}", out.display()))?;
    let names: Vec<String> = files
        .iter()
        .map(|f| out.join(&f.name).display().to_string())
        .collect();
    reporter.result(
        &names.join("\n"),
        &json!({ "ok": true, "files": names, "release": release, "slot": slot }),
    );
    Ok(())
}
