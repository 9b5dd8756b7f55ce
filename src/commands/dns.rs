//! `berth dns plan` and `berth dns apply`: the names of `allocations.yml`
//! kept in the inventory's zones. Per zone: observe the provider, plan
//! (`plan::dns`), check the threshold, apply; a write that finds the zone
//! changed since it was read is planned again from a fresh read.
//! `apply --dry-run` is `plan`.

use std::path::Path;

use super::gitlab::{connect, keep_note, merge_request_iid, project_path};
use super::{inventory_path, CommandError};
use crate::cli::{DnsArgs, DnsDiffArgs, InventoryArg};
use crate::config::decode::{Problem, Problems};
use crate::config::dns::{DnsSettings, ZoneSettings};
use crate::config::{read_text_limited, yaml, Inventory};
use crate::env::Env;
use crate::exec::dns::{self, DnsError, Requests};
use crate::plan::allocation::Allocations;
use crate::plan::dns::{
    changes_between, diff_note, plan_zone, wanted, wanted_and_problems, Wanted, WantedError,
    ZonePlan, NOTE_MARKER,
};
use crate::report::Reporter;

/// Rounds of observe, plan, apply when a write finds the zone changed
/// or the server failed it without changing anything.
const ROUNDS: u32 = 6;

/// `apply`: `None` plans only; `Some(allow_large_change)` applies.
pub fn run(
    args: &DnsArgs,
    apply: Option<bool>,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let (inventory_file, inventory) = load_inventory(&args.inventory, env)?;
    let settings = dns_settings(&inventory, &inventory_file)?;
    let allocations = load_allocations(&args.allocations)?;
    let names = wanted(&allocations, &inventory, settings)
        .map_err(|errors| invalid(&args.allocations, &inventory_file, errors))?;
    let zones = selected(settings, &args.zones)?;

    let mut text = String::new();
    let mut json = Vec::new();
    let mut failures: Vec<(String, &'static str)> = Vec::new();
    for zone in zones {
        let outcome = sync_zone(zone, settings, &names, apply, env);
        let (plan, requests, result) = match outcome {
            Ok(synced) => synced,
            Err(e) => {
                failures.push((format!("zone {}: {e}", zone.zone), e.hint()));
                text.push_str(&format!(
                    "zone {} ({}): {e}\n",
                    zone.zone,
                    zone.provider.kind()
                ));
                json.push(serde_json::json!({
                    "zone": zone.zone.as_str(), "provider": zone.provider.kind(), "error": e.to_string(),
                }));
                continue;
            }
        };
        text.push_str(&plan.describe());
        let status = match (&result, apply) {
            (_, None) => "planned".to_string(),
            (Ok(()), Some(_)) if plan.changes.is_empty() => "nothing to change".to_string(),
            (Ok(()), Some(_)) => format!(
                "applied with {} read(s) and {} write request(s)",
                requests.reads, requests.writes
            ),
            (Err(refusal), _) => refusal.clone(),
        };
        text.push_str(&format!("  {status}\n"));
        if let Err(refusal) = &result {
            failures.push((
                refusal.clone(),
                "check the plan above; if it is meant, run again with --allow-large-change",
            ));
        }
        if !plan.conflicts.is_empty() {
            failures.push((
                format!(
                    "zone {}: {} name(s) hold records berth does not own",
                    zone.zone,
                    plan.conflicts.len()
                ),
                "berth never overwrites them: delete the record in the way (if it is stale) or allocate another domain, then run again",
            ));
        }
        json.push(zone_json(
            &plan,
            requests,
            apply.is_some() && result.is_ok(),
            &status,
        ));
    }
    reporter.result(
        text.trim_end(),
        &serde_json::json!({"ok": failures.is_empty(), "dry_run": apply.is_none(), "zones": json}),
    );
    match failures.as_slice() {
        [] => Ok(()),
        [(message, hint)] => Err(CommandError::Refused {
            message: message.clone(),
            hint: hint.to_string(),
        }),
        [(first, hint), rest @ ..] => Err(CommandError::Refused {
            message: format!("{first} (and {} more, above)", rest.len()),
            hint: hint.to_string(),
        }),
    }
}

/// `berth dns diff`: the names a change of the allocations file adds,
/// changes and removes, printed and, with `--note`, kept as a note on the
/// merge request. Problems of the new file are listed and fail the job.
pub fn diff(
    args: &DnsDiffArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let (inventory_file, inventory) = load_inventory(&args.inventory, env)?;
    let settings = dns_settings(&inventory, &inventory_file)?;
    let before_inventory = match &args.before_inventory {
        Some(path) => Some(Inventory::load(path)?),
        None => None,
    };
    let old = before_inventory.as_ref().unwrap_or(&inventory);
    let before = match (&args.before, &old.dns) {
        (Some(path), Some(old_settings)) => {
            wanted_and_problems(&load_allocations(path)?, old, old_settings).0
        }
        _ => Vec::new(),
    };
    let (after, problems) =
        wanted_and_problems(&load_allocations(&args.allocations)?, &inventory, settings);
    let changes = changes_between(&before, &after);
    let mut text: String = changes.iter().map(|c| format!("{c}\n")).collect();
    if changes.is_empty() {
        text.push_str("no DNS changes\n");
    }
    if args.note {
        let iid = merge_request_iid(args.merge_request, env)?;
        let body = diff_note(iid, &changes, &problems);
        keep_note(
            &connect(env)?,
            &project_path(env)?,
            iid,
            NOTE_MARKER,
            &body,
            dry_run,
            reporter,
        )?;
    }
    reporter.result(
        text.trim_end(),
        &serde_json::json!({"changes": changes, "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>()}),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(&args.allocations, &inventory_file, problems))
    }
}

fn load_inventory(
    arg: &InventoryArg,
    env: &Env,
) -> Result<(std::path::PathBuf, Inventory), CommandError> {
    let Some(inventory_file) = inventory_path(&arg.inventory, env) else {
        return Err(CommandError::Usage {
            message: "no host inventory given".into(),
            hint: "pass --inventory FILE or set BERTH_INVENTORY".into(),
        });
    };
    let inventory = Inventory::load(&inventory_file)?;
    Ok((inventory_file, inventory))
}

fn dns_settings<'i>(
    inventory: &'i Inventory,
    file: &Path,
) -> Result<&'i DnsSettings, CommandError> {
    inventory.dns.as_ref().ok_or_else(|| CommandError::Usage {
        message: format!("{} has no dns section", file.display()),
        hint: "name the zones berth keeps under dns.zones; see docs/dns.md".into(),
    })
}

fn load_allocations(path: &Path) -> Result<Allocations, CommandError> {
    let text = read_text_limited(path, yaml::MAX_FLEET_FILE_BYTES)?;
    Ok(Allocations::parse(&path.display().to_string(), &text)?)
}

/// One zone: the plan, the requests made, and `Err` with the refusal when
/// the threshold stopped it.
fn sync_zone(
    zone: &ZoneSettings,
    settings: &DnsSettings,
    names: &[Wanted],
    apply: Option<bool>,
    env: &Env,
) -> Result<(ZonePlan, Requests, Result<(), String>), DnsError> {
    let variable = zone.provider.credential_variable();
    let Some(credential) = env.dns_credential(variable.as_str()) else {
        return Err(DnsError::Unauthorized {
            server: zone.provider.kind().to_string(),
            detail: format!("the CI/CD variable {variable} is not set in this job"),
        });
    };
    let mut requests = Requests::default();
    let mut round = 1;
    loop {
        let held = match dns::observe(zone, credential, &mut requests) {
            Ok(held) => held,
            Err(e) if e.is_transient() && round < ROUNDS => {
                std::thread::sleep(backoff(round));
                round += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let plan = plan_zone(zone, settings, names, &held);
        let Some(allow_large_change) = apply else {
            return Ok((plan, requests, Ok(())));
        };
        if !allow_large_change {
            if let Err(over) = plan.check_threshold(settings.max_change_percent) {
                return Ok((plan, requests, Err(format!("refused: {over}"))));
            }
        }
        match dns::apply(zone, credential, &plan, &mut requests) {
            Ok(()) => return Ok((plan, requests, Ok(()))),
            Err(e) if e.is_transient() && round < ROUNDS => {
                std::thread::sleep(backoff(round));
                round += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// 50 ms, 100 ms, 200 ms, … with up to half again at random, so that two
/// syncs that collided do not collide again.
fn backoff(round: u32) -> std::time::Duration {
    let base = 50u64 << (round - 1).min(5);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
        % (base / 2 + 1);
    std::time::Duration::from_millis(base + jitter)
}

fn selected<'s>(
    settings: &'s DnsSettings,
    asked: &[String],
) -> Result<Vec<&'s ZoneSettings>, CommandError> {
    if asked.is_empty() {
        return Ok(settings.zones.iter().collect());
    }
    asked
        .iter()
        .map(|name| {
            settings
                .zones
                .iter()
                .find(|z| z.zone.as_str() == name.trim_end_matches('.'))
                .ok_or_else(|| CommandError::Usage {
                    message: format!(
                        "--zone {}: not a zone of the inventory",
                        crate::config::values::quoted(name)
                    ),
                    hint: format!(
                        "the inventory's zones are: {}",
                        settings
                            .zones
                            .iter()
                            .map(|z| z.zone.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
        })
        .collect()
}

fn invalid(allocations: &Path, inventory: &Path, errors: Vec<WantedError>) -> CommandError {
    let problems = errors
        .iter()
        .map(|e| {
            let (file, key) = match e {
                WantedError::NoPublicAddress { host } => {
                    (inventory, format!("hosts.{host}.public_ipv4"))
                }
                WantedError::UnknownHost { app, env, .. } => {
                    (allocations, format!("apps.{app}.{env}.host"))
                }
                WantedError::NoZone { app, env, .. } => {
                    (allocations, format!("apps.{app}.{env}.domains"))
                }
                WantedError::TooLong { .. } => (allocations, String::new()),
            };
            Problem {
                file: file.display().to_string(),
                line: None,
                column: None,
                key,
                message: e.to_string(),
                hint: e.hint().to_string(),
            }
        })
        .collect();
    CommandError::Invalid(Problems(problems))
}

fn zone_json(
    plan: &ZonePlan,
    requests: Requests,
    applied: bool,
    status: &str,
) -> serde_json::Value {
    let (create, update, delete) = plan.count();
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            let kind = match c {
                crate::plan::dns::NameChange::Create { .. } => "create",
                crate::plan::dns::NameChange::Update { .. } => "update",
                crate::plan::dns::NameChange::Delete { .. } => "delete",
            };
            serde_json::json!({"name": c.name(), "change": kind})
        })
        .collect();
    let conflicts: Vec<serde_json::Value> = plan
        .conflicts
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "app": c.app.as_str(), "env": c.env.as_str(), "record": c.record}))
        .collect();
    serde_json::json!({
        "zone": plan.zone.as_str(),
        "provider": plan.provider,
        "create": create, "update": update, "delete": delete, "unchanged": plan.unchanged,
        "owned_before": plan.owned,
        "changes": changes,
        "conflicts": conflicts,
        "applied": applied,
        "status": status,
        "requests": requests,
    })
}
