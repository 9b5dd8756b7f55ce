//! Carries out a deploy, rollback or restart plan on a connected host,
//! step by step: it runs each step's planned commands within their
//! timeouts, writes its files and polls as the step says. Every argv,
//! script and time limit comes from `plan`; nothing is decided here.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::remote::Remote;
use crate::plan::command::RemoteCommand;
use crate::plan::deploy::{Plan, Step};
use crate::report::Reporter;

/// A step that failed, with its number in the plan.
#[derive(Debug, thiserror::Error)]
#[error("step {number} ({step}) failed")]
pub struct StepFailed {
    pub number: usize,
    pub step: String,
    /// Whether the front was already switched to the new release before
    /// the failure; if not, the previous release still serves.
    pub front_switched: bool,
    /// Whether the plan's restore of the warm backup ran, and how it went.
    pub backup: BackupAfterFailure,
    #[source]
    pub source: anyhow::Error,
}

/// The warm backup after a failed step.
#[derive(Debug)]
pub enum BackupAfterFailure {
    /// Nothing to restore: no backup, or the front was already switched.
    Untouched,
    Restored,
    /// Restoring it failed: the backup slot may not serve.
    NotRestored(anyhow::Error),
}

/// Runs every step in order; stops at the first failure.
pub async fn apply(
    remote: &Remote,
    plan: &Plan,
    code: Option<&Path>,
    reporter: &Reporter,
) -> Result<(), StepFailed> {
    let mut front_switched = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let started = Instant::now();
        reporter.info(&format!("{}. {step}", i + 1));
        if let Err(source) = run_step(remote, step, code, reporter).await {
            let backup = if front_switched || plan.on_failure.is_empty() {
                BackupAfterFailure::Untouched
            } else {
                reporter.info(&format!("step {} failed: restoring the warm backup", i + 1));
                restore(remote, &plan.on_failure, reporter).await
            };
            return Err(StepFailed {
                number: i + 1,
                step: step.to_string(),
                front_switched,
                backup,
                source,
            });
        }
        front_switched |= matches!(step, Step::SwitchFront { .. });
        reporter.detail(&format!("   done in {} ms", started.elapsed().as_millis()));
    }
    Ok(())
}

/// Runs the plan's restore steps, stopping at the first failure.
async fn restore(remote: &Remote, steps: &[Step], reporter: &Reporter) -> BackupAfterFailure {
    for step in steps {
        reporter.info(&format!("   - {step}"));
        if let Err(e) = run_step(remote, step, None, reporter).await {
            return BackupAfterFailure::NotRestored(e.context(format!("{step}")));
        }
    }
    BackupAfterFailure::Restored
}

async fn run_step(
    remote: &Remote,
    step: &Step,
    code: Option<&Path>,
    reporter: &Reporter,
) -> Result<()> {
    match step {
        Step::SyncCode {
            mkdir,
            staging,
            link_dest,
            lock,
            lock_wait,
            move_into_place,
            ..
        } => {
            let Some(code) = code else {
                bail!("no code checkout was given to sync");
            };
            run(remote, mkdir, reporter).await?;
            remote
                .rsync(code, staging, link_dest.as_ref(), lock, *lock_wait)
                .await?;
            run(remote, move_into_place, reporter).await?;
        }
        Step::UploadConf {
            mkdir,
            dir,
            files,
            timeout,
        } => {
            run(remote, mkdir, reporter).await?;
            // One channel per file over the same SSH session, all at once.
            let paths: Vec<_> = files.iter().map(|file| dir.join(&file.name)).collect();
            let writes = paths
                .iter()
                .zip(files)
                .map(|(path, file)| remote.write_file(path, file.contents.as_bytes()));
            let what = format!("writing the files in {dir}");
            within(
                remote,
                *timeout,
                &what,
                futures_util::future::try_join_all(writes),
            )
            .await?;
        }
        Step::UploadSecrets {
            path,
            contents,
            timeout,
            ..
        } => {
            let write = remote.write_private_file(path, contents.expose().as_bytes());
            within(remote, *timeout, &format!("writing {path}"), write).await?;
        }
        Step::ApplyEgress { command, .. }
        | Step::EnsureStorage { command, .. }
        | Step::ComposeUp { command, .. }
        | Step::Prune { command, .. } => run(remote, command, reporter).await?,
        Step::SaveLogs { command, .. } => {
            let output = output(remote, command, reporter).await?;
            // The script says what it kept or why not; it never stops a
            // deploy (an old container already gone is not a failure).
            let said = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            for line in said.lines() {
                reporter.detail(&format!("   {line}"));
            }
        }
        Step::WaitHealthy {
            project,
            address,
            port,
            check,
            domain,
            timeout,
            interval,
            logs,
        } => {
            let path = &check.path;
            let deadline = Instant::now() + *timeout;
            loop {
                let last = match remote
                    .http_get(address, &port.to_string(), path.as_str(), domain.as_str())
                    .await
                {
                    Ok((status, body)) if check.passes(status, &body) => break,
                    Ok((status, _)) if status != check.status => format!("answered {status}"),
                    Ok((status, _)) => format!(
                        "answered {status} without the text {}",
                        crate::config::values::quoted(
                            check.contains.as_ref().map_or("", |t| t.as_str())
                        )
                    ),
                    Err(e) => format!("{e:#}"),
                };
                if Instant::now() >= deadline {
                    let logs = output(remote, logs, reporter)
                        .await
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default();
                    bail!(
                        "{path} on {address}:{port} was not healthy after {}s (last: {last})\n--- last log lines of {project}\n{}",
                        timeout.as_secs(),
                        logs.trim_end()
                    );
                }
                tokio::time::sleep(*interval).await;
            }
        }
        Step::SwitchFront { command, .. } => {
            let output = output(remote, command, reporter).await?;
            match output.status.code() {
                Some(0) => {}
                Some(91) => bail!(
                    "the front nginx refused the new vhost; the previous one was restored:\n{}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                _ => bail!(
                    "switching the front nginx failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            }
        }
        Step::WaitFront {
            address,
            port,
            domain,
            release,
            in_a_row,
            timeout,
            interval,
        } => {
            let deadline = Instant::now() + *timeout;
            let mut seen = 0;
            loop {
                let body = remote
                    .http_get(
                        address,
                        &port.to_string(),
                        "/.berth/release",
                        domain.as_str(),
                    )
                    .await;
                let last = match body {
                    Ok((200, body)) if body.trim() == release.as_str() => {
                        seen += 1;
                        if seen >= *in_a_row {
                            break;
                        }
                        continue;
                    }
                    Ok((status, body)) => format!("answered {status}: {}", body.trim()),
                    Err(e) => format!("{e:#}"),
                };
                seen = 0;
                if Instant::now() >= deadline {
                    bail!(
                        "the front on {address}:{port} did not serve {release} within {}s (last: {last})",
                        timeout.as_secs()
                    );
                }
                tokio::time::sleep(*interval).await;
            }
        }
        Step::RecordState {
            path,
            state,
            timeout,
        } => {
            let json = serde_json::to_vec_pretty(state).context("serialize state.json")?;
            let write = remote.write_file(path, &json);
            within(remote, *timeout, &format!("writing {path}"), write).await?;
        }
    }
    Ok(())
}

/// Runs a planned command and returns its result, whatever its exit
/// status; fails when it does not end within its timeout.
async fn output(
    remote: &Remote,
    command: &RemoteCommand,
    reporter: &Reporter,
) -> Result<std::process::Output> {
    reporter.detail(&format!("   $ {command}"));
    let argv: Vec<&str> = command.argv.iter().map(String::as_str).collect();
    within(
        remote,
        command.timeout,
        &format!("`{command}`"),
        remote.output(&argv, None),
    )
    .await
}

/// Runs a planned command; fails when it exits non-zero, with its stderr.
async fn run(remote: &Remote, command: &RemoteCommand, reporter: &Reporter) -> Result<()> {
    let output = output(remote, command, reporter).await?;
    if !output.status.success() {
        bail!(
            "`{command}` on host {} failed ({}): {}",
            remote.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Awaits `work`, failing when it takes longer than `limit`. The remote
/// side of a command given up on is left to the SSH session's end.
async fn within<T>(
    remote: &Remote,
    limit: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => bail!(
            "{what} on host {} did not finish within {}s",
            remote.name(),
            limit.as_secs()
        ),
    }
}
