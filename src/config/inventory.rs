//! The host inventory: the platform's list of Docker hosts, how to reach them
//! and how their front nginx is run. It comes from a CI file variable or a
//! path, never from a developer's repository.

use super::decode::{Decoder, Problems};
use super::dns::DnsSettings;
use super::values::{
    quoted, AbsPath, AnyPort, CgroupPath, Cidr, CommandArg, EnvName, HostName, IpAddress,
    KnownHostsLine, ListenAddress, PublishAddress, RelayAddress, SshAddress, UnixUser,
};
use super::yaml::{Mark, Node};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inventory {
    pub hosts: Vec<Host>,
    /// The zones `berth dns` keeps the apps' records in; none: berth
    /// publishes no DNS records.
    pub dns: Option<DnsSettings>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Host {
    pub name: HostName,
    pub ssh: SshTarget,
    pub docker: DockerAccess,
    /// Where slot ports are published: loopback or a private address.
    pub publish_address: PublishAddress,
    /// Root of `<app>/<env>/releases/…` on the host.
    pub base_dir: AbsPath,
    pub environments: Vec<EnvName>,
    pub front: Front,
    /// How the deploy user runs berth as root, for the few host changes
    /// that need root (`berth egress apply`: the egress policy is host
    /// firewall rules), e.g. `[sudo, -n, /usr/local/bin/berth]`.
    pub root_berth: Vec<CommandArg>,
    /// The prepared cgroup app logs keys run `serve-logs` in
    /// (`--cgroup`); none when absent.
    pub logs_cgroup: Option<CgroupPath>,
    /// The SMTP relay apps with `mail` send through; none: no app on this
    /// host may have `mail`.
    pub mail: Option<MailRelay>,
    /// The addresses clients reach this host's front at: what the apps'
    /// A and AAAA records point to.
    pub public_ipv4: Option<std::net::Ipv4Addr>,
    pub public_ipv6: Option<std::net::Ipv6Addr>,
    #[serde(skip)]
    pub mark: Mark,
}

/// `mail`: the platform's SMTP relay as this host reaches it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MailRelay {
    pub relay: RelayAddress,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SshTarget {
    pub address: SshAddress,
    pub port: AnyPort,
    pub user: UnixUser,
    /// The host key, pinned: no trust on first use.
    pub known_hosts: KnownHostsLine,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DockerAccess {
    /// The Docker Engine socket on the host, reached through the SSH session.
    pub socket: AbsPath,
    /// The docker CLI on the host, e.g. `[/usr/bin/docker]` (the default).
    pub command: Vec<CommandArg>,
    /// How compose runs on the host: `[/usr/bin/docker-compose]` (the
    /// default, compose v1) or the plugin, `[/usr/bin/docker, compose]`.
    pub compose_command: Vec<CommandArg>,
}

impl DockerAccess {
    /// What a host without a `docker` mapping has.
    pub fn defaults() -> DockerAccess {
        let arg = |text: &str| -> CommandArg { text.parse().expect("a valid argument") };
        DockerAccess {
            socket: "/var/run/docker.sock".parse().expect("valid path"),
            command: vec![arg("/usr/bin/docker")],
            compose_command: vec![arg("/usr/bin/docker-compose")],
        }
    }
}

/// The host's own nginx, shared by every app on the host.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Front {
    /// The directory the front nginx includes vhosts from; berth owns its files.
    pub include_dir: AbsPath,
    /// Per-app access and error logs go here.
    pub log_dir: AbsPath,
    pub listen: ListenAddress,
    pub test_command: Vec<CommandArg>,
    pub reload_command: Vec<CommandArg>,
    /// The front nginx master's pid file: with it, a switch waits until
    /// the old workers have stopped accepting, instead of probing.
    pub pid_file: Option<AbsPath>,
    /// Proxies in front of this nginx whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<Cidr>,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tls {
    pub listen: ListenAddress,
    pub certificate: AbsPath,
    pub key: AbsPath,
}

impl Inventory {
    pub fn parse(file: &str, text: &str) -> Result<Inventory, Problems> {
        Decoder::decode_text(file, text, decode)
    }

    pub fn host(&self, name: &HostName) -> Option<&Host> {
        self.hosts.iter().find(|h| &h.name == name)
    }
}

fn decode(d: &mut Decoder, root: &Node) -> Option<Inventory> {
    let mut f = d.mapping(root, "")?;
    let hosts = f.required(d, "hosts", |d, node, key| d.named(node, key, decode_host));
    let dns = f.optional(d, "dns", super::dns::decode);
    f.finish(d);
    Some(Inventory { hosts: hosts?, dns })
}

fn decode_host(
    d: &mut Decoder,
    name: Option<HostName>,
    mark: Mark,
    node: &Node,
    key: &str,
) -> Option<Host> {
    let mut f = d.mapping(node, key)?;
    let ssh = f.required(d, "ssh", |d, node, key| {
        let mut f = d.mapping(node, key)?;
        let address = f.required(d, "address", Decoder::scalar::<SshAddress>);
        let port = f.optional(d, "port", Decoder::scalar::<AnyPort>);
        let user = f.required(d, "user", Decoder::scalar::<UnixUser>);
        let known_hosts = f.required(d, "known_hosts", Decoder::scalar::<KnownHostsLine>);
        f.finish(d);
        Some(SshTarget {
            address: address?,
            port: port.unwrap_or(AnyPort::SSH),
            user: user?,
            known_hosts: known_hosts?,
        })
    });
    let docker = f.optional(d, "docker", |d, node, key| {
        let mut f = d.mapping(node, key)?;
        let socket = f.optional(d, "socket", Decoder::scalar::<AbsPath>);
        let command = f.optional(d, "command", decode_command);
        let compose_command = f.optional(d, "compose_command", decode_command);
        f.finish(d);
        let defaults = DockerAccess::defaults();
        Some(DockerAccess {
            socket: socket.unwrap_or(defaults.socket),
            command: command.unwrap_or(defaults.command),
            compose_command: compose_command.unwrap_or(defaults.compose_command),
        })
    });
    let publish_address = f.required(d, "publish_address", Decoder::scalar::<PublishAddress>);
    let base_dir = f.required(d, "base_dir", Decoder::scalar::<AbsPath>);
    let environments = f.required(d, "environments", |d, node, key| {
        d.list(node, key, Decoder::scalar::<EnvName>)
    });
    let front = f.required(d, "front", decode_front);
    let root_berth = f.required(d, "root_berth", decode_command);
    let logs_cgroup = f.optional(d, "logs_cgroup", Decoder::scalar::<CgroupPath>);
    let mail = f.optional(d, "mail", |d, node, key| {
        let mut f = d.mapping(node, key)?;
        let relay = f.required(d, "relay", Decoder::scalar::<RelayAddress>);
        f.finish(d);
        Some(MailRelay { relay: relay? })
    });
    let public_ipv4 = f.optional(d, "public_ipv4", |d, node, key| {
        match public_address(d, node, key, "public_ipv6")? {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        }
    });
    let public_ipv6 = f.optional(d, "public_ipv6", |d, node, key| {
        match public_address(d, node, key, "public_ipv4")? {
            std::net::IpAddr::V6(v6) => Some(v6),
            std::net::IpAddr::V4(_) => None,
        }
    });
    f.finish(d);
    Some(Host {
        name: name?,
        ssh: ssh?,
        docker: docker.unwrap_or_else(DockerAccess::defaults),
        publish_address: publish_address?,
        base_dir: base_dir?,
        environments: environments?,
        front: front?,
        root_berth: root_berth?,
        logs_cgroup,
        mail,
        public_ipv4,
        public_ipv6,
        mark,
    })
}

/// `public_ipv4` or `public_ipv6`: an address of the key's family; one of
/// the other family is a problem naming `other`, the key it belongs under.
fn public_address(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    other: &str,
) -> Option<std::net::IpAddr> {
    let ip = Decoder::scalar::<IpAddress>(d, node, key)?.ip();
    let wanted_v4 = other == "public_ipv6";
    if ip.is_ipv4() == wanted_v4 {
        return Some(ip);
    }
    let family = if wanted_v4 { "IPv4" } else { "IPv6" };
    d.problem(
        node.mark,
        key,
        format!("not an {family} address"),
        format!("give that address as {other}"),
    );
    None
}

/// A command as a list: the program, by its absolute path, and its
/// arguments. berth runs it over the deploy user's SSH session, whose PATH
/// (a non-root login's) lacks /usr/sbin, where nginx lives: a bare `nginx`
/// would pass `validate` and fail at deploy.
fn decode_command(d: &mut Decoder, node: &Node, key: &str) -> Option<Vec<CommandArg>> {
    let mut index = 0;
    let args = d.list(node, key, |d, item, item_key| {
        let arg = Decoder::scalar::<CommandArg>(d, item, item_key)?;
        index += 1;
        if index == 1 && !arg.as_str().starts_with('/') {
            d.problem(
                item.mark,
                item_key,
                format!("program {} is not an absolute path", quoted(arg.as_str())),
                "write the program's full path, e.g. /usr/sbin/nginx or /usr/bin/sudo: \
                 berth runs it over a non-root SSH session, whose PATH lacks /usr/sbin",
            );
            return None;
        }
        Some(arg)
    })?;
    if args.is_empty() {
        d.problem(
            node.mark,
            key,
            "command is empty",
            "give the program and its arguments as a list, e.g. [/usr/sbin/nginx, -s, reload]",
        );
        return None;
    }
    Some(args)
}

fn decode_front(d: &mut Decoder, node: &Node, key: &str) -> Option<Front> {
    let mut f = d.mapping(node, key)?;
    let include_dir = f.required(d, "include_dir", Decoder::scalar::<AbsPath>);
    let log_dir = f.required(d, "log_dir", Decoder::scalar::<AbsPath>);
    let listen = f.required(d, "listen", Decoder::scalar::<ListenAddress>);
    let test_command = f.required(d, "test_command", decode_command);
    let reload_command = f.required(d, "reload_command", decode_command);
    let pid_file = f.optional(d, "pid_file", Decoder::scalar::<AbsPath>);
    let trusted_proxies = f.optional(d, "trusted_proxies", |d, node, key| {
        d.list(node, key, Decoder::scalar::<Cidr>)
    });
    let tls = f.optional(d, "tls", |d, node, key| {
        let mut f = d.mapping(node, key)?;
        let listen = f.required(d, "listen", Decoder::scalar::<ListenAddress>);
        let certificate = f.required(d, "certificate", Decoder::scalar::<AbsPath>);
        let key = f.required(d, "key", Decoder::scalar::<AbsPath>);
        f.finish(d);
        Some(Tls {
            listen: listen?,
            certificate: certificate?,
            key: key?,
        })
    });
    f.finish(d);
    Some(Front {
        include_dir: include_dir?,
        log_dir: log_dir?,
        listen: listen?,
        test_command: test_command?,
        reload_command: reload_command?,
        pid_file,
        trusted_proxies: trusted_proxies.unwrap_or_default(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::INVENTORY;

    fn docker_of(inventory: &str) -> Result<DockerAccess, String> {
        Inventory::parse("inventory.yml", inventory)
            .map(|i| i.hosts[0].docker.clone())
            .map_err(|p| p.to_string())
    }

    fn words(args: &[CommandArg]) -> Vec<&str> {
        args.iter().map(CommandArg::as_str).collect()
    }

    #[test]
    fn the_docker_and_compose_programs_default_to_debians_and_may_be_the_plugin() {
        let docker = docker_of(INVENTORY).unwrap();
        assert_eq!(docker.socket.as_str(), "/var/run/docker.sock");
        assert_eq!(words(&docker.command), ["/usr/bin/docker"]);
        assert_eq!(words(&docker.compose_command), ["/usr/bin/docker-compose"]);

        let plugin = format!(
            "{INVENTORY}    docker: {{compose_command: [/usr/local/bin/docker, compose], command: [/usr/local/bin/docker]}}\n"
        );
        let docker = docker_of(&plugin).unwrap();
        assert_eq!(docker.socket.as_str(), "/var/run/docker.sock");
        assert_eq!(words(&docker.command), ["/usr/local/bin/docker"]);
        assert_eq!(
            words(&docker.compose_command),
            ["/usr/local/bin/docker", "compose"]
        );

        let bare = format!("{INVENTORY}    docker: {{compose_command: [docker-compose]}}\n");
        let error = docker_of(&bare).unwrap_err();
        assert!(
            error.contains("program \"docker-compose\" is not an absolute path"),
            "{error}"
        );
    }

    #[test]
    fn public_addresses_are_of_their_keys_family() {
        let good = format!(
            "{INVENTORY}    public_ipv4: 203.0.113.10\n    public_ipv6: \"2001:db8::10\"\n"
        );
        let host = &Inventory::parse("inventory.yml", &good).unwrap().hosts[0];
        assert_eq!(host.public_ipv4, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(host.public_ipv6, Some("2001:db8::10".parse().unwrap()));
        let swapped = format!(
            "{INVENTORY}    public_ipv4: \"2001:db8::10\"\n    public_ipv6: 203.0.113.10\n"
        );
        let problems = Inventory::parse("inventory.yml", &swapped).unwrap_err();
        assert_eq!(
            problems
                .0
                .iter()
                .map(|p| format!("{}: {}: {} ({})", p.line.unwrap(), p.key, p.message, p.hint))
                .collect::<Vec<_>>(),
            [
                "15: hosts.local.public_ipv4: not an IPv4 address (give that address as public_ipv6)",
                "16: hosts.local.public_ipv6: not an IPv6 address (give that address as public_ipv4)",
            ]
        );
    }
}
