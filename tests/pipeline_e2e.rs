//! The management repository's pipeline end to end: gitlab-ci-local runs
//! the `release` component in shell mode with the real berth binary, against
//! the fake GitLab (repositories, merge requests, notes, tags) and the rig
//! (sshd, Docker, the front nginx). One app goes through every scenario in
//! turn, as an app's life would: a release request is checked and planned,
//! one that touches the pipeline is refused, the merge releases to test, the
//! manual job to production, a rollback goes back, and a release whose
//! health check fails leaves the old one serving.
//!
//! The pipeline file is `ci-config/release.yml`, outside what the
//! repository tracks, given to gitlab-ci-local with `--file` and its inputs
//! with `--input`: that is what GitLab does with `ci_config_path` pointing
//! at the templates project, so a developer's `.gitlab-ci.yml` is never run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::{edit, example_plugin, free_ports, http_request, repo_root, APP_YML};
use crate::deploy::{Rig, RIG_NETWORKS};
use crate::fake::{encoded, git, FakeGitLab, ROOT_TOKEN};

/// The developer: pushes code, tags, release branches; opens requests.
const DEV: &str = "dev-token";
const PLAN: &str = "<!-- berth:plan -->";
const REPORT: &str = "<!-- berth:report -->";
/// Seconds a release may take to answer its health path: also how long the
/// broken release of the last scenario keeps the pipeline waiting.
const HEALTH_TIMEOUT: &str = "20";

/// One app on the fake GitLab and the rig, with the checkouts the
/// developer and the pipeline work in.
struct World {
    rig: Rig,
    fake: FakeGitLab,
    id: String,
    mgmt_project: String,
    code_project: String,
    /// Holds `code/`, `mgmt/`, `bin/berth`, `home/`, `inventory.yml`.
    work: tempfile::TempDir,
    tokens: Tokens,
    _share: std::sync::RwLockReadGuard<'static, ()>,
}

/// What `berth app create` gives an app on GitLab: two project access
/// tokens on the management repository and a read-only deploy token of
/// the code repository (docs/gitlab.md).
struct Tokens {
    /// Maintainer: the main pipeline's `BERTH_GITLAB_TOKEN`, and its bot.
    main: String,
    main_bot: String,
    /// Reporter: the merge request jobs' `BERTH_MR_TOKEN`, and its bot.
    mr: String,
    mr_bot: String,
    code_user: String,
    code_token: String,
}

impl Tokens {
    fn create(fake: &FakeGitLab, mgmt_project: &str, code_project: &str) -> Tokens {
        fake.ok(
            ROOT_TOKEN,
            "POST",
            &format!("/projects/{}/protected_tags", encoded(mgmt_project)),
            json!({"name": "deployed/*", "create_access_level": 40}),
        );
        let token = |name: &str, level: u64| {
            let created = fake.ok(
                ROOT_TOKEN,
                "POST",
                &format!("/projects/{}/access_tokens", encoded(mgmt_project)),
                json!({"name": name, "scopes": ["api"], "access_level": level, "expires_at": "2027-11-30"}),
            );
            let token = created["token"].as_str().unwrap().to_string();
            let user = fake.ok(&token, "GET", "/user", Value::Null);
            (token, user["username"].as_str().unwrap().to_string())
        };
        let (main, main_bot) = token("berth-main", 40);
        let (mr, mr_bot) = token("berth-mr", 20);
        let deploy = fake.ok(
            ROOT_TOKEN,
            "POST",
            &format!("/projects/{}/deploy_tokens", encoded(code_project)),
            json!({"name": "berth-code", "scopes": ["read_repository"]}),
        );
        Tokens {
            main,
            main_bot,
            mr,
            mr_bot,
            code_user: deploy["username"].as_str().unwrap().to_string(),
            code_token: deploy["token"].as_str().unwrap().to_string(),
        }
    }
}

/// What one gitlab-ci-local run printed, and whether it passed.
struct Pipeline {
    ok: bool,
    out: String,
}

impl Pipeline {
    fn passed(&self, job: &str) -> bool {
        self.out.contains(&format!("PASS  {job}"))
    }

    fn failed(&self, job: &str) -> bool {
        self.out.contains(&format!("FAIL  {job}"))
    }

    fn assert_passed(&self, jobs: &[&str]) {
        assert!(self.ok, "the pipeline failed:\n{}", self.out);
        for job in jobs {
            assert!(self.passed(job), "{job} did not pass:\n{}", self.out);
        }
    }
}

impl World {
    fn new() -> World {
        let share = RIG_NETWORKS.read().unwrap_or_else(|e| e.into_inner());
        let rig = Rig::load();
        let id = format!("e2e-{}", std::process::id());
        let mgmt_project = format!("deploy/{id}");
        let code_project = format!("plugins/{id}");
        let fake = FakeGitLab::start(json!({
            "users": [
                {"username": "dee", "name": "Dee Veloper", "email": "dee@example.com"},
            ],
            "tokens": [
                {"token": DEV, "user": "dee", "scopes": ["api"]},
            ],
            "groups": [
                {"path": "plugins", "name": "Plugins"},
                {"path": "deploy", "name": "Deploy"},
            ],
            "projects": [
                {"path": code_project, "members": {"dee": 40}},
                {"path": mgmt_project, "members": {"dee": 30}},
            ],
        }));
        let tokens = Tokens::create(&fake, &mgmt_project, &code_project);
        let work = tempfile::tempdir().unwrap();
        let world = World {
            rig,
            fake,
            id,
            mgmt_project,
            code_project,
            work,
            tokens,
            _share: share,
        };
        world.start_code_repo();
        world.start_mgmt_repo();
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn test_domain(&self) -> String {
        format!("{}.test.berth.localhost", self.id)
    }

    fn production_domain(&self) -> String {
        format!("{}.berth.localhost", self.id)
    }

    /// The code repository with an empty `main`; releases are added by
    /// `tag_release`.
    fn start_code_repo(&self) {
        let code = self.path("code");
        std::fs::create_dir_all(&code).unwrap();
        git(&code, &["init", "-q", "-b", "main"]);
        git(
            &code,
            &[
                "remote",
                "add",
                "origin",
                &self.fake.git_url(DEV, &self.code_project),
            ],
        );
    }

    /// Commits the example plugin with its markers saying `version` (and a
    /// health endpoint answering 503 unless `healthy`), tags it `version`
    /// and pushes both; returns the commit.
    fn tag_release(&self, version: &str, healthy: bool) -> String {
        let code = self.path("code");
        example_plugin(&code, version, healthy);
        git(&code, &["add", "-A"]);
        git(
            &code,
            &["commit", "-q", "-m", &format!("Release {version}")],
        );
        git(&code, &["tag", version]);
        git(&code, &["push", "-q", "origin", "main", version]);
        head(&code)
    }

    /// The management repository as `berth app create` leaves it (app.yml
    /// for the rig, nothing released), cloned into `mgmt/` with the pipeline
    /// file in `ci-config/` beside what git tracks.
    fn start_mgmt_repo(&self) {
        let seed = self.path("mgmt-seed");
        std::fs::create_dir_all(&seed).unwrap();
        let [blue, green, prod_blue, prod_green] = free_ports::<4>();
        let mut app = edit(APP_YML, "id: example", &format!("id: {}", self.id));
        app = edit(
            &app,
            "code_repo: plugins/example",
            &format!("code_repo: {}", self.code_project),
        );
        app = edit(
            &app,
            "ports: [18001, 18002]",
            &format!("ports: [{blue}, {green}]"),
        );
        app = edit(&app, "example.test.berth.localhost", &self.test_domain());
        app = edit(
            &app,
            "ports: [18011, 18012]",
            &format!("ports: [{prod_blue}, {prod_green}]"),
        );
        app = edit(&app, "example.berth.localhost", &self.production_domain());
        std::fs::write(seed.join("app.yml"), app).unwrap();
        std::fs::write(
            seed.join("release.yml"),
            "environments:\n  test:\n    ref: v0.0.0\n  production:\n    ref: v0.0.0\n",
        )
        .unwrap();
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "Onboard the app"]);
        git(
            &seed,
            &[
                "push",
                "-q",
                &self.fake.git_url(ROOT_TOKEN, &self.mgmt_project),
                "main",
            ],
        );
        // The pipeline's checkout: its origin tells gitlab-ci-local the
        // project path, the server and the default branch.
        git(
            self.work.path(),
            &[
                "clone",
                "-q",
                &self.fake.git_url(ROOT_TOKEN, &self.mgmt_project),
                "mgmt",
            ],
        );
        let mgmt = self.path("mgmt");
        std::fs::create_dir_all(mgmt.join("ci-config")).unwrap();
        std::fs::copy(
            repo_root().join("ci-templates/templates/release.yml"),
            mgmt.join("ci-config/release.yml"),
        )
        .unwrap();
        let exclude = mgmt.join(".git/info/exclude");
        let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
        text.push_str("/ci-config/\n/.gitlab-ci-local/\n");
        std::fs::write(exclude, text).unwrap();

        std::fs::write(self.path("inventory.yml"), self.rig.inventory()).unwrap();
        std::fs::create_dir_all(self.path("bin")).unwrap();
        std::fs::create_dir_all(self.path("home")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_berth"), self.path("bin/berth")).unwrap();
    }

    /// The developer pushes `release/<name>` from `main` with release.yml
    /// at `test`/`production` (tag and commit; no commit for an
    /// environment left as it is) plus `extra` files, and opens its merge
    /// request; returns its IID. The pipeline checkout is left on the branch.
    fn request(
        &self,
        name: &str,
        test: (&str, &str),
        production: (&str, &str),
        extra: &[(&str, &str)],
    ) -> u64 {
        let mgmt = self.path("mgmt");
        let branch = format!("release/{name}");
        git(&mgmt, &["fetch", "-q", "origin"]);
        git(&mgmt, &["checkout", "-q", "-B", &branch, "origin/main"]);
        std::fs::write(mgmt.join("release.yml"), release_yml(test, production)).unwrap();
        git(&mgmt, &["add", "release.yml"]);
        for (file, content) in extra {
            std::fs::write(mgmt.join(file), content).unwrap();
            git(&mgmt, &["add", "--", file]);
        }
        git(&mgmt, &["commit", "-q", "-m", &format!("Release {name}")]);
        git(
            &mgmt,
            &[
                "push",
                "-q",
                "-f",
                &self.fake.git_url(DEV, &self.mgmt_project),
                &branch,
            ],
        );
        let mr = self.fake.ok(
            DEV,
            "POST",
            &format!("/projects/{}/merge_requests", encoded(&self.mgmt_project)),
            json!({"source_branch": branch, "target_branch": "main", "title": format!("Release {name}")}),
        );
        mr["iid"].as_u64().unwrap()
    }

    /// The admin merges `iid`; the pipeline checkout moves to the new `main`.
    fn merge(&self, iid: u64) {
        let merged = self.fake.ok(
            ROOT_TOKEN,
            "PUT",
            &format!(
                "/projects/{}/merge_requests/{iid}/merge",
                encoded(&self.mgmt_project)
            ),
            json!({}),
        );
        assert_eq!(merged["state"], "merged", "{merged}");
        let mgmt = self.path("mgmt");
        git(&mgmt, &["fetch", "-q", "origin"]);
        git(&mgmt, &["checkout", "-q", "-B", "main", "origin/main"]);
    }

    /// Runs gitlab-ci-local in `mgmt/` with `args`, in shell mode, the real
    /// berth first on PATH, and the CI/CD variables of `variables`.
    fn gitlab_ci_local(&self, variables: &[(&str, String)], args: &[&str]) -> Pipeline {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(repo_root().join("scripts/gitlab-ci-local"));
        command
            .args([
                "--file",
                "ci-config/release.yml",
                "--input",
                &format!("health_timeout={HEALTH_TIMEOUT}"),
                "--shell-isolation",
                "--force-shell-executor",
                "--no-json-schema-validation",
                "--no-color",
                "--ignore-predefined-vars",
                "CI_COMMIT_REF_PROTECTED,CI_PIPELINE_SOURCE,CI_API_V4_URL,CI_MERGE_REQUEST_IID",
            ])
            .args(["--variable", &format!("CI_API_V4_URL={}", self.fake.api())]);
        for (key, value) in variables {
            command.args(["--variable", &format!("{key}={value}")]);
        }
        // Jobs inherit gitlab-ci-local's environment: only what a runner
        // would have, so nothing of the test's own environment leaks in.
        command
            .args(args)
            .current_dir(self.path("mgmt"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("LANG", "C.UTF-8");
        if let Some(dir) = std::env::var_os("GITLAB_CI_LOCAL") {
            command.env("GITLAB_CI_LOCAL", dir);
        }
        let started = Instant::now();
        let output = command.output().expect("scripts/gitlab-ci-local runs");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!(
            "gitlab-ci-local {}: {:.1} s, {}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            if output.status.success() {
                "passed"
            } else {
                "failed"
            }
        );
        Pipeline {
            ok: output.status.success(),
            out,
        }
    }

    /// A merge request pipeline of `iid` (the checkout is on its branch):
    /// no protected variables, as on GitLab.
    fn mr_pipeline(&self, iid: u64) -> Pipeline {
        let branch = String::from_utf8(git(
            &self.path("mgmt"),
            &["rev-parse", "--abbrev-ref", "HEAD"],
        ))
        .unwrap()
        .trim()
        .to_string();
        self.gitlab_ci_local(
            &[
                ("CI_PIPELINE_SOURCE", "merge_request_event".into()),
                ("CI_MERGE_REQUEST_IID", iid.to_string()),
                ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", branch),
                ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main".into()),
                ("CI_MERGE_REQUEST_PROJECT_PATH", self.mgmt_project.clone()),
                ("BERTH_MR_TOKEN", self.tokens.mr.clone()),
                ("BERTH_CODE_USER", self.tokens.code_user.clone()),
                ("BERTH_CODE_TOKEN", self.tokens.code_token.clone()),
            ],
            &["--unset-variable", "CI_COMMIT_BRANCH"],
        )
    }

    /// A pipeline of the protected default branch, with the protected
    /// variables an admin set once.
    fn main_pipeline(&self, args: &[&str]) -> Pipeline {
        self.gitlab_ci_local(
            &[
                ("CI_COMMIT_REF_PROTECTED", "true".into()),
                ("BERTH_GITLAB_TOKEN", self.tokens.main.clone()),
                ("BERTH_CODE_USER", self.tokens.code_user.clone()),
                ("BERTH_CODE_TOKEN", self.tokens.code_token.clone()),
                (
                    "BERTH_INVENTORY",
                    self.path("inventory.yml").display().to_string(),
                ),
                ("BERTH_SSH_KEY", self.rig.get("RIG_SSH_KEY").to_string()),
            ],
            args,
        )
    }

    /// `(status, version, marker)` of GET / through the front for `domain`.
    fn served(&self, domain: &str) -> (u16, String, String) {
        let (status, body) = http_request(self.rig.front_port(), domain, "GET", "/", "")
            .unwrap_or_else(|e| panic!("GET / for {domain}: {e}"));
        let span = |id: &str| {
            body.split(&format!("<span id=\"{id}\">"))
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .unwrap_or("")
                .to_string()
        };
        (status, span("version"), span("marker"))
    }

    fn assert_serves(&self, domain: &str, version: &str, when: &str) {
        assert_eq!(
            self.served(domain),
            (200, version.to_string(), version.to_string()),
            "{domain} {when}"
        );
    }

    /// berth's notes on `iid` that start with `marker`, with their authors.
    fn notes(&self, iid: u64, marker: &str) -> Vec<(String, String)> {
        let notes = self.fake.ok(
            ROOT_TOKEN,
            "GET",
            &format!(
                "/projects/{}/merge_requests/{iid}/notes?per_page=100",
                encoded(&self.mgmt_project)
            ),
            Value::Null,
        );
        notes
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| {
                let body = n["body"].as_str()?;
                body.starts_with(marker).then(|| {
                    (
                        n["author"]["username"].as_str().unwrap_or("").to_string(),
                        body.to_string(),
                    )
                })
            })
            .collect()
    }

    /// The one note starting with `marker` on `iid`, written by `author`.
    fn note(&self, iid: u64, marker: &str, author: &str) -> String {
        let notes = self.notes(iid, marker);
        assert_eq!(notes.len(), 1, "one {marker} note on !{iid}: {notes:#?}");
        assert_eq!(notes[0].0, author, "{marker} note's author");
        notes[0].1.clone()
    }

    /// The message of the management repository's tag `name`, if it exists.
    fn tag_message(&self, name: &str) -> Option<String> {
        let (status, tag) = self.fake.call(
            ROOT_TOKEN,
            "GET",
            &format!(
                "/projects/{}/repository/tags/{}",
                encoded(&self.mgmt_project),
                name.replace('/', "%2F")
            ),
            Value::Null,
        );
        (status == 200).then(|| tag["message"].as_str().unwrap_or("").to_string())
    }
}

impl Drop for World {
    /// Removes the app's containers, networks and vhosts from the rig.
    fn drop(&mut self) {
        let label = format!("label=berth.app={}", self.id);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        for env in ["test", "production"] {
            for slot in ["blue", "green"] {
                let _ = Command::new("docker")
                    .args(["network", "rm", &format!("berth-{}-{env}-{slot}", self.id)])
                    .output();
            }
            crate::common::remove_vhost(
                self.rig.get("RIG_BASE_DIR"),
                &Path::new(self.rig.get("RIG_FRONT_CONF_D"))
                    .join(format!("berth-{}-{env}.conf", self.id)),
            );
        }
    }
}

/// release.yml with each environment's tag and, when given, its commit.
fn release_yml(
    (test, test_commit): (&str, &str),
    (production, production_commit): (&str, &str),
) -> String {
    let entry = |env: &str, tag: &str, commit: &str| {
        let pin = if commit.is_empty() {
            String::new()
        } else {
            format!("    commit: {commit}\n")
        };
        format!("  {env}:\n    ref: {tag}\n{pin}")
    };
    format!(
        "environments:\n{}{}",
        entry("test", test, test_commit),
        entry("production", production, production_commit)
    )
}

/// `text` as berth escapes it for Markdown in its notes.
fn escaped(text: &str) -> String {
    text.replace('-', "\\-").replace('.', "\\.")
}

fn head(repo: &Path) -> String {
    String::from_utf8(git(repo, &["rev-parse", "HEAD"]))
        .unwrap()
        .trim()
        .to_string()
}

/// Times one scenario.
fn scenario<T>(name: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = run();
    println!("scenario {name}: {:.1} s", started.elapsed().as_secs_f64());
    value
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx (tests/rig/up), the fake GitLab (python3, git) and gitlab-ci-local; scripts/test runs it"]
fn the_release_pipelines_run_end_to_end_on_the_rig() {
    let started = Instant::now();
    let w = World::new();
    let v100 = w.tag_release("v1.0.0", true);

    // 1. A release request's merge request pipeline: check passes, the
    //    plan note appears, written with the merge request token.
    let first = scenario("1 (merge request pipeline: check and plan)", || {
        let iid = w.request("v1.0.0", ("v1.0.0", &v100), ("v1.0.0", &v100), &[]);
        let run = w.mr_pipeline(iid);
        run.assert_passed(&["check", "plan"]);
        assert!(!run.out.contains("checkout"), "{}", run.out);
        let plan = w.note(iid, PLAN, &w.tokens.mr_bot);
        assert!(plan.contains("#### Environment test"), "{plan}");
        assert!(plan.contains("#### Environment production"), "{plan}");
        assert!(plan.contains(&v100[..12]), "the requested commit: {plan}");
        iid
    });

    // 2. A request that also changes .gitlab-ci.yml: check fails with its
    //    message, in the job log and the note; plan does not run, and the
    //    developer's pipeline file is never run either.
    scenario("2 (a request touching .gitlab-ci.yml)", || {
        let iid = w.request(
            "sneaky",
            ("v1.0.0", &v100),
            ("v0.0.0", ""),
            &[(
                ".gitlab-ci.yml",
                "steal:\n  script:\n    - echo STOLEN $BERTH_MR_TOKEN\n",
            )],
        );
        let run = w.mr_pipeline(iid);
        assert!(!run.ok, "the pipeline passed:\n{}", run.out);
        assert!(run.failed("check"), "{}", run.out);
        assert!(!run.passed("plan"), "{}", run.out);
        assert!(
            run.out.contains(".gitlab-ci.yml") && run.out.contains("may change only release.yml"),
            "{}",
            run.out
        );
        assert!(!run.out.contains("STOLEN"), "{}", run.out);
        let note = w.note(iid, PLAN, &w.tokens.mr_bot);
        assert!(note.contains("berth check failed"), "{note}");
        assert!(note.contains("gitlab\\-ci\\.yml"), "{note}");
    });

    // 3. The merge: the default branch's pipeline releases v1.0.0 to test
    //    (production waits for its manual job).
    scenario("3 (main pipeline: test released)", || {
        w.merge(first);
        let run = w.main_pipeline(&["--needs", "report:test"]);
        run.assert_passed(&["checkout", "render", "deploy:test", "report:test"]);
        w.assert_serves(&w.test_domain(), "v1.0.0", "after the main pipeline");
        let report = w.note(first, REPORT, &w.tokens.main_bot);
        assert!(report.contains(&escaped(&w.test_domain())), "{report}");
        assert!(report.contains("deployed/test/1"), "{report}");
        let record = w.tag_message("deployed/test/1").expect("deployed/test/1");
        assert!(record.contains(&format!("commit: {v100}")), "{record}");
        let (status, _) =
            http_request(w.rig.front_port(), &w.production_domain(), "GET", "/", "").unwrap();
        assert_eq!(status, 404, "production waits for its manual job");
    });

    // 4. The manual production job of the same pipeline.
    scenario("4 (manual production deploy)", || {
        production_by_hand(&w, first, "v1.0.0", 1);
    });

    // The second release, v1.1.0, through the same pipelines: its plan
    // compares with what is live; test takes it at once, production on the
    // manual job.
    let v110 = w.tag_release("v1.1.0", true);
    let second = scenario("3 and 4 again (the second release)", || {
        let iid = w.request("v1.1.0", ("v1.1.0", &v110), ("v1.1.0", &v110), &[]);
        w.mr_pipeline(iid).assert_passed(&["check", "plan"]);
        let plan = w.note(iid, PLAN, &w.tokens.mr_bot);
        assert!(plan.contains("| live | v1\\.0\\.0"), "{plan}");
        assert!(plan.contains(&v110[..12]), "{plan}");
        w.merge(iid);
        w.main_pipeline(&["--needs", "report:test"])
            .assert_passed(&["checkout", "render", "deploy:test", "report:test"]);
        w.assert_serves(&w.test_domain(), "v1.1.0", "after the second main pipeline");
        w.assert_serves(
            &w.production_domain(),
            "v1.0.0",
            "until its manual job runs",
        );
        production_by_hand(&w, iid, "v1.1.0", 2);
        iid
    });

    // 5. The manual rollback job: production serves v1.0.0 again, and the
    //    release history says so.
    scenario("5 (manual rollback of production)", || {
        let run = w.main_pipeline(&["--manual", "rollback:production", "rollback:production"]);
        run.assert_passed(&["rollback:production"]);
        w.assert_serves(
            &w.production_domain(),
            "v1.0.0",
            "after rollback:production",
        );
        w.assert_serves(&w.test_domain(), "v1.1.0", "(test is left alone)");
        let record = w
            .tag_message("deployed/production/3")
            .expect("the rollback's record deployed/production/3");
        assert!(record.contains("action: rollback"), "{record}");
        assert!(record.contains("ref: v1.0.0"), "{record}");
        assert!(record.contains(&format!("commit: {v100}")), "{record}");
        let _ = second;
    });

    // 5b. The manual restart job: production keeps serving v1.0.0, from
    //     fresh containers in the other slot.
    scenario("5b (manual restart of production)", || {
        let run = w.main_pipeline(&["--manual", "restart:production", "restart:production"]);
        run.assert_passed(&["restart:production"]);
        w.assert_serves(&w.production_domain(), "v1.0.0", "after restart:production");
        assert!(
            w.tag_message("deployed/production/4").is_none(),
            "a restart writes no release record"
        );
    });

    // 6. A release whose health check fails: the pipeline is red, the
    //    report names the failing step, and v1.1.0 still serves test.
    scenario("6 (a release whose health check fails)", || {
        let v120 = w.tag_release("v1.2.0", false);
        let iid = w.request("v1.2.0", ("v1.2.0", &v120), ("v1.1.0", &v110), &[]);
        w.mr_pipeline(iid).assert_passed(&["check", "plan"]);
        w.merge(iid);
        let run = w.main_pipeline(&["--needs", "report:test"]);
        assert!(!run.ok, "the pipeline passed:\n{}", run.out);
        assert!(run.failed("deploy:test"), "{}", run.out);
        assert!(run.passed("report:test"), "{}", run.out);
        assert!(
            run.out
                .contains("berth deploy test: failed with exit code 5"),
            "{}",
            run.out
        );
        w.assert_serves(&w.test_domain(), "v1.1.0", "after the failed release");
        let report = w.note(iid, REPORT, &w.tokens.main_bot);
        assert!(report.contains("failed at "), "{report}");
        assert!(report.contains("healthy"), "the failing step: {report}");
        assert!(report.contains("still serves"), "{report}");
        assert!(
            w.tag_message("deployed/test/3").is_none(),
            "a failed release gets no record"
        );
    });

    // 7. The developer's logs job, from a pipeline they run on their own
    //    branch ("Run pipeline"): the app's logs key (base64, as berth
    //    app create stores it) reads the test environment's access log.
    scenario("7 (the developer's logs job)", || {
        use base64::Engine;
        let key = crate::logs::LogsKey::install_for(&w.rig, &w.id);
        let nonce = format!("e2e-logs-{}", std::process::id());
        let (status, _) = http_request(
            w.rig.front_port(),
            &w.test_domain(),
            "GET",
            &format!("/?{nonce}"),
            "",
        )
        .unwrap();
        assert_eq!(status, 200);
        let mgmt = w.path("mgmt");
        git(&mgmt, &["checkout", "-q", "-B", "dee/look", "origin/main"]);
        let private = std::fs::read(&key.key).unwrap();
        let run = w.gitlab_ci_local(
            &[
                ("CI_PIPELINE_SOURCE", "web".into()),
                ("BERTH_LOGS_ENV", "test".into()),
                ("BERTH_LOGS_SOURCE", "access".into()),
                (
                    "BERTH_LOGS_KEY",
                    base64::engine::general_purpose::STANDARD.encode(private),
                ),
                (
                    "BERTH_LOGS_INVENTORY",
                    w.path("inventory.yml").display().to_string(),
                ),
            ],
            &[],
        );
        run.assert_passed(&["logs"]);
        for job in ["check", "checkout", "deploy:test"] {
            assert!(!run.passed(job), "{job} ran:\n{}", run.out);
        }
        assert!(
            run.out
                .lines()
                .any(|l| l.contains(" access | ") && l.contains(&nonce)),
            "the request's access line:\n{}",
            run.out
        );
    });

    println!(
        "pipeline end-to-end scenarios: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

/// Runs the manual production job (and its report) of the pipeline on
/// `main`; production then serves `version`, recorded as
/// `deployed/production/<record>` and reported on `iid`.
fn production_by_hand(w: &World, iid: u64, version: &str, record: u32) {
    let run = w.main_pipeline(&[
        "--manual",
        "deploy:production",
        "deploy:production",
        "report:production",
    ]);
    run.assert_passed(&["deploy:production", "report:production"]);
    w.assert_serves(&w.production_domain(), version, "after deploy:production");
    let tag = format!("deployed/production/{record}");
    let message = w.tag_message(&tag).unwrap_or_else(|| panic!("no {tag}"));
    assert!(message.contains(&format!("ref: {version}")), "{message}");
    let reports = w.notes(iid, REPORT);
    assert!(
        reports
            .iter()
            .any(|(author, body)| *author == w.tokens.main_bot
                && body.contains(&escaped(&w.production_domain()))
                && body.contains(&tag)),
        "a report of {tag} on !{iid}: {reports:#?}"
    );
}
