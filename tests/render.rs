//! Rendered configuration, checked by the real programs that will read it:
//! `nginx -t`, `php-fpm8.2 -t` and `docker-compose config`.

use std::path::Path;
use std::process::Command;

use berth::config::app::AppFile;
use berth::config::settings::AppSettings;
use berth::config::values::EnvName;
use berth::config::{Inventory, ReleaseFile};
use berth::exit::ExitStatus;
use berth::plan::release::{ReleaseId, Slot};
use berth::plan::render::{RenderedFile, Target, Templates};

use crate::common::{app_dir, front_main_conf, require_tool, Berth, Run, APP_YML, RELEASE_YML};

/// An inventory whose front writes logs (and finds its certificate) in `dir`.
fn inventory_in(dir: &Path, tls: bool) -> Inventory {
    let d = dir.display();
    let tls = if tls {
        format!(
            "      tls:\n        listen: 127.0.0.1:8443\n        certificate: {d}/cert.pem\n        key: {d}/key.pem\n"
        )
    } else {
        String::new()
    };
    let text = format!(
        "hosts:
  local:
    ssh:
      address: 127.0.0.1
      port: 2222
      user: deploy
      known_hosts: \"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx\"
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test, production]
    front:
      include_dir: {d}/conf.d
      log_dir: {d}/logs
      listen: 127.0.0.1:8080
      test_command: [/usr/sbin/nginx, -t]
      reload_command: [/usr/sbin/nginx, -s, reload]
      trusted_proxies: [10.0.0.0/8, fd00::/8]
{tls}    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
"
    );
    Inventory::parse("inventory.yml", &text).expect("test inventory is valid")
}

/// An app unlike the skeleton: code served from its root, extra hosts,
/// several domains, bigger limits.
const VARIED_APP: &str = "id: shop-search
owner: jane.doe
code_repo: plugins/partners/shop-search
runtime: berth/php-nginx:8.2-bookworm
health_path: /status/health
environments:
  test:
    host: local
    ports: [19001, 19002]
    domains: [shop.test.example.com, www.shop.test.example.com]
limits:
  cpus: 1.5
  memory: 1G
  pids: 512
  storage: 2G
php:
  memory_limit: 512M
  max_execution_time: 120
  upload_max_filesize: 64M
  post_max_size: 65M
  max_children: 12
extra_hosts:
  - name: api.partner.example
    address: 10.0.0.5
  - name: db.partner.example
    address: fd00::15
";

struct Fixture {
    name: &'static str,
    app: &'static str,
    env: &'static str,
    slot: Slot,
    backup: Option<Slot>,
    tls: bool,
    /// The release's berth.yml; empty for none.
    settings: &'static str,
}

/// A berth.yml that uses every key.
const SETTINGS: &str = "storage: [data, var/sessions]
sessions: var/sessions
health: {path: /status/health.php, status: 200, contains: \"db: ok\"}
web:
  deny: [/data, /config/, /bin]
  front_controller: /app.php
  static: {extensions: [css, js, svg], max_age: 7d}
  compress: true
php: {memory_limit: 96M, max_execution_time: 20, upload_max_filesize: 16M, post_max_size: 17M}
";

const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "skeleton test, first release",
        app: APP_YML,
        env: "test",
        slot: Slot::Blue,
        backup: None,
        tls: false,
        settings: "",
    },
    Fixture {
        name: "skeleton production, green with blue as backup",
        app: APP_YML,
        env: "production",
        slot: Slot::Green,
        backup: Some(Slot::Blue),
        tls: false,
        settings: "",
    },
    Fixture {
        name: "varied app with TLS",
        app: VARIED_APP,
        env: "test",
        slot: Slot::Blue,
        backup: Some(Slot::Green),
        tls: true,
        settings: SETTINGS,
    },
];

fn render(fixture: &Fixture, dir: &Path) -> Vec<RenderedFile> {
    let app = AppFile::parse("app.yml", fixture.app).expect("fixture app is valid");
    let inventory = inventory_in(dir, fixture.tls);
    let env_name: EnvName = fixture.env.parse().unwrap();
    let env = app.environment(&env_name).expect("fixture environment");
    let release = ReleaseId::new(&"v1.2.0".parse().unwrap(), Some("0123456789abcdef0123"));
    let settings = match fixture.settings {
        "" => AppSettings::default(),
        text => AppSettings::parse("berth.yml", text, &app).expect("fixture settings"),
    };
    Templates::embedded()
        .render(&Target {
            app: &app,
            env,
            host: &inventory.hosts[0],
            release: &release,
            slot: fixture.slot,
            backup: fixture.backup,
            settings: &settings,
        })
        .expect("templates render")
}

fn file<'a>(files: &'a [RenderedFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} was not rendered"))
        .contents
}

fn run_ok(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write_self_signed_certificate(dir: &Path) {
    run_ok(
        Command::new(require_tool("openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=shop.test.example.com",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
        "openssl req",
    );
}

/// `nginx -t` on the front vhost, included in a minimal main config the way
/// the host's nginx includes it.
fn nginx_test_front(dir: &Path, front: &str) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("front.conf"), front).unwrap();
    let main = front_main_conf(dir, &dir.join("front.conf"));
    std::fs::write(dir.join("main.conf"), main).unwrap();
    run_ok(
        Command::new(require_tool("nginx"))
            .arg("-t")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("main.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log")),
        "nginx -t (front vhost)",
    );
}

#[test]
#[ignore = "rig: nginx, php-fpm8.2, docker-compose and openssl installed; scripts/test runs it"]
fn every_rendered_file_passes_the_real_checkers() {
    let env_file = regex::Regex::new(r#"env_file: \["[^"]+/secrets-(blue|green)\.env"\]"#).unwrap();
    for fixture in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        if fixture.tls {
            write_self_signed_certificate(dir.path());
        }
        let files = render(fixture, dir.path());
        let conf = dir.path().join("conf");
        berth::plan::render::write_files(&conf, &files).unwrap();
        eprintln!("checking {}", fixture.name);

        nginx_test_front(dir.path(), file(&files, "front.conf"));
        run_ok(
            Command::new(require_tool("nginx"))
                .arg("-t")
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("app-nginx-error.log"))
                .arg("-c")
                .arg(conf.join("nginx.conf")),
            &format!("nginx -t (app nginx, {})", fixture.name),
        );
        run_ok(
            Command::new(require_tool("php-fpm8.2"))
                .arg("-t")
                .arg("-y")
                .arg(conf.join("php-fpm.conf"))
                .arg("-c")
                .arg(conf.join("php.ini")),
            &format!("php-fpm8.2 -t ({})", fixture.name),
        );
        // The secrets file compose reads lives on the host (berth writes it
        // before compose up); point the check at an empty one here.
        let secrets = dir.path().join("secrets.env");
        std::fs::write(&secrets, "").unwrap();
        let compose = file(&files, "compose.yml");
        assert_eq!(env_file.find_iter(compose).count(), 1, "{compose}");
        let checked = env_file.replace(
            compose,
            format!("env_file: [{:?}]", secrets.display().to_string()),
        );
        std::fs::write(conf.join("compose.yml"), checked.as_ref()).unwrap();
        run_ok(
            Command::new(require_tool("docker-compose"))
                .arg("-f")
                .arg(conf.join("compose.yml"))
                .args(["-p", "berth-render-check", "config", "-q"]),
            &format!("docker-compose config ({})", fixture.name),
        );
    }
}

#[test]
fn front_vhost_keeps_the_previous_slot_as_backup() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[1], dir.path());
    let front = file(&files, "front.conf");
    assert!(front.contains("upstream berth-example-production {"));
    assert!(front.contains("server 127.0.0.1:18012 max_fails=1 fail_timeout=10s;"));
    assert!(front.contains("server 127.0.0.1:18011 backup;"));
    assert!(front.contains("proxy_next_upstream error timeout http_502 http_503;"));
    assert!(front.contains("server_tokens off;"));
    assert!(front.contains(&format!(
        "access_log {}/logs/example.production.access.log combined;",
        dir.path().display()
    )));

    let first = render(&FIXTURES[0], dir.path());
    assert!(
        !file(&first, "front.conf").contains("backup;"),
        "a first release has no backup"
    );
}

#[test]
fn tls_listener_appears_only_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let with_tls = render(&FIXTURES[2], dir.path());
    let front = file(&with_tls, "front.conf");
    assert!(front.contains("listen 127.0.0.1:8443 ssl;"));
    // The redirect keeps a TLS port that is not 443.
    assert!(front.contains("return 301 https://$host:8443$request_uri;"));
    assert!(front.contains("set_real_ip_from fd00::/8;"));
    let without = render(&FIXTURES[0], dir.path());
    assert!(!file(&without, "front.conf").contains("ssl"));
}

/// The `proxy_set_header` lines of a rendered front vhost, in order.
fn proxy_headers(front: &str) -> Vec<&str> {
    front
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("proxy_set_header "))
        .collect()
}

#[test]
fn front_sends_the_host_port_and_scheme_the_client_used() {
    let dir = tempfile::tempdir().unwrap();
    let headers = [
        "proxy_set_header Connection \"\";",
        "proxy_set_header Host $berth_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Port $server_port;",
        "proxy_set_header X-Forwarded-Host $berth_host;",
        "proxy_set_header Forwarded \"\";",
    ];
    // Plain HTTP: the port is left out only when it is 80.
    let files = render(&FIXTURES[0], dir.path());
    let front = file(&files, "front.conf");
    assert_eq!(proxy_headers(front), headers);
    assert!(
        front.contains(
            "\n    set $berth_host $host:$server_port;\n    if ($server_port = 80) {\n        set $berth_host $host;\n    }\n"
        ),
        "{front}"
    );
    // TLS: the proxying server is the https one, whose default port is 443.
    let files = render(&FIXTURES[2], dir.path());
    let front = file(&files, "front.conf");
    assert_eq!(proxy_headers(front), headers);
    assert!(
        front.contains(
            "\n    set $berth_host $host:$server_port;\n    if ($server_port = 443) {\n        set $berth_host $host;\n    }\n"
        ),
        "{front}"
    );
}

#[test]
fn slot_nginx_believes_forwarded_scheme_and_port_from_the_front_only() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[0], dir.path());
    let nginx = file(&files, "nginx.conf");
    // The slot network of port 18001 is 10.226.50.136/29: its gateway is
    // where Docker's proxy connects from, 127.0.0.1 the publish address.
    assert!(
        nginx.contains(
            "
    geo $berth_from_front {
        default 0;
        10.226.50.137 1;
        127.0.0.1 1;
    }
    map \"$berth_from_front:$http_x_forwarded_proto\" $berth_scheme {
        default $scheme;
        \"1:http\" http;
        \"1:https\" https;
    }
    map \"$berth_from_front:$http_x_forwarded_port\" $berth_port {
        default $server_port;
        \"~^1:([1-9][0-9]{0,4})$\" $1;
    }
    map $berth_scheme $berth_https {
        default \"\";
        https on;
    }
"
        ),
        "{nginx}"
    );
    assert!(
        nginx.contains(
            "
    map $berth_from_front $berth_http_host {
        default $host;
        1 $http_host;
    }
"
        ),
        "{nginx}"
    );
    let params: Vec<&str> = nginx
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("fastcgi_param "))
        .collect();
    assert_eq!(
        params,
        [
            "fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;",
            "fastcgi_param DOCUMENT_ROOT $realpath_root;",
            "fastcgi_param PATH_INFO $fastcgi_path_info;",
            "fastcgi_param HTTP_HOST $berth_http_host;",
            "fastcgi_param HTTPS $berth_https if_not_empty;",
            "fastcgi_param REQUEST_SCHEME $berth_scheme;",
            "fastcgi_param SERVER_PORT $berth_port;",
            "fastcgi_param HTTP_X_FORWARDED_PROTO $berth_scheme;",
            "fastcgi_param HTTP_X_FORWARDED_PORT $berth_port;",
        ]
    );
}

#[test]
fn php_ini_sizes_apcu() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[0], dir.path());
    let ini = file(&files, "php.ini");
    assert!(
        ini.ends_with("\napc.enabled = 1\napc.shm_size = 32M\napc.enable_cli = 0\n"),
        "{ini}"
    );
}

#[test]
fn compose_file_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[2], dir.path());
    let compose: serde_yaml::Value = serde_yaml::from_str(file(&files, "compose.yml")).unwrap();
    for role in ["php", "web"] {
        let service = &compose["services"][role];
        assert_eq!(service["user"], "33:33", "{role}");
        assert_eq!(service["read_only"], true, "{role}");
        assert_eq!(service["pull_policy"], "never", "{role}");
        assert_eq!(service["cap_drop"][0], "ALL", "{role}");
        assert_eq!(
            service["security_opt"][0], "no-new-privileges:true",
            "{role}"
        );
        assert_eq!(service["labels"]["berth.app"], "shop-search", "{role}");
        assert_eq!(service["labels"]["berth.slot"], "blue", "{role}");
        assert_eq!(
            service["labels"]["berth.release"], "v1.2.0-0123456789ab",
            "{role}"
        );
        assert!(service["healthcheck"]["test"].is_sequence(), "{role}");
        let code_mount = service["volumes"][0].as_str().unwrap();
        assert!(
            code_mount.ends_with(":/var/www/app:ro"),
            "{role}: {code_mount}"
        );
    }
    assert_eq!(compose["services"]["php"]["mem_limit"], "1g");
    // No swap beyond the memory limit; open files capped.
    // /tmp holds a whole POST (17M here, berth.yml's post_max_size) on top
    // of its scratch space, and the web container's memory limit grows
    // with it.
    for (role, memory, tmp) in [("php", "1g", "81m"), ("web", "81m", "33m")] {
        let service = &compose["services"][role];
        assert_eq!(service["memswap_limit"], memory, "{role}");
        assert_eq!(service["mem_limit"], memory, "{role}");
        // A replaced slot stops gracefully (nginx and php-fpm: QUIT).
        assert_eq!(service["stop_signal"], "SIGQUIT", "{role}");
        assert_eq!(
            service["tmpfs"][0],
            format!("/tmp:size={tmp},mode=1777").as_str(),
            "{role}"
        );
        assert_eq!(service["ulimits"]["nofile"]["soft"], 1024, "{role}");
        assert_eq!(service["ulimits"]["nofile"]["hard"], 1024, "{role}");
    }
    // The slot network of port 19001 and its fixed addresses.
    assert_eq!(
        compose["networks"]["app"]["ipam"]["config"][0]["subnet"],
        "10.226.81.200/29"
    );
    assert_eq!(
        compose["services"]["web"]["networks"]["app"]["ipv4_address"],
        "10.226.81.202"
    );
    assert_eq!(
        compose["services"]["php"]["networks"]["app"]["ipv4_address"],
        "10.226.81.203"
    );
    let fpm = file(&files, "php-fpm.conf");
    assert!(fpm.contains("\nlisten = 10.226.81.203:9000\n"), "{fpm}");
    assert!(
        fpm.contains("\nlisten.allowed_clients = 10.226.81.202\n"),
        "{fpm}"
    );
    let nginx = file(&files, "nginx.conf");
    assert!(nginx.contains("\n    disable_symlinks on;\n"), "{nginx}");
    assert!(
        nginx.contains("\n            fastcgi_pass 10.226.81.203:9000;\n"),
        "{nginx}"
    );
    assert_eq!(compose["services"]["php"]["pids_limit"], 512);
    assert_eq!(compose["services"]["php"]["cpus"], "1.5");
    assert_eq!(
        compose["services"]["php"]["extra_hosts"][1],
        "db.partner.example:fd00::15"
    );
    let ports = compose["services"]["web"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        ports[0], "127.0.0.1:19001:8080",
        "published on loopback only"
    );
    assert!(
        compose["services"]["php"]["ports"].is_null(),
        "php-fpm is never published"
    );
}

#[test]
fn berth_yml_reaches_the_app_nginx_compose_and_php() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[2], dir.path());
    let nginx = file(&files, "nginx.conf");
    for path in ["/data", "/config", "/bin"] {
        assert!(
            nginx.contains(&format!(
                "\n        location = {path} {{\n            return 404;\n        }}\n        location ^~ {path}/ {{\n            return 404;\n        }}\n"
            )),
            "{path}: {nginx}"
        );
    }
    assert!(
        nginx.contains("\n            try_files $uri $uri/ /app.php$is_args$args;\n"),
        "{nginx}"
    );
    // web.static after the .php location (the first regex that matches
    // wins, so a script never gets here); web.compress in http.
    let php_at = nginx.find("location ~ [^/]\\.php(/|$)").unwrap();
    let static_at = nginx
        .find("\n        location ~* \\.(css|js|svg)$ {\n            try_files $uri /app.php$is_args$args;\n            expires 604800s;\n        }\n")
        .unwrap_or_else(|| panic!("{nginx}"));
    assert!(php_at < static_at, "{nginx}");
    assert!(nginx.contains("\n    gzip on;\n"), "{nginx}");
    // berth.yml's php settings, below app.yml's, in php.ini and nginx.
    let ini = file(&files, "php.ini");
    for line in [
        "memory_limit = 96M",
        "max_execution_time = 20",
        "upload_max_filesize = 16M",
        "post_max_size = 17M",
    ] {
        assert!(ini.contains(&format!("\n{line}\n")), "{line}: {ini}");
    }
    assert!(
        nginx.contains("\n    client_max_body_size 17M;\n"),
        "{nginx}"
    );
    assert!(
        nginx.contains("\n            fastcgi_read_timeout 25s;\n"),
        "{nginx}"
    );
    let compose: serde_yaml::Value = serde_yaml::from_str(file(&files, "compose.yml")).unwrap();
    let volumes = |role: &str| -> Vec<String> {
        compose["services"][role]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let storage = "/srv/berth/shop-search/test/storage";
    assert_eq!(
        volumes("php")[2..],
        [
            format!("{storage}/data:/var/www/app/data:rw"),
            format!("{storage}/var/sessions:/var/www/app/var/sessions:rw"),
        ]
    );
    assert_eq!(volumes("web").len(), 2, "nginx never sees the storage");
    let ini = file(&files, "php.ini");
    assert!(
        ini.contains("\nsession.save_path = /var/www/app/var/sessions\n"),
        "{ini}"
    );
    let probe = compose["services"]["web"]["healthcheck"]["test"][3]
        .as_str()
        .unwrap();
    assert!(
        probe.contains("'GET /status/health.php HTTP/1.0"),
        "{probe}"
    );

    // Without a berth.yml: PHP's sessions stay in the slot's /tmp.
    let plain = render(&FIXTURES[0], dir.path());
    assert!(file(&plain, "php.ini").contains("\nsession.save_path = /tmp\n"));
    let plain_nginx = file(&plain, "nginx.conf");
    assert!(!plain_nginx.contains("return 404;"));
    assert!(!plain_nginx.contains("gzip") && !plain_nginx.contains("expires"));
}

#[test]
fn php_ini_confines_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let files = render(&FIXTURES[2], dir.path());
    let ini = file(&files, "php.ini");
    assert!(ini.contains("open_basedir = /var/www/app:/tmp"));
    let disabled = ini
        .lines()
        .find_map(|l| l.strip_prefix("disable_functions = "))
        .expect("disable_functions line");
    for function in [
        "exec",
        "shell_exec",
        "system",
        "passthru",
        "proc_open",
        "popen",
    ] {
        assert!(
            disabled.split(',').any(|f| f == function),
            "{function} not disabled"
        );
    }
    // app.yml's memory_limit when berth.yml sets none (the skeleton's).
    let plain = render(&FIXTURES[0], dir.path());
    assert!(file(&plain, "php.ini").contains("\nmemory_limit = 128M\n"));
    assert!(file(&files, "php-fpm.conf").contains("pm = ondemand"));
    let nginx = file(&files, "nginx.conf");
    assert!(nginx.contains("fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;"));
    assert!(
        nginx.contains("root /var/www/app;"),
        "docroot '.' is the code root"
    );
}

#[test]
fn template_overrides_replace_single_files_and_typos_fail() {
    let overrides = tempfile::tempdir().unwrap();
    std::fs::write(
        overrides.path().join("php.ini.j2"),
        "memory_limit = {{ app.php.memory_limit }}\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = AppFile::parse("app.yml", APP_YML).unwrap();
    let inventory = inventory_in(dir.path(), false);
    let release = ReleaseId::new(&"v1".parse().unwrap(), None);
    let target = Target {
        app: &app,
        env: &app.environments[0],
        host: &inventory.hosts[0],
        release: &release,
        slot: Slot::Blue,
        backup: None,
        settings: &AppSettings::default(),
    };
    let files = Templates::with_overrides(Some(overrides.path().to_path_buf()))
        .render(&target)
        .unwrap();
    assert_eq!(file(&files, "php.ini"), "memory_limit = 128M\n");
    assert!(
        file(&files, "front.conf").contains("upstream berth-example-test"),
        "others stay embedded"
    );

    std::fs::write(
        overrides.path().join("php.ini.j2"),
        "memory_limit = {{ app.php.memroy_limit }}\n",
    )
    .unwrap();
    let error = Templates::with_overrides(Some(overrides.path().to_path_buf()))
        .render(&target)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("template php.ini.j2 failed to render"),
        "{error}"
    );
    assert!(error.contains("undefined"), "{error}");
}

#[test]
fn skeleton_loads_strictly_and_renders_through_the_cli() {
    let skeleton = crate::common::repo_root().join("mgmt-repo-skeleton");
    ReleaseFile::parse("release.yml", RELEASE_YML).expect("skeleton release.yml is valid");
    let dir = tempfile::tempdir().unwrap();
    let inventory = crate::common::repo_root().join("examples/inventory.yml");
    let out = dir.path().join("conf");
    let render_skeleton = |flags: &[&str]| -> Run {
        Berth::new()
            .args(flags)
            .args(["render", "--env", "test", "--app-dir"])
            .arg_path(&skeleton)
            .args(["--inventory"])
            .arg_path(&inventory)
            .args(["--out"])
            .arg_path(&out)
            .run()
            .expect(ExitStatus::Success)
            .placeholder(&out, "<out>")
            .expect_stderr("")
    };
    render_skeleton(&[]).expect_stdout(
        "<out>/front.conf\n<out>/nginx.conf\n<out>/php-fpm.conf\n<out>/php.ini\n<out>/msmtprc\n<out>/compose.yml\n",
    );
    for name in [
        "front.conf",
        "nginx.conf",
        "php-fpm.conf",
        "php.ini",
        "msmtprc",
        "compose.yml",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }

    // --dry-run against what was just written: nothing to change.
    render_skeleton(&["--dry-run"]).expect_stdout(
        "unchanged <out>/front.conf\nunchanged <out>/nginx.conf\nunchanged <out>/php-fpm.conf\n\
         unchanged <out>/php.ini\nunchanged <out>/msmtprc\nunchanged <out>/compose.yml\n",
    );

    // Edit a file by hand: the dry run shows the diff and writes nothing.
    let php_ini = std::fs::read_to_string(out.join("php.ini")).unwrap();
    assert!(php_ini.contains("\nmemory_limit = 128M\n"), "{php_ini}");
    std::fs::write(out.join("php.ini"), "edited\n").unwrap();
    let added: String = php_ini.lines().map(|line| format!("+{line}\n")).collect();
    render_skeleton(&["--dry-run"]).expect_stdout(&format!(
        "unchanged <out>/front.conf\nunchanged <out>/nginx.conf\nunchanged <out>/php-fpm.conf\n\
         update <out>/php.ini\n--- a/php.ini\n+++ b/php.ini\n@@ -1 +1,{} @@\n-edited\n{added}\
         unchanged <out>/msmtprc\nunchanged <out>/compose.yml\n",
        php_ini.lines().count()
    ));
    assert_eq!(
        std::fs::read_to_string(out.join("php.ini")).unwrap(),
        "edited\n"
    );
}

#[test]
fn render_refuses_an_environment_release_yml_does_not_request() {
    let dir = app_dir("environments:\n  test:\n    ref: v1.0.0\n", APP_YML);
    let inventory = crate::common::repo_root().join("examples/inventory.yml");
    Berth::new()
        .args([
            "render",
            "--env",
            "production",
            "--out",
            "/nonexistent/out",
            "--app-dir",
        ])
        .arg_path(dir.path())
        .args(["--inventory"])
        .arg_path(&inventory)
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: release.yml requests no tag for environment production\n  \
             hint: add `production: { ref: TAG }` under environments in release.yml\n",
        )
        .expect_stdout("");
    assert!(!Path::new("/nonexistent/out").exists());
}
