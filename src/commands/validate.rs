//! `berth validate`: offline check of an app directory and, when given, the
//! host inventory.

use serde_json::json;

use super::{inventory_path, CommandError};
use crate::cli::ValidateArgs;
use crate::config::{app_file_path, AppDir, Inventory, Problems};
use crate::env::Env;
use crate::report::Reporter;

pub fn run(args: &ValidateArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let dir = &args.app_dir.app_dir;
    let inventory =
        inventory_path(&args.inventory.inventory, env).map(|path| Inventory::load(&path));
    let app_dir = AppDir::load(dir);
    let (app_dir, inventory) = match (app_dir, inventory) {
        (Ok(app_dir), Some(Ok(inventory))) => {
            app_dir.check_hosts(&inventory, &app_file_path(dir).display().to_string())?;
            (app_dir, Some(inventory))
        }
        (Ok(app_dir), None) => (app_dir, None),
        (app_dir, inventory) => {
            let problems = [app_dir.err(), inventory.and_then(Result::err)];
            return Err(Problems::merge(problems.into_iter().flatten()).into());
        }
    };
    let environments: Vec<&str> = app_dir
        .release
        .environments
        .iter()
        .map(|r| r.env.as_str())
        .collect();
    let mut text = format!(
        "valid: app {} with {} environment(s) requested ({})",
        app_dir.app.id,
        environments.len(),
        environments.join(", ")
    );
    if let Some(inventory) = &inventory {
        text.push_str(&format!("; inventory of {} host(s)", inventory.hosts.len()));
    } else {
        reporter.info(
            "note: no inventory given (--inventory or $BERTH_INVENTORY); hosts were not checked",
        );
    }
    reporter.result(
        &text,
        &json!({
            "ok": true,
            "app": app_dir.app.id,
            "requested": app_dir.release.environments,
            "inventory_checked": inventory.is_some(),
        }),
    );
    Ok(())
}
