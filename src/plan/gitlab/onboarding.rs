//! `berth app create` as a plan: from what was asked ([`Onboarding`]) and
//! what GitLab holds ([`Observed`]), the writes that make an app's code and
//! management repositories, variables, protections and tokens what they
//! should be. Pure: the caller reads GitLab, makes key material and reads
//! the clock first, and carries the plan out afterwards.
//!
//! Everything already right is left alone, so a second run plans nothing.
//! The one step that does not fit is the allocation: its commit may be
//! refused because another onboarding committed first, and then the file
//! is read again and the allocation chosen again ([`plan_allocation`] is
//! the pure half of that loop). The rest is planned with its result.

use crate::config::decode::Problems;
use crate::config::values::{AppId, DomainName, EnvName, GitLabUser, ProjectPath};
use crate::config::AppFile;
use crate::plan::allocation::{self, Allocated, AllocationError, Allocations, AppAllocation};
use crate::secret::Secret;

use super::{
    AccessToken, Commit, Date, DeployToken, FileAction, FileChange, FirstCommit, GitLabPlan,
    GitLabWrite, Minted, NewProject, ProjectSettings, RefAccess, Role, TokenKind, TokenPart,
    TokenScope, TreeEntry, UserRef, Variable, VariableValue,
};

const SKELETON_APP: &str = include_str!("../../../mgmt-repo-skeleton/app.yml");
const SKELETON_RELEASE: &str = include_str!("../../../mgmt-repo-skeleton/release.yml");
const SKELETON_README: &str = include_str!("../../../mgmt-repo-skeleton/README.md");
const SKELETON_CODEOWNERS: &str = include_str!("../../../mgmt-repo-skeleton/CODEOWNERS");

/// The branch of every repository berth writes to.
pub const MAIN: &str = "main";
/// Release records: only Maintainers (berth's main token) create them.
pub const RECORDS_PATTERN: &str = "deployed/*";
/// Where the fleet repository records each app's logs public key.
pub const LOGS_KEYS_DIR: &str = "logs-keys";

pub const VAR_APP: &str = "BERTH_APP";
pub const VAR_LOGS_KEY: &str = "BERTH_LOGS_KEY";
pub const VAR_MR_TOKEN: &str = "BERTH_MR_TOKEN";
pub const VAR_MAIN_TOKEN: &str = "BERTH_GITLAB_TOKEN";
pub const VAR_CODE_USER: &str = "BERTH_CODE_USER";
pub const VAR_CODE_TOKEN: &str = "BERTH_CODE_TOKEN";

/// The merge request jobs' token: Reporter, reads and writes notes.
pub const MR_TOKEN_NAME: &str = "berth-mr";
/// The main pipeline's token: Maintainer, writes release records.
pub const MAIN_TOKEN_NAME: &str = "berth-main";

/// GitLab (16.0 and later) refuses access tokens that live longer than
/// 365 days; a year from the run would be 366 days after a 29 February.
pub const TOKEN_LIFETIME_DAYS: i64 = 365;
/// A token that expires sooner than this is replaced by the next run.
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// Everything `app create` was asked, validated.
#[derive(Debug, Clone)]
pub struct Onboarding {
    pub id: AppId,
    pub owner: GitLabUser,
    pub code: ProjectPath,
    pub management: ProjectPath,
    pub fleet: ProjectPath,
    /// The allocations file's path in the fleet repository.
    pub allocations: String,
    /// `FILE@GROUP/PROJECT:TAG`, validated.
    pub ci_config: String,
    pub envs: Vec<EnvName>,
    pub domains: Vec<(EnvName, DomainName)>,
}

impl Onboarding {
    pub fn logs_key_path(&self) -> String {
        format!("{LOGS_KEYS_DIR}/{}.pub", self.id)
    }

    /// The deploy token of the code repository.
    pub fn code_token_name(&self) -> String {
        format!("berth-{}", self.id)
    }

    fn settings(&self) -> ProjectSettings {
        ProjectSettings {
            ci_config_path: self.ci_config.clone(),
            restrict_user_defined_variables: true,
            only_allow_merge_if_pipeline_succeeds: true,
        }
    }
}

/// What GitLab holds, read before planning.
#[derive(Debug, Clone)]
pub struct Observed {
    pub owner: UserRef,
    pub code: Observation<CodeProject>,
    pub management: Observation<ManagementProject>,
    /// The fleet repository's allocations file.
    pub allocations: Option<FileAt>,
    /// The logs public key recorded in the fleet repository.
    pub logs_public_key: Option<FileAt>,
}

/// A project that exists, or the group it would be made in: its id, and
/// the developer's role there (which the new project would inherit).
#[derive(Debug, Clone)]
pub enum Observation<T> {
    Missing {
        namespace_id: u64,
        owner_level: Option<u64>,
    },
    Present(T),
}

/// A file's text and the last commit that changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAt {
    pub text: String,
    pub last_commit_id: String,
}

#[derive(Debug, Clone)]
pub struct ProjectInfo {
    pub id: u64,
    pub web_url: String,
    pub empty_repo: bool,
}

/// A user's role on a project: the effective one (inherited from groups
/// included), and the direct membership's, read only when the effective
/// one is too low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Membership {
    pub effective: Option<u64>,
    pub direct: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct CodeProject {
    pub project: ProjectInfo,
    pub owner: Membership,
    pub deploy_tokens: Vec<ObservedDeployToken>,
}

#[derive(Debug, Clone)]
pub struct ManagementProject {
    pub project: ProjectInfo,
    pub ci_config_path: Option<String>,
    pub restrict_user_defined_variables: bool,
    pub only_allow_merge_if_pipeline_succeeds: bool,
    pub owner: Membership,
    pub variables: Vec<ObservedVariable>,
    pub main_protection: Option<BranchProtection>,
    pub records_protection: Option<TagProtection>,
    pub access_tokens: Vec<ObservedAccessToken>,
}

/// A CI/CD variable of environment scope `*`.
#[derive(Debug, Clone)]
pub struct ObservedVariable {
    pub key: String,
    pub value: Secret,
    pub protected: bool,
    pub masked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchProtection {
    pub push: Vec<u64>,
    pub merge: Vec<u64>,
    pub allow_force_push: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagProtection {
    pub create: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAccessToken {
    pub id: u64,
    pub name: String,
    pub active: bool,
    pub access_level: Option<u64>,
    pub scopes: Vec<String>,
    pub expires_at: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDeployToken {
    pub id: u64,
    pub name: String,
    pub username: String,
    pub active: bool,
    pub scopes: Vec<String>,
    pub expires_at: Option<Date>,
}

/// What the caller made for this run: the date, and a new logs key pair
/// when [`needs_logs_key`] says so.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub today: Date,
    pub logs_key: Option<LogsKey>,
}

#[derive(Debug, Clone)]
pub struct LogsKey {
    /// The private key in base64 (one line GitLab can mask).
    pub private_base64: Secret,
    /// `ssh-ed25519 AAAA… berth-logs-<id>`.
    pub public: String,
}

/// Why app create cannot go on; nothing has been written.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("{owner} has Maintainer or higher access to {project}: they could change its CI configuration and merge their own releases")]
    OwnerTooPowerful {
        owner: GitLabUser,
        project: ProjectPath,
    },
    #[error("the fleet repository {fleet} has no {file}")]
    NoAllocationsFile { fleet: ProjectPath, file: String },
    #[error(transparent)]
    Allocation(#[from] AllocationError),
    #[error("{0}")]
    Invalid(Problems),
}

impl OnboardingError {
    pub fn hint(&self) -> &str {
        match self {
            OnboardingError::OwnerTooPowerful { .. } => {
                "remove them from the deploy group (or lower their role) so that they are a Developer of the management repository only"
            }
            OnboardingError::NoAllocationsFile { .. } => {
                "create it with the hosts that take apps; docs/gitlab.md shows the format"
            }
            OnboardingError::Allocation(e) => e.hint(),
            OnboardingError::Invalid(_) => "",
        }
    }
}

/// Whether this run must make a new logs key pair: there is no public key
/// in the fleet repository or no private key in the management repository.
pub fn needs_logs_key(observed: &Observed) -> bool {
    let has_variable = match &observed.management {
        Observation::Present(m) => m.variables.iter().any(|v| v.key == VAR_LOGS_KEY),
        Observation::Missing { .. } => false,
    };
    observed.logs_public_key.is_none() || !has_variable
}

/// The app's allocation from the allocations file as read, and the commit
/// that records it when it is new. Called again with the file read again
/// when GitLab refuses that commit as stale.
pub fn plan_allocation(
    s: &Onboarding,
    file: Option<&FileAt>,
) -> Result<(AppAllocation, Option<GitLabWrite>), OnboardingError> {
    let Some(file) = file else {
        return Err(OnboardingError::NoAllocationsFile {
            fleet: s.fleet.clone(),
            file: s.allocations.clone(),
        });
    };
    let parsed = Allocations::parse(&format!("{}:{}", s.fleet, s.allocations), &file.text)
        .map_err(OnboardingError::Invalid)?;
    let envs: Vec<(EnvName, Vec<DomainName>)> = s
        .envs
        .iter()
        .map(|env| {
            let domains = s.domains.iter().filter(|(e, _)| e == env);
            (env.clone(), domains.map(|(_, d)| d.clone()).collect())
        })
        .collect();
    match allocation::allocate(&parsed, &s.id, &envs)? {
        Allocated::Existing(app) => Ok((app, None)),
        Allocated::New { app, file: next } => {
            let write = GitLabWrite::Commit(Commit {
                project: s.fleet.clone(),
                branch: MAIN.to_string(),
                start_branch: None,
                force: false,
                message: format!("Allocate {}: {}", s.id, describe(&app)),
                changes: vec![FileChange {
                    action: FileAction::Update,
                    path: s.allocations.clone(),
                    content: next.render(),
                    last_commit_id: Some(file.last_commit_id.clone()),
                }],
            });
            Ok((app, Some(write)))
        }
    }
}

/// `test on web-1 ports 18000/18001, …`.
pub fn describe(app: &AppAllocation) -> String {
    app.environments
        .iter()
        .map(|e| {
            let domains: Vec<&str> = e.domains.iter().map(|d| d.as_str()).collect();
            format!(
                "{} on {} ports {}/{} ({})",
                e.env,
                e.host,
                e.ports[0],
                e.ports[1],
                domains.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The onboarding's writes, given the app's allocation.
pub fn plan(
    s: &Onboarding,
    observed: &Observed,
    app: &AppAllocation,
    fresh: &Fresh,
) -> Result<GitLabPlan, OnboardingError> {
    let mut plan = GitLabPlan::default();
    let expires_at = fresh.today.plus_days(TOKEN_LIFETIME_DAYS);

    // The code repository, and the developer on it.
    let inherited = |level: &Option<u64>| Membership {
        effective: *level,
        direct: None,
    };
    let (code_tokens, code_owner) = match &observed.code {
        Observation::Missing {
            namespace_id,
            owner_level,
        } => {
            plan.push(GitLabWrite::CreateProject(NewProject {
                path: s.code.clone(),
                namespace_id: *namespace_id,
                readme: true,
                settings: None,
            }));
            (&[][..], inherited(owner_level))
        }
        Observation::Present(code) => (&code.deploy_tokens[..], code.owner),
    };
    membership(&mut plan, &s.code, &observed.owner, code_owner);

    // The management repository: settings, protections before the first
    // push (so GitLab's default protection of `main` does not apply), the
    // first commit, the developer.
    let empty = ManagementProject::empty;
    let management = match &observed.management {
        Observation::Missing {
            namespace_id,
            owner_level,
        } => {
            plan.push(GitLabWrite::CreateProject(NewProject {
                path: s.management.clone(),
                namespace_id: *namespace_id,
                readme: false,
                settings: Some(s.settings()),
            }));
            ManagementProject {
                owner: inherited(owner_level),
                ..empty()
            }
        }
        Observation::Present(m) => {
            let settings = s.settings();
            let same = m.ci_config_path.as_deref() == Some(settings.ci_config_path.as_str())
                && m.restrict_user_defined_variables == settings.restrict_user_defined_variables
                && m.only_allow_merge_if_pipeline_succeeds
                    == settings.only_allow_merge_if_pipeline_succeeds;
            if !same {
                plan.push(GitLabWrite::EditProject {
                    project: s.management.clone(),
                    settings,
                });
            }
            m.clone()
        }
    };
    if management
        .owner
        .effective
        .is_some_and(|level| level >= Role::Maintainer.level())
    {
        return Err(OnboardingError::OwnerTooPowerful {
            owner: s.owner.clone(),
            project: s.management.clone(),
        });
    }
    protect_main(&mut plan, s, management.main_protection.as_ref());
    protect_records(&mut plan, s, management.records_protection.as_ref());
    if management.project.empty_repo {
        plan.push(GitLabWrite::PushFirstCommit(first_commit(s, app)?));
    }
    membership(&mut plan, &s.management, &observed.owner, management.owner);

    // Variables and the tokens they hold.
    let vars = &management.variables;
    variable(
        &mut plan,
        s,
        vars,
        VAR_APP,
        Some(Secret::new(s.id.as_str())),
        (false, false),
        "The app id (berth app create)",
    );
    logs_key(&mut plan, s, observed, vars, fresh);
    access_token(
        &mut plan,
        s,
        &management.access_tokens,
        vars,
        TokenSpec {
            name: MR_TOKEN_NAME,
            role: Role::Reporter,
            variable: VAR_MR_TOKEN,
            // Merge request pipelines run on unprotected branches.
            protected: false,
            description: "berth's merge request jobs: Reporter, notes only (berth app create)",
        },
        fresh.today,
        expires_at,
    );
    access_token(
        &mut plan,
        s,
        &management.access_tokens,
        vars,
        TokenSpec {
            name: MAIN_TOKEN_NAME,
            role: Role::Maintainer,
            variable: VAR_MAIN_TOKEN,
            protected: true,
            description: "berth's main pipeline: Maintainer, release records (berth app create)",
        },
        fresh.today,
        expires_at,
    );
    deploy_token(&mut plan, s, code_tokens, vars, fresh.today, expires_at);
    Ok(plan)
}

impl ManagementProject {
    /// A management repository about to be created.
    fn empty() -> ManagementProject {
        ManagementProject {
            project: ProjectInfo {
                id: 0,
                web_url: String::new(),
                empty_repo: true,
            },
            ci_config_path: None,
            restrict_user_defined_variables: true,
            only_allow_merge_if_pipeline_succeeds: true,
            owner: Membership::default(),
            variables: Vec::new(),
            main_protection: None,
            records_protection: None,
            access_tokens: Vec::new(),
        }
    }
}

/// The developer is a Developer of `project` (or more: a caller checks
/// where more is too much).
fn membership(plan: &mut GitLabPlan, project: &ProjectPath, user: &UserRef, member: Membership) {
    let developer = Role::Developer.level();
    if member.effective.is_some_and(|level| level >= developer) {
        return;
    }
    let write = if member.direct.is_some() {
        // A direct member with a lower role: raise it.
        GitLabWrite::EditMember {
            project: project.clone(),
            user: user.clone(),
            role: Role::Developer,
        }
    } else {
        GitLabWrite::AddMember {
            project: project.clone(),
            user: user.clone(),
            role: Role::Developer,
        }
    };
    plan.push(write);
}

/// `main`: pushes and merges by Maintainers, no force push. A weaker rule
/// is replaced.
fn protect_main(plan: &mut GitLabPlan, s: &Onboarding, current: Option<&BranchProtection>) {
    let maintainers = Role::Maintainer.level();
    let strict =
        |levels: &[u64]| !levels.is_empty() && levels.iter().all(|level| *level >= maintainers);
    if let Some(current) = current {
        if strict(&current.push) && strict(&current.merge) && !current.allow_force_push {
            return;
        }
        plan.push(GitLabWrite::UnprotectBranch {
            project: s.management.clone(),
            branch: MAIN.to_string(),
        });
    }
    plan.push(GitLabWrite::ProtectBranch {
        project: s.management.clone(),
        branch: MAIN.to_string(),
        push: RefAccess::Maintainers,
        merge: RefAccess::Maintainers,
        allow_force_push: false,
    });
}

/// `deployed/*`: created by Maintainers only (berth's main token), so a
/// developer's token can never write a release record.
fn protect_records(plan: &mut GitLabPlan, s: &Onboarding, current: Option<&TagProtection>) {
    let maintainers = Role::Maintainer.level();
    if let Some(current) = current {
        if !current.create.is_empty() && current.create.iter().all(|level| *level >= maintainers) {
            return;
        }
        plan.push(GitLabWrite::UnprotectTag {
            project: s.management.clone(),
            pattern: RECORDS_PATTERN.to_string(),
        });
    }
    plan.push(GitLabWrite::ProtectTag {
        project: s.management.clone(),
        pattern: RECORDS_PATTERN.to_string(),
        create: RefAccess::Maintainers,
    });
}

/// Sets `key` to `value` with `(protected, masked)` unless it already is.
/// With `value` `None` the current value is kept (a key held elsewhere
/// whose flags are wrong); a missing variable then is a planning bug.
fn variable(
    plan: &mut GitLabPlan,
    s: &Onboarding,
    current: &[ObservedVariable],
    key: &str,
    value: Option<Secret>,
    (protected, masked): (bool, bool),
    description: &str,
) {
    let existing = current.iter().find(|v| v.key == key);
    let same_value = |v: &ObservedVariable| value.as_ref().is_none_or(|value| &v.value == value);
    if let Some(v) = existing {
        if same_value(v) && v.protected == protected && v.masked == masked {
            return;
        }
    }
    let Some(value) = value.or_else(|| existing.map(|v| v.value.clone())) else {
        return;
    };
    set_variable(
        plan,
        s,
        existing.is_some(),
        key,
        VariableValue::Given(value),
        (protected, masked),
        description,
    );
}

fn set_variable(
    plan: &mut GitLabPlan,
    s: &Onboarding,
    exists: bool,
    key: &str,
    value: VariableValue,
    (protected, masked): (bool, bool),
    description: &str,
) {
    let variable = Variable {
        project: s.management.clone(),
        key: key.to_string(),
        value,
        protected,
        masked,
        description: description.to_string(),
    };
    plan.push(if exists {
        GitLabWrite::UpdateVariable(variable)
    } else {
        GitLabWrite::CreateVariable(variable)
    });
}

/// The logs key: its public half committed to the fleet repository before
/// the private half is stored, so a run that stops in between never leaves
/// a variable whose key no host knows; the next run makes a new pair.
fn logs_key(
    plan: &mut GitLabPlan,
    s: &Onboarding,
    observed: &Observed,
    vars: &[ObservedVariable],
    fresh: &Fresh,
) {
    // Not protected: developers run the logs job on their branches. The
    // key can only read this app's logs (docs/gitlab.md).
    let flags = (false, true);
    let description = "SSH key that reads this app's logs only (berth app create)";
    let Some(key) = &fresh.logs_key else {
        variable(plan, s, vars, VAR_LOGS_KEY, None, flags, description);
        return;
    };
    let recorded = observed.logs_public_key.as_ref();
    plan.push(GitLabWrite::Commit(Commit {
        project: s.fleet.clone(),
        branch: MAIN.to_string(),
        start_branch: None,
        force: false,
        message: format!("Logs key of {}", s.id),
        changes: vec![FileChange {
            action: if recorded.is_some() {
                FileAction::Update
            } else {
                FileAction::Create
            },
            path: s.logs_key_path(),
            content: format!("{}\n", key.public),
            last_commit_id: recorded.map(|f| f.last_commit_id.clone()),
        }],
    }));
    let exists = vars.iter().any(|v| v.key == VAR_LOGS_KEY);
    set_variable(
        plan,
        s,
        exists,
        VAR_LOGS_KEY,
        VariableValue::Given(key.private_base64.clone()),
        flags,
        description,
    );
}

struct TokenSpec {
    name: &'static str,
    role: Role,
    variable: &'static str,
    protected: bool,
    description: &'static str,
}

/// A project access token of the management repository in `variable`
/// (masked). Kept when the variable exists and exactly one active token
/// of that name has the right role and scope and does not expire within
/// [`RENEW_WITHIN_DAYS`]; otherwise a new one is made, stored, and every
/// other active token of the name revoked after.
#[allow(clippy::too_many_arguments)]
fn access_token(
    plan: &mut GitLabPlan,
    s: &Onboarding,
    tokens: &[ObservedAccessToken],
    vars: &[ObservedVariable],
    spec: TokenSpec,
    today: Date,
    expires_at: Date,
) {
    let active: Vec<&ObservedAccessToken> = tokens
        .iter()
        .filter(|t| t.name == spec.name && t.active)
        .collect();
    let stored = vars.iter().any(|v| v.key == spec.variable);
    let good = |t: &ObservedAccessToken| {
        t.access_level == Some(spec.role.level())
            && t.scopes == [TokenScope::Api.as_str()]
            && !expires_soon(t.expires_at, today)
    };
    let flags = (spec.protected, true);
    if let ([token], true) = (active.as_slice(), stored) {
        if good(token) {
            variable(plan, s, vars, spec.variable, None, flags, spec.description);
            return;
        }
    }
    plan.push(GitLabWrite::CreateAccessToken(AccessToken {
        project: s.management.clone(),
        name: spec.name.to_string(),
        role: spec.role,
        scopes: vec![TokenScope::Api],
        expires_at,
    }));
    set_variable(
        plan,
        s,
        stored,
        spec.variable,
        VariableValue::Minted(Minted {
            kind: TokenKind::Access,
            project: s.management.clone(),
            name: spec.name.to_string(),
            part: TokenPart::Token,
        }),
        flags,
        spec.description,
    );
    for old in active {
        plan.push(GitLabWrite::RevokeAccessToken {
            project: s.management.clone(),
            id: old.id,
            name: old.name.clone(),
        });
    }
}

/// The code repository's deploy token `berth-<id>` (read_repository) in
/// `BERTH_CODE_USER` (plain) and `BERTH_CODE_TOKEN` (masked), neither
/// protected: merge request jobs read the code with it. Kept as access
/// tokens are; the user name variable must match the token's.
fn deploy_token(
    plan: &mut GitLabPlan,
    s: &Onboarding,
    tokens: &[ObservedDeployToken],
    vars: &[ObservedVariable],
    today: Date,
    expires_at: Date,
) {
    let name = s.code_token_name();
    let active: Vec<&ObservedDeployToken> = tokens
        .iter()
        .filter(|t| t.name == name && t.active)
        .collect();
    let user_var = vars.iter().find(|v| v.key == VAR_CODE_USER);
    let token_stored = vars.iter().any(|v| v.key == VAR_CODE_TOKEN);
    let user_description =
        "User name of the code repository's read-only deploy token (berth app create)";
    let token_description = "The code repository's read-only deploy token (berth app create)";
    if let ([token], Some(user), true) = (active.as_slice(), user_var, token_stored) {
        let good = token.scopes == [TokenScope::ReadRepository.as_str()]
            && !expires_soon(token.expires_at, today)
            && user.value.expose() == token.username;
        if good {
            variable(
                plan,
                s,
                vars,
                VAR_CODE_USER,
                None,
                (false, false),
                user_description,
            );
            variable(
                plan,
                s,
                vars,
                VAR_CODE_TOKEN,
                None,
                (false, true),
                token_description,
            );
            return;
        }
    }
    plan.push(GitLabWrite::CreateDeployToken(DeployToken {
        project: s.code.clone(),
        name: name.clone(),
        scopes: vec![TokenScope::ReadRepository],
        expires_at: Some(expires_at),
    }));
    let minted = |part| {
        VariableValue::Minted(Minted {
            kind: TokenKind::Deploy,
            project: s.code.clone(),
            name: name.clone(),
            part,
        })
    };
    set_variable(
        plan,
        s,
        user_var.is_some(),
        VAR_CODE_USER,
        minted(TokenPart::Username),
        (false, false),
        user_description,
    );
    set_variable(
        plan,
        s,
        token_stored,
        VAR_CODE_TOKEN,
        minted(TokenPart::Token),
        (false, true),
        token_description,
    );
    for old in active {
        plan.push(GitLabWrite::RevokeDeployToken {
            project: s.code.clone(),
            id: old.id,
            name: old.name.clone(),
        });
    }
}

fn expires_soon(expires_at: Option<Date>, today: Date) -> bool {
    expires_at.is_some_and(|date| date < today.plus_days(RENEW_WITHIN_DAYS))
}

/// The management repository's first commit: the skeleton filled in, and
/// `codes` a submodule at the code repository's `main`. It is pushed,
/// because the API cannot create a gitlink (docs/gitlab.md). There is no
/// `.gitlab-ci.yml`: the pipeline comes from `ci_config_path` only.
fn first_commit(s: &Onboarding, app: &AppAllocation) -> Result<FirstCommit, OnboardingError> {
    // Relative to the management repository's own URL, so it works over
    // HTTPS, SSH and with the job token alike.
    let up = "../".repeat(s.management.as_str().split('/').count());
    let gitmodules = format!(
        "[submodule \"codes\"]\n\tpath = codes\n\turl = {up}{}.git\n",
        s.code
    );
    let file = |text: &str| TreeEntry::File(text.as_bytes().to_vec());
    Ok(FirstCommit {
        project: s.management.clone(),
        branch: MAIN.to_string(),
        message: format!("Onboard {} (berth app create)", s.id),
        entries: vec![
            (".gitmodules".into(), file(&gitmodules)),
            ("CODEOWNERS".into(), file(SKELETON_CODEOWNERS)),
            ("README.md".into(), file(SKELETON_README)),
            ("app.yml".into(), file(&app_yml(s, app)?)),
            (
                "codes".into(),
                TreeEntry::GitlinkToHead {
                    project: s.code.clone(),
                    branch: MAIN.to_string(),
                },
            ),
            ("release.yml".into(), file(&release_yml(s))),
        ],
    })
}

/// The skeleton's app.yml with this app's id, owner, code repository,
/// hosts, ports and domains; checked by berth's own parser.
pub fn app_yml(s: &Onboarding, app: &AppAllocation) -> Result<String, OnboardingError> {
    let mut out = String::new();
    let mut in_environments = false;
    for line in SKELETON_APP.lines() {
        let top_level = !line.starts_with([' ', '#']) && !line.is_empty();
        if in_environments && !top_level {
            continue;
        }
        in_environments = false;
        let key = line.split(':').next().unwrap_or_default();
        match (top_level, key) {
            (true, "id") => out.push_str(&format!("id: {}\n", s.id)),
            (true, "owner") => out.push_str(&format!("owner: {}\n", s.owner)),
            (true, "code_repo") => out.push_str(&format!("code_repo: {}\n", s.code)),
            (true, "environments") => {
                in_environments = true;
                out.push_str("environments:\n");
                for env in &app.environments {
                    let domains: Vec<String> = s
                        .domains
                        .iter()
                        .filter(|(e, _)| *e == env.env)
                        .map(|(_, d)| d.to_string())
                        .collect();
                    out.push_str(&format!(
                        "  {}:\n    host: {}\n    ports: [{}, {}]\n    domains: [{}]\n",
                        env.env,
                        env.host,
                        env.ports[0],
                        env.ports[1],
                        domains.join(", ")
                    ));
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    AppFile::parse("app.yml", &out).map_err(OnboardingError::Invalid)?;
    Ok(out)
}

/// The skeleton's release.yml, with one entry per environment of this app.
pub fn release_yml(s: &Onboarding) -> String {
    let header: String = SKELETON_RELEASE
        .lines()
        .take_while(|line| !line.starts_with("environments:"))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut out = header + "environments:\n";
    for env in &s.envs {
        out.push_str(&format!("  {env}:\n    ref: v1.0.0\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOCATIONS: &str = "\
hosts:
  web-1:
    environments: [test, production]
    ports: {first: 18000, last: 18099}
apps: {}
";

    fn onboarding() -> Onboarding {
        Onboarding {
            id: "shop".parse().unwrap(),
            owner: "dee".parse().unwrap(),
            code: "plugins/shop".parse().unwrap(),
            management: "deploy/shop".parse().unwrap(),
            fleet: "platform/fleet".parse().unwrap(),
            allocations: "allocations.yml".into(),
            ci_config: "management.yml@platform/ci-templates:v1.0.0".into(),
            envs: vec!["test".parse().unwrap(), "production".parse().unwrap()],
            domains: vec![
                (
                    "test".parse().unwrap(),
                    "shop.test.example.com".parse().unwrap(),
                ),
                (
                    "production".parse().unwrap(),
                    "shop.example.com".parse().unwrap(),
                ),
            ],
        }
    }

    fn dee() -> UserRef {
        UserRef {
            id: 7,
            username: "dee".parse().unwrap(),
        }
    }

    fn today() -> Date {
        Date::parse("2026-12-01").unwrap()
    }

    fn fresh_key() -> Fresh {
        Fresh {
            today: today(),
            logs_key: Some(LogsKey {
                private_base64: Secret::new("LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0="),
                public: "ssh-ed25519 AAAAC3Nza berth-logs-shop".into(),
            }),
        }
    }

    fn nothing_yet() -> Observed {
        Observed {
            owner: dee(),
            code: Observation::Missing {
                namespace_id: 3,
                owner_level: None,
            },
            management: Observation::Missing {
                namespace_id: 4,
                owner_level: None,
            },
            allocations: Some(allocations()),
            logs_public_key: None,
        }
    }

    fn allocations() -> FileAt {
        FileAt {
            text: ALLOCATIONS.into(),
            last_commit_id: "a11ca7e5a11ca7e5a11ca7e5a11ca7e5a11ca7e5".into(),
        }
    }

    fn var(key: &str, value: &str, protected: bool, masked: bool) -> ObservedVariable {
        ObservedVariable {
            key: key.into(),
            value: Secret::new(value),
            protected,
            masked,
        }
    }

    /// What the first run leaves, as the second run reads it.
    fn onboarded() -> Observed {
        let project = |id| ProjectInfo {
            id,
            web_url: String::new(),
            empty_repo: false,
        };
        let developer = Membership {
            effective: Some(30),
            direct: None,
        };
        let token = |id, name: &str, level| ObservedAccessToken {
            id,
            name: name.into(),
            active: true,
            access_level: Some(level),
            scopes: vec!["api".into()],
            expires_at: Some(today().plus_days(365)),
        };
        Observed {
            owner: dee(),
            code: Observation::Present(CodeProject {
                project: project(11),
                owner: developer,
                deploy_tokens: vec![ObservedDeployToken {
                    id: 1,
                    name: "berth-shop".into(),
                    username: "gitlab+deploy-token-1".into(),
                    active: true,
                    scopes: vec!["read_repository".into()],
                    expires_at: Some(today().plus_days(365)),
                }],
            }),
            management: Observation::Present(ManagementProject {
                project: project(12),
                ci_config_path: Some("management.yml@platform/ci-templates:v1.0.0".into()),
                restrict_user_defined_variables: true,
                only_allow_merge_if_pipeline_succeeds: true,
                owner: developer,
                variables: vec![
                    var("BERTH_APP", "shop", false, false),
                    var("BERTH_LOGS_KEY", "a2V5", false, true),
                    var("BERTH_MR_TOKEN", "glpat-mr", false, true),
                    var("BERTH_GITLAB_TOKEN", "glpat-main", true, true),
                    var("BERTH_CODE_USER", "gitlab+deploy-token-1", false, false),
                    var("BERTH_CODE_TOKEN", "gldt-x", false, true),
                ],
                main_protection: Some(BranchProtection {
                    push: vec![40],
                    merge: vec![40],
                    allow_force_push: false,
                }),
                records_protection: Some(TagProtection { create: vec![40] }),
                access_tokens: vec![token(5, "berth-mr", 20), token(6, "berth-main", 40)],
            }),
            allocations: Some(allocations()),
            logs_public_key: Some(FileAt {
                text: "ssh-ed25519 AAAAC3Nza berth-logs-shop\n".into(),
                last_commit_id: "1111".into(),
            }),
        }
    }

    fn management(observed: &mut Observed) -> &mut ManagementProject {
        match &mut observed.management {
            Observation::Present(m) => m,
            Observation::Missing { .. } => unreachable!(),
        }
    }

    #[test]
    fn a_new_app_gets_everything_in_order() {
        let s = onboarding();
        let (app, allocation) = plan_allocation(&s, Some(&allocations())).unwrap();
        let observed = nothing_yet();
        assert!(needs_logs_key(&observed));
        let mut all = GitLabPlan::from(allocation.into_iter().collect::<Vec<_>>());
        all.writes
            .extend(plan(&s, &observed, &app, &fresh_key()).unwrap().writes);
        assert_eq!(
            all.to_string(),
            "\
POST projects/platform%2Ffleet/repository/commits  branch=main commit_message=\"Allocate shop: test on web-1 ports 18000/18001 (shop.test.example.com), production on web-1 ports 18002/18003 (shop.exam...\" action=update:allocations.yml@a11ca7e5a11c
POST projects  path=plugins/shop namespace_id=3 visibility=private initialize_with_readme=true default_branch=main
POST projects/plugins%2Fshop/members  user_id=7 username=dee access_level=30
POST projects  path=deploy/shop namespace_id=4 visibility=private ci_config_path=management.yml@platform/ci-templates:v1.0.0 restrict_user_defined_variables=true only_allow_merge_if_pipeline_succeeds=true
POST projects/deploy%2Fshop/protected_branches  name=main push_access_level=40 merge_access_level=40 allow_force_push=false
POST projects/deploy%2Fshop/protected_tags  name=deployed/* create_access_level=40
PUSH deploy/shop.git  branch=main files=.gitmodules,CODEOWNERS,README.md,app.yml,release.yml gitlink=codes:plugins/shop@main
POST projects/deploy%2Fshop/members  user_id=7 username=dee access_level=30
POST projects/deploy%2Fshop/variables  key=BERTH_APP value=[secret] protected=false masked=false
POST projects/platform%2Ffleet/repository/commits  branch=main commit_message=\"Logs key of shop\" action=create:logs-keys/shop.pub
POST projects/deploy%2Fshop/variables  key=BERTH_LOGS_KEY value=[secret] protected=false masked=true
POST projects/deploy%2Fshop/access_tokens  name=berth-mr access_level=20 scopes=api expires_at=2027-12-01
POST projects/deploy%2Fshop/variables  key=BERTH_MR_TOKEN value=[secret]<-access_token:berth-mr protected=false masked=true
POST projects/deploy%2Fshop/access_tokens  name=berth-main access_level=40 scopes=api expires_at=2027-12-01
POST projects/deploy%2Fshop/variables  key=BERTH_GITLAB_TOKEN value=[secret]<-access_token:berth-main protected=true masked=true
POST projects/plugins%2Fshop/deploy_tokens  name=berth-shop scopes=read_repository expires_at=2027-12-01
POST projects/deploy%2Fshop/variables  key=BERTH_CODE_USER value=username<-deploy_token:berth-shop protected=false masked=false
POST projects/deploy%2Fshop/variables  key=BERTH_CODE_TOKEN value=[secret]<-deploy_token:berth-shop protected=false masked=true
"
        );
        let first = all
            .iter()
            .find_map(|w| match w {
                GitLabWrite::PushFirstCommit(c) => Some(c),
                _ => None,
            })
            .unwrap();
        let text = |path: &str| {
            first
                .entries
                .iter()
                .find_map(|(p, e)| match e {
                    TreeEntry::File(bytes) if p == path => {
                        Some(String::from_utf8(bytes.clone()).unwrap())
                    }
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(
            text(".gitmodules"),
            "[submodule \"codes\"]\n\tpath = codes\n\turl = ../../plugins/shop.git\n"
        );
        assert!(text("app.yml").contains(
            "  test:\n    host: web-1\n    ports: [18000, 18001]\n    domains: [shop.test.example.com]\n"
        ));
        assert!(text("release.yml").ends_with(
            "environments:\n  test:\n    ref: v1.0.0\n  production:\n    ref: v1.0.0\n"
        ));
    }

    #[test]
    fn an_onboarded_app_plans_nothing() {
        let s = onboarding();
        let observed = onboarded();
        assert!(!needs_logs_key(&observed));
        let file = FileAt {
            text: ALLOCATIONS.replace(
                "apps: {}\n",
                "apps:\n  shop:\n    test: {host: web-1, ports: [18000, 18001], domains: [shop.test.example.com]}\n    production: {host: web-1, ports: [18002, 18003], domains: [shop.example.com]}\n",
            ),
            last_commit_id: "2222".into(),
        };
        let (app, write) = plan_allocation(&s, Some(&file)).unwrap();
        assert_eq!(write, None);
        let fresh = Fresh {
            today: today(),
            logs_key: None,
        };
        assert_eq!(
            plan(&s, &observed, &app, &fresh).unwrap().to_string(),
            "no GitLab writes\n"
        );
    }

    #[test]
    fn what_drifted_is_put_back_and_nothing_else() {
        let s = onboarding();
        let (app, _) = plan_allocation(&s, Some(&allocations())).unwrap();
        let mut observed = onboarded();
        if let Observation::Present(code) = &mut observed.code {
            // A direct Guest: raised, not added.
            code.owner = Membership {
                effective: Some(10),
                direct: Some(10),
            };
        }
        let m = management(&mut observed);
        m.ci_config_path = Some("other.yml@platform/ci-templates:v0.9.0".into());
        m.main_protection = Some(BranchProtection {
            push: vec![30],
            merge: vec![40],
            allow_force_push: false,
        });
        m.records_protection = None;
        m.variables[0] = var("BERTH_APP", "shop", true, false);
        m.variables[2] = var("BERTH_MR_TOKEN", "glpat-mr", true, true);
        let fresh = Fresh {
            today: today(),
            logs_key: None,
        };
        assert_eq!(
            plan(&s, &observed, &app, &fresh).unwrap().to_string(),
            "\
PUT projects/plugins%2Fshop/members/7  username=dee access_level=30
PUT projects/deploy%2Fshop  ci_config_path=management.yml@platform/ci-templates:v1.0.0 restrict_user_defined_variables=true only_allow_merge_if_pipeline_succeeds=true
DELETE projects/deploy%2Fshop/protected_branches/main
POST projects/deploy%2Fshop/protected_branches  name=main push_access_level=40 merge_access_level=40 allow_force_push=false
POST projects/deploy%2Fshop/protected_tags  name=deployed/* create_access_level=40
PUT projects/deploy%2Fshop/variables/BERTH_APP  key=BERTH_APP value=[secret] protected=false masked=false
PUT projects/deploy%2Fshop/variables/BERTH_MR_TOKEN  key=BERTH_MR_TOKEN value=[secret] protected=false masked=true
"
        );
    }

    #[test]
    fn an_app_allocated_before_dns_gets_its_domains_recorded() {
        let s = onboarding();
        let file = FileAt {
            text: ALLOCATIONS.replace(
                "apps: {}\n",
                "apps:\n  shop:\n    test: {host: web-1, ports: [18000, 18001]}\n    production: {host: web-1, ports: [18002, 18003]}\n",
            ),
            last_commit_id: "2222".into(),
        };
        let (_, write) = plan_allocation(&s, Some(&file)).unwrap();
        let Some(GitLabWrite::Commit(commit)) = write else {
            panic!("the domains are committed")
        };
        assert!(commit.changes[0].content.ends_with(
            "    test: {host: web-1, ports: [18000, 18001], domains: [shop.test.example.com]}\n    production: {host: web-1, ports: [18002, 18003], domains: [shop.example.com]}\n"
        ));
    }

    #[test]
    fn tokens_are_renewed_when_missing_expiring_doubled_or_wrong() {
        let s = onboarding();
        let file = FileAt {
            text: ALLOCATIONS.replace(
                "apps: {}\n",
                "apps:\n  shop:\n    test: {host: web-1, ports: [18000, 18001], domains: [shop.test.example.com]}\n    production: {host: web-1, ports: [18002, 18003], domains: [shop.example.com]}\n",
            ),
            last_commit_id: "2222".into(),
        };
        let (app, _) = plan_allocation(&s, Some(&file)).unwrap();
        let mut observed = onboarded();
        let m = management(&mut observed);
        // berth-mr: its variable was deleted (the documented way to rotate).
        m.variables.retain(|v| v.key != "BERTH_MR_TOKEN");
        // berth-main: expires in 29 days.
        m.access_tokens[1].expires_at = Some(today().plus_days(29));
        if let Observation::Present(code) = &mut observed.code {
            // Two active deploy tokens: which one the variable holds is unknown.
            let mut twin = code.deploy_tokens[0].clone();
            twin.id = 2;
            code.deploy_tokens.push(twin);
        }
        let fresh = Fresh {
            today: today(),
            logs_key: None,
        };
        assert_eq!(
            plan(&s, &observed, &app, &fresh).unwrap().to_string(),
            "\
POST projects/deploy%2Fshop/access_tokens  name=berth-mr access_level=20 scopes=api expires_at=2027-12-01
POST projects/deploy%2Fshop/variables  key=BERTH_MR_TOKEN value=[secret]<-access_token:berth-mr protected=false masked=true
DELETE projects/deploy%2Fshop/access_tokens/5  name=berth-mr
POST projects/deploy%2Fshop/access_tokens  name=berth-main access_level=40 scopes=api expires_at=2027-12-01
PUT projects/deploy%2Fshop/variables/BERTH_GITLAB_TOKEN  key=BERTH_GITLAB_TOKEN value=[secret]<-access_token:berth-main protected=true masked=true
DELETE projects/deploy%2Fshop/access_tokens/6  name=berth-main
POST projects/plugins%2Fshop/deploy_tokens  name=berth-shop scopes=read_repository expires_at=2027-12-01
PUT projects/deploy%2Fshop/variables/BERTH_CODE_USER  key=BERTH_CODE_USER value=username<-deploy_token:berth-shop protected=false masked=false
PUT projects/deploy%2Fshop/variables/BERTH_CODE_TOKEN  key=BERTH_CODE_TOKEN value=[secret]<-deploy_token:berth-shop protected=false masked=true
DELETE projects/plugins%2Fshop/deploy_tokens/1  name=berth-shop
DELETE projects/plugins%2Fshop/deploy_tokens/2  name=berth-shop
"
        );
    }

    #[test]
    fn a_developer_who_maintains_the_management_repository_stops_the_run() {
        let s = onboarding();
        let (app, _) = plan_allocation(&s, Some(&allocations())).unwrap();
        let mut observed = onboarded();
        management(&mut observed).owner = Membership {
            effective: Some(40),
            direct: None,
        };
        let error = plan(&s, &observed, &app, &fresh_key()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "dee has Maintainer or higher access to deploy/shop: they could change its CI configuration and merge their own releases"
        );
    }

    #[test]
    fn a_developer_who_maintains_the_deploy_group_stops_a_new_onboarding() {
        let s = onboarding();
        let (app, _) = plan_allocation(&s, Some(&allocations())).unwrap();
        let mut observed = nothing_yet();
        observed.management = Observation::Missing {
            namespace_id: 4,
            owner_level: Some(40),
        };
        assert!(matches!(
            plan(&s, &observed, &app, &fresh_key()),
            Err(OnboardingError::OwnerTooPowerful { .. })
        ));
        // A Developer of the plugins group already is one of the new code
        // repository: no member to add there.
        observed.management = nothing_yet().management;
        observed.code = Observation::Missing {
            namespace_id: 3,
            owner_level: Some(30),
        };
        let writes = plan(&s, &observed, &app, &fresh_key()).unwrap().to_string();
        assert!(!writes.contains("plugins%2Fshop/members"), "{writes}");
    }

    #[test]
    fn a_new_logs_key_replaces_a_half_made_one() {
        let s = onboarding();
        let (app, _) = plan_allocation(&s, Some(&allocations())).unwrap();
        let mut observed = onboarded();
        // The public key was committed, the variable never stored.
        management(&mut observed)
            .variables
            .retain(|v| v.key != "BERTH_LOGS_KEY");
        assert!(needs_logs_key(&observed));
        let writes = plan(&s, &observed, &app, &fresh_key()).unwrap().to_string();
        assert!(writes.starts_with(
            "\
POST projects/platform%2Ffleet/repository/commits  branch=main commit_message=\"Logs key of shop\" action=update:logs-keys/shop.pub@1111
POST projects/deploy%2Fshop/variables  key=BERTH_LOGS_KEY value=[secret] protected=false masked=true
"
        ), "{writes}");
    }

    #[test]
    fn allocation_errors_stop_before_any_write() {
        let s = onboarding();
        assert_eq!(
            plan_allocation(&s, None).unwrap_err().to_string(),
            "the fleet repository platform/fleet has no allocations.yml"
        );
        let full = FileAt {
            text: ALLOCATIONS.replace("last: 18099", "last: 18001"),
            last_commit_id: "3".into(),
        };
        assert_eq!(
            plan_allocation(&s, Some(&full)).unwrap_err().to_string(),
            "every host serving environment production has used up its port range"
        );
    }
}
