//! Hardening, proven from inside a running plugin: a probe page deployed as
//! part of a plugin tries what a hostile plugin would, and each attempt
//! must be denied. Positive controls show the probes can succeed.

use std::process::Command;

use berth::exit::ExitStatus;

use crate::common::http_request;
use crate::deploy::RigApp;

const PROBE: &str = r#"<?php
header('Content-Type: application/json');
// true when it connects, else why not: "errno: message".
function reach($host, $port) {
    $s = @fsockopen($host, (int) $port, $errno, $errstr, 1.0);
    if ($s) { fclose($s); return true; }
    return "$errno: $errstr";
}
// true when it works, else PHP's warnings saying why not.
function attempt($f) {
    $warnings = [];
    set_error_handler(function ($no, $message) use (&$warnings) {
        $warnings[] = $message;
        return true;
    });
    $result = $f();
    restore_error_handler();
    if ($result !== false) { return true; }
    return $warnings ? implode(' | ', $warnings) : 'failed without a warning';
}
$q = $_GET;
$r = [];
foreach (['exec', 'shell_exec', 'system', 'passthru', 'proc_open', 'popen'] as $f) {
    $r["callable_$f"] = function_exists($f);
}
$r['write_code'] = attempt(fn() => file_put_contents('/var/www/app/public/x.txt', 'x'));
$r['write_root'] = attempt(fn() => file_put_contents('/x.txt', 'x'));
$r['write_tmp'] = attempt(fn() => file_put_contents('/tmp/x.txt', 'x'));
$r['read_other_code'] = attempt(fn() => file_get_contents($q['other_code']));
$r['read_passwd'] = attempt(fn() => file_get_contents('/etc/passwd'));
$r['reach_own_web'] = reach($q['own_web'], 8080);
$r['reach_other_web'] = reach($q['other_web'], 8080);
$r['reach_other_php'] = reach($q['other_php'], 9000);
$r['reach_host_sshd'] = reach($q['gateway'], $q['ssh_port']);
$r['reach_host_front'] = reach($q['gateway'], $q['front_port']);
$r['reach_other_slot_port'] = reach($q['gateway'], $q['other_port']);
$r['docker_socket'] = reach('unix:///var/run/docker.sock', -1);
echo json_encode($r);
"#;

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

fn inspect(container: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, container]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_plugin_cannot_reach_out_of_its_slot() {
    let victim = RigApp::new("victim");
    victim
        .deploy("v1.0.0", &victim.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let prober = RigApp::new("prober");
    let code = prober.code("v1.0.0", true);
    std::fs::write(code.join("public/probe.php"), PROBE).unwrap();
    prober.deploy("v1.0.0", &code).expect(ExitStatus::Success);

    let own_web = format!("berth-{}-test-blue_web_1", prober.id);
    let other_web = format!("berth-{}-test-blue_web_1", victim.id);
    let other_php = format!("berth-{}-test-blue_php_1", victim.id);
    let ip = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
    let gateway = inspect(
        &own_web,
        "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
    );
    let other_port = inspect(
        &other_web,
        "{{range $p, $b := .NetworkSettings.Ports}}{{(index $b 0).HostPort}}{{end}}",
    );
    let other_code = format!(
        "{}/{}/test/releases/v1.0.0/code/public/index.php",
        victim.rig.get("RIG_BASE_DIR"),
        victim.id
    );
    let query = format!(
        "/probe.php?own_web={}&other_web={}&other_php={}&gateway={gateway}&ssh_port={}&front_port={}&other_port={other_port}&other_code={other_code}",
        inspect(&own_web, ip),
        inspect(&other_web, ip),
        inspect(&other_php, ip),
        prober.rig.get("RIG_SSH_PORT"),
        prober.rig.front_port(),
    );
    let (status, body) =
        http_request(prober.rig.front_port(), &prober.domain, "GET", &query, "").unwrap();
    assert_eq!(status, 200, "{body}");
    let r: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    // Positive controls: the probes work.
    assert_eq!(r["write_tmp"], true, "{r}");
    assert_eq!(r["reach_own_web"], true, "{r}");
    // Denials, each for the reason it claims.
    for key in [
        "callable_exec",
        "callable_shell_exec",
        "callable_system",
        "callable_passthru",
        "callable_proc_open",
        "callable_popen",
    ] {
        assert_eq!(r[key], false, "{key}: disabled in php.ini: {r}");
    }
    let denials = [
        (
            "write_code",
            "file_put_contents(/var/www/app/public/x.txt): Failed to open stream: Read-only file system",
            "the code is mounted read-only",
        ),
        (
            "write_root",
            "file_put_contents(): open_basedir restriction in effect. File(/x.txt) is not within the allowed path(s): (/var/www/app:/tmp) | file_put_contents(/x.txt): Failed to open stream: Operation not permitted",
            "outside open_basedir (the read-only root is checked below, past PHP)",
        ),
        (
            "read_other_code",
            &format!("file_get_contents({other_code}): Failed to open stream: No such file or directory"),
            "another app's code is not in this container",
        ),
        (
            "read_passwd",
            "file_get_contents(): open_basedir restriction in effect. File(/etc/passwd) is not within the allowed path(s): (/var/www/app:/tmp) | file_get_contents(/etc/passwd): Failed to open stream: Operation not permitted",
            "outside open_basedir",
        ),
        (
            "docker_socket",
            "2: No such file or directory",
            "the Docker socket is not mounted",
        ),
    ];
    for (key, expected, why) in denials {
        assert_eq!(r[key], expected, "{key}: {why}: {r}");
    }
    // Another app's containers: dropped between the slot networks (110),
    // or refused by a host rule (113, icmp-admin-prohibited). "111:
    // Connection refused" would mean the packet got there.
    for key in ["reach_other_web", "reach_other_php"] {
        assert!(
            r[key] == "110: Connection timed out" || r[key] == "113: No route to host",
            "{key} must be dropped or refused on the way: {r}"
        );
    }
    // The host's sshd, front and published slot ports listen on loopback:
    // on the gateway address nothing answers (111), or a rule stops the
    // packet (110, 113). These probes only show the services are not
    // exposed there; whether a plugin reaches listeners on the host's own
    // addresses at all is egress, proven elsewhere.
    for key in [
        "reach_host_sshd",
        "reach_host_front",
        "reach_other_slot_port",
    ] {
        assert!(
            [
                "111: Connection refused",
                "110: Connection timed out",
                "113: No route to host"
            ]
            .contains(&r[key].as_str().unwrap_or_default()),
            "{key} must not connect: {r}"
        );
    }
    // Past PHP: the php container's root file system is read-only, even
    // for a process open_basedir does not bind.
    let php = format!("berth-{}-test-blue_php_1", prober.id);
    let write = docker(&["exec", "-u", "33", &php, "sh", "-c", "echo x > /x.txt"]);
    assert_eq!(write.status.code(), Some(2), "{write:?}");
    assert_eq!(
        String::from_utf8_lossy(&write.stderr),
        "sh: 1: cannot create /x.txt: Read-only file system\n"
    );
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_fork_bomb_and_a_memory_hog_stay_inside_their_slot() {
    let neighbour = RigApp::new("neighbour");
    neighbour
        .deploy("v1.0.0", &neighbour.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let hog = RigApp::new("hog");
    hog.deploy("v1.0.0", &hog.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let php = format!("berth-{}-test-blue_php_1", hog.id);

    // Fork bomb: the pids limit (app.yml: 128) stops it. The kernel's
    // pids controller counts each refused fork and the peak it allowed.
    let id = inspect(&php, "{{.Id}}");
    let cgroup = [
        format!("/sys/fs/cgroup/pids/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
    ]
    .into_iter()
    .find(|dir| std::path::Path::new(dir).join("pids.events").exists())
    .expect("the php container's pids cgroup");
    let read = |file: &str| std::fs::read_to_string(format!("{cgroup}/{file}")).unwrap();
    assert_eq!(read("pids.max").trim(), "128");
    let refused_before: u64 = read("pids.events")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // Whatever the bomb's own exit status, once it hits the limit.
    let _ = docker(&[
        "exec",
        &php,
        "bash",
        "-c",
        "for ((i = 0; i < 400; i++)); do (sleep 3) 2>/dev/null & done 2>/dev/null; wait",
    ]);
    let refused: u64 = read("pids.events")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        refused > refused_before,
        "forks were refused at the limit ({refused})"
    );
    assert_eq!(
        neighbour.served(),
        (200, "v1.0.0".into(), "v1.0.0".into()),
        "the neighbour serves during the bomb"
    );

    // Memory hog: killed by the container's memory limit (256M), alone.
    let out = docker(&[
        "exec",
        &php,
        "bash",
        "-c",
        "head -c 700M /dev/zero | tail -n 1 >/dev/null",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "the hog is killed (SIGKILL by the OOM killer): {out:?}"
    );
    assert_eq!(
        inspect(&php, "{{.State.Running}}"),
        "true",
        "php-fpm itself survives"
    );
    assert_eq!(neighbour.served().0, 200, "the neighbour serves");
    assert_eq!(
        hog.served(),
        (200, "v1.0.0".into(), "v1.0.0".into()),
        "the hog's own app serves again"
    );
}

/// A FastCGI client in plugin PHP: asks php-fpm at `host:port` to run
/// `passwd.php` with `PHP_ADMIN_VALUE` lifting `open_basedir`, as a hostile
/// plugin would to escape its php.ini.
const FASTCGI_PROBE: &str = r#"<?php
header('Content-Type: application/json');
function record($type, $content) {
    return pack('CCnnCx', 1, $type, 1, strlen($content), 0) . $content;
}
function pair($name, $value) {
    $len = fn($n) => $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
    return $len(strlen($name)) . $len(strlen($value)) . $name . $value;
}
function fastcgi($host, $port) {
    $s = @stream_socket_client("tcp://$host:$port", $errno, $errstr, 2.0);
    if (!$s) {
        return ['connected' => false, 'errno' => $errno, 'error' => $errstr];
    }
    $params = pair('SCRIPT_FILENAME', '/var/www/app/public/passwd.php')
        . pair('REQUEST_METHOD', 'GET')
        . pair('PHP_ADMIN_VALUE', "open_basedir=/\nffi.enable=1");
    fwrite($s, record(1, pack('nCx5', 1, 0)) . record(4, $params) . record(4, '')
        . record(5, ''));
    stream_set_timeout($s, 5);
    $response = stream_get_contents($s);
    fclose($s);
    $stdout = '';
    for ($at = 0; $at + 8 <= strlen($response); $at += 8 + $h['len'] + $h['pad']) {
        $h = unpack('Cversion/Ctype/nid/nlen/Cpad', substr($response, $at, 8));
        if ($h['type'] === 6) {
            $stdout .= substr($response, $at + 8, $h['len']);
        }
    }
    return ['connected' => true, 'bytes' => strlen($response), 'stdout' => $stdout];
}
$limits = posix_getrlimit();
echo json_encode([
    'loopback' => fastcgi('127.0.0.1', 9000),
    'own_address' => fastcgi($_GET['own_php'], 9000),
    'ffi_loaded' => extension_loaded('ffi'),
    'ffi_class' => class_exists('FFI', false),
    'nofile' => [$limits['soft openfiles'], $limits['hard openfiles']],
]);
"#;

/// What php-fpm runs when the FastCGI probe gets through.
const PASSWD: &str = "<?php echo file_get_contents('/etc/passwd');\n";

fn container_ip(container: &str) -> String {
    inspect(
        container,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )
}

/// The directory of a container's cgroup for `controller` (v1 or v2).
fn cgroup_dir(container: &str, controller: &str, file: &str) -> std::path::PathBuf {
    let id = inspect(container, "{{.Id}}");
    [
        format!("/sys/fs/cgroup/{controller}/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|dir| dir.join(file).exists())
    .unwrap_or_else(|| panic!("no {controller} cgroup with {file} for {container}"))
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn php_fpm_answers_only_its_own_slots_nginx_and_ffi_is_absent() {
    let app = RigApp::new("fastcgi");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/probe.php"), FASTCGI_PROBE).unwrap();
    std::fs::write(code.join("public/passwd.php"), PASSWD).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let php = format!("berth-{}-test-blue_php_1", app.id);
    let own_php = container_ip(&php);

    let (status, body) = http_request(
        app.rig.front_port(),
        &app.domain,
        "GET",
        &format!("/probe.php?own_php={own_php}"),
        "",
    )
    .unwrap();
    // Positive control: the slot's own nginx reaches php-fpm.
    assert_eq!(status, 200, "{body}");
    let r: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    // php-fpm listens on the php container's slot address only: nothing
    // listens on its loopback.
    assert_eq!(
        r["loopback"],
        serde_json::json!({"connected": false, "errno": 111, "error": "Connection refused"}),
        "{r}"
    );
    // On its slot address php-fpm accepts the connection, then drops it
    // without a byte: listen.allowed_clients names the web container only.
    assert_eq!(
        r["own_address"],
        serde_json::json!({"connected": true, "bytes": 0, "stdout": ""}),
        "{r}"
    );
    let logs = docker(&["logs", &php]);
    let logs = String::from_utf8_lossy(&logs.stderr).into_owned();
    let dropped = format!("Connection disallowed: IP address '{own_php}' has been dropped.");
    assert!(
        logs.lines().any(|line| line.ends_with(&dropped)),
        "php-fpm says why it dropped the probe: {dropped}\n--- php logs\n{logs}"
    );
    // No FFI in the image: nothing in PHP can call libc.
    assert_eq!(r["ffi_loaded"], false, "{r}");
    assert_eq!(r["ffi_class"], false, "{r}");
    // Open files: the compose file's nofile limit, soft and hard.
    assert_eq!(r["nofile"], serde_json::json!([1024, 1024]), "{r}");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn memory_and_swap_share_one_limit() {
    let app = RigApp::new("swap");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let php = format!("berth-{}-test-blue_php_1", app.id);
    // app.yml: limits.memory 256M, and no swap on top of it.
    assert_eq!(
        inspect(&php, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        "268435456 268435456"
    );
    // What the kernel enforces: cgroup v1 limits memory+swap together
    // (memsw), v2 limits swap alone.
    let dir = cgroup_dir(&php, "memory", "memory.limit_in_bytes");
    let v1 = dir.join("memory.memsw.limit_in_bytes");
    if v1.exists() {
        let read = |file: &std::path::Path| std::fs::read_to_string(file).unwrap();
        assert_eq!(read(&v1).trim(), "268435456");
        assert_eq!(read(&dir.join("memory.limit_in_bytes")).trim(), "268435456");
    } else {
        let swap = std::fs::read_to_string(dir.join("memory.swap.max")).unwrap();
        assert_eq!(swap.trim(), "0");
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn symlinks_in_released_code_are_never_followed() {
    let app = RigApp::new("links");
    let code = app.code("v1.0.0", true);
    let links = [
        ("compose.txt", "/etc/berth/compose.yml"),
        ("passwd.txt", "/etc/passwd"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, code.join("public").join(name)).unwrap();
    }
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let public = std::path::Path::new(app.rig.get("RIG_BASE_DIR"))
        .join(&app.id)
        .join("test/releases/v1.0.0/code/public");
    let get =
        |path: &str| http_request(app.rig.front_port(), &app.domain, "GET", path, "").unwrap();
    // What a path that does not exist gets: the app's front controller.
    let absent = get("/absent.txt");
    assert_eq!(absent.0, 200, "{absent:?}");
    let check = |why: &str| {
        for (name, _) in links {
            let got = get(&format!("/{name}"));
            assert_eq!(got, absent, "{why}: /{name} is served as absent");
            assert!(
                !got.1.contains("services:") && !got.1.contains("root:x:0:0"),
                "{why}: /{name} never shows its target: {}",
                got.1
            );
        }
    };
    // rsync leaves every link out of the release.
    for (name, _) in links {
        assert!(
            std::fs::symlink_metadata(public.join(name)).is_err(),
            "{name} was not synced to the host"
        );
    }
    check("synced");
    // A link that reaches the release some other way: nginx refuses to
    // follow it.
    for (name, target) in links {
        std::os::unix::fs::symlink(target, public.join(name)).unwrap();
    }
    check("planted on the host");
}
