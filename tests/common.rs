//! Shared fixtures and the `Berth` command builder: every run starts from a
//! cleared environment, so a CI job's real tokens never reach a test.

use std::path::{Path, PathBuf};

use berth::exit::ExitStatus;
use std::process::{Command, Output};

pub const APP_YML: &str = include_str!("../mgmt-repo-skeleton/app.yml");
pub const RELEASE_YML: &str = include_str!("../mgmt-repo-skeleton/release.yml");
pub const INVENTORY_YML: &str = include_str!("fixtures/inventory.yml");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the built `berth` binary.
pub struct Berth {
    command: Command,
}

impl Berth {
    pub fn new() -> Berth {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.env_clear();
        command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        Berth { command }
    }

    pub fn args<I, S>(mut self, args: I) -> Berth
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn arg_path(mut self, path: &Path) -> Berth {
        self.command.arg(path);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Berth {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Berth {
        self.command.env(key, value);
        self
    }

    pub fn spawn(mut self) -> Running {
        let child = self
            .command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berth starts");
        Running { child }
    }

    pub fn run(mut self) -> Run {
        let output = self.command.output().expect("berth runs");
        Run::new(output)
    }
}

/// A berth run in the background.
pub struct Running {
    child: std::process::Child,
}

impl Running {
    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    /// Reads stderr line by line until a line starts with `prefix`, then
    /// kills berth with SIGKILL; returns what it printed.
    pub fn kill_at(mut self, prefix: &str) -> String {
        use std::io::BufRead;
        let stderr = self.child.stderr.take().expect("stderr is piped");
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.expect("read berth's stderr");
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with(prefix) {
                self.child.kill().expect("SIGKILL berth");
                break;
            }
        }
        let _ = self.child.wait();
        seen
    }

    /// Waits for berth to print a line starting with `prefix`, runs
    /// `action` with berth's process id, then waits for berth to exit.
    pub fn on_line(mut self, prefix: &str, action: impl FnOnce(u32)) -> Run {
        use std::io::{BufRead, Read};
        let stderr = self.child.stderr.take().expect("stderr is piped");
        let mut reader = std::io::BufReader::new(stderr);
        let mut seen = String::new();
        let mut action = Some(action);
        let mut line = String::new();
        while reader.read_line(&mut line).expect("read berth's stderr") > 0 {
            if line.starts_with(prefix) {
                if let Some(action) = action.take() {
                    action(self.child.id());
                }
            }
            seen.push_str(&line);
            line.clear();
        }
        reader
            .read_to_string(&mut seen)
            .expect("read berth's stderr");
        let mut output = self.child.wait_with_output().expect("berth runs");
        output.stderr = seen.into_bytes();
        Run::new(output)
    }

    pub fn wait(self) -> Run {
        Run::new(self.child.wait_with_output().expect("berth runs"))
    }
}

pub struct Run {
    pub output: Output,
    /// (text, placeholder) pairs `expect_stdout`/`expect_stderr` replace
    /// before comparing, e.g. a temp dir's path with `<dir>`.
    placeholders: Vec<(String, String)>,
    /// (pattern, replacement) pairs applied after the placeholders.
    patterns: Vec<(regex::Regex, String)>,
}

impl Run {
    fn new(output: Output) -> Run {
        Run {
            output,
            placeholders: Vec::new(),
            patterns: Vec::new(),
        }
    }

    pub fn code(&self) -> i32 {
        self.output.status.code().expect("berth exited, not killed")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts how berth ended, showing both streams when it differs.
    #[track_caller]
    pub fn expect(self, status: ExitStatus) -> Run {
        let code = self.code();
        if code != status.code() {
            let actual = ExitStatus::ALL
                .iter()
                .find(|s| s.code() == code)
                .map_or_else(|| "not a berth status".to_string(), |s| format!("{s:?}"));
            panic!(
                "exit status: expected {status:?} ({}), got {code} ({actual})\n--- stdout\n{}\n--- stderr\n{}",
                status.code(),
                self.stdout(),
                self.stderr()
            );
        }
        self
    }

    /// From here on, `expect_stdout` and `expect_stderr` show `path` (and
    /// its canonical form) as `placeholder`, so expected output need not
    /// know a temp dir's name. Longer paths are replaced first.
    pub fn placeholder(mut self, path: &Path, placeholder: &str) -> Run {
        let mut texts = vec![path.display().to_string()];
        if let Ok(canonical) = path.canonicalize() {
            texts.push(canonical.display().to_string());
        }
        for text in texts {
            assert!(!text.is_empty(), "an empty path cannot be a placeholder");
            self.placeholders.push((text, placeholder.to_string()));
        }
        self.placeholders
            .sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        self
    }

    /// From here on, `expect_stdout` and `expect_stderr` replace every
    /// match of the regular expression `pattern` with `replacement` (`$1`
    /// names a group), after the placeholders: for what changes from run to
    /// run, such as another program's timestamp and process id.
    pub fn normalize(mut self, pattern: &str, replacement: &str) -> Run {
        let pattern = regex::Regex::new(pattern).expect("a valid regular expression");
        self.patterns.push((pattern, replacement.to_string()));
        self
    }

    fn normalized(&self, text: String) -> String {
        let text = self
            .placeholders
            .iter()
            .fold(text, |text, (from, to)| text.replace(from.as_str(), to));
        self.patterns.iter().fold(text, |text, (pattern, to)| {
            pattern.replace_all(&text, to.as_str()).into_owned()
        })
    }

    /// Asserts the whole of stdout (after placeholders), with a line diff.
    #[track_caller]
    pub fn expect_stdout(self, expected: &str) -> Run {
        let actual = self.normalized(self.stdout());
        assert_text("stdout", expected, &actual, &self.stderr());
        self
    }

    /// Asserts the whole of stderr (after placeholders), with a line diff.
    #[track_caller]
    pub fn expect_stderr(self, expected: &str) -> Run {
        let actual = self.normalized(self.stderr());
        assert_text("stderr", expected, &actual, &self.stdout());
        self
    }
}

/// Panics with a line diff (`-` expected, `+` actual) unless `actual` is
/// exactly `expected`; `other` is the other stream, shown for context.
#[track_caller]
pub fn assert_text(what: &str, expected: &str, actual: &str, other: &str) {
    if expected != actual {
        let other = if other.is_empty() { "(empty)" } else { other };
        panic!(
            "{what} differs from the expected text (- expected, + actual):\n{}--- the other stream\n{other}",
            line_diff(expected, actual)
        );
    }
}

/// A line diff of two texts: `-` lines only in `expected`, `+` lines only
/// in `actual`; control characters shown as `\u{..}` escapes (a carriage
/// return as `\u{d}`, never to be taken for the two characters `\r`), a
/// missing final newline marked.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let line = change.value();
        let (line, newline) = match line.strip_suffix('\n') {
            Some(line) => (line, true),
            None => (line, false),
        };
        out.push(sign);
        for c in line.chars() {
            if c.is_control() {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
        if !newline {
            out.push_str("  (no newline at end)");
        }
        out.push('\n');
    }
    out
}

/// `text` with its one occurrence of `from` replaced by `to`. Panics,
/// naming `from`, when `from` does not occur or occurs more than once, so a
/// changed fixture fails the test instead of silently not being edited.
#[track_caller]
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(!from.is_empty(), "fixture edit: nothing to replace");
    match text.matches(from).count() {
        1 => text.replacen(from, to, 1),
        0 => panic!("fixture edit: {from:?} does not occur in the text:\n{text}"),
        n => panic!("fixture edit: {from:?} occurs {n} times, expected once, in the text:\n{text}"),
    }
}

/// `text` with the first of several occurrences of `from` replaced by `to`.
/// Panics, naming `from`, when it does not occur at all.
#[track_caller]
pub fn edit_first(text: &str, from: &str, to: &str) -> String {
    assert!(
        !from.is_empty() && text.contains(from),
        "fixture edit: {from:?} does not occur in the text:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// `text` with every occurrence of `from` replaced by `to`. Panics, naming
/// `from`, when it does not occur at all.
#[track_caller]
pub fn edit_all(text: &str, from: &str, to: &str) -> String {
    assert!(
        !from.is_empty() && text.contains(from),
        "fixture edit: {from:?} does not occur in the text:\n{text}"
    );
    text.replace(from, to)
}

/// A directory holding release.yml and app.yml with the given contents.
pub fn app_dir(release: &str, app: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("release.yml"), release).unwrap();
    std::fs::write(dir.path().join("app.yml"), app).unwrap();
    dir
}

/// Finds a program the test suite needs; missing tools fail the test, they
/// never skip it.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed: run scripts/install-deps (scripts/test does)");
}

/// A free TCP port on loopback (the kernel's pick; released before use).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` different free ports: all are held open until each is picked, so
/// none is handed out twice. They come from below Linux's ephemeral range
/// (32768 and up), so an outgoing connection cannot take one before a slot
/// publishes it.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut listeners = Vec::with_capacity(N);
    while listeners.len() < N {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000
            + (std::process::id()
                .wrapping_mul(7919)
                .wrapping_add(n * 104_729))
                % 12_000;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            listeners.push(listener);
        }
        assert!(n < 100_000, "no free port below 32000");
    }
    std::array::from_fn(|i| listeners[i].local_addr().expect("bound").port())
}

/// One HTTP/1.0 request; returns the status and the body.
pub fn http_request(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_exchange(port, host, method, path, body).map(|(status, _, body)| (status, body))
}

/// One HTTP/1.0 request; returns the status, the head (status line and
/// headers) and the body.
pub fn http_exchange(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    // Generous: a loaded CI machine can be slow, and a hang still ends.
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\n{content}\r\n{body}"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or((response, String::new()));
    Ok((status, head, body))
}

/// Polls until `GET path` answers 200, or fails after `seconds`.
pub fn wait_for_200(port: u16, host: &str, path: &str, seconds: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match http_request(port, host, "GET", path, "") {
            Ok((200, _)) => return,
            Ok((status, body)) => last = format!("status {status}: {body}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http://127.0.0.1:{port}{path} (Host {host}) not ready after {seconds}s; last: {last}");
}

/// A minimal main config for a host's front nginx under `prefix`, including
/// one vhost file the way the host's nginx includes berth's directory.
pub fn front_main_conf(prefix: &Path, vhost: &Path) -> String {
    let p = prefix.display();
    format!(
        "pid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n  client_body_temp_path {p}/tmp-body;\n  proxy_temp_path {p}/tmp-proxy;\n  fastcgi_temp_path {p}/tmp-fastcgi;\n  uwsgi_temp_path {p}/tmp-uwsgi;\n  scgi_temp_path {p}/tmp-scgi;\n  include {};\n}}\n",
        vhost.display()
    )
}

/// The child processes of `pid` (all threads), with their command names.
pub fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            out.push((child, name.trim().to_string()));
        }
    }
    out
}

/// Copies `examples/<example>` into `dest` (created or refreshed) with
/// the release markers in `lib/version.php` and `lib/marker.php` saying
/// `version`.
pub fn copy_example(example: &str, dest: &Path, version: &str) {
    std::fs::create_dir_all(dest).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(repo_root().join(format!("examples/{example}/.")))
        .arg(dest)
        .status()
        .unwrap();
    assert!(copied.success());
    for file in ["lib/version.php", "lib/marker.php"] {
        let path = dest.join(file);
        let text = edit(&std::fs::read_to_string(&path).unwrap(), "v1.0.0", version);
        std::fs::write(path, text).unwrap();
    }
}

/// Copies the example plugin into `dest` (created or refreshed) with its
/// version markers saying `version`; unless `healthy`, its health endpoint
/// answers 503.
pub fn example_plugin(dest: &Path, version: &str, healthy: bool) {
    copy_example("plugin", dest, version);
    if !healthy {
        std::fs::write(
            dest.join("public/health.php"),
            "<?php http_response_code(503); echo \"broken\\n\";\n",
        )
        .unwrap();
    }
}

/// Removes a test app's vhost from the rig's front under the host's front
/// lock (`<RIG_BASE_DIR>/.front.lock`, as berth's switch takes it), so a
/// concurrent deploy's `nginx -t` never finds a file vanish mid-check.
pub fn remove_vhost(base_dir: &str, vhost: &Path) {
    let lock = Path::new(base_dir).join(".front.lock");
    let _ = Command::new("flock")
        .args(["-w", "60"])
        .arg(&lock)
        .args(["rm", "-f", "--"])
        .arg(vhost)
        .status();
}

// The helpers above must be able to fail: each refuses what it should.

#[test]
#[should_panic(expected = "exit status: expected Usage (2), got 0 (Success)")]
fn expect_refuses_another_exit_status() {
    Berth::new()
        .args(["--version"])
        .run()
        .expect(ExitStatus::Usage);
}

#[test]
#[should_panic(
    expected = "stdout differs from the expected text (- expected, + actual):\n-berth\n+berth "
)]
fn expect_stdout_refuses_other_text_with_a_line_diff() {
    Berth::new()
        .args(["--version"])
        .run()
        .expect(ExitStatus::Success)
        .expect_stdout("berth\n");
}

#[test]
fn placeholders_replace_a_path_before_comparing() {
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
        );
}

#[test]
fn normalize_replaces_what_changes_from_run_to_run() {
    Berth::new()
        .args(["--version"])
        .run()
        .expect(ExitStatus::Success)
        .normalize(r"^berth \d+\.\d+\.\d+", "berth <version>")
        .expect_stdout("berth <version>\n");
}

#[test]
fn line_diff_shows_changed_lines_control_characters_and_a_missing_newline() {
    assert_eq!(
        line_diff("a\nb\nc\n", "a\nB\x1b\nc"),
        " a\n-b\n-c\n+B\\u{1b}\n+c  (no newline at end)\n"
    );
}

#[test]
#[should_panic(expected = "fixture edit: \"ports: [1, 2]\" does not occur in the text")]
fn edit_refuses_text_that_is_absent() {
    edit(APP_YML, "ports: [1, 2]", "ports: [3, 4]");
}

#[test]
#[should_panic(expected = "fixture edit: \"host: local\" occurs 2 times, expected once")]
fn edit_refuses_text_that_occurs_twice() {
    edit(APP_YML, "host: local", "host: web-9");
}

#[test]
#[should_panic(expected = "fixture edit: \"host: web-9\" does not occur in the text")]
fn edit_all_refuses_text_that_is_absent() {
    edit_all(APP_YML, "host: web-9", "host: local");
}

#[test]
#[should_panic(expected = "fixture edit: \"@ENV@\" does not occur in the text")]
fn edit_first_refuses_text_that_is_absent() {
    edit_first(APP_YML, "@ENV@", "@ENVIRONMENT@");
}

#[test]
fn edits_replace_what_they_say() {
    assert_eq!(edit("a b a", "b", "c"), "a c a");
    assert_eq!(edit_all("a b a", "a", "c"), "c b c");
    assert_eq!(edit_first("a b a", "a", "c"), "c b a");
}
