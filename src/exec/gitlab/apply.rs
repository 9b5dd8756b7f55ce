//! Carries out planned GitLab writes (`plan::gitlab`): each write becomes
//! the one request its `Display` names, sent through the client's
//! transport (retries, call count, errors naming the endpoint).
//!
//! Thin: it decides nothing. A write that fails is returned with its
//! [`ErrorKind`], and the command that planned it decides what that means
//! (an `AlreadyExists` after a lost answer, a `Stale` allocation commit).
//! The only state it keeps is the tokens the plan's writes create, so that
//! a later variable of the same plan can store them; they are held as
//! [`Secret`]s and never printed.

use std::collections::HashMap;

use gitlab::api::common::{AccessLevel, ProtectedAccessLevel, VisibilityLevel};
use gitlab::api::projects::access_tokens::RevokeProjectAccessToken;
use gitlab::api::projects::members::{AddProjectMember, EditProjectMember};
use gitlab::api::projects::merge_requests::notes::{CreateMergeRequestNote, EditMergeRequestNote};
use gitlab::api::projects::repository::branches::Branch;
use gitlab::api::projects::repository::commits::{
    CommitAction, CommitActionType, CommitStatusState, CreateCommit, CreateCommitStatus,
};
use gitlab::api::projects::variables::{CreateProjectVariable, UpdateProjectVariable};
// Named by module: their names are also the names of writes.
use gitlab::api::projects::repository::tags as gl_repo_tags;
use gitlab::api::projects::{self as gl, merge_requests as gl_mr};
use gitlab::api::projects::{protected_branches as gl_branches, protected_tags as gl_tags};
use gitlab::api::Endpoint;
use serde::Deserialize;

use super::endpoints;
use super::{built, ErrorKind, GitLab, GitLabError};
use crate::config::values::ProjectPath;
use crate::exec::git::{self, Entry};
use crate::plan::gitlab::{
    CommitState, FileAction, FirstCommit, GitLabPlan, GitLabWrite, Minted, RefAccess, Role,
    TokenKind, TokenPart, TreeEntry, Variable, VariableValue,
};
use crate::secret::Secret;

/// What carries the requests: the GitLab client, or a recorder in tests.
pub trait Api {
    /// Sends a request whose answer berth does not need.
    fn send<E: Endpoint>(&self, endpoint: &E) -> Result<(), GitLabError>;
    /// Sends a request and returns its JSON answer.
    fn send_json<E: Endpoint>(&self, endpoint: &E) -> Result<serde_json::Value, GitLabError>;
    /// Pushes a root commit as `branch` of the empty `project`; returns its id.
    fn push_root_commit(
        &self,
        project: &ProjectPath,
        branch: &str,
        entries: &[(&str, Entry)],
        message: &str,
    ) -> anyhow::Result<String>;
}

impl Api for GitLab {
    fn send<E: Endpoint>(&self, endpoint: &E) -> Result<(), GitLabError> {
        self.call_ignoring_body(endpoint)
    }

    fn send_json<E: Endpoint>(&self, endpoint: &E) -> Result<serde_json::Value, GitLabError> {
        self.call(endpoint)
    }

    fn push_root_commit(
        &self,
        project: &ProjectPath,
        branch: &str,
        entries: &[(&str, Entry)],
        message: &str,
    ) -> anyhow::Result<String> {
        let url = format!("{}{project}.git", self.server_url());
        git::push_root_commit(
            &url,
            self.token(),
            branch,
            entries,
            message,
            ("berth", "berth@localhost"),
        )
    }
}

/// What a write returned that a command may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// `CreateProject`: the new project.
    Project {
        id: u64,
        web_url: String,
    },
    /// `CreateMergeRequest`: the new merge request.
    MergeRequest {
        iid: u64,
        web_url: String,
    },
    /// `PushFirstCommit`: the commit pushed.
    Pushed {
        commit: String,
    },
}

/// A write that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    GitLab(#[from] GitLabError),
    #[error("push the first commit of {project}: {source:#}")]
    Push {
        project: ProjectPath,
        source: anyhow::Error,
    },
    /// A variable names a token no earlier write of the plan created: a
    /// planning bug, or an earlier write that was skipped.
    #[error("{0} was not created by an earlier write of this plan")]
    NotMinted(String),
    #[error("GitLab's answer to {write} lacks {field}")]
    Answer { write: String, field: &'static str },
}

impl ApplyError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApplyError::GitLab(e) => e.kind(),
            _ => ErrorKind::Other,
        }
    }
}

/// A token a write of this plan created.
struct MintedToken {
    token: Secret,
    username: Option<String>,
}

/// Carries out writes one at a time, remembering the tokens they create.
pub struct Applier<'a, A: Api = GitLab> {
    api: &'a A,
    minted: HashMap<(TokenKind, ProjectPath, String), MintedToken>,
}

impl<'a, A: Api> Applier<'a, A> {
    pub fn new(api: &'a A) -> Self {
        Applier {
            api,
            minted: HashMap::new(),
        }
    }

    /// Sends every write of `plan` in order; stops at the first failure,
    /// returned with its index.
    pub fn apply_all(&mut self, plan: &GitLabPlan) -> Result<Vec<Applied>, (usize, ApplyError)> {
        plan.iter()
            .enumerate()
            .map(|(i, write)| self.apply(write).map_err(|e| (i, e)))
            .collect()
    }

    /// Sends one write.
    pub fn apply(&mut self, write: &GitLabWrite) -> Result<Applied, ApplyError> {
        use GitLabWrite::*;
        let api = self.api;
        match write {
            CreateProject(new) => {
                let mut create = gl::CreateProject::builder();
                create
                    .name(new.name())
                    .path(new.name())
                    .namespace_id(new.namespace_id)
                    .visibility(VisibilityLevel::Private);
                if new.readme {
                    create.initialize_with_readme(true).default_branch("main");
                }
                if let Some(settings) = &new.settings {
                    create
                        .ci_config_path(settings.ci_config_path.as_str())
                        .restrict_user_defined_variables(settings.restrict_user_defined_variables)
                        .only_allow_merge_if_pipeline_succeeds(
                            settings.only_allow_merge_if_pipeline_succeeds,
                        );
                }
                let answer: ProjectAnswer = decode(write, api.send_json(&built(create.build()))?)?;
                Ok(Applied::Project {
                    id: answer.id,
                    web_url: answer.web_url,
                })
            }
            EditProject { project, settings } => {
                api.send(&built(
                    gl::EditProject::builder()
                        .project(project.as_str())
                        .ci_config_path(settings.ci_config_path.as_str())
                        .restrict_user_defined_variables(settings.restrict_user_defined_variables)
                        .only_allow_merge_if_pipeline_succeeds(
                            settings.only_allow_merge_if_pipeline_succeeds,
                        )
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            AddMember {
                project,
                user,
                role,
            } => {
                api.send(&built(
                    AddProjectMember::builder()
                        .project(project.as_str())
                        .user(user.id)
                        .access_level(access_level(*role))
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            EditMember {
                project,
                user,
                role,
            } => {
                api.send(&built(
                    EditProjectMember::builder()
                        .project(project.as_str())
                        .user(user.id)
                        .access_level(access_level(*role))
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            ProtectBranch {
                project,
                branch,
                push,
                merge,
                allow_force_push,
            } => {
                api.send(&built(
                    gl_branches::ProtectBranch::builder()
                        .project(project.as_str())
                        .name(branch.as_str())
                        .push_access_level(ref_access(*push))
                        .merge_access_level(ref_access(*merge))
                        .allow_force_push(*allow_force_push)
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            UnprotectBranch { project, branch } => {
                api.send(&built(
                    gl_branches::UnprotectBranch::builder()
                        .project(project.as_str())
                        .name(branch.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            ProtectTag {
                project,
                pattern,
                create,
            } => {
                api.send(&built(
                    gl_tags::ProtectTag::builder()
                        .project(project.as_str())
                        .name(pattern.as_str())
                        .create_access_level(ref_access(*create))
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            UnprotectTag { project, pattern } => {
                api.send(&built(
                    gl_tags::UnprotectTag::builder()
                        .project(project.as_str())
                        .name(pattern.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            CreateVariable(variable) => {
                let value = self.value_of(variable)?;
                self.api.send(&built(
                    CreateProjectVariable::builder()
                        .project(variable.project.as_str())
                        .key(variable.key.as_str())
                        .value(value.expose())
                        .protected(variable.protected)
                        .masked(variable.masked)
                        .description(variable.description.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            UpdateVariable(variable) => {
                let value = self.value_of(variable)?;
                self.api.send(&built(
                    UpdateProjectVariable::builder()
                        .project(variable.project.as_str())
                        .key(variable.key.as_str())
                        .value(value.expose())
                        .protected(variable.protected)
                        .masked(variable.masked)
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            Commit(commit) => {
                let actions = commit.changes.iter().map(|change| {
                    let mut action = CommitAction::builder();
                    action
                        .file_path(change.path.as_str())
                        .content(change.content.as_bytes())
                        .action(match change.action {
                            FileAction::Create => CommitActionType::Create,
                            FileAction::Update => CommitActionType::Update,
                        });
                    if let Some(id) = &change.last_commit_id {
                        action.last_commit_id(id.as_str());
                    }
                    built(action.build())
                });
                let mut create = CreateCommit::builder();
                create
                    .project(commit.project.as_str())
                    .branch(commit.branch.as_str())
                    .commit_message(commit.message.as_str())
                    .actions(actions);
                if let Some(start) = &commit.start_branch {
                    create.start_branch(start.as_str());
                }
                if commit.force {
                    create.force(true);
                }
                api.send(&built(create.build()))?;
                Ok(Applied::Done)
            }
            PushFirstCommit(first) => self.push_first_commit(write, first),
            CreateMergeRequest(mr) => {
                let answer: MergeRequestAnswer = decode(
                    write,
                    api.send_json(&built(
                        gl_mr::CreateMergeRequest::builder()
                            .project(mr.project.as_str())
                            .source_branch(mr.source_branch.as_str())
                            .target_branch(mr.target_branch.as_str())
                            .title(mr.title.as_str())
                            .description(mr.description.as_str())
                            .remove_source_branch(mr.remove_source_branch)
                            .build(),
                    ))?,
                )?;
                Ok(Applied::MergeRequest {
                    iid: answer.iid,
                    web_url: answer.web_url,
                })
            }
            CreateNote {
                project,
                merge_request,
                body,
            } => {
                api.send(&built(
                    CreateMergeRequestNote::builder()
                        .project(project.as_str())
                        .merge_request(*merge_request)
                        .body(body.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            EditNote {
                project,
                merge_request,
                note,
                body,
            } => {
                api.send(&built(
                    EditMergeRequestNote::builder()
                        .project(project.as_str())
                        .merge_request(*merge_request)
                        .note(*note)
                        .body(body.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            CreateTag {
                project,
                name,
                target,
                message,
            } => {
                api.send(&built(
                    gl_repo_tags::CreateTag::builder()
                        .project(project.as_str())
                        .tag_name(name.as_str())
                        .ref_(target.as_str())
                        .message(message.as_str())
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            SetCommitStatus(status) => {
                let mut builder = CreateCommitStatus::builder();
                builder
                    .project(status.project.as_str())
                    .commit(status.sha.as_str())
                    .state(match status.state {
                        CommitState::Pending => CommitStatusState::Pending,
                        CommitState::Running => CommitStatusState::Running,
                        CommitState::Success => CommitStatusState::Success,
                        CommitState::Failed => CommitStatusState::Failed,
                        CommitState::Canceled => CommitStatusState::Canceled,
                    })
                    .name(status.name.as_str())
                    .description(status.description.as_str());
                if let Some(url) = &status.target_url {
                    builder.target_url(url.as_str());
                }
                api.send(&built(builder.build()))?;
                Ok(Applied::Done)
            }
            CreateAccessToken(token) => {
                let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
                let expires_at = token.expires_at.to_string();
                let answer: TokenAnswer = decode(
                    write,
                    api.send_json(&endpoints::CreateAccessToken {
                        project: token.project.as_str().into(),
                        name: &token.name,
                        access_level: token.role.level(),
                        scopes: &scopes,
                        expires_at: &expires_at,
                    })?,
                )?;
                self.remember(TokenKind::Access, &token.project, &token.name, answer);
                Ok(Applied::Done)
            }
            RevokeAccessToken { project, id, .. } => {
                api.send(&built(
                    RevokeProjectAccessToken::builder()
                        .project(project.as_str())
                        .id(*id)
                        .build(),
                ))?;
                Ok(Applied::Done)
            }
            CreateDeployToken(token) => {
                let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
                let expires_at = token.expires_at.map(|d| d.to_string());
                let answer: TokenAnswer = decode(
                    write,
                    api.send_json(&endpoints::CreateDeployToken {
                        project: token.project.as_str().into(),
                        name: &token.name,
                        scopes: &scopes,
                        expires_at: expires_at.as_deref(),
                    })?,
                )?;
                self.remember(TokenKind::Deploy, &token.project, &token.name, answer);
                Ok(Applied::Done)
            }
            RevokeDeployToken { project, id, .. } => {
                api.send(&endpoints::RevokeDeployToken {
                    project: project.as_str().into(),
                    id: *id,
                })?;
                Ok(Applied::Done)
            }
        }
    }

    fn remember(
        &mut self,
        kind: TokenKind,
        project: &ProjectPath,
        name: &str,
        answer: TokenAnswer,
    ) {
        self.minted.insert(
            (kind, project.clone(), name.to_string()),
            MintedToken {
                token: Secret::new(answer.token),
                username: answer.username,
            },
        );
    }

    fn value_of(&self, variable: &Variable) -> Result<Secret, ApplyError> {
        match &variable.value {
            VariableValue::Given(secret) => Ok(secret.clone()),
            VariableValue::Minted(Minted {
                kind,
                project,
                name,
                part,
            }) => {
                let minted = self
                    .minted
                    .get(&(*kind, project.clone(), name.clone()))
                    .ok_or_else(|| ApplyError::NotMinted(format!("token {name} of {project}")))?;
                match part {
                    TokenPart::Token => Ok(minted.token.clone()),
                    TokenPart::Username => minted
                        .username
                        .clone()
                        .map(Secret::new)
                        .ok_or_else(|| ApplyError::NotMinted(format!("user name of {name}"))),
                }
            }
        }
    }

    fn push_first_commit(
        &self,
        write: &GitLabWrite,
        first: &FirstCommit,
    ) -> Result<Applied, ApplyError> {
        let mut entries = Vec::new();
        for (path, entry) in &first.entries {
            let entry = match entry {
                TreeEntry::File(bytes) => Entry::File(bytes.clone()),
                TreeEntry::GitlinkToHead { project, branch } => {
                    let head: BranchAnswer = decode(
                        write,
                        self.api.send_json(&built(
                            Branch::builder()
                                .project(project.as_str())
                                .branch(branch.as_str())
                                .build(),
                        ))?,
                    )?;
                    Entry::Gitlink(head.commit.id)
                }
            };
            entries.push((path.as_str(), entry));
        }
        let commit = self
            .api
            .push_root_commit(&first.project, &first.branch, &entries, &first.message)
            .map_err(|source| ApplyError::Push {
                project: first.project.clone(),
                source,
            })?;
        Ok(Applied::Pushed { commit })
    }
}

#[derive(Deserialize)]
struct ProjectAnswer {
    id: u64,
    web_url: String,
}

#[derive(Deserialize)]
struct MergeRequestAnswer {
    iid: u64,
    web_url: String,
}

/// A new token as GitLab answers it once; `username` for deploy tokens.
#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct BranchAnswer {
    commit: CommitAnswer,
}

#[derive(Deserialize)]
struct CommitAnswer {
    id: String,
}

fn decode<T: serde::de::DeserializeOwned>(
    write: &GitLabWrite,
    answer: serde_json::Value,
) -> Result<T, ApplyError> {
    serde_json::from_value(answer).map_err(|_| ApplyError::Answer {
        write: format!("{} {}", write.method(), write.endpoint()),
        field: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("a field"),
    })
}

fn access_level(role: Role) -> AccessLevel {
    match role {
        Role::Guest => AccessLevel::Guest,
        Role::Reporter => AccessLevel::Reporter,
        Role::Developer => AccessLevel::Developer,
        Role::Maintainer => AccessLevel::Maintainer,
        Role::Owner => AccessLevel::Owner,
    }
}

fn ref_access(access: RefAccess) -> ProtectedAccessLevel {
    match access {
        RefAccess::NoOne => ProtectedAccessLevel::NoAccess,
        RefAccess::Developers => ProtectedAccessLevel::Developer,
        RefAccess::Maintainers => ProtectedAccessLevel::Maintainer,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::plan::gitlab::*;

    /// Records every request (method, endpoint, form body) and answers
    /// what a GitLab would, without a network.
    #[derive(Default)]
    struct Recorder {
        requests: RefCell<Vec<(String, String, String)>>,
        pushes: RefCell<Vec<(String, Vec<String>)>>,
    }

    impl Recorder {
        fn record<E: Endpoint>(&self, endpoint: &E) -> (String, String) {
            let body = endpoint
                .body()
                .unwrap()
                .map(|(_, bytes)| String::from_utf8(bytes).unwrap())
                .unwrap_or_default();
            let method = endpoint.method().to_string();
            let path = endpoint.endpoint().into_owned();
            self.requests
                .borrow_mut()
                .push((method.clone(), path.clone(), body));
            (method, path)
        }
    }

    impl Api for Recorder {
        fn send<E: Endpoint>(&self, endpoint: &E) -> Result<(), GitLabError> {
            self.record(endpoint);
            Ok(())
        }

        fn send_json<E: Endpoint>(&self, endpoint: &E) -> Result<serde_json::Value, GitLabError> {
            let (method, path) = self.record(endpoint);
            Ok(match (method.as_str(), path.as_str()) {
                ("POST", "projects") => {
                    serde_json::json!({"id": 12, "web_url": "https://gitlab.example.com/deploy/shop"})
                }
                ("POST", p) if p.ends_with("/merge_requests") => {
                    serde_json::json!({"iid": 4, "web_url": "https://gitlab.example.com/deploy/shop/-/merge_requests/4"})
                }
                ("POST", p) if p.ends_with("/access_tokens") => {
                    serde_json::json!({"id": 7, "token": "glpat-minted-access"})
                }
                ("POST", p) if p.ends_with("/deploy_tokens") => {
                    serde_json::json!({"id": 8, "token": "gldt-minted-deploy", "username": "gitlab+deploy-token-8"})
                }
                ("GET", p) if p.contains("/repository/branches/") => {
                    serde_json::json!({"commit": {"id": "c0ffee0000000000000000000000000000000000"}})
                }
                other => panic!("unexpected request {other:?}"),
            })
        }

        fn push_root_commit(
            &self,
            project: &ProjectPath,
            branch: &str,
            entries: &[(&str, Entry)],
            _: &str,
        ) -> anyhow::Result<String> {
            let shown = entries
                .iter()
                .map(|(path, entry)| match entry {
                    Entry::File(bytes) => format!("{path}={}", String::from_utf8_lossy(bytes)),
                    Entry::Gitlink(id) => format!("{path}->{id}"),
                })
                .collect();
            self.pushes
                .borrow_mut()
                .push((format!("{project}:{branch}"), shown));
            Ok("1111111111111111111111111111111111111111".into())
        }
    }

    fn project(path: &str) -> ProjectPath {
        path.parse().unwrap()
    }

    /// One write of every kind.
    fn every_write() -> Vec<GitLabWrite> {
        let mgmt = project("deploy/shop");
        let code = project("plugins/shop");
        let dee = UserRef {
            id: 7,
            username: "dee".parse().unwrap(),
        };
        let settings = ProjectSettings {
            ci_config_path: "templates/release.yml@platform/ci-templates:v1.0.0".into(),
            restrict_user_defined_variables: true,
            only_allow_merge_if_pipeline_succeeds: true,
        };
        let minted = |kind, name: &str, part| {
            VariableValue::Minted(Minted {
                kind,
                project: if kind == TokenKind::Access {
                    mgmt.clone()
                } else {
                    code.clone()
                },
                name: name.into(),
                part,
            })
        };
        let variable = |key: &str, value| Variable {
            project: mgmt.clone(),
            key: key.into(),
            value,
            protected: true,
            masked: true,
            description: "berth".into(),
        };
        vec![
            GitLabWrite::CreateProject(NewProject {
                path: mgmt.clone(),
                namespace_id: 3,
                readme: false,
                settings: Some(settings.clone()),
            }),
            GitLabWrite::EditProject {
                project: mgmt.clone(),
                settings,
            },
            GitLabWrite::AddMember {
                project: mgmt.clone(),
                user: dee.clone(),
                role: Role::Developer,
            },
            GitLabWrite::EditMember {
                project: mgmt.clone(),
                user: dee,
                role: Role::Developer,
            },
            GitLabWrite::UnprotectBranch {
                project: mgmt.clone(),
                branch: "main".into(),
            },
            GitLabWrite::ProtectBranch {
                project: mgmt.clone(),
                branch: "main".into(),
                push: RefAccess::Maintainers,
                merge: RefAccess::Maintainers,
                allow_force_push: false,
            },
            GitLabWrite::UnprotectTag {
                project: mgmt.clone(),
                pattern: "deployed/*".into(),
            },
            GitLabWrite::ProtectTag {
                project: mgmt.clone(),
                pattern: "deployed/*".into(),
                create: RefAccess::Maintainers,
            },
            GitLabWrite::CreateAccessToken(AccessToken {
                project: mgmt.clone(),
                name: "berth-main".into(),
                role: Role::Maintainer,
                scopes: vec![TokenScope::Api],
                expires_at: Date::parse("2027-01-01").unwrap(),
            }),
            GitLabWrite::CreateVariable(variable(
                "BERTH_GITLAB_TOKEN",
                minted(TokenKind::Access, "berth-main", TokenPart::Token),
            )),
            GitLabWrite::RevokeAccessToken {
                project: mgmt.clone(),
                id: 5,
                name: "berth-main".into(),
            },
            GitLabWrite::CreateDeployToken(DeployToken {
                project: code.clone(),
                name: "berth-shop".into(),
                scopes: vec![TokenScope::ReadRepository],
                expires_at: None,
            }),
            GitLabWrite::UpdateVariable(variable(
                "BERTH_CODE_USER",
                minted(TokenKind::Deploy, "berth-shop", TokenPart::Username),
            )),
            GitLabWrite::UpdateVariable(variable(
                "BERTH_APP",
                VariableValue::Given(Secret::new("shop")),
            )),
            GitLabWrite::RevokeDeployToken {
                project: code.clone(),
                id: 6,
                name: "berth-shop".into(),
            },
            GitLabWrite::Commit(Commit {
                project: project("platform/fleet"),
                branch: "main".into(),
                start_branch: None,
                force: false,
                message: "Allocate shop".into(),
                changes: vec![FileChange {
                    action: FileAction::Update,
                    path: "allocations.yml".into(),
                    content: "apps: {}\n".into(),
                    last_commit_id: Some("abcdef0123456789".into()),
                }],
            }),
            GitLabWrite::PushFirstCommit(FirstCommit {
                project: mgmt.clone(),
                branch: "main".into(),
                message: "Onboard shop".into(),
                entries: vec![
                    ("README.md".into(), TreeEntry::File(b"hi".to_vec())),
                    (
                        "codes".into(),
                        TreeEntry::GitlinkToHead {
                            project: code.clone(),
                            branch: "main".into(),
                        },
                    ),
                ],
            }),
            GitLabWrite::CreateMergeRequest(NewMergeRequest {
                project: mgmt.clone(),
                source_branch: "release/test-v1.4.0".into(),
                target_branch: "main".into(),
                title: "Release v1.4.0 to test".into(),
                description: "Opened with berth request.".into(),
                remove_source_branch: true,
            }),
            GitLabWrite::CreateNote {
                project: mgmt.clone(),
                merge_request: 4,
                body: "<!-- berth:plan -->".into(),
            },
            GitLabWrite::EditNote {
                project: mgmt.clone(),
                merge_request: 4,
                note: 9,
                body: "<!-- berth:plan -->".into(),
            },
            GitLabWrite::CreateTag {
                project: mgmt.clone(),
                name: "deployed/test/1".into(),
                target: "main".into(),
                message: "berth release record".into(),
            },
            GitLabWrite::SetCommitStatus(CommitStatus {
                project: mgmt,
                sha: "0123456789abcdef0123456789abcdef01234567".into(),
                state: CommitState::Failed,
                name: "berth/release".into(),
                target_url: None,
                description: "test failed".into(),
            }),
        ]
    }

    #[test]
    fn each_write_sends_the_request_its_display_names() {
        let recorder = Recorder::default();
        let plan = GitLabPlan::from(every_write());
        let applied = Applier::new(&recorder).apply_all(&plan).unwrap();
        let requests = recorder.requests.borrow();
        // The push reads the code repository's head first, then pushes.
        let sent: Vec<String> = requests
            .iter()
            .filter(|(method, _, _)| method != "GET")
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect();
        let named: Vec<String> = plan
            .iter()
            .filter(|w| w.method() != "PUSH")
            .map(|w| format!("{} {}", w.method(), w.endpoint()))
            .collect();
        assert_eq!(sent, named);
        assert_eq!(
            recorder.pushes.borrow().as_slice(),
            [(
                "deploy/shop:main".to_string(),
                vec![
                    "README.md=hi".to_string(),
                    "codes->c0ffee0000000000000000000000000000000000".to_string()
                ]
            )]
        );
        assert!(applied.contains(&Applied::Project {
            id: 12,
            web_url: "https://gitlab.example.com/deploy/shop".into()
        }));
        assert!(applied.contains(&Applied::MergeRequest {
            iid: 4,
            web_url: "https://gitlab.example.com/deploy/shop/-/merge_requests/4".into()
        }));

        let body_of = |method: &str, path: &str| {
            requests
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .map(|(_, _, body)| body.clone())
                .unwrap()
        };
        // Tokens made by the plan reach their variables, and only them.
        let token_var = body_of("POST", "projects/deploy%2Fshop/variables");
        assert!(
            token_var.contains("value=glpat-minted-access"),
            "{token_var}"
        );
        assert!(token_var.contains("protected=true") && token_var.contains("masked=true"));
        let user_var = body_of("PUT", "projects/deploy%2Fshop/variables/BERTH_CODE_USER");
        assert!(
            user_var.contains("value=gitlab%2Bdeploy-token-8"),
            "{user_var}"
        );
        let token = body_of("POST", "projects/deploy%2Fshop/access_tokens");
        assert_eq!(
            token,
            "name=berth-main&access_level=40&expires_at=2027-01-01&scopes%5B%5D=api"
        );
        let deploy = body_of("POST", "projects/plugins%2Fshop/deploy_tokens");
        assert_eq!(deploy, "name=berth-shop&scopes%5B%5D=read_repository");
        let commit = body_of("POST", "projects/platform%2Ffleet/repository/commits");
        assert!(
            commit.contains("last_commit_id%5D=abcdef0123456789"),
            "{commit}"
        );
        let tag = body_of("POST", "projects/deploy%2Fshop/protected_tags");
        assert!(tag.contains("create_access_level=40"), "{tag}");
    }

    #[test]
    fn a_variable_of_a_token_not_made_by_the_plan_is_refused() {
        let recorder = Recorder::default();
        let write = GitLabWrite::CreateVariable(Variable {
            project: project("deploy/shop"),
            key: "BERTH_MR_TOKEN".into(),
            value: VariableValue::Minted(Minted {
                kind: TokenKind::Access,
                project: project("deploy/shop"),
                name: "berth-mr".into(),
                part: TokenPart::Token,
            }),
            protected: false,
            masked: true,
            description: String::new(),
        });
        let error = Applier::new(&recorder).apply(&write).unwrap_err();
        assert_eq!(
            error.to_string(),
            "token berth-mr of deploy/shop was not created by an earlier write of this plan"
        );
        assert!(recorder.requests.borrow().is_empty());
    }
}
