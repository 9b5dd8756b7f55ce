//! Hardening, proven from inside a running plugin: a probe page deployed as
//! part of a plugin tries what a hostile plugin would, and each attempt
//! must be denied. Positive controls show the probes can succeed.

use std::process::Command;

use crate::common::http_request;
use crate::deploy::RigApp;

const PROBE: &str = r#"<?php
header('Content-Type: application/json');
function reach($host, $port) {
    $s = @fsockopen($host, (int) $port, $errno, $errstr, 1.0);
    if ($s) { fclose($s); return true; }
    return false;
}
$q = $_GET;
$r = [];
foreach (['exec', 'shell_exec', 'system', 'passthru', 'proc_open', 'popen'] as $f) {
    $r["callable_$f"] = function_exists($f);
}
$r['write_code'] = @file_put_contents('/var/www/app/public/x.txt', 'x') !== false;
$r['write_root'] = @file_put_contents('/x.txt', 'x') !== false;
$r['write_tmp'] = @file_put_contents('/tmp/x.txt', 'x') !== false;
$r['read_other_code'] = @file_get_contents($q['other_code']) !== false;
$r['read_passwd'] = @file_get_contents('/etc/passwd') !== false;
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
fn a_plugin_cannot_reach_out_of_its_slot() {
    let victim = RigApp::new("victim");
    victim
        .deploy("v1.0.0", &victim.code("v1.0.0", true))
        .expect_code(0);
    let prober = RigApp::new("prober");
    let code = prober.code("v1.0.0", true);
    std::fs::write(code.join("public/probe.php"), PROBE).unwrap();
    prober.deploy("v1.0.0", &code).expect_code(0);

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
    // Denials.
    for key in [
        "callable_exec",
        "callable_shell_exec",
        "callable_system",
        "callable_passthru",
        "callable_proc_open",
        "callable_popen",
        "write_code",
        "write_root",
        "read_other_code",
        "read_passwd",
        "reach_other_web",
        "reach_other_php",
        "reach_host_sshd",
        "reach_host_front",
        "reach_other_slot_port",
        "docker_socket",
    ] {
        assert_eq!(r[key], false, "{key} must be denied: {r}");
    }
}

#[test]
fn a_fork_bomb_and_a_memory_hog_stay_inside_their_slot() {
    let neighbour = RigApp::new("neighbour");
    neighbour
        .deploy("v1.0.0", &neighbour.code("v1.0.0", true))
        .expect_code(0);
    let hog = RigApp::new("hog");
    hog.deploy("v1.0.0", &hog.code("v1.0.0", true))
        .expect_code(0);
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
