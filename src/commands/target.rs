//! Resolving "this app environment on its host" from the command line,
//! the files and the environment, and observing its state on the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{inventory_path, CommandError};
use crate::cli::{AppDirArg, HostAccessArgs};
use crate::config::app::AppEnvironment;
use crate::config::inventory::Host;
use crate::config::settings::{self, AppSettings};
use crate::config::values::{EnvName, ScalarValue};
use crate::config::{app_file_path, AppDir, Inventory};
use crate::env::Env;
use crate::exec::remote::{HostLock, Remote};
use crate::plan::deploy::{HostState, Observed, Plan, Release};
use crate::plan::release::{HostLayout, ReleaseId};
use crate::plan::render::Templates;
use crate::report::Reporter;
use crate::secret::AppSecret;

/// The loaded, checked configuration of one app environment.
pub struct EnvTarget {
    pub app_dir: AppDir,
    /// The path of `app.yml`, for problems found against its limits.
    pub app_file: PathBuf,
    pub inventory: Inventory,
    pub env: EnvName,
    pub ssh_key: PathBuf,
    pub templates: Templates,
    /// The app's secrets from `BERTH_SECRET_*`, for its php containers.
    pub secrets: Vec<AppSecret>,
}

impl EnvTarget {
    pub fn load(
        app_dir: &AppDirArg,
        access: &HostAccessArgs,
        env_flag: &str,
        templates: &Option<PathBuf>,
        env: &Env,
    ) -> Result<EnvTarget, CommandError> {
        let Some(inventory_file) = inventory_path(&access.inventory.inventory, env) else {
            return Err(CommandError::Usage {
                message: "no host inventory given".into(),
                hint: "pass --inventory FILE or set BERTH_INVENTORY".into(),
            });
        };
        let Some(ssh_key) = access.ssh_key.clone().or_else(|| env.ssh_key.clone()) else {
            return Err(CommandError::Usage {
                message: "no SSH key given".into(),
                hint: "pass --ssh-key FILE or set BERTH_SSH_KEY".into(),
            });
        };
        let env_name = EnvName::parse(env_flag).map_err(|e| CommandError::Usage {
            message: format!("--env: {}", e.message),
            hint: e.hint,
        })?;
        let dir = &app_dir.app_dir;
        let loaded = AppDir::load(dir)?;
        let inventory = Inventory::load(&inventory_file)?;
        loaded.check_hosts(&inventory, &app_file_path(dir).display().to_string())?;
        if loaded.app.environment(&env_name).is_none() {
            return Err(CommandError::Usage {
                message: format!("app {} has no environment {env_name}", loaded.app.id),
                hint: "app.yml lists the app's environments".into(),
            });
        }
        let templates_dir = templates.clone().or_else(|| env.templates_dir.clone());
        let secrets = env
            .app_secrets
            .iter()
            .map(|(variable, value)| match value {
                Some(value) => AppSecret::from_variable(variable, value.expose()),
                None => Err(format!("CI/CD variable {variable}: the value is not UTF-8")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| CommandError::Usage {
                message,
                hint: "fix the variable in the management project's Settings > CI/CD > Variables"
                    .into(),
            })?;
        Ok(EnvTarget {
            app_dir: loaded,
            app_file: app_file_path(dir),
            inventory,
            env: env_name,
            ssh_key,
            templates: Templates::with_overrides(templates_dir),
            secrets,
        })
    }

    pub fn app_env(&self) -> &AppEnvironment {
        self.app_dir
            .app
            .environment(&self.env)
            .expect("checked when loaded")
    }

    pub fn host(&self) -> &Host {
        self.inventory
            .host(&self.app_env().host)
            .expect("check_hosts verified the host")
    }

    pub fn layout(&self) -> HostLayout {
        HostLayout::new(&self.host().base_dir, &self.app_dir.app.id, self.app_env())
    }

    /// The URL the environment answers on, through the host's front.
    pub fn url(&self) -> String {
        let front = &self.host().front;
        let domain = &self.app_env().domains[0];
        match &front.tls {
            Some(tls) if tls.listen.port() == 443 => format!("https://{domain}/"),
            Some(tls) => format!("https://{domain}:{}/", tls.listen.port()),
            None if front.listen.port() == 80 => format!("http://{domain}/"),
            None => format!("http://{domain}:{}/", front.listen.port()),
        }
    }
}

impl EnvTarget {
    /// The plan's view of this app environment.
    pub fn release<'a>(
        &'a self,
        keep: usize,
        health_timeout_secs: u64,
        now: &'a str,
        settings: &'a AppSettings,
    ) -> Release<'a> {
        Release {
            app: &self.app_dir.app,
            env: self.app_env(),
            host: self.host(),
            templates: &self.templates,
            settings,
            keep,
            health_timeout_secs,
            now,
            secrets: &self.secrets,
        }
    }
}

/// Takes the app environment's deploy lock on the host (creating its
/// directory first); held until the guard is dropped.
/// Makes the app environment's directory and takes its lock.
pub async fn lock_env<'r>(remote: &'r Remote, layout: &HostLayout) -> Result<HostLock<'r>> {
    remote
        .lock(&layout.lock_file(), "deploy", Duration::from_secs(600))
        .await
}

/// Reads `state.json` and the complete releases of an app environment, and
/// asks the active slot's health path.
pub async fn observe(remote: &Remote, target: &EnvTarget) -> Result<Observed> {
    let layout = target.layout();
    let state_file = layout.state_file();
    let image = layout.root.join(crate::plan::storage::IMAGE);
    let releases_dir = layout.releases_dir();
    let list = [
        "sh",
        "-c",
        "cd \"$1\" 2>/dev/null || exit 0; for d in */code; do [ -d \"$d\" ] && echo \"${d%/code}\"; done; exit 0",
        "sh",
        releases_dir.as_str(),
    ];
    let stat = ["stat", "-c", "%s", "--", image.as_str()];
    // Independent reads go out at once over the one SSH connection: a
    // rollback's time to switch is mostly round trips.
    let (state_text, listing, stat) = futures_util::try_join!(
        remote.read_file(&state_file),
        remote.run("list releases", &list),
        remote.output(&stat, None),
    )?;
    let state: HostState = match state_text {
        None => HostState::default(),
        Some(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{state_file} on host {} is not a state file berth wrote",
                remote.name()
            )
        })?,
    };
    let complete_releases = listing
        .stdout
        .lines()
        .filter_map(|line| ReleaseId::try_from(line.to_string()).ok())
        .collect();
    let storage_image_len = if stat.status.success() {
        String::from_utf8_lossy(&stat.stdout).trim().parse().ok()
    } else {
        None
    };
    // What the state names: the active slot's health, and the settings of
    // the active and backup releases, again all at once.
    let active_health = async {
        let Some(active) = &state.active else {
            return false;
        };
        let env = target.app_env();
        let answer = remote
            .http_get(
                &target.host().publish_address.to_string(),
                &active.slot.port(env).to_string(),
                target.app_dir.app.health_path.as_str(),
                env.domains[0].as_str(),
            )
            .await;
        matches!(answer, Ok((200, _)))
    };
    let releases: Vec<&ReleaseId> = state
        .active
        .iter()
        .chain(&state.backup)
        .map(|r| &r.release)
        .collect();
    let reads = futures_util::future::join_all(
        releases
            .iter()
            .map(|release| read_settings(remote, target, release)),
    );
    let (active_healthy, read) = futures_util::join!(active_health, reads);
    let mut settings = Vec::new();
    for (release, found) in releases.into_iter().zip(read) {
        if let Some(found) = found.map_err(|e| anyhow::anyhow!("{e}"))? {
            settings.push((release.clone(), found));
        }
    }
    Ok(Observed {
        state,
        complete_releases,
        active_healthy,
        settings,
        storage_image_len,
    })
}

/// Reads the `berth.yml` of a release's code on the host (`None` without
/// one) and validates it as a checkout's: it is the developer's file, and
/// `app.yml`'s ceilings may have changed since it was released. At most
/// one byte more than berth parses is read.
pub async fn read_settings(
    remote: &Remote,
    target: &EnvTarget,
    release: &ReleaseId,
) -> Result<Option<AppSettings>, CommandError> {
    let path = target.layout().code_dir(release).join(settings::FILE_NAME);
    let output = remote
        .output(
            &[
                "sh",
                "-c",
                "test -e \"$1\" || exit 3; test -f \"$1\" && ! test -L \"$1\" || exit 4; head -c \"$2\" -- \"$1\"",
                "sh",
                path.as_str(),
                &(crate::config::yaml::MAX_FILE_BYTES + 1).to_string(),
            ],
            None,
        )
        .await?;
    let name = format!("{}:{path}", remote.name());
    let text = match output.status.code() {
        Some(3) => return Ok(None),
        Some(0) => String::from_utf8(output.stdout)
            .map_err(|_| anyhow::anyhow!("{name} is not UTF-8 text"))?,
        _ => {
            return Err(anyhow::anyhow!(
                "read {name}: not a regular file, or unreadable: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into())
        }
    };
    Ok(Some(AppSettings::parse(&name, &text, &target.app_dir.app)?))
}

/// The current time as an RFC 3339 UTC time stamp, e.g. `2026-11-22T21:30:00Z`.
pub fn now_utc() -> String {
    crate::plan::logs::rfc3339(now_epoch())
}

/// The current time in seconds since the epoch.
pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a deploy, rollback or restart applied: the host as observed
/// before, and the plan.
pub struct Applied {
    pub observed: Observed,
    pub plan: Plan,
}

/// The one path of deploy, rollback and restart: connects, takes the
/// environment's lock, observes the host, plans with `plan` (which may
/// read more from the host), then applies the plan, syncing `code` when
/// it says so, or only prints it on a dry run (and returns `None`).
pub fn lock_observe_plan_apply(
    target: &EnvTarget,
    code: Option<&Path>,
    dry_run: bool,
    reporter: &Reporter,
    plan: impl AsyncFnOnce(&Remote, &Observed) -> Result<Plan, CommandError>,
) -> Result<Option<Applied>, CommandError> {
    let layout = target.layout();
    super::runtime()?.block_on(async {
        let remote = Remote::connect(target.host(), &target.ssh_key).await?;
        let lock = lock_env(&remote, &layout).await?;
        let observed = observe(&remote, target).await?;
        let plan = plan(&remote, &observed).await?;
        if dry_run {
            reporter.result(
                &plan.to_string(),
                &serde_json::json!({ "ok": true, "dry_run": true, "plan": plan.to_string() }),
            );
            return Ok(None);
        }
        if let Some(note) = &plan.note {
            reporter.info(note);
        }
        crate::exec::apply::apply(&remote, &plan, code, reporter)
            .await
            .map_err(CommandError::Stopped)?;
        drop(lock);
        let _ = remote.close().await;
        Ok(Some(Applied { observed, plan }))
    })
}
