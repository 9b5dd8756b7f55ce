//! `berth logs`: an app's container output (through the Docker API over
//! SSH) and its front nginx access and error logs (read on the host), each
//! line stamped with its time and source.

use std::io::Write;

use anyhow::Context;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use futures_util::stream::{self, StreamExt};
use regex::Regex;

use super::target::{now_epoch, observe, EnvTarget};
use super::{runtime, CommandError};
use crate::cli::{LogSource, LogsArgs, OutputFormat, SlotChoice};
use crate::env::Env;
use crate::exec::remote::Remote;
use crate::plan::logs::{
    access_log_time, error_log_time, parse_duration, rfc3339, split_docker_timestamp, LogLine,
};
use crate::report::Reporter;

/// Lines shown when neither --tail nor --since is given.
const DEFAULT_TAIL: u64 = 200;

pub fn run(args: &LogsArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let t = &args.target;
    let target = EnvTarget::load(&t.app_dir, &t.access, &t.env, &t.templates, env)?;
    let since = match &args.since {
        Some(text) => Some(
            now_epoch()
                - parse_duration(text).map_err(|e| CommandError::Usage {
                    message: format!("--since: {}", e.message),
                    hint: e.hint,
                })? as i64,
        ),
        None => None,
    };
    let grep = match &args.grep {
        Some(pattern) => Some(Regex::new(pattern).map_err(|e| CommandError::Usage {
            message: format!("--grep: {e}"),
            hint: "give a regular expression, e.g. 'PHP (Warning|Fatal)'".into(),
        })?),
        None => None,
    };
    let tail = args.tail.or(if since.is_none() {
        Some(DEFAULT_TAIL)
    } else {
        None
    });
    let filter = Filter {
        since,
        grep,
        format: reporter.format,
    };
    runtime()?.block_on(async {
        let remote = Remote::connect(target.host(), &target.ssh_key).await?;
        match args.source {
            LogSource::Access | LogSource::Error => {
                let log = if args.source == LogSource::Access {
                    "access"
                } else {
                    "error"
                };
                let file = target.host().front.log_dir.join(&format!(
                    "{}.{}.{log}.log",
                    target.app_dir.app.id, target.env
                ));
                file_lines(&remote, &file, args.source, tail, args.follow, &filter).await?;
            }
            source => {
                let observed = observe(&remote, &target).await?;
                let slot = match args.slot {
                    SlotChoice::Active => observed.state.active.map(|a| a.slot),
                    SlotChoice::Backup => observed.state.backup.map(|b| b.slot),
                };
                let Some(slot) = slot else {
                    return Err(CommandError::Usage {
                        message: format!(
                            "environment {} has no {:?} slot on its host",
                            target.env, args.slot
                        )
                        .to_lowercase(),
                        hint: "deploy a release first".into(),
                    });
                };
                let roles: &[&str] = match source {
                    LogSource::Php => &["php"],
                    LogSource::Nginx => &["web"],
                    _ => &["php", "web"],
                };
                container_lines(
                    &remote,
                    &target,
                    slot.name(),
                    roles,
                    tail,
                    args.follow,
                    &filter,
                )
                .await?;
            }
        }
        Ok(())
    })
}

/// What to keep and how to print it.
struct Filter {
    since: Option<i64>,
    grep: Option<Regex>,
    format: OutputFormat,
}

impl Filter {
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

async fn file_lines(
    remote: &Remote,
    file: &crate::config::values::AbsPath,
    source: LogSource,
    tail: Option<u64>,
    follow: bool,
    filter: &Filter,
) -> Result<(), CommandError> {
    let count = tail.map_or("+1".to_string(), |n| n.to_string());
    let mut argv = vec!["tail", "-n", &count];
    if follow {
        argv.push("-F");
    }
    argv.push(file.as_str());
    let (name, parse): (&'static str, fn(&str) -> Option<i64>) = match source {
        LogSource::Access => ("access", access_log_time),
        _ => ("error", error_log_time),
    };
    let mut lines = remote.lines(&argv).await?;
    loop {
        let next = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = next else { break };
        if !filter.emit(parse(&line), name, &line) {
            break;
        }
    }
    Ok(())
}

async fn container_lines(
    remote: &Remote,
    target: &EnvTarget,
    slot: &str,
    roles: &[&str],
    tail: Option<u64>,
    follow: bool,
    filter: &Filter,
) -> Result<(), CommandError> {
    let docker = remote.docker(&target.host().docker.socket).await?;
    let mut streams = Vec::new();
    for role in roles {
        let filters = std::collections::HashMap::from([(
            "label",
            vec![
                format!("berth.app={}", target.app_dir.app.id),
                format!("berth.env={}", target.env),
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
