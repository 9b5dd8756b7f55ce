//! `berth logs` on the rig: container output through the Docker API over
//! SSH, and the front's per-app access log read on the host.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::common::http_request;
use crate::deploy::RigApp;

const BOOM: &str = r#"<?php
error_log("berth-log-probe " . ($_GET['n'] ?? ''));
trigger_error("probe warning", E_USER_WARNING);
echo "ok\n";
"#;

fn logs(app: &RigApp, args: &[&str]) -> Vec<String> {
    let run = app.berth(&["logs"]).args(args).run().expect_code(0);
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
fn php_errors_and_access_lines_appear_with_their_source() {
    let app = RigApp::new("logs");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/boom.php"), BOOM).unwrap();
    app.deploy("v1.0.0", &code).expect_code(0);
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
fn follow_shows_a_line_written_after_it_started_and_ends_on_interrupt() {
    let app = RigApp::new("follow");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect_code(0);
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
