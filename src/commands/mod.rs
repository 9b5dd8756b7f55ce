//! One module per subcommand: glue only. Each resolves its settings, then
//! observes, plans, executes and reports through the layers below.

mod app_create;
mod approval;
mod checkout;
mod demo;
mod deploy;
mod dns;
mod egress;
mod gitlab;
mod host_boot;
pub(crate) mod logs;
mod render;
mod report;
mod request;
mod restart;
mod review;
mod rollback;
mod status;
mod storage;
mod target;
mod validate;

use std::path::PathBuf;

use crate::cli::{Cli, Command};
use crate::config::Problems;
use crate::env::Env;
use crate::exit::ExitStatus;
use crate::report::Reporter;

/// How a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Invalid(Problems),
    /// A setting the job must provide (a CI/CD variable) is missing.
    #[error("{message}")]
    NotAvailable { message: String, hint: String },
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// The host is not set up for what was asked (exit 1, with a hint).
    #[error("{message}")]
    HostNotReady { message: String, hint: String },
    /// A service refused or could not do what was asked (exit 1, with a
    /// hint), e.g. a DNS zone's sync.
    #[error("{message}")]
    Refused { message: String, hint: String },
    #[error(transparent)]
    Stopped(crate::exec::apply::StepFailed),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<Problems> for CommandError {
    fn from(problems: Problems) -> Self {
        CommandError::Invalid(problems)
    }
}

/// Runs the parsed command line and says how it ended.
pub fn run(cli: Cli, env: Env) -> ExitStatus {
    let global = &cli.global;
    let reporter = Reporter::new(global.output, global.quiet, global.verbose, env.no_color);
    let result = match &cli.command {
        Command::Validate(args) => validate::run(args, &env, &reporter),
        Command::Render(args) => render::run(args, global.dry_run, &env, &reporter),
        Command::Check(args) => review::check(args, global.dry_run, &env, &reporter),
        Command::Plan(args) => review::plan(args, global.dry_run, &env, &reporter),
        Command::Checkout(args) => checkout::run(args, global.dry_run, &env, &reporter),
        Command::Deploy(args) => deploy::run(args, global.dry_run, &env, &reporter),
        Command::Rollback(args) => rollback::run(args, global.dry_run, &env, &reporter),
        Command::Restart(args) => restart::run(args, global.dry_run, &env, &reporter),
        Command::Status(args) => status::run(args, &env, &reporter),
        Command::Logs(args) => logs::run(args, &env, &reporter),
        Command::ServeLogs(args) => logs::serve_logs(args, &env, &reporter),
        Command::Report(args) => report::run(args, global.dry_run, &env, &reporter),
        Command::App(crate::cli::AppCommand::Create(args)) => {
            app_create::run(args, global.dry_run, &env, &reporter)
        }
        Command::Request(args) => request::run(args, global.dry_run, &env, &reporter),
        Command::Demo(args) => demo::run(args, global.dry_run, &env, &reporter),
        Command::Egress(crate::cli::EgressCommand::Apply(args)) => {
            egress::apply(args, global.dry_run, &env, &reporter)
        }
        Command::Storage(crate::cli::StorageCommand::Ensure(args)) => {
            storage::ensure(args, global.dry_run, &env, &reporter)
        }
        Command::Host(crate::cli::HostCommand::Boot(args)) => {
            host_boot::run(args, global.dry_run, &env, &reporter)
        }
        Command::Dns(crate::cli::DnsCommand::Plan(args)) => dns::run(args, None, &env, &reporter),
        Command::Dns(crate::cli::DnsCommand::Diff(args)) => {
            dns::diff(args, global.dry_run, &env, &reporter)
        }
        Command::Dns(crate::cli::DnsCommand::Apply(args)) => {
            let apply = (!global.dry_run).then_some(args.allow_large_change);
            dns::run(&args.common, apply, &env, &reporter)
        }
    };
    match result {
        Ok(()) => ExitStatus::Success,
        Err(CommandError::Invalid(problems)) => {
            reporter.problems(&problems);
            ExitStatus::InvalidInput
        }
        Err(CommandError::NotAvailable { message, hint }) => {
            reporter.error(&anyhow::anyhow!(message), Some(&hint));
            ExitStatus::NotAvailable
        }
        Err(CommandError::Usage { message, hint }) => {
            reporter.error(&anyhow::anyhow!(message), Some(&hint));
            ExitStatus::Usage
        }
        Err(CommandError::HostNotReady { message, hint })
        | Err(CommandError::Refused { message, hint }) => {
            reporter.error(&anyhow::anyhow!(message), Some(&hint));
            ExitStatus::Failure
        }
        Err(CommandError::Stopped(failed)) if !failed.front_switched => {
            use crate::exec::apply::BackupAfterFailure;
            let hint = match &failed.backup {
                BackupAfterFailure::Untouched => {
                    "the previous release still serves; fix the cause and run the same command again"
                        .to_string()
                }
                BackupAfterFailure::Restored => {
                    "the previous release still serves and its warm backup was restored (`berth rollback` works); fix the cause and run the same command again"
                        .to_string()
                }
                BackupAfterFailure::NotRestored(e) => format!(
                    "the previous release still serves, but its warm backup could not be restored ({e:#}): `berth rollback` will refuse it; fix the cause and run the same command again, which makes the serving release the backup"
                ),
            };
            reporter.error(&anyhow::Error::new(failed), Some(&hint));
            ExitStatus::Stopped
        }
        Err(CommandError::Stopped(failed)) => {
            reporter.error(
                &anyhow::Error::new(failed),
                Some("the front already serves the new release; run the same command again to finish"),
            );
            ExitStatus::Failure
        }
        Err(CommandError::Failed(error)) => {
            reporter.error(&error, None);
            ExitStatus::Failure
        }
    }
}

/// A single-threaded runtime for the commands that talk to hosts.
fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(anyhow::Error::new(e).context("start the async runtime")))
}

/// The inventory path from the flag, else from `$BERTH_INVENTORY`.
fn inventory_path(flag: &Option<PathBuf>, env: &Env) -> Option<PathBuf> {
    flag.clone().or_else(|| env.inventory.clone())
}
