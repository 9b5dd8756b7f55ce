//! `berth logs` on the rig: container output through the Docker API over
//! SSH, and the front's per-app access log read on the host.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use berth::exit::ExitStatus;

use crate::common::http_request;
use crate::deploy::RigApp;

const BOOM: &str = r#"<?php
error_log("berth-log-probe " . ($_GET['n'] ?? ''));
trigger_error("probe warning", E_USER_WARNING);
echo "ok\n";
"#;

fn logs(app: &RigApp, args: &[&str]) -> Vec<String> {
    let run = app
        .berth(&["logs"])
        .args(args)
        .run()
        .expect(ExitStatus::Success);
    run.stdout().lines().map(str::to_string).collect()
}

/// Polls until a `berth logs` query shows a line containing `needle`.
fn wait_for_line(app: &RigApp, args: &[&str], needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(line) = logs(app, args).into_iter().find(|l| l.contains(needle)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} in `berth logs {args:?}`"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn php_errors_and_access_lines_appear_with_their_source() {
    let app = RigApp::new("logs");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/boom.php"), BOOM).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let nonce = std::process::id().to_string();
    let (status, _) = http_request(
        app.rig.front_port(),
        &app.domain,
        "GET",
        &format!("/boom.php?n={nonce}"),
        "",
    )
    .unwrap();
    assert_eq!(status, 200);

    let line = wait_for_line(
        &app,
        &["--source", "php", "--tail", "50"],
        &format!("berth-log-probe {nonce}"),
    );
    assert!(line.contains(" php    | "), "{line}");
    assert!(line.starts_with("20"), "stamped with its time: {line}");
    let warning = wait_for_line(
        &app,
        &["--source", "app", "--grep", "probe warning"],
        "probe warning",
    );
    assert!(warning.contains(" php    | "), "{warning}");

    let line = wait_for_line(
        &app,
        &["--source", "access", "--grep", "boom"],
        &format!("/boom.php?n={nonce}"),
    );
    assert!(line.contains(" access | "), "{line}");
    assert!(line.contains("\" 200 "), "{line}");
    let grepped = logs(&app, &["--source", "access", "--grep", "boom\\.php"]);
    assert!(
        !grepped.is_empty() && grepped.iter().all(|l| l.contains("boom.php")),
        "{grepped:?}"
    );
    let last = logs(&app, &["--source", "nginx", "--tail", "1"]);
    assert_eq!(last.len(), 1, "{last:?}");

    // An access line from two days ago: --since leaves it out, --tail shows it.
    let access_log = format!(
        "{}/logs/{}.test.access.log",
        app.rig.get("RIG_FRONT_PREFIX"),
        app.id
    );
    let old = {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 2 * 86_400;
        let stamp = berth::plan::logs::rfc3339(secs);
        // 2026-11-20T21:55:14Z → 20/Nov/2026:21:55:14 +0000
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = months[stamp[5..7].parse::<usize>().unwrap() - 1];
        format!(
            "10.0.0.9 - - [{}/{month}/{}:{} +0000] \"GET /old-line HTTP/1.1\" 200 3 \"-\" \"-\"\n",
            &stamp[8..10],
            &stamp[0..4],
            &stamp[11..19]
        )
    };
    std::fs::OpenOptions::new()
        .append(true)
        .open(&access_log)
        .unwrap()
        .write_all(old.as_bytes())
        .unwrap();
    assert!(logs(
        &app,
        &["--source", "access", "--since", "1d", "--grep", "old-line"]
    )
    .is_empty());
    assert_eq!(
        logs(
            &app,
            &["--source", "access", "--tail", "5", "--grep", "old-line"]
        )
        .len(),
        1
    );

    let json = logs(
        &app,
        &["--output", "json", "--source", "access", "--tail", "1"],
    );
    let value: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(value["source"], "access");
    assert!(value["text"].as_str().unwrap().contains("old-line"));
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn follow_shows_a_line_written_after_it_started_and_ends_on_interrupt() {
    let app = RigApp::new("follow");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let mut running = app
        .berth(&["logs", "--source", "access", "--follow", "--tail", "0"])
        .spawn();
    let stdout = running.child().stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let path = format!("/followed-{}", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        // Asked until the follower, which starts asynchronously, sees one.
        let _ = http_request(app.rig.front_port(), &app.domain, "GET", &path, "");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(300)) {
            break line;
        }
        assert!(Instant::now() < deadline, "--follow printed nothing");
    };
    assert!(
        seen.contains(&path) && seen.contains(" access | "),
        "{seen}"
    );
    let pid = running.child().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.child().wait().unwrap();
    assert!(
        status.success(),
        "--follow ends cleanly on interrupt: {status:?}"
    );
}

/// An app's logs key, installed on the rig with its forced command.
pub(crate) struct LogsKey {
    pub(crate) key: std::path::PathBuf,
    _dir: tempfile::TempDir,
    authorized: std::path::PathBuf,
    line: String,
    bin: std::path::PathBuf,
}

/// Tests add and remove their lines in the rig's one logs-keys file.
static AUTHORIZED: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl LogsKey {
    fn install(app: &RigApp) -> LogsKey {
        LogsKey::install_for(&app.rig, &app.id)
    }

    /// A new key for app `id`, its line added to the rig's
    /// `authorized_keys.berth-logs` (and removed again on drop).
    pub(crate) fn install_for(rig: &crate::deploy::Rig, id: &str) -> LogsKey {
        LogsKey::install_with(rig, id, &[])
    }

    /// As `install_for`, with `extra` arguments in the forced command.
    pub(crate) fn install_with(rig: &crate::deploy::Rig, id: &str, extra: &[&str]) -> LogsKey {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("logs_key");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-logs", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        // The host side is this berth binary, where the deploy user can run
        // it; a copy per app, so no test overwrites one that is running.
        let rig_dir = std::path::Path::new(rig.get("RIG"));
        let bin = rig_dir.join(format!("bin/berth-{}-{id}", std::process::id()));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let line = format!(
            "restrict,command=\"{} serve-logs --app {} --base-dir {} --log-dir {}/logs{}\" {}",
            bin.display(),
            id,
            rig.get("RIG_BASE_DIR"),
            rig.get("RIG_FRONT_PREFIX"),
            extra.iter().map(|a| format!(" {a}")).collect::<String>(),
            public.trim()
        );
        let authorized = rig_dir.join("home/deploy/.ssh/authorized_keys.berth-logs");
        let _guard = AUTHORIZED.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = std::fs::read_to_string(&authorized).unwrap_or_default();
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&authorized, text).unwrap();
        let owned = std::process::Command::new("chown")
            .args(["deploy:deploy"])
            .arg(&authorized)
            .status()
            .unwrap();
        assert!(owned.success());
        std::fs::set_permissions(
            &authorized,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        LogsKey {
            key,
            _dir: dir,
            authorized,
            line,
            bin,
        }
    }

    /// Plain `ssh` with this key and `args`.
    pub(crate) fn ssh(&self, app: &RigApp, args: &[&str]) -> std::process::Output {
        self.command(app, args).output().unwrap()
    }

    pub(crate) fn spawn_ssh(&self, app: &RigApp, args: &[&str]) -> std::process::Child {
        self.command(app, args).spawn().unwrap()
    }

    fn command(&self, app: &RigApp, args: &[&str]) -> std::process::Command {
        ssh_command(app, &self.key, args)
    }
}

/// Plain `ssh` to the rig's host with `key` and `args`.
fn ssh_command(app: &RigApp, key: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("ssh");
    command
        .args(["-p", app.rig.get("RIG_SSH_PORT"), "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            app.rig.get("RIG_KNOWN_HOSTS")
        ))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ControlPath=none",
            "-o",
            "ExitOnForwardFailure=yes",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Opens `ssh -N -L spec` to the rig's host with `key`, makes one
/// connection through the forward with `connect` (retried until ssh
/// listens), sends `request` and reads until the far end closes. Returns
/// what came back and ssh's stderr.
fn through_forward<S: std::io::Read + Write>(
    app: &RigApp,
    key: &Path,
    spec: &str,
    connect: impl Fn() -> std::io::Result<S>,
    request: &[u8],
) -> (String, String) {
    let mut ssh = ssh_command(app, key, &["-N", "-L", spec, "deploy@127.0.0.1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match connect() {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the local end of the forward {spec} never listened: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    // A refused channel closes the local connection at once; an open one
    // closes when the target has answered.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    drop(stream);
    let _ = ssh.kill();
    let out = ssh.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP listener on the host (this machine) that answers every connection
/// with `TARGET_REACHED`: the target of a forward that must be refused, so
/// that an allowed forward would show.
fn tcp_target() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(TARGET_REACHED.as_bytes());
        }
    });
    port
}

const TARGET_REACHED: &str = "target reached\n";

/// The rig's sshd log (`sshd -e`), and how long it is now: what sshd logs
/// after this is `log[len..]`.
fn sshd_log(app: &RigApp) -> (std::path::PathBuf, usize) {
    let path = Path::new(app.rig.get("RIG")).join("logs/sshd.log");
    let len = std::fs::read(&path).map(|l| l.len()).unwrap_or(0);
    (path, len)
}

/// Asserts a forward carried nothing, ssh reported its channel refused
/// with `client` ("open failed: <reason>: open failed"), and the host's
/// sshd logged the refusal: a line `sshd_line` accepts, written since
/// `log` was taken.
#[track_caller]
fn assert_forward_refused(
    what: &str,
    (answer, stderr): (String, String),
    client: &str,
    log: (std::path::PathBuf, usize),
    sshd_line: impl Fn(&str) -> bool,
) {
    assert_eq!(answer, "", "{what}: the forward carried data");
    let refusals = stderr
        .lines()
        .filter(|line| {
            line.strip_prefix("channel ")
                .and_then(|rest| rest.split_once(": "))
                .is_some_and(|(number, message)| number.parse::<u32>().is_ok() && message == client)
        })
        .count();
    assert_eq!(
        refusals, 1,
        "{what}: ssh must report one channel refused with {client:?}; its stderr:\n{stderr}"
    );
    let text = std::fs::read(&log.0).unwrap();
    let text = String::from_utf8_lossy(&text[log.1..]);
    assert!(
        text.lines().any(sshd_line),
        "{what}: the host's sshd logs the refusal; it logged:\n{text}"
    );
}

impl Drop for LogsKey {
    /// Removes this key's line (the file goes when no line is left) and
    /// its copy of berth (200 MB in a debug build).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bin);
        let _guard = AUTHORIZED.lock().unwrap_or_else(|e| e.into_inner());
        let text = std::fs::read_to_string(&self.authorized).unwrap_or_default();
        let rest: String = text
            .lines()
            .filter(|l| *l != self.line)
            .map(|l| format!("{l}\n"))
            .collect();
        if rest.is_empty() {
            let _ = std::fs::remove_file(&self.authorized);
        } else {
            let _ = std::fs::write(&self.authorized, rest);
        }
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn an_apps_logs_key_reads_its_logs_and_nothing_else() {
    let other = RigApp::new("otherlogs");
    other
        .deploy("v1.0.0", &other.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let app = RigApp::new("keylogs");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let (status, _) = http_request(
        app.rig.front_port(),
        &app.domain,
        "GET",
        "/?through=logs-key",
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    let (status, _) = http_request(
        other.rig.front_port(),
        &other.domain,
        "GET",
        "/?other=secret",
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    let key = LogsKey::install(&app);

    // The key reads its own app's logs, through berth.
    let run = app
        .berth(&["logs", "--source", "access", "--tail", "20"])
        .args(["--logs-key"])
        .arg_path(&key.key)
        .run()
        .expect(ExitStatus::Success);
    assert!(
        run.stdout().contains("/?through=logs-key"),
        "{}{}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stdout().lines().all(|l| l.contains(" access | ")),
        "{}",
        run.stdout()
    );
    let run = app
        .berth(&["logs", "--source", "php", "--tail", "5"])
        .args(["--logs-key"])
        .arg_path(&key.key)
        .run()
        .expect(ExitStatus::Success);
    assert!(run.stdout().contains(" php    | "), "{}", run.stdout());

    // Everything else is refused by the forced command, which says why
    // (exit 2 through ssh) and prints nothing on stdout.
    let refused = |args: &[&str], error: &str| {
        let out = key.ssh(&app, args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(ExitStatus::Usage.code()),
            "{args:?} must be refused by the forced command: {stdout}{stderr}"
        );
        crate::common::assert_text(
            &format!("{args:?}: stderr"),
            &format!(
                "error: {error}\n  hint: this key only reads the logs of app {}: logs --env ENV [--source ...]\n",
                app.id
            ),
            &stderr,
            &stdout,
        );
        assert_eq!(stdout, "", "{args:?}");
    };
    let host = "deploy@127.0.0.1";
    // -T: no pseudo-terminal request, so ssh adds no line of its own.
    refused(&["-T", host], "no request: this key does not open a shell");
    refused(&[host, "sh", "-c", "id"], "refused request \"sh -c id\"");
    refused(
        &[host, "cat /etc/passwd"],
        "refused request \"cat /etc/passwd\"",
    );
    refused(
        &[host, "logs --env test; id"],
        "refused request: unexpected character \";\"",
    );
    refused(
        &[host, "logs --env test --app", &other.id],
        "refused request: unexpected argument found",
    );
    // Another app's logs cannot even be named: the forced command serves one
    // app; its access log is read, the other app's line is not there.
    let out = key.ssh(
        &app,
        &[
            host,
            "logs --env test --source access --grep other=secret --tail 100",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("other=secret"));

    // Port forwards are refused by `restrict`: the listener opens on this
    // side, but the host refuses to open the channel. The targets are real
    // listeners the deploy user reaches, so an allowed forward would show:
    // the rig's own deploy key, which has no `restrict`, gets through.
    let target = tcp_target();
    let tcp = |key: &Path| {
        let port = crate::common::free_port();
        through_forward(
            &app,
            key,
            &format!("127.0.0.1:{port}:127.0.0.1:{target}"),
            || {
                let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                Ok(stream)
            },
            b"",
        )
    };
    let deploy_key = Path::new(app.rig.get("RIG_SSH_KEY"));
    let (answer, stderr) = tcp(deploy_key);
    assert_eq!(
        answer, TARGET_REACHED,
        "control: the deploy key forwards: {stderr}"
    );
    let log = sshd_log(&app);
    assert_forward_refused(
        "a TCP forward",
        tcp(&key.key),
        "open failed: administratively prohibited: open failed",
        log,
        |line| {
            line.starts_with("refused local port forward: originator 127.0.0.1 port ")
                && line.ends_with(&format!(", target 127.0.0.1 port {target}"))
        },
    );

    let docker = |key: &Path| {
        let socket = std::env::temp_dir().join(format!(
            "berth-docker-{}-{}.sock",
            std::process::id(),
            key.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_file(&socket);
        let seen = through_forward(
            &app,
            key,
            &format!("{}:/var/run/docker.sock", socket.display()),
            || {
                let stream = std::os::unix::net::UnixStream::connect(&socket)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                Ok(stream)
            },
            b"GET /_ping HTTP/1.0\r\n\r\n",
        );
        let _ = std::fs::remove_file(&socket);
        seen
    };
    let (answer, stderr) = docker(deploy_key);
    assert!(
        answer.starts_with("HTTP/1.0 200 OK\r\n") && answer.ends_with("\r\n\r\nOK"),
        "control: the deploy key reaches the Docker socket: {answer:?} {stderr}"
    );
    // sshd answers a refused streamlocal forward with the generic "connect
    // failed"; its log says it was the key's `restrict`.
    let log = sshd_log(&app);
    assert_forward_refused(
        "a forward to the Docker socket",
        docker(&key.key),
        "open failed: connect failed: open failed",
        log,
        |line| {
            line == "refused streamlocal port forward: originator  port 0, target /var/run/docker.sock"
        },
    );
}

/// Each request: a pause, three PHP lines, a pause, the answer. The nginx
/// container logs the request after it: every line of a request is at
/// least 100 ms from those of the requests before and after it.
const ORDER: &str = r#"<?php
usleep(100000);
foreach (["a", "b", "c"] as $part) {
    error_log("order-probe " . ($_GET['m'] ?? '') . " $part");
}
usleep(100000);
echo "ok\n";
"#;

/// Prints `lines` PHP lines that do not match the probes.
const FILL: &str = r#"<?php
for ($i = 0; $i < (int) ($_GET['lines'] ?? 0); $i++) {
    error_log("filler line $i");
}
echo "ok\n";
"#;

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn app_logs_merge_php_and_nginx_lines_in_time_order() {
    let app = RigApp::new("logorder");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/order.php"), ORDER).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let marker = format!("m{}x", std::process::id());
    for i in 1..=3 {
        let (status, _) = http_request(
            app.rig.front_port(),
            &app.domain,
            "GET",
            &format!("/order.php?m={marker}{i}"),
            "",
        )
        .unwrap();
        assert_eq!(status, 200);
    }
    // The last request's nginx line is the last to come.
    wait_for_line(
        &app,
        &["--source", "nginx", "--grep", &format!("{marker}3")],
        &format!("{marker}3"),
    );
    let shown: Vec<String> = logs(&app, &["--source", "app", "--grep", &marker])
        .iter()
        .map(|line| {
            let (head, text) = line.split_once(" | ").unwrap();
            let source = head.split_whitespace().nth(1).unwrap();
            let what = text
                .split_once("order-probe ")
                .map(|(_, probe)| probe.to_string())
                .unwrap_or_else(|| {
                    let at = text.find(&marker).unwrap();
                    format!("GET {}", &text[at..at + marker.len() + 1])
                });
            format!("{source} {what}")
        })
        .collect();
    let expected: Vec<String> = (1..=3)
        .flat_map(|i| {
            [
                format!("php {marker}{i} a"),
                format!("php {marker}{i} b"),
                format!("php {marker}{i} c"),
                format!("nginx GET {marker}{i}"),
            ]
        })
        .collect();
    assert_eq!(shown, expected);
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn grep_finds_the_last_matching_lines_before_tail_counts() {
    let app = RigApp::new("grepfirst");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/boom.php"), BOOM).unwrap();
    std::fs::write(code.join("public/fill.php"), FILL).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let nonce = format!("needle{}", std::process::id());
    let get = |path: &str| {
        let (status, _) = http_request(app.rig.front_port(), &app.domain, "GET", path, "").unwrap();
        assert_eq!(status, 200, "{path}");
    };
    get(&format!("/boom.php?n={nonce}"));
    wait_for_line(&app, &["--source", "php", "--grep", &nonce], &nonce);
    // 300 lines after it: the needle is far beyond the last 2.
    get("/fill.php?lines=300");
    wait_for_line(&app, &["--source", "php", "--tail", "1"], "filler line 299");
    let found = logs(&app, &["--source", "php", "--tail", "2", "--grep", &nonce]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(" php    | ")
            && found[0].ends_with(&format!(" UTC] berth-log-probe {nonce}")),
        "{found:?}"
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_replaced_releases_logs_stay_on_the_host_readable_by_release() {
    let app = RigApp::new("keptlogs");
    let v1 = app.code("v1.0.0", true);
    std::fs::write(v1.join("public/boom.php"), BOOM).unwrap();
    app.deploy("v1.0.0", &v1).expect(ExitStatus::Success);
    let nonce = format!("kept{}", std::process::id());
    let (status, _) = http_request(
        app.rig.front_port(),
        &app.domain,
        "GET",
        &format!("/boom.php?n={nonce}"),
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    wait_for_line(&app, &["--source", "php", "--grep", &nonce], &nonce);
    // v2 goes to green and keeps v1 warm in blue; v3 replaces blue.
    app.deploy("v2.0.0", &app.code("v2.0.0", true))
        .expect(ExitStatus::Success);
    app.request("v3.0.0");
    let dir = format!("{}/{}/test/logs", app.rig.get("RIG_BASE_DIR"), app.id);
    let plan = app
        .berth(&["deploy", "--dry-run"])
        .args(["--code"])
        .arg_path(&app.code("v3.0.0", true))
        .run()
        .expect(berth::exit::ExitStatus::Success);
    assert!(
        plan.stdout().contains(&format!(
            "keep the logs of v1.0.0 in slot blue in {dir}/v1.0.0-blue.log (the newest 8 MiB of each, the newest 10 files)\n"
        )),
        "{}",
        plan.stdout()
    );
    app.deploy("v3.0.0", &app.code("v3.0.0", true))
        .expect(ExitStatus::Success);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["v1.0.0-blue.log"]);

    // Both containers' lines, in time order. Which comes first is a race
    // Docker settles: PHP's line reaches Docker through the php-fpm
    // master (catch_workers_output), nginx writes its access line itself
    // when the request ends, and each gets its timestamp as Docker reads it.
    let kept = logs(&app, &["--release", "v1.0.0", "--grep", &nonce]);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let php = kept.iter().filter(|l| {
        l.contains(" php    | ") && l.ends_with(&format!(" UTC] berth-log-probe {nonce}"))
    });
    let nginx = kept
        .iter()
        .filter(|l| l.contains(" nginx  | ") && l.contains(&format!("GET /boom.php?n={nonce} ")));
    assert_eq!((php.count(), nginx.count()), (1, 1), "{kept:?}");
    let times: Vec<&str> = kept.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert!(times[0] <= times[1], "not in time order: {kept:?}");
    // The nginx container's lines are kept too, and read through the
    // app's logs key within its limits.
    let key = LogsKey::install(&app);
    let run = app
        .berth(&[
            "logs",
            "--release",
            "v1.0.0",
            "--source",
            "nginx",
            "--grep",
            &nonce,
        ])
        .args(["--logs-key"])
        .arg_path(&key.key)
        .run()
        .expect(berth::exit::ExitStatus::Success);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains(" nginx  | ") && lines[0].contains(&format!("GET /boom.php?n={nonce} ")),
        "{}",
        run.stdout()
    );
    // A release with no kept logs.
    let run = app
        .berth(&["logs", "--release", "v2.0.0"])
        .run()
        .expect(berth::exit::ExitStatus::Usage);
    assert_eq!(
        run.stderr(),
        "error: the host kept no logs of release v2.0.0 of environment test\n  hint: logs are kept when a deploy or restart replaces a release's containers, for the last 10 replaced slots\n"
    );
}
