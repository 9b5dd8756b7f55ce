//! The app's secrets (`BERTH_SECRET_*` CI/CD variables) reach its PHP as
//! environment variables, and nowhere else: not the output, not a rendered
//! file, not the web container, not a file another user can read.

use berth::exit::ExitStatus;

use crate::common::http_request;
use crate::deploy::RigApp;

const SHOW: &str = r#"<?php
header('Content-Type: text/plain');
echo json_encode(['API_KEY' => getenv('API_KEY'), 'DB_PASSWORD' => getenv('DB_PASSWORD')]);
"#;

const API_KEY: &str = "k3y-$HOME-'quoted\"-value";
const DB_PASSWORD: &str = "pa55-w0rd-#not-a-comment";

fn shown(app: &RigApp) -> serde_json::Value {
    let (status, body) =
        http_request(app.rig.front_port(), &app.domain, "GET", "/secret.php", "").unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn secrets_reach_php_and_nothing_else() {
    let app = RigApp::new("secrets");
    let code = app.code("v1.0.0", true);
    std::fs::write(code.join("public/secret.php"), SHOW).unwrap();
    app.request("v1.0.0");
    let run = app
        .berth(&["--verbose", "deploy", "--health-timeout", "20"])
        .args(["--code"])
        .arg_path(&code)
        .env("BERTH_SECRET_API_KEY", API_KEY)
        .env("BERTH_SECRET_DB_PASSWORD", DB_PASSWORD)
        .run()
        .expect(ExitStatus::Success);
    assert_eq!(
        shown(&app),
        serde_json::json!({"API_KEY": API_KEY, "DB_PASSWORD": DB_PASSWORD}),
        "literal values, nothing interpreted"
    );
    let output = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        output.contains("write the secrets API_KEY, DB_PASSWORD to "),
        "{output}"
    );
    for value in [API_KEY, DB_PASSWORD] {
        assert!(
            !output.contains(value),
            "a value in berth's output: {output}"
        );
    }

    // On the host: one file, mode 0600, owned by the deploy user; no
    // rendered file holds a value.
    let env_dir = std::path::Path::new(app.rig.get("RIG_BASE_DIR"))
        .join(&app.id)
        .join("test");
    let file = env_dir.join("secrets-blue.env");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let deploy_uid = std::process::Command::new("id")
        .args(["-u", "deploy"])
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta).to_string(),
        String::from_utf8_lossy(&deploy_uid.stdout).trim()
    );
    let conf = env_dir.join("releases/v1.0.0/conf-blue");
    for entry in std::fs::read_dir(&conf).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for value in [API_KEY, DB_PASSWORD] {
            assert!(!text.contains(value), "{} holds a value", path.display());
        }
    }

    // Only the php container has them.
    let env_of = |role: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{json .Config.Env}}"])
            .arg(format!("berth-{}-test-blue_{role}_1", app.id))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(env_of("php").contains("API_KEY="), "{}", env_of("php"));
    assert!(!env_of("web").contains("API_KEY="), "{}", env_of("web"));

    // A secret the admin removed is gone with the next release.
    let v2 = app.code("v2.0.0", true);
    std::fs::write(v2.join("public/secret.php"), SHOW).unwrap();
    app.request("v2.0.0");
    app.berth(&["deploy", "--health-timeout", "20"])
        .args(["--code"])
        .arg_path(&v2)
        .env("BERTH_SECRET_API_KEY", "rotated-value-2")
        .run()
        .expect(ExitStatus::Success);
    assert_eq!(
        shown(&app),
        serde_json::json!({"API_KEY": "rotated-value-2", "DB_PASSWORD": false})
    );
}

#[test]
fn a_secret_that_cannot_be_passed_on_is_refused_by_name() {
    let run = crate::common::Berth::new()
        .args([
            "deploy",
            "--env",
            "test",
            "--ssh-key",
            "/nonexistent",
            "--app-dir",
        ])
        .arg_path(&crate::common::repo_root().join("mgmt-repo-skeleton"))
        .args(["--inventory"])
        .arg_path(&crate::common::repo_root().join("examples/inventory.yml"))
        .env("BERTH_SECRET_db", "value-that-must-not-print")
        .run()
        .expect(ExitStatus::Usage);
    run.expect_stderr("error: CI/CD variable BERTH_SECRET_db: the secret's name must be 1-64 of A-Z, 0-9 and _, starting with a letter\n  hint: fix the variable in the management project's Settings > CI/CD > Variables\n");
}
