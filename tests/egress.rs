//! The egress policy, proven from inside a running plugin: a probe page
//! connects to listeners that are really there — in a network namespace
//! beyond the host (the metadata address, a private range, a public
//! address) and on the host's own addresses — and each must be refused by
//! berth's rule, with "No route to host" (EHOSTUNREACH, 113, from the
//! REJECT's "administratively prohibited"), not time out (a DROP) or be
//! refused (nothing listening). The app's allow-list opens exactly its
//! address and port. A container outside berth's slot networks reaches every
//! one of the same listeners in the same run, so the denials come from the
//! policy and not from the listeners.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use berth::exit::ExitStatus;

use crate::common::http_request;
use crate::deploy::RigApp;

/// A plugin page that connects to each `host:port` of `?targets=`: 0 when
/// it connected, else the errno.
pub(crate) const PROBE: &str = r#"<?php
header('Content-Type: application/json');
$r = [];
foreach (explode(',', $_GET['targets']) as $t) {
    [$host, $port] = explode(':', $t);
    $s = @fsockopen($host, (int) $port, $errno, $errstr, 3.0);
    if ($s) { fclose($s); $errno = 0; }
    $r[$t] = $errno;
}
echo json_encode($r);
"#;

/// "No route to host": what the egress policy's REJECT gives `connect()`.
pub(crate) const EHOSTUNREACH: i64 = 113;

fn run(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace beyond the host, routed through a veth pair:
/// 10.253.0.2 (a private range) holds 169.254.169.254 (the metadata
/// address), 198.51.100.7 (the "company API" the app is allowed) and
/// 203.0.113.5 (a public address), each with a listener on `port`.
struct Beyond {
    name: String,
    host_end: String,
    listener: Child,
}

const BEYOND: [&str; 4] = [
    "10.253.0.2",
    "169.254.169.254",
    "198.51.100.7",
    "203.0.113.5",
];

impl Beyond {
    fn new(ports: &[u16]) -> Beyond {
        let name = format!("berth-eg-{}", std::process::id());
        let host_end = format!("beg{}", std::process::id() % 100_000);
        let ns_end = format!("{host_end}n");
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_end]).output();
        run(&["ip", "netns", "add", &name]);
        run(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
        ]);
        run(&["ip", "link", "set", &ns_end, "netns", &name]);
        run(&["ip", "addr", "add", "10.253.0.1/30", "dev", &host_end]);
        run(&["ip", "link", "set", &host_end, "up"]);
        let inside = |args: &[&str]| {
            let mut argv = vec!["ip", "netns", "exec", &name];
            argv.extend_from_slice(args);
            run(&argv);
        };
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&["ip", "addr", "add", "10.253.0.2/30", "dev", &ns_end]);
        for address in &BEYOND[1..] {
            inside(&[
                "ip",
                "addr",
                "add",
                &format!("{address}/32"),
                "dev",
                &ns_end,
            ]);
            run(&[
                "ip",
                "route",
                "replace",
                &format!("{address}/32"),
                "via",
                "10.253.0.2",
            ]);
        }
        inside(&["ip", "link", "set", &ns_end, "up"]);
        inside(&["ip", "route", "add", "default", "via", "10.253.0.1"]);
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut listener = Command::new("ip")
            .args(["netns", "exec", &name, "python3", "-c", LISTENER])
            .args(&ports)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(listener.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready, "listening\n");
        Beyond {
            name,
            host_end,
            listener,
        }
    }
}

impl Drop for Beyond {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        for address in &BEYOND[1..] {
            let _ = Command::new("ip")
                .args(["route", "del", &format!("{address}/32")])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Accepts and closes connections on 0.0.0.0 at each port given.
const LISTENER: &str = r#"
import socket, sys, threading
socks = []
for port in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(64)
    socks.append(s)
def serve(s):
    while True:
        c, _ = s.accept()
        c.close()
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"#;

/// Listens on every address of the host itself at `port`.
fn listen_on_host(port: u16) {
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
}

/// The host's first global IPv4 address on a real interface (its LAN
/// address), not a bridge's or this test's.
pub(crate) fn host_lan_address() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let device = words.nth(1)?;
            let address = words.nth(1)?.split('/').next()?;
            let virtual_device = device.starts_with("docker")
                || device.starts_with("br-")
                || device.starts_with("veth")
                || device.starts_with("beg");
            (!virtual_device).then(|| address.to_string())
        })
        .next()
        .expect("the host has a LAN address")
}

fn container_ip(container: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}",
            container,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Which of `targets` a container on Docker's default bridge (outside
/// berth's slot networks) connects to: 0 for connected, else bash's status.
fn reached_from_outside_berth(image: &str, targets: &[String]) -> Vec<(String, i32)> {
    let script = targets
        .iter()
        .map(|t| {
            let (host, port) = t.split_once(':').unwrap();
            format!(
                "timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; echo \"{t} $?\""
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "bridge",
            "--user",
            "33:33",
            image,
            "bash",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (t, code) = line.rsplit_once(' ').unwrap();
            (t.to_string(), code.parse().unwrap())
        })
        .collect()
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_plugin_reaches_only_what_its_allow_list_names() {
    let [port, other_port] = crate::common::free_ports::<2>();
    let beyond = Beyond::new(&[port, other_port]);
    listen_on_host(port);

    let victim = RigApp::new("egress-victim");
    victim
        .deploy("v1.0.0", &victim.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let prober = RigApp::new("egress-prober");
    prober.append_app_yml(&format!(
        "egress:\n  - name: api.partner.example\n    address: 198.51.100.7\n    ports: [{port}]\n"
    ));
    let code = prober.code("v1.0.0", true);
    std::fs::write(code.join("public/egress.php"), PROBE).unwrap();
    prober.deploy("v1.0.0", &code).expect(ExitStatus::Success);

    let own = container_ip(&format!("berth-{}-test-blue_php_1", prober.id));
    let (_, gateway) = own.split_once(' ').unwrap();
    let victim_web = container_ip(&format!("berth-{}-test-blue_web_1", victim.id));
    let (victim_web, _) = victim_web.split_once(' ').unwrap();
    let denied: Vec<(String, &str)> = vec![
        (format!("169.254.169.254:{port}"), "the metadata address"),
        (format!("10.253.0.2:{port}"), "a private range"),
        (
            format!("203.0.113.5:{port}"),
            "a public address not allowed",
        ),
        (
            format!("198.51.100.7:{other_port}"),
            "the allowed address, another port",
        ),
        (
            format!("{gateway}:{port}"),
            "the host, at its slot network's gateway",
        ),
        (
            format!("172.17.0.1:{port}"),
            "the host, at Docker's default bridge",
        ),
        (
            format!("{}:{port}", host_lan_address()),
            "the host, at its LAN address",
        ),
        (format!("{victim_web}:8080"), "another app's web container"),
    ];
    let allowed = format!("198.51.100.7:{port}");
    let mut targets: Vec<String> = denied.iter().map(|(t, _)| t.clone()).collect();
    targets.push(allowed.clone());

    let (status, body) = http_request(
        prober.rig.front_port(),
        &prober.domain,
        "GET",
        &format!("/egress.php?targets={}", targets.join(",")),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let r: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(r[&allowed], 0, "the allow-listed {allowed} is reached: {r}");
    for (target, what) in &denied {
        assert_eq!(
            r[target], EHOSTUNREACH,
            "{what} ({target}) must be refused by the egress policy (113), got: {r}"
        );
    }

    // The same listeners, from a container outside berth's networks: all
    // there (another app's container is behind Docker's own isolation
    // between networks, so left out).
    let image = prober.rig.get("RIG_RUNTIME_IMAGE");
    let outside: Vec<String> = targets
        .iter()
        .filter(|t| !t.starts_with(victim_web))
        .cloned()
        .collect();
    for (target, code) in reached_from_outside_berth(image, &outside) {
        assert_eq!(
            code, 0,
            "{target} is reachable from outside berth's networks"
        );
    }
    drop(beyond);
}

#[test]
#[ignore = "rig: root and iptables (egress apply reads the firewall); scripts/test runs it"]
fn egress_apply_validates_its_arguments_before_touching_the_firewall() {
    let run = crate::common::Berth::new()
        .args([
            "--dry-run",
            "egress",
            "apply",
            "--app",
            "shop",
            "--env",
            "test",
            "--slot-port",
            "18001",
            "--allow",
            "198.51.100.7:443; iptables -F",
        ])
        .run()
        .expect(ExitStatus::Usage);
    assert_eq!(
        run.stderr(),
        "error: --allow: \"443; iptables -F\" is not a port (1-65535)\n  hint: give ADDRESS:PORT, e.g. 203.0.113.10:443\n"
    );
    assert_eq!(run.stdout(), "");
}
