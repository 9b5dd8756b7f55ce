//! The command line as users and pipelines meet it: exit codes, messages,
//! JSON output, and the README's exit-code table.

use berth::exit::ExitStatus;

use crate::common::{app_dir, edit, edit_all, repo_root, Berth, APP_YML, RELEASE_YML};

#[test]
fn validate_accepts_the_skeleton_with_the_example_inventory() {
    let run = Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(&repo_root().join("mgmt-repo-skeleton"))
        .args(["--inventory"])
        .arg_path(&repo_root().join("examples/inventory.yml"))
        .run()
        .expect(ExitStatus::Success);
    run.expect_stdout(
        "valid: app example with 2 environment(s) requested (test, production); inventory of 1 host(s)\n"
    );
}

#[test]
fn validate_reads_the_inventory_from_the_environment() {
    let dir = app_dir(
        RELEASE_YML,
        &edit_all(APP_YML, "host: local", "host: web-9"),
    );
    Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .env(
            "BERTH_INVENTORY",
            repo_root().join("examples/inventory.yml"),
        )
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stderr(
            "error: 2 problems in the configuration:\n\
             <dir>/app.yml:10:11: environments.test.host: host web-9 is not in the host inventory\n  \
             hint: the inventory's hosts are: local\n\
             <dir>/app.yml:14:11: environments.production.host: host web-9 is not in the host inventory\n  \
             hint: the inventory's hosts are: local\n",
        )
        .expect_stdout("");
}

#[test]
fn validate_reports_problems_of_every_file_together() {
    let dir = app_dir(
        "environments:\n  staging:\n    ref: \"v1;id\"\n",
        &edit(APP_YML, "pids: 128", "pids: 1"),
    );
    let run = Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stderr(
            "error: 2 problems in the configuration:\n\
             <dir>/release.yml:3:10: environments.staging.ref: tag \"v1;id\" contains ';', which a tag may not contain\n  \
             hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0\n\
             <dir>/app.yml:20:9: limits.pids: pids \"1\" is out of range\n  \
             hint: use a whole number from 16 to 4096\n",
        );
    // Nothing on stdout in text mode.
    run.expect_stdout("");
}

#[test]
fn validate_names_an_environment_app_yml_does_not_define() {
    let dir = app_dir("environments:\n  staging:\n    ref: v1.0.0\n", APP_YML);
    Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stderr(
            "error: 1 problem in the configuration:\n\
             <dir>/release.yml:2:3: environments.staging: environment staging is not defined in app.yml\n  \
             hint: this app's environments are: test, production\n",
        )
        .expect_stdout("");
}

#[test]
fn validate_json_lists_problems_on_stdout() {
    let dir = app_dir("environments: []\n", APP_YML);
    let run = Berth::new()
        .args(["--output", "json", "validate", "--app-dir"])
        .arg_path(dir.path())
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stdout(
            "{\"ok\":false,\"problems\":[{\"column\":15,\"file\":\"<dir>/release.yml\",\
             \"hint\":\"write a mapping here\",\"key\":\"environments\",\"line\":1,\
             \"message\":\"expected a mapping, found a list\"}]}\n",
        )
        .expect_stderr(
            "error: 1 problem in the configuration:\n\
             <dir>/release.yml:1:15: environments: expected a mapping, found a list\n  \
             hint: write a mapping here\n",
        );
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).expect("stdout is JSON");
    assert_eq!(json["ok"], false);
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stderr(
            "error: 2 problems in the configuration:\n\
             <dir>/release.yml: cannot read: No such file or directory (os error 2)\n  \
             hint: check the path\n\
             <dir>/app.yml: cannot read: No such file or directory (os error 2)\n  \
             hint: check the path\n",
        )
        .expect_stdout("");
}

#[test]
fn gitlab_commands_outside_a_job_name_the_missing_variable_and_exit_4() {
    let dir = crate::common::app_dir(crate::common::RELEASE_YML, crate::common::APP_YML);
    let app_dir = dir.path().to_str().unwrap();
    let merge_request = "error: which merge request? CI_MERGE_REQUEST_IID is not set\n  \
        hint: run in a merge request pipeline, or pass --merge-request IID\n";
    let project = "error: which management project? CI_PROJECT_PATH is not set\n  \
        hint: run in a GitLab job, or pass --project GROUP/APP\n";
    let api = "error: CI_API_V4_URL is not set\n  \
        hint: GitLab sets it in every job; elsewhere set it to https://<gitlab>/api/v4\n";
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--app-dir", app_dir], merge_request),
        (&["plan", "--app-dir", app_dir], merge_request),
        (&["checkout", "--app-dir", app_dir], project),
        (&["report"], project),
        (
            &[
                "app",
                "create",
                "--id",
                "shop",
                "--owner",
                "jane",
                "--ci-config",
                "management.yml@platform/ci-templates:v1.0.0",
            ],
            api,
        ),
        (
            &[
                "request",
                "--app-dir",
                app_dir,
                "--project",
                "deploy/shop",
                "--env",
                "test",
                "--ref",
                "v1.0.0",
            ],
            api,
        ),
    ];
    for (args, expected) in cases {
        eprintln!("berth {args:?}");
        Berth::new()
            .args(*args)
            .run()
            .expect(ExitStatus::NotAvailable)
            .expect_stderr(expected)
            .expect_stdout("");
    }
}

#[test]
fn usage_errors_exit_2() {
    Berth::new()
        .args(["deploy"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: the following required arguments were not provided:\n  --env <ENV>\n\n\
             Usage: berth deploy --env <ENV>\n\nFor more information, try '--help'.\n",
        )
        .expect_stdout("");
    Berth::new()
        .args(["no-such-command"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: unrecognized subcommand 'no-such-command'\n\n\
             Usage: berth [OPTIONS] <COMMAND>\n\nFor more information, try '--help'.\n",
        )
        .expect_stdout("");
    Berth::new()
        .args(["--quiet", "--verbose", "validate"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: the argument '--quiet' cannot be used with '--verbose'\n\n\
             Usage: berth --quiet <COMMAND>\n\nFor more information, try '--help'.\n",
        )
        .expect_stdout("");
    Berth::new()
        .args(["render", "--env", "test", "--out", "x"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: no host inventory given\n  hint: pass --inventory FILE or set BERTH_INVENTORY\n",
        )
        .expect_stdout("");
}

#[test]
fn version_and_help_work() {
    let run = Berth::new()
        .args(["--version"])
        .run()
        .expect(ExitStatus::Success);
    run.expect_stdout(&format!("berth {}\n", env!("CARGO_PKG_VERSION")));
    let run = Berth::new()
        .args(["--help"])
        .run()
        .expect(ExitStatus::Success);
    for command in [
        "validate", "render", "check", "plan", "checkout", "deploy", "rollback", "status", "logs",
        "report", "app", "request", "demo",
    ] {
        assert!(
            run.stdout().contains(&format!("  {command} ")),
            "help lists {command}"
        );
    }
}

#[test]
fn no_color_output_has_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = Berth::new()
        .env("NO_COLOR", "1")
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>")
        .expect_stderr(
            "error: 2 problems in the configuration:\n\
             <dir>/release.yml: cannot read: No such file or directory (os error 2)\n  \
             hint: check the path\n\
             <dir>/app.yml: cannot read: No such file or directory (os error 2)\n  \
             hint: check the path\n",
        );
    assert!(!run.stderr().contains('\x1b'));
}

#[test]
fn readme_exit_code_table_matches_the_enum() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let rows: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = ExitStatus::ALL
        .iter()
        .map(|s| format!("| {} | {} |", s.code(), s.meaning()))
        .collect();
    assert_eq!(rows, expected, "README.md's exit-code table");
}

#[test]
fn a_dry_run_demo_says_what_it_would_do_and_does_nothing() {
    let rig = tempfile::tempdir().unwrap();
    let rig_dir = rig.path().join("rig");
    let run = Berth::new()
        .current_dir(&repo_root())
        .env("BERTH_RIG", &rig_dir)
        .args(["--dry-run", "demo", "--no-wait"])
        .run()
        .expect(ExitStatus::Success);
    let root = repo_root();
    run.expect_stdout(&format!(
        "dry run, nothing was done; berth demo would:\n\
             run {root}/tests/rig/up (apt packages, the runtime image, sshd and the front nginx)\n\
             install this berth as the host's root-run berth (egress policy)\n\
             write the demo app and inventory under {rig}/demo\n\
             release {root}/examples/plugin as v1.0.0 to test on that host, and print its URL\n",
        root = root.display(),
        rig = rig_dir.display()
    ));
    assert!(!rig_dir.exists(), "the dry run made {}", rig_dir.display());
}

#[test]
fn validate_shows_escape_sequences_in_yaml_keys_instead_of_sending_them() {
    // A key holding a newline and an OSC "set window title" sequence
    // (ESC ] 0 ; title BEL) reaches the error output only as escapes.
    let release = format!("{RELEASE_YML}\"x\\n\\e]0;title\\a\": 1\n");
    let dir = app_dir(&release, APP_YML);
    let run = Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .args(["--inventory"])
        .arg_path(&repo_root().join("examples/inventory.yml"))
        .run()
        .expect(ExitStatus::InvalidInput)
        .placeholder(dir.path(), "<dir>");
    let line = RELEASE_YML.lines().count() + 1;
    let run = run.expect_stderr(&format!(
        "error: 1 problem in the configuration:\n<dir>/release.yml:{line}:1: x\\n\\u{{1b}}]0;title\\u{{7}}: unknown key \"x\\n\\u{{1b}}]0;title\\u{{7}}\"\n  hint: known keys here: environments\n",
    ));
    assert!(!run
        .output
        .stderr
        .iter()
        .any(|b| *b == 0x1b || *b == 0x07 || *b == 0x9d));
    run.expect_stdout("");
}

#[test]
fn logs_refuses_a_since_with_a_multibyte_unit_before_connecting() {
    // `--since '1é'` used to panic (exit 101) slicing inside `é`.
    let run = Berth::new()
        .args(["logs", "--env", "test", "--since", "1é", "--app-dir"])
        .arg_path(&repo_root().join("mgmt-repo-skeleton"))
        .args(["--inventory"])
        .arg_path(&repo_root().join("examples/inventory.yml"))
        .args(["--ssh-key", "/nonexistent/key"])
        .run()
        .expect(ExitStatus::Usage);
    run.expect_stderr(
        "error: --since: \"1\\u{e9}\" is not a duration\n  hint: write a whole number with s, m, h or d, e.g. 15m or 2h\n"
    );
}

#[test]
fn demo_refuses_code_that_is_not_a_directory_before_doing_anything() {
    let rig_dir = tempfile::tempdir().unwrap().path().join("rig");
    Berth::new()
        .current_dir(&repo_root())
        .env("BERTH_RIG", &rig_dir)
        .args(["--dry-run", "demo", "--no-wait", "--code", "/nonexistent/plugin"])
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr("error: --code /nonexistent/plugin: not a directory\n  hint: give the checkout of your plugin (the directory with its docroot)\n");
    assert!(!rig_dir.exists());
}
