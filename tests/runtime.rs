//! Rendered configuration run for real: the compose file started with the
//! offline-built runtime image serves the example plugin, hardened as
//! rendered, and the front vhost proxies to it through a real nginx.

use std::path::Path;
use std::process::Command;

use berth::config::app::AppFile;
use berth::config::Inventory;
use berth::plan::release::{ReleaseId, Slot};
use berth::plan::render::{write_files, Target, Templates};

use crate::common::{
    edit, free_ports, front_main_conf, http_request, repo_root, require_tool, wait_for_200, APP_YML,
};

const IMAGE: &str = "berth/php-nginx:8.2-bookworm";

fn run(command: &mut Command) -> String {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stops what a test started, even when it fails.
struct Cleanup {
    compose_file: std::path::PathBuf,
    project: String,
    front: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .arg("-f")
            .arg(&self.compose_file)
            .args(["-p", &self.project, "down", "--volumes", "--timeout", "2"])
            .output();
        if let Some((prefix, conf)) = &self.front {
            let _ = Command::new("nginx")
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(conf)
                .args(["-s", "stop"])
                .output();
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    run(Command::new(require_tool("rsync"))
        .arg("-a")
        .arg(format!("{}/", from.display()))
        .arg(to));
}

#[test]
#[ignore = "rig: Docker, the runtime image, nginx and sshd's test key (tests/rig/up); scripts/test runs it"]
fn rendered_slot_serves_the_example_plugin_behind_the_front_vhost() {
    let images = run(Command::new(require_tool("docker")).args(["images", "-q", IMAGE]));
    assert!(
        !images.trim().is_empty(),
        "{IMAGE} is missing: run scripts/build-images (scripts/test does)"
    );

    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("srv");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let [slot_port, other_port, front_port] = free_ports::<3>();
    let app_id = format!("rt{}", std::process::id());
    let app_text = edit(
        &edit(APP_YML, "id: example", &format!("id: {app_id}")),
        "ports: [18001, 18002]",
        &format!("ports: [{slot_port}, {other_port}]"),
    );
    let app = AppFile::parse("app.yml", &app_text).expect("test app is valid");
    let inventory = Inventory::parse(
        "inventory.yml",
        &format!(
            "hosts:
  local:
    ssh: {{address: 127.0.0.1, user: deploy, known_hosts: \"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx\"}}
    publish_address: 127.0.0.1
    base_dir: {base}
    environments: [test]
    front:
      include_dir: {d}/conf.d
      log_dir: {logs}
      listen: 127.0.0.1:{front_port}
      test_command: [/usr/sbin/nginx, -t]
      reload_command: [/usr/sbin/nginx, -s, reload]
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
",
            base = base.display(),
            d = dir.path().display(),
            logs = logs.display(),
        ),
    )
    .expect("test inventory is valid");
    let env = &app.environments[0];
    let release = ReleaseId::new(&"v1.0.0".parse().unwrap(), None);
    let files = Templates::embedded()
        .render(&Target {
            app: &app,
            env,
            host: &inventory.hosts[0],
            release: &release,
            slot: Slot::Blue,
            backup: None,
            settings: &berth::config::settings::AppSettings::default(),
        })
        .unwrap();
    let release_dir = base.join(format!("{app_id}/test/releases/v1.0.0"));
    copy_tree(
        &repo_root().join("examples/plugin"),
        &release_dir.join("code"),
    );
    write_files(&release_dir.join("conf-blue"), &files).unwrap();
    // berth writes the slot's secrets file before compose up; none here.
    std::fs::write(base.join(format!("{app_id}/test/secrets-blue.env")), "").unwrap();

    let compose_file = release_dir.join("conf-blue/compose.yml");
    let project = format!("berth-{app_id}-test-blue");
    let mut cleanup = Cleanup {
        compose_file: compose_file.clone(),
        project: project.clone(),
        front: None,
    };
    run(Command::new(require_tool("docker-compose"))
        .arg("-f")
        .arg(&compose_file)
        .args(["-p", &project, "up", "-d"]));

    // The slot itself, on its published port.
    let host = "example.test.berth.localhost";
    wait_for_200(slot_port, host, "/health.php", 60);
    let (status, body) = http_request(slot_port, host, "GET", "/", "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<span id=\"version\">v1.0.0</span>"),
        "{body}"
    );
    let (status, body) = http_request(slot_port, host, "POST", "/", "name=%3Cb%3EAda").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("Hello, &lt;b&gt;Ada!"),
        "form works and escapes: {body}"
    );
    let (status, about) = http_request(slot_port, host, "GET", "/about.php", "").unwrap();
    assert_eq!(status, 200);
    assert!(about.contains("(fpm-fcgi)"), "{about}");
    assert!(about.contains("open_basedir /var/www/app:/tmp"), "{about}");
    assert!(about.contains("exec disabled: yes"), "{about}");
    let (status, _) = http_request(slot_port, host, "GET", "/.env", "").unwrap();
    assert_eq!(status, 403, "dotfiles are never served");
    let (status, _) = http_request(slot_port, host, "GET", "/../lib/version.php", "").unwrap();
    assert_ne!(status, 200, "files outside the docroot are not served");

    // Hardening as rendered: unprivileged, read-only root file system.
    for role in ["php", "web"] {
        let container = format!("{project}_{role}_1");
        let uid = run(Command::new("docker").args(["exec", &container, "id", "-u"]));
        assert_eq!(uid.trim(), "33", "{role} runs as www-data");
        let write = Command::new("docker")
            .args(["exec", &container, "touch", "/var/www/app/x", "/etc/x"])
            .output()
            .unwrap();
        assert!(
            !write.status.success(),
            "{role} cannot write code or its root file system"
        );
        let inspect = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.PidsLimit}}",
            &container,
        ]));
        assert!(inspect.starts_with("true [ALL] "), "{role}: {inspect}");
    }

    // The front vhost, in a real nginx, proxies to the slot.
    let prefix = dir.path().join("front");
    std::fs::create_dir_all(&prefix).unwrap();
    let front_conf = files.iter().find(|f| f.name == "front.conf").unwrap();
    std::fs::write(prefix.join("app.conf"), &front_conf.contents).unwrap();
    let main = prefix.join("nginx.conf");
    std::fs::write(&main, front_main_conf(&prefix, &prefix.join("app.conf"))).unwrap();
    run(Command::new(require_tool("nginx"))
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&main)
        .arg("-e")
        .arg(prefix.join("error.log")));
    cleanup.front = Some((prefix.clone(), main.clone()));
    wait_for_200(front_port, host, "/health.php", 10);
    let (status, body) = http_request(front_port, host, "GET", "/", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("v1.0.0"), "{body}");
    let access_log =
        std::fs::read_to_string(logs.join(format!("{app_id}.test.access.log"))).unwrap();
    assert!(
        access_log.contains("\"GET / HTTP/1.0\" 200"),
        "per-app access log: {access_log}"
    );
    drop(cleanup);
}

/// The PHP extensions php-fpm loads in the runtime image: what typical apps
/// need (zip, bz2, sqlite3 and pdo_sqlite, apcu among them), and no FFI.
const EXTENSIONS: &[&str] = &[
    "apcu",
    "bz2",
    "calendar",
    "cgi-fcgi",
    "Core",
    "ctype",
    "curl",
    "date",
    "dom",
    "exif",
    "fileinfo",
    "filter",
    "ftp",
    "gd",
    "gettext",
    "hash",
    "iconv",
    "igbinary",
    "intl",
    "json",
    "libxml",
    "mbstring",
    "mysqli",
    "mysqlnd",
    "openssl",
    "pcre",
    "PDO",
    "pdo_mysql",
    "pdo_sqlite",
    "Phar",
    "posix",
    "random",
    "readline",
    "redis",
    "Reflection",
    "session",
    "shmop",
    "SimpleXML",
    "sockets",
    "sodium",
    "SPL",
    "sqlite3",
    "standard",
    "sysvmsg",
    "sysvsem",
    "sysvshm",
    "tokenizer",
    "xml",
    "xmlreader",
    "xmlwriter",
    "xsl",
    "Zend OPcache",
    "zip",
    "zlib",
];

#[test]
#[ignore = "rig: Docker and the runtime image (scripts/build-images); scripts/test runs it"]
fn the_runtime_image_loads_exactly_the_documented_extensions() {
    let out = run(Command::new(require_tool("docker")).args([
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "php-fpm8.2",
        "-m",
    ]));
    let expected = format!(
        "[PHP Modules]\n{}\n\n[Zend Modules]\nZend OPcache\n\n",
        EXTENSIONS.join("\n")
    );
    assert_eq!(
        out, expected,
        "the image's extensions changed: rebuild it (scripts/build-images) or update EXTENSIONS and docs/rig.md"
    );

    // docs/rig.md lists the same set, on the line that starts with
    // "Extensions php-fpm loads", each name in backticks.
    let rig_md = std::fs::read_to_string(repo_root().join("docs/rig.md")).unwrap();
    let line = rig_md
        .lines()
        .find(|line| line.starts_with("Extensions php-fpm loads"))
        .expect("docs/rig.md lists the extensions");
    let documented: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
    assert_eq!(documented, EXTENSIONS);
}
