//! What `berth app create` reads before it plans: the developer, both
//! projects with their members, settings, variables, protections and
//! tokens, and the fleet repository's files, as a
//! `plan::gitlab::onboarding::Observed`. Reads only; each answer keeps just
//! the fields the plan compares.

use base64::Engine as _;
use gitlab::api::groups::Group;
use gitlab::api::projects::access_tokens::ProjectAccessTokens;
use gitlab::api::projects::members::{AllProjectMember, ProjectMember};
use gitlab::api::projects::protected_branches::ProtectedBranch;
use gitlab::api::projects::protected_tags::ProtectedTag;
use gitlab::api::projects::repository::files::File;
use gitlab::api::projects::variables::ProjectVariables;
use gitlab::api::projects::Project;
use gitlab::api::users::Users;
use serde::Deserialize;

use super::{built, endpoints, found, GitLab, GitLabError};
use crate::config::values::{GitLabUser, ProjectPath};
use crate::plan::gitlab::onboarding::{
    BranchProtection, CodeProject, FileAt, ManagementProject, Membership, Observation, Observed,
    ObservedAccessToken, ObservedDeployToken, ObservedVariable, Onboarding, ProjectInfo,
    TagProtection, MAIN, RECORDS_PATTERN,
};
use crate::plan::gitlab::{Date, Role, UserRef};
use crate::secret::Secret;

/// Why GitLab could not be read as app create needs.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    GitLab(#[from] GitLabError),
    #[error("GitLab has no user {0}")]
    NoSuchUser(GitLabUser),
    #[error("{project}: {path} is not {what}")]
    BadFile {
        project: ProjectPath,
        path: String,
        what: &'static str,
    },
}

/// Reads everything `plan::gitlab::onboarding::plan` decides on. A second
/// run of an onboarded app makes 12 requests here and none elsewhere.
pub fn observe(gitlab: &GitLab, s: &Onboarding) -> Result<Observed, ObserveError> {
    let owner = find_user(gitlab, &s.owner)?;
    let code = match project(gitlab, &s.code, &owner)? {
        Observation::Missing {
            namespace_id,
            owner_level,
        } => Observation::Missing {
            namespace_id,
            owner_level,
        },
        Observation::Present(project) => Observation::Present(CodeProject {
            owner: membership(gitlab, &s.code, &owner)?,
            deploy_tokens: deploy_tokens(gitlab, &s.code)?,
            project: project.info,
        }),
    };
    let management = match project(gitlab, &s.management, &owner)? {
        Observation::Missing {
            namespace_id,
            owner_level,
        } => Observation::Missing {
            namespace_id,
            owner_level,
        },
        Observation::Present(project) => Observation::Present(ManagementProject {
            owner: membership(gitlab, &s.management, &owner)?,
            variables: variables(gitlab, &s.management)?,
            main_protection: main_protection(gitlab, &s.management)?,
            records_protection: records_protection(gitlab, &s.management)?,
            access_tokens: access_tokens(gitlab, &s.management)?,
            ci_config_path: project.ci_config_path,
            restrict_user_defined_variables: project.restrict_user_defined_variables,
            only_allow_merge_if_pipeline_succeeds: project.only_allow_merge_if_pipeline_succeeds,
            project: project.info,
        }),
    };
    Ok(Observed {
        owner,
        code,
        management,
        allocations: read_file(gitlab, &s.fleet, &s.allocations, MAIN)?,
        logs_public_key: read_file(gitlab, &s.fleet, &s.logs_key_path(), MAIN)?,
    })
}

#[derive(Deserialize)]
struct UserAnswer {
    id: u64,
    username: String,
}

fn find_user(gitlab: &GitLab, name: &GitLabUser) -> Result<UserRef, ObserveError> {
    let endpoint = built(Users::builder().username(name.as_str()).build());
    let users: Vec<UserAnswer> = gitlab.call_pages(&endpoint, 20)?;
    users
        .into_iter()
        .find(|u| u.username.eq_ignore_ascii_case(name.as_str()))
        .map(|u| UserRef {
            id: u.id,
            username: name.clone(),
        })
        .ok_or_else(|| ObserveError::NoSuchUser(name.clone()))
}

#[derive(Deserialize)]
struct ProjectAnswer {
    id: u64,
    web_url: String,
    #[serde(default)]
    empty_repo: bool,
    #[serde(default)]
    ci_config_path: Option<String>,
    #[serde(default)]
    restrict_user_defined_variables: bool,
    #[serde(default)]
    only_allow_merge_if_pipeline_succeeds: bool,
}

struct ProjectRead {
    info: ProjectInfo,
    ci_config_path: Option<String>,
    restrict_user_defined_variables: bool,
    only_allow_merge_if_pipeline_succeeds: bool,
}

#[derive(Deserialize)]
struct GroupAnswer {
    id: u64,
}

/// The project, or (when it is missing) its group's id and the
/// developer's role in that group.
fn project(
    gitlab: &GitLab,
    path: &ProjectPath,
    owner: &UserRef,
) -> Result<Observation<ProjectRead>, GitLabError> {
    let answer = found(
        gitlab.call::<_, ProjectAnswer>(&built(Project::builder().project(path.as_str()).build())),
    )?;
    if let Some(p) = answer {
        return Ok(Observation::Present(ProjectRead {
            info: ProjectInfo {
                id: p.id,
                web_url: p.web_url,
                empty_repo: p.empty_repo,
            },
            ci_config_path: p.ci_config_path.filter(|c| !c.is_empty()),
            restrict_user_defined_variables: p.restrict_user_defined_variables,
            only_allow_merge_if_pipeline_succeeds: p.only_allow_merge_if_pipeline_succeeds,
        }));
    }
    let (group, _) = path
        .as_str()
        .rsplit_once('/')
        .expect("a project path has a group");
    let answer: GroupAnswer = gitlab.call(&built(Group::builder().group(group).build()))?;
    let owner_level = found(gitlab.call::<_, MemberAnswer>(&endpoints::AllGroupMember {
        group: answer.id.into(),
        user: owner.id,
    }))?
    .map(|m| m.access_level);
    Ok(Observation::Missing {
        namespace_id: answer.id,
        owner_level,
    })
}

#[derive(Deserialize)]
struct MemberAnswer {
    access_level: u64,
}

/// The effective role; the direct one too when the effective one is below
/// Developer (to raise it rather than add a member GitLab has already).
fn membership(
    gitlab: &GitLab,
    path: &ProjectPath,
    user: &UserRef,
) -> Result<Membership, GitLabError> {
    let effective = found(
        gitlab.call::<_, MemberAnswer>(&built(
            AllProjectMember::builder()
                .project(path.as_str())
                .user(user.id)
                .build(),
        )),
    )?
    .map(|m| m.access_level);
    let direct = match effective {
        Some(level) if level < Role::Developer.level() => found(
            gitlab.call::<_, MemberAnswer>(&built(
                ProjectMember::builder()
                    .project(path.as_str())
                    .user(user.id)
                    .build(),
            )),
        )?
        .map(|m| m.access_level),
        _ => None,
    };
    Ok(Membership { effective, direct })
}

#[derive(Deserialize)]
struct VariableAnswer {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    masked: bool,
    #[serde(default)]
    environment_scope: Option<String>,
}

/// The project's variables of environment scope `*`, values as secrets.
fn variables(gitlab: &GitLab, path: &ProjectPath) -> Result<Vec<ObservedVariable>, GitLabError> {
    let answer: Vec<VariableAnswer> = gitlab.call_pages(
        &built(ProjectVariables::builder().project(path.as_str()).build()),
        1000,
    )?;
    Ok(answer
        .into_iter()
        .filter(|v| v.environment_scope.as_deref().unwrap_or("*") == "*")
        .map(|v| ObservedVariable {
            key: v.key,
            value: Secret::new(v.value.unwrap_or_default()),
            protected: v.protected,
            masked: v.masked,
        })
        .collect())
}

#[derive(Deserialize)]
struct LevelAnswer {
    access_level: Option<u64>,
}

#[derive(Deserialize)]
struct BranchProtectionAnswer {
    #[serde(default)]
    push_access_levels: Vec<LevelAnswer>,
    #[serde(default)]
    merge_access_levels: Vec<LevelAnswer>,
    #[serde(default)]
    allow_force_push: bool,
}

/// A level entry without `access_level` names a user, group or deploy key
/// (Premium): it counts as Maintainer here, as berth never adds one.
fn levels(entries: Vec<LevelAnswer>) -> Vec<u64> {
    entries
        .into_iter()
        .map(|l| l.access_level.unwrap_or(Role::Maintainer.level()))
        .collect()
}

fn main_protection(
    gitlab: &GitLab,
    path: &ProjectPath,
) -> Result<Option<BranchProtection>, GitLabError> {
    let answer = found(
        gitlab.call::<_, BranchProtectionAnswer>(&built(
            ProtectedBranch::builder()
                .project(path.as_str())
                .name(MAIN)
                .build(),
        )),
    )?;
    Ok(answer.map(|p| BranchProtection {
        push: levels(p.push_access_levels),
        merge: levels(p.merge_access_levels),
        allow_force_push: p.allow_force_push,
    }))
}

#[derive(Deserialize)]
struct TagProtectionAnswer {
    #[serde(default)]
    create_access_levels: Vec<LevelAnswer>,
}

fn records_protection(
    gitlab: &GitLab,
    path: &ProjectPath,
) -> Result<Option<TagProtection>, GitLabError> {
    let answer = found(
        gitlab.call::<_, TagProtectionAnswer>(&built(
            ProtectedTag::builder()
                .project(path.as_str())
                .name(RECORDS_PATTERN)
                .build(),
        )),
    )?;
    Ok(answer.map(|p| TagProtection {
        create: levels(p.create_access_levels),
    }))
}

#[derive(Deserialize)]
struct AccessTokenAnswer {
    id: u64,
    name: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    access_level: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

fn access_tokens(
    gitlab: &GitLab,
    path: &ProjectPath,
) -> Result<Vec<ObservedAccessToken>, GitLabError> {
    let answer: Vec<AccessTokenAnswer> = gitlab.call_pages(
        &built(
            ProjectAccessTokens::builder()
                .project(path.as_str())
                .build(),
        ),
        1000,
    )?;
    Ok(answer
        .into_iter()
        .map(|t| ObservedAccessToken {
            id: t.id,
            name: t.name,
            active: t.active,
            access_level: t.access_level,
            scopes: t.scopes,
            expires_at: t.expires_at.as_deref().and_then(date),
        })
        .collect())
}

#[derive(Deserialize)]
struct DeployTokenAnswer {
    id: u64,
    name: String,
    username: String,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expired: bool,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

fn deploy_tokens(
    gitlab: &GitLab,
    path: &ProjectPath,
) -> Result<Vec<ObservedDeployToken>, GitLabError> {
    let answer: Vec<DeployTokenAnswer> = gitlab.call_pages(
        &endpoints::DeployTokens {
            project: path.as_str().into(),
        },
        1000,
    )?;
    Ok(answer
        .into_iter()
        .map(|t| ObservedDeployToken {
            id: t.id,
            name: t.name,
            username: t.username,
            active: !t.revoked && !t.expired,
            scopes: t.scopes,
            expires_at: t.expires_at.as_deref().and_then(date),
        })
        .collect())
}

/// The date of `2027-12-01` or `2027-12-01T00:00:00.000Z`.
fn date(text: &str) -> Option<Date> {
    Date::parse(text.get(..10)?)
}

#[derive(Deserialize)]
struct FileAnswer {
    content: String,
    last_commit_id: String,
}

/// A text file of `project`'s `branch` and the last commit that changed
/// it, or `None` when it does not exist.
pub fn read_file(
    gitlab: &GitLab,
    project: &ProjectPath,
    path: &str,
    branch: &str,
) -> Result<Option<FileAt>, ObserveError> {
    let endpoint = built(
        File::builder()
            .project(project.as_str())
            .file_path(path)
            .ref_(branch)
            .build(),
    );
    let Some(file) = found(gitlab.call::<_, FileAnswer>(&endpoint))? else {
        return Ok(None);
    };
    let bad = |what| ObserveError::BadFile {
        project: project.clone(),
        path: path.to_string(),
        what,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(file.content.replace(['\n', '\r'], ""))
        .map_err(|_| bad("base64 as GitLab sends files"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("UTF-8 text"))?;
    Ok(Some(FileAt {
        text,
        last_commit_id: file.last_commit_id,
    }))
}
