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
    access_log_time, error_log_time, parse_duration, rfc3339, split_docker_timestamp,
    split_request, LogLine,
};
use crate::plan::release::Slot;
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
    let source = format!("{:?}", q.source).to_lowercase();
    let slot = format!("{:?}", q.slot).to_lowercase();
    let mut argv: Vec<String> = vec![
        "logs".into(),
        "--env".into(),
        env.to_string(),
        "--source".into(),
        source,
        "--slot".into(),
        slot,
    ];
    for (flag, value) in [
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

impl Budget {
    fn spend(&self, bytes: u64) -> Result<(), CommandError> {
        let total = self.bytes.get().saturating_add(bytes);
        self.bytes.set(total);
        if total > self.max_bytes {
            return Err(CommandError::Usage {
                message: format!(
                    "stopped after reading {} bytes of logs, the most one request reads",
                    self.max_bytes
                ),
                hint: "narrow the request with --tail or --since".into(),
            });
        }
        if tokio::time::Instant::now() >= self.deadline {
            return Err(self.out_of_time());
        }
        Ok(())
    }

    fn out_of_time(&self) -> CommandError {
        if self.follow {
            CommandError::Usage {
                message: format!(
                    "--follow stopped after {} s, the longest one request follows",
                    self.seconds
                ),
                hint: "run it again to go on following".into(),
            }
        } else {
            CommandError::Usage {
                message: format!(
                    "stopped after {} s, the longest one request takes",
                    self.seconds
                ),
                hint: "narrow the request with --tail, --since or a simpler --grep".into(),
            }
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

/// Reads the query's log from `host` and prints the lines that pass.
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
    match q.source {
        LogSource::Access | LogSource::Error => {
            let (kind, parse): (&'static str, fn(&str) -> Option<i64>) =
                if q.source == LogSource::Access {
                    ("access", access_log_time)
                } else {
                    ("error", error_log_time)
                };
            let file = host.log_file(env, kind);
            let count = tail.map_or("+1".to_string(), |n| n.to_string());
            let mut argv = vec!["tail", "-n", &count];
            if q.follow {
                argv.push("-F");
            }
            argv.push(file.as_str());
            let max_bytes = filter.budget.as_ref().map(|b| b.max_bytes);
            let mut lines = host.lines(&argv, max_bytes).await?;
            loop {
                let next = tokio::select! {
                    line = lines.next_line() => line?,
                    _ = tokio::signal::ctrl_c() => None,
                    error = filter.out_of_time() => return Err(error),
                };
                let Some(line) = next else { break };
                if !filter.emit(parse(&line), kind, &line)? {
                    break;
                }
            }
            Ok(())
        }
        source => {
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
            let roles: &[&str] = match source {
                LogSource::Php => &["php"],
                LogSource::Nginx => &["web"],
                _ => &["php", "web"],
            };
            container_lines(host, env, slot, roles, tail, q.follow, filter).await
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

    /// Resolves with the budget's error when its time is up; never without
    /// a budget.
    async fn out_of_time(&self) -> CommandError {
        match &self.budget {
            Some(budget) => {
                tokio::time::sleep_until(budget.deadline).await;
                budget.out_of_time()
            }
            None => std::future::pending().await,
        }
    }

    /// Prints the line if it passes; `false` when stdout is gone, an error
    /// when the request's budget is spent.
    fn emit(
        &self,
        time: Option<i64>,
        source: &'static str,
        text: &str,
    ) -> Result<bool, CommandError> {
        if let Some(budget) = &self.budget {
            budget.spend(text.len() as u64 + 1)?;
        }
        if let (Some(since), Some(time)) = (self.since, time) {
            if time < since {
                return Ok(true);
            }
        }
        if self.grep.as_ref().is_some_and(|re| !re.is_match(text)) {
            return Ok(true);
        }
        let line = LogLine {
            time: time.map(rfc3339),
            source,
            text: text.to_string(),
        };
        let printed = match self.format {
            OutputFormat::Text => writeln!(std::io::stdout(), "{line}"),
            OutputFormat::Json => writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string(&line).expect("a log line serializes")
            ),
        };
        Ok(printed.is_ok())
    }
}

async fn container_lines(
    host: &Host<'_>,
    env: &EnvName,
    slot: Slot,
    roles: &[&str],
    tail: Option<u64>,
    follow: bool,
    filter: &Filter,
) -> Result<(), CommandError> {
    let docker = host.docker().await?;
    let mut streams = Vec::new();
    for role in roles {
        let filters = std::collections::HashMap::from([(
            "label",
            vec![
                format!("berth.app={}", host.app()),
                format!("berth.env={env}"),
                format!("berth.slot={slot}"),
                format!("berth.role={role}"),
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
        let Some(id) = found.into_iter().find_map(|c| c.id) else {
            return Err(anyhow::anyhow!("no {role} container in slot {slot}").into());
        };
        let source: &'static str = if *role == "php" { "php" } else { "nginx" };
        let mut options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(follow);
        if let Some(n) = tail {
            options = options.tail(&n.to_string());
        }
        if let Some(since) = filter.since {
            options = options.since(since as i32);
        }
        let logs = docker
            .logs(&id, Some(options.build()))
            .map(move |item| (source, item));
        streams.push(logs.boxed());
    }
    let mut merged = stream::select_all(streams);
    loop {
        let next = tokio::select! {
            item = merged.next() => item,
            _ = tokio::signal::ctrl_c() => None,
            error = filter.out_of_time() => return Err(error),
        };
        let Some((source, item)) = next else { break };
        let output = item.context("read container logs")?;
        let text = output.to_string();
        for line in text.lines() {
            let (time, text) = split_docker_timestamp(line);
            if !filter.emit(time, source, text)? {
                return Ok(());
            }
        }
    }
    Ok(())
}
