//! Deploys on the rig (tests/rig/up): a real sshd, rsync, Docker and front
//! nginx, reached exactly as a production host is.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use berth::exit::ExitStatus;

use crate::common::{
    edit, example_plugin, free_ports, http_exchange, http_request, repo_root, Berth, Run, APP_YML,
};

/// The rig's settings from `$BERTH_RIG/rig.env`.
pub struct Rig {
    env: berth::rig::RigEnv,
}

impl Rig {
    pub fn load() -> Rig {
        let dir = std::env::var("BERTH_RIG").unwrap_or_else(|_| "/tmp/berth-rig".into());
        let path = Path::new(&dir).join("rig.env");
        let env = berth::rig::RigEnv::read(&path).unwrap_or_else(|e| {
            panic!("{e:#}; start the rig with tests/rig/up (scripts/test does)")
        });
        // The host side of deploys (`egress apply`, run as root) is this
        // build of berth.
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            env.install_host_berth(Path::new(env!("CARGO_BIN_EXE_berth")))
                .unwrap_or_else(|e| panic!("{e:#}"))
        });
        Rig { env }
    }

    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn front_port(&self) -> u16 {
        self.get("RIG_FRONT_LISTEN")
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn inventory(&self) -> String {
        self.env
            .inventory()
            .expect("rig.env has every inventory key")
    }
}

/// One app of its own on the rig, with its own ports and domain.
pub struct RigApp {
    pub rig: Rig,
    pub id: String,
    pub domain: String,
    /// The test environment's ports: blue, green.
    pub ports: [u16; 2],
    dir: tempfile::TempDir,
    _share: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

/// Every slot has a bridge network of its own. Tests share the rig; a test
/// that needs many apps at once takes it alone.
pub(crate) static RIG_NETWORKS: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl RigApp {
    pub fn new(name: &str) -> RigApp {
        let share = RIG_NETWORKS.read().unwrap_or_else(|e| e.into_inner());
        let mut app = RigApp::unshared(name);
        app._share = Some(share);
        app
    }

    /// An app for a test that holds the rig alone.
    fn unshared(name: &str) -> RigApp {
        let rig = Rig::load();
        let id = format!("{name}-{}", std::process::id());
        let domain = format!("{id}.test.berth.localhost");
        let dir = tempfile::tempdir().unwrap();
        let [blue, green, prod_blue, prod_green] = free_ports::<4>();
        let mut app = edit(APP_YML, "id: example", &format!("id: {id}"));
        app = edit(
            &app,
            "ports: [18001, 18002]",
            &format!("ports: [{blue}, {green}]"),
        );
        app = edit(&app, "example.test.berth.localhost", &domain);
        app = edit(
            &app,
            "ports: [18011, 18012]",
            &format!("ports: [{prod_blue}, {prod_green}]"),
        );
        app = edit(
            &app,
            "example.berth.localhost",
            &format!("{id}.berth.localhost"),
        );
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/app.yml"), app).unwrap();
        std::fs::write(dir.path().join("inventory.yml"), rig.inventory()).unwrap();
        RigApp {
            rig,
            id,
            domain,
            ports: [blue, green],
            dir,
            _share: None,
        }
    }

    /// A copy of the example plugin whose markers say `version`; `health`
    /// is what its health endpoint answers.
    pub fn code(&self, version: &str, healthy: bool) -> PathBuf {
        let code = self.dir.path().join(format!("code-{version}"));
        example_plugin(&code, version, healthy);
        code
    }

    /// A path in the test's own scratch directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds `text` (top-level keys) to the app's app.yml.
    pub fn append_app_yml(&self, text: &str) {
        let path = self.dir.path().join("app/app.yml");
        let mut app = std::fs::read_to_string(&path).unwrap();
        app.push_str(text);
        std::fs::write(path, app).unwrap();
    }

    /// Moves the app's releases to `base` (another base directory on the
    /// same host).
    pub fn set_base_dir(&self, base: &Path) {
        let path = self.dir.path().join("inventory.yml");
        let inventory = edit(
            &std::fs::read_to_string(&path).unwrap(),
            &format!("base_dir: {}", self.rig.get("RIG_BASE_DIR")),
            &format!("base_dir: {}", base.display()),
        );
        std::fs::write(path, inventory).unwrap();
    }

    pub fn app_yml_path(&self) -> PathBuf {
        self.dir.path().join("app/app.yml")
    }

    /// Replaces `from` with `to` in the app's app.yml; fails when `from`
    /// is not there.
    pub fn edit_app_yml(&self, from: &str, to: &str) {
        let path = self.dir.path().join("app/app.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "app.yml has no {from:?}:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Replaces `from` with `to` in the app's inventory; fails when `from`
    /// is not there.
    pub fn edit_inventory(&self, from: &str, to: &str) {
        let path = self.dir.path().join("inventory.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "inventory has no {from:?}:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    pub fn request(&self, tag: &str) {
        std::fs::write(
            self.dir.path().join("app/release.yml"),
            format!("environments:\n  test:\n    ref: {tag}\n"),
        )
        .unwrap();
    }

    pub fn berth(&self, args: &[&str]) -> Berth {
        Berth::new()
            .args(args)
            .args(["--app-dir"])
            .arg_path(&self.dir.path().join("app"))
            .args(["--inventory"])
            .arg_path(&self.dir.path().join("inventory.yml"))
            .args(["--ssh-key", self.rig.get("RIG_SSH_KEY"), "--env", "test"])
    }

    pub fn deploy(&self, tag: &str, code: &Path) -> Run {
        self.request(tag);
        self.berth(&["deploy", "--health-timeout", "20"])
            .args(["--code"])
            .arg_path(code)
            .run()
    }

    /// `run` with the rig's directories shown as `<srv>` (the base dir) and
    /// `<front>` (the front nginx's prefix), for exact expected output.
    pub fn placeholders(&self, run: Run) -> Run {
        run.placeholder(Path::new(self.rig.get("RIG_BASE_DIR")), "<srv>")
            .placeholder(Path::new(self.rig.get("RIG_FRONT_PREFIX")), "<front>")
    }

    /// What berth prints on stdout when `tag` went live.
    pub fn live(&self, tag: &str) -> String {
        format!(
            "{tag} is live in test: http://{}:{}/\n",
            self.domain,
            self.rig.front_port()
        )
    }

    /// The steps berth prints when it syncs `tag` (hard-linking from `from`)
    /// and starts it in `slot` (port `port`), before the health check's
    /// result.
    pub fn start_steps(&self, tag: &str, from: Option<&str>, slot: &str, timeout: u32) -> String {
        let id = &self.id;
        let linked = from.map_or_else(String::new, |from| {
            format!(" (unchanged files hard-linked from <srv>/{id}/test/releases/{from}/code)")
        });
        format!(
            "1. sync code to <srv>/{id}/test/releases/{tag}/code{linked}\n{}",
            self.slot_steps(2, tag, slot, timeout, None)
        )
    }

    /// The steps that start `tag` in `slot`, numbered from `first`: its
    /// configuration, secrets and egress policy, the replaced containers'
    /// logs kept, compose up and the health check (6 steps).
    /// `replaced` is the release the slot held, if the host knows one.
    pub fn slot_steps(
        &self,
        first: usize,
        tag: &str,
        slot: &str,
        timeout: u32,
        replaced: Option<&str>,
    ) -> String {
        let id = &self.id;
        let port = self.ports[if slot == "blue" { 0 } else { 1 }];
        let n = |i: usize| first + i;
        let kept = match replaced {
            Some(old) => {
                format!("of {old} in slot {slot} in <srv>/{id}/test/logs/{old}-{slot}.log")
            }
            None => format!("of any containers in slot {slot} in <srv>/{id}/test/logs"),
        };
        format!(
            "{}. upload front.conf, nginx.conf, php-fpm.conf, php.ini, msmtprc, compose.yml to \
             <srv>/{id}/test/releases/{tag}/conf-{slot}\n\
             {}. write no secrets to <srv>/{id}/test/secrets-{slot}.env (mode 0600)\n\
             {}. apply the egress policy (0 allowed destinations)\n\
             {}. keep the logs {kept} \
             (the newest 8 MiB of each, the newest 10 files)\n\
             {}. start berth-{id}-test-{slot} (compose up)\n\
             {}. wait until http://127.0.0.1:{port}/health.php answers 200 (at most {timeout}s)\n",
            n(0),
            n(1),
            n(2),
            n(3),
            n(4),
            n(5)
        )
    }

    /// The steps after a healthy start: switch the front to `tag` in `slot`
    /// and record it, numbered from `first`.
    pub fn switch_steps(&self, first: usize, tag: &str, slot: &str) -> String {
        let id = &self.id;
        format!(
            "{first}. switch the front: write <front>/conf.d/berth-{id}-test.conf, nginx -t, reload\n\
             {}. wait until the front on 127.0.0.1:{} serves {tag}\n\
             {}. record state in <srv>/{id}/test/state.json: active {tag} in {slot}\n",
            first + 1,
            self.rig.front_port(),
            first + 2
        )
    }

    /// GET / through the front; `(version, marker)` of the page.
    pub fn served(&self) -> (u16, String, String) {
        let (status, body) =
            http_request(self.rig.front_port(), &self.domain, "GET", "/", "").unwrap();
        let span = |id: &str| {
            body.split(&format!("<span id=\"{id}\">"))
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .unwrap_or("")
                .to_string()
        };
        (status, span("version"), span("marker"))
    }

    pub fn vhost(&self) -> Option<String> {
        std::fs::read_to_string(
            Path::new(self.rig.get("RIG_FRONT_CONF_D"))
                .join(format!("berth-{}-test.conf", self.id)),
        )
        .ok()
    }
}

impl Drop for RigApp {
    /// Removes the app's containers, networks and vhost from the rig.
    fn drop(&mut self) {
        let label = format!("label=berth.app={}", self.id);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        for slot in ["blue", "green"] {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", &format!("berth-{}-test-{slot}", self.id)])
                .output();
        }
        crate::common::remove_vhost(
            self.rig.get("RIG_BASE_DIR"),
            &Path::new(self.rig.get("RIG_FRONT_CONF_D"))
                .join(format!("berth-{}-test.conf", self.id)),
        );
    }
}

/// Steady GET load through the front, counting failures, torn pages (version
/// and marker from different releases) and retried connections.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    torn: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, domain: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let [ok, failed, torn, retries] = std::array::from_fn(|_| Arc::new(AtomicUsize::new(0)));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed, torn, retries) = (
                    stop.clone(),
                    ok.clone(),
                    failed.clone(),
                    torn.clone(),
                    retries.clone(),
                );
                let domain = domain.to_string();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // A browser retries a request whose connection the
                        // server closed; one retry, counted.
                        let result = http_exchange(port, &domain, "GET", "/", "").or_else(|_| {
                            retries.fetch_add(1, Ordering::Relaxed);
                            http_exchange(port, &domain, "GET", "/", "")
                        });
                        match result {
                            Ok((200, head, body)) => {
                                let version = body
                                    .split("<span id=\"version\">")
                                    .nth(1)
                                    .and_then(|r| r.split('<').next());
                                let marker = body
                                    .split("<span id=\"marker\">")
                                    .nth(1)
                                    .and_then(|r| r.split('<').next());
                                // Count every torn page; show the first one.
                                if (version.is_none() || version != marker)
                                    && torn.fetch_add(1, Ordering::Relaxed) == 0
                                {
                                    eprintln!("first torn page: {head:?} {body:?}");
                                }
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            torn,
            retries,
            threads,
        }
    }

    /// Stops the clients: (ok, failed, torn, retries).
    fn finish(self) -> (usize, usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.torn.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn releases_and_rollbacks_under_load_fail_no_request() {
    let app = RigApp::new("load");
    let v1 = app.code("v1.0.0", true);
    let v2 = app.code("v2.0.0", true);
    app.placeholders(app.deploy("v1.0.0", &v1).expect(ExitStatus::Success))
        .expect_stdout(&app.live("v1.0.0"))
        .expect_stderr(&format!(
            "{}{}",
            app.start_steps("v1.0.0", None, "blue", 20),
            app.switch_steps(8, "v1.0.0", "blue")
        ));
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    assert_eq!(
        app.served(),
        (200, "v2.0.0".into(), "v2.0.0".into()),
        "served when deploy returns"
    );
    app.berth(&["rollback"]).run().expect(ExitStatus::Success);
    assert_eq!(
        app.served(),
        (200, "v1.0.0".into(), "v1.0.0".into()),
        "served when rollback returns"
    );

    // Under steady load: roll forward, back, forward again, then kill the
    // active slot's php container so the warm backup takes over.
    let load = Load::start(app.rig.front_port(), &app.domain, 4);
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    app.berth(&["rollback"]).run().expect(ExitStatus::Success);
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    let killed = std::process::Command::new("docker")
        .args(["kill", &format!("berth-{}-test-green_php_1", app.id)])
        .output()
        .unwrap();
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let (status, _, _) = app.served();
    assert_eq!(status, 200, "failover to the backup slot");
    let (ok, failed, torn, retries) = load.finish();
    eprintln!("load: {ok} ok, {failed} failed, {torn} torn, {retries} retried connections");
    assert!(ok > 100, "the load ran ({ok} requests)");
    assert_eq!(failed, 0, "failed requests");
    assert_eq!(torn, 0, "torn (mixed-version) pages");

    let run = app
        .berth(&["--output", "json", "status"])
        .run()
        .expect(ExitStatus::Success);
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let state = &json["environments"][0]["state"];
    assert_eq!(state["active"]["tag"], "v2.0.0");
    assert_eq!(state["active"]["slot"], "green");
    assert_eq!(state["backup"]["tag"], "v1.0.0");
    assert_eq!(state["history"][0]["action"], "deploy");
    assert_eq!(state["history"][1]["action"], "rollback");
    // Containers as Docker reports them, read through the SSH session.
    let containers = json["environments"][0]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 4, "{containers:?}");
    assert!(
        containers.iter().any(|c| c["slot"] == "blue"
            && c["role"] == "web"
            && c["release"] == "v1.0.0"
            && c["state"] == "running"),
        "{containers:?}"
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn an_unhealthy_release_never_takes_traffic() {
    let app = RigApp::new("sick");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let vhost = app.vhost().expect("vhost written");
    let green = app.ports[1];
    app.placeholders(
        app.deploy("v2.0.0", &app.code("v2.0.0", false))
            .expect(ExitStatus::Stopped),
    )
    // The containers' own log lines differ from run to run; at least one
    // is shown.
    .normalize(
        r"(?m)(^(Attaching to |web_1  \| |php_1  \| ).*\n)+",
        "<log lines>\n",
    )
    .expect_stderr(&format!(
        "{}error: step 7 (wait until http://127.0.0.1:{green}/health.php answers 200 (at most \
         20s)) failed\n  \
         caused by: /health.php on 127.0.0.1:{green} was not healthy after 20s (last: answered \
         503)\n\
         --- last log lines of berth-{}-test-green\n\
         <log lines>\n  \
         hint: the previous release still serves; fix the cause and run the same command again\n",
        app.start_steps("v2.0.0", Some("v1.0.0"), "green", 20),
        app.id
    ))
    .expect_stdout("");
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
    assert_eq!(app.vhost().unwrap(), vhost, "front vhost untouched");

    // A fixed release goes out; deploying it again changes nothing.
    let fixed = app.code("v2.0.1", true);
    app.deploy("v2.0.1", &fixed).expect(ExitStatus::Success);
    assert_eq!(app.served().1, "v2.0.1");
    app.deploy("v2.0.1", &fixed)
        .expect(ExitStatus::Success)
        .expect_stderr("v2.0.1 is already live in slot green; nothing to do\n")
        .expect_stdout(&app.live("v2.0.1"));

    // Back to an older release still on the host, through the health check.
    // No code is synced: the release is still on the host.
    app.placeholders(
        app.berth(&["rollback", "--to", "v1.0.0"])
            .run()
            .expect(ExitStatus::Success),
    )
    .expect_stderr(&format!(
        "{}{}",
        app.slot_steps(1, "v1.0.0", "blue", 60, Some("v1.0.0")),
        app.switch_steps(7, "v1.0.0", "blue")
    ))
    .expect_stdout(&app.live("v1.0.0"));
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
    app.berth(&["rollback", "--to", "v0.9.0"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: release v0.9.0 is not on host local\n  \
             hint: only releases still on the host can be rolled back to; deploy older tags \
             through release.yml\n",
        )
        .expect_stdout("");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_failed_release_keeps_the_warm_backup() {
    let app = RigApp::new("keeps-backup");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    app.deploy("v2.0.0", &app.code("v2.0.0", true))
        .expect(ExitStatus::Success);
    // v1.0.0 is the warm backup in blue; the broken v3.0.0 starts there.
    let run = app
        .deploy("v3.0.0", &app.code("v3.0.0", false))
        .expect(ExitStatus::Stopped);
    let failed = run.stderr();
    assert_eq!(app.served(), (200, "v2.0.0".into(), "v2.0.0".into()));

    // status tells the truth: the backup's containers run v1.0.0 again.
    let run = app
        .berth(&["--output", "json", "status"])
        .run()
        .expect(ExitStatus::Success);
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let state = &json["environments"][0]["state"];
    assert_eq!(state["active"]["tag"], "v2.0.0");
    assert_eq!(state["backup"]["tag"], "v1.0.0");
    let containers = json["environments"][0]["containers"].as_array().unwrap();
    let blue: Vec<(&str, &str)> = containers
        .iter()
        .filter(|c| c["slot"] == "blue")
        .map(|c| (c["release"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(blue, [("v1.0.0", "running"), ("v1.0.0", "running")]);

    // And the rollback to it works at once, without starting anything.
    let run = app.berth(&["rollback"]).run().expect(ExitStatus::Success);
    assert!(
        !run.stderr().contains("compose up"),
        "a rollback is a switch: {}",
        run.stderr()
    );
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));

    // The failed deploy said so.
    assert_eq!(
        failed.lines().last().unwrap_or_default(),
        "  hint: the previous release still serves and its warm backup was restored (`berth rollback` works); fix the cause and run the same command again",
        "{failed}"
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_vhost_nginx_refuses_is_rolled_back() {
    let app = RigApp::new("badfront");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let vhost = app.vhost().expect("vhost written");
    let overrides = tempfile::tempdir().unwrap();
    std::fs::write(
        overrides.path().join("front.conf.j2"),
        "server { no_such_directive on; }\n",
    )
    .unwrap();
    app.request("v2.0.0");
    let run = app
        .berth(&["deploy"])
        .args(["--code"])
        .arg_path(&app.code("v2.0.0", true))
        .args(["--templates"])
        .arg_path(overrides.path())
        .run()
        .expect(ExitStatus::Stopped);
    let step = format!(
        "switch the front: write <front>/conf.d/berth-{}-test.conf, nginx -t, reload",
        app.id
    );
    app.placeholders(run)
        .normalize(
            r"(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[emerg\] \d+#\d+: ",
            "<time> [emerg] <pid>: ",
        )
        .expect_stderr(&format!(
            "{}8. {step}\n\
             error: step 8 ({step}) failed\n  \
             caused by: the front nginx refused the new vhost; the previous one was restored:\n\
             <time> [emerg] <pid>: unknown directive \"no_such_directive\" in \
             <front>/conf.d/berth-{}-test.conf:1\n\
             nginx: configuration file <front>/nginx.conf test failed\n  \
             hint: the previous release still serves; fix the cause and run the same command again\n",
            app.start_steps("v2.0.0", Some("v1.0.0"), "green", 60),
            app.id
        ))
        .expect_stdout("");
    assert_eq!(app.vhost().unwrap(), vhost);
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn demo_releases_the_example_plugin_and_prints_its_url() {
    let rig = Rig::load();
    let run = Berth::new()
        .args(["demo", "--no-wait"])
        .current_dir(&repo_root())
        .run()
        .expect(ExitStatus::Success);
    let url = format!("http://example.test.berth.localhost:{}/", rig.front_port());
    run.expect_stdout(&format!("v1.0.0 is live in test: {url}\n"));
    // The version the demo app's page shows through the front.
    let served = |version: &str| {
        let (status, body) = http_request(
            rig.front_port(),
            "example.test.berth.localhost",
            "GET",
            "/",
            "",
        )
        .unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("<span id=\"version\">{version}</span>")),
            "{body}"
        );
    };
    served("v1.0.0");

    // A developer's own checkout, released the same way: a new release.
    let own = tempfile::tempdir().unwrap();
    example_plugin(own.path(), "my-change-1", true);
    let run = Berth::new()
        .args(["demo", "--no-wait", "--code"])
        .arg_path(own.path())
        .current_dir(&repo_root())
        .run()
        .expect(ExitStatus::Success)
        .normalize(r"local-[0-9]+", "local-<time>");
    run.expect_stdout(&format!("local-<time> is live in test: {url}\n"));
    served("my-change-1");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn concurrent_deploys_of_one_app_are_serialized() {
    // Two deploys of the same app environment at once: one waits for the
    // other's lock; both succeed and the last one's release serves.
    let app = RigApp::new("twice");
    let (v1, v2) = (app.code("v1.0.0", true), app.code("v2.0.0", true));
    app.request("v1.0.0");
    let first = app
        .berth(&["deploy"])
        .args(["--code"])
        .arg_path(&v1)
        .spawn();
    let second = app
        .berth(&["deploy"])
        .args(["--code"])
        .arg_path(&v1)
        .spawn();
    let outputs = [
        first.wait().expect(ExitStatus::Success),
        second.wait().expect(ExitStatus::Success),
    ];
    let waited = outputs
        .iter()
        .filter(|run| {
            run.stderr()
                .contains("v1.0.0 is already live in slot blue; nothing to do")
        })
        .count();
    assert_eq!(
        waited, 1,
        "the second deploy waited and saw the first one's result"
    );
    assert_eq!(app.served().1, "v1.0.0");
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    assert_eq!(app.served().1, "v2.0.0");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn berth_killed_at_any_step_leaves_a_serving_release_and_a_rerun_converges() {
    let app = RigApp::new("killed");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let mut live = "v1.0.0".to_string();
    // A deploy of a new release: 1 sync, 2 upload, 3 compose up, 4 health,
    // 5 switch the front, 6 wait for the front, 7 record the state.
    for step in 1..=7 {
        let version = format!("v{}.0.0", step + 1);
        let code = app.code(&version, true);
        app.request(&version);
        let printed = app
            .berth(&["deploy"])
            .args(["--code"])
            .arg_path(&code)
            .spawn()
            .kill_at(&format!("{step}. "));
        let (status, served, marker) = app.served();
        assert_eq!(status, 200, "killed at step {step}:\n{printed}");
        assert_eq!(served, marker, "killed at step {step}");
        if step < 5 {
            assert_eq!(
                served, live,
                "killed before the switch at step {step}: the old release serves"
            );
        } else {
            assert!(
                served == live || served == version,
                "killed at step {step}: {served}"
            );
        }
        // The lock died with berth; running again finishes the job.
        let started = std::time::Instant::now();
        app.deploy(&version, &code).expect(ExitStatus::Success);
        eprintln!("killed at step {step}: re-run took {:?}", started.elapsed());
        assert_eq!(
            app.served().1,
            version,
            "re-run after a kill at step {step}"
        );
        live = version;
    }
}

/// A small tmpfs owned by the rig's deploy user, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let mount = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                path,
            ])
            .output()
            .unwrap();
        assert!(
            mount.status.success(),
            "{}",
            String::from_utf8_lossy(&mount.stderr)
        );
        let chown = std::process::Command::new("chown")
            .args(["deploy:deploy", path])
            .output()
            .unwrap();
        assert!(chown.status.success());
        // The deploy user must reach it through the temp dir's parent.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_full_disk_stops_the_deploy_before_the_switch() {
    let disk = SmallDisk::new("4m");
    let app = RigApp::new("full");
    app.set_base_dir(disk.dir.path());
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);

    let v2 = app.code("v2.0.0", true);
    let big: Vec<u8> = (0..8 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(v2.join("public/big.bin"), big).unwrap();
    let run = app.deploy("v2.0.0", &v2).expect(ExitStatus::Stopped);
    assert!(
        run.stderr().contains("No space left on device"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        app.served(),
        (200, "v1.0.0".into(), "v1.0.0".into()),
        "the old release serves"
    );

    // Space made (the release without the big file): the same command converges.
    std::fs::remove_file(v2.join("public/big.bin")).unwrap();
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    assert_eq!(app.served(), (200, "v2.0.0".into(), "v2.0.0".into()));
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn ssh_dropped_in_the_middle_of_the_sync_leaves_the_old_release_serving() {
    let app = RigApp::new("dropped");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let v2 = app.code("v2.0.0", true);
    // Enough data that the sync is still running when its connection drops.
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(v2.join("public/big.bin"), big).unwrap();
    app.request("v2.0.0");
    let run = app
        .berth(&["deploy"])
        .args(["--code"])
        .arg_path(&v2)
        .spawn()
        .on_line("1. sync code", |berth| {
            // rsync's own ssh, riding the session: kill it mid-transfer.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let rsync = crate::common::children(berth)
                    .into_iter()
                    .find(|(_, name)| name == "rsync");
                let ssh = rsync.and_then(|(pid, _)| {
                    crate::common::children(pid)
                        .into_iter()
                        .find(|(_, name)| name == "ssh")
                });
                if let Some((pid, _)) = ssh {
                    let killed = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                        .unwrap();
                    assert!(killed.success());
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "rsync's ssh never appeared"
                );
                std::thread::yield_now();
            }
        });
    let run = run.expect(ExitStatus::Stopped);
    assert!(run.stderr().contains("rsync"), "{}", run.stderr());
    assert_eq!(
        app.served(),
        (200, "v1.0.0".into(), "v1.0.0".into()),
        "the old release serves"
    );
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    assert_eq!(app.served(), (200, "v2.0.0".into(), "v2.0.0".into()));
}

/// Ten apps deployed at once to the same host all end healthy, and the
/// front's configuration, written by all of them, passes `nginx -t`.
#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn ten_apps_deployed_at_once_all_serve() {
    let _alone = RIG_NETWORKS.write().unwrap_or_else(|e| e.into_inner());
    let apps: Vec<RigApp> = (0..10)
        .map(|i| RigApp::unshared(&format!("many{i}")))
        .collect();
    let codes: Vec<_> = apps.iter().map(|a| a.code("v1.0.0", true)).collect();
    let runs: Vec<_> = apps
        .iter()
        .zip(&codes)
        .map(|(a, code)| {
            a.request("v1.0.0");
            a.berth(&["deploy"]).args(["--code"]).arg_path(code).spawn()
        })
        .collect();
    for run in runs {
        run.wait().expect(ExitStatus::Success);
    }
    for a in &apps {
        assert_eq!(
            a.served(),
            (200, "v1.0.0".into(), "v1.0.0".into()),
            "{}",
            a.id
        );
    }
    let rig = &apps[0].rig;
    // As the front's own user: nginx -t run as root would hand its
    // temporary directories to `nobody`, and the front (run as deploy)
    // could then no longer buffer a request body.
    let test = std::process::Command::new("setpriv")
        .args([
            "--reuid=deploy",
            "--regid=deploy",
            "--init-groups",
            "--reset-env",
            "/usr/sbin/nginx",
            "-p",
            rig.get("RIG_FRONT_PREFIX"),
            "-c",
            rig.get("RIG_FRONT_CONF"),
            "-t",
        ])
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_host_key_other_than_the_inventorys_is_refused() {
    let app = RigApp::new("hostkey");
    let path = app.dir.path().join("inventory.yml");
    let inventory = std::fs::read_to_string(&path).unwrap();
    let pinned = app.rig.get("RIG_KNOWN_HOSTS_LINE");
    // A real ed25519 key, only not the host's: ssh must find the key
    // changed, not merely unreadable.
    let keys = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(keys.path().join("key"))
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(keys.path().join("key.pub")).unwrap();
    let other = format!(
        "[127.0.0.1]:2222 {}",
        public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::fs::write(&path, edit(&inventory, pinned, &other)).unwrap();
    // The fingerprint ssh names is the host's real key.
    let host_key = Path::new(app.rig.get("RIG_CONTROL_DIR")).join("ssh_host_ed25519_key.pub");
    let listed = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&host_key)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let fingerprint = listed.split_whitespace().nth(1).unwrap();
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Failure)
        // berth's own known_hosts file for the connection, in a temp dir.
        .normalize(r"/tmp/berth-ssh-[A-Za-z0-9]+/", "<ssh>/")
        .expect_stderr(&format!(
            "error: connect to host local (deploy@127.0.0.1, port 2222) over SSH\n  \
             caused by: failed to connect to the remote host\n  \
             caused by: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\\r\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\\r\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\\r\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\\r\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack)!\\r\n\
             It is also possible that a host key has just been changed.\\r\n\
             The fingerprint for the ED25519 key sent by the remote host is\n\
             {fingerprint}.\\r\n\
             Please contact your system administrator.\\r\n\
             Add correct host key in <ssh>/known_hosts to get rid of this message.\\r\n\
             Offending ED25519 key in <ssh>/known_hosts:1\\r\n  \
             remove with:\\r\n  \
             ssh-keygen -f \"<ssh>/known_hosts\" -R \"[127.0.0.1]:2222\"\\r\n\
             Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\\r\n\
             Host key verification failed.\n"
        ))
        .expect_stdout("");
    assert!(app.vhost().is_none(), "nothing was deployed");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx, rsync (tests/rig/up) and the fake GitLab (python3, git); scripts/test runs it"]
fn releases_and_rollbacks_are_recorded_in_gitlab_and_status_lists_them() {
    use crate::fake::{FakeGitLab, ROOT_TOKEN};
    let fake = FakeGitLab::start(serde_json::json!({
        "groups": [{"path": "deploy", "name": "Deploy"}],
        "projects": [{"path": "deploy/shop", "initialize_with_readme": true}],
    }));
    // As app create leaves it: only Maintainers make release records.
    fake.ok(
        ROOT_TOKEN,
        "POST",
        "/projects/deploy%2Fshop/protected_tags",
        serde_json::json!({"name": "deployed/*", "create_access_level": 40}),
    );
    let main = fake.ok(
        ROOT_TOKEN,
        "GET",
        "/projects/deploy%2Fshop/repository/branches/main",
        serde_json::Value::Null,
    );
    let sha = main["commit"]["id"].as_str().unwrap().to_string();
    let with_gitlab = |berth: Berth| {
        berth
            .env("CI_API_V4_URL", fake.api())
            .env("BERTH_GITLAB_TOKEN", ROOT_TOKEN)
            .env("CI_PROJECT_PATH", "deploy/shop")
            .env("CI_COMMIT_SHA", &sha)
            .env(
                "CI_PIPELINE_URL",
                format!("{}/deploy/shop/-/pipelines/9", fake.url),
            )
    };
    let app = RigApp::new("history");
    let commits = [
        "1111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222",
    ];
    for (version, commit) in ["v1.0.0", "v1.1.0"].iter().zip(commits) {
        let code = app.code(version, true);
        app.request(version);
        let outcome = app.dir.path().join(format!("outcome-{version}.json"));
        app.berth(&["deploy", "--health-timeout", "20", "--commit", commit])
            .args(["--code"])
            .arg_path(&code)
            .args(["--outcome"])
            .arg_path(&outcome)
            .run()
            .expect(ExitStatus::Success);
        with_gitlab(Berth::new())
            .args(["report", "--outcome"])
            .arg_path(&outcome)
            .run()
            .expect(ExitStatus::Success);
    }
    // The release directory carries the commit.
    let releases = Path::new(app.rig.get("RIG_BASE_DIR"))
        .join(&app.id)
        .join("test/releases");
    assert!(
        releases.join("v1.0.0-111111111111").is_dir(),
        "{:?}",
        std::fs::read_dir(&releases).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(app.served().1, "v1.1.0");

    with_gitlab(app.berth(&["rollback"]))
        .run()
        .expect(ExitStatus::Success);
    assert_eq!(app.served().1, "v1.0.0");
    let record = fake.ok(
        ROOT_TOKEN,
        "GET",
        "/projects/deploy%2Fshop/repository/tags/deployed%2Ftest%2F3",
        serde_json::Value::Null,
    );
    let message = record["message"].as_str().unwrap();
    assert!(message.contains("action: rollback"), "{message}");
    assert!(message.contains("ref: v1.0.0"), "{message}");
    assert!(
        message.contains(&format!("commit: {}", commits[0])),
        "the commit comes from the first record: {message}"
    );

    // The deploy job's GitLab deployment (a job with `environment:` makes it).
    fake.ok(
        ROOT_TOKEN,
        "POST",
        "/projects/deploy%2Fshop/deployments",
        serde_json::json!({"environment": "test", "sha": sha, "ref": "main", "tag": false, "status": "success"}),
    );
    let status = with_gitlab(app.berth(&["status"]))
        .run()
        .expect(ExitStatus::Success);
    let text = status.stdout();
    assert!(text.contains("history (GitLab):"), "{text}");
    assert!(
        text.contains(&format!("last GitLab deployment: #1 main ({})", &sha[..12])),
        "{text}"
    );
    assert!(
        text.contains("deployed/test/3 rollback v1.0.0 (v1.0.0-111111111111)"),
        "{text}"
    );
    assert!(
        text.contains("deployed/test/2 deploy v1.1.0 (v1.1.0-222222222222)"),
        "{text}"
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn restart_swaps_in_fresh_containers_under_load_and_jobs_get_outcomes_and_outputs() {
    let app = RigApp::new("restart");
    let v1 = app.code("v1.0.0", true);
    let dotenv = app.dir.path().join("deploy.env");
    app.request("v1.0.0");
    app.berth(&["restart"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr("error: nothing runs in test yet\n  hint: deploy a release first\n")
        .expect_stdout("");
    app.berth(&["deploy", "--health-timeout", "20"])
        .args(["--code"])
        .arg_path(&v1)
        .env("BERTH_DOTENV", &dotenv)
        .run()
        .expect(ExitStatus::Success);
    crate::common::assert_text(
        "deploy.env",
        &format!(
            "BERTH_DEPLOY_ENV=test\nBERTH_DEPLOY_URL=http://{}:{}/\nBERTH_DEPLOY_REF=v1.0.0\n\
             BERTH_DEPLOY_RELEASE=v1.0.0\nBERTH_DEPLOY_SLOT=blue\n",
            app.domain,
            app.rig.front_port()
        ),
        &std::fs::read_to_string(&dotenv).unwrap(),
        "",
    );

    let load = Load::start(app.rig.front_port(), &app.domain, 4);
    let outcome = app.dir.path().join("restart.json");
    let run = app
        .berth(&["restart", "--health-timeout", "20"])
        .args(["--outcome"])
        .arg_path(&outcome)
        .run()
        .expect(ExitStatus::Success);
    let (ok, failed, torn, _) = load.finish();
    assert!(ok > 20, "the load ran ({ok} requests)");
    assert_eq!(
        (failed, torn),
        (0, 0),
        "failed and torn requests during the restart"
    );
    app.placeholders(run)
        .expect_stdout(&format!(
            "v1.0.0 restarted in test (green): http://{}:{}/\n",
            app.domain,
            app.rig.front_port()
        ))
        .expect_stderr(&format!(
            "{}{}",
            app.slot_steps(1, "v1.0.0", "green", 20, None),
            app.switch_steps(7, "v1.0.0", "green")
        ));
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
    let outcome: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outcome).unwrap()).unwrap();
    assert_eq!(outcome["action"], "restart");
    assert_eq!(outcome["ok"], true);
    assert_eq!(outcome["slot"], "green");

    let json = app
        .berth(&["--output", "json", "status"])
        .run()
        .expect(ExitStatus::Success)
        .stdout();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let state = &json["environments"][0]["state"];
    assert_eq!(state["active"]["slot"], "green");
    assert_eq!(state["backup"]["slot"], "blue");
    assert_eq!(state["history"][0]["action"], "restart");

    // A rollback writes its outcome too: back to the blue containers.
    let outcome = app.dir.path().join("rollback.json");
    app.berth(&["rollback"])
        .args(["--outcome"])
        .arg_path(&outcome)
        .run()
        .expect(ExitStatus::Success);
    let outcome: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outcome).unwrap()).unwrap();
    assert_eq!(
        (outcome["action"].as_str(), outcome["slot"].as_str()),
        (Some("rollback"), Some("blue"))
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn unchanged_files_of_a_fresh_checkout_are_hard_linked_to_the_previous_release() {
    use std::os::unix::fs::MetadataExt;
    let app = RigApp::new("links");
    let v1 = app.code("v1.0.0", true);
    app.deploy("v1.0.0", &v1).expect(ExitStatus::Success);
    // A fresh checkout: same contents, every file with a new mtime.
    let v2 = app.code("v2.0.0", true);
    let touched = std::process::Command::new("find")
        .arg(&v2)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2030-01-01",
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(touched.success());
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    let releases = Path::new(app.rig.get("RIG_BASE_DIR"))
        .join(&app.id)
        .join("test/releases");
    let inode = |release: &str, file: &str| {
        std::fs::metadata(releases.join(release).join("code").join(file))
            .unwrap()
            .ino()
    };
    assert_eq!(
        inode("v1.0.0", "public/index.php"),
        inode("v2.0.0", "public/index.php"),
        "an unchanged file is linked"
    );
    assert_ne!(
        inode("v1.0.0", "lib/version.php"),
        inode("v2.0.0", "lib/version.php"),
        "a changed file is not"
    );
    assert_eq!(app.served(), (200, "v2.0.0".into(), "v2.0.0".into()));
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_slot_network_without_fixed_addresses_is_recreated_by_the_next_deploy() {
    // What a berth before fixed slot addresses left: the slot's network on
    // one of Docker's default pools, made by compose.
    let app = RigApp::new("oldnet");
    let project = format!("berth-{}-test-blue", app.id);
    let created = std::process::Command::new("docker")
        .args(["network", "create", "--label"])
        .arg(format!("com.docker.compose.project={project}"))
        .args(["--label", "com.docker.compose.network=app"])
        .args(["--label", "com.docker.compose.version=1.29.2", &project])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let subnet = || {
        let out = std::process::Command::new("docker")
            .args(["network", "inspect", "-f"])
            .args(["{{range .IPAM.Config}}{{.Subnet}}{{end}}", &project])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(!subnet().starts_with("10.22"), "{}", subnet());

    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    assert_eq!(
        subnet(),
        berth::plan::release::SlotNetwork::for_port(app.ports[0]).cidr()
    );
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));
}

/// Sends `request` as is to 127.0.0.1:`port`; the whole response.
fn raw_http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The value of the response's header `name`, if it has one.
fn response_header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

const PROBE_PHP: &str = r#"<?php
header('Content-Type: text/plain');
foreach (['HTTP_HOST', 'SERVER_PORT', 'HTTPS', 'REQUEST_SCHEME', 'HTTP_X_FORWARDED_PROTO',
          'HTTP_X_FORWARDED_PORT', 'HTTP_X_FORWARDED_HOST', 'HTTP_FORWARDED'] as $key) {
    echo $key, '=', $_SERVER[$key] ?? '-', "\n";
}
"#;

/// What a typical app does to send the browser back to its start page.
const REDIRECT_PHP: &str = r#"<?php
$scheme = ($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http';
header('Location: ' . $scheme . '://' . $_SERVER['HTTP_HOST'] . '/', true, 302);
"#;

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn apps_see_the_host_port_and_scheme_the_client_used_at_the_front() {
    let app = RigApp::new("fwd");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/probe.php"), PROBE_PHP).unwrap();
    std::fs::write(code.join("public/go.php"), REDIRECT_PHP).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let port = app.rig.front_port();
    let domain = &app.domain;

    // A redirect PHP builds from $_SERVER comes back to the front's port,
    // and following it serves the app.
    let response = raw_http(
        port,
        &format!("GET /go.php HTTP/1.0\r\nHost: {domain}\r\n\r\n"),
    );
    assert!(response.starts_with("HTTP/1.1 302 "), "{response}");
    let location = format!("http://{domain}:{port}/");
    assert_eq!(
        response_header(&response, "Location"),
        Some(location.as_str()),
        "{response}"
    );
    assert_eq!(app.served(), (200, "v1.0.0".into(), "v1.0.0".into()));

    // What the client claims about the host's port, the scheme and the
    // forwarding is replaced by what the front saw.
    let response = raw_http(
        port,
        &format!(
            "GET /probe.php HTTP/1.0\r\nHost: {domain}:9999\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Port: 443\r\nX-Forwarded-Host: evil.example\r\n\
             Forwarded: proto=https;host=evil.example\r\n\r\n"
        ),
    );
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert_eq!(
        response.split_once("\r\n\r\n").unwrap().1,
        format!(
            "HTTP_HOST={domain}:{port}\nSERVER_PORT={port}\nHTTPS=-\nREQUEST_SCHEME=http\n\
             HTTP_X_FORWARDED_PROTO=http\nHTTP_X_FORWARDED_PORT={port}\n\
             HTTP_X_FORWARDED_HOST={domain}:{port}\nHTTP_FORWARDED=-\n"
        )
    );

    // Straight to the slot's nginx from another address (the slot's php
    // container), not through the front: the claims are not believed, and
    // PHP sees the slot nginx's own scheme and port.
    let container = |role: &str| {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=berth.app={}", app.id))
            .args(["--filter"])
            .arg(format!("label=berth.role={role}"))
            .output()
            .unwrap();
        let id = String::from_utf8(out.stdout).unwrap();
        assert_eq!(id.lines().count(), 1, "one {role} container: {id:?}");
        id.trim().to_string()
    };
    let web = container("web");
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &web,
        ])
        .output()
        .unwrap();
    let web_ip = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let fetch = format!(
        "echo file_get_contents('http://{web_ip}:8080/probe.php', false, stream_context_create(['http' => \
         ['header' => \"Host: {domain}\\r\\nX-Forwarded-Proto: https\\r\\nX-Forwarded-Port: 443\\r\\n\"]]));"
    );
    let out = std::process::Command::new("docker")
        .args(["exec", &container("php"), "php", "-r", &fetch])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "HTTP_HOST={domain}\nSERVER_PORT=8080\nHTTPS=-\nREQUEST_SCHEME=http\n\
             HTTP_X_FORWARDED_PROTO=http\nHTTP_X_FORWARDED_PORT=8080\n\
             HTTP_X_FORWARDED_HOST=-\nHTTP_FORWARDED=-\n"
        )
    );
}
