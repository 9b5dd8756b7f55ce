//! The fake GitLab (`tests/fake_gitlab`) as a test fixture: one separate
//! process per test, reached over loopback exactly as berth reaches GitLab.

// Fixture helpers: each test module uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{edit, repo_root, Berth};

pub const ROOT_TOKEN: &str = "root-token";

/// A running fake GitLab; killed when dropped.
pub struct FakeGitLab {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl FakeGitLab {
    /// Starts the fake with the default seed (admin `root`, `root-token`)
    /// plus `seed`, and waits for its ready file.
    pub fn start(seed: Value) -> FakeGitLab {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("url");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "fake_gitlab", "--port", "0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .args(["--parent-pid", &std::process::id().to_string()])
            .current_dir(repo_root().join("tests"))
            .spawn()
            .expect("the fake GitLab starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(&ready) {
                break url.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the fake GitLab did not get ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let fake = FakeGitLab {
            child,
            url,
            dir,
            http: reqwest::blocking::Client::new(),
        };
        if seed != Value::Null {
            fake.control("POST", "/__fake/seed", seed);
        }
        fake
    }

    pub fn api(&self) -> String {
        format!("{}/api/v4", self.url)
    }

    /// A `berth` command with the CI variables of a job in `project`.
    pub fn berth(&self, token: &str, project: &str) -> Berth {
        Berth::new()
            .env("CI_API_V4_URL", self.api())
            .env("BERTH_GITLAB_TOKEN", token)
            .env("CI_PROJECT_PATH", project)
            .env(
                "CI_PIPELINE_URL",
                format!("{}/{project}/-/pipelines/77", self.url),
            )
            .env("CI_PIPELINE_ID", "77")
    }

    pub fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            "PUT" => self.http.put(url).json(&body),
            _ => self.http.post(url).json(&body),
        };
        let response = request.send().expect("the fake answers");
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
        response.json().unwrap_or(Value::Null)
    }

    /// Calls the fake's API as `token`; returns the status and JSON body.
    pub fn call(&self, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.api());
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            "PUT" => self.http.put(url).json(&body),
            _ => self.http.post(url).json(&body),
        };
        let response = request
            .header("PRIVATE-TOKEN", token)
            .send()
            .expect("the fake answers");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// `call` that must succeed.
    pub fn ok(&self, token: &str, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(token, method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// The API requests logged since the last `clear_log`.
    pub fn api_requests(&self) -> Vec<Value> {
        let log = self.control("GET", "/__fake/requests?kind=api", Value::Null);
        log.as_array().cloned().unwrap_or_default()
    }

    pub fn clear_log(&self) {
        self.control("DELETE", "/__fake/requests", Value::Null);
    }

    pub fn fault(&self, spec: Value) {
        self.control("POST", "/__fake/faults", spec);
    }

    /// 429 for the next `count` API calls, with `Retry-After: retry_after`.
    pub fn storm(&self, count: u32, retry_after: u32) {
        self.control(
            "POST",
            "/__fake/storm",
            json!({"count": count, "retry_after": retry_after}),
        );
    }

    /// A clone URL with the token as the basic-auth password, for `git`.
    pub fn git_url(&self, token: &str, project: &str) -> String {
        edit(&self.url, "http://", &format!("http://oauth2:{token}@")) + &format!("/{project}.git")
    }

    /// Pushes the files in `files` as one commit on `main` of `project` and
    /// tags it with each of `tags`; returns the commit id.
    pub fn push_code(
        &self,
        token: &str,
        project: &str,
        files: &[(&str, &str)],
        tags: &[&str],
    ) -> String {
        let work = self
            .dir
            .path()
            .join(format!("work-{}", project.replace('/', "-")));
        if !work.exists() {
            git(
                self.dir.path(),
                &[
                    "clone",
                    "-q",
                    &self.git_url(token, project),
                    path_str(&work),
                ],
            );
        }
        for (name, content) in files {
            let path = work.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(
            &work,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("change {}", files.len()),
            ],
        );
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        for tag in tags {
            git(&work, &["tag", "-f", tag]);
            git(
                &work,
                &["push", "-q", "-f", "origin", &format!("refs/tags/{tag}")],
            );
        }
        String::from_utf8(git(&work, &["rev-parse", "HEAD"]))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for FakeGitLab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `git` with a fixed identity; panics with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dee Veloper")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dee Veloper")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub fn scratch(fake: &FakeGitLab, name: &str) -> PathBuf {
    let dir = fake.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A project path as the API wants it in a URL (`group%2Fname`).
pub fn encoded(project: &str) -> String {
    project.replace('/', "%2F")
}

impl FakeGitLab {
    /// A file's text on `reference` of `project`, or `None` when missing.
    pub fn file(&self, token: &str, project: &str, path: &str, reference: &str) -> Option<String> {
        let url = format!(
            "{}/projects/{}/repository/files/{}/raw?ref={reference}",
            self.api(),
            encoded(project),
            path.replace('/', "%2F")
        );
        let response = self
            .http
            .get(url)
            .header("PRIVATE-TOKEN", token)
            .send()
            .expect("the fake answers");
        match response.status().as_u16() {
            200 => Some(response.text().unwrap()),
            404 => None,
            status => panic!("GET {path} of {project}: {status}"),
        }
    }

    /// Creates or replaces `path` on `main` of `project` with one commit.
    pub fn write_file(&self, token: &str, project: &str, path: &str, content: &str) {
        let action = if self.file(token, project, path, "main").is_some() {
            "update"
        } else {
            "create"
        };
        self.ok(
            token,
            "POST",
            &format!("/projects/{}/repository/commits", encoded(project)),
            json!({"branch": "main", "commit_message": format!("{action} {path}"),
                   "actions": [{"action": action, "file_path": path, "content": content}]}),
        );
    }

    /// The API requests since the last `clear_log` that could change
    /// something (any method but GET and HEAD).
    pub fn api_writes(&self) -> Vec<Value> {
        self.api_requests()
            .into_iter()
            .filter(|r| !matches!(r["method"].as_str(), Some("GET" | "HEAD")))
            .collect()
    }
}
