//! `berth logs` and its host side, `berth serve-logs`.
//!
//! With the deploy key, berth reads a host directly: container output
//! through the Docker API (a socket forwarded over SSH) and the front's
//! per-app access and error logs with `tail`. With an app's logs key, the
//! host accepts only the forced command `berth serve-logs --app APP`, which
//! reads the same logs locally for that one app; the client sends its
//! request as the SSH command and prints what comes back.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use futures_util::stream::{self, StreamExt};
use regex::{Regex, RegexBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::target::{now_epoch, observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::{
    HostAccessArgs, LogQuery, LogSource, LogsArgs, LogsRequest, OutputFormat, ServeLogsArgs,
    SlotChoice,
};
use crate::config::values::{AbsPath, AppId, EnvName, ScalarValue};
use crate::env::{Env, LogsKey};
use crate::exec::remote::{Remote, RemoteLines};
use crate::plan::deploy::HostState;
use crate::plan::logs::{
    access_log_time, end_of_second, error_log_time, last, merge_by_time, parse_duration, seconds,
    split_docker_timestamp, split_request, split_saved_line, Entry, Nanos, Role, StreamMerge,
};
use crate::plan::release::{saved_logs_dir, saved_logs_file, ReleaseId, Slot};
use crate::report::Reporter;

/// Lines shown when neither --tail nor --since is given.
const DEFAULT_TAIL: u64 = 200;

/// The longest `--grep` pattern, in characters.
pub const MAX_GREP_CHARS: usize = 200;
/// The most memory a compiled `--grep` may take, and its lazy DFA's cache.
/// With them, matching stays linear in the bytes read and cheap per byte;
/// a pattern like `\w{60}z` (Unicode classes, repeated) is refused.
pub const GREP_SIZE_LIMIT: usize = 256 * 1024;
pub const GREP_DFA_SIZE_LIMIT: usize = 1024 * 1024;

pub fn run(args: &LogsArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let t = &args.target;
    // An inline key is written to a private (0600) temporary file that
    // lives until the command ends.
    let mut inline_key = None;
    let logs_key = match (&args.logs_key, &env.logs_key) {
        (Some(path), _) | (None, Some(LogsKey::Path(path))) => Some(path.clone()),
        (None, Some(LogsKey::Inline(key))) => {
            let file = inline_key.insert(write_key(key)?);
            Some(file.path().to_path_buf())
        }
        (None, None) => None,
    };
    let access = HostAccessArgs {
        inventory: crate::cli::InventoryArg {
            inventory: t.access.inventory.inventory.clone(),
        },
        ssh_key: logs_key.clone().or_else(|| t.access.ssh_key.clone()),
    };
    let target = EnvTarget::load(&t.app_dir, &access, &t.env, &t.templates, env)?;
    let filter = Filter::new(&args.query, reporter.format)?;
    runtime()?.block_on(async {
        let remote = Remote::connect(target.host(), &target.ssh_key).await?;
        if logs_key.is_some() {
            return request_through_logs_key(&remote, &target.env, &args.query).await;
        }
        let host = Host::Remote {
            remote: &remote,
            target: &target,
        };
        serve(&host, &target.env, &args.query, &filter).await
    })
}

fn write_key(key: &crate::secret::Secret) -> Result<tempfile::NamedTempFile, CommandError> {
    let mut file = tempfile::Builder::new()
        .prefix("berth-logs-key-")
        .tempfile()
        .context("create a file for the logs key")?;
    file.write_all(key.expose().as_bytes())
        .and_then(|()| file.flush())
        .context("write the logs key")?;
    Ok(file)
}

/// Sends the query as the SSH command; the host's forced command answers.
async fn request_through_logs_key(
    remote: &Remote,
    env: &EnvName,
    q: &LogQuery,
) -> Result<(), CommandError> {
    let source: Vec<String> = q
        .source
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect();
    let mut argv: Vec<String> = vec![
        "logs".into(),
        "--env".into(),
        env.to_string(),
        "--source".into(),
        source.join(","),
    ];
    if q.release.is_none() {
        argv.push("--slot".into());
        argv.push(format!("{:?}", q.slot).to_lowercase());
    }
    for (flag, value) in [
        ("--release", q.release.clone()),
        ("--since", q.since.clone()),
        ("--tail", q.tail.map(|n| n.to_string())),
        ("--grep", q.grep.clone()),
    ] {
        if let Some(value) = value {
            argv.push(flag.into());
            argv.push(value);
        }
    }
    if q.follow {
        argv.push("--follow".into());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut lines = remote.lines_with_stderr(&argv).await?;
    loop {
        let next = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = next else { break };
        if writeln!(std::io::stdout(), "{line}").is_err() {
            break;
        }
    }
    let status = lines.finish().await?;
    if !status.success() {
        return Err(
            anyhow::anyhow!("the host refused or failed the logs request ({status})").into(),
        );
    }
    Ok(())
}

/// Runs on a host as the forced command of an app's logs key.
pub fn serve_logs(
    args: &ServeLogsArgs,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    // First: whatever the request turns out to be, it runs inside the
    // cgroup's limits or not at all.
    if let Some(cgroup) = &args.cgroup {
        enter_cgroup(cgroup)?;
    }
    let refuse = |message: String| CommandError::Usage {
        message,
        hint: format!(
            "this key only reads the logs of app {}: logs --env ENV [--source ...]",
            args.app
        ),
    };
    let app = AppId::parse(&args.app).map_err(|e| refuse(e.message))?;
    let line = env
        .ssh_original_command
        .clone()
        .ok_or_else(|| refuse("no request: this key does not open a shell".into()))?;
    let (env_name, query) = parse_request(&line).map_err(refuse)?;
    let path = |p: &PathBuf, what: &str| {
        AbsPath::parse(&p.display().to_string())
            .map_err(|e| refuse(format!("{what}: {}", e.message)))
    };
    let base_dir = path(&args.base_dir, "--base-dir")?;
    let mut filter = Filter::new(&query, reporter.format)?;
    let _session = take_session(&base_dir, &app, args.max_sessions)?;
    let seconds = if query.follow {
        args.max_follow_seconds
    } else {
        args.max_seconds
    };
    filter.budget = Some(Budget {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(seconds),
        seconds,
        follow: query.follow,
        max_bytes: args.max_bytes,
        bytes: std::cell::Cell::new(0),
    });
    let host = Host::Local {
        app,
        base_dir,
        log_dir: path(&args.log_dir, "--log-dir")?,
        docker_socket: path(&args.docker_socket, "--docker-socket")?,
    };
    runtime()?.block_on(serve(&host, &env_name, &query, &filter))
}

/// Moves serve-logs into the cgroup `name` (`--cgroup`): observe the
/// mounted hierarchies, plan the writes, write, check.
fn enter_cgroup(name: &str) -> Result<(), CommandError> {
    use crate::config::values::CgroupPath;
    use crate::plan::cgroup::plan_join;
    let name = CgroupPath::parse(name).map_err(|e| CommandError::Usage {
        message: format!("--cgroup: {}", e.message),
        hint: e.hint,
    })?;
    let not_ready = |e: crate::plan::cgroup::CgroupError| CommandError::HostNotReady {
        message: e.to_string(),
        hint: e.hint().to_string(),
    };
    let mounts = crate::exec::cgroup::mounts().context("read /proc/self/mountinfo")?;
    let plan = plan_join(&mounts, &name).map_err(not_ready)?;
    crate::exec::cgroup::join(&plan).map_err(not_ready)
}

/// Takes one of the app's `max` session slots: an exclusive `flock` on
/// `<base_dir>/.logs-sessions/<app>.<i>.lock`, held until the returned file
/// is closed (when serve-logs exits, however it ends).
fn take_session(base_dir: &AbsPath, app: &AppId, max: u32) -> Result<std::fs::File, CommandError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let dir = base_dir.join(".logs-sessions");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.as_str())
        .with_context(|| format!("create {dir}"))?;
    for i in 0..max {
        let path = dir.join(&format!("{app}.{i}.lock"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path.as_str())
            .with_context(|| format!("open {path}"))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
    }
    Err(CommandError::Usage {
        message: format!("app {app} already has {max} logs requests running, the most it may"),
        hint: "wait for one to end (a --follow ends with Ctrl-C)".into(),
    })
}

/// What one logs-key request may spend: bytes read and time.
struct Budget {
    deadline: tokio::time::Instant,
    seconds: u64,
    follow: bool,
    max_bytes: u64,
    bytes: std::cell::Cell<u64>,
}

/// Which limit of its budget stopped a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Bytes,
    Time,
}

impl Budget {
    fn spend(&self, bytes: u64) -> Result<(), Stop> {
        let total = self.bytes.get().saturating_add(bytes);
        self.bytes.set(total);
        if total > self.max_bytes {
            return Err(Stop::Bytes);
        }
        if tokio::time::Instant::now() >= self.deadline {
            return Err(Stop::Time);
        }
        Ok(())
    }

    /// The error a stop ends the request with. `searched` is, for a
    /// search back from the newest lines (`--tail`), how many lines it
    /// found and showed: the message says they are not all there are.
    fn error(&self, stop: Stop, searched: Option<usize>) -> CommandError {
        let unfinished = |message: String| {
            match searched {
            Some(0) => format!(
                "{message}: no line matched in what was read; older lines were not searched"
            ),
            Some(found) => format!(
                "{message}: the {found} line{} shown {} the newest that matched in what was read; older lines were not searched",
                if found == 1 { "" } else { "s" },
                if found == 1 { "is" } else { "are" },
            ),
            None => message,
        }
        };
        match stop {
            Stop::Bytes => CommandError::Usage {
                message: unfinished(format!(
                    "stopped after reading {} bytes of logs, the most one request reads",
                    self.max_bytes
                )),
                hint: "narrow the request with --tail or --since".into(),
            },
            Stop::Time if self.follow && searched.is_none() => CommandError::Usage {
                message: format!(
                    "--follow stopped after {} s, the longest one request follows",
                    self.seconds
                ),
                hint: "run it again to go on following".into(),
            },
            Stop::Time => CommandError::Usage {
                message: unfinished(format!(
                    "stopped after {} s, the longest one request takes",
                    self.seconds
                )),
                hint: "narrow the request with --tail, --since or a simpler --grep".into(),
            },
        }
    }
}

/// Compiles a `--grep` pattern within berth's limits.
pub fn compile_grep(pattern: &str) -> Result<Regex, CommandError> {
    let usage = |message: String| CommandError::Usage {
        message,
        hint: "give a short regular expression, e.g. 'PHP (Warning|Fatal)'".into(),
    };
    let chars = pattern.chars().count();
    if chars > MAX_GREP_CHARS {
        return Err(usage(format!(
            "--grep: the pattern is {chars} characters, more than the {MAX_GREP_CHARS} berth accepts"
        )));
    }
    RegexBuilder::new(pattern)
        .size_limit(GREP_SIZE_LIMIT)
        .dfa_size_limit(GREP_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => usage(format!(
                "--grep: the pattern compiles to more than the {limit} bytes berth allows"
            )),
            // The parser's message quotes the pattern: shown by the one rule.
            e => usage(format!(
                "--grep: {}",
                crate::text::visible_lines(&e.to_string())
            )),
        })
}

/// Checks a request's `--since` and `--grep` as serving it would; the
/// error is the message it would be refused with. For the property tests.
#[cfg(test)]
pub fn check_query(q: &LogQuery) -> Result<(), String> {
    Filter::new(q, OutputFormat::Text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Reads the request a logs-key client sent (`$SSH_ORIGINAL_COMMAND`):
/// `logs --env ENV [query]`, nothing else. The error is the message to
/// refuse it with.
pub fn parse_request(line: &str) -> Result<(EnvName, LogQuery), String> {
    let words = split_request(line).map_err(|e| format!("refused request: {e}"))?;
    if words.first().map(String::as_str) != Some("logs") {
        return Err(format!(
            "refused request {}",
            crate::config::values::quoted(line)
        ));
    }
    let request = <LogsRequest as clap::Parser>::try_parse_from(&words)
        .map_err(|e| format!("refused request: {}", e.kind()))?;
    let env = EnvName::parse(&request.env).map_err(|e| e.message)?;
    Ok((env, request.query))
}

/// Where the logs are read: over SSH with the deploy key, or on the host.
enum Host<'a> {
    Remote {
        remote: &'a Remote,
        target: &'a EnvTarget,
    },
    Local {
        app: AppId,
        base_dir: AbsPath,
        log_dir: AbsPath,
        docker_socket: AbsPath,
    },
}

impl Host<'_> {
    fn app(&self) -> &AppId {
        match self {
            Host::Remote { target, .. } => &target.app_dir.app.id,
            Host::Local { app, .. } => app,
        }
    }

    fn log_file(&self, env: &EnvName, kind: &str) -> AbsPath {
        let dir = match self {
            Host::Remote { target, .. } => &target.host().front.log_dir,
            Host::Local { log_dir, .. } => log_dir,
        };
        dir.join(&format!("{}.{env}.{kind}.log", self.app()))
    }

    fn saved_logs_dir(&self, env: &EnvName) -> AbsPath {
        let base_dir = match self {
            Host::Remote { target, .. } => &target.host().base_dir,
            Host::Local { base_dir, .. } => base_dir,
        };
        saved_logs_dir(base_dir, self.app(), env)
    }

    async fn state(&self, env: &EnvName) -> Result<HostState, CommandError> {
        match self {
            Host::Remote { remote, target } => Ok(observe(remote, target).await?.state),
            Host::Local { base_dir, app, .. } => {
                let path = base_dir.join(&format!("{app}/{env}/state.json"));
                match std::fs::read_to_string(path.as_str()) {
                    Ok(text) => {
                        Ok(serde_json::from_str(&text).with_context(|| format!("read {path}"))?)
                    }
                    Err(_) => Ok(HostState::default()),
                }
            }
        }
    }

    async fn docker(&self) -> Result<bollard::Docker, CommandError> {
        match self {
            Host::Remote { remote, target } => {
                Ok(remote.docker(&target.host().docker.socket).await?)
            }
            Host::Local { docker_socket, .. } => Ok(bollard::Docker::connect_with_unix(
                docker_socket.as_str(),
                60,
                bollard::API_DEFAULT_VERSION,
            )
            .context("connect to Docker")?
            .negotiate_version()
            .await
            .context("reach Docker")?),
        }
    }

    /// Which of `files` exist (regular files) on the host.
    async fn existing(&self, files: &[AbsPath]) -> Result<Vec<AbsPath>, CommandError> {
        match self {
            Host::Local { .. } => Ok(files
                .iter()
                .filter(|f| std::path::Path::new(f.as_str()).is_file())
                .cloned()
                .collect()),
            Host::Remote { remote, .. } => {
                let mut argv = vec![
                    "sh",
                    "-c",
                    r#"for f; do [ -f "$f" ] && printf '%s\n' "$f"; done; exit 0"#,
                    "sh",
                ];
                argv.extend(files.iter().map(AbsPath::as_str));
                let output = remote.run("look for saved logs", &argv).await?;
                let found = output.stdout;
                Ok(files
                    .iter()
                    .filter(|f| found.lines().any(|l| l == f.as_str()))
                    .cloned()
                    .collect())
            }
        }
    }

    /// The size of `file` now, where a `--follow` goes on reading; 0 when
    /// it does not exist (yet).
    async fn size(&self, file: &AbsPath) -> Result<u64, CommandError> {
        let mut lines = self
            .lines(&["stat", "-L", "-c", "%s", file.as_str()], None)
            .await?;
        let size = lines.next_line().await?;
        Ok(size.and_then(|s| s.trim().parse().ok()).unwrap_or(0))
    }

    /// The lines `argv` prints; on the host, no more than `max_bytes` + 1
    /// bytes of them are read, so that no line can be longer.
    async fn lines(
        &self,
        argv: &[&str],
        max_bytes: Option<u64>,
    ) -> Result<Lines<'_>, CommandError> {
        match self {
            Host::Remote { remote, .. } => Ok(Lines::Remote(remote.lines(argv).await?)),
            Host::Local { .. } => {
                let mut child = tokio::process::Command::new(argv[0])
                    .args(&argv[1..])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("start {}", argv[0]))?;
                let stdout = child.stdout.take().expect("stdout is piped");
                let limit = max_bytes.map_or(u64::MAX, |n| n.saturating_add(1));
                Ok(Lines::Local {
                    lines: BufReader::new(stdout.take(limit)).lines(),
                    _child: child,
                })
            }
        }
    }
}

enum Lines<'s> {
    Remote(RemoteLines<'s>),
    Local {
        lines: tokio::io::Lines<BufReader<tokio::io::Take<tokio::process::ChildStdout>>>,
        /// Killed on drop, with the reading.
        _child: tokio::process::Child,
    },
}

impl Lines<'_> {
    async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            Lines::Remote(lines) => lines.next_line().await,
            Lines::Local { lines, .. } => Ok(lines.next_line().await?),
        }
    }
}

/// One log a request reads.
#[derive(Debug, Clone)]
enum Source {
    /// A running slot's container (`docker logs`).
    Container { role: Role, id: String },
    /// The front's per-app `access` or `error` log.
    Front { kind: &'static str, file: AbsPath },
    /// The logs the host kept of a replaced slot (`<release>-<slot>.log`),
    /// the lines of these containers.
    Saved { file: AbsPath, roles: Vec<Role> },
}

impl Source {
    /// Reads one line of this source's text: its time and what it shows;
    /// `None` for a saved line of a container not asked for.
    fn parse(&self, line: &str) -> Option<Entry> {
        let entry = |time, source, text: &str| Entry {
            time,
            source,
            text: text.to_string(),
        };
        match self {
            Source::Container { role, .. } => {
                let (time, text) = split_docker_timestamp(line);
                Some(entry(time, role.source(), text))
            }
            Source::Front { kind, .. } => {
                let time = if *kind == "access" {
                    access_log_time(line)
                } else {
                    error_log_time(line)
                };
                Some(entry(time.map(end_of_second), kind, line))
            }
            Source::Saved { roles, .. } => match split_saved_line(line) {
                Some((role, time, text)) => roles
                    .contains(&role)
                    .then(|| entry(time, role.source(), text)),
                None => Some(entry(None, "saved", line)),
            },
        }
    }
}

/// Where a `--follow` goes on after the lines already shown.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// A file, from this byte on.
    From(u64),
    /// A container, its lines after this time (all of them when `None`).
    After(Option<Nanos>),
}

/// The sources a query reads, in the order equal times keep: php, nginx
/// (the slot's web container), access, error.
async fn sources(
    host: &Host<'_>,
    env: &EnvName,
    q: &LogQuery,
) -> Result<Vec<Source>, CommandError> {
    let wanted = |s: LogSource| q.source.contains(&s);
    let mut roles = Vec::new();
    if wanted(LogSource::App) || wanted(LogSource::Php) {
        roles.push(Role::Php);
    }
    if wanted(LogSource::App) || wanted(LogSource::Nginx) {
        roles.push(Role::Web);
    }
    let fronts: Vec<&'static str> = [(LogSource::Access, "access"), (LogSource::Error, "error")]
        .into_iter()
        .filter(|(s, _)| wanted(*s))
        .map(|(_, kind)| kind)
        .collect();
    if let Some(release) = &q.release {
        return saved_sources(host, env, release, roles, &fronts).await;
    }
    let mut sources = Vec::new();
    if !roles.is_empty() {
        let state = host.state(env).await?;
        let slot = match q.slot {
            SlotChoice::Active => state.active.map(|a| a.slot),
            SlotChoice::Backup => state.backup.map(|b| b.slot),
        };
        let Some(slot) = slot else {
            return Err(CommandError::Usage {
                message: format!(
                    "environment {env} has no {} slot on its host",
                    format!("{:?}", q.slot).to_lowercase()
                ),
                hint: "deploy a release first".into(),
            });
        };
        let docker = host.docker().await?;
        for role in roles {
            let id = container_id(&docker, host.app(), env, slot, role).await?;
            sources.push(Source::Container { role, id });
        }
    }
    for kind in fronts {
        sources.push(Source::Front {
            kind,
            file: host.log_file(env, kind),
        });
    }
    Ok(sources)
}

/// The saved logs of `release` (both slots', whichever it ran in).
async fn saved_sources(
    host: &Host<'_>,
    env: &EnvName,
    release: &str,
    roles: Vec<Role>,
    fronts: &[&str],
) -> Result<Vec<Source>, CommandError> {
    if let Some(kind) = fronts.first() {
        return Err(CommandError::Usage {
            message: format!(
                "--release reads the kept logs of a release's containers, not the front's {kind} log"
            ),
            hint: "ask for --source app, php or nginx with --release".into(),
        });
    }
    let release = ReleaseId::try_from(release.to_string()).map_err(|e| CommandError::Usage {
        message: format!("--release: {e}"),
        hint: "give a release id as `berth status` shows it".into(),
    })?;
    let dir = host.saved_logs_dir(env);
    let files: Vec<AbsPath> = [Slot::Blue, Slot::Green]
        .into_iter()
        .map(|slot| saved_logs_file(&dir, &release, slot))
        .collect();
    let files = host.existing(&files).await?;
    if files.is_empty() {
        return Err(CommandError::Usage {
            message: format!("the host kept no logs of release {release} of environment {env}"),
            hint: format!(
                "logs are kept when a deploy or restart replaces a release's containers, for the last {} replaced slots",
                crate::plan::deploy::SAVED_LOGS_KEEP
            ),
        });
    }
    Ok(files
        .into_iter()
        .map(|file| Source::Saved {
            file,
            roles: roles.clone(),
        })
        .collect())
}

async fn container_id(
    docker: &bollard::Docker,
    app: &AppId,
    env: &EnvName,
    slot: Slot,
    role: Role,
) -> Result<String, CommandError> {
    let filters = std::collections::HashMap::from([(
        "label",
        vec![
            format!("berth.app={app}"),
            format!("berth.env={env}"),
            format!("berth.slot={slot}"),
            format!("berth.role={}", role.label()),
        ],
    )]);
    let found = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .context("list the slot's containers")?;
    found
        .into_iter()
        .find_map(|c| c.id)
        .ok_or_else(|| anyhow::anyhow!("no {} container in slot {slot}", role.label()).into())
}

/// Reads the query's logs from `host` and prints the lines that pass, in
/// time order across its sources.
///
/// With `--tail N` (200 without `--since`), each source is searched back
/// from its newest line for its last N lines that pass `--since` and
/// `--grep`; the sources are merged and the last N shown. With only
/// `--since`, the sources stream forward and merge as they are read. A
/// `--follow` then prints new lines as they come.
async fn serve(
    host: &Host<'_>,
    env: &EnvName,
    q: &LogQuery,
    filter: &Filter,
) -> Result<(), CommandError> {
    let tail = q.tail.or(if filter.since.is_none() {
        Some(DEFAULT_TAIL)
    } else {
        None
    });
    let sources = sources(host, env, q).await?;
    let mut resume = Vec::new();
    for source in &sources {
        resume.push(match source {
            Source::Front { file, .. } if q.follow => Resume::From(host.size(file).await?),
            Source::Front { .. } | Source::Saved { .. } => Resume::From(0),
            Source::Container { .. } => Resume::After(None),
        });
    }
    let docker = if sources
        .iter()
        .any(|s| matches!(s, Source::Container { .. }))
    {
        Some(host.docker().await?)
    } else {
        None
    };
    let read = Reading {
        host,
        docker: docker.as_ref(),
        filter,
        follow: q.follow,
    };
    let stopped = match tail {
        Some(n) => {
            let mut found = Vec::new();
            let mut stopped = None;
            for (source, resume) in sources.iter().zip(&mut resume) {
                let (lines, stop) = read.newest(source, n, resume).await?;
                found.push(lines);
                if stop.is_some() {
                    stopped = stop;
                    break;
                }
            }
            let lines = last(merge_by_time(found), n);
            for line in &lines {
                if !filter.print(line) {
                    return Ok(());
                }
            }
            stopped.map(|stop| (stop, Some(lines.len())))
        }
        None => read
            .forward(&sources, &mut resume)
            .await?
            .map(|stop| (stop, None)),
    };
    if let Some((stop, searched)) = stopped {
        return Err(filter.stopped(stop, searched));
    }
    if q.follow {
        return read.live(&sources, &resume).await;
    }
    Ok(())
}

/// What reading needs besides the source.
struct Reading<'a, 'h> {
    host: &'a Host<'h>,
    docker: Option<&'a bollard::Docker>,
    filter: &'a Filter,
    follow: bool,
}

/// Lines of a source as they are read, whatever reads them.
enum Reader<'s> {
    Lines(Box<Lines<'s>>),
    Docker {
        stream: futures_util::stream::BoxStream<
            's,
            Result<bollard::container::LogOutput, bollard::errors::Error>,
        >,
        pending: std::collections::VecDeque<String>,
    },
}

impl Reader<'_> {
    async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            Reader::Lines(lines) => lines.next_line().await,
            Reader::Docker { stream, pending } => loop {
                if let Some(line) = pending.pop_front() {
                    return Ok(Some(line));
                }
                match stream.next().await {
                    None => return Ok(None),
                    Some(output) => {
                        let text = output.context("read container logs")?.to_string();
                        pending.extend(text.lines().map(str::to_string));
                    }
                }
            },
        }
    }
}

impl<'a, 'h> Reading<'a, 'h> {
    fn docker(&self) -> &'a bollard::Docker {
        self.docker
            .expect("Docker is connected when a container is read")
    }

    fn max_bytes(&self) -> Option<u64> {
        self.filter.budget.as_ref().map(|b| b.max_bytes)
    }

    /// `docker logs` of a container: the last `tail` lines (all without),
    /// from `since` (whole seconds), and on with `follow`.
    fn container(
        &self,
        id: &str,
        tail: Option<u64>,
        since: Option<i64>,
        follow: bool,
    ) -> Reader<'a> {
        let mut options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(follow);
        if let Some(n) = tail {
            options = options.tail(&n.to_string());
        }
        if let Some(since) = since {
            options = options.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        Reader::Docker {
            stream: self.docker().logs(id, Some(options.build())).boxed(),
            pending: std::collections::VecDeque::new(),
        }
    }

    /// The next line of `reader`, its bytes spent from the budget; `Err`
    /// with the limit that stopped it, `Ok(None)` at its end or on Ctrl-C.
    async fn next(
        &self,
        reader: &mut Reader<'_>,
    ) -> Result<Result<Option<String>, Stop>, CommandError> {
        let next = tokio::select! {
            line = reader.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
            stop = self.filter.out_of_time() => return Ok(Err(stop)),
        };
        if let (Some(line), Some(budget)) = (&next, &self.filter.budget) {
            if let Err(stop) = budget.spend(line.len() as u64 + 1) {
                return Ok(Err(stop));
            }
        }
        Ok(Ok(next))
    }

    /// The last `n` lines of `source` that pass the filter, in the order
    /// of the source, found by reading back from its newest line; with
    /// the limit that stopped the search early, if one did.
    async fn newest(
        &self,
        source: &Source,
        n: u64,
        resume: &mut Resume,
    ) -> Result<(Vec<Entry>, Option<Stop>), CommandError> {
        let want = usize::try_from(n).unwrap_or(usize::MAX);
        match source {
            Source::Front { file, .. } | Source::Saved { file, .. } => {
                // `tac` reads the file from its end, a block at a time.
                let mut found = Vec::new();
                let mut stop = None;
                if want > 0 {
                    let lines = self
                        .host
                        .lines(&["tac", file.as_str()], self.max_bytes())
                        .await?;
                    let mut reader = Reader::Lines(Box::new(lines));
                    loop {
                        let line = match self.next(&mut reader).await? {
                            Ok(Some(line)) => line,
                            Ok(None) => break,
                            Err(s) => {
                                stop = Some(s);
                                break;
                            }
                        };
                        let Some(entry) = source.parse(&line) else {
                            continue;
                        };
                        if self.filter.before_since(entry.time) {
                            break;
                        }
                        if self.filter.matches(&entry.text) {
                            found.push(entry);
                            if found.len() >= want {
                                break;
                            }
                        }
                    }
                }
                found.reverse();
                Ok((found, stop))
            }
            Source::Container { id, .. } => {
                // Docker reads a container's log forward from a line
                // count back: ask for more lines until enough matched or
                // the log's start (or --since) is reached.
                let mut ask = n.max(1);
                loop {
                    let mut reader = self.container(id, Some(ask), self.filter.since, false);
                    let mut found = std::collections::VecDeque::new();
                    let mut read = 0_u64;
                    let mut stop = None;
                    loop {
                        let line = match self.next(&mut reader).await? {
                            Ok(Some(line)) => line,
                            Ok(None) => break,
                            Err(s) => {
                                stop = Some(s);
                                break;
                            }
                        };
                        read += 1;
                        let Some(entry) = source.parse(&line) else {
                            continue;
                        };
                        if entry.time.is_some() {
                            *resume = Resume::After(entry.time);
                        }
                        if self.filter.before_since(entry.time) || !self.filter.matches(&entry.text)
                        {
                            continue;
                        }
                        found.push_back(entry);
                        if found.len() > want {
                            found.pop_front();
                        }
                    }
                    if stop.is_some() || found.len() >= want || read < ask || ask == u64::MAX {
                        return Ok((found.into(), stop));
                    }
                    ask = ask.saturating_mul(4);
                }
            }
        }
    }

    /// All lines of the sources that pass the filter, read forward and
    /// printed in time order as they merge; the limit that stopped it, if
    /// one did.
    async fn forward(
        &self,
        sources: &[Source],
        resume: &mut [Resume],
    ) -> Result<Option<Stop>, CommandError> {
        let mut readers = Vec::new();
        for (source, resume) in sources.iter().zip(resume.iter()) {
            readers.push(match (source, resume) {
                (Source::Container { id, .. }, _) => {
                    self.container(id, None, self.filter.since, false)
                }
                // A follow goes on from the size measured before.
                (Source::Front { file, .. }, Resume::From(size)) if self.follow => {
                    let size = size.to_string();
                    Reader::Lines(Box::new(
                        self.host
                            .lines(&["head", "-c", &size, file.as_str()], self.max_bytes())
                            .await?,
                    ))
                }
                (Source::Front { file, .. } | Source::Saved { file, .. }, _) => {
                    Reader::Lines(Box::new(
                        self.host
                            .lines(&["tail", "-n", "+1", file.as_str()], self.max_bytes())
                            .await?,
                    ))
                }
            });
        }
        let mut merge = StreamMerge::new(sources.len());
        loop {
            while let Some(entry) = merge.pop() {
                if !self.filter.print(&entry) {
                    return Ok(None);
                }
            }
            let Some(i) = merge.wanted() else {
                return Ok(None);
            };
            let line = match self.next(&mut readers[i]).await? {
                Ok(Some(line)) => line,
                Ok(None) => {
                    merge.close(i);
                    continue;
                }
                Err(stop) => return Ok(Some(stop)),
            };
            let Some(entry) = sources[i].parse(&line) else {
                continue;
            };
            if let (Source::Container { .. }, Some(_)) = (&sources[i], entry.time) {
                resume[i] = Resume::After(entry.time);
            }
            if !self.filter.before_since(entry.time) && self.filter.matches(&entry.text) {
                merge.push(i, entry);
            }
        }
    }

    /// `--follow`: new lines of every source as they come, each after
    /// what was already shown of its source.
    async fn live(&self, sources: &[Source], resume: &[Resume]) -> Result<(), CommandError> {
        let mut readers = Vec::new();
        for (i, (source, resume)) in sources.iter().zip(resume).enumerate() {
            let reader = match (source, resume) {
                (Source::Container { id, .. }, Resume::After(after)) => {
                    // Docker's `since` is in whole seconds: the lines of
                    // that second already shown are skipped below.
                    let since = after.map_or_else(now_epoch, seconds);
                    self.container(id, None, Some(since), true)
                }
                (Source::Front { file, .. }, Resume::From(size)) => {
                    let from = format!("+{}", size.saturating_add(1));
                    Reader::Lines(Box::new(
                        self.host
                            .lines(&["tail", "-c", &from, "-F", file.as_str()], None)
                            .await?,
                    ))
                }
                _ => continue,
            };
            readers.push((i, reader));
        }
        let streams = readers.into_iter().map(|(i, reader)| {
            stream::unfold(Some(reader), move |reader| async move {
                let mut reader = reader?;
                match reader.next_line().await {
                    Ok(Some(line)) => Some((Ok((i, line)), Some(reader))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            })
            .boxed_local()
        });
        let mut merged = stream::select_all(streams);
        loop {
            let next = tokio::select! {
                item = merged.next() => item,
                _ = tokio::signal::ctrl_c() => None,
                stop = self.filter.out_of_time() => return Err(self.filter.stopped(stop, None)),
            };
            let Some(item) = next else { return Ok(()) };
            let (i, line) = item?;
            if let Some(budget) = &self.filter.budget {
                budget
                    .spend(line.len() as u64 + 1)
                    .map_err(|stop| self.filter.stopped(stop, None))?;
            }
            let Some(entry) = sources[i].parse(&line) else {
                continue;
            };
            if let (Resume::After(Some(after)), Some(time)) = (resume[i], entry.time) {
                if time <= after {
                    continue;
                }
            }
            if self.filter.matches(&entry.text) && !self.filter.print(&entry) {
                return Ok(());
            }
        }
    }
}

/// What to keep and how to print it, and for a logs-key request what it
/// may spend.
struct Filter {
    since: Option<i64>,
    grep: Option<Regex>,
    format: OutputFormat,
    budget: Option<Budget>,
}

impl Filter {
    fn new(q: &LogQuery, format: OutputFormat) -> Result<Filter, CommandError> {
        let since = match &q.since {
            Some(text) => Some(
                now_epoch()
                    - parse_duration(text).map_err(|e| CommandError::Usage {
                        message: format!("--since: {}", e.message),
                        hint: e.hint,
                    })? as i64,
            ),
            None => None,
        };
        let grep = match &q.grep {
            Some(pattern) => Some(compile_grep(pattern)?),
            None => None,
        };
        Ok(Filter {
            since,
            grep,
            format,
            budget: None,
        })
    }

    /// Resolves when the budget's time is up; never without a budget.
    async fn out_of_time(&self) -> Stop {
        match &self.budget {
            Some(budget) => {
                tokio::time::sleep_until(budget.deadline).await;
                Stop::Time
            }
            None => std::future::pending().await,
        }
    }

    /// The error a stop of the budget ends the request with.
    fn stopped(&self, stop: Stop, searched: Option<usize>) -> CommandError {
        match &self.budget {
            Some(budget) => budget.error(stop, searched),
            None => anyhow::anyhow!("stopped reading logs").into(),
        }
    }

    /// Whether a line is older than `--since`.
    fn before_since(&self, time: Option<Nanos>) -> bool {
        matches!((self.since, time), (Some(since), Some(time)) if seconds(time) < since)
    }

    fn matches(&self, text: &str) -> bool {
        self.grep.as_ref().is_none_or(|re| re.is_match(text))
    }

    /// Prints a line; `false` when stdout is gone.
    fn print(&self, entry: &Entry) -> bool {
        let line = entry.shown();
        let printed = match self.format {
            OutputFormat::Text => writeln!(std::io::stdout(), "{line}"),
            OutputFormat::Json => writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string(&line).expect("a log line serializes")
            ),
        };
        printed.is_ok()
    }
}
