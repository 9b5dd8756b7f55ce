//! What `berth dns` does to a zone, as data: the names the fleet wants
//! (each domain of `allocations.yml`, pointing at its host's public
//! addresses), compared with what the provider holds, gives the names to
//! create, update and delete.
//!
//! Ownership: beside each name it keeps, berth keeps a TXT record at
//! `_berth.<name>` saying `heritage=berth,berth/owner=<owner>,…` (the idea
//! of external-dns's TXT registry). A name is berth's only when that record
//! carries this fleet's owner id: berth never writes over, nor deletes, a
//! record it does not own, and reports the record in the way instead.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::dns::{in_zone, DnsSettings, ZoneSettings};
use crate::config::values::{AppId, DomainName, EnvName};
use crate::config::Inventory;
use crate::plan::allocation::{Allocations, AppAllocation};

/// The label of the ownership record, prefixed to the name it vouches for.
pub const OWNER_LABEL: &str = "_berth";
/// octoDNS applies its thresholds only to zones with at least this many
/// records (`MIN_EXISTING_RECORDS`); a young zone may change wholesale.
pub const MIN_NAMES_FOR_THRESHOLD: usize = 10;
/// Record types that cannot share a name with berth's A/AAAA records.
const IN_THE_WAY: [&str; 4] = ["A", "AAAA", "CNAME", "ALIAS"];

/// A record set as a provider holds it: the name in lowercase without the
/// final dot, TXT contents without quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub records: Vec<String>,
}

/// What one domain should resolve to, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub domain: DomainName,
    pub app: AppId,
    pub env: EnvName,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

/// Why the fleet's names cannot all be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WantedError {
    #[error("domain {domain} of {app}/{env} is in no zone of the inventory's dns.zones")]
    NoZone {
        domain: DomainName,
        app: AppId,
        env: EnvName,
    },
    #[error("{app}/{env} runs on host {host}, which is not in the host inventory")]
    UnknownHost {
        app: AppId,
        env: EnvName,
        host: String,
    },
    #[error("host {host} has neither public_ipv4 nor public_ipv6 in the host inventory")]
    NoPublicAddress { host: String },
    #[error("domain {domain} is too long to carry an ownership record ({OWNER_LABEL}.{domain})")]
    TooLong { domain: DomainName },
}

impl WantedError {
    pub fn hint(&self) -> &'static str {
        match self {
            WantedError::NoZone { .. } => {
                "add the zone under dns.zones in the host inventory, or allocate a domain in a zone berth keeps"
            }
            WantedError::UnknownHost { .. } => {
                "add the host to the inventory or correct allocations.yml"
            }
            WantedError::NoPublicAddress { .. } => {
                "give the host public_ipv4 (and public_ipv6 when it has one): the address clients reach its front at"
            }
            WantedError::TooLong { .. } => "use a domain of at most 246 characters",
        }
    }
}

/// Every allocated domain with the addresses it should resolve to, in the
/// order of the allocations file. All problems are collected.
pub fn wanted(
    allocations: &Allocations,
    inventory: &Inventory,
    dns: &DnsSettings,
) -> Result<Vec<Wanted>, Vec<WantedError>> {
    match wanted_and_problems(allocations, inventory, dns) {
        (names, problems) if problems.is_empty() => Ok(names),
        (_, problems) => Err(problems),
    }
}

/// The names that can be planned, and the problems of the others.
pub fn wanted_and_problems(
    allocations: &Allocations,
    inventory: &Inventory,
    dns: &DnsSettings,
) -> (Vec<Wanted>, Vec<WantedError>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for app in &allocations.apps {
        for env in &app.environments {
            if env.domains.is_empty() {
                continue;
            }
            let Some(host) = inventory.host(&env.host) else {
                problems.push(WantedError::UnknownHost {
                    app: app.app.clone(),
                    env: env.env.clone(),
                    host: env.host.to_string(),
                });
                continue;
            };
            if host.public_ipv4.is_none() && host.public_ipv6.is_none() {
                let problem = WantedError::NoPublicAddress {
                    host: host.name.to_string(),
                };
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
                continue;
            }
            for domain in &env.domains {
                if dns.zone_of(domain).is_none() {
                    problems.push(WantedError::NoZone {
                        domain: domain.clone(),
                        app: app.app.clone(),
                        env: env.env.clone(),
                    });
                    continue;
                }
                if domain.as_str().len() + OWNER_LABEL.len() + 1 > 253 {
                    problems.push(WantedError::TooLong {
                        domain: domain.clone(),
                    });
                    continue;
                }
                out.push(Wanted {
                    domain: domain.clone(),
                    app: app.app.clone(),
                    env: env.env.clone(),
                    ipv4: host.public_ipv4.into_iter().collect(),
                    ipv6: host.public_ipv6.into_iter().collect(),
                });
            }
        }
    }
    (out, problems)
}

/// The first line of berth's DNS note on a merge request.
pub const NOTE_MARKER: &str = "<!-- berth:dns -->";

/// How the names the fleet wants differ between two allocations files,
/// one line per domain, by name: `+` new, `-` gone, `~` changed.
pub fn changes_between(before: &[Wanted], after: &[Wanted]) -> Vec<String> {
    let mut names: Vec<&DomainName> = before.iter().chain(after).map(|w| &w.domain).collect();
    names.sort();
    names.dedup();
    let show = |w: &Wanted| format!("{} ({}/{})", addresses(&w.ipv4, &w.ipv6), w.app, w.env);
    names
        .into_iter()
        .filter_map(|name| {
            let old = before.iter().find(|w| &w.domain == name);
            let new = after.iter().find(|w| &w.domain == name);
            match (old, new) {
                (None, Some(new)) => Some(format!("+ {name} {}", show(new))),
                (Some(old), None) => Some(format!("- {name} {}", show(old))),
                (Some(old), Some(new)) if old != new => {
                    Some(format!("~ {name} {} -> {}", show(old), show(new)))
                }
                _ => None,
            }
        })
        .collect()
}

/// The note on a merge request of the fleet repository: what its merge
/// changes in DNS, and what cannot be published. Every value in it is a
/// validated domain, app, environment or address.
pub fn diff_note(merge_request: u64, changes: &[String], problems: &[WantedError]) -> String {
    let mut note = format!("{NOTE_MARKER}\n### DNS changes of !{merge_request}\n\n");
    if changes.is_empty() {
        note.push_str("None: no domain or host address berth publishes changes.\n");
    } else {
        note.push_str("Once this is merged, `berth dns apply` makes these changes:\n\n```diff\n");
        for line in changes {
            note.push_str(line);
            note.push('\n');
        }
        note.push_str("```\n");
    }
    if !problems.is_empty() {
        note.push_str("\n**Cannot be published** (`berth dns apply` will refuse):\n\n");
        for problem in problems {
            let _ = writeln!(note, "- {problem}; {}", problem.hint());
        }
    }
    note
}

/// What `berth dns apply` will publish for a newly allocated app, one
/// line per domain, for `berth app create` to show: the records and their
/// zone, or why none will be published.
pub fn records_of(app: &AppAllocation, inventory: &Inventory) -> Vec<String> {
    let Some(dns) = &inventory.dns else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for env in &app.environments {
        let host = inventory.host(&env.host);
        for domain in &env.domains {
            let zone = dns.zone_of(domain);
            let line = match (zone, host) {
                (None, _) => format!(
                    "{domain} ({}): in no zone berth keeps; publish its record yourself",
                    env.env
                ),
                (Some(_), None) => format!(
                    "{domain} ({}): host {} is not in the inventory",
                    env.env, env.host
                ),
                (Some(zone), Some(host)) => {
                    let ipv4: Vec<Ipv4Addr> = host.public_ipv4.into_iter().collect();
                    let ipv6: Vec<Ipv6Addr> = host.public_ipv6.into_iter().collect();
                    if ipv4.is_empty() && ipv6.is_empty() {
                        format!(
                            "{domain} ({}): host {} has no public_ipv4 or public_ipv6 to point at",
                            env.env, host.name
                        )
                    } else {
                        format!(
                            "{domain} ({}): {} ttl {} in zone {} ({}), published by `berth dns apply`",
                            env.env,
                            addresses(&ipv4, &ipv6),
                            dns.ttl,
                            zone.zone,
                            zone.provider.kind()
                        )
                    }
                }
            };
            lines.push(line);
        }
    }
    lines
}

/// The name of the ownership record of `name`.
pub fn owner_name(name: &str) -> String {
    format!("{OWNER_LABEL}.{name}")
}

/// The text of an ownership record.
pub fn owner_text(owner: &str, app: &AppId, env: &EnvName) -> String {
    format!("heritage=berth,berth/owner={owner},berth/app={app},berth/env={env}")
}

/// The owner id an ownership record names, if it is one of berth's.
fn owner_of(text: &str) -> Option<&str> {
    let mut heritage = false;
    let mut owner = None;
    for pair in text.split(',') {
        match pair.split_once('=') {
            Some(("heritage", "berth")) => heritage = true,
            Some(("berth/owner", value)) => owner = Some(value),
            _ => {}
        }
    }
    owner.filter(|_| heritage)
}

/// What berth has published at one of its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub ttl: u32,
    pub a: Vec<String>,
    pub aaaa: Vec<String>,
    /// The ownership record's text, exactly as held.
    pub owner_text: String,
}

/// One name's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    Create { want: Wanted },
    Update { want: Wanted, before: Published },
    Delete { name: String, before: Published },
}

impl NameChange {
    pub fn name(&self) -> &str {
        match self {
            NameChange::Create { want } | NameChange::Update { want, .. } => want.domain.as_str(),
            NameChange::Delete { name, .. } => name,
        }
    }
}

/// A wanted name that berth may not write: a record it does not own is
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    pub app: AppId,
    pub env: EnvName,
    /// The record in the way, as a zone file line.
    pub record: String,
}

/// What a sync does to one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonePlan {
    pub zone: DomainName,
    pub provider: &'static str,
    pub ttl: u32,
    pub owner: String,
    pub changes: Vec<NameChange>,
    pub conflicts: Vec<Conflict>,
    /// Names berth owned in the zone before the sync.
    pub owned: usize,
    pub unchanged: usize,
}

/// A zone's sync would change more than the threshold allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverThreshold {
    pub zone: DomainName,
    pub updates: usize,
    pub deletes: usize,
    pub owned: usize,
    pub max_percent: u32,
}

impl fmt::Display for OverThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zone {}: {} update(s) and {} delete(s) of the {} names berth owns there exceed the {}% threshold",
            self.zone, self.updates, self.deletes, self.owned, self.max_percent
        )
    }
}

impl ZonePlan {
    pub fn count(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for change in &self.changes {
            match change {
                NameChange::Create { .. } => counts.0 += 1,
                NameChange::Update { .. } => counts.1 += 1,
                NameChange::Delete { .. } => counts.2 += 1,
            }
        }
        counts
    }

    /// octoDNS's rule: with enough names in the zone, the updates and the
    /// deletes may each be at most `max_percent` of them.
    pub fn check_threshold(&self, max_percent: u32) -> Result<(), OverThreshold> {
        let (_, updates, deletes) = self.count();
        let over = |n: usize| n * 100 > self.owned * max_percent as usize;
        if self.owned >= MIN_NAMES_FOR_THRESHOLD && (over(updates) || over(deletes)) {
            return Err(OverThreshold {
                zone: self.zone.clone(),
                updates,
                deletes,
                owned: self.owned,
                max_percent,
            });
        }
        Ok(())
    }

    /// The record sets to write, in order: what each changed name should
    /// hold afterwards (`records` empty: delete the set).
    pub fn writes(&self) -> Vec<SetWrite> {
        let mut out = Vec::new();
        for change in &self.changes {
            let (name, after, before) = match change {
                NameChange::Create { want } => (want.domain.as_str(), Some(want), None),
                NameChange::Update { want, before } => {
                    (want.domain.as_str(), Some(want), Some(before))
                }
                NameChange::Delete { name, before } => (name.as_str(), None, Some(before)),
            };
            let had = |rtype: &str| {
                before.is_some_and(|b| match rtype {
                    "A" => !b.a.is_empty(),
                    "AAAA" => !b.aaaa.is_empty(),
                    _ => true,
                })
            };
            let a: Vec<String> = after.map_or(Vec::new(), |w| {
                w.ipv4.iter().map(ToString::to_string).collect()
            });
            let aaaa: Vec<String> = after.map_or(Vec::new(), |w| {
                w.ipv6.iter().map(ToString::to_string).collect()
            });
            let txt: Vec<String> = after.map_or(Vec::new(), |w| {
                vec![owner_text(&self.owner, &w.app, &w.env)]
            });
            for (set_name, rtype, records) in [
                (name.to_string(), "A", a),
                (name.to_string(), "AAAA", aaaa),
                (owner_name(name), "TXT", txt),
            ] {
                if records.is_empty() && !had(rtype) {
                    continue;
                }
                out.push(SetWrite {
                    name: set_name,
                    rtype,
                    ttl: self.ttl,
                    records,
                });
            }
        }
        out
    }

    /// The text `berth dns plan` prints for this zone.
    pub fn describe(&self) -> String {
        let (create, update, delete) = self.count();
        let mut out = format!(
            "zone {} ({}): {create} to create, {update} to update, {delete} to delete, {} unchanged",
            self.zone, self.provider, self.unchanged
        );
        if !self.conflicts.is_empty() {
            let _ = write!(out, ", {} in conflict", self.conflicts.len());
        }
        out.push('\n');
        for change in &self.changes {
            let _ = match change {
                NameChange::Create { want } => writeln!(
                    out,
                    "  + {} {} ({}/{})",
                    want.domain,
                    addresses(&want.ipv4, &want.ipv6),
                    want.app,
                    want.env
                ),
                NameChange::Update { want, before } => writeln!(
                    out,
                    "  ~ {} {} -> {} ({}/{})",
                    want.domain,
                    published(before),
                    addresses(&want.ipv4, &want.ipv6),
                    want.app,
                    want.env
                ),
                NameChange::Delete { name, before } => {
                    writeln!(out, "  - {name} {}", published(before))
                }
            };
        }
        for conflict in &self.conflicts {
            let _ = writeln!(
                out,
                "  ! {} ({}/{}): not berth's: {}",
                conflict.name, conflict.app, conflict.env, conflict.record
            );
        }
        out
    }
}

fn addresses(ipv4: &[Ipv4Addr], ipv6: &[Ipv6Addr]) -> String {
    let mut parts: Vec<String> = ipv4.iter().map(|a| format!("A {a}")).collect();
    parts.extend(ipv6.iter().map(|a| format!("AAAA {a}")));
    parts.join(", ")
}

fn published(p: &Published) -> String {
    let mut parts: Vec<String> = p.a.iter().map(|a| format!("A {a}")).collect();
    parts.extend(p.aaaa.iter().map(|a| format!("AAAA {a}")));
    format!("{} ttl {}", parts.join(", "), p.ttl)
}

/// One record set to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWrite {
    pub name: String,
    pub rtype: &'static str,
    pub ttl: u32,
    /// Empty: delete the set.
    pub records: Vec<String>,
}

/// Compares the names the fleet wants in `zone` with what the zone holds.
pub fn plan_zone(
    zone: &ZoneSettings,
    dns: &DnsSettings,
    wanted: &[Wanted],
    held: &[RecordSet],
) -> ZonePlan {
    let owner = dns.owner.as_str();
    let mut by_name: BTreeMap<&str, Vec<&RecordSet>> = BTreeMap::new();
    for set in held {
        by_name.entry(set.name.as_str()).or_default().push(set);
    }
    let set = |name: &str, rtype: &str| -> Option<&RecordSet> {
        by_name
            .get(name)
            .and_then(|sets| sets.iter().find(|s| s.rtype == rtype).copied())
    };
    // The names this owner holds in the zone, with what is published there.
    let mut ours: BTreeMap<String, Published> = BTreeMap::new();
    for s in held.iter().filter(|s| s.rtype == "TXT") {
        let Some(name) = s
            .name
            .strip_prefix(OWNER_LABEL)
            .and_then(|n| n.strip_prefix('.'))
        else {
            continue;
        };
        let Some(text) = s.records.iter().find(|t| owner_of(t) == Some(owner)) else {
            continue;
        };
        let values = |rtype| set(name, rtype).map_or(Vec::new(), |s| sorted(&s.records));
        let ttl = set(name, "A")
            .or(set(name, "AAAA"))
            .map_or(s.ttl, |s| s.ttl);
        ours.insert(
            name.to_string(),
            Published {
                ttl,
                a: values("A"),
                aaaa: values("AAAA"),
                owner_text: text.clone(),
            },
        );
    }
    let mut plan = ZonePlan {
        zone: zone.zone.clone(),
        provider: zone.provider.kind(),
        ttl: dns.ttl,
        owner: owner.to_string(),
        changes: Vec::new(),
        conflicts: Vec::new(),
        owned: ours.len(),
        unchanged: 0,
    };
    let mut wanted_here: Vec<&Wanted> = wanted
        .iter()
        .filter(|w| dns.zone_of(&w.domain).is_some_and(|z| z.zone == zone.zone))
        .collect();
    wanted_here.sort_by(|a, b| a.domain.cmp(&b.domain));
    for want in &wanted_here {
        let name = want.domain.as_str();
        if let Some(before) = ours.get(name) {
            let same = before.ttl == dns.ttl
                && before.a == sorted(&strings(&want.ipv4))
                && before.aaaa == sorted(&strings(&want.ipv6))
                && before.owner_text == owner_text(owner, &want.app, &want.env);
            if same {
                plan.unchanged += 1;
            } else {
                plan.changes.push(NameChange::Update {
                    want: (*want).clone(),
                    before: before.clone(),
                });
            }
            continue;
        }
        let in_the_way = IN_THE_WAY
            .iter()
            .find_map(|t| set(name, t))
            .map(|s| format!("{}. {} {} {}", s.name, s.ttl, s.rtype, s.records.join(" ")))
            .or_else(|| {
                set(&owner_name(name), "TXT")
                    .map(|s| format!("{}. {} TXT \"{}\"", s.name, s.ttl, s.records.join("\" \"")))
            });
        match in_the_way {
            Some(record) => plan.conflicts.push(Conflict {
                name: name.to_string(),
                app: want.app.clone(),
                env: want.env.clone(),
                record,
            }),
            None => plan.changes.push(NameChange::Create {
                want: (*want).clone(),
            }),
        }
    }
    let wanted_names: std::collections::HashSet<&str> =
        wanted_here.iter().map(|w| w.domain.as_str()).collect();
    for (name, before) in &ours {
        let still = wanted_names.contains(name.as_str());
        if !still && in_zone(name, zone.zone.as_str()) {
            plan.changes.push(NameChange::Delete {
                name: name.clone(),
                before: before.clone(),
            });
        }
    }
    plan
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DnsSettings {
        let text = "\
hosts:
  web-1:
    ssh: {address: 127.0.0.1, user: deploy, known_hosts: '[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx'}
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test, production]
    front: {include_dir: /etc/nginx/berth, log_dir: /var/log/berth, listen: '127.0.0.1:80', test_command: [/usr/sbin/nginx, -t], reload_command: [/usr/sbin/nginx, -s, reload]}
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
dns:
  ttl: 60
  zones:
    apps.test:
      powerdns: {api: 'http://127.0.0.1:8081', api_key_variable: BERTH_DNS_KEY}
";
        crate::config::Inventory::parse("inventory.yml", text)
            .unwrap()
            .dns
            .unwrap()
    }

    fn want(domain: &str, app: &str, ip: &str) -> Wanted {
        Wanted {
            domain: domain.parse().unwrap(),
            app: app.parse().unwrap(),
            env: "production".parse().unwrap(),
            ipv4: vec![ip.parse().unwrap()],
            ipv6: Vec::new(),
        }
    }

    fn set(name: &str, rtype: &str, ttl: u32, records: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: rtype.into(),
            ttl,
            records: records.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn ours(name: &str, app: &str, ip: &str) -> [RecordSet; 2] {
        [
            set(name, "A", 60, &[ip]),
            set(
                &owner_name(name),
                "TXT",
                60,
                &[&format!(
                    "heritage=berth,berth/owner=berth,berth/app={app},berth/env=production"
                )],
            ),
        ]
    }

    #[test]
    fn creates_updates_deletes_and_leaves_the_rest() {
        let dns = settings();
        let mut held = vec![
            set(
                "apps.test",
                "SOA",
                3600,
                &["ns1.apps.test. hostmaster.apps.test. 1 10800 3600 604800 3600"],
            ),
            set("apps.test", "NS", 3600, &["ns1.apps.test."]),
        ];
        held.extend(ours("same.apps.test", "same", "192.0.2.1"));
        held.extend(ours("moved.apps.test", "moved", "192.0.2.1"));
        held.extend(ours("gone.apps.test", "gone", "192.0.2.1"));
        let wanted = [
            want("same.apps.test", "same", "192.0.2.1"),
            want("moved.apps.test", "moved", "192.0.2.2"),
            want("new.apps.test", "new", "192.0.2.3"),
            want("elsewhere.example.com", "other", "192.0.2.3"),
        ];
        let plan = plan_zone(&dns.zones[0], &dns, &wanted, &held);
        assert_eq!(
            plan.describe(),
            "zone apps.test (powerdns): 1 to create, 1 to update, 1 to delete, 1 unchanged
  ~ moved.apps.test A 192.0.2.1 ttl 60 -> A 192.0.2.2 (moved/production)
  + new.apps.test A 192.0.2.3 (new/production)
  - gone.apps.test A 192.0.2.1 ttl 60
"
        );
        let writes: Vec<String> = plan
            .writes()
            .iter()
            .map(|w| format!("{} {} {} {:?}", w.name, w.rtype, w.ttl, w.records))
            .collect();
        assert_eq!(
            writes,
            [
                "moved.apps.test A 60 [\"192.0.2.2\"]",
                "_berth.moved.apps.test TXT 60 [\"heritage=berth,berth/owner=berth,berth/app=moved,berth/env=production\"]",
                "new.apps.test A 60 [\"192.0.2.3\"]",
                "_berth.new.apps.test TXT 60 [\"heritage=berth,berth/owner=berth,berth/app=new,berth/env=production\"]",
                "gone.apps.test A 60 []",
                "_berth.gone.apps.test TXT 60 []",
            ]
        );
        // Applied, the zone needs nothing more.
        let mut after: Vec<RecordSet> = Vec::new();
        after.extend(ours("same.apps.test", "same", "192.0.2.1"));
        after.extend(ours("moved.apps.test", "moved", "192.0.2.2"));
        after.extend(ours("new.apps.test", "new", "192.0.2.3"));
        let again = plan_zone(&dns.zones[0], &dns, &wanted, &after);
        assert_eq!(again.changes, []);
        assert_eq!(again.unchanged, 3);
    }

    #[test]
    fn records_berth_does_not_own_are_conflicts_and_never_written() {
        let dns = settings();
        let mut held = vec![
            set("www.apps.test", "A", 3600, &["198.51.100.7"]),
            set("alias.apps.test", "CNAME", 300, &["elsewhere.example.net."]),
            set(
                "_berth.other.apps.test",
                "TXT",
                60,
                &["heritage=berth,berth/owner=berth-staging,berth/app=x,berth/env=test"],
            ),
            set("other.apps.test", "A", 60, &["192.0.2.9"]),
            // Beside a name, other types are no conflict.
            set("mail.apps.test", "MX", 60, &["10 mx.example.net."]),
        ];
        // Another fleet's name, not wanted here, is not deleted.
        held.extend([
            set("theirs.apps.test", "A", 60, &["192.0.2.10"]),
            set(
                "_berth.theirs.apps.test",
                "TXT",
                60,
                &["heritage=berth,berth/owner=berth-staging,berth/app=y,berth/env=test"],
            ),
        ]);
        let wanted = [
            want("www.apps.test", "shop", "192.0.2.1"),
            want("alias.apps.test", "blog", "192.0.2.1"),
            want("other.apps.test", "wiki", "192.0.2.1"),
            want("mail.apps.test", "mail", "192.0.2.1"),
        ];
        let plan = plan_zone(&dns.zones[0], &dns, &wanted, &held);
        assert_eq!(
            plan.describe(),
            "zone apps.test (powerdns): 1 to create, 0 to update, 0 to delete, 0 unchanged, 3 in conflict
  + mail.apps.test A 192.0.2.1 (mail/production)
  ! alias.apps.test (blog/production): not berth's: alias.apps.test. 300 CNAME elsewhere.example.net.
  ! other.apps.test (wiki/production): not berth's: other.apps.test. 60 A 192.0.2.9
  ! www.apps.test (shop/production): not berth's: www.apps.test. 3600 A 198.51.100.7
"
        );
        assert!(plan
            .writes()
            .iter()
            .all(|w| w.name.ends_with("mail.apps.test")));
    }

    #[test]
    fn a_large_change_is_refused_past_the_threshold_only_in_a_grown_zone() {
        let dns = settings();
        let held: Vec<RecordSet> = (0..10)
            .flat_map(|i| ours(&format!("n{i}.apps.test"), &format!("a{i}"), "192.0.2.1"))
            .collect();
        let wanted: Vec<Wanted> = (0..10)
            .map(|i| {
                let ip = if i < 3 { "192.0.2.2" } else { "192.0.2.1" };
                want(&format!("n{i}.apps.test"), &format!("a{i}"), ip)
            })
            .collect();
        // 3 of 10 updated: at the threshold, allowed.
        let plan = plan_zone(&dns.zones[0], &dns, &wanted, &held);
        assert_eq!(plan.count(), (0, 3, 0));
        assert_eq!(plan.check_threshold(30), Ok(()));
        // 4 deleted of 10: over it.
        let plan = plan_zone(&dns.zones[0], &dns, &wanted[4..], &held);
        assert_eq!(
            plan.check_threshold(30).unwrap_err().to_string(),
            "zone apps.test: 0 update(s) and 4 delete(s) of the 10 names berth owns there exceed the 30% threshold"
        );
        // With fewer than ten names owned, anything goes.
        let plan = plan_zone(&dns.zones[0], &dns, &[], &held[..18]);
        assert_eq!((plan.owned, plan.count().2), (9, 9));
        assert_eq!(plan.check_threshold(30), Ok(()));
    }

    #[test]
    fn a_merge_request_note_lists_what_its_merge_changes() {
        let before = [
            want("same.apps.test", "same", "192.0.2.1"),
            want("moved.apps.test", "moved", "192.0.2.1"),
            want("gone.apps.test", "gone", "192.0.2.1"),
        ];
        let after = [
            want("same.apps.test", "same", "192.0.2.1"),
            want("moved.apps.test", "moved", "192.0.2.2"),
            want("new.apps.test", "new", "192.0.2.3"),
        ];
        let changes = changes_between(&before, &after);
        let problems = [WantedError::NoPublicAddress {
            host: "web-2".into(),
        }];
        assert_eq!(
            diff_note(7, &changes, &problems),
            "<!-- berth:dns -->
### DNS changes of !7

Once this is merged, `berth dns apply` makes these changes:

```diff
- gone.apps.test A 192.0.2.1 (gone/production)
~ moved.apps.test A 192.0.2.1 (moved/production) -> A 192.0.2.2 (moved/production)
+ new.apps.test A 192.0.2.3 (new/production)
```

**Cannot be published** (`berth dns apply` will refuse):

- host web-2 has neither public_ipv4 nor public_ipv6 in the host inventory; give the host public_ipv4 (and public_ipv6 when it has one): the address clients reach its front at
"
        );
        assert_eq!(
            diff_note(8, &changes_between(&before, &before), &[]),
            "<!-- berth:dns -->\n### DNS changes of !8\n\nNone: no domain or host address berth publishes changes.\n"
        );
    }

    #[test]
    fn wanted_names_come_from_the_allocations_and_the_hosts_addresses() {
        let text = "\
hosts:
  web-1:
    ssh: {address: 127.0.0.1, user: deploy, known_hosts: '[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx'}
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test, production]
    front: {include_dir: /etc/nginx/berth, log_dir: /var/log/berth, listen: '127.0.0.1:80', test_command: [/usr/sbin/nginx, -t], reload_command: [/usr/sbin/nginx, -s, reload]}
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
    public_ipv4: 203.0.113.10
    public_ipv6: '2001:db8::10'
  web-2:
    ssh: {address: 127.0.0.1, user: deploy, known_hosts: '[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx'}
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test]
    front: {include_dir: /etc/nginx/berth, log_dir: /var/log/berth, listen: '127.0.0.1:80', test_command: [/usr/sbin/nginx, -t], reload_command: [/usr/sbin/nginx, -s, reload]}
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
dns:
  zones:
    apps.test:
      powerdns: {api: 'http://127.0.0.1:8081', api_key_variable: BERTH_DNS_KEY}
";
        let inventory = crate::config::Inventory::parse("inventory.yml", text).unwrap();
        let dns = inventory.dns.clone().unwrap();
        let allocations = Allocations::parse(
            "allocations.yml",
            "\
hosts:
  web-1: {environments: [test, production], ports: {first: 18000, last: 18009}}
  web-2: {environments: [test], ports: {first: 18000, last: 18009}}
apps:
  shop:
    production: {host: web-1, ports: [18000, 18001], domains: [shop.apps.test, www.shop.apps.test]}
    test: {host: web-2, ports: [18000, 18001], domains: [shop.test.example.com]}
  old:
    test: {host: web-1, ports: [18002, 18003]}
",
        )
        .unwrap();
        let problems = wanted(&allocations, &inventory, &dns).unwrap_err();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["host web-2 has neither public_ipv4 nor public_ipv6 in the host inventory"]
        );
        let allocations = Allocations::parse(
            "allocations.yml",
            "\
hosts:
  web-1: {environments: [test, production], ports: {first: 18000, last: 18009}}
apps:
  shop:
    production: {host: web-1, ports: [18000, 18001], domains: [shop.apps.test]}
    test: {host: web-1, ports: [18002, 18003], domains: [shop.test.example.com]}
",
        )
        .unwrap();
        assert_eq!(
            wanted(&allocations, &inventory, &dns)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["domain shop.test.example.com of shop/test is in no zone of the inventory's dns.zones"]
        );
        let allocations = Allocations::parse(
            "allocations.yml",
            "\
hosts:
  web-1: {environments: [test, production], ports: {first: 18000, last: 18009}}
apps:
  shop:
    production: {host: web-1, ports: [18000, 18001], domains: [shop.apps.test]}
",
        )
        .unwrap();
        let names = wanted(&allocations, &inventory, &dns).unwrap();
        assert_eq!(
            addresses(&names[0].ipv4, &names[0].ipv6),
            "A 203.0.113.10, AAAA 2001:db8::10"
        );
        // What `app create` shows of it.
        let mut app = allocations.apps[0].clone();
        app.environments[0]
            .domains
            .push("shop.example.org".parse().unwrap());
        assert_eq!(
            records_of(&app, &inventory),
            [
                "shop.apps.test (production): A 203.0.113.10, AAAA 2001:db8::10 ttl 300 in zone apps.test (powerdns), published by `berth dns apply`",
                "shop.example.org (production): in no zone berth keeps; publish its record yourself",
            ]
        );
    }
}
