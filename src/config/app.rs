//! `app.yml`: the platform's description of one app — who owns it, where it
//! runs, its ports, domains and limits. Developers cannot change it: `berth
//! check` refuses a merge request that touches anything but `release.yml`.

use super::decode::{Decoder, Problems};
use super::values::{
    AnyPort, AppId, ByteSize, Cpus, DomainName, EnvName, GitLabUser, HostName, ImageRef, IpAddress,
    MailAddress, Port, ProjectPath, RelPath, UrlPath,
};
use super::yaml::{Mark, Node};

pub const FILE_NAME: &str = "app.yml";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppFile {
    pub id: AppId,
    pub owner: GitLabUser,
    pub code_repo: ProjectPath,
    pub runtime: ImageRef,
    /// Directory of the checkout nginx serves, relative to its root.
    pub docroot: RelPath,
    pub health_path: UrlPath,
    pub environments: Vec<AppEnvironment>,
    pub limits: Limits,
    pub php: PhpSettings,
    pub extra_hosts: Vec<ExtraHost>,
    /// What the app's containers may reach; everything else is refused.
    pub egress: Vec<EgressAllow>,
    /// Outbound mail through the host's relay; `None`: `mail()` is disabled.
    pub mail: Option<MailSettings>,
}

/// `mail`: the app's sender and how many messages a minute it may send.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MailSettings {
    /// The envelope sender and `From:` of every message, whatever the
    /// plugin asks for.
    pub from: MailAddress,
    /// New connections to the relay per minute, for the whole app
    /// environment (both slots); msmtp sends one message per connection.
    pub per_minute: u32,
    #[serde(skip)]
    pub mark: Mark,
}

impl MailSettings {
    pub const DEFAULT_PER_MINUTE: u32 = 10;
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppEnvironment {
    pub name: EnvName,
    pub host: HostName,
    /// The two slots' ports: `[blue, green]`.
    pub ports: [Port; 2],
    pub domains: Vec<DomainName>,
    #[serde(skip)]
    pub marks: EnvironmentMarks,
}

/// Where an environment's parts are, for errors found across keys.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnvironmentMarks {
    pub entry: Mark,
    pub host: Mark,
    pub ports: Mark,
    pub domains: Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Limits {
    pub cpus: Cpus,
    pub memory: ByteSize,
    pub pids: u32,
    /// What one release's code may hold on the host.
    pub code: CodeLimits,
    /// The most the app's persistent storage may hold; no storage without it.
    pub storage: Option<ByteSize>,
}

/// `limits.code`: the most bytes and files (inodes: files, directories)
/// one release's code may hold. Each environment keeps several releases.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CodeLimits {
    pub size: ByteSize,
    pub files: u64,
    /// Where each limit is written, or `limits` when it is the default.
    #[serde(skip)]
    pub marks: CodeLimitMarks,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CodeLimitMarks {
    pub size: Mark,
    pub files: Mark,
}

impl CodeLimits {
    pub const DEFAULT_SIZE: ByteSize = ByteSize::mib(256);
    pub const DEFAULT_FILES: u64 = 20_000;
}

/// PHP settings an app may choose, within the platform's bounds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PhpSettings {
    pub memory_limit: ByteSize,
    pub max_execution_time: u32,
    pub upload_max_filesize: ByteSize,
    pub post_max_size: ByteSize,
    pub max_children: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExtraHost {
    pub name: DomainName,
    pub address: IpAddress,
}

/// A destination an app may reach: a name its code uses (pinned in the
/// containers' `/etc/hosts`), the IPv4 address it stands for and the TCP
/// ports allowed there.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EgressAllow {
    pub name: DomainName,
    pub address: std::net::Ipv4Addr,
    pub ports: Vec<AnyPort>,
}

/// Platform bounds, also published in `docs/schema/app.schema.json`.
pub mod bounds {
    use super::ByteSize;
    pub const MEMORY_MIN: ByteSize = ByteSize::mib(32);
    pub const MEMORY_MAX: ByteSize = ByteSize::mib(4096);
    pub const PHP_MEMORY_MAX: ByteSize = ByteSize::mib(1024);
    pub const UPLOAD_MAX: ByteSize = ByteSize::mib(256);
    pub const PIDS: (i64, i64) = (16, 4096);
    pub const MAX_EXECUTION_TIME: (i64, i64) = (1, 300);
    pub const MAX_CHILDREN: (i64, i64) = (1, 64);
    pub const CODE_SIZE_MIN: ByteSize = ByteSize::mib(1);
    pub const CODE_SIZE_MAX: ByteSize = ByteSize::mib(4096);
    pub const CODE_FILES: (i64, i64) = (100, 200_000);
    pub const MAIL_PER_MINUTE: (i64, i64) = (1, 600);
    pub const STORAGE_MIN: ByteSize = ByteSize::mib(1);
    pub const STORAGE_MAX: ByteSize = ByteSize::mib(64 * 1024);
}

impl AppFile {
    pub fn parse(file: &str, text: &str) -> Result<AppFile, Problems> {
        Decoder::decode_text(file, text, decode)
    }

    pub fn environment(&self, env: &EnvName) -> Option<&AppEnvironment> {
        self.environments.iter().find(|e| &e.name == env)
    }
}

impl Default for PhpSettings {
    fn default() -> Self {
        PhpSettings {
            memory_limit: ByteSize::mib(128),
            max_execution_time: 30,
            upload_max_filesize: ByteSize::mib(8),
            post_max_size: ByteSize::mib(8),
            max_children: 5,
        }
    }
}

fn decode(d: &mut Decoder, root: &Node) -> Option<AppFile> {
    let mut f = d.mapping(root, "")?;
    let id = f.required(d, "id", Decoder::scalar::<AppId>);
    let owner = f.required(d, "owner", Decoder::scalar::<GitLabUser>);
    let code_repo = f.required(d, "code_repo", Decoder::scalar::<ProjectPath>);
    let runtime = f.required(d, "runtime", Decoder::scalar::<ImageRef>);
    let docroot = f.optional(d, "docroot", Decoder::scalar::<RelPath>);
    let health_path = f.required(d, "health_path", Decoder::scalar::<UrlPath>);
    let environments = f.required(d, "environments", |d, node, key| {
        d.named(node, key, decode_environment)
    });

    let limits = f.required(d, "limits", decode_limits);
    let php = f.optional(d, "php", decode_php);
    let limits_mark = f.optional(d, "limits", |_, node, _| Some(node.mark));
    let extra_hosts = f.optional(d, "extra_hosts", |d, node, key| {
        d.list(node, key, |d, node, key| {
            let mut f = d.mapping(node, key)?;
            let name = f.required(d, "name", Decoder::scalar::<DomainName>);
            let address = f.required(d, "address", Decoder::scalar::<IpAddress>);
            f.finish(d);
            Some(ExtraHost {
                name: name?,
                address: address?,
            })
        })
    });
    let egress = f.optional(d, "egress", |d, node, key| d.list(node, key, decode_egress));
    let mail = f.optional(d, "mail", decode_mail);
    let root_mark = root.mark;
    f.finish(d);
    let (php, php_marks) = php.unzip();
    let app = AppFile {
        id: id?,
        owner: owner?,
        code_repo: code_repo?,
        runtime: runtime?,
        docroot: docroot.unwrap_or_else(|| ".".parse().expect("'.' is a valid docroot")),
        health_path: health_path?,
        environments: environments?,
        limits: limits?,
        php: php.unwrap_or_default(),
        extra_hosts: extra_hosts.unwrap_or_default(),
        egress: egress.unwrap_or_default(),
        mail,
    };
    let fallback = limits_mark.unwrap_or(root_mark);
    let php_marks = php_marks.unwrap_or(PhpMarks {
        memory_limit: fallback,
        post_max_size: fallback,
    });
    check_semantics(d, &app, php_marks);
    Some(app)
}

fn decode_mail(d: &mut Decoder, node: &Node, key: &str) -> Option<MailSettings> {
    let mut f = d.mapping(node, key)?;
    let from = f.required(d, "from", Decoder::scalar::<MailAddress>);
    let per_minute = f.optional(d, "per_minute", |d, node, key| {
        d.integer(
            node,
            key,
            bounds::MAIL_PER_MINUTE.0,
            bounds::MAIL_PER_MINUTE.1,
        )
    });
    f.finish(d);
    Some(MailSettings {
        from: from?,
        per_minute: per_minute.map_or(MailSettings::DEFAULT_PER_MINUTE, |n| n as u32),
        mark: node.mark,
    })
}

fn decode_egress(d: &mut Decoder, node: &Node, key: &str) -> Option<EgressAllow> {
    let mut f = d.mapping(node, key)?;
    let name = f.required(d, "name", Decoder::scalar::<DomainName>);
    let address = f.required(d, "address", |d, node, key| {
        let address = Decoder::scalar::<IpAddress>(d, node, key)?;
        match address.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => {
                d.problem(
                    node.mark,
                    key,
                    format!("{address} is an IPv6 address"),
                    "slot networks are IPv4 only: give the destination's IPv4 address",
                );
                None
            }
        }
    });
    let ports = f.required(d, "ports", |d, node, key| {
        let ports = d.list(node, key, Decoder::scalar::<AnyPort>)?;
        if ports.is_empty() {
            d.problem(
                node.mark,
                key,
                "no port is allowed",
                "list the TCP ports the app calls there, e.g. [443]",
            );
            return None;
        }
        Some(ports)
    });
    f.finish(d);
    Some(EgressAllow {
        name: name?,
        address: address?,
        ports: ports?,
    })
}

fn decode_environment(
    d: &mut Decoder,
    name: Option<EnvName>,
    entry: Mark,
    node: &Node,
    key: &str,
) -> Option<AppEnvironment> {
    let mut f = d.mapping(node, key)?;
    let mut marks = EnvironmentMarks {
        entry,
        ..EnvironmentMarks::default()
    };
    let host = f.required(d, "host", |d, node, key| {
        marks.host = node.mark;
        d.scalar::<HostName>(node, key)
    });
    let ports = f.required(d, "ports", |d, node, key| {
        marks.ports = node.mark;
        let ports = d.list(node, key, Decoder::scalar::<Port>)?;
        match ports.as_slice() {
            [blue, green] if blue == green => {
                d.problem(
                    node.mark,
                    key,
                    format!("both slots use port {blue}"),
                    "the blue and green slots run side by side and need two different ports",
                );
                None
            }
            [blue, green] => Some([*blue, *green]),
            _ => {
                d.problem(
                    node.mark,
                    key,
                    format!("expected 2 ports, found {}", ports.len()),
                    "give one port per slot: [blue, green], e.g. [18001, 18002]",
                );
                None
            }
        }
    });
    let domains = f.required(d, "domains", |d, node, key| {
        marks.domains = node.mark;
        let domains = d.list(node, key, Decoder::scalar::<DomainName>)?;
        if domains.is_empty() {
            d.problem(
                node.mark,
                key,
                "no domain given",
                "list at least one domain the app answers to",
            );
            return None;
        }
        Some(domains)
    });
    f.finish(d);
    Some(AppEnvironment {
        name: name?,
        host: host?,
        ports: ports?,
        domains: domains?,
        marks,
    })
}

fn decode_limits(d: &mut Decoder, node: &Node, key: &str) -> Option<Limits> {
    let mut f = d.mapping(node, key)?;
    let cpus = f.required(d, "cpus", Decoder::scalar::<Cpus>);
    let memory = f.required(d, "memory", |d, node, key| {
        let memory = d.scalar::<ByteSize>(node, key)?;
        in_bounds(d, node, key, memory, bounds::MEMORY_MIN, bounds::MEMORY_MAX)
    });
    let pids = f.required(d, "pids", |d, node, key| {
        d.integer(node, key, bounds::PIDS.0, bounds::PIDS.1)
    });
    let code = f.optional(d, "code", decode_code_limits);
    let storage = f.optional(d, "storage", |d, node, key| {
        let size = d.scalar::<ByteSize>(node, key)?;
        in_bounds(d, node, key, size, bounds::STORAGE_MIN, bounds::STORAGE_MAX)
    });
    f.finish(d);
    Some(Limits {
        cpus: cpus?,
        memory: memory?,
        pids: pids? as u32,
        code: code.unwrap_or(CodeLimits {
            size: CodeLimits::DEFAULT_SIZE,
            files: CodeLimits::DEFAULT_FILES,
            marks: CodeLimitMarks {
                size: node.mark,
                files: node.mark,
            },
        }),
        storage,
    })
}

fn decode_code_limits(d: &mut Decoder, node: &Node, key: &str) -> Option<CodeLimits> {
    let mut marks = CodeLimitMarks {
        size: node.mark,
        files: node.mark,
    };
    let mut f = d.mapping(node, key)?;
    let size = f.optional(d, "size", |d, node, key| {
        marks.size = node.mark;
        let size = d.scalar::<ByteSize>(node, key)?;
        in_bounds(
            d,
            node,
            key,
            size,
            bounds::CODE_SIZE_MIN,
            bounds::CODE_SIZE_MAX,
        )
    });
    let files = f.optional(d, "files", |d, node, key| {
        marks.files = node.mark;
        d.integer(node, key, bounds::CODE_FILES.0, bounds::CODE_FILES.1)
    });
    f.finish(d);
    Some(CodeLimits {
        size: size.unwrap_or(CodeLimits::DEFAULT_SIZE),
        files: files.map_or(CodeLimits::DEFAULT_FILES, |n| n as u64),
        marks,
    })
}

/// Where the php settings checked against other keys are written.
#[derive(Debug, Clone, Copy)]
struct PhpMarks {
    memory_limit: Mark,
    post_max_size: Mark,
}

fn decode_php(d: &mut Decoder, node: &Node, key: &str) -> Option<(PhpSettings, PhpMarks)> {
    let defaults = PhpSettings::default();
    let mut marks = PhpMarks {
        memory_limit: node.mark,
        post_max_size: node.mark,
    };
    let mut f = d.mapping(node, key)?;
    let memory_limit = f.optional(d, "memory_limit", |d, node, key| {
        marks.memory_limit = node.mark;
        let size = d.scalar::<ByteSize>(node, key)?;
        in_bounds(
            d,
            node,
            key,
            size,
            ByteSize::mib(16),
            bounds::PHP_MEMORY_MAX,
        )
    });
    let max_execution_time = f.optional(d, "max_execution_time", |d, node, key| {
        d.integer(
            node,
            key,
            bounds::MAX_EXECUTION_TIME.0,
            bounds::MAX_EXECUTION_TIME.1,
        )
    });
    let upload_max_filesize = f.optional(d, "upload_max_filesize", |d, node, key| {
        let size = d.scalar::<ByteSize>(node, key)?;
        in_bounds(d, node, key, size, ByteSize::mib(1), bounds::UPLOAD_MAX)
    });
    let post_max_size = f.optional(d, "post_max_size", |d, node, key| {
        marks.post_max_size = node.mark;
        let size = d.scalar::<ByteSize>(node, key)?;
        in_bounds(d, node, key, size, ByteSize::mib(1), bounds::UPLOAD_MAX)
    });
    let max_children = f.optional(d, "max_children", |d, node, key| {
        d.integer(node, key, bounds::MAX_CHILDREN.0, bounds::MAX_CHILDREN.1)
    });
    f.finish(d);
    let settings = PhpSettings {
        memory_limit: memory_limit.unwrap_or(defaults.memory_limit),
        max_execution_time: max_execution_time.map_or(defaults.max_execution_time, |n| n as u32),
        upload_max_filesize: upload_max_filesize.unwrap_or(defaults.upload_max_filesize),
        post_max_size: post_max_size.unwrap_or(defaults.post_max_size),
        max_children: max_children.map_or(defaults.max_children, |n| n as u32),
    };
    Some((settings, marks))
}

fn in_bounds(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    size: ByteSize,
    min: ByteSize,
    max: ByteSize,
) -> Option<ByteSize> {
    if size < min || size > max {
        d.problem(
            node.mark,
            key,
            format!("{} is outside the platform's bounds", size.php()),
            format!("use a size from {} to {}", min.php(), max.php()),
        );
        return None;
    }
    Some(size)
}

/// Rules that span several keys. Each names the key that must change.
fn check_semantics(d: &mut Decoder, app: &AppFile, php: PhpMarks) {
    let mut seen_ports: Vec<(&HostName, Port, &EnvName)> = Vec::new();
    let mut seen_domains: Vec<(&DomainName, &EnvName)> = Vec::new();
    for env in &app.environments {
        let key = format!("environments.{}", env.name);
        for port in env.ports {
            if let Some((_, _, other)) = seen_ports
                .iter()
                .find(|(host, p, other)| *host == &env.host && *p == port && *other != &env.name)
            {
                d.problem(
                    env.marks.ports,
                    &format!("{key}.ports"),
                    format!(
                        "port {port} on host {} is also used by environment {other}",
                        env.host
                    ),
                    "give every environment on the same host its own port pair",
                );
            }
            seen_ports.push((&env.host, port, &env.name));
        }
        for domain in &env.domains {
            if let Some((_, other)) = seen_domains.iter().find(|(d, _)| *d == domain) {
                d.problem(
                    env.marks.domains,
                    &format!("{key}.domains"),
                    format!("domain {domain} is listed twice (also in {other})"),
                    "each domain belongs to exactly one environment",
                );
            }
            seen_domains.push((domain, &env.name));
        }
    }
    if app.php.memory_limit > app.limits.memory {
        d.problem(
            php.memory_limit,
            "php.memory_limit",
            format!(
                "memory_limit {} is more than the container's memory limit {}",
                app.php.memory_limit.php(),
                app.limits.memory.php()
            ),
            "lower php.memory_limit or raise limits.memory",
        );
    }
    if app.php.post_max_size < app.php.upload_max_filesize {
        d.problem(
            php.post_max_size,
            "php.post_max_size",
            format!(
                "post_max_size {} is smaller than upload_max_filesize {}",
                app.php.post_max_size.php(),
                app.php.upload_max_filesize.php()
            ),
            "a whole upload must fit in one POST body; make post_max_size at least upload_max_filesize",
        );
    }
}
