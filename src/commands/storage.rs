//! `berth storage ensure`: the host side of an app environment's storage,
//! run as root by a deploy (the inventory's `root_berth`). Every argument
//! is validated here again: the caller is the deploy user, and the paths
//! come from the developer's berth.yml.

use crate::cli::StorageEnsureArgs;
use crate::config::app::bounds;
use crate::config::settings::StoragePath;
use crate::config::values::{AbsPath, AppId, ByteSize, EnvName, ScalarValue};
use crate::env::Env;
use crate::exec::boot_record::{self, Kind};
use crate::exec::storage;
use crate::plan::storage::Request;
use crate::report::Reporter;

use super::CommandError;

pub fn ensure(
    args: &StorageEnsureArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let request = request(args, env.sudo_uid)?;
    if dry_run {
        let state = storage::observe(&request)?;
        let (actions, note) = crate::plan::storage::image_actions(request.size, state);
        let mut lines: Vec<String> = note.into_iter().collect();
        lines.extend(actions.iter().map(ToString::to_string));
        lines.extend(request.dirs().iter().map(|d| {
            format!(
                "{}/{} {}:{} {:o}",
                request.env_dir(),
                d.path,
                d.uid,
                d.gid,
                d.mode
            )
        }));
        reporter.result(
            &lines.join("\n"),
            &serde_json::json!({ "ok": true, "dry_run": true, "plan": lines }),
        );
        return Ok(());
    }
    let changes = storage::ensure(&request)?;
    // What `berth host boot` sets again after a reboot.
    boot_record::write(
        &request.env_dir(),
        request.owner,
        Kind::Storage,
        &request.args(),
    )?;
    for change in &changes {
        reporter.detail(change);
    }
    reporter.info(&format!(
        "storage of {}/{} ready: {} path(s), {} change(s)",
        request.app,
        request.env,
        request.paths.len(),
        changes.len()
    ));
    Ok(())
}

fn request(args: &StorageEnsureArgs, owner: Option<u32>) -> Result<Request, CommandError> {
    let usage = |flag: &str, e: crate::config::values::ValueError| CommandError::Usage {
        message: format!("{flag}: {}", e.message),
        hint: e.hint,
    };
    let base_dir = AbsPath::parse(&args.base_dir).map_err(|e| usage("--base-dir", e))?;
    let app = AppId::parse(&args.app).map_err(|e| usage("--app", e))?;
    let env = EnvName::parse(&args.env).map_err(|e| usage("--env", e))?;
    let size = ByteSize::parse(&args.size).map_err(|e| usage("--size", e))?;
    if size < bounds::STORAGE_MIN || size > bounds::STORAGE_MAX {
        return Err(CommandError::Usage {
            message: format!("--size: {} is outside the platform's bounds", size.php()),
            hint: format!(
                "use a size from {} to {}",
                bounds::STORAGE_MIN.php(),
                bounds::STORAGE_MAX.php()
            ),
        });
    }
    let paths = args
        .paths
        .iter()
        .map(|p| StoragePath::parse(p).map_err(|e| usage("--path", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request {
        base_dir,
        app,
        env,
        size,
        paths,
        owner,
    })
}
