//! A job's outputs for later jobs: the dotenv report
//! (`artifacts: reports: dotenv:`) in the file `BERTH_DOTENV` names.

use std::fmt::Write as _;
use std::path::Path;

/// A job's outputs for later jobs (`artifacts: reports: dotenv:`): one
/// `KEY=value` per line, no quotes, no blank lines, no newlines in values.
#[derive(Debug, Default)]
pub struct Outputs {
    lines: Vec<(String, String)>,
}

impl Outputs {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value: String = value.into();
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let value = value.replace(['\n', '\r'], " ").trim().to_string();
        self.lines.retain(|(k, _)| k != key);
        self.lines.push((key.to_string(), value));
    }

    /// Writes the file named by `--dotenv`/`BERTH_DOTENV`, if any, merging
    /// with what an earlier berth command of the same job wrote there.
    pub fn write(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let Some(path) = path else { return Ok(()) };
        let mut merged: Vec<(String, String)> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .filter(|(k, _)| !self.lines.iter().any(|(key, _)| key == k))
            .collect();
        merged.extend(self.lines.iter().cloned());
        let mut text = String::new();
        for (key, value) in &merged {
            let _ = writeln!(text, "{key}={value}");
        }
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("write the job outputs to {}: {e}", path.display()))
    }
}
