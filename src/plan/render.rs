//! Renders a release's configuration (front vhost, app nginx, php-fpm pool,
//! php.ini, compose file) from validated config with minijinja.
//!
//! Templates are embedded in the binary and may be overridden file by file
//! from a directory. Undefined variables are errors, so a typo in a template
//! fails loudly instead of rendering an empty value. The context is built
//! only from validated newtypes: templates never see raw user text.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::release::{project_name, upstream_name, HostLayout, ReleaseId, Slot, SlotNetwork};
use crate::config::app::{AppEnvironment, AppFile};
use crate::config::inventory::Host;
use crate::config::settings::AppSettings;

/// The files of `conf/`, in the order they are written.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("front.conf", include_str!("../../templates/front.conf.j2")),
    ("nginx.conf", include_str!("../../templates/nginx.conf.j2")),
    (
        "php-fpm.conf",
        include_str!("../../templates/php-fpm.conf.j2"),
    ),
    ("php.ini", include_str!("../../templates/php.ini.j2")),
    ("msmtprc", include_str!("../../templates/msmtprc.j2")),
    (
        "compose.yml",
        include_str!("../../templates/compose.yml.j2"),
    ),
];

/// Functions no plugin may call: they run programs or reach outside PHP.
/// `mail` is among them unless the app has `mail` in app.yml
/// ([`disabled_functions`]).
pub const DISABLED_FUNCTIONS: &[&str] = &[
    "exec",
    "passthru",
    "shell_exec",
    "system",
    "proc_open",
    "popen",
    "pcntl_exec",
    "pcntl_fork",
    "pcntl_signal",
    "posix_kill",
    "posix_setuid",
    "posix_setgid",
    "dl",
    "putenv",
    "mail",
    "symlink",
    "link",
];

/// [`DISABLED_FUNCTIONS`] for a slot: `mail()` too unless it has mail
/// (`mail` in app.yml, a relay on the host), so a plugin without finds it
/// missing (`function_exists('mail')` is false) instead of a message
/// silently going nowhere.
pub fn disabled_functions(mail: bool) -> Vec<&'static str> {
    DISABLED_FUNCTIONS
        .iter()
        .copied()
        .filter(|f| *f != "mail" || !mail)
        .collect()
}

/// Paths and ports inside the containers, the same for every app.
const CODE_DIR: &str = "/var/www/app";
const WEB_PORT: u16 = 8080;
const PHP_PORT: u16 = 9000;
/// Open files per process in either container (soft and hard): php-fpm
/// and nginx need a few hundred at most.
const NOFILE: u32 = 1024;

/// What to render: one app environment released into one slot of a host.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub app: &'a AppFile,
    pub env: &'a AppEnvironment,
    pub host: &'a Host,
    pub release: &'a ReleaseId,
    /// The slot that will serve this release.
    pub slot: Slot,
    /// The slot kept warm as the front's backup, if one runs.
    pub backup: Option<Slot>,
    /// The release's own `berth.yml` (the default when it has none).
    pub settings: &'a AppSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    pub name: String,
    pub contents: String,
}

/// A template that failed to render, named so the operator can find it.
#[derive(Debug, thiserror::Error)]
#[error("template {name} failed to render: {source:#}")]
pub struct RenderError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// The embedded templates, with per-file overrides from a directory.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn embedded() -> Templates {
        Templates::with_overrides(None)
    }

    /// Uses `dir/<name>.j2` instead of the embedded template where it exists.
    pub fn with_overrides(dir: Option<PathBuf>) -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Compose files are YAML: every value is written as JSON (valid YAML),
        // so no value can break out of its place. nginx and PHP files get
        // only validated values and need no escaping.
        env.set_auto_escape_callback(|name| {
            if name.starts_with("compose.") {
                AutoEscape::Json
            } else {
                AutoEscape::None
            }
        });
        env.set_loader(move |name| {
            if let Some(dir) = &dir {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read template override {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(TEMPLATES
                .iter()
                .find(|(file, _)| format!("{file}.j2") == name)
                .map(|(_, text)| text.to_string()))
        });
        Templates { env }
    }

    pub fn render(&self, target: &Target) -> Result<Vec<RenderedFile>, RenderError> {
        let context = Context::new(target);
        TEMPLATES
            .iter()
            .map(|(name, _)| {
                let fail = |source| RenderError {
                    name: format!("{name}.j2"),
                    source,
                };
                let template = self.env.get_template(&format!("{name}.j2")).map_err(fail)?;
                let contents = template.render(&context).map_err(fail)?;
                Ok(RenderedFile {
                    name: name.to_string(),
                    contents,
                })
            })
            .collect()
    }
}

/// Everything a template may use, already formatted.
#[derive(Serialize)]
struct Context {
    app: AppContext,
    env: EnvContext,
    host: HostContext,
    release: ReleaseContext,
    slot: SlotContext,
    backup: Option<SlotContext>,
    upstream: String,
    project: String,
    paths: PathsContext,
    logs: LogsContext,
    web: WebContext,
    /// Host directory → container directory, each mounted read-write in
    /// the php container only.
    storage: Vec<StorageMount>,
    /// Where PHP keeps sessions: a storage directory, or the slot's /tmp.
    session_save_path: String,
    container: ContainerContext,
    network: NetworkContext,
    limits: RoleLimits,
    extra_hosts: Vec<String>,
    health_probe: String,
    php_listening: String,
    disabled_functions: Vec<&'static str>,
    /// Set only for an app with `mail` on a host with a relay.
    mail: Option<MailContext>,
}

#[derive(Serialize)]
struct MailContext {
    from: String,
    relay_address: String,
    relay_port: u16,
}

#[derive(Serialize)]
struct AppContext {
    id: String,
    runtime: String,
    health_path: String,
    php: PhpContext,
    extra_hosts: bool,
}

#[derive(Serialize)]
struct PhpContext {
    memory_limit: String,
    max_execution_time: u32,
    upload_max_filesize: String,
    post_max_size: String,
    max_children: u32,
}

#[derive(Serialize)]
struct EnvContext {
    name: String,
    domains: Vec<String>,
}

#[derive(Serialize)]
struct HostContext {
    publish_address: String,
    front: FrontContext,
}

#[derive(Serialize)]
struct FrontContext {
    listen: String,
    trusted_proxies: Vec<String>,
    tls: Option<TlsContext>,
}

#[derive(Serialize)]
struct TlsContext {
    listen: String,
    /// For the redirect from plain HTTP, which names the port unless it is 443.
    port: u16,
    certificate: String,
    key: String,
}

#[derive(Serialize)]
struct ReleaseContext {
    id: String,
}

#[derive(Serialize)]
struct SlotContext {
    name: &'static str,
    port: u16,
}

#[derive(Serialize)]
struct PathsContext {
    code: String,
    conf: String,
    secrets: String,
}

#[derive(Serialize)]
struct WebContext {
    /// URL prefixes the app's nginx answers 404 (exact and below).
    deny: Vec<String>,
    front_controller: String,
    /// `berth.yml` `web.static`, when set.
    static_files: Option<StaticContext>,
    compress: bool,
}

#[derive(Serialize)]
struct StaticContext {
    /// For nginx's `location ~* \.(css|js)$`: letters and digits only.
    extensions: Vec<String>,
    max_age_seconds: u32,
}

#[derive(Serialize)]
struct StorageMount {
    host: String,
    container: String,
}

#[derive(Serialize)]
struct LogsContext {
    access: String,
    error: String,
}

#[derive(Serialize)]
struct ContainerContext {
    code_dir: &'static str,
    docroot: String,
    web_port: u16,
    php_port: u16,
}

/// The slot network's fixed addresses (see [`SlotNetwork`]).
#[derive(Serialize)]
struct NetworkContext {
    subnet: String,
    gateway: String,
    web: String,
    php: String,
}

#[derive(Serialize)]
struct RoleLimits {
    php: LimitContext,
    web: LimitContext,
}

#[derive(Serialize)]
struct LimitContext {
    memory: String,
    /// The size of the container's `/tmp` (a tmpfs, counted in `memory`).
    tmp: String,
    cpus: String,
    pids: u32,
    nofile: u32,
}

impl Context {
    fn new(t: &Target) -> Context {
        let app = t.app;
        let layout = HostLayout::new(&t.host.base_dir, &app.id, t.env);
        let slot_context = |slot: Slot| SlotContext {
            name: slot.name(),
            port: slot.port(t.env).get(),
        };
        let front = &t.host.front;
        let log_base = front.log_dir.join(&format!("{}.{}", app.id, t.env.name));
        let network = SlotNetwork::for_port(t.slot.port(t.env).get());
        let settings = t.settings;
        let health = settings.health_or(&app.health_path);
        let php = settings.php.applied_to(&app.php);
        let storage_dir = layout.storage_dir();
        let docroot = match app.docroot.as_str() {
            "." => CODE_DIR.to_string(),
            sub => format!("{CODE_DIR}/{sub}"),
        };
        let mail = app
            .mail
            .as_ref()
            .zip(t.host.mail.as_ref())
            .map(|(mail, host)| MailContext {
                from: mail.from.to_string(),
                relay_address: host.relay.ip().to_string(),
                relay_port: host.relay.port(),
            });
        Context {
            app: AppContext {
                id: app.id.to_string(),
                runtime: app.runtime.to_string(),
                health_path: health.path.to_string(),
                php: PhpContext {
                    memory_limit: php.memory_limit.php(),
                    max_execution_time: php.max_execution_time,
                    upload_max_filesize: php.upload_max_filesize.php(),
                    post_max_size: php.post_max_size.php(),
                    max_children: php.max_children,
                },
                extra_hosts: !app.extra_hosts.is_empty() || !app.egress.is_empty(),
            },
            env: EnvContext {
                name: t.env.name.to_string(),
                domains: t.env.domains.iter().map(ToString::to_string).collect(),
            },
            host: HostContext {
                publish_address: t.host.publish_address.to_string(),
                front: FrontContext {
                    listen: front.listen.to_string(),
                    trusted_proxies: front.trusted_proxies.iter().map(ToString::to_string).collect(),
                    tls: front.tls.as_ref().map(|tls| TlsContext {
                        listen: tls.listen.to_string(),
                        port: tls.listen.port(),
                        certificate: tls.certificate.to_string(),
                        key: tls.key.to_string(),
                    }),
                },
            },
            release: ReleaseContext {
                id: t.release.to_string(),
            },
            slot: slot_context(t.slot),
            backup: t.backup.map(slot_context),
            upstream: upstream_name(&app.id, t.env),
            project: project_name(&app.id, t.env, t.slot),
            paths: PathsContext {
                code: layout.code_dir(t.release).to_string(),
                conf: layout.conf_dir(t.release, t.slot).to_string(),
                secrets: layout.secrets_file(t.slot).to_string(),
            },
            web: WebContext {
                deny: settings.web.deny.iter().map(ToString::to_string).collect(),
                front_controller: settings.front_controller().to_string(),
                static_files: settings.web.static_files.as_ref().map(|s| StaticContext {
                    extensions: s.extensions.iter().map(|e| e.as_str().to_string()).collect(),
                    max_age_seconds: s.max_age.seconds(),
                }),
                compress: settings.web.compress,
            },
            storage: settings
                .storage
                .iter()
                .map(|path| StorageMount {
                    host: storage_dir.join(path.as_str()).to_string(),
                    container: format!("{CODE_DIR}/{path}"),
                })
                .collect(),
            session_save_path: settings
                .sessions
                .as_ref()
                .map_or("/tmp".to_string(), |path| format!("{CODE_DIR}/{path}")),
            logs: LogsContext {
                access: format!("{log_base}.access.log"),
                error: format!("{log_base}.error.log"),
            },
            container: ContainerContext {
                code_dir: CODE_DIR,
                docroot,
                web_port: WEB_PORT,
                php_port: PHP_PORT,
            },
            network: NetworkContext {
                subnet: network.cidr(),
                gateway: network.gateway.to_string(),
                web: network.web.to_string(),
                php: network.php.to_string(),
            },
            limits: RoleLimits {
                // Uploads in flight are in /tmp: each container's holds
                // its scratch space plus a whole POST.
                php: LimitContext {
                    memory: app.limits.memory.lower(),
                    tmp: crate::config::values::ByteSize::mib(64).plus(php.post_max_size).lower(),
                    cpus: app.limits.cpus.to_string(),
                    pids: app.limits.pids,
                    nofile: NOFILE,
                },
                // The app's nginx only serves files and passes requests on:
                // a small fixed share, the same for every app.
                web: LimitContext {
                    memory: crate::config::values::ByteSize::mib(64).plus(php.post_max_size).lower(),
                    tmp: crate::config::values::ByteSize::mib(16).plus(php.post_max_size).lower(),
                    cpus: "0.5".into(),
                    pids: 64,
                    nofile: NOFILE,
                },
            },
            extra_hosts: app
                .extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.address))
                .chain(app.egress.iter().map(|e| format!("{}:{}", e.name, e.address)))
                .collect(),
            health_probe: format!(
                "exec 3<>/dev/tcp/127.0.0.1/{WEB_PORT} && printf 'GET {} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' {} '",
                health.path, health.status
            ),
            // A line of /proc/net/tcp: any local address, php-fpm's port,
            // no remote end, state 0A (LISTEN).
            php_listening: format!(":{PHP_PORT:04X} 00000000:0000 0A "),
            disabled_functions: disabled_functions(mail.is_some()),
            mail,
        }
    }
}

/// Writes rendered files into `dir`, creating it.
pub fn write_files(dir: &Path, files: &[RenderedFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for file in files {
        std::fs::write(dir.join(&file.name), &file.contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::inventory::Inventory;

    use crate::plan::fixtures::{APP, INVENTORY};

    /// `(php.ini, msmtprc)` of the skeleton app plus `extra` in app.yml.
    fn mail_files(extra: &str) -> (String, String) {
        let app = AppFile::parse("app.yml", &format!("{APP}{extra}")).unwrap();
        let inventory = Inventory::parse("inventory.yml", INVENTORY).unwrap();
        let release = ReleaseId::new(&"v1.0.0".parse().unwrap(), None);
        let files = Templates::embedded()
            .render(&Target {
                app: &app,
                env: &app.environments[0],
                host: &inventory.hosts[0],
                release: &release,
                slot: Slot::Blue,
                backup: None,
                settings: &crate::config::settings::AppSettings::default(),
            })
            .unwrap();
        let file = |name: &str| {
            files
                .iter()
                .find(|f| f.name == name)
                .unwrap()
                .contents
                .clone()
        };
        (file("php.ini"), file("msmtprc"))
    }

    fn mail_lines(php_ini: &str) -> Vec<&str> {
        php_ini
            .lines()
            .filter(|l| {
                l.starts_with("disable_functions")
                    || l.starts_with("sendmail_path")
                    || l.starts_with("mail.")
            })
            .collect()
    }

    #[test]
    fn an_app_with_mail_sends_through_msmtp_with_its_sender() {
        let (php_ini, msmtprc) = mail_files("mail: {from: noreply@shop.example.com}\n");
        assert_eq!(
            mail_lines(&php_ini),
            [
                "disable_functions = exec,passthru,shell_exec,system,proc_open,popen,pcntl_exec,pcntl_fork,pcntl_signal,posix_kill,posix_setuid,posix_setgid,dl,putenv,symlink,link",
                "sendmail_path = \"/usr/bin/msmtp --file=/etc/berth/msmtprc --read-recipients\"",
                "mail.force_extra_parameters = \"--\"",
                "mail.add_x_header = Off",
            ]
        );
        let settings: Vec<&str> = msmtprc.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            settings,
            [
                "account default",
                "host 10.0.0.25",
                "port 2525",
                "auth off",
                "timeout 10",
                "tls off",
                "from noreply@shop.example.com",
                "allow_from_override off",
                "set_from_header on",
                "syslog off",
            ]
        );
    }

    #[test]
    fn an_app_without_mail_has_no_mail_function() {
        let (php_ini, msmtprc) = mail_files("");
        assert_eq!(
            mail_lines(&php_ini),
            ["disable_functions = exec,passthru,shell_exec,system,proc_open,popen,pcntl_exec,pcntl_fork,pcntl_signal,posix_kill,posix_setuid,posix_setgid,dl,putenv,mail,symlink,link"]
        );
        assert_eq!(
            msmtprc,
            "# Managed by berth: outbound mail of example/test (docs/mail.md).\n\
             # This app has no mail in app.yml: mail() is disabled (php.ini).\n"
        );
    }

    #[test]
    fn the_developer_guide_lists_every_disabled_function() {
        let guide = include_str!("../../docs/developers.md");
        let listed = guide
            .split("These functions are disabled: ")
            .nth(1)
            .and_then(|rest| rest.split(". There is no FFI").next())
            .expect("docs/developers.md lists the disabled functions");
        let listed: Vec<String> = listed
            .split(',')
            .map(|f| {
                f.trim()
                    .trim_start_matches("and ")
                    .trim_matches('`')
                    .to_string()
            })
            .collect();
        assert_eq!(listed, DISABLED_FUNCTIONS);
    }
}
