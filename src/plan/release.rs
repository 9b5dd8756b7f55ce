//! Names of a release on a host: its slot, its id and its directories.

use std::fmt;

use crate::config::app::AppEnvironment;
use crate::config::values::{AbsPath, AppId, EnvName, GitTag, Port};

/// One of the two side-by-side compose projects of an app environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Blue,
    Green,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }

    /// The slot's port from the environment's pair `[blue, green]`.
    pub fn port(self, env: &AppEnvironment) -> Port {
        match self {
            Slot::Blue => env.ports[0],
            Slot::Green => env.ports[1],
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Slot {
    type Err = String;
    fn from_str(s: &str) -> Result<Slot, String> {
        match s {
            "blue" => Ok(Slot::Blue),
            "green" => Ok(Slot::Green),
            other => Err(format!("unknown slot {other:?}: expected blue or green")),
        }
    }
}

/// The directory name of a release on a host: the tag with '/' replaced by
/// '_', and the commit's first 12 hex digits when known. Built only from
/// validated values, so it is safe in paths, labels and shell words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseId(String);

impl TryFrom<String> for ReleaseId {
    type Error = String;

    /// Release ids read back from a host's `state.json` are checked again:
    /// they become paths and compose labels.
    fn try_from(text: String) -> Result<ReleaseId, String> {
        let ok = !text.is_empty()
            && text.len() <= 120
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !text.contains("..")
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if ok {
            Ok(ReleaseId(text))
        } else {
            Err(format!(
                "invalid release id {}",
                crate::config::values::quoted(&text)
            ))
        }
    }
}

impl From<ReleaseId> for String {
    fn from(id: ReleaseId) -> String {
        id.0
    }
}

impl ReleaseId {
    pub fn new(tag: &GitTag, commit: Option<&str>) -> ReleaseId {
        let base = tag.as_str().replace('/', "_");
        match commit {
            Some(commit) if commit.len() >= 12 && commit.chars().all(|c| c.is_ascii_hexdigit()) => {
                ReleaseId(format!("{base}-{}", &commit[..12]))
            }
            _ => ReleaseId(base),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an app environment lives on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `<base>/<app>/<env>`
    pub root: AbsPath,
}

impl HostLayout {
    pub fn new(base_dir: &AbsPath, app: &AppId, env: &AppEnvironment) -> HostLayout {
        HostLayout {
            root: base_dir.join(&format!("{}/{}", app, env.name)),
        }
    }

    pub fn release_dir(&self, id: &ReleaseId) -> AbsPath {
        self.root.join(&format!("releases/{id}"))
    }

    pub fn code_dir(&self, id: &ReleaseId) -> AbsPath {
        self.release_dir(id).join("code")
    }

    /// The rendered configuration of a release in one slot: ports and
    /// project names differ per slot, so each slot has its own.
    pub fn conf_dir(&self, id: &ReleaseId, slot: Slot) -> AbsPath {
        self.release_dir(id).join(&format!("conf-{slot}"))
    }

    /// Where code is synced before it is complete; renamed into place after.
    pub fn staging_dir(&self, id: &ReleaseId) -> AbsPath {
        self.root.join(&format!("releases/.staging-{id}"))
    }

    /// The logs kept of replaced slots (`saved_logs_dir`).
    pub fn saved_logs_dir(&self) -> AbsPath {
        self.root.join("logs")
    }

    /// The app environment's persistent data, shared by both slots and
    /// every release: one directory per `berth.yml` storage path below it.
    pub fn storage_dir(&self) -> AbsPath {
        self.root.join("storage")
    }

    pub fn releases_dir(&self) -> AbsPath {
        self.root.join("releases")
    }

    pub fn state_file(&self) -> AbsPath {
        self.root.join("state.json")
    }

    /// Serializes deploys of this app environment (a `flock`).
    pub fn lock_file(&self) -> AbsPath {
        self.root.join(".deploy.lock")
    }

    /// Held by the remote rsync while it writes a release: a sync left
    /// running by a killed berth finishes before the next one starts.
    pub fn sync_lock_file(&self) -> AbsPath {
        self.root.join(".sync.lock")
    }

    /// The app's secrets as the slot's php container gets them (a
    /// `KEY=value` env file, mode 0600, outside every mount).
    pub fn secrets_file(&self, slot: Slot) -> AbsPath {
        self.root.join(&format!("secrets-{slot}.env"))
    }

    /// Held by `docker-compose` while it changes a slot, for the same reason.
    pub fn compose_lock_file(&self, slot: Slot) -> AbsPath {
        self.root.join(&format!(".compose-{slot}.lock"))
    }
}

/// Where a host keeps the logs of an app environment's replaced slots:
/// `<base>/<app>/<env>/logs`, as `HostLayout::saved_logs_dir`.
pub fn saved_logs_dir(base_dir: &AbsPath, app: &AppId, env: &EnvName) -> AbsPath {
    base_dir.join(&format!("{app}/{env}/logs"))
}

/// The kept logs of `release`'s containers in `slot`.
pub fn saved_logs_file(dir: &AbsPath, release: &ReleaseId, slot: Slot) -> AbsPath {
    dir.join(&format!("{release}-{slot}.log"))
}

/// The front vhost file of an app environment in the host's include dir.
pub fn vhost_file(include_dir: &AbsPath, app: &AppId, env: &AppEnvironment) -> AbsPath {
    include_dir.join(&format!("berth-{app}-{}.conf", env.name))
}

/// Serializes every change to the host's front nginx (one per host).
pub fn front_lock_file(base_dir: &AbsPath) -> AbsPath {
    base_dir.join(".front.lock")
}

/// The compose project name of a slot: `berth-<app>-<env>-<slot>`.
pub fn project_name(app: &AppId, env: &AppEnvironment, slot: Slot) -> String {
    format!("berth-{app}-{}-{slot}", env.name)
}

/// The front nginx upstream of an app environment: `berth-<app>-<env>`.
pub fn upstream_name(app: &AppId, env: &AppEnvironment) -> String {
    format!("berth-{app}-{}", env.name)
}

/// The addresses of a slot's own network. Every slot gets a /29 of
/// [`SLOT_NETWORKS`] chosen by its port, so its containers have fixed
/// addresses: php-fpm can then name the one client it serves, the slot's
/// nginx (`listen.allowed_clients`), and refuse everything else, the PHP
/// container's own addresses included. Ports are unique on a host, so the
/// subnets are too; Docker refuses a network that overlaps another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotNetwork {
    pub subnet: std::net::Ipv4Addr,
    pub gateway: std::net::Ipv4Addr,
    pub web: std::net::Ipv4Addr,
    pub php: std::net::Ipv4Addr,
}

/// Where slot networks live: 10.224.0.0/13 holds one /29 for each of the
/// 65,536 ports. Hosts must not route it elsewhere (docs/host-runtime.md).
pub const SLOT_NETWORKS: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(10, 224, 0, 0), 13);

/// The prefix length of one slot network: network, gateway, web, php and
/// broadcast addresses fit in a /29.
pub const SLOT_PREFIX: u8 = 29;

impl SlotNetwork {
    pub fn for_port(port: u16) -> SlotNetwork {
        let base = u32::from(SLOT_NETWORKS.0) + (u32::from(port) << (32 - SLOT_PREFIX));
        let at = |offset: u32| std::net::Ipv4Addr::from(base + offset);
        SlotNetwork {
            subnet: at(0),
            gateway: at(1),
            web: at(2),
            php: at(3),
        }
    }

    /// The subnet in CIDR notation, as Docker prints it.
    pub fn cidr(&self) -> String {
        format!("{}/{SLOT_PREFIX}", self.subnet)
    }
}

#[cfg(test)]
mod slot_network_tests {
    use super::*;

    #[test]
    fn each_port_gets_its_own_29_inside_10_224_0_0_13() {
        let net = SlotNetwork::for_port;
        let first = net(1024);
        assert_eq!(first.cidr(), "10.224.32.0/29");
        assert_eq!(
            [first.gateway, first.web, first.php].map(|a| a.to_string()),
            ["10.224.32.1", "10.224.32.2", "10.224.32.3"]
        );
        assert_eq!(net(18001).cidr(), "10.226.50.136/29");
        assert_eq!(net(65535).cidr(), "10.231.255.248/29");
        assert_eq!(net(65535).php.to_string(), "10.231.255.251");
    }
}
