//! The outcome file a deploy, rollback or restart job leaves for `berth
//! report` (`--outcome FILE`): success, or the failing step and the last
//! lines of its error.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// What a deploy job leaves for `berth report`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `deploy`, `rollback` or `restart`; only deploys become release
    /// records in `berth report` (a rollback records itself).
    #[serde(default = "deploy_action")]
    pub action: String,
    pub env: String,
    #[serde(rename = "ref")]
    pub tag: String,
    pub commit: Option<String>,
    /// The release id on the host (the tag, with the commit when known).
    #[serde(default)]
    pub release: Option<String>,
    pub host: String,
    pub slot: Option<String>,
    pub url: String,
    pub ok: bool,
    pub failed_step: Option<String>,
    /// The last lines of the error, with the slot's log tail when a health
    /// check failed.
    pub log_tail: Vec<String>,
    pub time: String,
}

fn deploy_action() -> String {
    "deploy".to_string()
}

impl Outcome {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("an outcome serializes");
        std::fs::write(path, text)
            .with_context(|| format!("write the {} outcome to {}", self.action, path.display()))
    }
}

/// The outcomes in `paths`; a missing file is a job that did not run (a
/// manual production deploy not started yet): nothing to report.
pub fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for path in paths {
        if !path.exists() {
            continue;
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let outcome: Outcome = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a deploy outcome written by berth deploy",
                path.display()
            )
        })?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
