//! `berth app create` and `berth request` against the fake GitLab.

use std::collections::BTreeSet;
use std::time::Instant;

use base64::Engine as _;
use berth::exit::ExitStatus;
use serde_json::{json, Value};

use crate::common::Berth;
use crate::fake::{encoded, git, FakeGitLab, ROOT_TOKEN};

const DEV_TOKEN: &str = "dee-token";
const CI_CONFIG: &str = "management.yml@platform/ci-templates:v1.0.0";

const ALLOCATIONS: &str = "\
hosts:
  web-1:
    environments: [test, production]
    ports: {first: 18000, last: 18099}
  web-2:
    environments: [production]
    ports: {first: 19000, last: 19099}
apps: {}
";

/// A fake with the developer `dee`, the three groups and a fleet
/// repository holding an empty allocations file.
fn fake() -> FakeGitLab {
    let fake = FakeGitLab::start(json!({
        "users": [{"username": "dee", "name": "Dee Veloper", "email": "dee@example.com"}],
        "tokens": [{"token": DEV_TOKEN, "user": "dee", "scopes": ["api"], "kind": "personal"}],
        "groups": [{"path": "plugins", "name": "Plugins"}, {"path": "deploy", "name": "Deploy"},
                   {"path": "platform", "name": "Platform"}],
        "projects": [{"path": "platform/fleet", "initialize_with_readme": true}],
    }));
    fake.write_file(ROOT_TOKEN, "platform/fleet", "allocations.yml", ALLOCATIONS);
    fake.clear_log();
    fake
}

/// `berth app create` as the fleet pipeline runs it, with the admin's
/// personal access token (project access tokens cannot make tokens).
fn app_create(fake: &FakeGitLab, id: &str) -> Berth {
    fake.berth(ROOT_TOKEN, "platform/fleet").args([
        "app",
        "create",
        "--id",
        id,
        "--owner",
        "dee",
        "--ci-config",
        CI_CONFIG,
    ])
}

/// The writes a run shows on stderr, one line each, as `--dry-run` plans
/// them.
fn writes_shown(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            ["POST ", "PUT ", "DELETE ", "PUSH "]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .map(str::to_string)
        .collect()
}

/// Today (UTC) as GitLab writes dates, `days` ahead.
fn date_in(days: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    berth::plan::gitlab::Date::from_unix_days((secs / 86_400) as i64)
        .plus_days(days)
        .to_string()
}

/// `(name, active, access_level)` of the management repository's access
/// tokens and `(name, active)` of the code repository's deploy tokens.
fn tokens(fake: &FakeGitLab, id: &str) -> Value {
    let access: Vec<Value> = get(fake, &format!("/projects/deploy%2F{id}/access_tokens"))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["name"], t["active"], t["access_level"]]))
        .collect();
    let deploy: Vec<Value> = get(fake, &format!("/projects/plugins%2F{id}/deploy_tokens"))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!([
                t["name"],
                !t["revoked"].as_bool().unwrap() && !t["expired"].as_bool().unwrap()
            ])
        })
        .collect();
    json!({"access": access, "deploy": deploy})
}

fn get(fake: &FakeGitLab, path: &str) -> Value {
    fake.ok(ROOT_TOKEN, "GET", path, Value::Null)
}

fn user_id(fake: &FakeGitLab, name: &str) -> u64 {
    get(fake, &format!("/users?username={name}"))[0]["id"]
        .as_u64()
        .unwrap()
}

/// `(env, host, blue, green)` of every app in the allocations file.
fn allocations(fake: &FakeGitLab) -> Vec<(String, String, String, u16, u16)> {
    let text = fake
        .file(ROOT_TOKEN, "platform/fleet", "allocations.yml", "main")
        .unwrap();
    let parsed = berth::plan::allocation::Allocations::parse("allocations.yml", &text).unwrap();
    parsed
        .apps
        .iter()
        .flat_map(|app| {
            app.environments.iter().map(|e| {
                (
                    app.app.to_string(),
                    e.env.to_string(),
                    e.host.to_string(),
                    e.ports[0].get(),
                    e.ports[1].get(),
                )
            })
        })
        .collect()
}

/// What `app create` leaves in GitLab, without the values that differ
/// from run to run (key material, commit ids, timestamps).
fn end_state(fake: &FakeGitLab, id: &str) -> Value {
    let dee = user_id(fake, "dee");
    let code = format!("plugins%2F{id}");
    let mgmt = format!("deploy%2F{id}");
    let project = |p: &str| {
        let v = get(fake, &format!("/projects/{p}"));
        json!({"default_branch": v["default_branch"], "visibility": v["visibility"],
               "ci_config_path": v["ci_config_path"],
               "restrict_user_defined_variables": v["restrict_user_defined_variables"],
               "only_allow_merge_if_pipeline_succeeds": v["only_allow_merge_if_pipeline_succeeds"]})
    };
    let member =
        |p: &str| get(fake, &format!("/projects/{p}/members/all/{dee}"))["access_level"].clone();
    let mut variables: Vec<Value> = get(fake, &format!("/projects/{mgmt}/variables"))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!({"key": v["key"], "protected": v["protected"], "masked": v["masked"]}))
        .collect();
    variables.sort_by_key(|v| v["key"].as_str().unwrap().to_string());
    let protection = get(fake, &format!("/projects/{mgmt}/protected_branches/main"));
    let levels = |kind: &str| {
        protection[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["access_level"].clone())
            .collect::<Vec<_>>()
    };
    let mut tree: Vec<Value> = get(fake, &format!("/projects/{mgmt}/repository/tree?ref=main"))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["path"], e["type"], e["mode"]]))
        .collect();
    tree.sort_by_key(|e| e.to_string());
    json!({
        "code": project(&code), "management": project(&mgmt),
        "code_member": member(&code), "management_member": member(&mgmt),
        "variables": variables,
        "protection": {"push": levels("push_access_levels"), "merge": levels("merge_access_levels"),
                       "force": protection["allow_force_push"]},
        "tree": tree,
        "app_yml": fake.file(ROOT_TOKEN, &format!("deploy/{id}"), "app.yml", "main"),
        "release_yml": fake.file(ROOT_TOKEN, &format!("deploy/{id}"), "release.yml", "main"),
        "gitmodules": fake.file(ROOT_TOKEN, &format!("deploy/{id}"), ".gitmodules", "main"),
        "allocations": fake.file(ROOT_TOKEN, "platform/fleet", "allocations.yml", "main"),
        "logs_key_recorded": fake.file(ROOT_TOKEN, "platform/fleet", &format!("logs-keys/{id}.pub"), "main").is_some(),
        "records": get(fake, &format!("/projects/{mgmt}/protected_tags/deployed%2F*"))["create_access_levels"][0]["access_level"],
        "tokens": tokens(fake, id),
    })
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn app_create_sets_up_both_repositories_and_a_second_run_writes_nothing() {
    let fake = fake();
    let dotenv = fake.dir.path().join("app.env");
    let run = app_create(&fake, "shop")
        .env("BERTH_DOTENV", &dotenv)
        .run()
        .expect(ExitStatus::Success);
    let first_calls = fake.api_requests().len();
    let first_writes = fake.api_writes().len();
    let first_shown = writes_shown(&run.stderr());
    // Every write is shown as it is done, one line each (and the push).
    assert_eq!(first_shown.len(), first_writes + 1, "{}", run.stderr());
    let dee = user_id(&fake, "dee");

    // The code repository, with the developer as a Developer.
    let code = get(&fake, "/projects/plugins%2Fshop");
    assert_eq!(code["visibility"], "private");
    assert!(fake
        .file(ROOT_TOKEN, "plugins/shop", "README.md", "main")
        .is_some());
    let member = get(&fake, &format!("/projects/plugins%2Fshop/members/{dee}"));
    assert_eq!(member["access_level"], 30);

    // The management repository: settings, member, protection.
    let mgmt = get(&fake, "/projects/deploy%2Fshop");
    assert_eq!(mgmt["ci_config_path"], CI_CONFIG);
    assert_eq!(mgmt["restrict_user_defined_variables"], true);
    assert_eq!(mgmt["only_allow_merge_if_pipeline_succeeds"], true);
    assert_eq!(mgmt["default_branch"], "main");
    let member = get(&fake, &format!("/projects/deploy%2Fshop/members/{dee}"));
    assert_eq!(member["access_level"], 30);
    let protection = get(&fake, "/projects/deploy%2Fshop/protected_branches/main");
    assert_eq!(protection["push_access_levels"][0]["access_level"], 40);
    assert_eq!(protection["merge_access_levels"][0]["access_level"], 40);
    assert_eq!(protection["allow_force_push"], false);

    // Variables: the app id in the clear, the logs key masked but not
    // protected (the developer's logs job runs on branches).
    let app_var = get(&fake, "/projects/deploy%2Fshop/variables/BERTH_APP");
    assert_eq!(
        (&app_var["value"], &app_var["masked"], &app_var["protected"]),
        (&json!("shop"), &json!(false), &json!(false))
    );
    let key_var = get(&fake, "/projects/deploy%2Fshop/variables/BERTH_LOGS_KEY");
    assert_eq!(
        (&key_var["masked"], &key_var["protected"]),
        (&json!(true), &json!(false))
    );
    let private = base64::engine::general_purpose::STANDARD
        .decode(key_var["value"].as_str().unwrap())
        .unwrap();
    assert!(private.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(
        !run.stdout().contains(key_var["value"].as_str().unwrap())
            && !run.stderr().contains(key_var["value"].as_str().unwrap()),
        "the key's value is never printed"
    );
    // The public key in the fleet repository belongs to that private key.
    let key_file = fake.dir.path().join("logs-key");
    std::fs::write(&key_file, &private).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let derived = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key_file)
        .output()
        .unwrap();
    let derived = String::from_utf8(derived.stdout).unwrap();
    let recorded = fake
        .file(ROOT_TOKEN, "platform/fleet", "logs-keys/shop.pub", "main")
        .unwrap();
    let key_of = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(key_of(&recorded), key_of(&derived));
    assert!(
        run.stdout().contains(&format!(
            "restrict,command=\"berth serve-logs --app shop --base-dir /srv/berth --log-dir /var/log/nginx/berth\" {}",
            key_of(&recorded)
        )),
        "{}",
        run.stdout()
    );

    // The allocation, and app.yml made from it.
    assert_eq!(
        allocations(&fake),
        [
            ("shop".into(), "test".into(), "web-1".into(), 18000, 18001),
            (
                "shop".into(),
                "production".into(),
                "web-2".into(),
                19000,
                19001
            ),
        ]
    );
    let app_yml = fake
        .file(ROOT_TOKEN, "deploy/shop", "app.yml", "main")
        .unwrap();
    for expected in [
        "id: shop\n",
        "owner: dee\n",
        "code_repo: plugins/shop\n",
        "  test:\n    host: web-1\n    ports: [18000, 18001]\n    domains: [shop.test.berth.localhost]\n",
        "  production:\n    host: web-2\n    ports: [19000, 19001]\n    domains: [shop.berth.localhost]\n",
        "limits:\n",
    ] {
        assert!(app_yml.contains(expected), "{expected:?} in\n{app_yml}");
    }
    Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(&{
            let dir = fake.dir.path().join("mgmt-files");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("app.yml"), &app_yml).unwrap();
            let release = fake
                .file(ROOT_TOKEN, "deploy/shop", "release.yml", "main")
                .unwrap();
            std::fs::write(dir.join("release.yml"), release).unwrap();
            dir
        })
        .run()
        .expect(ExitStatus::Success);

    // codes/ is a submodule at the code repository's HEAD.
    let head =
        get(&fake, "/projects/plugins%2Fshop/repository/branches/main")["commit"]["id"].clone();
    let tree = get(&fake, "/projects/deploy%2Fshop/repository/tree?ref=main");
    let codes = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "codes")
        .expect("codes in the tree");
    assert_eq!(
        (&codes["type"], &codes["mode"], &codes["id"]),
        (&json!("commit"), &json!("160000"), &head)
    );
    assert_eq!(
        fake.file(ROOT_TOKEN, "deploy/shop", ".gitmodules", "main")
            .unwrap(),
        "[submodule \"codes\"]\n\tpath = codes\n\turl = ../../plugins/shop.git\n"
    );
    // No pipeline file: every pipeline comes from ci_config_path, and a
    // merge request pipeline can never run a branch's own file.
    assert_eq!(
        fake.file(ROOT_TOKEN, "deploy/shop", ".gitlab-ci.yml", "main"),
        None
    );
    let clone = fake.dir.path().join("clone");
    git(
        fake.dir.path(),
        &[
            "clone",
            "-q",
            &fake.git_url(ROOT_TOKEN, "deploy/shop"),
            clone.to_str().unwrap(),
        ],
    );
    let url = fake.git_url(ROOT_TOKEN, "plugins/shop");
    git(&clone, &["config", "submodule.codes.url", &url]);
    git(&clone, &["submodule", "-q", "update", "--init"]);
    assert!(clone.join("codes/README.md").is_file());

    // The app's tokens (docs/gitlab.md): two project access tokens of the
    // management repository, a deploy token of the code repository, each in
    // its variable, expiring in a year (GitLab's maximum: 365 days).
    let access = get(&fake, "/projects/deploy%2Fshop/access_tokens");
    let access_token = |name: &str| {
        access
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no access token {name}: {access}"))
            .clone()
    };
    for (name, level) in [("berth-mr", 20), ("berth-main", 40)] {
        let token = access_token(name);
        assert_eq!(
            (&token["access_level"], &token["scopes"], &token["active"]),
            (&json!(level), &json!(["api"]), &json!(true)),
            "{token}"
        );
        assert_eq!(token["expires_at"], date_in(365));
    }
    let deploy = get(&fake, "/projects/plugins%2Fshop/deploy_tokens");
    let deploy = &deploy[0];
    assert_eq!(
        (&deploy["name"], &deploy["scopes"]),
        (&json!("berth-shop"), &json!(["read_repository"]))
    );
    assert!(deploy["expires_at"]
        .as_str()
        .unwrap()
        .starts_with(&date_in(365)));
    let variable = |key: &str| get(&fake, &format!("/projects/deploy%2Fshop/variables/{key}"));
    let flags = |key: &str| {
        let v = variable(key);
        (
            v["masked"].as_bool().unwrap(),
            v["protected"].as_bool().unwrap(),
        )
    };
    // Merge request pipelines need the Reporter token and the code reader.
    assert_eq!(flags("BERTH_MR_TOKEN"), (true, false));
    assert_eq!(flags("BERTH_GITLAB_TOKEN"), (true, true));
    assert_eq!(flags("BERTH_CODE_USER"), (false, false));
    assert_eq!(flags("BERTH_CODE_TOKEN"), (true, false));
    let value = |key: &str| variable(key)["value"].as_str().unwrap().to_string();
    let (mr, main) = (value("BERTH_MR_TOKEN"), value("BERTH_GITLAB_TOKEN"));
    let (code_user, code_token) = (value("BERTH_CODE_USER"), value("BERTH_CODE_TOKEN"));
    assert_eq!(code_user, deploy["username"]);
    for secret in [&mr, &main, &code_token] {
        assert!(
            !run.stdout().contains(secret.as_str()) && !run.stderr().contains(secret.as_str()),
            "a token's value is never printed"
        );
    }
    // Each variable holds a working token of its role: the bots are
    // members of the management repository only.
    for (token, level) in [(&mr, 20), (&main, 40)] {
        let bot = fake.ok(token, "GET", "/user", Value::Null);
        let member = get(
            &fake,
            &format!("/projects/deploy%2Fshop/members/all/{}", bot["id"]),
        );
        assert_eq!(member["access_level"], level, "{bot}");
    }
    // Release records: only berth's Maintainer token creates them; neither
    // the merge request token nor the developer can.
    let record = json!({"tag_name": "deployed/test/1", "ref": "main", "message": "record"});
    let tags = "/projects/deploy%2Fshop/repository/tags";
    for (who, token) in [
        ("BERTH_MR_TOKEN", mr.as_str()),
        ("the developer", DEV_TOKEN),
    ] {
        let (status, body) = fake.call(token, "POST", tags, record.clone());
        assert!(matches!(status, 400 | 403), "{who}: {status} {body}");
    }
    fake.ok(&main, "POST", tags, record);
    // The deploy token reads the code repository over git, and nothing
    // else. Its credentials go in a header set through the environment, so
    // no failure message can show them.
    let ls_remote = |project: &str| {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{code_user}:{code_token}"));
        std::process::Command::new("git")
            .args(["ls-remote", "-q", &format!("{}/{project}.git", fake.url)])
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            )
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ls_remote("plugins/shop"), "the deploy token reads the code");
    assert!(!ls_remote("deploy/shop"), "and nothing else");

    // The job's outputs.
    let outputs = std::fs::read_to_string(&dotenv).unwrap();
    for line in [
        "BERTH_APP=shop",
        "BERTH_MANAGEMENT_PROJECT=deploy/shop",
        "BERTH_CODE_PROJECT=plugins/shop",
        "BERTH_TEST_HOST=web-1",
        "BERTH_TEST_PORTS=18000,18001",
        "BERTH_PRODUCTION_PORTS=19000,19001",
    ] {
        assert!(outputs.lines().any(|l| l == line), "{line} in\n{outputs}");
    }

    // Again: nothing is written, over the API or git.
    let before = end_state(&fake, "shop");
    fake.clear_log();
    fake.control("DELETE", "/__fake/requests", Value::Null);
    let again = app_create(&fake, "shop").run().expect(ExitStatus::Success);
    let second_calls = fake.api_requests().len();
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    let pushes = fake.control("GET", "/__fake/requests?kind=git", Value::Null);
    assert!(
        !pushes.to_string().contains("receive-pack"),
        "no git push: {pushes}"
    );
    assert_eq!(end_state(&fake, "shop"), before);
    assert!(again.stdout().contains("restrict,command="));
    assert_eq!(writes_shown(&again.stderr()), Vec::<String>::new());
    // The tokens were kept, not replaced.
    let ids = |tokens: &Value| -> Vec<Value> {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect()
    };
    let access_after = get(&fake, "/projects/deploy%2Fshop/access_tokens");
    assert_eq!(ids(&access_after), ids(&access));
    assert_eq!(variable("BERTH_MR_TOKEN")["value"], json!(mr));
    eprintln!(
        "app create: first run {first_calls} API calls ({first_writes} writes and a git push), second run {second_calls} calls, 0 writes"
    );
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn twenty_onboardings_at_once_get_twenty_distinct_port_pairs() {
    let fake = fake();
    let started = Instant::now();
    let runs: Vec<_> = (1..=20)
        .map(|n| app_create(&fake, &format!("app-{n}")).spawn())
        .collect();
    for run in runs {
        run.wait().expect(ExitStatus::Success);
    }
    let elapsed = started.elapsed();
    let allocated = allocations(&fake);
    let apps: BTreeSet<&str> = allocated.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(apps.len(), 20, "{allocated:?}");
    assert_eq!(allocated.len(), 40, "two environments each");
    let mut ports = BTreeSet::new();
    for (app, env, host, blue, green) in &allocated {
        for port in [blue, green] {
            assert!(
                ports.insert((host.clone(), *port)),
                "{app} {env}: port {port} on {host} given twice"
            );
        }
        // Each management repository says what the fleet allocated.
        let app_yml = fake
            .file(ROOT_TOKEN, &format!("deploy/{app}"), "app.yml", "main")
            .unwrap();
        assert!(
            app_yml.contains(&format!(
                "  {env}:\n    host: {host}\n    ports: [{blue}, {green}]\n"
            )),
            "{app}: {app_yml}"
        );
    }
    let conflicts = fake
        .api_requests()
        .iter()
        .filter(|r| r["method"] == "POST" && r["status"] == 400)
        .count();
    eprintln!(
        "20 parallel app creates: {:.1} s, {conflicts} allocation commits refused and retried",
        elapsed.as_secs_f64()
    );
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn a_500_in_the_middle_of_onboarding_fails_naming_the_endpoint_and_a_rerun_converges() {
    let reference = fake();
    app_create(&reference, "shop")
        .run()
        .expect(ExitStatus::Success);

    let fake = fake();
    // Every attempt at setting a variable fails (the client tries 8 times;
    // Retry-After: 0 keeps the test fast).
    fake.fault(
        json!({"method": "POST", "path": "/projects/deploy%2Fshop/variables$",
                      "status": 500, "count": 8, "retry_after": 0}),
    );
    let failed = app_create(&fake, "shop").run().expect(ExitStatus::Failure);
    assert!(
        failed
            .stderr()
            .contains("GitLab POST projects/deploy%2Fshop/variables: 500"),
        "{}",
        failed.stderr()
    );
    // It got as far as the allocation and the management repository.
    assert_eq!(allocations(&fake).len(), 2);
    let (status, _) = fake.call(
        ROOT_TOKEN,
        "GET",
        "/projects/deploy%2Fshop/variables/BERTH_APP",
        Value::Null,
    );
    assert_eq!(status, 404);

    app_create(&fake, "shop").run().expect(ExitStatus::Success);
    assert_eq!(end_state(&fake, "shop"), end_state(&reference, "shop"));
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn a_429_storm_during_app_create_is_waited_out() {
    let fake = fake();
    fake.storm(6, 1);
    let started = Instant::now();
    let run = app_create(&fake, "shop").run().expect(ExitStatus::Success);
    let throttled = fake
        .api_requests()
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(throttled, 6);
    assert!(run.stderr().contains("answered 429"), "{}", run.stderr());
    // Retry-After: 1, six times; berth's own backoff would have waited
    // 0.5 + 1 + 2 + 4 + 8 + 16 s.
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        (6.0..20.0).contains(&elapsed),
        "Retry-After honoured: {elapsed:.1} s"
    );
    eprintln!("app create through six 429s: {elapsed:.1} s");
    assert_eq!(allocations(&fake).len(), 2);
    assert!(fake
        .file(ROOT_TOKEN, "platform/fleet", "logs-keys/shop.pub", "main")
        .is_some());
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn dry_run_prints_the_writes_the_run_then_makes_and_makes_none() {
    let fake = fake();
    let dry_run = |fake: &FakeGitLab| {
        fake.berth(ROOT_TOKEN, "platform/fleet")
            .args([
                "--dry-run",
                "app",
                "create",
                "--id",
                "shop",
                "--owner",
                "dee",
            ])
            .args(["--ci-config", CI_CONFIG])
            .run()
            .expect(ExitStatus::Success)
    };
    let dry = dry_run(&fake);
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    let git_log = fake.control("GET", "/__fake/requests?kind=git", Value::Null);
    assert_eq!(git_log, json!([]));
    let planned: Vec<String> = dry.stdout().lines().map(str::to_string).collect();
    assert!(
        planned[0].starts_with("POST projects/platform%2Ffleet/repository/commits  branch=main commit_message=\"Allocate shop: test on web-1 ports 18000/18001 (shop.test.berth.localhost), production on web-2 ports 19000/19001 (shop...."),
        "{}",
        dry.stdout()
    );
    assert_eq!(planned.len(), 18, "{}", dry.stdout());
    assert!(planned.iter().all(|l| !l.contains("BEGIN OPENSSH")));
    let reads = fake.api_requests().len();

    // The run does exactly what the dry run said, in the same order.
    let real = app_create(&fake, "shop").run().expect(ExitStatus::Success);
    assert_eq!(writes_shown(&real.stderr()), planned);
    fake.clear_log();
    let again = dry_run(&fake);
    assert_eq!(again.stdout(), "no GitLab writes\n");
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    eprintln!(
        "app create --dry-run: {} writes planned from {reads} reads; onboarded: {} reads",
        planned.len(),
        fake.api_requests().len()
    );
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn deleting_a_token_variable_rotates_that_token_and_nothing_else() {
    let fake = fake();
    app_create(&fake, "shop").run().expect(ExitStatus::Success);
    let before = get(&fake, "/projects/deploy%2Fshop/access_tokens");
    let old = before
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "berth-mr")
        .unwrap()
        .clone();
    let old_value = get(&fake, "/projects/deploy%2Fshop/variables/BERTH_MR_TOKEN")["value"].clone();
    fake.ok(
        ROOT_TOKEN,
        "DELETE",
        "/projects/deploy%2Fshop/variables/BERTH_MR_TOKEN",
        Value::Null,
    );
    fake.clear_log();
    let run = app_create(&fake, "shop").run().expect(ExitStatus::Success);
    let shown = writes_shown(&run.stderr());
    assert_eq!(
        shown,
        [
            format!("POST projects/deploy%2Fshop/access_tokens  name=berth-mr access_level=20 scopes=api expires_at={}", date_in(365)),
            "POST projects/deploy%2Fshop/variables  key=BERTH_MR_TOKEN value=[secret]<-access_token:berth-mr protected=false masked=true".to_string(),
            format!("DELETE projects/deploy%2Fshop/access_tokens/{}  name=berth-mr", old["id"]),
        ]
    );
    let new_value = get(&fake, "/projects/deploy%2Fshop/variables/BERTH_MR_TOKEN")["value"].clone();
    assert_ne!(new_value, old_value);
    let (status, _) = fake.call(old_value.as_str().unwrap(), "GET", "/user", Value::Null);
    assert_eq!(status, 401, "the old token is revoked");
    fake.ok(new_value.as_str().unwrap(), "GET", "/user", Value::Null);
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn a_write_that_finds_its_object_made_meanwhile_makes_app_create_look_again() {
    let reference = fake();
    app_create(&reference, "shop")
        .run()
        .expect(ExitStatus::Success);

    let fake = fake();
    // The code repository's creation is answered as if another run had
    // made it (GitLab's duplicate-path answer) and not done: berth reads
    // GitLab again, plans again and creates it in a second round.
    fake.fault(json!({"method": "POST", "path": "/projects$", "status": 400,
                      "body": {"message": {"name": ["has already been taken"], "path": ["has already been taken"]}}}));
    let run = app_create(&fake, "shop").run().expect(ExitStatus::Success);
    assert!(
        run.stderr()
            .contains("POST projects  path=plugins/shop namespace_id=3 visibility=private initialize_with_readme=true default_branch=main: already there, made meanwhile; reading GitLab again"),
        "{}",
        run.stderr()
    );
    assert_eq!(end_state(&fake, "shop"), end_state(&reference, "shop"));
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn a_developer_who_maintains_the_deploy_group_is_refused_before_any_write() {
    let fake = fake();
    fake.control(
        "POST",
        "/__fake/seed",
        json!({"groups": [{"path": "deploy", "name": "Deploy", "members": {"dee": 40}}]}),
    );
    fake.clear_log();
    app_create(&fake, "shop")
        .run()
        .expect(ExitStatus::Usage)
        .expect_stderr(
            "error: dee has Maintainer or higher access to deploy/shop: they could change its CI \
             configuration and merge their own releases\n  \
             hint: remove them from the deploy group (or lower their role) so that they are a \
             Developer of the management repository only\n",
        )
        .expect_stdout("");
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
}

/// An onboarded app `shop` whose code repository has the tag v1.4.0.
fn onboarded() -> FakeGitLab {
    let fake = fake();
    app_create(&fake, "shop").run().expect(ExitStatus::Success);
    fake.push_code(
        ROOT_TOKEN,
        "plugins/shop",
        &[("public/index.php", "<?php echo 1;")],
        &["v1.4.0"],
    );
    fake.clear_log();
    fake
}

fn request(fake: &FakeGitLab, env: &str, tag: &str) -> Berth {
    fake.berth(DEV_TOKEN, "deploy/shop")
        .args(["request", "--env", env, "--ref", tag])
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn request_opens_a_merge_request_that_changes_only_release_yml() {
    let fake = onboarded();
    // From a checkout of the management repository: the project comes from
    // its origin remote.
    let checkout = fake.dir.path().join("checkout");
    git(
        fake.dir.path(),
        &[
            "clone",
            "-q",
            &fake.git_url(DEV_TOKEN, "deploy/shop"),
            checkout.to_str().unwrap(),
        ],
    );
    let run = Berth::new()
        .env("CI_API_V4_URL", fake.api())
        .env("BERTH_GITLAB_TOKEN", DEV_TOKEN)
        .current_dir(&checkout)
        .args(["request", "--env", "test", "--ref", "v1.4.0"])
        .run()
        .expect(ExitStatus::Success);
    // Five reads (project, app.yml, release.yml, the tag, open merge
    // requests), the commit and the merge request.
    let calls = fake.api_requests().len();
    assert_eq!((calls, fake.api_writes().len()), (7, 2));
    let requests = get(&fake, "/projects/deploy%2Fshop/merge_requests?state=opened");
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 1);
    let mr = &requests[0];
    assert_eq!(mr["title"], "Release v1.4.0 to test");
    assert_eq!(mr["source_branch"], "release/test-v1.4.0");
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(mr["author"]["username"], "dee");
    let description = mr["description"].as_str().unwrap();
    assert!(description.contains("What happens next"), "{description}");
    assert!(
        description
            .lines()
            .all(|l| !l.trim_start().starts_with('/')),
        "no line can be a quick action"
    );
    assert!(
        run.stdout().contains(mr["web_url"].as_str().unwrap()),
        "{}",
        run.stdout()
    );
    let diffs = get(
        &fake,
        &format!("/projects/deploy%2Fshop/merge_requests/{}/diffs", mr["iid"]),
    );
    let paths: Vec<&str> = diffs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["new_path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["release.yml"]);
    let diff = diffs[0]["diff"].as_str().unwrap();
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    // The tag and the commit it names: what the admin approves.
    let commit = get(&fake, "/projects/plugins%2Fshop/repository/tags/v1.4.0")["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pin = format!("+    commit: {commit}");
    assert_eq!(
        changed,
        ["-    ref: v1.0.0", "+    ref: v1.4.0", pin.as_str()],
        "{diff}"
    );
    let on_branch = fake
        .file(
            DEV_TOKEN,
            "deploy/shop",
            "release.yml",
            "release%2Ftest-v1.4.0",
        )
        .unwrap();
    assert!(on_branch.contains(&format!(
        "  test:\n    ref: v1.4.0\n    commit: {commit}\n  production:\n    ref: v1.0.0\n"
    )));
    assert!(description.contains(&commit), "{description}");

    // Asking again shows the open merge request and writes nothing.
    fake.clear_log();
    let again = request(&fake, "test", "v1.4.0")
        .run()
        .expect(ExitStatus::Success);
    assert!(
        again.stdout().contains("already open"),
        "{}",
        again.stdout()
    );
    assert!(again.stdout().contains(mr["web_url"].as_str().unwrap()));
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    eprintln!(
        "berth request: {calls} API calls (2 writes); asked again: {} reads",
        fake.api_requests().len()
    );
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn request_pins_the_commit_an_annotated_tag_names_and_dry_run_writes_nothing() {
    let fake = onboarded();
    let work = fake.dir.path().join("work-plugins-shop");
    git(&work, &["tag", "-a", "v1.5.0", "-m", "release 1.5"]);
    git(&work, &["push", "-q", "origin", "refs/tags/v1.5.0"]);
    let head = String::from_utf8(git(&work, &["rev-parse", "HEAD"])).unwrap();
    let tag_object = String::from_utf8(git(&work, &["rev-parse", "v1.5.0"])).unwrap();
    assert_ne!(head, tag_object);
    fake.clear_log();

    let dry = fake
        .berth(DEV_TOKEN, "deploy/shop")
        .args([
            "--dry-run",
            "request",
            "--env",
            "production",
            "--ref",
            "v1.5.0",
        ])
        .run()
        .expect(ExitStatus::Success);
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    let release = get(
        &fake,
        "/projects/deploy%2Fshop/repository/files/release.yml?ref=main",
    );
    assert_eq!(
        dry.stdout(),
        format!(
            "\
POST projects/deploy%2Fshop/repository/commits  branch=release/production-v1.5.0 start_branch=main force=true commit_message=\"Release v1.5.0 to production\" action=update:release.yml@{}
POST projects/deploy%2Fshop/merge_requests  source_branch=release/production-v1.5.0 target_branch=main title=\"Release v1.5.0 to production\" remove_source_branch=true
",
            &release["last_commit_id"].as_str().unwrap()[..12]
        )
    );

    let run = request(&fake, "production", "v1.5.0")
        .run()
        .expect(ExitStatus::Success);
    assert_eq!(writes_shown(&run.stderr()), writes_shown(&dry.stdout()));
    let on_branch = fake
        .file(
            DEV_TOKEN,
            "deploy/shop",
            "release.yml",
            "release%2Fproduction-v1.5.0",
        )
        .unwrap();
    assert!(
        on_branch.ends_with(&format!(
            "  production:\n    ref: v1.5.0\n    commit: {}\n",
            head.trim()
        )),
        "{on_branch}"
    );
    // The developer's request passes berth's own parser, commit included.
    let parsed = berth::config::ReleaseFile::parse("release.yml", &on_branch).unwrap();
    let production = parsed.get(&"production".parse().unwrap()).unwrap();
    assert_eq!(
        production.commit.as_ref().map(|c| c.as_str()),
        Some(head.trim())
    );
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn bad_requests_are_refused_and_create_nothing() {
    let fake = onboarded();
    let tag_hint = "a tag may use letters, digits and . _ - / +, must start with a letter or \
        digit, e.g. v1.4.0";
    let cases = [
        (
            "staging",
            "v1.4.0",
            "--env: environment staging is not defined in app.yml of deploy/shop\n  \
             hint: this app's environments are: test, production"
                .to_string(),
        ),
        (
            "test",
            "v9.9.9",
            "--ref: tag v9.9.9 does not exist in the code repository plugins/shop\n  \
             hint: tag a commit and push the tag first: git tag v9.9.9 && git push origin v9.9.9"
                .to_string(),
        ),
        (
            "test",
            "../v1",
            format!("--ref: tag \"../v1\" must start with a letter or digit\n  hint: {tag_hint}"),
        ),
        (
            "test",
            "v1 --force",
            format!(
                "--ref: tag \"v1 --force\" contains a space, which a tag may not contain\n  \
                 hint: {tag_hint}"
            ),
        ),
        (
            "Test",
            "v1.4.0",
            "--env: environment name \"Test\" contains 'T'\n  \
             hint: use at most 20 lowercase letters, digits and '-', starting with a letter, \
             e.g. production"
                .to_string(),
        ),
    ];
    for (env, tag, problem) in cases {
        eprintln!("berth request --env {env} --ref {tag}");
        request(&fake, env, tag)
            .run()
            .expect(ExitStatus::InvalidInput)
            .expect_stderr(&format!(
                "error: 1 problem in the configuration:\nberth request: {problem}\n"
            ))
            .expect_stdout("");
    }
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
    let (status, _) = fake.call(
        ROOT_TOKEN,
        "GET",
        &format!(
            "/projects/{}/repository/branches?search=release",
            encoded("deploy/shop")
        ),
        Value::Null,
    );
    assert_eq!(status, 200);
    let branches = get(
        &fake,
        "/projects/deploy%2Fshop/repository/branches?search=release",
    );
    assert_eq!(branches, json!([]));
}
