//! berth's exit codes: one table, the same as in the README.

/// How a berth run ended. The numbers are stable: pipelines and scripts
/// branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It worked.
    Success = 0,
    /// Something unexpected failed inside berth or on a host.
    Failure = 1,
    /// The command line was wrong.
    Usage = 2,
    /// A file or value berth was given is invalid; nothing was changed.
    InvalidInput = 3,
    /// The subcommand exists but its capability has not landed yet.
    NotAvailable = 4,
    /// A deploy or rollback stopped before switching; the previous release
    /// still serves. Running it again converges.
    Stopped = 5,
}

impl ExitStatus {
    pub const ALL: [ExitStatus; 6] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::InvalidInput,
        ExitStatus::NotAvailable,
        ExitStatus::Stopped,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// The README's description of the code.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "unexpected failure inside berth or on a host",
            ExitStatus::Usage => "wrong command line",
            ExitStatus::InvalidInput => "invalid file or value; nothing was changed",
            ExitStatus::NotAvailable => {
                "a setting the job must provide is missing (a CI/CD variable)"
            }
            ExitStatus::Stopped => "deploy or rollback stopped; the previous release still serves",
        }
    }
}
