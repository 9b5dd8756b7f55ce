//! `berth.yml`: the app's own settings, in the code repository at the
//! released commit — writable storage paths, where sessions live, web rules
//! and the health check. The developer writes it, so it is untrusted like
//! every other file of the code: read strictly, each value a validated
//! newtype, and checked against the checkout it came with (a storage path
//! must be a real directory there: Docker cannot make a mount point inside
//! the read-only code) and against `app.yml`'s ceilings (`limits.storage`).
//!
//! The file is optional: without it an app gets no storage, no extra web
//! rules and `app.yml`'s `health_path` answering 200.

use std::path::Path;

use super::app::Limits;
use super::decode::{Decoder, Problem, Problems};
use super::values::{quoted, ScalarKind, ScalarValue, UrlPath, ValueError};
use super::yaml::{Mark, Node};

pub const FILE_NAME: &str = "berth.yml";

/// At most this many storage paths and deny rules: a settings file
/// describes an app, not a file system.
const MAX_STORAGE: usize = 16;
const MAX_DENY: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AppSettings {
    /// Writable, persistent directories, relative to the code root.
    pub storage: Vec<StoragePath>,
    /// The storage path PHP keeps its sessions in.
    pub sessions: Option<StoragePath>,
    pub health: Option<HealthCheck>,
    pub web: WebRules,
    /// Where each storage path is written, for checks against the checkout.
    #[serde(skip)]
    pub storage_marks: Vec<Mark>,
}

/// What the health probe asks and what only a working app answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthCheck {
    pub path: UrlPath,
    pub status: u16,
    pub contains: Option<BodyText>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WebRules {
    /// URL paths the slot's nginx answers 404, with everything below them.
    pub deny: Vec<UrlPath>,
    /// The PHP script requests for missing files go to (pretty URLs).
    pub front_controller: Option<UrlPath>,
}

impl AppSettings {
    pub fn parse(file: &str, text: &str, limits: &Limits) -> Result<AppSettings, Problems> {
        // The generic hint for an empty file points at the management
        // repository's skeleton; this file is the developer's.
        if matches!(super::yaml::parse(text), Ok(None)) {
            return Err(Problems(vec![Problem {
                file: file.to_string(),
                line: Some(1),
                column: Some(1),
                key: String::new(),
                message: "file is empty".to_string(),
                hint: "write the app's settings (docs/config.md, berth.yml), or delete the file"
                    .to_string(),
            }]));
        }
        Decoder::decode_text(file, text, |d, root| decode(d, root, limits))
    }

    /// Reads `berth.yml` from the root of the checkout `code`, if there is
    /// one, and checks it against the checkout. The file is read as every
    /// configuration file is (no link followed, a hard size limit).
    pub fn load(code: &Path, limits: &Limits) -> Result<AppSettings, Problems> {
        let path = code.join(FILE_NAME);
        let name = path.display().to_string();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AppSettings::default()),
            _ => {}
        }
        let text = super::read_text(&path)?;
        let settings = AppSettings::parse(&name, &text, limits)?;
        settings.check_checkout(&name, code)?;
        Ok(settings)
    }

    /// Each storage path must be a directory of the checkout, reached
    /// through directories only: it is where the storage is mounted, in
    /// code that is read-only in the container.
    pub fn check_checkout(&self, file: &str, code: &Path) -> Result<(), Problems> {
        let mut problems = Vec::new();
        for (i, path) in self.storage.iter().enumerate() {
            let mark = self.storage_marks.get(i).copied().unwrap_or_default();
            let problem = |message: String, hint: &str| Problem {
                file: file.to_string(),
                line: Some(mark.line),
                column: Some(mark.column),
                key: format!("storage[{i}]"),
                message,
                hint: hint.to_string(),
            };
            let mut at = code.to_path_buf();
            for component in path.as_str().split('/') {
                at.push(component);
                let shown = at.strip_prefix(code).unwrap_or(&at).display().to_string();
                match std::fs::symlink_metadata(&at) {
                    Err(_) => {
                        problems.push(problem(
                            format!("{shown} does not exist in the code at this release"),
                            "commit the directory (git keeps no empty directory: add a file such as .gitkeep in it)",
                        ));
                        break;
                    }
                    Ok(m) if m.file_type().is_symlink() => {
                        problems.push(problem(
                            format!("{shown} is a symbolic link"),
                            "storage is mounted over a real directory of the code; commit a directory, not a link",
                        ));
                        break;
                    }
                    Ok(m) if !m.is_dir() => {
                        problems.push(problem(
                            format!("{shown} is not a directory"),
                            "storage is mounted over a directory of the code; commit a directory there",
                        ));
                        break;
                    }
                    Ok(_) => {}
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }

    /// The health check a release must pass: the app's own, or `app.yml`'s
    /// `health_path` answering 200.
    pub fn health_or(&self, default_path: &UrlPath) -> HealthCheck {
        self.health.clone().unwrap_or_else(|| HealthCheck {
            path: default_path.clone(),
            status: 200,
            contains: None,
        })
    }

    /// The PHP script that handles requests for missing files.
    pub fn front_controller(&self) -> &str {
        self.web
            .front_controller
            .as_ref()
            .map_or("/index.php", UrlPath::as_str)
    }
}

impl HealthCheck {
    /// Whether an answer passes: the status, and the text when one is asked for.
    pub fn passes(&self, status: u16, body: &str) -> bool {
        status == self.status
            && self
                .contains
                .as_ref()
                .is_none_or(|text| body.contains(text.as_str()))
    }

    /// What a passing answer is, for plans and errors.
    pub fn expectation(&self) -> String {
        match &self.contains {
            None => format!("answers {}", self.status),
            Some(text) => format!("answers {} with {}", self.status, quoted(text.as_str())),
        }
    }
}

/// A storage path: relative to the code root, below it (never the root
/// itself), letters, digits and `. _ - /`, no `..`, no empty or `.`
/// component.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct StoragePath(String);

impl StoragePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` lies at or below this path.
    fn contains(&self, other: &StoragePath) -> bool {
        other.0 == self.0
            || other
                .0
                .strip_prefix(&self.0)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl std::fmt::Display for StoragePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for StoragePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoragePath({:?})", self.0)
    }
}

impl std::str::FromStr for StoragePath {
    type Err = ValueError;
    fn from_str(text: &str) -> Result<Self, ValueError> {
        <StoragePath as ScalarValue>::parse(text)
    }
}

impl ScalarValue for StoragePath {
    const EXPECTED: &'static str = "a storage path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /";
        let refuse = |message: String| {
            Err(ValueError {
                message,
                hint: hint.to_string(),
            })
        };
        if text.starts_with('/') {
            return refuse(format!(
                "storage path {} is absolute; it is relative to the code root",
                quoted(text)
            ));
        }
        let path: super::values::RelPath =
            text.trim_end_matches('/')
                .parse()
                .map_err(|e: ValueError| ValueError {
                    message: format!("storage {}", e.message),
                    hint: hint.to_string(),
                })?;
        if path.as_str() == "." {
            return refuse("storage path \".\" is the whole code".to_string());
        }
        Ok(StoragePath(path.as_str().to_string()))
    }
}

/// A text a healthy answer's body must contain: 1 to 100 printable ASCII
/// characters.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct BodyText(String);

impl BodyText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BodyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyText({:?})", self.0)
    }
}

impl ScalarValue for BodyText {
    const EXPECTED: &'static str = "a text";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give 1 to 100 printable ASCII characters that only a working app's page holds, e.g. \"status: ok\"";
        if text.is_empty() || text.chars().count() > 100 {
            return Err(ValueError {
                message: format!(
                    "text {} is empty or longer than 100 characters",
                    quoted(text)
                ),
                hint: hint.to_string(),
            });
        }
        if text.chars().any(|c| !(' '..='~').contains(&c)) {
            return Err(ValueError {
                message: format!(
                    "text {} holds a character that is not printable ASCII",
                    quoted(text)
                ),
                hint: hint.to_string(),
            });
        }
        Ok(BodyText(text.to_string()))
    }
}

fn decode(d: &mut Decoder, root: &Node, limits: &Limits) -> Option<AppSettings> {
    let mut f = d.mapping(root, "")?;
    let mut storage_marks = Vec::new();
    let storage = f.optional(d, "storage", |d, node, key| {
        decode_storage(d, node, key, limits, &mut storage_marks)
    });
    let sessions = f.optional(d, "sessions", |d, node, key| {
        Some((d.scalar::<StoragePath>(node, key)?, node.mark))
    });
    let health = f.optional(d, "health", decode_health);
    let web = f.optional(d, "web", decode_web);
    f.finish(d);
    // Checked only against a storage list that decoded: after a problem
    // there, a missing match says nothing new.
    let sessions = match (sessions, &storage) {
        (Some((path, mark)), storage) if !storage.as_ref().is_none_or(|s| s.contains(&path)) => {
            d.problem(
                mark,
                "sessions",
                format!("{} is not one of the storage paths", quoted(path.as_str())),
                "list the sessions directory under storage too, e.g. storage: [var/sessions]",
            );
            None
        }
        (other, _) => other.map(|(path, _)| path),
    };
    Some(AppSettings {
        storage: storage.unwrap_or_default(),
        sessions,
        health,
        web: web.unwrap_or_default(),
        storage_marks,
    })
}

fn decode_storage(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    limits: &Limits,
    marks: &mut Vec<Mark>,
) -> Option<Vec<StoragePath>> {
    let paths = d.list(node, key, |d, node, key| {
        let path = d.scalar::<StoragePath>(node, key)?;
        Some((path, node.mark, key.to_string()))
    })?;
    if paths.len() > MAX_STORAGE {
        d.problem(
            node.mark,
            key,
            format!("{} storage paths, more than {MAX_STORAGE}", paths.len()),
            "keep the app's data under a few directories",
        );
        return None;
    }
    if !paths.is_empty() && limits.storage.is_none() {
        d.problem(
            node.mark,
            key,
            "the app has no storage: app.yml sets no limits.storage",
            "ask the platform admin to grant storage (limits.storage in app.yml), or remove storage",
        );
        return None;
    }
    let mut ok = true;
    for (i, (path, mark, key)) in paths.iter().enumerate() {
        if let Some((other, _, _)) = paths[..i]
            .iter()
            .find(|(other, _, _)| other.contains(path) || path.contains(other))
        {
            let message = if other == path {
                format!("{} is listed twice", quoted(path.as_str()))
            } else {
                format!(
                    "{} and {} overlap",
                    quoted(other.as_str()),
                    quoted(path.as_str())
                )
            };
            d.problem(
                *mark,
                key,
                message,
                "each storage path is a mount of its own; list directories that do not contain each other",
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    marks.extend(paths.iter().map(|(_, mark, _)| *mark));
    Some(paths.into_iter().map(|(path, _, _)| path).collect())
}

fn decode_health(d: &mut Decoder, node: &Node, key: &str) -> Option<HealthCheck> {
    let mut f = d.mapping(node, key)?;
    let path = f.required(d, "path", Decoder::scalar::<UrlPath>);
    let status = f.optional(d, "status", |d, node, key| d.integer(node, key, 200, 299));
    let contains = f.optional(d, "contains", Decoder::scalar::<BodyText>);
    f.finish(d);
    Some(HealthCheck {
        path: path?,
        status: status.map_or(200, |s| s as u16),
        contains,
    })
}

fn decode_web(d: &mut Decoder, node: &Node, key: &str) -> Option<WebRules> {
    let mut f = d.mapping(node, key)?;
    let deny = f.optional(d, "deny", |d, node, key| {
        let paths = d.list(node, key, |d, node, key| {
            let path = d.scalar::<UrlPath>(node, key)?;
            let trimmed = path.as_str().trim_end_matches('/');
            if trimmed.is_empty() {
                d.problem(
                    node.mark,
                    key,
                    "\"/\" would deny the whole app",
                    "name the directories to hide, such as /data or /config",
                );
                return None;
            }
            Some(
                trimmed
                    .parse::<UrlPath>()
                    .expect("a prefix of a valid URL path"),
            )
        })?;
        if paths.len() > MAX_DENY {
            d.problem(
                node.mark,
                key,
                format!("{} deny rules, more than {MAX_DENY}", paths.len()),
                "deny whole directories rather than single files",
            );
            return None;
        }
        Some(paths)
    });
    let front_controller = f.optional(d, "front_controller", |d, node, key| {
        let path = d.scalar::<UrlPath>(node, key)?;
        if !path.as_str().ends_with(".php") {
            d.problem(
                node.mark,
                key,
                format!("{} is not a PHP script", quoted(path.as_str())),
                "name the script that routes pretty URLs, e.g. /index.php",
            );
            return None;
        }
        Some(path)
    });
    f.finish(d);
    Some(WebRules {
        deny: deny.unwrap_or_default(),
        front_controller,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::app::{CodeLimitMarks, CodeLimits};
    use crate::config::values::{ByteSize, Cpus};

    fn limits(storage: Option<ByteSize>) -> Limits {
        Limits {
            cpus: Cpus::parse("0.5").unwrap(),
            memory: ByteSize::mib(256),
            pids: 128,
            code: CodeLimits {
                size: CodeLimits::DEFAULT_SIZE,
                files: CodeLimits::DEFAULT_FILES,
                marks: CodeLimitMarks::default(),
            },
            storage,
        }
    }

    fn parse(text: &str) -> Result<AppSettings, String> {
        AppSettings::parse("berth.yml", text, &limits(Some(ByteSize::mib(256))))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file_is_read() {
        let settings = parse(
            "storage: [data, var/sessions/]\nsessions: var/sessions\nhealth: {path: /health.php, status: 204, contains: \"db: ok\"}\nweb:\n  deny: [/data, /config/]\n  front_controller: /app.php\n",
        )
        .unwrap();
        let names: Vec<&str> = settings.storage.iter().map(StoragePath::as_str).collect();
        assert_eq!(names, ["data", "var/sessions"]);
        assert_eq!(settings.sessions.unwrap().as_str(), "var/sessions");
        let health = settings.health.unwrap();
        assert_eq!(health.status, 204);
        assert_eq!(health.expectation(), "answers 204 with \"db: ok\"");
        assert!(health.passes(204, "<p>db: ok</p>"));
        assert!(!health.passes(200, "db: ok"));
        assert!(!health.passes(204, "setup error"));
        let deny: Vec<&str> = settings.web.deny.iter().map(UrlPath::as_str).collect();
        assert_eq!(deny, ["/data", "/config"]);
        assert_eq!(settings.storage_marks.len(), 2);
    }

    #[test]
    fn an_empty_mapping_is_todays_behaviour() {
        let settings = parse("{}\n").unwrap();
        assert_eq!(settings, AppSettings::default());
        let default = "/health.php".parse().unwrap();
        assert_eq!(settings.health_or(&default).expectation(), "answers 200");
        assert_eq!(settings.front_controller(), "/index.php");
    }

    #[test]
    fn bad_values_are_reported_together_with_their_lines() {
        let text = "storage: [/srv, ../up, data, data/uploads, \".\"]\nsessions: tmp\nhealth: {path: health.php, status: 302, contains: \"\"}\nweb:\n  deny: [/]\n  front_controller: /index.html\n  headers: []\nvolumes: [x]\n";
        assert_eq!(
            parse(text).unwrap_err(),
            "10 problems in the configuration:
berth.yml:1:11: storage[0]: storage path \"/srv\" is absolute; it is relative to the code root
  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /
berth.yml:1:17: storage[1]: storage path \"../up\" leaves its directory with \"..\"
  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /
berth.yml:1:44: storage[4]: storage path \".\" is the whole code
  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /
berth.yml:3:16: health.path: URL path \"health.php\" must start with '/' and be at most 200 characters
  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php
berth.yml:3:36: health.status: status \"302\" is out of range
  hint: use a whole number from 200 to 299
berth.yml:3:51: health.contains: text \"\" is empty or longer than 100 characters
  hint: give 1 to 100 printable ASCII characters that only a working app's page holds, e.g. \"status: ok\"
berth.yml:5:10: web.deny[0]: \"/\" would deny the whole app
  hint: name the directories to hide, such as /data or /config
berth.yml:6:21: web.front_controller: \"/index.html\" is not a PHP script
  hint: name the script that routes pretty URLs, e.g. /index.php
berth.yml:7:3: web.headers: unknown key \"headers\"
  hint: known keys here: deny, front_controller
berth.yml:8:1: volumes: unknown key \"volumes\"
  hint: known keys here: storage, sessions, health, web
"
        );
    }

    #[test]
    fn storage_paths_must_not_overlap_and_sessions_must_be_one_of_them() {
        assert_eq!(
            parse("storage: [data, data/uploads, var, var]\n").unwrap_err(),
            "2 problems in the configuration:
berth.yml:1:17: storage[1]: \"data\" and \"data/uploads\" overlap
  hint: each storage path is a mount of its own; list directories that do not contain each other
berth.yml:1:36: storage[3]: \"var\" is listed twice
  hint: each storage path is a mount of its own; list directories that do not contain each other
"
        );
        assert_eq!(
            parse("storage: [data]\nsessions: tmp\n").unwrap_err(),
            "1 problem in the configuration:
berth.yml:2:11: sessions: \"tmp\" is not one of the storage paths
  hint: list the sessions directory under storage too, e.g. storage: [var/sessions]
"
        );
        // "data" does not contain "database".
        assert!(parse("storage: [data, database]\n").is_ok());
    }

    #[test]
    fn storage_needs_the_platforms_grant() {
        let err = AppSettings::parse("berth.yml", "storage: [data]\n", &limits(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 problem in the configuration:
berth.yml:1:10: storage: the app has no storage: app.yml sets no limits.storage
  hint: ask the platform admin to grant storage (limits.storage in app.yml), or remove storage
"
        );
    }

    #[test]
    fn storage_paths_must_be_directories_of_the_checkout() {
        let code = tempfile::tempdir().unwrap();
        let root = code.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        std::fs::write(
            root.join(FILE_NAME),
            "storage: [data, missing/dir, file, link/below]\n",
        )
        .unwrap();
        let err = AppSettings::load(root, &limits(Some(ByteSize::mib(64)))).unwrap_err();
        let file = root.join(FILE_NAME).display().to_string();
        assert_eq!(
            err.to_string(),
            format!(
                "3 problems in the configuration:
{file}:1:17: storage[1]: missing does not exist in the code at this release
  hint: commit the directory (git keeps no empty directory: add a file such as .gitkeep in it)
{file}:1:30: storage[2]: file is not a directory
  hint: storage is mounted over a directory of the code; commit a directory there
{file}:1:36: storage[3]: link is a symbolic link
  hint: storage is mounted over a real directory of the code; commit a directory, not a link
"
            )
        );
        std::fs::write(root.join(FILE_NAME), "storage: [data]\n").unwrap();
        assert_eq!(
            AppSettings::load(root, &limits(Some(ByteSize::mib(64))))
                .unwrap()
                .storage
                .len(),
            1
        );
    }

    #[test]
    fn no_file_is_the_default_and_a_linked_file_is_refused() {
        let code = tempfile::tempdir().unwrap();
        let root = code.path();
        assert_eq!(
            AppSettings::load(root, &limits(None)).unwrap(),
            AppSettings::default()
        );
        std::fs::write(root.join("other.yml"), "{}\n").unwrap();
        std::os::unix::fs::symlink("other.yml", root.join(FILE_NAME)).unwrap();
        assert!(AppSettings::load(root, &limits(None))
            .unwrap_err()
            .to_string()
            .contains("berth.yml: is a symbolic link, which berth does not follow\n"));
    }
}
