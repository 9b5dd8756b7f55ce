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
use regex::Regex;
use tokio::io::{AsyncBufReadExt, BufReader};

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
    let words = split_request(&line).map_err(|e| refuse(format!("refused request: {e}")))?;
    if words.first().map(String::as_str) != Some("logs") {
        return Err(refuse(format!(
            "refused request {}",
            crate::config::values::quoted(&line)
        )));
    }
    let request = <LogsRequest as clap::Parser>::try_parse_from(&words)
        .map_err(|e| refuse(format!("refused request: {}", e.kind())))?;
    let env_name = EnvName::parse(&request.env).map_err(|e| refuse(e.message))?;
    let path = |p: &PathBuf, what: &str| {
        AbsPath::parse(&p.display().to_string())
            .map_err(|e| refuse(format!("{what}: {}", e.message)))
    };
    let host = Host::Local {
        app,
        base_dir: path(&args.base_dir, "--base-dir")?,
        log_dir: path(&args.log_dir, "--log-dir")?,
        docker_socket: path(&args.docker_socket, "--docker-socket")?,
    };
    let filter = Filter::new(&request.query, reporter.format)?;
    runtime()?.block_on(serve(&host, &env_name, &request.query, &filter))
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

    async fn lines(&self, argv: &[&str]) -> Result<Lines<'_>, CommandError> {
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
                Ok(Lines::Local {
                    lines: BufReader::new(stdout).lines(),
                    _child: child,
                })
            }
        }
    }
}

enum Lines<'s> {
    Remote(RemoteLines<'s>),
    Local {
        lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
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
            let mut lines = host.lines(&argv).await?;
            loop {
                let next = tokio::select! {
                    line = lines.next_line() => line?,
                    _ = tokio::signal::ctrl_c() => None,
                };
                let Some(line) = next else { break };
                if !filter.emit(parse(&line), kind, &line) {
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

/// What to keep and how to print it.
struct Filter {
    since: Option<i64>,
    grep: Option<Regex>,
    format: OutputFormat,
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
            Some(pattern) => Some(Regex::new(pattern).map_err(|e| CommandError::Usage {
                message: format!("--grep: {e}"),
                hint: "give a regular expression, e.g. 'PHP (Warning|Fatal)'".into(),
            })?),
            None => None,
        };
        Ok(Filter {
            since,
            grep,
            format,
        })
    }

    /// Prints the line if it passes; `false` when stdout is gone.
    fn emit(&self, time: Option<i64>, source: &'static str, text: &str) -> bool {
        if let (Some(since), Some(time)) = (self.since, time) {
            if time < since {
                return true;
            }
        }
        if self.grep.as_ref().is_some_and(|re| !re.is_match(text)) {
            return true;
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
        printed.is_ok()
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
        };
        let Some((source, item)) = next else { break };
        let output = item.context("read container logs")?;
        let text = output.to_string();
        for line in text.lines() {
            let (time, text) = split_docker_timestamp(line);
            if !filter.emit(time, source, text) {
                return Ok(());
            }
        }
    }
    Ok(())
}
