//! `berth app create`: onboards an app. Creates the code repository and the
//! management repository (from `mgmt-repo-skeleton/`, with `codes/` as a
//! submodule of the code repository), grants the developer access, sets the
//! CI/CD variables, protects `main`, pins the CI configuration, allocates a
//! host and ports in the fleet repository and provisions the logs key.
//!
//! Idempotent: every step reads first and writes only what is missing or
//! different, so a second run makes no write request, and a run that
//! failed half-way converges when run again.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use gitlab::api::common::{AccessLevel, ProtectedAccessLevel, VisibilityLevel};
use gitlab::api::groups::Group;
use gitlab::api::projects::members::{AddProjectMember, AllProjectMember, EditProjectMember};
use gitlab::api::projects::protected_branches::{ProtectBranch, ProtectedBranch, UnprotectBranch};
use gitlab::api::projects::repository::branches::Branch;
use gitlab::api::projects::repository::commits::{CommitAction, CommitActionType, CreateCommit};
use gitlab::api::projects::repository::files::File;
use gitlab::api::projects::variables::{
    CreateProjectVariable, ProjectVariables, UpdateProjectVariable,
};
use gitlab::api::projects::{CreateProject, EditProject, Project};
use gitlab::api::users::Users;
use serde::Deserialize;

use super::gitlab::{connect, usage, Outputs};
use super::CommandError;
use crate::cli::AppCreateArgs;
use crate::config::values::{
    quoted, AppId, DomainName, EnvName, GitLabUser, ProjectPath, ScalarValue,
};
use crate::config::{AppFile, Inventory};
use crate::env::Env;
use crate::exec::git::{self, Entry};
use crate::exec::gitlab::{ErrorKind, GitLab, GitLabError};
use crate::plan::allocation::{self, Allocated, Allocations, AppAllocation};
use crate::report::Reporter;

const SKELETON_APP: &str = include_str!("../../mgmt-repo-skeleton/app.yml");
const SKELETON_RELEASE: &str = include_str!("../../mgmt-repo-skeleton/release.yml");
const SKELETON_README: &str = include_str!("../../mgmt-repo-skeleton/README.md");
const SKELETON_CODEOWNERS: &str = include_str!("../../mgmt-repo-skeleton/CODEOWNERS");
const SKELETON_PIPELINE: &str = include_str!("../../mgmt-repo-skeleton/.gitlab-ci.yml");

/// The fleet repository's branch that holds the allocations.
const FLEET_BRANCH: &str = "main";
/// Attempts at committing the allocation against other onboardings.
const ALLOCATION_ATTEMPTS: u32 = 60;
/// The management repository's CI/CD variables.
const VAR_APP: &str = "BERTH_APP";
const VAR_LOGS_KEY: &str = "BERTH_LOGS_KEY";
/// Where the fleet repository records each app's logs public key.
const LOGS_KEYS_DIR: &str = "logs-keys";

/// Everything `app create` was asked, validated.
struct Settings {
    id: AppId,
    owner: GitLabUser,
    code: ProjectPath,
    management: ProjectPath,
    fleet: ProjectPath,
    allocations: String,
    ci_config: String,
    envs: Vec<EnvName>,
    domains: Vec<(EnvName, DomainName)>,
    inventory: Option<Inventory>,
}

pub fn run(args: &AppCreateArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let settings = Settings::resolve(args, env)?;
    let gitlab = connect(env)?;
    let failed = |e: GitLabError| CommandError::Failed(anyhow::Error::new(e));
    let s = &settings;

    let owner = find_user(&gitlab, &s.owner)?;
    let code = ensure_project(&gitlab, &s.code, true, None, reporter).map_err(failed)?;
    ensure_member(&gitlab, &s.code, &owner, None, reporter)?;

    let allocation = allocate(&gitlab, s, reporter)?;

    let ci = ProjectSettings {
        ci_config_path: &s.ci_config,
    };
    let management =
        ensure_project(&gitlab, &s.management, false, Some(&ci), reporter).map_err(failed)?;
    if management.empty_repo {
        push_first_commit(&gitlab, s, &code, &management, &allocation, reporter)?;
    }
    ensure_settings(&gitlab, &s.management, &management, &ci, reporter).map_err(failed)?;
    ensure_member(
        &gitlab,
        &s.management,
        &owner,
        Some(AccessLevel::Developer),
        reporter,
    )?;
    let public_key = ensure_variables(&gitlab, s, reporter)?;
    protect_main(&gitlab, &s.management, reporter).map_err(failed)?;

    report(
        s,
        &allocation,
        &public_key,
        &management,
        &code,
        env,
        reporter,
    )
}

impl Settings {
    fn resolve(args: &AppCreateArgs, env: &Env) -> Result<Settings, CommandError> {
        let invalid = |e: crate::config::values::ValueError| usage(&e.message, &e.hint);
        let id = AppId::parse(&args.id).map_err(invalid)?;
        let owner = GitLabUser::parse(&args.owner).map_err(invalid)?;
        let group = |flag: &str, value: &str| -> Result<ProjectPath, CommandError> {
            ProjectPath::parse(&format!("{value}/{id}")).map_err(|_| {
                usage(
                    &format!("--{flag} {} is not a GitLab group path", quoted(value)),
                    "give a group path such as plugins or company/plugins",
                )
            })
        };
        let code = group("plugins-group", &args.plugins_group)?;
        let management = group("deploy-group", &args.deploy_group)?;
        let fleet = ProjectPath::parse(&args.fleet).map_err(invalid)?;
        let allocations_ok = !args.allocations.is_empty()
            && !args.allocations.starts_with('/')
            && args.allocations.split('/').all(|c| {
                !c.is_empty()
                    && c != ".."
                    && c.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            });
        if !allocations_ok {
            return Err(usage(
                &format!(
                    "--allocations {} is not a file path",
                    quoted(&args.allocations)
                ),
                "give a path inside the fleet repository, e.g. allocations.yml",
            ));
        }
        check_ci_config(&args.ci_config)?;
        let mut envs: Vec<EnvName> = Vec::new();
        for name in &args.envs {
            let env = EnvName::parse(name).map_err(invalid)?;
            if !envs.contains(&env) {
                envs.push(env);
            }
        }
        let mut domains = Vec::new();
        for env in &envs {
            let derived = if env.as_str() == "production" {
                format!("{id}.{}", args.domain_base)
            } else {
                format!("{id}.{env}.{}", args.domain_base)
            };
            domains.push((env.clone(), DomainName::parse(&derived).map_err(invalid)?));
        }
        for given in &args.domains {
            let Some((env, domain)) = given.split_once('=') else {
                return Err(usage(
                    &format!("--domain {} is not ENV=DOMAIN", quoted(given)),
                    "e.g. --domain production=shop.example.com",
                ));
            };
            let env = EnvName::parse(env).map_err(invalid)?;
            let domain = DomainName::parse(domain).map_err(invalid)?;
            match domains.iter_mut().find(|(e, _)| *e == env) {
                Some(entry) => entry.1 = domain,
                None => {
                    return Err(usage(
                        &format!("--domain names environment {env}, which the app does not have"),
                        "give the environment with --env too",
                    ))
                }
            }
        }
        let inventory = match args.inventory.inventory.clone().or(env.inventory.clone()) {
            Some(path) => Some(Inventory::load(&path)?),
            None => None,
        };
        Ok(Settings {
            id,
            owner,
            code,
            management,
            fleet,
            allocations: args.allocations.clone(),
            ci_config: args.ci_config.clone(),
            envs,
            domains,
            inventory,
        })
    }
}

/// `FILE.yml@GROUP/PROJECT:TAG`: GitLab reads FILE from that project at
/// TAG. An unpinned value (no `:TAG`) would follow the templates' default
/// branch, so it is refused.
fn check_ci_config(value: &str) -> Result<(), CommandError> {
    let hint = "write FILE@GROUP/PROJECT:TAG, e.g. templates/release.yml@platform/ci-templates:v1.0.0, with TAG a protected tag";
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    };
    let parsed = value.split_once('@').and_then(|(file, rest)| {
        let (project, tag) = rest.split_once(':')?;
        Some((file, project, tag))
    });
    match parsed {
        Some((file, project, tag))
            if safe(file)
                && (file.ends_with(".yml") || file.ends_with(".yaml"))
                && ProjectPath::parse(project).is_ok()
                && safe(tag) =>
        {
            Ok(())
        }
        _ => Err(usage(
            &format!(
                "--ci-config {} is not a pinned CI configuration",
                quoted(value)
            ),
            hint,
        )),
    }
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("a GitLab endpoint was built without a required field: {e}"))
}

#[derive(Debug, Clone, Deserialize)]
struct UserInfo {
    id: u64,
    username: String,
}

fn find_user(gitlab: &GitLab, name: &GitLabUser) -> Result<UserInfo, CommandError> {
    let endpoint = built(Users::builder().username(name.as_str()).build());
    let users: Vec<UserInfo> = gitlab
        .call_pages(&endpoint, 20)
        .map_err(|e| CommandError::Failed(e.into()))?;
    users
        .into_iter()
        .find(|u| u.username.eq_ignore_ascii_case(name.as_str()))
        .ok_or_else(|| {
            usage(
                &format!("GitLab has no user {name}"),
                "give the outside developer's GitLab user name with --owner; they must have signed in once",
            )
        })
}

#[derive(Debug, Clone, Deserialize)]
struct ProjectInfo {
    id: u64,
    path_with_namespace: String,
    web_url: String,
    default_branch: Option<String>,
    #[serde(default)]
    empty_repo: bool,
    #[serde(default)]
    ci_config_path: Option<String>,
    #[serde(default)]
    restrict_user_defined_variables: bool,
    #[serde(default)]
    only_allow_merge_if_pipeline_succeeds: bool,
}

/// The management repository's settings berth keeps.
struct ProjectSettings<'a> {
    ci_config_path: &'a str,
}

#[derive(Debug, Deserialize)]
struct GroupInfo {
    id: u64,
}

/// The project at `path`, created (private) when missing.
fn ensure_project(
    gitlab: &GitLab,
    path: &ProjectPath,
    with_readme: bool,
    settings: Option<&ProjectSettings>,
    reporter: &Reporter,
) -> Result<ProjectInfo, GitLabError> {
    let get =
        || gitlab.call::<_, ProjectInfo>(&built(Project::builder().project(path.as_str()).build()));
    match get() {
        Ok(project) => return Ok(project),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (group, name) = path
        .as_str()
        .rsplit_once('/')
        .expect("a project path has a group");
    let group: GroupInfo = gitlab.call(&built(Group::builder().group(group).build()))?;
    let mut create = CreateProject::builder();
    create
        .name(name)
        .path(name)
        .namespace_id(group.id)
        .visibility(VisibilityLevel::Private);
    if with_readme {
        create.initialize_with_readme(true).default_branch("main");
    }
    if let Some(settings) = settings {
        create
            .ci_config_path(settings.ci_config_path)
            .restrict_user_defined_variables(true)
            .only_allow_merge_if_pipeline_succeeds(true);
    }
    match gitlab.call::<_, ProjectInfo>(&built(create.build())) {
        Ok(project) => {
            reporter.info(&format!("created project {path}"));
            Ok(project)
        }
        // Created by a run whose answer was lost: it is there now.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => get(),
        Err(e) => Err(e),
    }
}

fn ensure_settings(
    gitlab: &GitLab,
    path: &ProjectPath,
    project: &ProjectInfo,
    settings: &ProjectSettings,
    reporter: &Reporter,
) -> Result<(), GitLabError> {
    if project.ci_config_path.as_deref() == Some(settings.ci_config_path)
        && project.restrict_user_defined_variables
        && project.only_allow_merge_if_pipeline_succeeds
    {
        return Ok(());
    }
    gitlab.call_ignoring_body(&built(
        EditProject::builder()
            .project(path.as_str())
            .ci_config_path(settings.ci_config_path)
            .restrict_user_defined_variables(true)
            .only_allow_merge_if_pipeline_succeeds(true)
            .build(),
    ))?;
    reporter.info(&format!(
        "{path}: CI configuration {}, pipeline variables restricted, merges need a passing pipeline",
        settings.ci_config_path
    ));
    Ok(())
}

#[derive(Debug, Deserialize)]
struct MemberInfo {
    access_level: u64,
}

const DEVELOPER: u64 = 30;
const MAINTAINER: u64 = 40;

/// Gives `user` Developer access to `path`. With `at_most`, a user who
/// already has more (e.g. through a group) is an error: on a management
/// repository a Maintainer could change `ci_config_path` and merge their
/// own release.
fn ensure_member(
    gitlab: &GitLab,
    path: &ProjectPath,
    user: &UserInfo,
    at_most: Option<AccessLevel>,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(e.into());
    let current = match gitlab.call::<_, MemberInfo>(&built(
        AllProjectMember::builder()
            .project(path.as_str())
            .user(user.id)
            .build(),
    )) {
        Ok(member) => Some(member.access_level),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(failed(e)),
    };
    if at_most.is_some() && current.is_some_and(|level| level >= MAINTAINER) {
        return Err(usage(
            &format!(
                "{} has Maintainer or higher access to {path}: they could change its CI configuration and merge their own releases",
                user.username
            ),
            "remove them from the deploy group (or lower their role) so that they are a Developer of the management repository only",
        ));
    }
    if current.is_some_and(|level| level >= DEVELOPER) {
        return Ok(());
    }
    let add = built(
        AddProjectMember::builder()
            .project(path.as_str())
            .user(user.id)
            .access_level(AccessLevel::Developer)
            .build(),
    );
    match gitlab.call_ignoring_body(&add) {
        Ok(()) => {}
        // A direct member with a lower role: raise it.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => gitlab
            .call_ignoring_body(&built(
                EditProjectMember::builder()
                    .project(path.as_str())
                    .user(user.id)
                    .access_level(AccessLevel::Developer)
                    .build(),
            ))
            .map_err(failed)?,
        Err(e) => return Err(failed(e)),
    }
    reporter.info(&format!("{path}: {} is a Developer", user.username));
    Ok(())
}

#[derive(Debug, Deserialize)]
struct FileInfo {
    content: String,
    last_commit_id: String,
}

/// A file of `project`'s `branch` and the last commit that changed it, or
/// `None` when it does not exist.
pub(super) fn read_file(
    gitlab: &GitLab,
    project: &ProjectPath,
    path: &str,
    branch: &str,
) -> Result<Option<(String, String)>, CommandError> {
    let endpoint = built(
        File::builder()
            .project(project.as_str())
            .file_path(path)
            .ref_(branch)
            .build(),
    );
    let file: FileInfo = match gitlab.call(&endpoint) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CommandError::Failed(e.into())),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(file.content.replace(['\n', '\r'], ""))
        .with_context(|| format!("{project}: {path} is not base64 as GitLab sends files"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{project}: {path} is not UTF-8 text"))?;
    Ok(Some((text, file.last_commit_id)))
}

/// Commits one file: created when `last_commit_id` is `None`, else updated
/// if nobody changed it since that commit.
fn commit_file(
    gitlab: &GitLab,
    project: &ProjectPath,
    branch: &str,
    path: &str,
    content: &str,
    last_commit_id: Option<&str>,
    message: &str,
) -> Result<(), GitLabError> {
    let mut action = CommitAction::builder();
    action.file_path(path).content(content.as_bytes());
    match last_commit_id {
        Some(id) => action.action(CommitActionType::Update).last_commit_id(id),
        None => action.action(CommitActionType::Create),
    };
    gitlab.call_ignoring_body(&built(
        CreateCommit::builder()
            .project(project.as_str())
            .branch(branch)
            .commit_message(message)
            .action(built(action.build()))
            .build(),
    ))
}

/// Reads the fleet's allocations and, unless the app has them already,
/// commits new ones. A commit refused because another onboarding changed
/// the file first is retried on the new file, a bounded number of times.
fn allocate(
    gitlab: &GitLab,
    s: &Settings,
    reporter: &Reporter,
) -> Result<AppAllocation, CommandError> {
    for attempt in 1..=ALLOCATION_ATTEMPTS {
        let Some((text, last_commit_id)) =
            read_file(gitlab, &s.fleet, &s.allocations, FLEET_BRANCH)?
        else {
            return Err(usage(
                &format!("the fleet repository {} has no {}", s.fleet, s.allocations),
                "create it with the hosts that take apps; docs/gitlab.md shows the format",
            ));
        };
        let file = Allocations::parse(&format!("{}:{}", s.fleet, s.allocations), &text)?;
        let (app, next) = match allocation::allocate(&file, &s.id, &s.envs) {
            Ok(Allocated::Existing(app)) => return Ok(app),
            Ok(Allocated::New { app, file }) => (app, file),
            Err(e) => return Err(usage(&e.to_string(), e.hint())),
        };
        let message = format!("Allocate {}: {}", s.id, describe(&app));
        match commit_file(
            gitlab,
            &s.fleet,
            FLEET_BRANCH,
            &s.allocations,
            &next.render(),
            Some(&last_commit_id),
            &message,
        ) {
            Ok(()) => {
                reporter.info(&format!("allocated {}", describe(&app)));
                return Ok(app);
            }
            Err(e) if e.kind() == ErrorKind::Stale => {
                reporter.detail(&format!(
                    "{} changed meanwhile (attempt {attempt}); reading it again",
                    s.allocations
                ));
                std::thread::sleep(jitter(attempt));
            }
            Err(e) => return Err(CommandError::Failed(e.into())),
        }
    }
    Err(CommandError::Failed(anyhow::anyhow!(
        "{} in {} kept changing: gave up after {ALLOCATION_ATTEMPTS} attempts",
        s.allocations,
        s.fleet
    )))
}

/// A short random wait that grows with the attempt, so racing onboardings
/// spread out instead of colliding again in step.
fn jitter(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let spread = 20 + 20 * u64::from(attempt.min(10));
    Duration::from_millis(hasher.finish() % spread)
}

fn describe(app: &AppAllocation) -> String {
    app.environments
        .iter()
        .map(|e| {
            format!(
                "{} on {} ports {}/{}",
                e.env, e.host, e.ports[0], e.ports[1]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The skeleton's app.yml with this app's id, owner, code repository,
/// hosts, ports and domains; checked by berth's own parser.
fn app_yml(s: &Settings, app: &AppAllocation) -> Result<String, CommandError> {
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
    AppFile::parse("app.yml", &out)?;
    Ok(out)
}

/// The skeleton's release.yml, with one entry per environment of this app.
fn release_yml(s: &Settings) -> String {
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

#[derive(Debug, Deserialize)]
struct BranchInfo {
    commit: CommitRef,
}

#[derive(Debug, Deserialize)]
struct CommitRef {
    id: String,
}

/// The management repository's first commit: the skeleton filled in, and
/// `codes` a submodule at the code repository's current commit. It is
/// pushed, because the API cannot create a gitlink (docs/gitlab.md).
fn push_first_commit(
    gitlab: &GitLab,
    s: &Settings,
    code: &ProjectInfo,
    management: &ProjectInfo,
    app: &AppAllocation,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let branch = code.default_branch.as_deref().unwrap_or("main");
    let head: BranchInfo = gitlab
        .call(&built(
            Branch::builder().project(code.id).branch(branch).build(),
        ))
        .map_err(|e| CommandError::Failed(e.into()))?;
    // Relative to the management repository's own URL, so it works over
    // HTTPS, SSH and with the job token alike.
    let up = "../".repeat(s.management.as_str().split('/').count());
    let gitmodules = format!(
        "[submodule \"codes\"]\n\tpath = codes\n\turl = {up}{}.git\n",
        s.code
    );
    let entries = [
        (".gitlab-ci.yml", Entry::File(SKELETON_PIPELINE.into())),
        (".gitmodules", Entry::File(gitmodules.into_bytes())),
        ("CODEOWNERS", Entry::File(SKELETON_CODEOWNERS.into())),
        ("README.md", Entry::File(SKELETON_README.into())),
        ("app.yml", Entry::File(app_yml(s, app)?.into_bytes())),
        ("codes", Entry::Gitlink(head.commit.id.clone())),
        ("release.yml", Entry::File(release_yml(s).into_bytes())),
    ];
    let url = format!(
        "{}{}.git",
        gitlab.server_url(),
        management.path_with_namespace
    );
    git::push_root_commit(
        &url,
        gitlab.token(),
        "main",
        &entries,
        &format!("Onboard {} (berth app create)", s.id),
        ("berth", "berth@localhost"),
    )
    .with_context(|| format!("push the first commit of {}", s.management))?;
    reporter.info(&format!(
        "{}: first commit pushed, codes/ -> {} at {}",
        s.management,
        s.code,
        &head.commit.id[..12.min(head.commit.id.len())]
    ));
    Ok(())
}

#[derive(Debug, Deserialize)]
struct VariableInfo {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    environment_scope: Option<String>,
}

/// Sets `BERTH_APP` and the logs key; returns the logs public key.
///
/// The public key is committed to the fleet repository before the private
/// key is stored, so a run that stops in between leaves no variable whose
/// key the hosts do not know; the next run makes a new pair.
fn ensure_variables(
    gitlab: &GitLab,
    s: &Settings,
    reporter: &Reporter,
) -> Result<String, CommandError> {
    let failed = |e: GitLabError| CommandError::Failed(e.into());
    let project = s.management.as_str();
    let variables: Vec<VariableInfo> = gitlab
        .call_pages(
            &built(ProjectVariables::builder().project(project).build()),
            1000,
        )
        .map_err(failed)?;
    let find = |key: &str| {
        variables
            .iter()
            .find(|v| v.key == key && v.environment_scope.as_deref().unwrap_or("*") == "*")
    };
    match find(VAR_APP) {
        Some(v) if v.value.as_deref() == Some(s.id.as_str()) => {}
        Some(_) => gitlab
            .call_ignoring_body(&built(
                UpdateProjectVariable::builder()
                    .project(project)
                    .key(VAR_APP)
                    .value(s.id.as_str())
                    .protected(false)
                    .masked(false)
                    .build(),
            ))
            .map_err(failed)?,
        None => gitlab
            .call_ignoring_body(&built(
                CreateProjectVariable::builder()
                    .project(project)
                    .key(VAR_APP)
                    .value(s.id.as_str())
                    .protected(false)
                    .masked(false)
                    .description("The app id (berth app create)")
                    .build(),
            ))
            .map_err(failed)?,
    }

    let pub_path = format!("{LOGS_KEYS_DIR}/{}.pub", s.id);
    let recorded = read_file(gitlab, &s.fleet, &pub_path, FLEET_BRANCH)?;
    let has_variable = find(VAR_LOGS_KEY).is_some();
    if let (Some((public, _)), true) = (&recorded, has_variable) {
        return Ok(public.trim().to_string());
    }
    let (private, public) = generate_logs_key(&s.id)?;
    commit_file(
        gitlab,
        &s.fleet,
        FLEET_BRANCH,
        &pub_path,
        &format!("{public}\n"),
        recorded.as_ref().map(|(_, id)| id.as_str()),
        &format!("Logs key of {}", s.id),
    )
    .map_err(failed)?;
    // One line of the base64 alphabet, so GitLab can mask it; `berth logs`
    // decodes it. Not protected: developers run the logs job on branches.
    let value = base64::engine::general_purpose::STANDARD.encode(private.expose());
    if has_variable {
        gitlab
            .call_ignoring_body(&built(
                UpdateProjectVariable::builder()
                    .project(project)
                    .key(VAR_LOGS_KEY)
                    .value(value.as_str())
                    .protected(false)
                    .masked(true)
                    .build(),
            ))
            .map_err(failed)?;
    } else {
        gitlab
            .call_ignoring_body(&built(
                CreateProjectVariable::builder()
                    .project(project)
                    .key(VAR_LOGS_KEY)
                    .value(value.as_str())
                    .protected(false)
                    .masked(true)
                    .description("SSH key that reads this app's logs only (berth app create)")
                    .build(),
            ))
            .map_err(failed)?;
    }
    reporter.info(&format!(
        "{}: logs key set ({VAR_LOGS_KEY}, masked); public key in {}:{pub_path}",
        s.management, s.fleet
    ));
    Ok(public)
}

/// A new ed25519 key pair from `ssh-keygen`, made in a private temporary
/// directory that is removed at once.
fn generate_logs_key(id: &AppId) -> Result<(crate::secret::Secret, String), CommandError> {
    let dir = tempfile::tempdir().context("create a temporary directory for the logs key")?;
    let path = dir.path().join("key");
    let output = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("berth-logs-{id}"))
        .arg("-f")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            usage(
                &format!("cannot run ssh-keygen: {e}"),
                "install openssh-client (ssh-keygen makes the app's logs key)",
            )
        })?;
    if !output.status.success() {
        return Err(CommandError::Failed(anyhow::anyhow!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let private = std::fs::read_to_string(&path).context("read the new logs key")?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .context("read the new logs public key")?;
    Ok((
        crate::secret::Secret::new(private),
        public.trim().to_string(),
    ))
}

#[derive(Debug, Deserialize)]
struct ProtectionInfo {
    #[serde(default)]
    push_access_levels: Vec<LevelInfo>,
    #[serde(default)]
    merge_access_levels: Vec<LevelInfo>,
    #[serde(default)]
    allow_force_push: bool,
}

#[derive(Debug, Deserialize)]
struct LevelInfo {
    access_level: Option<u64>,
}

/// `main` takes pushes and merges from Maintainers only, never a force
/// push. GitLab usually protects the default branch at its first push
/// already (409 then); a weaker protection is replaced.
fn protect_main(
    gitlab: &GitLab,
    path: &ProjectPath,
    reporter: &Reporter,
) -> Result<(), GitLabError> {
    let project = path.as_str();
    let current = match gitlab.call::<_, ProtectionInfo>(&built(
        ProtectedBranch::builder()
            .project(project)
            .name("main")
            .build(),
    )) {
        Ok(current) => Some(current),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let strict = |levels: &[LevelInfo]| {
        !levels.is_empty()
            && levels
                .iter()
                .all(|l| l.access_level.is_none_or(|level| level >= MAINTAINER))
    };
    if let Some(current) = &current {
        if strict(&current.push_access_levels)
            && strict(&current.merge_access_levels)
            && !current.allow_force_push
        {
            return Ok(());
        }
        gitlab.call_ignoring_body(&built(
            UnprotectBranch::builder()
                .project(project)
                .name("main")
                .build(),
        ))?;
    }
    let protect = built(
        ProtectBranch::builder()
            .project(project)
            .name("main")
            .push_access_level(ProtectedAccessLevel::Maintainer)
            .merge_access_level(ProtectedAccessLevel::Maintainer)
            .allow_force_push(false)
            .build(),
    );
    match gitlab.call_ignoring_body(&protect) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    reporter.info(&format!("{path}: main protected, Maintainers merge"));
    Ok(())
}

/// The line for the hosts' `authorized_keys` of the app's logs key.
fn authorized_keys_line(s: &Settings, host: &str, public: &str) -> String {
    let dirs = s.inventory.as_ref().and_then(|inventory| {
        let host = inventory.hosts.iter().find(|h| h.name.as_str() == host)?;
        Some((host.base_dir.to_string(), host.front.log_dir.to_string()))
    });
    let (base, logs) =
        dirs.unwrap_or_else(|| ("/srv/berth".to_string(), "/var/log/nginx/berth".to_string()));
    format!(
        "restrict,command=\"berth serve-logs --app {} --base-dir {base} --log-dir {logs}\" {public}",
        s.id
    )
}

fn report(
    s: &Settings,
    app: &AppAllocation,
    public_key: &str,
    management: &ProjectInfo,
    code: &ProjectInfo,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let mut outputs = Outputs::default();
    outputs.set("BERTH_APP", s.id.as_str());
    outputs.set("BERTH_MANAGEMENT_PROJECT", s.management.as_str());
    outputs.set("BERTH_CODE_PROJECT", s.code.as_str());
    let mut text = format!(
        "app {}: code {} , management {}\n",
        s.id, code.web_url, management.web_url
    );
    let mut hosts: Vec<&str> = Vec::new();
    let mut environments = Vec::new();
    for e in &app.environments {
        let key = e.env.as_str().to_uppercase().replace('-', "_");
        outputs.set(&format!("BERTH_{key}_HOST"), e.host.as_str());
        outputs.set(
            &format!("BERTH_{key}_PORTS"),
            format!("{},{}", e.ports[0], e.ports[1]),
        );
        text.push_str(&format!(
            "  {}: host {}, ports {} (blue) and {} (green)\n",
            e.env, e.host, e.ports[0], e.ports[1]
        ));
        if !hosts.contains(&e.host.as_str()) {
            hosts.push(e.host.as_str());
        }
        environments.push(serde_json::json!({
            "env": e.env, "host": e.host, "ports": e.ports,
        }));
    }
    text.push_str("add this line to the deploy user's authorized_keys on");
    let mut lines = Vec::new();
    for host in &hosts {
        let line = authorized_keys_line(s, host, public_key);
        text.push_str(&format!(" {host}:\n  {line}\n"));
        lines.push(serde_json::json!({"host": host, "line": line}));
    }
    if s.inventory.is_none() {
        text.push_str("  (directories are the defaults; pass --inventory for the hosts' own)\n");
    }
    reporter.result(
        text.trim_end(),
        &serde_json::json!({
            "ok": true,
            "app": s.id,
            "code_project": s.code,
            "management_project": s.management,
            "management_project_id": management.id,
            "environments": environments,
            "authorized_keys": lines,
        }),
    );
    outputs.write(env.dotenv.as_deref())
}
