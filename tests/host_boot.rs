//! `berth host boot` on the rig: after what a reboot does to one app (its
//! containers stopped, its storage unmounted, its egress chain gone from
//! the kernel), the boot step run before the containers come back mounts
//! the storage and sets the policy again from the records the last deploy
//! left, so the app finds its data and reaches only what it may.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use berth::exit::ExitStatus;

use crate::app_settings::code_with_settings;
use crate::common::{wait_for_200, Berth};
use crate::deploy::RigApp;
use crate::egress::{host_lan_address, EHOSTUNREACH, PROBE};

fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(app: &RigApp, path: &str) -> String {
    let (status, body) =
        crate::common::http_request(app.rig.front_port(), &app.domain, "GET", path, "").unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// A base directory of the app's own (the boot step walks a whole base
/// directory; other tests' apps live in the rig's), which the deploy user
/// owns, and its storage unmounted at the end.
struct OwnBase {
    dir: tempfile::TempDir,
}

impl OwnBase {
    fn new() -> OwnBase {
        let dir = tempfile::tempdir().unwrap();
        run(&["chown", "deploy:deploy", dir.path().to_str().unwrap()]);
        OwnBase { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OwnBase {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                "for m in \"$1\"/*/*/storage; do umount -l \"$m\"; done 2>/dev/null",
            ])
            .arg("sh")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
#[ignore = "rig: sshd, Docker, iptables, loop devices and the host's root berth (tests/rig/up); scripts/test runs it"]
fn host_boot_mounts_storage_and_sets_egress_again_before_the_slots_return() {
    let lan = host_lan_address();
    let allowed_listener = TcpListener::bind((lan.as_str(), 0)).unwrap();
    let other_listener = TcpListener::bind((lan.as_str(), 0)).unwrap();
    let allowed = format!("{lan}:{}", allowed_listener.local_addr().unwrap().port());
    let other = format!("{lan}:{}", other_listener.local_addr().unwrap().port());

    let base = OwnBase::new();
    let app = RigApp::new("boot");
    app.set_base_dir(base.path());
    app.edit_app_yml("  pids: 128\n", "  pids: 128\n  storage: 16M\n");
    app.append_app_yml(&format!(
        "egress:\n  - {{name: api.internal, address: {lan}, ports: [{}]}}\n",
        allowed_listener.local_addr().unwrap().port()
    ));
    let code = code_with_settings(&app, "v1.0.0", "ok");
    std::fs::write(code.join("public/probe.php"), PROBE).unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    assert_eq!(get(&app, "/note.php?w=kept"), "saved\n");
    let probe = format!("/probe.php?targets={allowed},{other}");
    let reach = serde_json::json!({allowed.clone(): 0, other.clone(): EHOSTUNREACH});
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&get(&app, &probe)).unwrap(),
        reach
    );

    // What root recorded beside the app environment, for the boot step.
    let base_dir = base.path().to_str().unwrap();
    let env_dir = base.path().join(format!("{}/test", app.id));
    let record = |name: &str| -> Vec<String> {
        let path = env_dir.join(name);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            0,
            "{name} is root's"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let [blue, green] = app.ports.map(|p| p.to_string());
    let words = |text: String| -> Vec<String> { text.split(' ').map(String::from).collect() };
    assert_eq!(
        record("boot-storage.json"),
        words(format!(
            "storage ensure --base-dir {base_dir} --app {} --env test --size 16M --path data --path var/sessions",
            app.id
        ))
    );
    assert_eq!(
        record("boot-egress.json"),
        words(format!(
            "egress apply --app {} --env test --slot-port {blue} --slot-port {green} --allow {allowed} --base-dir {base_dir}",
            app.id
        ))
    );

    // A reboot, as far as this app goes: its containers down, its storage
    // unmounted, its chain gone from the kernel.
    let ids = run(&[
        "docker",
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.app={}", app.id),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 2, "the live slot runs");
    let mut stop = vec!["docker", "stop"];
    stop.extend(&ids);
    run(&stop);
    let storage = env_dir.join("storage");
    run(&["umount", storage.to_str().unwrap()]);
    assert!(!storage.join("data/note.txt").exists());
    let chain = berth::plan::egress::Policy {
        app: app.id.parse().unwrap(),
        env: "test".parse().unwrap(),
        slot_ports: vec![],
        allow: Default::default(),
        per_minute: Default::default(),
    }
    .chain();
    let rules = run(&["iptables", "-S", "BERTH-ALLOW"]);
    let jumps: Vec<&str> = rules
        .lines()
        .filter(|l| l.ends_with(&format!("-j {chain}")))
        .collect();
    assert_eq!(jumps.len(), 2, "one jump per slot network: {rules}");
    for jump in jumps {
        let spec: Vec<&str> = jump.split_whitespace().skip(2).collect();
        let mut delete = vec!["iptables", "-D", "BERTH-ALLOW"];
        delete.extend(spec);
        run(&delete);
    }
    run(&["iptables", "-F", &chain]);
    run(&["iptables", "-X", &chain]);

    // --dry-run says what it would run and changes nothing.
    let boot = |extra: &[&str]| {
        Berth::new()
            .args(extra)
            .args(["host", "boot", "--base-dir", base_dir])
            .run()
    };
    let dry = boot(&["--dry-run"]).expect(ExitStatus::Success);
    assert_eq!(
        dry.stdout(),
        format!(
            "dry run, nothing was done; berth host boot would run:\nberth {}\nberth {}\n",
            record("boot-storage.json").join(" "),
            record("boot-egress.json").join(" ")
        )
    );
    assert!(!storage.join("data/note.txt").exists());

    // The boot step, then the containers, as the host's boot order has it.
    let booted = boot(&[]).expect(ExitStatus::Success);
    assert!(
        booted.stderr().ends_with(&format!(
            "host boot: 2 storage and egress record(s) under {base_dir} set again\n"
        )),
        "{}",
        booted.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(storage.join("data/note.txt")).unwrap(),
        "kept"
    );
    // Again: nothing left to do, and it says so just the same.
    boot(&[]).expect(ExitStatus::Success);
    let mut start = vec!["docker", "start"];
    start.extend(&ids);
    run(&start);
    wait_for_200(app.rig.front_port(), &app.domain, "/health.php", 30);
    assert_eq!(get(&app, "/note.php"), "kept\n");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&get(&app, &probe)).unwrap(),
        reach
    );
}
