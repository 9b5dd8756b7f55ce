//! `berth.yml`: the app's own settings, in the code repository at the
//! released commit — writable storage paths, where sessions live, web rules
//! and the health check. The developer writes it, so it is untrusted like
//! every other file of the code: read strictly, each value a validated
//! newtype, and checked against the checkout it came with (a storage path
//! must be a real directory there: Docker cannot make a mount point inside
//! the read-only code) and against `app.yml`'s ceilings (`limits.storage`,
//! the `php` settings, which the app may lower and never raise).
//!
//! The file is optional: without it an app gets no storage, no extra web
//! rules and `app.yml`'s `health_path` answering 200.

use std::path::Path;

use super::app::{AppFile, PhpSettings};
use super::decode::{Decoder, Problem, Problems};
use super::values::{quoted, ByteSize, ScalarKind, ScalarValue, UrlPath, ValueError};
use super::yaml::{Mark, Node};

pub const FILE_NAME: &str = "berth.yml";

/// At most this many storage paths and deny rules: a settings file
/// describes an app, not a file system.
const MAX_STORAGE: usize = 16;
const MAX_DENY: usize = 32;
const MAX_EXTENSIONS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AppSettings {
    /// Writable, persistent directories, relative to the code root.
    pub storage: Vec<StoragePath>,
    /// The storage path PHP keeps its sessions in.
    pub sessions: Option<StoragePath>,
    pub health: Option<HealthCheck>,
    pub web: WebRules,
    pub php: PhpOverrides,
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
    /// Files served with a cache lifetime.
    pub static_files: Option<StaticFiles>,
    /// Whether the slot's nginx compresses text answers (gzip).
    pub compress: bool,
}

/// `web.static`: existing files with these extensions are answered with
/// `Expires` and `Cache-Control: max-age`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StaticFiles {
    pub extensions: Vec<Extension>,
    pub max_age: MaxAge,
}

/// PHP settings the app sets below `app.yml`'s `php` (never above): each
/// `None` keeps the platform's value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PhpOverrides {
    pub memory_limit: Option<ByteSize>,
    pub max_execution_time: Option<u32>,
    pub upload_max_filesize: Option<ByteSize>,
    pub post_max_size: Option<ByteSize>,
}

impl PhpOverrides {
    /// The settings PHP runs with: the app's where it set one, else the
    /// platform's.
    pub fn applied_to(&self, platform: &PhpSettings) -> PhpSettings {
        PhpSettings {
            memory_limit: self.memory_limit.unwrap_or(platform.memory_limit),
            max_execution_time: self
                .max_execution_time
                .unwrap_or(platform.max_execution_time),
            upload_max_filesize: self
                .upload_max_filesize
                .unwrap_or(platform.upload_max_filesize),
            post_max_size: self.post_max_size.unwrap_or(platform.post_max_size),
            max_children: platform.max_children,
        }
    }
}

impl AppSettings {
    pub fn parse(file: &str, text: &str, app: &AppFile) -> Result<AppSettings, Problems> {
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
        Decoder::decode_text(file, text, |d, root| decode(d, root, app))
    }

    /// Reads `berth.yml` from the root of the checkout `code`, if there is
    /// one, and checks it against the checkout. The file is read as every
    /// configuration file is (no link followed, a hard size limit).
    pub fn load(code: &Path, app: &AppFile) -> Result<AppSettings, Problems> {
        let path = code.join(FILE_NAME);
        let name = path.display().to_string();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AppSettings::default()),
            _ => {}
        }
        let text = super::read_text(&path)?;
        let settings = AppSettings::parse(&name, &text, app)?;
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

fn decode(d: &mut Decoder, root: &Node, app: &AppFile) -> Option<AppSettings> {
    let mut f = d.mapping(root, "")?;
    let mut storage_marks = Vec::new();
    let storage = f.optional(d, "storage", |d, node, key| {
        decode_storage(d, node, key, app.limits.storage, &mut storage_marks)
    });
    let sessions = f.optional(d, "sessions", |d, node, key| {
        Some((d.scalar::<StoragePath>(node, key)?, node.mark))
    });
    let health = f.optional(d, "health", decode_health);
    let web = f.optional(d, "web", decode_web);
    let php = f.optional(d, "php", |d, node, key| decode_php(d, node, key, &app.php));
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
        php: php.unwrap_or_default(),
        storage_marks,
    })
}

fn decode_storage(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    granted: Option<ByteSize>,
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
    if !paths.is_empty() && granted.is_none() {
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
    let static_files = f.optional(d, "static", decode_static);
    let compress = f.optional(d, "compress", Decoder::boolean);
    f.finish(d);
    Some(WebRules {
        deny: deny.unwrap_or_default(),
        front_controller,
        static_files,
        compress: compress.unwrap_or(false),
    })
}

fn decode_static(d: &mut Decoder, node: &Node, key: &str) -> Option<StaticFiles> {
    let mut f = d.mapping(node, key)?;
    let extensions = f.required(d, "extensions", |d, node, key| {
        let list = d.list(node, key, Decoder::scalar::<Extension>)?;
        if list.is_empty() || list.len() > MAX_EXTENSIONS {
            d.problem(
                node.mark,
                key,
                format!(
                    "{} extensions; 1 to {MAX_EXTENSIONS} are allowed",
                    list.len()
                ),
                "list the extensions of your static files, e.g. [css, js, png, svg, woff2]",
            );
            return None;
        }
        Some(list)
    });
    let max_age = f.required(d, "max_age", Decoder::scalar::<MaxAge>);
    f.finish(d);
    Some(StaticFiles {
        extensions: extensions?,
        max_age: max_age?,
    })
}

/// `php`: each value within the platform's (`app.yml`), which it may only
/// lower.
fn decode_php(
    d: &mut Decoder,
    node: &Node,
    key: &str,
    platform: &PhpSettings,
) -> Option<PhpOverrides> {
    let mut f = d.mapping(node, key)?;
    let size = |d: &mut Decoder, node: &Node, key: &str, min: ByteSize, max: ByteSize| {
        let size = d.scalar::<ByteSize>(node, key)?;
        if size < min || size > max {
            d.problem(
                node.mark,
                key,
                format!("{} is outside what app.yml allows this app", size.php()),
                format!(
                    "use a size from {} to {} (app.yml's php.{}, set by the platform admin)",
                    min.php(),
                    max.php(),
                    key.rsplit('.').next().unwrap_or(key)
                ),
            );
            return None;
        }
        Some(size)
    };
    let memory_limit = f.optional(d, "memory_limit", |d, node, key| {
        size(d, node, key, ByteSize::mib(16), platform.memory_limit)
    });
    let max_execution_time = f.optional(d, "max_execution_time", |d, node, key| {
        d.integer(node, key, 1, i64::from(platform.max_execution_time))
            .map(|n| n as u32)
    });
    let upload_max_filesize = f.optional(d, "upload_max_filesize", |d, node, key| {
        size(d, node, key, ByteSize::mib(1), platform.upload_max_filesize)
    });
    let post_max_size = f.optional(d, "post_max_size", |d, node, key| {
        Some((
            size(d, node, key, ByteSize::mib(1), platform.post_max_size)?,
            node.mark,
        ))
    });
    f.finish(d);
    let overrides = PhpOverrides {
        memory_limit,
        max_execution_time,
        upload_max_filesize,
        post_max_size: post_max_size.map(|(size, _)| size),
    };
    let applied = overrides.applied_to(platform);
    if applied.post_max_size < applied.upload_max_filesize {
        let mark = post_max_size.map_or(node.mark, |(_, mark)| mark);
        d.problem(
            mark,
            &format!("{key}.post_max_size"),
            format!(
                "post_max_size {} is below upload_max_filesize {}",
                applied.post_max_size.php(),
                applied.upload_max_filesize.php()
            ),
            "a POST carries the upload: make post_max_size at least upload_max_filesize",
        );
        return None;
    }
    Some(overrides)
}

/// A file extension for `web.static`: 1 to 10 lowercase letters and
/// digits, never a PHP one (nginx would otherwise be asked to serve source).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Extension(String);

impl Extension {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extension({:?})", self.0)
    }
}

impl ScalarValue for Extension {
    const EXPECTED: &'static str = "a file extension";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint =
            "give an extension without its dot, in lowercase letters and digits, e.g. css or woff2";
        let ok = (1..=10).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(ValueError {
                message: format!(
                    "extension {} is not 1 to 10 lowercase letters and digits",
                    quoted(text)
                ),
                hint: hint.to_string(),
            });
        }
        if text.starts_with("ph") {
            return Err(ValueError {
                message: format!("extension {} may be PHP", quoted(text)),
                hint:
                    "PHP scripts are run, never served as files: list only static files' extensions"
                        .to_string(),
            });
        }
        Ok(Extension(text.to_string()))
    }
}

/// How long a browser may keep a static file: `<n>s`, `m`, `h` or `d`,
/// from 1 second to 365 days.
#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct MaxAge(u32);

impl MaxAge {
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl std::fmt::Debug for MaxAge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaxAge({}s)", self.0)
    }
}

impl ScalarValue for MaxAge {
    const EXPECTED: &'static str = "a duration";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let refuse = || ValueError {
            message: format!("duration {} is not 1s to 365d", quoted(text)),
            hint: "write a number and a unit (s, m, h, d), e.g. 10m or 7d".to_string(),
        };
        let unit = match text.bytes().last() {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            Some(b'd') => 86_400,
            _ => return Err(refuse()),
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        let seconds = digits.parse::<u64>().map_err(|_| refuse())? * unit;
        if !(1..=365 * 86_400).contains(&seconds) {
            return Err(refuse());
        }
        Ok(MaxAge(seconds as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The skeleton's app.yml (php.memory_limit 128M, max_execution_time
    /// 30, upload and post 8M), with `limits.storage` when given.
    fn app(storage: Option<&str>) -> AppFile {
        let text = match storage {
            None => crate::plan::fixtures::APP.to_string(),
            Some(size) => crate::plan::fixtures::APP.replacen(
                "  pids: 128\n",
                &format!("  pids: 128\n  storage: {size}\n"),
                1,
            ),
        };
        AppFile::parse("app.yml", &text).unwrap()
    }

    fn parse(text: &str) -> Result<AppSettings, String> {
        AppSettings::parse("berth.yml", text, &app(Some("256M"))).map_err(|e| e.to_string())
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
  hint: known keys here: deny, front_controller, static, compress
berth.yml:8:1: volumes: unknown key \"volumes\"
  hint: known keys here: storage, sessions, health, web, php
"
        );
    }

    #[test]
    fn php_settings_lower_the_platforms_and_never_raise_them() {
        let settings =
            parse("php: {memory_limit: 64M, max_execution_time: 10, upload_max_filesize: 2M}\n")
                .unwrap();
        let platform = app(None).php;
        let applied = settings.php.applied_to(&platform);
        assert_eq!(
            (
                applied.memory_limit.php(),
                applied.max_execution_time,
                applied.upload_max_filesize.php(),
                applied.post_max_size.php(),
                applied.max_children,
            ),
            ("64M".to_string(), 10, "2M".to_string(), "8M".to_string(), 5),
            "unset keys keep app.yml's value"
        );
        assert_eq!(
            parse("php:\n  memory_limit: 256M\n  max_execution_time: 31\n  upload_max_filesize: 9M\n  post_max_size: 1G\n  max_children: 50\n")
                .unwrap_err(),
            "5 problems in the configuration:
berth.yml:2:17: php.memory_limit: 256M is outside what app.yml allows this app
  hint: use a size from 16M to 128M (app.yml's php.memory_limit, set by the platform admin)
berth.yml:3:23: php.max_execution_time: max_execution_time \"31\" is out of range
  hint: use a whole number from 1 to 30
berth.yml:4:24: php.upload_max_filesize: 9M is outside what app.yml allows this app
  hint: use a size from 1M to 8M (app.yml's php.upload_max_filesize, set by the platform admin)
berth.yml:5:18: php.post_max_size: 1G is outside what app.yml allows this app
  hint: use a size from 1M to 8M (app.yml's php.post_max_size, set by the platform admin)
berth.yml:6:3: php.max_children: unknown key \"max_children\"
  hint: known keys here: memory_limit, max_execution_time, upload_max_filesize, post_max_size
"
        );
        // Lowering the POST size below the platform's upload size alone
        // would break every large upload: refused where it is written.
        assert_eq!(
            parse("php: {post_max_size: 4M}\n").unwrap_err(),
            "1 problem in the configuration:
berth.yml:1:22: php.post_max_size: post_max_size 4M is below upload_max_filesize 8M
  hint: a POST carries the upload: make post_max_size at least upload_max_filesize
"
        );
        assert!(parse("php: {post_max_size: 4M, upload_max_filesize: 4M}\n").is_ok());
    }

    #[test]
    fn static_files_and_compression_are_read_and_php_is_never_static() {
        let settings = parse(
            "web:\n  static: {extensions: [css, js, woff2], max_age: 7d}\n  compress: true\n",
        )
        .unwrap();
        let files = settings.web.static_files.unwrap();
        let names: Vec<&str> = files.extensions.iter().map(Extension::as_str).collect();
        assert_eq!(names, ["css", "js", "woff2"]);
        assert_eq!(files.max_age.seconds(), 7 * 86_400);
        assert!(settings.web.compress);
        for (text, seconds) in [
            ("1s", 1),
            ("90m", 5400),
            ("12h", 43_200),
            ("365d", 31_536_000),
        ] {
            assert_eq!(MaxAge::parse(text).unwrap().seconds(), seconds, "{text}");
        }
        for text in ["0s", "366d", "7", "d", "7w", "-1d", "1.5h", "999999999s"] {
            assert!(MaxAge::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            parse("web:\n  static: {extensions: [php, phtml, CSS, \"c.ss\", \"\"], max_age: 0s}\n  compress: yes\n")
                .unwrap_err(),
            "7 problems in the configuration:
berth.yml:2:25: web.static.extensions[0]: extension \"php\" may be PHP
  hint: PHP scripts are run, never served as files: list only static files' extensions
berth.yml:2:30: web.static.extensions[1]: extension \"phtml\" may be PHP
  hint: PHP scripts are run, never served as files: list only static files' extensions
berth.yml:2:37: web.static.extensions[2]: extension \"CSS\" is not 1 to 10 lowercase letters and digits
  hint: give an extension without its dot, in lowercase letters and digits, e.g. css or woff2
berth.yml:2:42: web.static.extensions[3]: extension \"c.ss\" is not 1 to 10 lowercase letters and digits
  hint: give an extension without its dot, in lowercase letters and digits, e.g. css or woff2
berth.yml:2:50: web.static.extensions[4]: extension \"\" is not 1 to 10 lowercase letters and digits
  hint: give an extension without its dot, in lowercase letters and digits, e.g. css or woff2
berth.yml:2:64: web.static.max_age: duration \"0s\" is not 1s to 365d
  hint: write a number and a unit (s, m, h, d), e.g. 10m or 7d
berth.yml:3:13: web.compress: expected true or false, found a string
  hint: write true or false here
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
        let err = AppSettings::parse("berth.yml", "storage: [data]\n", &app(None)).unwrap_err();
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
        let err = AppSettings::load(root, &app(Some("64M"))).unwrap_err();
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
            AppSettings::load(root, &app(Some("64M")))
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
            AppSettings::load(root, &app(None)).unwrap(),
            AppSettings::default()
        );
        std::fs::write(root.join("other.yml"), "{}\n").unwrap();
        std::os::unix::fs::symlink("other.yml", root.join(FILE_NAME)).unwrap();
        assert!(AppSettings::load(root, &app(None))
            .unwrap_err()
            .to_string()
            .contains("berth.yml: is a symbolic link, which berth does not follow\n"));
    }
}
