//! The fleet's host and port allocations (`allocations.yml` in the fleet
//! repository): which host each app's environments run on, the port pair
//! of their two slots and the domains they answer to (what `berth dns`
//! publishes; a domain belongs to one app environment of the fleet).
//!
//! Pure: parsing, choosing a host and ports, and writing the file back are
//! functions of the file's text. `berth app create` reads the file through
//! the GitLab API and commits the result with the file's `last_commit_id`,
//! so two onboardings that race are told apart by GitLab and the loser
//! re-reads and chooses again.

use std::fmt::Write as _;

use crate::config::decode::{Decoder, Problems};
use crate::config::values::{AppId, DomainName, EnvName, HostName, Port, ScalarValue};
use crate::config::yaml::{Mark, Node, Value};

/// Where the file lives in the fleet repository, unless told otherwise.
pub const FILE_NAME: &str = "allocations.yml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocations {
    pub hosts: Vec<HostPool>,
    pub apps: Vec<AppAllocation>,
}

/// A host that takes apps: the environments it serves and the ports it
/// hands out to slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPool {
    pub name: HostName,
    pub environments: Vec<EnvName>,
    /// Inclusive.
    pub first: Port,
    /// Inclusive.
    pub last: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAllocation {
    pub app: AppId,
    pub environments: Vec<EnvAllocation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvAllocation {
    pub env: EnvName,
    pub host: HostName,
    /// `[blue, green]`.
    pub ports: [Port; 2],
    /// The names its DNS records are kept for; none in files written
    /// before `berth dns`.
    pub domains: Vec<DomainName>,
}

/// What `allocate` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocated {
    /// The app already has every environment asked for: nothing to write.
    Existing(AppAllocation),
    /// New or extended: `file` is what to commit.
    New {
        app: AppAllocation,
        file: Allocations,
    },
}

impl Allocated {
    pub fn app(&self) -> &AppAllocation {
        match self {
            Allocated::Existing(app) | Allocated::New { app, .. } => app,
        }
    }
}

/// Why no allocation could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("no host in {FILE_NAME} serves environment {0}")]
    NoHostForEnvironment(EnvName),
    #[error("every host serving environment {0} has used up its port range")]
    PortsExhausted(EnvName),
    #[error("domain {domain} is already allocated to {owner}")]
    DomainTaken { domain: DomainName, owner: String },
}

impl AllocationError {
    pub fn hint(&self) -> &'static str {
        match self {
            AllocationError::NoHostForEnvironment(_) => {
                "add the environment to a host's `environments` in the fleet repository's allocations file"
            }
            AllocationError::PortsExhausted(_) => {
                "widen a host's `ports` range or add a host in the fleet repository's allocations file"
            }
            AllocationError::DomainTaken { .. } => {
                "choose another domain with --domain ENV=DOMAIN, or remove it from the other app in the allocations file first"
            }
        }
    }
}

impl Allocations {
    pub fn app(&self, app: &AppId) -> Option<&AppAllocation> {
        self.apps.iter().find(|a| &a.app == app)
    }

    fn used_on(&self, host: &HostName) -> Vec<u16> {
        self.apps
            .iter()
            .flat_map(|a| &a.environments)
            .filter(|e| &e.host == host)
            .flat_map(|e| e.ports.iter().map(|p| p.get()))
            .collect()
    }

    /// Parses the file strictly: unknown keys, ports outside a host's
    /// range, a port given twice on a host, or an app on a host that does
    /// not serve its environment are problems with their line.
    pub fn parse(file: &str, text: &str) -> Result<Allocations, Problems> {
        Decoder::decode_text_limited(
            file,
            text,
            crate::config::yaml::MAX_FLEET_FILE_BYTES,
            decode,
        )
    }

    /// Which app environment holds `domain`, if any.
    pub fn domain_owner(&self, domain: &DomainName) -> Option<(&AppId, &EnvAllocation)> {
        self.apps.iter().find_map(|a| {
            a.environments
                .iter()
                .find(|e| e.domains.contains(domain))
                .map(|e| (&a.app, e))
        })
    }

    /// The file's text: a fixed layout, one line per app environment, so
    /// each commit's diff shows exactly what was allocated.
    pub fn render(&self) -> String {
        let mut out = String::from(HEADER);
        out.push_str("hosts:\n");
        for host in &self.hosts {
            let envs: Vec<&str> = host.environments.iter().map(|e| e.as_str()).collect();
            let _ = writeln!(out, "  {}:", host.name);
            let _ = writeln!(out, "    environments: [{}]", envs.join(", "));
            let _ = writeln!(
                out,
                "    ports: {{first: {}, last: {}}}",
                host.first, host.last
            );
        }
        if self.apps.is_empty() {
            out.push_str("apps: {}\n");
            return out;
        }
        out.push_str("apps:\n");
        for app in &self.apps {
            let _ = writeln!(out, "  {}:", app.app);
            for env in &app.environments {
                let _ = write!(
                    out,
                    "    {}: {{host: {}, ports: [{}, {}]",
                    env.env, env.host, env.ports[0], env.ports[1]
                );
                if !env.domains.is_empty() {
                    let domains: Vec<&str> = env.domains.iter().map(|d| d.as_str()).collect();
                    let _ = write!(out, ", domains: [{}]", domains.join(", "));
                }
                out.push_str("}\n");
            }
        }
        out
    }
}

const HEADER: &str = "\
# Hosts and slot ports of every app. `berth app create` adds apps here with
# a commit that names this file's last commit, so two onboardings never take
# the same ports. Add hosts and widen ranges by hand; keep the layout.
";

/// Gives `app` a host and a port pair for each of `envs`, with the domains
/// given for it. An app that is already allocated keeps its hosts and
/// ports; environments it lacks are added, and an environment's domains
/// become the ones given. A domain held by another app environment is
/// refused.
///
/// A host is chosen among those serving the environment: the one with the
/// fewest ports in use (then by name) that still has two free ports. The
/// ports are the lowest two free ones in the host's range.
pub fn allocate(
    file: &Allocations,
    app: &AppId,
    envs: &[(EnvName, Vec<DomainName>)],
) -> Result<Allocated, AllocationError> {
    for (env, domains) in envs {
        for domain in domains {
            match file.domain_owner(domain) {
                Some((owner, e)) if owner != app || &e.env != env => {
                    return Err(AllocationError::DomainTaken {
                        domain: domain.clone(),
                        owner: format!("{owner}/{}", e.env),
                    })
                }
                _ => {}
            }
        }
    }
    let existing = file.app(app);
    let missing: Vec<&EnvName> = envs
        .iter()
        .map(|(env, _)| env)
        .filter(|env| existing.is_none_or(|a| !a.environments.iter().any(|e| &e.env == *env)))
        .collect();
    let domains_of = |env: &EnvName| -> Vec<DomainName> {
        envs.iter()
            .find(|(e, _)| e == env)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    let same_domains = existing.is_some_and(|a| {
        a.environments
            .iter()
            .all(|e| envs.iter().all(|(env, d)| env != &e.env || d == &e.domains))
    });
    if let (Some(existing), true, true) = (existing, missing.is_empty(), same_domains) {
        return Ok(Allocated::Existing(existing.clone()));
    }
    let mut next = file.clone();
    let mut allocation = existing.cloned().unwrap_or(AppAllocation {
        app: app.clone(),
        environments: Vec::new(),
    });
    for e in &mut allocation.environments {
        if envs.iter().any(|(env, _)| env == &e.env) {
            e.domains = domains_of(&e.env);
        }
    }
    for env in missing {
        let mut candidates: Vec<(&HostPool, Vec<u16>)> = next
            .hosts
            .iter()
            .filter(|h| h.environments.contains(env))
            .map(|h| {
                let mut used = next.used_on(&h.name);
                used.extend(
                    allocation
                        .environments
                        .iter()
                        .filter(|e| e.host == h.name)
                        .flat_map(|e| e.ports.iter().map(|p| p.get())),
                );
                (h, used)
            })
            .collect();
        if candidates.is_empty() {
            return Err(AllocationError::NoHostForEnvironment(env.clone()));
        }
        candidates.sort_by(|(a, used_a), (b, used_b)| {
            used_a.len().cmp(&used_b.len()).then(a.name.cmp(&b.name))
        });
        let chosen = candidates.iter().find_map(|(host, used)| {
            let mut free = (host.first.get()..=host.last.get()).filter(|p| !used.contains(p));
            let blue = free.next()?;
            let green = free.next()?;
            Some(EnvAllocation {
                env: env.clone(),
                host: host.name.clone(),
                ports: [port(blue), port(green)],
                domains: domains_of(env),
            })
        });
        match chosen {
            Some(env_allocation) => allocation.environments.push(env_allocation),
            None => return Err(AllocationError::PortsExhausted(env.clone())),
        }
    }
    match next.apps.iter_mut().find(|a| &a.app == app) {
        Some(entry) => *entry = allocation.clone(),
        None => next.apps.push(allocation.clone()),
    }
    Ok(Allocated::New {
        app: allocation,
        file: next,
    })
}

fn port(n: u16) -> Port {
    Port::parse(&n.to_string()).expect("ports come from a range of valid ports")
}

fn decode(d: &mut Decoder, root: &Node) -> Option<Allocations> {
    let mut f = d.mapping(root, "")?;
    let hosts = f.required(d, "hosts", |d, node, key| d.named(node, key, decode_host));
    let apps = f.required(d, "apps", |d, node, key| {
        if matches!(&node.value, Value::Mapping(entries) if entries.is_empty()) {
            return Some(Vec::new());
        }
        d.named(node, key, |d, app: Option<AppId>, mark, node, key| {
            let environments = d.named(node, key, |d, env: Option<EnvName>, mark, node, key| {
                let mut f = d.mapping(node, key)?;
                let host = f.required(d, "host", Decoder::scalar::<HostName>);
                let ports = f.required(d, "ports", |d, node, key| {
                    let ports = d.list(node, key, Decoder::scalar::<Port>)?;
                    match ports.as_slice() {
                        [blue, green] if blue != green => Some([*blue, *green]),
                        _ => {
                            d.problem(
                                node.mark,
                                key,
                                "expected two different ports",
                                "give one port per slot: [blue, green]",
                            );
                            None
                        }
                    }
                });
                let domains = f.optional(d, "domains", |d, node, key| {
                    d.list(node, key, Decoder::scalar::<DomainName>)
                });
                f.finish(d);
                Some((
                    EnvAllocation {
                        env: env?,
                        host: host?,
                        ports: ports?,
                        domains: domains.unwrap_or_default(),
                    },
                    mark,
                ))
            });
            Some((app?, mark, environments?))
        })
    });
    f.finish(d);
    let hosts = hosts?;
    let apps = apps?;
    check(d, &hosts, &apps);
    Some(Allocations {
        hosts,
        apps: apps
            .into_iter()
            .map(|(app, _, envs)| AppAllocation {
                app,
                environments: envs.into_iter().map(|(e, _)| e).collect(),
            })
            .collect(),
    })
}

type ParsedApp = (AppId, Mark, Vec<(EnvAllocation, Mark)>);

fn check(d: &mut Decoder, hosts: &[HostPool], apps: &[ParsedApp]) {
    let mut taken: std::collections::HashMap<(&HostName, u16), String> = Default::default();
    let mut domains: std::collections::HashMap<&DomainName, String> = Default::default();
    for (app, _, envs) in apps {
        for (env, mark) in envs {
            let key = format!("apps.{app}.{}", env.env);
            for domain in &env.domains {
                if let Some(owner) = domains.insert(domain, key.clone()) {
                    d.problem(
                        *mark,
                        &key,
                        format!("domain {domain} is also allocated to {owner}"),
                        "a domain belongs to one app environment; remove it from one of them",
                    );
                }
            }
            let Some(host) = hosts.iter().find(|h| h.name == env.host) else {
                d.problem(
                    *mark,
                    &key,
                    format!("host {} is not listed under hosts", env.host),
                    "add the host under `hosts:` or correct the name",
                );
                continue;
            };
            if !host.environments.contains(&env.env) {
                d.problem(
                    *mark,
                    &key,
                    format!("host {} does not serve environment {}", host.name, env.env),
                    "add the environment to the host's `environments`",
                );
            }
            for p in env.ports {
                if p < host.first || p > host.last {
                    d.problem(
                        *mark,
                        &key,
                        format!(
                            "port {p} is outside host {}'s range {}-{}",
                            host.name, host.first, host.last
                        ),
                        "keep allocated ports inside the host's range",
                    );
                }
                if let Some(owner) = taken.get(&(&host.name, p.get())) {
                    d.problem(
                        *mark,
                        &key,
                        format!(
                            "port {p} on host {} is also allocated to {owner}",
                            host.name
                        ),
                        "each port of a host belongs to one slot; give one of them other ports",
                    );
                }
                taken
                    .entry((&host.name, p.get()))
                    .or_insert_with(|| key.clone());
            }
        }
    }
}

fn decode_host(
    d: &mut Decoder,
    name: Option<HostName>,
    _mark: Mark,
    node: &Node,
    key: &str,
) -> Option<HostPool> {
    let mut f = d.mapping(node, key)?;
    let environments = f.required(d, "environments", |d, node, key| {
        d.list(node, key, Decoder::scalar::<EnvName>)
    });
    let range = f.required(d, "ports", |d, node, key| {
        let mut f = d.mapping(node, key)?;
        let first = f.required(d, "first", Decoder::scalar::<Port>);
        let last = f.required(d, "last", Decoder::scalar::<Port>);
        f.finish(d);
        let (first, last) = (first?, last?);
        if last.get() <= first.get() {
            d.problem(
                node.mark,
                key,
                format!("the range {first}-{last} holds fewer than two ports"),
                "give first < last, e.g. {first: 18000, last: 18999}",
            );
            return None;
        }
        Some((first, last))
    });
    f.finish(d);
    let (first, last) = range?;
    Some(HostPool {
        name: name?,
        environments: environments?,
        first,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
hosts:
  web-1:
    environments: [test, production]
    ports: {first: 18000, last: 18005}
  web-2:
    environments: [production]
    ports: {first: 19000, last: 19001}
apps: {}
";

    fn id(s: &str) -> AppId {
        s.parse().unwrap()
    }

    fn envs(names: &[&str]) -> Vec<(EnvName, Vec<DomainName>)> {
        names
            .iter()
            .map(|n| (n.parse().unwrap(), Vec::new()))
            .collect()
    }

    fn with_domain(env: &str, domain: &str) -> Vec<(EnvName, Vec<DomainName>)> {
        vec![(env.parse().unwrap(), vec![domain.parse().unwrap()])]
    }

    fn ports(app: &AppAllocation) -> Vec<(String, String, u16, u16)> {
        app.environments
            .iter()
            .map(|e| {
                (
                    e.env.to_string(),
                    e.host.to_string(),
                    e.ports[0].get(),
                    e.ports[1].get(),
                )
            })
            .collect()
    }

    #[test]
    fn new_apps_get_the_least_used_host_and_its_lowest_free_ports() {
        let file = Allocations::parse("allocations.yml", FILE).unwrap();
        let Allocated::New { app, file } =
            allocate(&file, &id("one"), &envs(&["test", "production"])).unwrap()
        else {
            panic!("a new app is new")
        };
        assert_eq!(
            ports(&app),
            [
                ("test".into(), "web-1".into(), 18000, 18001),
                ("production".into(), "web-2".into(), 19000, 19001),
            ]
        );
        let Allocated::New { app, file } =
            allocate(&file, &id("two"), &envs(&["test", "production"])).unwrap()
        else {
            panic!("a new app is new")
        };
        assert_eq!(
            ports(&app),
            [
                ("test".into(), "web-1".into(), 18002, 18003),
                ("production".into(), "web-1".into(), 18004, 18005),
            ]
        );
        assert_eq!(
            allocate(&file, &id("three"), &envs(&["test"])),
            Err(AllocationError::PortsExhausted("test".parse().unwrap()))
        );
        assert_eq!(
            allocate(&file, &id("three"), &envs(&["staging"])),
            Err(AllocationError::NoHostForEnvironment(
                "staging".parse().unwrap()
            ))
        );
    }

    #[test]
    fn an_allocated_app_keeps_its_ports_and_gains_missing_environments() {
        let file = Allocations::parse("allocations.yml", FILE).unwrap();
        let Allocated::New { file, .. } = allocate(&file, &id("one"), &envs(&["test"])).unwrap()
        else {
            panic!("new")
        };
        let again = allocate(&file, &id("one"), &envs(&["test"])).unwrap();
        assert!(matches!(again, Allocated::Existing(_)));
        assert_eq!(
            ports(again.app()),
            [("test".into(), "web-1".into(), 18000, 18001)]
        );
        let Allocated::New { app, file } =
            allocate(&file, &id("one"), &envs(&["test", "production"])).unwrap()
        else {
            panic!("extended")
        };
        assert_eq!(app.environments.len(), 2);
        assert_eq!(file.apps.len(), 1);
    }

    #[test]
    fn the_rendered_file_parses_back_to_the_same_allocations() {
        let mut file = Allocations::parse("allocations.yml", FILE).unwrap();
        assert_eq!(
            Allocations::parse("a", &file.render()).unwrap(),
            file,
            "empty apps"
        );
        for name in ["a", "b", "c"] {
            if let Allocated::New { file: next, .. } =
                allocate(&file, &id(name), &envs(&["test"])).unwrap()
            {
                file = next;
            }
        }
        let text = file.render();
        assert!(text.contains("  b:\n    test: {host: web-1, ports: [18002, 18003]}\n"));
        assert_eq!(Allocations::parse("a", &text).unwrap(), file);
    }

    #[test]
    fn domains_are_recorded_and_belong_to_one_app_environment() {
        let file = Allocations::parse("allocations.yml", FILE).unwrap();
        let Allocated::New { file, .. } = allocate(
            &file,
            &id("one"),
            &with_domain("test", "one.test.example.com"),
        )
        .unwrap() else {
            panic!("new")
        };
        let text = file.render();
        assert!(text.contains(
            "  one:\n    test: {host: web-1, ports: [18000, 18001], domains: [one.test.example.com]}\n"
        ));
        assert_eq!(Allocations::parse("a", &text).unwrap(), file);
        // The same request again changes nothing; new domains replace the old.
        assert!(matches!(
            allocate(
                &file,
                &id("one"),
                &with_domain("test", "one.test.example.com")
            )
            .unwrap(),
            Allocated::Existing(_)
        ));
        let Allocated::New { app, .. } =
            allocate(&file, &id("one"), &with_domain("test", "shop.example.com")).unwrap()
        else {
            panic!("changed domains are a new allocation")
        };
        assert_eq!(
            app.environments[0].domains,
            ["shop.example.com".parse().unwrap()]
        );
        assert_eq!(
            app.environments[0].ports,
            file.apps[0].environments[0].ports
        );
        assert_eq!(
            allocate(
                &file,
                &id("two"),
                &with_domain("test", "one.test.example.com")
            ),
            Err(AllocationError::DomainTaken {
                domain: "one.test.example.com".parse().unwrap(),
                owner: "one/test".into()
            })
        );
        let twice = format!(
            "{}  two:\n    production: {{host: web-2, ports: [19000, 19001], domains: [one.test.example.com]}}\n",
            text
        );
        assert_eq!(
            Allocations::parse("allocations.yml", &twice)
                .unwrap_err()
                .0
                .iter()
                .map(|p| format!("{}: {}", p.line.unwrap(), p.message))
                .collect::<Vec<_>>(),
            ["15: domain one.test.example.com is also allocated to apps.one.test"]
        );
    }

    #[test]
    fn inconsistent_files_are_refused_with_their_lines() {
        let text = "\
hosts:
  web-1:
    environments: [test]
    ports: {first: 18000, last: 18009}
apps:
  one:
    test: {host: web-1, ports: [18000, 18001]}
  two:
    test: {host: web-1, ports: [18001, 18020]}
    production: {host: web-9, ports: [18002, 18003]}
  three:
    test: {host: web-1, ports: [18004, 18005], extra: 1}
";
        let problems = Allocations::parse("allocations.yml", text).unwrap_err();
        let lines: Vec<String> = problems
            .0
            .iter()
            .map(|p| format!("{}: {}", p.line.unwrap(), p.message))
            .collect();
        assert_eq!(
            lines,
            [
                "9: port 18001 on host web-1 is also allocated to apps.one.test",
                "9: port 18020 is outside host web-1's range 18000-18009",
                "10: host web-9 is not listed under hosts",
                "12: unknown key \"extra\"",
            ]
        );
    }
}
