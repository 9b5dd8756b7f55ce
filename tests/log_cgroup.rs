//! An app's logs key with `--cgroup` on the rig: `serve-logs` runs inside
//! the prepared cgroup (tests/rig/logs-cgroup), or not at all.

use std::time::{Duration, Instant};

use berth::exit::ExitStatus;

use crate::deploy::RigApp;
use crate::logs::LogsKey;

/// The rig's logs cgroup; the rig prepares it on a cgroup v1 host.
fn rig_cgroup(app: &RigApp) -> String {
    let name = app.rig.get("RIG_LOGS_CGROUP");
    assert!(
        !name.is_empty(),
        "the rig has no logs cgroup (tests/rig/logs-cgroup needs cgroup v1 cpu, memory and pids)"
    );
    name.to_string()
}

/// The mount point of the v1 hierarchy holding `controller`.
fn v1_mount(controller: &str) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f[2] == "cgroup" && f[3].split(',').any(|o| o == controller))
        .map(|f| f[1].to_string())
        .unwrap_or_else(|| panic!("no cgroup v1 {controller} hierarchy"))
}

fn cmdline(pid: &str) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_logs_key_with_a_cgroup_serves_from_inside_it() {
    let app = RigApp::new("cglogs");
    let cgroup = rig_cgroup(&app);
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let key = LogsKey::install_with(&app.rig, &app.id, &["--cgroup", &cgroup]);
    let mut follow = key.spawn_ssh(
        &app,
        &[
            "deploy@127.0.0.1",
            "logs --env test --source access --follow --tail 0",
        ],
    );
    // Ready when a serve-logs of this app is listed in the cgroup.
    let procs = format!("{}/{cgroup}/cgroup.procs", v1_mount("pids"));
    let wanted = format!("serve-logs --app {} ", app.id);
    let deadline = Instant::now() + Duration::from_secs(15);
    let pid = loop {
        let listed = std::fs::read_to_string(&procs).unwrap();
        if let Some(pid) = listed.lines().find(|p| cmdline(p).contains(&wanted)) {
            break pid.to_string();
        }
        if let Ok(Some(status)) = follow.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(follow.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the --follow ended ({status}) before serve-logs was in {procs}: {stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "no serve-logs of app {} in {procs} after 15 s: {listed:?}",
            app.id
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its own view: in the cgroup in each limiting hierarchy, and run as
    // the deploy user.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for controller in ["cpu", "memory", "pids"] {
        let line = own
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .any(|c| c == controller)
            })
            .unwrap_or_else(|| panic!("no {controller} line in {own}"));
        assert_eq!(
            line.rsplit(':').next().unwrap(),
            format!("/{cgroup}"),
            "{controller}: {own}"
        );
        let listed =
            std::fs::read_to_string(format!("{}/{cgroup}/cgroup.procs", v1_mount(controller)))
                .unwrap();
        assert!(listed.lines().any(|p| p == pid), "{controller}: {listed}");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let deploy = std::process::Command::new("id")
        .args(["-u", "deploy"])
        .output()
        .unwrap();
    let deploy = String::from_utf8(deploy.stdout).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(1).unwrap(),
        deploy.trim(),
        "{uid}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    // The serve-logs this test started, so its session lock goes too.
    let _ = std::process::Command::new("kill").arg(&pid).status();
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_logs_key_whose_cgroup_is_missing_is_refused() {
    let app = RigApp::new("cgmissing");
    let cgroup = format!("{}-missing-{}", rig_cgroup(&app), std::process::id());
    let key = LogsKey::install_with(&app.rig, &app.id, &["--cgroup", &cgroup]);
    let out = key.ssh(
        &app,
        &[
            "deploy@127.0.0.1",
            "logs --env test --source access --tail 1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(ExitStatus::Failure.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: cgroup {cgroup} does not exist: no {}/{cgroup}/cgroup.procs\n  \
             hint: prepare the cgroup with its limits and make its cgroup.procs writable by this user (docs/logs.md, \"The logs key's cgroup\"), or remove --cgroup from the key's forced command\n",
            v1_mount("cpu")
        )
    );
}
