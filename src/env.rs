//! The environment variables berth reads, read once into one value. Nothing
//! else in berth calls `std::env::var`.

use std::path::PathBuf;

/// Every variable berth reads. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `NO_COLOR`: any value turns colour off.
    pub no_color: bool,
    /// `BERTH_INVENTORY`: path of the host inventory file.
    pub inventory: Option<PathBuf>,
    /// `BERTH_TEMPLATES_DIR`: templates that replace the embedded ones.
    pub templates_dir: Option<PathBuf>,
    /// `BERTH_SSH_KEY`: path of the private key for the hosts (a CI file
    /// variable). Only the path is held; the key never enters berth's memory.
    pub ssh_key: Option<PathBuf>,
    /// `BERTH_RIG`: the local test host's directory, for `berth demo`
    /// (default `/tmp/berth-rig`, as `tests/rig/up` uses).
    pub rig_dir: Option<PathBuf>,
    /// `BERTH_LOGS_KEY`: path of an app's logs-only key, for `berth logs`.
    pub logs_key: Option<PathBuf>,
    /// `SSH_ORIGINAL_COMMAND`: what a client asked, when berth runs as a
    /// forced command (`berth serve-logs`).
    pub ssh_original_command: Option<String>,
}

impl Env {
    pub fn read() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            no_color: var("NO_COLOR").is_some(),
            inventory: var("BERTH_INVENTORY").map(PathBuf::from),
            templates_dir: var("BERTH_TEMPLATES_DIR").map(PathBuf::from),
            ssh_key: var("BERTH_SSH_KEY").map(PathBuf::from),
            rig_dir: var("BERTH_RIG").map(PathBuf::from),
            logs_key: var("BERTH_LOGS_KEY").map(PathBuf::from),
            ssh_original_command: var("SSH_ORIGINAL_COMMAND")
                .map(|v| v.to_string_lossy().into_owned()),
        }
    }
}
