//! The benchmark harness (`bench/compare`, docs/benchmarks.md) in its quick
//! form: one round, small sizes, on the rig. It checks that the harness runs
//! and reports every measure for both setups, never the figures themselves.

use serde_json::Value;

use crate::common::repo_root;

/// A summary the harness writes: median, min, max and the values.
fn assert_summary(path: &str, value: &Value) {
    for key in ["median", "min", "max"] {
        assert!(
            value[key].as_f64().is_some_and(|v| v >= 0.0),
            "{path}.{key} is a non-negative number: {value}"
        );
    }
    let values = value["values"].as_array();
    assert!(
        values.is_some_and(|v| !v.is_empty()),
        "{path}.values is a non-empty list: {value}"
    );
}

fn assert_summaries(path: &str, value: &Value, keys: &[&str]) {
    for key in keys {
        assert_summary(&format!("{path}.{key}"), &value[key]);
    }
}

#[test]
#[ignore = "rig: Docker, sshd and the front nginx (tests/rig/up), bench/compare; scripts/test runs it"]
fn the_quick_benchmark_reports_every_measure() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("results.json");
    let output = std::process::Command::new(repo_root().join("bench/compare"))
        .arg("--quick")
        .arg("--berth")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("--out")
        .arg(&json)
        .output()
        .expect("bench/compare runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench/compare --quick failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("| measure"), "a table on stdout: {stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON results are written");
    let result: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(result["settings"]["quick"], true);
    let machine = &result["machine"];
    assert!(
        machine["cores"].as_u64().is_some_and(|c| c > 0),
        "{machine}"
    );
    assert!(machine["memory_bytes"].as_u64().is_some_and(|m| m > 0));
    for key in ["kernel", "docker", "cpu"] {
        assert!(
            machine[key].as_str().is_some_and(|s| !s.is_empty()),
            "machine.{key}: {machine}"
        );
    }

    let m = &result["measures"];
    for setup in ["baseline", "berth"] {
        assert_summaries(
            &format!("1.{setup}"),
            &m["1_release_under_load"][setup],
            &["failed", "torn", "requests"],
        );
        assert_summaries(
            &format!("2.{setup}"),
            &m["2_kill_active_php"][setup],
            &["failed", "torn", "requests", "host_php_served"],
        );
        assert_summaries(
            &format!("3.{setup}"),
            &m["3_deploy_to_new_version"][setup],
            &["first_new_s", "command_s"],
        );
        assert_summaries(
            &format!("4.{setup}"),
            &m["4_rollback"][setup],
            &["command_s", "first_old_s", "failed", "torn", "requests"],
        );
        for kind in ["kept", "fresh"] {
            assert_summaries(
                &format!("5.{kind}.{setup}"),
                &m["5_redeploy_one_file"][kind][setup],
                &["bytes_sent", "disk_kib"],
            );
        }
        let memory = &m["6_idle_memory"][setup];
        assert_summary(&format!("6.{setup}.per_app_mib"), &memory["per_app_mib"]);
        assert!(
            memory["apps_per_24gib_extrapolated"].as_u64().is_some(),
            "{memory}"
        );
    }
    assert_summaries(
        "1.baseline_no_opcache",
        &m["1_release_under_load"]["baseline_no_opcache"],
        &["failed", "torn", "requests", "first_new_s"],
    );
    assert_summaries(
        "3.berth.steps_s",
        &m["3_deploy_to_new_version"]["berth"]["steps_s"],
        &["sync_code", "compose_up", "health_check", "switch_front"],
    );
    // The load ran: requests were made in every window.
    assert!(m["1_release_under_load"]["berth"]["requests"]["min"].as_f64() > Some(0.0));
    assert!(m["6_idle_memory"]["apps"].as_u64() > Some(0));
    assert_summaries(
        "7.berth",
        &m["7_front_reload"]["berth"],
        &["test_s", "reload_s", "total_s"],
    );
    let costs = &m["8_berth_costs"];
    assert!(costs["binary_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(costs["static"].is_boolean());
    assert_summaries(
        "8",
        costs,
        &["cold_version_ms", "warm_version_ms", "deploy_peak_rss_kib"],
    );
    let targets = result["targets"].as_array().expect("targets listed");
    assert!(targets.iter().all(|t| t["met"].is_boolean()), "{targets:?}");
}
