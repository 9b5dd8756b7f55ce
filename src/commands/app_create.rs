//! `berth app create`: onboards an app. Creates the code repository and the
//! management repository (from `mgmt-repo-skeleton/`, with `codes/` as a
//! submodule of the code repository), grants the developer access, pins
//! the CI configuration, protects `main` and the release records, makes the
//! app's tokens and sets the CI/CD variables, allocates a host and ports in
//! the fleet repository and provisions the logs key.
//!
//! Observe, plan, apply: GitLab is read first (`exec::gitlab::onboarding`),
//! the writes are planned by a pure function (`plan::gitlab::onboarding`),
//! then carried out one by one (`exec::gitlab::apply`). With `--dry-run`
//! the plan is printed and nothing is written. Everything already right is
//! left alone, so a second run makes no write request. The allocation is
//! the one interleaved step: its commit names the file's last commit, and
//! when another onboarding committed first it is read and chosen again.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;

use super::gitlab::{connect, usage};
use super::CommandError;
use crate::cli::AppCreateArgs;
use crate::config::values::{
    quoted, AppId, DomainName, EnvName, GitLabUser, ProjectPath, ScalarValue,
};
use crate::config::Inventory;
use crate::env::Env;
use crate::exec::gitlab::apply::{Applied, Applier, ApplyError};
use crate::exec::gitlab::onboarding::{observe, read_file, ObserveError};
use crate::exec::gitlab::{ErrorKind, GitLab};
use crate::plan::allocation::AppAllocation;
use crate::plan::gitlab::onboarding::{
    self, describe, needs_logs_key, plan_allocation, Fresh, LogsKey, Observation, Observed,
    Onboarding, OnboardingError, MAIN,
};
use crate::plan::gitlab::{Date, GitLabPlan, GitLabWrite};
use crate::report::dotenv::Outputs;
use crate::report::Reporter;
use crate::secret::Secret;

/// Attempts at committing the allocation against other onboardings.
const ALLOCATION_ATTEMPTS: u32 = 60;
/// Rounds of observe, plan, apply when a write finds its object made
/// meanwhile (a run racing this one, or an answer lost earlier).
const ROUNDS: u32 = 3;

pub fn run(
    args: &AppCreateArgs,
    dry_run: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let (s, inventory) = resolve(args, env)?;
    let gitlab = connect(env)?;
    let mut observed = observe(&gitlab, &s).map_err(observe_error)?;
    let mut fresh = Fresh {
        today: today(),
        logs_key: None,
    };
    if needs_logs_key(&observed) {
        fresh.logs_key = Some(generate_logs_key(&s.id)?);
    }
    let (tentative, allocation) =
        plan_allocation(&s, observed.allocations.as_ref()).map_err(onboarding_error)?;
    // Planned before anything is written, so that a refusal (a developer
    // who maintains the management repository) leaves GitLab untouched.
    let mut plan = onboarding::plan(&s, &observed, &tentative, &fresh).map_err(onboarding_error)?;
    if dry_run {
        let mut all = GitLabPlan::from(allocation.into_iter().collect::<Vec<_>>());
        all.writes.extend(plan.writes);
        let dns = inventory
            .as_ref()
            .map_or(Vec::new(), |i| crate::plan::dns::records_of(&tentative, i));
        let mut text = all.to_string();
        for line in &dns {
            text.push_str(&format!("dns: {line}\n"));
        }
        reporter.result(
            text.trim_end(),
            &serde_json::json!({
                "ok": true, "dry_run": true, "app": s.id,
                "writes": all.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "dns": dns,
            }),
        );
        return Ok(());
    }

    let mut applier = Applier::new(&gitlab);
    let app = match allocation {
        None => tentative.clone(),
        Some(write) => allocate(
            &gitlab,
            &mut applier,
            &s,
            (tentative.clone(), write),
            reporter,
        )?,
    };
    let mut projects = Projects::observed(&s, &observed);
    for round in 1..=ROUNDS {
        if round > 1 {
            observed = observe(&gitlab, &s).map_err(observe_error)?;
            if !needs_logs_key(&observed) {
                fresh.logs_key = None;
            } else if fresh.logs_key.is_none() {
                fresh.logs_key = Some(generate_logs_key(&s.id)?);
            }
            projects = Projects::observed(&s, &observed);
        }
        if round > 1 || app != tentative {
            plan = onboarding::plan(&s, &observed, &app, &fresh).map_err(onboarding_error)?;
        }
        match apply(&mut applier, &plan, &mut projects, reporter) {
            Ok(()) => {
                let public = fresh
                    .logs_key
                    .as_ref()
                    .map(|k| k.public.clone())
                    .or(observed
                        .logs_public_key
                        .as_ref()
                        .map(|f| f.text.trim().to_string()))
                    .unwrap_or_default();
                return report(
                    &s,
                    inventory.as_ref(),
                    &app,
                    &public,
                    &projects,
                    env,
                    reporter,
                );
            }
            Err(Stop::Conflict(write)) => reporter.info(&format!(
                "{write}: already there, made meanwhile; reading GitLab again"
            )),
            Err(Stop::Failed(e)) => return Err(CommandError::Failed(e.into())),
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "GitLab kept changing under app create: gave up after {ROUNDS} rounds"
    )))
}

/// Why [`apply`] stopped before the end of the plan.
enum Stop {
    /// A write found its object there already: what was observed is out
    /// of date.
    Conflict(String),
    Failed(ApplyError),
}

/// Sends the plan's writes in order, each shown on stderr as it is done.
fn apply(
    applier: &mut Applier<'_>,
    plan: &GitLabPlan,
    projects: &mut Projects,
    reporter: &Reporter,
) -> Result<(), Stop> {
    for write in plan {
        match applier.apply(write) {
            Ok(applied) => {
                if let (GitLabWrite::CreateProject(new), Applied::Project { id, web_url }) =
                    (write, applied)
                {
                    projects.set(&new.path, id, web_url);
                }
                reporter.info(&write.to_string());
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Stop::Conflict(write.to_string()))
            }
            Err(e) => return Err(Stop::Failed(e)),
        }
    }
    Ok(())
}

/// The projects' ids and web URLs, observed or just created, for the report.
#[derive(Default)]
struct Projects(Vec<(ProjectPath, u64, String)>);

impl Projects {
    fn observed(s: &Onboarding, observed: &Observed) -> Projects {
        let mut projects = Projects::default();
        if let Observation::Present(code) = &observed.code {
            projects.set(&s.code, code.project.id, code.project.web_url.clone());
        }
        if let Observation::Present(management) = &observed.management {
            let p = &management.project;
            projects.set(&s.management, p.id, p.web_url.clone());
        }
        projects
    }

    fn set(&mut self, path: &ProjectPath, id: u64, web_url: String) {
        self.0.retain(|(p, _, _)| p != path);
        self.0.push((path.clone(), id, web_url));
    }

    fn get(&self, path: &ProjectPath) -> (u64, &str) {
        self.0
            .iter()
            .find(|(p, _, _)| p == path)
            .map_or((0, ""), |(_, id, url)| (*id, url.as_str()))
    }
}

/// The onboarding as asked, validated, and the inventory for the report.
fn resolve(
    args: &AppCreateArgs,
    env: &Env,
) -> Result<(Onboarding, Option<Inventory>), CommandError> {
    let invalid = |e: crate::config::values::ValueError| usage(&e.message, &e.hint);
    let id = AppId::parse(&args.id).map_err(invalid)?;
    let owner = GitLabUser::parse(&args.owner).map_err(invalid)?;
    let group = |flag: &str, value: &str| -> Result<ProjectPath, CommandError> {
        ProjectPath::parse(&format!("{value}/{id}")).map_err(|_| {
            usage(
                &format!("--{flag} {} is not a GitLab group path", quoted(value)),
                "give a group path such as plugins or company/plugins",
            )
        })
    };
    let code = group("plugins-group", &args.plugins_group)?;
    let management = group("deploy-group", &args.deploy_group)?;
    let fleet = ProjectPath::parse(&args.fleet).map_err(invalid)?;
    let allocations_ok = !args.allocations.is_empty()
        && !args.allocations.starts_with('/')
        && args.allocations.split('/').all(|c| {
            !c.is_empty()
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        });
    if !allocations_ok {
        return Err(usage(
            &format!(
                "--allocations {} is not a file path",
                quoted(&args.allocations)
            ),
            "give a path inside the fleet repository, e.g. allocations.yml",
        ));
    }
    check_ci_config(&args.ci_config)?;
    let mut envs: Vec<EnvName> = Vec::new();
    for name in &args.envs {
        let env = EnvName::parse(name).map_err(invalid)?;
        if !envs.contains(&env) {
            envs.push(env);
        }
    }
    let mut domains = Vec::new();
    for env in &envs {
        let derived = if env.as_str() == "production" {
            format!("{id}.{}", args.domain_base)
        } else {
            format!("{id}.{env}.{}", args.domain_base)
        };
        domains.push((env.clone(), DomainName::parse(&derived).map_err(invalid)?));
    }
    for given in &args.domains {
        let Some((env, domain)) = given.split_once('=') else {
            return Err(usage(
                &format!("--domain {} is not ENV=DOMAIN", quoted(given)),
                "e.g. --domain production=shop.example.com",
            ));
        };
        let env = EnvName::parse(env).map_err(invalid)?;
        let domain = DomainName::parse(domain).map_err(invalid)?;
        match domains.iter_mut().find(|(e, _)| *e == env) {
            Some(entry) => entry.1 = domain,
            None => {
                return Err(usage(
                    &format!("--domain names environment {env}, which the app does not have"),
                    "give the environment with --env too",
                ))
            }
        }
    }
    let inventory = match args.inventory.inventory.clone().or(env.inventory.clone()) {
        Some(path) => Some(Inventory::load(&path)?),
        None => None,
    };
    let onboarding = Onboarding {
        id,
        owner,
        code,
        management,
        fleet,
        allocations: args.allocations.clone(),
        ci_config: args.ci_config.clone(),
        envs,
        domains,
    };
    Ok((onboarding, inventory))
}

/// `FILE.yml@GROUP/PROJECT:TAG`: GitLab reads FILE from that project at
/// TAG. An unpinned value (no `:TAG`) would follow the templates' default
/// branch, so it is refused.
fn check_ci_config(value: &str) -> Result<(), CommandError> {
    let hint = "write FILE@GROUP/PROJECT:TAG, e.g. templates/release.yml@platform/ci-templates:v1.0.0, with TAG a protected tag";
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    };
    let parsed = value.split_once('@').and_then(|(file, rest)| {
        let (project, tag) = rest.split_once(':')?;
        Some((file, project, tag))
    });
    match parsed {
        Some((file, project, tag))
            if safe(file)
                && (file.ends_with(".yml") || file.ends_with(".yaml"))
                && ProjectPath::parse(project).is_ok()
                && safe(tag) =>
        {
            Ok(())
        }
        _ => Err(usage(
            &format!(
                "--ci-config {} is not a pinned CI configuration",
                quoted(value)
            ),
            hint,
        )),
    }
}

/// Commits the allocation; when another onboarding changed the file
/// first (GitLab: the file has changed), reads it again and allocates
/// again, a bounded number of times with a short random wait.
fn allocate(
    gitlab: &GitLab,
    applier: &mut Applier<'_>,
    s: &Onboarding,
    first: (AppAllocation, GitLabWrite),
    reporter: &Reporter,
) -> Result<AppAllocation, CommandError> {
    let (mut app, mut write) = (first.0, Some(first.1));
    for attempt in 1..=ALLOCATION_ATTEMPTS {
        let Some(commit) = write else {
            // Another run allocated this app meanwhile.
            return Ok(app);
        };
        match applier.apply(&commit) {
            Ok(_) => {
                reporter.info(&commit.to_string());
                reporter.detail(&format!("allocated {}", describe(&app)));
                return Ok(app);
            }
            Err(e) if e.kind() == ErrorKind::Stale => {
                reporter.detail(&format!(
                    "{} changed meanwhile (attempt {attempt}); reading it again",
                    s.allocations
                ));
                std::thread::sleep(jitter(attempt));
                let file =
                    read_file(gitlab, &s.fleet, &s.allocations, MAIN).map_err(observe_error)?;
                (app, write) = plan_allocation(s, file.as_ref()).map_err(onboarding_error)?;
            }
            Err(e) => return Err(CommandError::Failed(e.into())),
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "{} in {} kept changing: gave up after {ALLOCATION_ATTEMPTS} attempts",
        s.allocations,
        s.fleet
    )))
}

/// A short random wait that grows with the attempt, so racing onboardings
/// spread out instead of colliding again in step.
fn jitter(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let spread = 20 + 20 * u64::from(attempt.min(10));
    Duration::from_millis(hasher.finish() % spread)
}

/// Today's date (UTC): token expiry is counted from it.
fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_unix_days((secs / 86_400) as i64)
}

fn observe_error(error: ObserveError) -> CommandError {
    match error {
        ObserveError::NoSuchUser(_) => usage(
            &error.to_string(),
            "give the outside developer's GitLab user name with --owner; they must have signed in once",
        ),
        ObserveError::GitLab(e) if e.kind() == ErrorKind::Forbidden => CommandError::Failed(
            anyhow::Error::new(e).context(
                "the onboarding token may not do this: it must be a personal access token (scope api) of an Owner of the plugins and deploy groups and a Maintainer of the fleet repository (docs/gitlab.md)",
            ),
        ),
        other => CommandError::Failed(other.into()),
    }
}

fn onboarding_error(error: OnboardingError) -> CommandError {
    match error {
        OnboardingError::Invalid(problems) => CommandError::Invalid(problems),
        other => usage(&other.to_string(), other.hint()),
    }
}

/// A new ed25519 key pair from `ssh-keygen`, made in a private temporary
/// directory that is removed at once.
fn generate_logs_key(id: &AppId) -> Result<LogsKey, CommandError> {
    let dir = tempfile::tempdir().context("create a temporary directory for the logs key")?;
    let path = dir.path().join("key");
    let output = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("berth-logs-{id}"))
        .arg("-f")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            usage(
                &format!("cannot run ssh-keygen: {e}"),
                "install openssh-client (ssh-keygen makes the app's logs key)",
            )
        })?;
    if !output.status.success() {
        return Err(CommandError::Failed(anyhow::anyhow!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let private = std::fs::read_to_string(&path).context("read the new logs key")?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .context("read the new logs public key")?;
    // One line of the base64 alphabet, so GitLab can mask it; `berth logs`
    // decodes it.
    Ok(LogsKey {
        private_base64: Secret::new(base64::engine::general_purpose::STANDARD.encode(private)),
        public: public.trim().to_string(),
    })
}

/// The line for the hosts' `authorized_keys` of the app's logs key.
fn authorized_keys_line(
    id: &crate::config::values::AppId,
    inventory: Option<&Inventory>,
    host: &str,
    public: &str,
) -> String {
    let host =
        inventory.and_then(|inventory| inventory.hosts.iter().find(|h| h.name.as_str() == host));
    let (base, logs) = host.map_or_else(
        || ("/srv/berth".to_string(), "/var/log/nginx/berth".to_string()),
        |host| (host.base_dir.to_string(), host.front.log_dir.to_string()),
    );
    let cgroup = host
        .and_then(|host| host.logs_cgroup.as_ref())
        .map_or(String::new(), |cgroup| format!(" --cgroup {cgroup}"));
    format!(
        "restrict,command=\"berth serve-logs --app {id} --base-dir {base} --log-dir {logs}{cgroup}\" {public}"
    )
}

fn report(
    s: &Onboarding,
    inventory: Option<&Inventory>,
    app: &AppAllocation,
    public_key: &str,
    projects: &Projects,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let (_, code_url) = projects.get(&s.code);
    let (management_id, management_url) = projects.get(&s.management);
    let mut outputs = Outputs::default();
    outputs.set("BERTH_APP", s.id.as_str());
    outputs.set("BERTH_MANAGEMENT_PROJECT", s.management.as_str());
    outputs.set("BERTH_CODE_PROJECT", s.code.as_str());
    let mut text = format!(
        "app {}: code {} , management {}\n",
        s.id, code_url, management_url
    );
    let mut hosts: Vec<&str> = Vec::new();
    let mut environments = Vec::new();
    for e in &app.environments {
        let key = e.env.as_str().to_uppercase().replace('-', "_");
        outputs.set(&format!("BERTH_{key}_HOST"), e.host.as_str());
        outputs.set(
            &format!("BERTH_{key}_PORTS"),
            format!("{},{}", e.ports[0], e.ports[1]),
        );
        text.push_str(&format!(
            "  {}: host {}, ports {} (blue) and {} (green)\n",
            e.env, e.host, e.ports[0], e.ports[1]
        ));
        if !hosts.contains(&e.host.as_str()) {
            hosts.push(e.host.as_str());
        }
        environments.push(serde_json::json!({
            "env": e.env, "host": e.host, "ports": e.ports,
        }));
    }
    let dns = inventory.map_or(Vec::new(), |i| crate::plan::dns::records_of(app, i));
    for line in &dns {
        text.push_str(&format!("  dns: {line}\n"));
    }
    text.push_str("add this line to the deploy user's authorized_keys on");
    let mut lines = Vec::new();
    for host in &hosts {
        let line = authorized_keys_line(&s.id, inventory, host, public_key);
        text.push_str(&format!(" {host}:\n  {line}\n"));
        lines.push(serde_json::json!({"host": host, "line": line}));
    }
    if inventory.is_none() {
        text.push_str("  (directories are the defaults; pass --inventory for the hosts' own)\n");
    }
    reporter.result(
        text.trim_end(),
        &serde_json::json!({
            "ok": true,
            "app": s.id,
            "code_project": s.code,
            "management_project": s.management,
            "management_project_id": management_id,
            "environments": environments,
            "authorized_keys": lines,
            "dns": dns,
        }),
    );
    Ok(outputs.write(env.dotenv.as_deref())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = "hosts:
  web-1:
    ssh: {address: web-1.example.com, user: deploy, known_hosts: \"web-1.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx\"}
    publish_address: 127.0.0.1
    base_dir: /srv/apps
    environments: [test]
    front:
      include_dir: /etc/nginx/berth.d
      log_dir: /var/log/front
      listen: 0.0.0.0:80
      test_command: [/usr/sbin/nginx, -t]
      reload_command: [/usr/sbin/nginx, -s, reload]
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
";

    #[test]
    fn the_logs_keys_forced_command_names_the_hosts_logs_cgroup_when_it_has_one() {
        let id = "shop".parse().unwrap();
        let plain = Inventory::parse("inventory.yml", INVENTORY).unwrap();
        assert_eq!(
            authorized_keys_line(&id, Some(&plain), "web-1", "ssh-ed25519 AAAA k"),
            "restrict,command=\"berth serve-logs --app shop --base-dir /srv/apps --log-dir /var/log/front\" ssh-ed25519 AAAA k"
        );
        let text = format!("{INVENTORY}    logs_cgroup: berth/logs\n");
        let with_cgroup = Inventory::parse("inventory.yml", &text).unwrap();
        assert_eq!(
            authorized_keys_line(&id, Some(&with_cgroup), "web-1", "ssh-ed25519 AAAA k"),
            "restrict,command=\"berth serve-logs --app shop --base-dir /srv/apps --log-dir /var/log/front --cgroup berth/logs\" ssh-ed25519 AAAA k"
        );
        let bad = format!("{INVENTORY}    logs_cgroup: ../logs\n");
        let problems = Inventory::parse("inventory.yml", &bad).unwrap_err();
        assert_eq!(
            problems.0[0].to_string(),
            "inventory.yml:14:18: hosts.web-1.logs_cgroup: cgroup path \"../logs\" leaves its directory with \"..\"\n  hint: give the cgroup's path below the hierarchy's root, such as berth/logs, using letters, digits and . _ - /"
        );
    }
}
