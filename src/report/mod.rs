//! What berth tells people and writes back: results on stdout (text or
//! JSON), progress and errors on stderr, with `error:`, `caused by:` and
//! `hint:` lines; and the formats it leaves for people and later jobs:
//! merge request notes (`note`), release records (`records`), deploy
//! outcomes (`outcome`) and a job's dotenv outputs (`dotenv`), each with the code that reads it back. It never
//! imports `exec` or `commands`.

pub mod dotenv;
pub mod note;
pub mod outcome;
pub mod records;

use std::io::{IsTerminal, Write};

use crate::cli::OutputFormat;
use crate::config::Problems;

/// Where a command's messages go, and how loud they are.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: bool,
    pub color: bool,
}

impl Reporter {
    pub fn new(format: OutputFormat, quiet: bool, verbose: bool, no_color: bool) -> Reporter {
        Reporter {
            format,
            quiet,
            verbose,
            color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// Progress for people, on stderr; silent with --quiet.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// Extra detail, only with --verbose.
    pub fn detail(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }

    /// A result: text on stdout, or the JSON value in JSON mode.
    pub fn result(&self, text: &str, json: &serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let written = match self.format {
            OutputFormat::Text => writeln!(out, "{text}"),
            OutputFormat::Json => writeln!(out, "{json}"),
        };
        // stdout closed (e.g. piped into `head`): nothing left to tell.
        let _ = written;
    }

    fn label(&self, label: &str) -> String {
        if self.color {
            format!("\x1b[1;31m{label}\x1b[0m")
        } else {
            label.to_string()
        }
    }

    /// Configuration problems: all of them, each with its hint.
    pub fn problems(&self, problems: &Problems) {
        if self.format == OutputFormat::Json {
            let json = serde_json::json!({ "ok": false, "problems": problems.0 });
            self.result("", &json);
        }
        eprint!("{}: {problems}", self.label("error"));
    }

    /// Any other error, with its chain of causes and an optional hint.
    pub fn error(&self, error: &anyhow::Error, hint: Option<&str>) {
        if self.format == OutputFormat::Json {
            let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
            let json = serde_json::json!({
                "ok": false,
                "error": error.to_string(),
                "causes": causes,
                "hint": hint,
            });
            self.result("", &json);
        }
        // Errors quote hosts, GitLab and remote commands: shown by the one
        // rule of `text`, so no escape sequence reaches the terminal.
        use crate::text::visible_lines;
        eprintln!(
            "{}: {}",
            self.label("error"),
            visible_lines(&error.to_string())
        );
        for cause in error.chain().skip(1) {
            eprintln!("  caused by: {}", visible_lines(&cause.to_string()));
        }
        if let Some(hint) = hint {
            eprintln!("  hint: {}", visible_lines(hint));
        }
    }
}
