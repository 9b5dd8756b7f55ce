//! GitLab writes as data. Every change berth makes in GitLab is a
//! [`GitLabWrite`]: commands observe first, plan a [`GitLabPlan`] with pure
//! functions (here and in the submodules), and `exec::gitlab::apply`
//! carries each write out as the one request it names. A write's `Display`
//! is one line, `METHOD endpoint  key=value …`, with the endpoint exactly as
//! the client sends it; a plan's `Display` is the `--dry-run` output and
//! what the tests compare.
//!
//! Pure: no I/O, no clock (dates are passed in), no environment. Secrets
//! (variable values, tokens) are held as [`Secret`] and never printed.

pub mod onboarding;
pub mod request;

use std::fmt;

use crate::config::values::{GitLabUser, ProjectPath};
use crate::secret::Secret;

/// A role on a project, GitLab's `access_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    pub fn level(self) -> u64 {
        match self {
            Role::Guest => 10,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }
}

/// Who may push, merge or create on a protected branch or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefAccess {
    /// `0`: no one, administrators included.
    NoOne,
    /// `30`: Developers and Maintainers.
    Developers,
    /// `40`: Maintainers (and Owners).
    Maintainers,
}

impl RefAccess {
    pub fn level(self) -> u64 {
        match self {
            RefAccess::NoOne => 0,
            RefAccess::Developers => 30,
            RefAccess::Maintainers => 40,
        }
    }
}

/// A GitLab user, by id (what the API takes) and name (what people read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: u64,
    pub username: GitLabUser,
}

/// A calendar date (UTC), e.g. a token's `expires_at`. Days since
/// 1970-01-01, so that adding days is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i64);

impl Date {
    pub fn from_unix_days(days: i64) -> Date {
        Date(days)
    }

    pub fn unix_days(self) -> i64 {
        self.0
    }

    /// `YYYY-MM-DD`, as GitLab writes dates; `None` for anything else.
    pub fn parse(text: &str) -> Option<Date> {
        let mut parts = text.splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let date = Date::from_ymd(y, m, d)?;
        (date.ymd() == (y, m, d)).then_some(date)
    }

    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        // Howard Hinnant's days_from_civil.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = i64::from((month + 9) % 12);
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(Date(era * 146_097 + doe - 719_468))
    }

    pub fn ymd(self) -> (i64, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    pub fn plus_days(self, days: i64) -> Date {
        Date(self.0 + days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// The settings of a management repository that berth keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    /// `FILE@GROUP/PROJECT:TAG`, validated by the caller.
    pub ci_config_path: String,
    pub restrict_user_defined_variables: bool,
    pub only_allow_merge_if_pipeline_succeeds: bool,
}

/// A new private project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub path: ProjectPath,
    /// The id of the group `path` is in.
    pub namespace_id: u64,
    /// With a README committed on `main`.
    pub readme: bool,
    pub settings: Option<ProjectSettings>,
}

impl NewProject {
    pub fn name(&self) -> &str {
        self.path
            .as_str()
            .rsplit_once('/')
            .map_or(self.path.as_str(), |(_, name)| name)
    }
}

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableValue {
    /// Known when planning (the app id, a key made beforehand).
    Given(Secret),
    /// Made by an earlier write of the same plan: the token, or the user
    /// name, of the token it creates.
    Minted(Minted),
}

/// A token an earlier write of the plan creates, named by its kind,
/// project and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Minted {
    pub kind: TokenKind,
    pub project: ProjectPath,
    pub name: String,
    pub part: TokenPart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A project access token (a bot user with a role).
    Access,
    /// A deploy token (git over HTTP, user name + token).
    Deploy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPart {
    Token,
    Username,
}

/// A project CI/CD variable (environment scope `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub project: ProjectPath,
    pub key: String,
    pub value: VariableValue,
    pub protected: bool,
    pub masked: bool,
    /// Sent when the variable is created.
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    Create,
    Update,
}

/// One file of a commit made through the commits API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub action: FileAction,
    pub path: String,
    pub content: String,
    /// The last commit that changed the file, as read: GitLab refuses the
    /// commit (400, [`Stale`]) if another one changed it since.
    ///
    /// [`Stale`]: https://docs.gitlab.com/api/commits/
    pub last_commit_id: Option<String>,
}

/// A commit through the commits API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub project: ProjectPath,
    pub branch: String,
    /// Create `branch` from this one (`force`: reset it there first).
    pub start_branch: Option<String>,
    pub force: bool,
    pub message: String,
    pub changes: Vec<FileChange>,
}

/// What a path of a pushed tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    File(Vec<u8>),
    /// A submodule's gitlink at the current head of a branch of a project
    /// (read when the commit is made).
    GitlinkToHead {
        project: ProjectPath,
        branch: String,
    },
}

/// An empty repository's first commit, pushed over git: the commits API
/// cannot create a gitlink (docs/gitlab.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstCommit {
    pub project: ProjectPath,
    pub branch: String,
    pub message: String,
    /// Sorted by path.
    pub entries: Vec<(String, TreeEntry)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMergeRequest {
    pub project: ProjectPath,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub remove_source_branch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Running => "running",
            CommitState::Success => "success",
            CommitState::Failed => "failed",
            CommitState::Canceled => "canceled",
        }
    }
}

/// A commit status (`POST /projects/:id/statuses/:sha`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub project: ProjectPath,
    pub sha: String,
    pub state: CommitState,
    /// e.g. `berth/release`.
    pub name: String,
    pub target_url: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenScope {
    Api,
    ReadApi,
    ReadRepository,
    WriteRepository,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Api => "api",
            TokenScope::ReadApi => "read_api",
            TokenScope::ReadRepository => "read_repository",
            TokenScope::WriteRepository => "write_repository",
        }
    }
}

/// A project access token: a bot user, member of `project` with `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub project: ProjectPath,
    pub name: String,
    pub role: Role,
    pub scopes: Vec<TokenScope>,
    pub expires_at: Date,
}

/// A deploy token: a user name and token for git over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployToken {
    pub project: ProjectPath,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub expires_at: Option<Date>,
}

/// One change in GitLab: one API request (or, for [`FirstCommit`], one
/// git push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLabWrite {
    CreateProject(NewProject),
    EditProject {
        project: ProjectPath,
        settings: ProjectSettings,
    },
    AddMember {
        project: ProjectPath,
        user: UserRef,
        role: Role,
    },
    /// Raises (or lowers) a direct member's role.
    EditMember {
        project: ProjectPath,
        user: UserRef,
        role: Role,
    },
    ProtectBranch {
        project: ProjectPath,
        branch: String,
        push: RefAccess,
        merge: RefAccess,
        allow_force_push: bool,
    },
    UnprotectBranch {
        project: ProjectPath,
        branch: String,
    },
    ProtectTag {
        project: ProjectPath,
        /// A name or wildcard pattern such as `deployed/*`.
        pattern: String,
        create: RefAccess,
    },
    UnprotectTag {
        project: ProjectPath,
        pattern: String,
    },
    CreateVariable(Variable),
    UpdateVariable(Variable),
    Commit(Commit),
    PushFirstCommit(FirstCommit),
    CreateMergeRequest(NewMergeRequest),
    CreateNote {
        project: ProjectPath,
        merge_request: u64,
        body: String,
    },
    EditNote {
        project: ProjectPath,
        merge_request: u64,
        note: u64,
        body: String,
    },
    /// An annotated tag (a release record) on `target`, a commit or branch.
    CreateTag {
        project: ProjectPath,
        name: String,
        target: String,
        message: String,
    },
    SetCommitStatus(CommitStatus),
    CreateAccessToken(AccessToken),
    RevokeAccessToken {
        project: ProjectPath,
        id: u64,
        name: String,
    },
    CreateDeployToken(DeployToken),
    RevokeDeployToken {
        project: ProjectPath,
        id: u64,
        name: String,
    },
}

impl GitLabWrite {
    /// The HTTP method (`PUSH` for a git push).
    pub fn method(&self) -> &'static str {
        use GitLabWrite::*;
        match self {
            CreateProject(_) | AddMember { .. } | ProtectBranch { .. } | ProtectTag { .. } => {
                "POST"
            }
            CreateVariable(_) | Commit(_) | CreateMergeRequest(_) | CreateNote { .. } => "POST",
            CreateTag { .. } | SetCommitStatus(_) | CreateAccessToken(_) => "POST",
            CreateDeployToken(_) => "POST",
            EditProject { .. } | EditMember { .. } | UpdateVariable(_) | EditNote { .. } => "PUT",
            UnprotectBranch { .. } | UnprotectTag { .. } => "DELETE",
            RevokeAccessToken { .. } | RevokeDeployToken { .. } => "DELETE",
            PushFirstCommit(_) => "PUSH",
        }
    }

    /// The endpoint under `api/v4/`, escaped as the client sends it (for a
    /// git push: the repository's path).
    pub fn endpoint(&self) -> String {
        use GitLabWrite::*;
        let p = |project: &ProjectPath| format!("projects/{}", escaped(project.as_str()));
        match self {
            CreateProject(_) => "projects".to_string(),
            EditProject { project, .. } => p(project),
            AddMember { project, .. } => format!("{}/members", p(project)),
            EditMember { project, user, .. } => format!("{}/members/{}", p(project), user.id),
            ProtectBranch { project, .. } => format!("{}/protected_branches", p(project)),
            UnprotectBranch { project, branch } => {
                format!("{}/protected_branches/{}", p(project), escaped(branch))
            }
            ProtectTag { project, .. } => format!("{}/protected_tags", p(project)),
            UnprotectTag { project, pattern } => {
                format!("{}/protected_tags/{}", p(project), escaped(pattern))
            }
            CreateVariable(v) => format!("{}/variables", p(&v.project)),
            UpdateVariable(v) => format!("{}/variables/{}", p(&v.project), escaped(&v.key)),
            Commit(c) => format!("{}/repository/commits", p(&c.project)),
            PushFirstCommit(c) => format!("{}.git", c.project),
            CreateMergeRequest(mr) => format!("{}/merge_requests", p(&mr.project)),
            CreateNote {
                project,
                merge_request,
                ..
            } => format!("{}/merge_requests/{merge_request}/notes", p(project)),
            EditNote {
                project,
                merge_request,
                note,
                ..
            } => format!("{}/merge_requests/{merge_request}/notes/{note}", p(project)),
            CreateTag { project, .. } => format!("{}/repository/tags", p(project)),
            SetCommitStatus(s) => format!("{}/statuses/{}", p(&s.project), escaped(&s.sha)),
            CreateAccessToken(t) => format!("{}/access_tokens", p(&t.project)),
            RevokeAccessToken { project, id, .. } => {
                format!("{}/access_tokens/{id}", p(project))
            }
            CreateDeployToken(t) => format!("{}/deploy_tokens", p(&t.project)),
            RevokeDeployToken { project, id, .. } => {
                format!("{}/deploy_tokens/{id}", p(project))
            }
        }
    }

    /// The fields that matter, `key=value`, never a secret.
    fn fields(&self) -> Vec<(&'static str, String)> {
        use GitLabWrite::*;
        let yes = |b: bool| b.to_string();
        let settings_fields = |s: &ProjectSettings| {
            vec![
                ("ci_config_path", value(&s.ci_config_path)),
                (
                    "restrict_user_defined_variables",
                    yes(s.restrict_user_defined_variables),
                ),
                (
                    "only_allow_merge_if_pipeline_succeeds",
                    yes(s.only_allow_merge_if_pipeline_succeeds),
                ),
            ]
        };
        let variable_fields = |v: &Variable| {
            let mut fields = vec![("key", value(&v.key))];
            match &v.value {
                VariableValue::Given(_) => fields.push(("value", "[secret]".to_string())),
                VariableValue::Minted(m) => fields.push(("value", m.describe())),
            }
            fields.push(("protected", yes(v.protected)));
            fields.push(("masked", yes(v.masked)));
            fields
        };
        let scopes = |s: &[TokenScope]| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        match self {
            CreateProject(new) => {
                let mut fields = vec![
                    ("path", value(new.path.as_str())),
                    ("namespace_id", new.namespace_id.to_string()),
                    ("visibility", "private".to_string()),
                ];
                if new.readme {
                    fields.push(("initialize_with_readme", yes(true)));
                    fields.push(("default_branch", "main".to_string()));
                }
                if let Some(settings) = &new.settings {
                    fields.extend(settings_fields(settings));
                }
                fields
            }
            EditProject { settings, .. } => settings_fields(settings),
            AddMember { user, role, .. } => vec![
                ("user_id", user.id.to_string()),
                ("username", value(user.username.as_str())),
                ("access_level", role.level().to_string()),
            ],
            EditMember { user, role, .. } => vec![
                ("username", value(user.username.as_str())),
                ("access_level", role.level().to_string()),
            ],
            ProtectBranch {
                branch,
                push,
                merge,
                allow_force_push,
                ..
            } => vec![
                ("name", value(branch)),
                ("push_access_level", push.level().to_string()),
                ("merge_access_level", merge.level().to_string()),
                ("allow_force_push", yes(*allow_force_push)),
            ],
            UnprotectBranch { .. } | UnprotectTag { .. } => vec![],
            ProtectTag {
                pattern, create, ..
            } => vec![
                ("name", value(pattern)),
                ("create_access_level", create.level().to_string()),
            ],
            CreateVariable(v) | UpdateVariable(v) => variable_fields(v),
            Commit(c) => {
                let mut fields = vec![("branch", value(&c.branch))];
                if let Some(start) = &c.start_branch {
                    fields.push(("start_branch", value(start)));
                }
                if c.force {
                    fields.push(("force", yes(true)));
                }
                fields.push(("commit_message", value(&c.message)));
                for change in &c.changes {
                    let action = match change.action {
                        FileAction::Create => "create",
                        FileAction::Update => "update",
                    };
                    let mut text = format!("{action}:{}", value(&change.path));
                    if let Some(id) = &change.last_commit_id {
                        text.push_str(&format!("@{}", short(id)));
                    }
                    fields.push(("action", text));
                }
                fields
            }
            PushFirstCommit(c) => {
                let mut fields = vec![("branch", value(&c.branch))];
                let files: Vec<String> = c
                    .entries
                    .iter()
                    .filter(|(_, e)| matches!(e, TreeEntry::File(_)))
                    .map(|(path, _)| value(path))
                    .collect();
                fields.push(("files", files.join(",")));
                for (path, entry) in &c.entries {
                    if let TreeEntry::GitlinkToHead { project, branch } = entry {
                        fields.push((
                            "gitlink",
                            format!("{}:{project}@{}", value(path), value(branch)),
                        ));
                    }
                }
                fields
            }
            CreateMergeRequest(mr) => vec![
                ("source_branch", value(&mr.source_branch)),
                ("target_branch", value(&mr.target_branch)),
                ("title", value(&mr.title)),
                ("remove_source_branch", yes(mr.remove_source_branch)),
            ],
            CreateNote { body, .. } | EditNote { body, .. } => body_fields("body", body),
            CreateTag {
                name,
                target,
                message,
                ..
            } => {
                let mut fields = vec![("tag_name", value(name)), ("ref", value(target))];
                fields.extend(body_fields("message", message));
                fields
            }
            SetCommitStatus(s) => {
                let mut fields = vec![
                    ("state", s.state.as_str().to_string()),
                    ("name", value(&s.name)),
                    ("description", value(&s.description)),
                ];
                if let Some(url) = &s.target_url {
                    fields.push(("target_url", value(url)));
                }
                fields
            }
            CreateAccessToken(t) => vec![
                ("name", value(&t.name)),
                ("access_level", t.role.level().to_string()),
                ("scopes", scopes(&t.scopes)),
                ("expires_at", t.expires_at.to_string()),
            ],
            CreateDeployToken(t) => {
                let mut fields = vec![("name", value(&t.name)), ("scopes", scopes(&t.scopes))];
                if let Some(date) = t.expires_at {
                    fields.push(("expires_at", date.to_string()));
                }
                fields
            }
            RevokeAccessToken { name, .. } | RevokeDeployToken { name, .. } => {
                vec![("name", value(name))]
            }
        }
    }
}

impl Minted {
    fn describe(&self) -> String {
        let kind = match self.kind {
            TokenKind::Access => "access_token",
            TokenKind::Deploy => "deploy_token",
        };
        let part = match self.part {
            TokenPart::Token => "[secret]",
            TokenPart::Username => "username",
        };
        format!("{part}<-{kind}:{}", value(&self.name))
    }
}

impl fmt::Display for GitLabWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.endpoint())?;
        let fields = self.fields();
        if !fields.is_empty() {
            f.write_str(" ")?;
            for (key, value) in fields {
                write!(f, " {key}={value}")?;
            }
        }
        Ok(())
    }
}

/// The writes of one command, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitLabPlan {
    pub writes: Vec<GitLabWrite>,
}

impl GitLabPlan {
    pub fn push(&mut self, write: GitLabWrite) {
        self.writes.push(write);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, GitLabWrite> {
        self.writes.iter()
    }
}

impl From<Vec<GitLabWrite>> for GitLabPlan {
    fn from(writes: Vec<GitLabWrite>) -> Self {
        GitLabPlan { writes }
    }
}

impl<'a> IntoIterator for &'a GitLabPlan {
    type Item = &'a GitLabWrite;
    type IntoIter = std::slice::Iter<'a, GitLabWrite>;
    fn into_iter(self) -> Self::IntoIter {
        self.writes.iter()
    }
}

/// One write per line; an empty plan says so.
impl fmt::Display for GitLabPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.writes.is_empty() {
            return writeln!(f, "no GitLab writes");
        }
        for write in &self.writes {
            writeln!(f, "{write}")?;
        }
        Ok(())
    }
}

/// A path segment escaped as the `gitlab` crate escapes it
/// (`common::path_escaped`): `/` and URL delimiters percent-encoded.
pub fn escaped(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        let plain = byte.is_ascii_graphic() && !b"\"#<>`?{}%/".contains(&byte);
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A field value: plain when it is one word of harmless characters,
/// otherwise quoted.
fn value(text: &str) -> String {
    let plain = !text.is_empty()
        && text.len() <= 100
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/@:*+,=<>!~[]".contains(c));
    if plain {
        text.to_string()
    } else {
        quote(text)
    }
}

/// Text in double quotes, ASCII only (other characters, controls and
/// quotes escaped as Rust escapes them), cut after 120 characters: one
/// line whatever the text holds.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_default());
    }
    out.push('"');
    out
}

/// A long text (note body, tag message) by its size and first line.
fn body_fields(key: &'static str, body: &str) -> Vec<(&'static str, String)> {
    let first = body.lines().next().unwrap_or_default();
    vec![
        (key, format!("{}-lines", body.lines().count())),
        ("first_line", quote(first)),
    ]
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(path: &str) -> ProjectPath {
        path.parse().unwrap()
    }

    #[test]
    fn dates_count_days_exactly() {
        let date = Date::parse("2024-02-28").unwrap();
        assert_eq!(date.plus_days(1).to_string(), "2024-02-29");
        assert_eq!(date.plus_days(2).to_string(), "2024-03-01");
        assert_eq!(date.plus_days(365).to_string(), "2025-02-27");
        assert_eq!(Date::from_unix_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::parse("1970-01-02").unwrap().unix_days(), 1);
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "24-01-01",
            "2024-1-01",
            "",
            "2024-01-01x",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        // Every day of four centuries goes there and back.
        for days in (-200_000..200_000).step_by(7) {
            let date = Date::from_unix_days(days);
            assert_eq!(Date::parse(&date.to_string()), Some(date));
        }
    }

    #[test]
    fn the_writes_other_commands_make_read_as_their_requests() {
        let mgmt = project("deploy/shop");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let plan = GitLabPlan::from(vec![
            GitLabWrite::CreateNote {
                project: mgmt.clone(),
                merge_request: 4,
                body: "<!-- berth:plan -->\n## Plan\n\nline `x`\n".into(),
            },
            GitLabWrite::EditNote {
                project: mgmt.clone(),
                merge_request: 4,
                note: 91,
                body: "<!-- berth:plan -->\nchanged".into(),
            },
            GitLabWrite::CreateTag {
                project: mgmt.clone(),
                name: "deployed/test/3".into(),
                target: sha.into(),
                message: "berth release record: test v1.4.0 to web-1\n\nenv: test\n".into(),
            },
            GitLabWrite::SetCommitStatus(CommitStatus {
                project: mgmt.clone(),
                sha: sha.into(),
                state: CommitState::Success,
                name: "berth/release".into(),
                target_url: Some("https://gitlab.example.com/deploy/shop/-/pipelines/77".into()),
                description: "test v1.4.0 released".into(),
            }),
        ]);
        assert_eq!(
            plan.to_string(),
            "\
POST projects/deploy%2Fshop/merge_requests/4/notes  body=4-lines first_line=\"<!-- berth:plan -->\"
PUT projects/deploy%2Fshop/merge_requests/4/notes/91  body=2-lines first_line=\"<!-- berth:plan -->\"
POST projects/deploy%2Fshop/repository/tags  tag_name=deployed/test/3 ref=0123456789abcdef0123456789abcdef01234567 message=3-lines first_line=\"berth release record: test v1.4.0 to web-1\"
POST projects/deploy%2Fshop/statuses/0123456789abcdef0123456789abcdef01234567  state=success name=berth/release description=\"test v1.4.0 released\" target_url=https://gitlab.example.com/deploy/shop/-/pipelines/77
"
        );
        assert_eq!(GitLabPlan::default().to_string(), "no GitLab writes\n");
    }

    #[test]
    fn secrets_never_show_in_display_or_debug() {
        let mgmt = project("deploy/shop");
        let writes = [
            GitLabWrite::CreateVariable(Variable {
                project: mgmt.clone(),
                key: "BERTH_LOGS_KEY".into(),
                value: VariableValue::Given(Secret::new("c2VjcmV0LWtleS1tYXRlcmlhbA==")),
                protected: false,
                masked: true,
                description: "logs key".into(),
            }),
            GitLabWrite::UpdateVariable(Variable {
                project: mgmt.clone(),
                key: "BERTH_MR_TOKEN".into(),
                value: VariableValue::Minted(Minted {
                    kind: TokenKind::Access,
                    project: mgmt.clone(),
                    name: "berth-mr".into(),
                    part: TokenPart::Token,
                }),
                protected: false,
                masked: true,
                description: String::new(),
            }),
        ];
        let shown: Vec<String> = writes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "POST projects/deploy%2Fshop/variables  key=BERTH_LOGS_KEY value=[secret] protected=false masked=true",
                "PUT projects/deploy%2Fshop/variables/BERTH_MR_TOKEN  key=BERTH_MR_TOKEN value=[secret]<-access_token:berth-mr protected=false masked=true",
            ]
        );
        let debug = format!("{writes:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    #[test]
    fn any_text_shows_as_one_ascii_line() {
        let write = GitLabWrite::CreateMergeRequest(NewMergeRequest {
            project: project("deploy/shop"),
            source_branch: "release/test-v1".into(),
            target_branch: "main".into(),
            title: "Release \u{202e}v1\n/merge \"now\"".into(),
            description: "not shown".into(),
            remove_source_branch: true,
        });
        assert_eq!(
            write.to_string(),
            "POST projects/deploy%2Fshop/merge_requests  source_branch=release/test-v1 target_branch=main title=\"Release \\u{202e}v1\\n/merge \\\"now\\\"\" remove_source_branch=true"
        );
        let long = GitLabWrite::CreateNote {
            project: project("deploy/shop"),
            merge_request: 1,
            body: "x".repeat(500),
        };
        assert!(long
            .to_string()
            .ends_with(&format!("first_line=\"{}...\"", "x".repeat(120))));
    }

    #[test]
    fn escaping_matches_the_client() {
        assert_eq!(escaped("deploy/shop"), "deploy%2Fshop");
        assert_eq!(escaped("deployed/*"), "deployed%2F*");
        assert_eq!(escaped("a b#?%"), "a%20b%23%3F%25");
        assert_eq!(escaped("v1.0+é"), "v1.0+%C3%A9");
    }
}
