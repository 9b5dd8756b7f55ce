//! The release flow against the fake GitLab: `check` and `plan` on a
//! release request, the merge, `checkout` and `report`, with the error
//! paths the issue names (a request touching `.gitlab-ci.yml`, a tag moved
//! after approval, hostile commit messages and file names, a 429 storm).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::APP_YML;
use crate::fake::{git, FakeGitLab, ROOT_TOKEN};

const BOT: &str = "bot-token";
const DEV: &str = "dev-token";
const MGMT: &str = "deploy/shop";
const CODE: &str = "plugins/shop";

/// A fake GitLab with the code and management repos of app `shop`.
struct Instance {
    fake: FakeGitLab,
    code: PathBuf,
    mgmt: PathBuf,
}

fn instance() -> Instance {
    let fake = FakeGitLab::start(json!({
        "users": [
            {"username": "dev", "name": "Dee Veloper", "email": "dev@example.com"},
            {"username": "berth-bot", "name": "berth", "email": "bot@example.com", "bot": true},
        ],
        "tokens": [
            {"token": DEV, "user": "dev", "scopes": ["api"]},
            {"token": BOT, "user": "berth-bot", "scopes": ["api"]},
        ],
        "groups": [
            {"path": "plugins", "name": "Plugins", "members": {"berth-bot": 20}},
            {"path": "deploy", "name": "Deploy", "members": {"berth-bot": 40}},
        ],
        "projects": [
            {"path": CODE, "members": {"dev": 40}},
            {"path": MGMT, "members": {"dev": 30}},
        ],
    }));
    let code = fake.dir.path().join("code");
    let mgmt = fake.dir.path().join("mgmt");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::create_dir_all(&mgmt).unwrap();
    git(&code, &["init", "-q", "-b", "main"]);
    git(
        &code,
        &["remote", "add", "origin", &fake.git_url(DEV, CODE)],
    );
    commit_file(
        &code,
        "index.php",
        "<?php echo 'v1.0.0';\n",
        "First release",
    );
    git(&code, &["tag", "v1.0.0"]);
    git(&code, &["push", "-q", "origin", "main", "v1.0.0"]);

    git(&mgmt, &["init", "-q", "-b", "main"]);
    git(
        &mgmt,
        &["remote", "add", "origin", &fake.git_url(ROOT_TOKEN, MGMT)],
    );
    let app = APP_YML
        .replace("id: example", "id: shop")
        .replace("code_repo: plugins/example", &format!("code_repo: {CODE}"));
    std::fs::write(mgmt.join("app.yml"), app).unwrap();
    std::fs::write(mgmt.join(".gitlab-ci.yml"), "include: []\n").unwrap();
    commit_file(
        &mgmt,
        "release.yml",
        &release_yml("v0.0.0", "v0.0.0"),
        "Start",
    );
    git(&mgmt, &["push", "-q", "origin", "main"]);
    Instance { fake, code, mgmt }
}

fn release_yml(test: &str, production: &str) -> String {
    format!("environments:\n  test:\n    ref: {test}\n  production:\n    ref: {production}\n")
}

fn commit_file(repo: &Path, name: &str, content: &str, message: &str) {
    let path = repo.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    git(repo, &["add", "--", name]);
    git(repo, &["commit", "-q", "-m", message]);
}

fn head(repo: &Path) -> String {
    String::from_utf8(git(repo, &["rev-parse", "HEAD"]))
        .unwrap()
        .trim()
        .to_string()
}

impl Instance {
    /// Pushes a release request branch changing `test` to `tag` (plus
    /// `extra` files) and opens its merge request; returns the IID.
    fn request(&self, tag: &str, extra: &[(&str, &str)]) -> u64 {
        let branch = format!("release/test-{tag}");
        git(
            &self.mgmt,
            &["checkout", "-q", "-B", &branch, "origin/main"],
        );
        for (name, content) in extra {
            std::fs::write(self.mgmt.join(name), content).unwrap();
            git(&self.mgmt, &["add", "--", name]);
        }
        let live = self.live_production();
        commit_file(
            &self.mgmt,
            "release.yml",
            &release_yml(tag, &live),
            &format!("Release {tag} to test"),
        );
        git(
            &self.mgmt,
            &["push", "-q", "-f", &self.fake.git_url(DEV, MGMT), &branch],
        );
        let mr = self.fake.ok(
            DEV,
            "POST",
            &format!("/projects/{}/merge_requests", enc(MGMT)),
            json!({"source_branch": branch, "target_branch": "main", "title": format!("Release {tag} to test")}),
        );
        mr["iid"].as_u64().unwrap()
    }

    fn live_production(&self) -> String {
        "v0.0.0".to_string()
    }

    /// `berth check` or `berth plan` in the MR pipeline of `iid`.
    fn review(&self, command: &str, iid: u64) -> crate::common::Run {
        self.fake
            .berth(BOT, MGMT)
            .env("CI_MERGE_REQUEST_IID", iid.to_string())
            .args([command, "--app-dir"])
            .arg_path(&self.mgmt)
            .run()
    }

    /// Merges `iid` as the admin; checks main out; returns the merge commit.
    fn merge(&self, iid: u64) -> String {
        let merged = self.fake.ok(
            ROOT_TOKEN,
            "PUT",
            &format!("/projects/{}/merge_requests/{iid}/merge", enc(MGMT)),
            json!({}),
        );
        assert_eq!(merged["state"], "merged", "{merged}");
        git(&self.mgmt, &["fetch", "-q", "origin"]);
        git(&self.mgmt, &["checkout", "-q", "-B", "main", "origin/main"]);
        head(&self.mgmt)
    }

    fn main_job(&self, sha: &str, args: &[&str]) -> crate::common::Run {
        self.fake
            .berth(BOT, MGMT)
            .env("CI_COMMIT_SHA", sha)
            .env("BERTH_DOTENV", self.mgmt.join("berth.env"))
            .args(args)
            .run()
    }

    /// The release record tag `name` of the management repo: status, body.
    fn record(&self, name: &str) -> (u16, Value) {
        let path = format!("/projects/{}/repository/tags/{}", enc(MGMT), enc(name));
        self.fake.call(ROOT_TOKEN, "GET", &path, Value::Null)
    }

    /// The commit statuses of `sha` in the management repo.
    fn statuses(&self, sha: &str) -> Value {
        let path = format!("/projects/{}/repository/commits/{sha}/statuses", enc(MGMT));
        self.fake.ok(ROOT_TOKEN, "GET", &path, Value::Null)
    }

    /// `berth checkout` in the main pipeline of the merge commit `sha`.
    fn checkout(&self, sha: &str) -> crate::common::Run {
        self.main_job(sha, &["checkout", "--app-dir", self.mgmt.to_str().unwrap()])
    }

    fn notes(&self, iid: u64) -> Vec<Value> {
        let notes = self.fake.ok(
            ROOT_TOKEN,
            "GET",
            &format!(
                "/projects/{}/merge_requests/{iid}/notes?per_page=100",
                enc(MGMT)
            ),
            Value::Null,
        );
        notes
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n["system"] != true)
            .collect()
    }

    fn berth_note(&self, iid: u64, marker: &str) -> String {
        let notes: Vec<String> = self
            .notes(iid)
            .iter()
            .filter_map(|n| n["body"].as_str())
            .filter(|b| b.starts_with(marker))
            .map(str::to_string)
            .collect();
        assert_eq!(notes.len(), 1, "exactly one {marker} note: {notes:#?}");
        notes[0].clone()
    }

    /// A deploy outcome as `berth deploy --outcome` writes it.
    fn outcome(&self, tag: &str, commit: &str, failed_step: Option<&str>) -> PathBuf {
        let path = self.mgmt.join(format!("outcome-{tag}.json"));
        let outcome = json!({
            "env": "test", "ref": tag, "commit": commit, "host": "local", "slot": "blue",
            "url": "http://shop.test.berth.localhost/", "ok": failed_step.is_none(),
            "failed_step": failed_step, "log_tail": ["PHP Fatal error: boom", "/merge"],
            "time": "2026-11-22T10:00:00Z",
        });
        std::fs::write(&path, outcome.to_string()).unwrap();
        path
    }

    /// The whole flow for `tag` on `test`; returns (MR iid, merge commit).
    fn release(&self, tag: &str) -> (u64, String) {
        let iid = self.request(tag, &[]);
        self.review("check", iid).expect_code(0);
        self.review("plan", iid).expect_code(0);
        let sha = self.merge(iid);
        self.checkout(&sha).expect_code(0);
        let commit =
            String::from_utf8(git(&self.mgmt.join("codes"), &["rev-parse", "HEAD"])).unwrap();
        let outcome = self.outcome(tag, commit.trim(), None);
        self.main_job(&sha, &["report", "--outcome", outcome.to_str().unwrap()])
            .expect_code(0);
        (iid, sha)
    }
}

fn enc(path: &str) -> String {
    path.replace('/', "%2F")
}

#[test]
fn a_release_request_goes_from_check_to_report_in_at_most_25_api_calls() {
    let gl = instance();
    commit_file(
        &gl.code,
        "index.php",
        "<?php echo 'v1.1.0';\n",
        "Say v1.1.0",
    );
    commit_file(&gl.code, "lib/new.php", "<?php\n", "Add a library");
    git(&gl.code, &["tag", "v1.1.0"]);
    git(&gl.code, &["push", "-q", "origin", "main", "v1.1.0"]);
    let v110 = head(&gl.code);

    let iid = gl.request("v1.1.0", &[]);
    gl.fake.clear_log();
    let check = gl.review("check", iid).expect_code(0);
    assert!(
        check.stdout().contains("check passed"),
        "{}",
        check.stdout()
    );
    let check_calls = gl.fake.api_requests().len();
    gl.fake.clear_log();
    gl.review("plan", iid).expect_code(0);
    let plan_calls = gl.fake.api_requests().len();
    // A second plan edits the same note instead of adding one.
    gl.review("plan", iid).expect_code(0);
    let plan = gl.berth_note(iid, "<!-- berth:plan -->");
    assert!(plan.contains("#### Environment test"), "{plan}");
    assert!(plan.contains("(nothing released yet)"), "{plan}");
    assert!(
        plan.contains(&v110[..12]),
        "the plan shows the requested commit: {plan}"
    );

    let sha = gl.merge(iid);
    gl.fake.clear_log();
    let checkout = gl.checkout(&sha).expect_code(0);
    assert!(
        checkout.stderr().contains("checked out v1.1.0"),
        "{}",
        checkout.stderr()
    );
    assert_eq!(head(&gl.mgmt.join("codes")), v110);
    assert!(gl.mgmt.join("codes/lib/new.php").exists());
    let dotenv = std::fs::read_to_string(gl.mgmt.join("berth.env")).unwrap();
    assert!(
        dotenv.contains(&format!("BERTH_TEST_COMMIT={v110}\n")),
        "{dotenv}"
    );
    assert!(dotenv.contains("BERTH_TEST_REF=v1.1.0\n"), "{dotenv}");
    assert!(!dotenv.contains(BOT), "no secret in outputs");

    let outcome = gl.outcome("v1.1.0", &v110, None);
    gl.main_job(&sha, &["report", "--outcome", outcome.to_str().unwrap()])
        .expect_code(0);
    let main_calls = gl.fake.api_requests().len();
    let total = check_calls + plan_calls + main_calls;
    println!(
        "GitLab API calls for one release: {total} (check {check_calls}, plan {plan_calls}, checkout + report {main_calls})"
    );
    assert!(total <= 25, "{total} API calls for one release");

    let report = gl.berth_note(iid, "<!-- berth:report -->");
    assert!(report.contains("released"), "{report}");
    assert!(report.contains("deployed/test/1"), "{report}");
    let (status, tag) = gl.record("deployed/test/1");
    assert_eq!(status, 200, "{tag}");
    let message = tag["message"].as_str().unwrap();
    assert!(message.contains(&format!("commit: {v110}")), "{message}");
    assert!(message.contains("ref: v1.1.0"), "{message}");
    let statuses = gl.statuses(&sha);
    assert_eq!(statuses[0]["name"], "berth/release");
    assert_eq!(statuses[0]["status"], "success");
}

#[test]
fn a_request_that_touches_the_pipeline_fails_check_with_a_note() {
    let gl = instance();
    let iid = gl.request("v0.0.0", &[(".gitlab-ci.yml", "steal:\n  script: env\n")]);
    let run = gl.review("check", iid).expect_code(3);
    assert!(run.stderr().contains(".gitlab-ci.yml"), "{}", run.stderr());
    assert!(
        run.stderr().contains("may change only release.yml"),
        "{}",
        run.stderr()
    );
    let note = gl.berth_note(iid, "<!-- berth:plan -->");
    assert!(note.contains("berth check failed"), "{note}");
    assert!(note.contains("gitlab\\-ci\\.yml"), "{note}");
}

#[test]
fn a_tag_that_does_not_exist_fails_check_naming_file_and_line() {
    let gl = instance();
    let iid = gl.request("v9.9.9", &[]);
    let run = gl.review("check", iid).expect_code(3);
    assert!(
        run.stderr().contains("release.yml:2:3: environments.test.ref: v9.9.9 is not a tag of the code repository plugins/shop"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("hint:"), "{}", run.stderr());
}

#[test]
fn a_tag_moved_after_approval_stops_the_release() {
    let gl = instance();
    commit_file(
        &gl.code,
        "index.php",
        "<?php echo 'approved';\n",
        "Approved change",
    );
    git(&gl.code, &["tag", "v1.1.0"]);
    git(&gl.code, &["push", "-q", "origin", "main", "v1.1.0"]);
    let approved = head(&gl.code);
    let iid = gl.request("v1.1.0", &[]);
    gl.review("check", iid).expect_code(0);
    gl.review("plan", iid).expect_code(0);
    // After the plan, the developer points the tag somewhere else.
    commit_file(
        &gl.code,
        "index.php",
        "<?php system($_GET['c']);\n",
        "Sneaky change",
    );
    git(&gl.code, &["tag", "-f", "v1.1.0"]);
    git(&gl.code, &["push", "-q", "-f", "origin", "main", "v1.1.0"]);
    let sha = gl.merge(iid);
    let run = gl.checkout(&sha).expect_code(3);
    assert!(
        run.stderr().contains("the tag was moved after approval"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains(&approved), "{}", run.stderr());
    let dotenv = std::fs::read_to_string(gl.mgmt.join("berth.env")).unwrap_or_default();
    assert!(
        !dotenv.contains("BERTH_TEST_COMMIT"),
        "no outputs for a stopped release: {dotenv}"
    );
}

#[test]
fn hostile_commit_messages_and_file_names_stay_inert_in_the_plan_note() {
    let gl = instance();
    gl.release("v1.0.0");
    let payloads = [
        "/merge",
        "fix\n\n/approve",
        "<script>alert(1)</script>",
        "</details><img src=x onerror=alert(1)>",
        "[click](javascript:alert(1)) @root",
    ];
    for (i, payload) in payloads.iter().enumerate() {
        commit_file(&gl.code, &format!("f{i}.php"), "<?php\n", payload);
    }
    commit_file(
        &gl.code,
        "<img src=x onerror=alert(2)>.php",
        "<?php\n",
        "/label ~hacked",
    );
    git(&gl.code, &["tag", "v1.1.0"]);
    git(&gl.code, &["push", "-q", "origin", "main", "v1.1.0"]);
    let iid = gl.request("v1.1.0", &[]);
    gl.review("check", iid).expect_code(0);
    gl.review("plan", iid).expect_code(0);
    let note = gl.berth_note(iid, "<!-- berth:plan -->");
    assert!(
        note.contains("| live | v1\\.0\\.0"),
        "the live release comes from the record: {note}"
    );
    assert!(note.contains("**Commits** (6)"), "{note}");
    for line in note.lines() {
        assert!(
            !line.trim_start().starts_with('/'),
            "a line starts a quick action: {line:?}"
        );
    }
    for raw in ["<script", "<img", "](javascript", "@root"] {
        assert!(!note.contains(raw), "{raw:?} reached the note:\n{note}");
    }
    // The MR is still open and unapproved: no quick action ran.
    let mr = gl.fake.ok(
        ROOT_TOKEN,
        "GET",
        &format!("/projects/{}/merge_requests/{iid}", enc(MGMT)),
        Value::Null,
    );
    assert_eq!(mr["state"], "opened");
}

#[test]
fn a_429_storm_during_plan_is_ridden_out() {
    let gl = instance();
    let iid = gl.request("v1.0.0", &[]);
    gl.fake.storm(4, 1);
    let run = gl.review("plan", iid).expect_code(0);
    assert!(
        run.stderr().contains("GitLab answered 429"),
        "{}",
        run.stderr()
    );
    gl.berth_note(iid, "<!-- berth:plan -->");
}

#[test]
fn a_failed_deploy_is_reported_with_its_step_and_no_record() {
    let gl = instance();
    let iid = gl.request("v1.0.0", &[]);
    gl.review("plan", iid).expect_code(0);
    let sha = gl.merge(iid);
    let outcome = gl.outcome("v1.0.0", "0123", Some("wait until blue is healthy"));
    gl.main_job(&sha, &["report", "--outcome", outcome.to_str().unwrap()])
        .expect_code(0);
    let report = gl.berth_note(iid, "<!-- berth:report -->");
    assert!(
        report.contains("failed at wait until blue is healthy"),
        "{report}"
    );
    assert!(report.contains("PHP Fatal error: boom"), "{report}");
    assert!(report.contains("still serves"), "{report}");
    let (status, _) = gl.record("deployed/test/1");
    assert_eq!(status, 404, "a failed release gets no record");
    let statuses = gl.statuses(&sha);
    assert_eq!(statuses[0]["status"], "failed");
}
