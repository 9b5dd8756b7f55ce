//! The notes berth writes on merge requests, rendered as text from data.
//!
//! Everything that comes from a developer's repository (commit messages,
//! author names, file names, problems quoting YAML) is untrusted. It passes
//! through [`inline`], which keeps it on one line, turns HTML into entities
//! and backslash-escapes Markdown. Untrusted text is also never placed at
//! the start of a line: every line berth writes starts with berth's own
//! text, so no line can be a GitLab quick action (`/merge`, `/approve`).

use std::fmt::Write as _;

use crate::config::values::ProjectPath;
use crate::plan::gitlab::GitLabWrite;
use crate::report::records::IgnoredRecord;

/// The first line of berth's one living note on a release merge request.
pub const PLAN_MARKER: &str = "<!-- berth:plan -->";
/// The first line of a report note.
pub const REPORT_MARKER: &str = "<!-- berth:report -->";

/// At most this many commits and files are listed per environment.
pub const MAX_COMMITS: usize = 20;
pub const MAX_FILES: usize = 50;
/// At most this many lines of rendered configuration diff per environment.
pub const MAX_DIFF_LINES: usize = 300;

/// What one environment's release would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPlan {
    pub env: String,
    /// The release live now, when there is one.
    pub live: Option<PlannedRef>,
    pub requested: PlannedRef,
    /// Commits from live to requested, newest first (bounded).
    pub commits: Vec<CommitLine>,
    pub total_commits: usize,
    pub files: Vec<FileChange>,
    pub total_files: usize,
    /// The unified diff of the rendered configuration, live → requested.
    pub config_diff: String,
    /// What the reviewer must know before merging: the tag names another
    /// commit than release.yml pins, the live commit is not in the code
    /// repository any more, …; berth's own words, no untrusted text.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedRef {
    pub tag: String,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLine {
    pub short_id: String,
    pub title: String,
    pub author: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub change: Change,
    pub path: String,
    pub old_path: Option<String>,
}

/// The write that keeps berth's one note on a merge request: none when
/// berth's existing note (`existing`: its id and stored body) already says
/// `body` as GitLab stores it (no `\r`, no trailing whitespace), an edit of
/// it otherwise, a new note when there is none.
pub fn keep_note(
    project: &ProjectPath,
    merge_request: u64,
    existing: Option<(u64, &str)>,
    body: &str,
) -> Option<GitLabWrite> {
    let stored = body.replace('\r', "");
    match existing {
        Some((_, old)) if old == stored.trim_end() => None,
        Some((note, _)) => Some(GitLabWrite::EditNote {
            project: project.clone(),
            merge_request,
            note,
            body: body.to_string(),
        }),
        None => Some(GitLabWrite::CreateNote {
            project: project.clone(),
            merge_request,
            body: body.to_string(),
        }),
    }
}

/// The plan note: per environment, live and requested refs, commits, files
/// and configuration diff, and the `deployed/*` tags berth did not believe.
/// It is for people: no berth command reads it back.
pub fn plan_note(merge_request: u64, plans: &[EnvPlan], ignored: &[IgnoredRecord]) -> String {
    let mut note = String::new();
    let _ = writeln!(note, "{PLAN_MARKER}");
    let _ = writeln!(note, "### berth plan for !{merge_request}");
    note.push('\n');
    if plans.is_empty() {
        note.push_str("This merge request changes no environment's release.\n");
    }
    for plan in plans {
        env_section(&mut note, plan);
    }
    if !ignored.is_empty() {
        let _ = writeln!(
            note,
            "**Release records ignored** ({}): berth does not believe these `deployed/*` tags, so the live release above does not come from them.\n",
            ignored.len()
        );
        for record in ignored {
            let _ = writeln!(
                note,
                "- tag {}: {}",
                inline(&record.tag),
                inline(&record.why)
            );
        }
        note.push('\n');
    }
    note.push_str(
        "---\nMerging this merge request releases exactly the commits that release.yml pins; ",
    );
    note.push_str("berth refuses to release a tag that no longer names its pinned commit.\n");
    note
}

fn env_section(note: &mut String, plan: &EnvPlan) {
    let _ = writeln!(note, "#### Environment {}", inline(&plan.env));
    note.push('\n');
    note.push_str("| | ref | commit |\n| --- | --- | --- |\n");
    match &plan.live {
        Some(live) => {
            let _ = writeln!(
                note,
                "| live | {} | {} |",
                inline(&live.tag),
                short(&live.commit)
            );
        }
        None => note.push_str("| live | (nothing released yet) | |\n"),
    }
    let _ = writeln!(
        note,
        "| requested | {} | {} |",
        inline(&plan.requested.tag),
        short(&plan.requested.commit)
    );
    note.push('\n');
    for warning in &plan.warnings {
        let _ = writeln!(note, "**Warning**: {}\n", inline(warning));
    }

    let _ = writeln!(note, "**Commits** ({}):", plan.total_commits);
    note.push('\n');
    for commit in &plan.commits {
        let _ = writeln!(
            note,
            "- {} {} ({})",
            inline(&commit.short_id),
            inline(&commit.title),
            inline(&commit.author)
        );
    }
    more(note, plan.total_commits, plan.commits.len(), "commits");
    if plan.total_commits == 0 {
        note.push_str("- none\n");
    }
    note.push('\n');

    let _ = writeln!(note, "**Changed files** ({}):", plan.total_files);
    note.push('\n');
    for file in &plan.files {
        let line = match (&file.change, &file.old_path) {
            (Change::Renamed, Some(old)) => {
                format!("- renamed {} → {}", inline(old), inline(&file.path))
            }
            (change, _) => format!("- {} {}", change_word(*change), inline(&file.path)),
        };
        let _ = writeln!(note, "{line}");
    }
    more(note, plan.total_files, plan.files.len(), "files");
    if plan.total_files == 0 {
        note.push_str("- none\n");
    }
    note.push('\n');

    if plan.config_diff.trim().is_empty() {
        note.push_str("**Configuration**: unchanged.\n\n");
    } else {
        let lines: Vec<&str> = plan.config_diff.lines().collect();
        let shown = &lines[..lines.len().min(MAX_DIFF_LINES)];
        let body = code_block(shown.iter().copied());
        let fence = fence_for(&body);
        let _ = writeln!(
            note,
            "<details><summary>Configuration diff ({} lines)</summary>\n",
            lines.len()
        );
        let _ = writeln!(note, "{fence}diff\n{body}\n{fence}");
        if lines.len() > shown.len() {
            let _ = writeln!(note, "\n… and {} more lines.", lines.len() - shown.len());
        }
        note.push_str("\n</details>\n\n");
    }
}

fn more(note: &mut String, total: usize, shown: usize, what: &str) {
    if total > shown {
        let _ = writeln!(note, "- … and {} more {what}", total - shown);
    }
}

fn change_word(change: Change) -> &'static str {
    match change {
        Change::Added => "added",
        Change::Modified => "modified",
        Change::Deleted => "deleted",
        Change::Renamed => "renamed",
    }
}

/// The note that says why a release request cannot go ahead.
pub fn check_failed_note(problems: &[String]) -> String {
    let mut note = String::new();
    let _ = writeln!(note, "{PLAN_MARKER}");
    note.push_str("### berth check failed\n\n");
    note.push_str("This merge request cannot be released until these are fixed:\n\n");
    for problem in problems {
        let _ = writeln!(note, "- {}", inline(problem));
    }
    note.push_str("\nPush a fix to the branch; the pipeline checks again.\n");
    note
}

/// One environment's outcome, for the report note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOutcome {
    /// `deploy`, `rollback` or `restart`.
    pub action: String,
    pub env: String,
    pub tag: String,
    pub commit: String,
    pub url: Option<String>,
    /// `None` when the release serves; else the failing step.
    pub failed_step: Option<String>,
    pub log_tail: Vec<String>,
    /// The release record's tag, e.g. `deployed/test/4`.
    pub record: Option<String>,
}

/// The note on a merged release merge request: the result per environment.
pub fn report_note(pipeline_url: Option<&str>, outcomes: &[EnvOutcome]) -> String {
    let mut note = String::new();
    let _ = writeln!(note, "{REPORT_MARKER}");
    note.push_str("### berth release report\n\n");
    note.push_str("| environment | ref | result | URL |\n| --- | --- | --- | --- |\n");
    for outcome in outcomes {
        let result = match &outcome.failed_step {
            None => match outcome.action.as_str() {
                "rollback" => "rolled back".to_string(),
                "restart" => "restarted".to_string(),
                _ => "released".to_string(),
            },
            Some(step) => format!("failed at {}", inline(step)),
        };
        let _ = writeln!(
            note,
            "| {} | {} ({}) | {} | {} |",
            inline(&outcome.env),
            inline(&outcome.tag),
            short(&outcome.commit),
            result,
            outcome.url.as_deref().map(inline).unwrap_or_default()
        );
    }
    for outcome in outcomes.iter().filter(|o| o.failed_step.is_some()) {
        let _ = writeln!(
            note,
            "\nThe previous release of {} still serves. Last log lines:\n",
            inline(&outcome.env)
        );
        let body = code_block(outcome.log_tail.iter().map(String::as_str));
        let fence = fence_for(&body);
        let _ = writeln!(note, "{fence}text\n{body}\n{fence}");
    }
    for outcome in outcomes {
        if let Some(record) = &outcome.record {
            let _ = writeln!(note, "\nRecorded as tag {}.", inline(record));
        }
    }
    if let Some(url) = pipeline_url {
        let _ = writeln!(note, "\nPipeline: {}", inline(url));
    }
    note
}

/// Untrusted text made safe for one line of Markdown: control and bidi
/// characters are shown as escapes (the one rule of `crate::text`), HTML
/// becomes entities, Markdown punctuation is escaped, `@` cannot mention
/// anyone, and long text is cut.
pub fn inline(text: &str) -> String {
    const LIMIT: usize = 200;
    let mut visible = String::with_capacity(text.len());
    for (count, c) in text.chars().enumerate() {
        if count == LIMIT {
            visible.push('…');
            break;
        }
        crate::text::push_visible(&mut visible, c);
    }
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("@\u{200b}"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '$' | '%' | '"' | '\'' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn short(commit: &str) -> String {
    inline(&commit.chars().take(12).collect::<String>())
}

/// Lines for a fenced block: control and bidi characters other than tabs
/// are shown as escapes (the one rule of `crate::text`), and a line
/// that would start with `/` gets a zero-width space first, so that not even
/// a quick-action parser that ignored fences could find a command.
fn code_block<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .map(|line| {
            let mut clean = String::with_capacity(line.len());
            for c in line.chars() {
                if c == '\t' {
                    clean.push(c);
                } else {
                    crate::text::push_visible(&mut clean, c);
                }
            }
            if clean.trim_start().starts_with('/') {
                format!("\u{200b}{clean}")
            } else {
                clean
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A code fence longer than any run of backticks in `body`.
fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOADS: &[&str] = &[
        "/merge",
        "/approve\n/merge",
        "fix\r\n/label ~urgent",
        "<script>alert(1)</script>",
        "</details><img src=x onerror=alert(1)>",
        "```\n/merge\n```",
        "[click](javascript:alert(1))",
        "<!-- berth:plan -->",
        "ping @root and @all",
        "| table | break |",
        "  /unapprove",
    ];

    fn hostile_plan() -> EnvPlan {
        EnvPlan {
            env: "test".into(),
            live: Some(PlannedRef {
                tag: "v1.0.0".into(),
                commit: "a".repeat(40),
            }),
            requested: PlannedRef {
                tag: "v1.1.0".into(),
                commit: "b".repeat(40),
            },
            commits: PAYLOADS
                .iter()
                .map(|p| CommitLine {
                    short_id: "bbbbbbb".into(),
                    title: p.to_string(),
                    author: p.to_string(),
                })
                .collect(),
            total_commits: 40,
            files: PAYLOADS
                .iter()
                .map(|p| FileChange {
                    change: Change::Modified,
                    path: p.to_string(),
                    old_path: None,
                })
                .collect(),
            total_files: PAYLOADS.len(),
            config_diff: "-a\n+```\n/merge\n".into(),
            warnings: vec!["tag v1.1.0 names another commit".into()],
        }
    }

    /// No line may start a quick action, and outside code blocks (which
    /// GitLab renders literally) no untrusted HTML, link or mention survives.
    fn assert_inert(note: &str) {
        let mut fence: Option<String> = None;
        let mut prose = String::new();
        for line in note.lines() {
            assert!(
                !line.trim_start().starts_with('/'),
                "line starts a quick action: {line:?}"
            );
            let ticks: String = line.chars().take_while(|&c| c == '`').collect();
            match &fence {
                None if ticks.len() >= 3 => fence = Some(ticks),
                Some(open) if line.trim_end() == open => fence = None,
                Some(_) => {}
                None => {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
        }
        for payload in ["<script", "<img", "</details><", "@root", "](javascript"] {
            assert!(!prose.contains(payload), "{payload:?} survived in:\n{note}");
        }
    }

    #[test]
    fn the_plan_note_keeps_hostile_text_inert() {
        let note = plan_note(7, &[hostile_plan()], &[]);
        assert_inert(&note);
        assert!(note.starts_with(PLAN_MARKER));
        assert_eq!(
            note.matches(PLAN_MARKER).count(),
            1,
            "a payload forged the marker"
        );
        assert!(note.contains("- … and 29 more commits"));
        // The diff fence is longer than the backticks inside it.
        assert!(
            note.contains("````diff\n-a\n+```\n\u{200b}/merge\n````"),
            "{note}"
        );
    }

    #[test]
    fn check_and_report_notes_keep_hostile_text_inert() {
        let problems: Vec<String> = PAYLOADS.iter().map(|p| p.to_string()).collect();
        assert_inert(&check_failed_note(&problems));
        let outcome = EnvOutcome {
            action: "deploy".into(),
            env: "test".into(),
            tag: "v1.1.0".into(),
            commit: "c".repeat(40),
            url: Some("http://x.test/".into()),
            failed_step: Some("wait-healthy".into()),
            log_tail: PAYLOADS.iter().map(|p| p.replace('\n', " ")).collect(),
            record: Some("deployed/test/3".into()),
        };
        assert_inert(&report_note(
            Some("http://gitlab/p/-/pipelines/1"),
            &[outcome],
        ));
    }

    #[test]
    fn berths_note_is_created_edited_or_left_alone() {
        let project: ProjectPath = "deploy/shop".parse().unwrap();
        let write = |existing| {
            keep_note(&project, 4, existing, "<!-- berth:plan -->\nplan\n").map(|w| w.to_string())
        };
        assert_eq!(write(Some((9, "<!-- berth:plan -->\nplan"))), None);
        assert_eq!(
            write(Some((9, "<!-- berth:plan -->\nold"))).unwrap(),
            "PUT projects/deploy%2Fshop/merge_requests/4/notes/9  body=2-lines first_line=\"<!-- berth:plan -->\""
        );
        assert_eq!(
            write(None).unwrap(),
            "POST projects/deploy%2Fshop/merge_requests/4/notes  body=2-lines first_line=\"<!-- berth:plan -->\""
        );
    }

    #[test]
    fn ignored_records_are_listed_inertly() {
        let ignored: Vec<IgnoredRecord> = PAYLOADS
            .iter()
            .map(|p| IgnoredRecord {
                tag: p.to_string(),
                why: "not protected".into(),
            })
            .collect();
        let note = plan_note(7, &[], &ignored);
        assert_inert(&note);
        assert!(note.contains(&format!("**Release records ignored** ({})", PAYLOADS.len())));
    }

    #[test]
    fn inline_escapes_markdown_and_html() {
        assert_eq!(inline("a*b_c"), "a\\*b\\_c");
        assert_eq!(inline("<b>&"), "&lt;b&gt;&amp;");
        assert_eq!(inline("x\ny"), r"x\\ny");
        // U+202E would make `evil\u{202e}gnp.php` read as `evilphp.png`.
        assert_eq!(inline("evil\u{202e}gnp.php"), r"evil\\u\{202e\}gnp\.php");
        assert_eq!(inline("\u{1b}]0;title\u{7}"), r"\\u\{1b\}\]0;title\\u\{7\}");
        assert_eq!(
            code_block(["a\u{202e}b\tc\u{1b}[0m"].into_iter()),
            "a\\u{202e}b\tc\\u{1b}[0m"
        );
        assert_eq!(inline(&"x".repeat(300)).chars().count(), 201);
    }
}
