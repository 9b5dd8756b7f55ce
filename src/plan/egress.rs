//! The egress policy of plugin containers, as host firewall rules.
//!
//! Every slot network lies in [`SLOT_NETWORKS`], so one rule per path
//! catches everything a plugin sends: `DOCKER-USER` for traffic Docker
//! forwards (the internet, private ranges, link-local, other apps) and
//! `INPUT` for traffic to the host's own addresses (its bridge gateways,
//! its LAN address), which Docker's rules never see. Both jump to
//! `BERTH-EGRESS`, which lets through replies, the slot's own bridge (web to
//! php) and what an app's allow-list names, and rejects the rest with
//! "administratively prohibited" (the plugin's `connect()` fails at once
//! with "No route to host").
//!
//! An app environment's allow-list is a chain of its own, `BERTH-A-<hash>`,
//! entered from `BERTH-ALLOW` by its slot networks' sources. Applying one
//! app's policy rewrites that chain in one `iptables-restore` transaction and
//! removes jumps that no longer belong to it (ports handed to another app
//! never inherit the old app's allow-list).
//!
//! A destination may carry a rate: new connections per minute for the whole
//! app environment (one `hashlimit` bucket shared by both slots' rules);
//! connections over it are rejected like any other. The mail relay is
//! allowed this way (docs/mail.md): msmtp opens one connection per message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::release::{SlotNetwork, SLOT_NETWORKS};
use crate::config::values::{AppId, EnvName, Port};

/// The chain every packet from a slot network passes.
pub const EGRESS_CHAIN: &str = "BERTH-EGRESS";
/// The chain of jumps, by source subnet, to each app environment's chain.
pub const ALLOW_CHAIN: &str = "BERTH-ALLOW";
/// Docker's chain for rules of its users, entered first from `FORWARD`.
pub const DOCKER_USER_CHAIN: &str = "DOCKER-USER";

/// One destination an app may reach: an IPv4 address and a TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    pub address: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(text: &str) -> Result<Destination, String> {
        let (address, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not ADDRESS:PORT"))?;
        let address = address
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
        Ok(Destination { address, port })
    }
}

/// What one app environment's containers may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub app: AppId,
    pub env: EnvName,
    /// The ports of the environment's slots; each names a slot network.
    pub slot_ports: Vec<Port>,
    pub allow: BTreeSet<Destination>,
    /// Destinations allowed at most so many new connections a minute; a
    /// destination here is only allowed at its rate, even when it is also
    /// in `allow`.
    pub per_minute: BTreeMap<Destination, u32>,
}

impl Policy {
    /// The app environment's own chain: a hash keeps the name within
    /// iptables' 28 characters whatever the app id.
    pub fn chain(&self) -> String {
        // FNV-1a, 64 bit: stable across builds and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{}/{}", self.app, self.env).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("BERTH-A-{hash:016x}")
    }

    /// The name of the app environment's `hashlimit` bucket: the chain's
    /// hash, cut to the 15 characters older kernels allow.
    fn limit_name(&self) -> String {
        let chain = self.chain();
        let hash = chain.strip_prefix("BERTH-A-").unwrap_or(&chain);
        format!("bm-{}", &hash[..12])
    }

    /// How many destinations the policy lets the app reach.
    pub fn destinations(&self) -> usize {
        self.allow
            .iter()
            .filter(|d| !self.per_minute.contains_key(d))
            .count()
            + self.per_minute.len()
    }

    fn sources(&self) -> BTreeSet<String> {
        self.slot_ports
            .iter()
            .map(|p| SlotNetwork::for_port(p.get()).cidr())
            .collect()
    }

    /// The arguments of `berth egress apply` that set this policy on a host.
    pub fn apply_args(&self) -> Vec<String> {
        let mut args = vec![
            "egress".to_string(),
            "apply".to_string(),
            "--app".to_string(),
            self.app.to_string(),
            "--env".to_string(),
            self.env.to_string(),
        ];
        for port in &self.slot_ports {
            args.push("--slot-port".to_string());
            args.push(port.get().to_string());
        }
        for destination in &self.allow {
            args.push("--allow".to_string());
            args.push(destination.to_string());
        }
        for (destination, rate) in &self.per_minute {
            args.push("--allow-per-minute".to_string());
            args.push(format!("{destination}={rate}"));
        }
        args
    }
}

/// The firewall as `iptables -S` printed it (filter table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    pub chains: BTreeSet<String>,
    /// Every `-A ...` line, as printed.
    pub rules: Vec<String>,
}

impl Firewall {
    pub fn parse(listing: &str) -> Firewall {
        let mut firewall = Firewall::default();
        for line in listing.lines() {
            if let Some(chain) = line.strip_prefix("-N ") {
                firewall.chains.insert(chain.trim().to_string());
            } else if let Some(policy) = line.strip_prefix("-P ") {
                if let Some((chain, _)) = policy.split_once(' ') {
                    firewall.chains.insert(chain.to_string());
                }
            } else if line.starts_with("-A ") {
                firewall.rules.push(line.trim_end().to_string());
            }
        }
        firewall
    }

    fn has(&self, rule: &str) -> bool {
        self.rules.iter().any(|r| r == rule)
    }

    /// `BERTH-ALLOW`'s jumps: (source, target chain).
    fn allow_jumps(&self) -> Vec<(String, String)> {
        let prefix = format!("-A {ALLOW_CHAIN} -s ");
        self.rules
            .iter()
            .filter_map(|rule| {
                let rest = rule.strip_prefix(&prefix)?;
                let (source, target) = rest.split_once(" -j ")?;
                Some((source.to_string(), target.to_string()))
            })
            .collect()
    }
}

/// The hook rules, one per path out of a slot network.
pub fn hooks() -> [String; 2] {
    let (net, prefix) = SLOT_NETWORKS;
    [DOCKER_USER_CHAIN, "INPUT"]
        .map(|chain| format!("-A {chain} -s {net}/{prefix} -j {EGRESS_CHAIN}"))
}

/// The `iptables-restore --noflush` input that sets `policy` and the base
/// chains, given the firewall as it is. Everything in it commits at once.
pub fn restore_input(policy: &Policy, firewall: &Firewall) -> String {
    let chain = policy.chain();
    let sources = policy.sources();
    let mut out = String::from("*filter\n");
    if !firewall.chains.contains(DOCKER_USER_CHAIN) {
        // At boot, before dockerd (`berth host boot`): the chain and its
        // jump are made here, so the slots Docker brings back are inside
        // the policy from their first packet. dockerd keeps a DOCKER-USER
        // it finds, and moves the FORWARD jump to the top; an older
        // libnetwork added no jump for a chain it found
        // (moby/libnetwork#2631), so berth never leaves that to it.
        out.push_str(&format!(
            ":{DOCKER_USER_CHAIN} - [0:0]\n-I FORWARD 1 -j {DOCKER_USER_CHAIN}\n"
        ));
    }
    // Declaring a chain with --noflush empties it (or creates it).
    out.push_str(&format!(":{EGRESS_CHAIN} - [0:0]\n:{chain} - [0:0]\n"));
    if !firewall.chains.contains(ALLOW_CHAIN) {
        out.push_str(&format!(":{ALLOW_CHAIN} - [0:0]\n"));
    }
    for rule in [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-m physdev --physdev-is-bridged -j RETURN",
        &format!("-j {ALLOW_CHAIN}"),
        "-j REJECT --reject-with icmp-admin-prohibited",
    ] {
        out.push_str(&format!("-A {EGRESS_CHAIN} {rule}\n"));
    }
    let limit_name = policy.limit_name();
    for source in &sources {
        for d in &policy.allow {
            if policy.per_minute.contains_key(d) {
                continue;
            }
            out.push_str(&format!(
                "-A {chain} -s {source} -d {}/32 -p tcp -m tcp --dport {} -j ACCEPT\n",
                d.address, d.port
            ));
        }
        // Only a connection's first packet gets here (BERTH-EGRESS returns
        // established ones first), so the bucket counts connections.
        for (d, rate) in &policy.per_minute {
            out.push_str(&format!(
                "-A {chain} -s {source} -d {}/32 -p tcp -m tcp --dport {} -m hashlimit \
                 --hashlimit-upto {rate}/min --hashlimit-burst {rate} \
                 --hashlimit-name {limit_name} -j ACCEPT\n",
                d.address, d.port
            ));
        }
    }
    let jumps = firewall.allow_jumps();
    for (source, target) in &jumps {
        let stale_mine = target == &chain && !sources.contains(source);
        let taken_over = target != &chain && sources.contains(source);
        if stale_mine || taken_over {
            out.push_str(&format!("-D {ALLOW_CHAIN} -s {source} -j {target}\n"));
        }
    }
    for source in &sources {
        if !jumps.iter().any(|(s, t)| s == source && t == &chain) {
            out.push_str(&format!("-A {ALLOW_CHAIN} -s {source} -j {chain}\n"));
        }
    }
    for hook in hooks() {
        if !firewall.has(&hook) {
            // First in its chain: nothing before it may accept a plugin's
            // packet.
            let insert = hook.replacen("-A ", "-I ", 1).replacen(" -s ", " 1 -s ", 1);
            out.push_str(&insert);
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::ScalarValue;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            app: AppId::parse("shop").unwrap(),
            env: EnvName::parse("production").unwrap(),
            slot_ports: vec![Port::parse("18001").unwrap(), Port::parse("18002").unwrap()],
            allow: allow.iter().map(|d| d.parse().unwrap()).collect(),
            per_minute: BTreeMap::new(),
        }
    }

    #[test]
    fn a_rated_destination_is_allowed_only_at_its_rate_shared_by_both_slots() {
        let mut p = policy(&["203.0.113.10:443", "10.0.0.25:25"]);
        p.per_minute.insert("10.0.0.25:25".parse().unwrap(), 7);
        let chain = p.chain();
        let name = format!("bm-{}", &chain[8..20]);
        assert_eq!(name.len(), 15);
        let text = restore_input(&p, &Firewall::parse(DOCKER_ONLY));
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("-A {chain} ")))
            .collect();
        let limited = |source: &str| {
            format!(
                "-A {chain} -s {source} -d 10.0.0.25/32 -p tcp -m tcp --dport 25 -m hashlimit \
                 --hashlimit-upto 7/min --hashlimit-burst 7 --hashlimit-name {name} -j ACCEPT"
            )
        };
        assert_eq!(
            rules,
            [
                format!("-A {chain} -s 10.226.50.136/29 -d 203.0.113.10/32 -p tcp -m tcp --dport 443 -j ACCEPT"),
                limited("10.226.50.136/29"),
                format!("-A {chain} -s 10.226.50.144/29 -d 203.0.113.10/32 -p tcp -m tcp --dport 443 -j ACCEPT"),
                limited("10.226.50.144/29"),
            ]
        );
        assert_eq!(p.destinations(), 2);
        assert_eq!(
            p.apply_args()[10..],
            [
                "--allow",
                "10.0.0.25:25",
                "--allow",
                "203.0.113.10:443",
                "--allow-per-minute",
                "10.0.0.25:25=7"
            ]
        );
    }

    const DOCKER_ONLY: &str = "\
-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
";

    #[test]
    fn a_fresh_host_gets_the_base_chains_the_hooks_and_the_apps_chain() {
        let p = policy(&["203.0.113.10:443"]);
        let chain = p.chain();
        let text = restore_input(&p, &Firewall::parse(DOCKER_ONLY));
        assert_eq!(
            text,
            format!(
                "*filter
:BERTH-EGRESS - [0:0]
:{chain} - [0:0]
:BERTH-ALLOW - [0:0]
-A BERTH-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A BERTH-EGRESS -m physdev --physdev-is-bridged -j RETURN
-A BERTH-EGRESS -j BERTH-ALLOW
-A BERTH-EGRESS -j REJECT --reject-with icmp-admin-prohibited
-A {chain} -s 10.226.50.136/29 -d 203.0.113.10/32 -p tcp -m tcp --dport 443 -j ACCEPT
-A {chain} -s 10.226.50.144/29 -d 203.0.113.10/32 -p tcp -m tcp --dport 443 -j ACCEPT
-A BERTH-ALLOW -s 10.226.50.136/29 -j {chain}
-A BERTH-ALLOW -s 10.226.50.144/29 -j {chain}
-I DOCKER-USER 1 -s 10.224.0.0/13 -j BERTH-EGRESS
-I INPUT 1 -s 10.224.0.0/13 -j BERTH-EGRESS
COMMIT
"
            )
        );
    }

    #[test]
    fn a_second_run_only_rewrites_the_chains_it_owns() {
        let p = policy(&[]);
        let chain = p.chain();
        let listing = format!(
            "{DOCKER_ONLY}-N BERTH-ALLOW\n-N BERTH-EGRESS\n-N {chain}\n\
             -A INPUT -s 10.224.0.0/13 -j BERTH-EGRESS\n\
             -A DOCKER-USER -s 10.224.0.0/13 -j BERTH-EGRESS\n\
             -A BERTH-ALLOW -s 10.226.50.136/29 -j {chain}\n\
             -A BERTH-ALLOW -s 10.226.50.144/29 -j {chain}\n"
        );
        let text = restore_input(&p, &Firewall::parse(&listing));
        assert_eq!(
            text,
            format!(
                "*filter
:BERTH-EGRESS - [0:0]
:{chain} - [0:0]
-A BERTH-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A BERTH-EGRESS -m physdev --physdev-is-bridged -j RETURN
-A BERTH-EGRESS -j BERTH-ALLOW
-A BERTH-EGRESS -j REJECT --reject-with icmp-admin-prohibited
COMMIT
"
            )
        );
    }

    #[test]
    fn ports_taken_from_another_app_lose_its_allow_list_and_old_ports_lose_ours() {
        let p = policy(&[]);
        let chain = p.chain();
        let listing = format!(
            "{DOCKER_ONLY}-N BERTH-ALLOW\n\
             -A BERTH-ALLOW -s 10.226.50.136/29 -j BERTH-A-00000000000000aa\n\
             -A BERTH-ALLOW -s 10.226.50.128/29 -j {chain}\n"
        );
        let text = restore_input(&p, &Firewall::parse(&listing));
        let changes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("-D ") || l.starts_with("-A BERTH-ALLOW"))
            .collect();
        assert_eq!(
            changes,
            [
                "-D BERTH-ALLOW -s 10.226.50.136/29 -j BERTH-A-00000000000000aa".to_string(),
                format!("-D BERTH-ALLOW -s 10.226.50.128/29 -j {chain}"),
                format!("-A BERTH-ALLOW -s 10.226.50.136/29 -j {chain}"),
                format!("-A BERTH-ALLOW -s 10.226.50.144/29 -j {chain}"),
            ]
        );
    }

    #[test]
    fn before_dockerd_berth_makes_its_chain_and_the_forward_jump() {
        // A firewall just after boot: no Docker chains yet.
        let firewall = Firewall::parse("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n");
        let input = restore_input(&policy(&[]), &firewall);
        let chain = policy(&[]).chain();
        assert_eq!(
            input,
            format!(
                "*filter\n\
                 :DOCKER-USER - [0:0]\n\
                 -I FORWARD 1 -j DOCKER-USER\n\
                 :BERTH-EGRESS - [0:0]\n\
                 :{chain} - [0:0]\n\
                 :BERTH-ALLOW - [0:0]\n\
                 -A BERTH-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n\
                 -A BERTH-EGRESS -m physdev --physdev-is-bridged -j RETURN\n\
                 -A BERTH-EGRESS -j BERTH-ALLOW\n\
                 -A BERTH-EGRESS -j REJECT --reject-with icmp-admin-prohibited\n\
                 -A BERTH-ALLOW -s 10.226.50.136/29 -j {chain}\n\
                 -A BERTH-ALLOW -s 10.226.50.144/29 -j {chain}\n\
                 -I DOCKER-USER 1 -s 10.224.0.0/13 -j BERTH-EGRESS\n\
                 -I INPUT 1 -s 10.224.0.0/13 -j BERTH-EGRESS\n\
                 COMMIT\n"
            )
        );
    }

    #[test]
    fn chain_names_are_stable_distinct_and_fit_iptables() {
        let a = policy(&[]);
        let mut b = policy(&[]);
        b.env = EnvName::parse("test").unwrap();
        assert_eq!(a.chain(), policy(&["1.2.3.4:5"]).chain());
        assert_ne!(a.chain(), b.chain());
        assert!(a.chain().len() <= 28, "{}", a.chain());
    }

    #[test]
    fn destinations_parse_strictly() {
        assert_eq!(
            "203.0.113.10:443"
                .parse::<Destination>()
                .unwrap()
                .to_string(),
            "203.0.113.10:443"
        );
        for bad in [
            "203.0.113.10",
            "::1:443",
            "203.0.113.10:0",
            "x:1",
            "1.2.3.4:70000",
            "1.2.3.4: 1",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad}");
        }
    }

    #[test]
    fn apply_args_name_the_app_its_slot_ports_and_each_destination() {
        assert_eq!(
            policy(&["203.0.113.10:443", "198.51.100.7:8443"]).apply_args(),
            [
                "egress",
                "apply",
                "--app",
                "shop",
                "--env",
                "production",
                "--slot-port",
                "18001",
                "--slot-port",
                "18002",
                "--allow",
                "198.51.100.7:8443",
                "--allow",
                "203.0.113.10:443"
            ]
        );
    }
}
