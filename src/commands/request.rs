//! `berth request --env ENV --ref TAG`: the outside developer's way to ask
//! for a release. It checks the request against the management
//! repository's `main` (the environment exists in `app.yml`, the tag exists
//! in the code repository), then opens a merge request from
//! `release/<env>-<tag>` whose one commit changes only `release.yml`.
//!
//! Asking twice is harmless: an open merge request for the same branch is
//! shown, not duplicated.

use gitlab::api::projects::merge_requests::{CreateMergeRequest, MergeRequestState, MergeRequests};
use gitlab::api::projects::repository::commits::{CommitAction, CommitActionType, CreateCommit};
use gitlab::api::projects::repository::tags::Tag;
use gitlab::api::projects::Project;
use serde::Deserialize;

use super::gitlab::{connect, Outputs};
use super::CommandError;
use crate::cli::RequestArgs;
use crate::config::decode::{Problem, Problems};
use crate::config::values::{quoted, EnvName, GitTag, ProjectPath, ScalarValue};
use crate::config::yaml::{self, Resolved, Value};
use crate::config::{AppFile, ReleaseFile};
use crate::env::Env;
use crate::exec::gitlab::onboarding::read_file;
use crate::exec::gitlab::{ErrorKind, GitLab, GitLabError};
use crate::report::Reporter;

pub fn run(args: &RequestArgs, env: &Env, reporter: &Reporter) -> Result<(), CommandError> {
    let problem = |key: &str, message: String, hint: &str| Problem {
        file: "berth request".to_string(),
        line: None,
        column: None,
        key: key.to_string(),
        message,
        hint: hint.to_string(),
    };
    let env_name = EnvName::parse(&args.env);
    let tag = GitTag::parse(&args.tag);
    let (env_name, tag) = match (env_name, tag) {
        (Ok(env_name), Ok(tag)) => (env_name, tag),
        (env_name, tag) => {
            let problems = [
                env_name.err().map(|e| problem("--env", e.message, &e.hint)),
                tag.err().map(|e| problem("--ref", e.message, &e.hint)),
            ];
            return Err(CommandError::Invalid(Problems(
                problems.into_iter().flatten().collect(),
            )));
        }
    };
    let project = management_project(args, env)?;
    let gitlab = connect(env)?;
    let failed = |e: GitLabError| CommandError::Failed(e.into());

    let info: ProjectInfo = gitlab
        .call(&built(Project::builder().project(project.as_str()).build()))
        .map_err(failed)?;
    let main = info.default_branch.as_deref().unwrap_or("main");
    let missing = |file: &str| {
        CommandError::Failed(anyhow::anyhow!(
            "{project} has no {file} on {main}: is it an app's management repository?"
        ))
    };
    let read = |path: &str| {
        read_file(&gitlab, &project, path, main)
            .map_err(|e| CommandError::Failed(e.into()))?
            .ok_or_else(|| missing(path))
    };
    let app_text = read("app.yml")?.text;
    let release = read("release.yml")?;
    let (release_text, release_commit) = (release.text, release.last_commit_id);
    let app = AppFile::parse(&format!("{project}:app.yml"), &app_text)?;
    let release = ReleaseFile::parse(&format!("{project}:release.yml"), &release_text)?;

    if app.environment(&env_name).is_none() {
        let known: Vec<&str> = app.environments.iter().map(|e| e.name.as_str()).collect();
        return Err(CommandError::Invalid(Problems(vec![problem(
            "--env",
            format!("environment {env_name} is not defined in app.yml of {project}"),
            &format!("this app's environments are: {}", known.join(", ")),
        )])));
    }
    match gitlab.call::<_, serde_json::Value>(&built(
        Tag::builder()
            .project(app.code_repo.as_str())
            .tag_name(tag.as_str())
            .build(),
    )) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(CommandError::Invalid(Problems(vec![problem(
                "--ref",
                format!(
                    "tag {tag} does not exist in the code repository {}",
                    app.code_repo
                ),
                &format!(
                    "tag a commit and push the tag first: git tag {tag} && git push origin {tag}"
                ),
            )])))
        }
        Err(e) => return Err(failed(e)),
    }
    if release.get(&env_name).is_some_and(|r| r.tag == tag) {
        reporter.result(
            &format!(
                "release.yml on {main} already asks for {tag} in {env_name}: nothing to request"
            ),
            &serde_json::json!({"ok": true, "unchanged": true, "env": env_name, "ref": tag}),
        );
        return Ok(());
    }
    let changed = set_ref(&release_text, &env_name, &tag).map_err(|message| {
        CommandError::Invalid(Problems(vec![problem(
            "release.yml",
            message,
            "ask the platform team to add the environment to release.yml",
        )]))
    })?;

    let branch = branch_name(&env_name, &tag);
    if let Some(open) = open_request(&gitlab, &project, &branch).map_err(failed)? {
        return done(&open, &env_name, &tag, true, env, reporter);
    }
    let title = format!("Release {tag} to {env_name}");
    let action = built(
        CommitAction::builder()
            .action(CommitActionType::Update)
            .file_path("release.yml")
            .content(changed.as_bytes())
            .last_commit_id(release_commit.as_str())
            .build(),
    );
    gitlab
        .call_ignoring_body(&built(
            CreateCommit::builder()
                .project(project.as_str())
                .branch(branch.as_str())
                .start_branch(main)
                .force(true)
                .commit_message(title.as_str())
                .action(action)
                .build(),
        ))
        .map_err(failed)?;
    let description = description(&gitlab, &app.code_repo, &env_name, &tag);
    let created = gitlab.call::<_, RequestInfo>(&built(
        CreateMergeRequest::builder()
            .project(project.as_str())
            .source_branch(branch.as_str())
            .target_branch(main)
            .title(title.as_str())
            .description(description.as_str())
            .remove_source_branch(true)
            .build(),
    ));
    match created {
        Ok(created) => done(&created, &env_name, &tag, false, env, reporter),
        // Opened meanwhile by another run for the same branch.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            match open_request(&gitlab, &project, &branch).map_err(failed)? {
                Some(open) => done(&open, &env_name, &tag, true, env, reporter),
                None => Err(failed(e)),
            }
        }
        Err(e) => Err(failed(e)),
    }
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("a GitLab endpoint was built without a required field: {e}"))
}

#[derive(Debug, Deserialize)]
struct ProjectInfo {
    default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestInfo {
    iid: u64,
    web_url: String,
}

/// The management project: the flag, `CI_PROJECT_PATH`, or the path of
/// the checkout's `origin` remote.
fn management_project(args: &RequestArgs, env: &Env) -> Result<ProjectPath, CommandError> {
    let given = args.project.clone().or_else(|| env.project_path.clone());
    let path = match given {
        Some(path) => path,
        None => origin_project(&args.app_dir.app_dir).ok_or_else(|| {
            super::gitlab::usage(
                "which management project? Not given, CI_PROJECT_PATH is not set, and the directory has no origin remote",
                "run in a checkout of the management repository, or pass --project GROUP/APP",
            )
        })?,
    };
    ProjectPath::parse(&path).map_err(|e| super::gitlab::usage(&e.message, &e.hint))
}

/// `deploy/shop` from an origin URL such as
/// `https://gitlab.example.com/deploy/shop.git` or
/// `git@gitlab.example.com:deploy/shop.git`.
fn origin_project(dir: &std::path::Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let remote = repo.find_remote("origin").ok()?;
    project_of_url(remote.url().ok()?)
}

fn project_of_url(url: &str) -> Option<String> {
    let path = match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => parsed.path().to_string(),
        _ => url.split_once(':')?.1.to_string(),
    };
    let path = path.trim_matches('/');
    Some(path.strip_suffix(".git").unwrap_or(path).to_string())
}

/// `release/<env>-<tag>`, with the tag's `/` and `+` made `-`.
fn branch_name(env: &EnvName, tag: &GitTag) -> String {
    let tag: String = tag
        .as_str()
        .chars()
        .map(|c| if matches!(c, '/' | '+') { '-' } else { c })
        .collect();
    format!("release/{env}-{tag}")
}

fn open_request(
    gitlab: &GitLab,
    project: &ProjectPath,
    branch: &str,
) -> Result<Option<RequestInfo>, GitLabError> {
    let endpoint = built(
        MergeRequests::builder()
            .project(project.as_str())
            .source_branch(branch)
            .state(MergeRequestState::Opened)
            .build(),
    );
    let open: Vec<RequestInfo> = gitlab.call_pages(&endpoint, 5)?;
    Ok(open.into_iter().next())
}

/// What the admin and the developer read on the merge request. The tag,
/// environment and project are validated values (no backtick, bracket or
/// newline can be in them), and none starts a line, so no quick action
/// can be smuggled in.
fn description(gitlab: &GitLab, code_repo: &ProjectPath, env: &EnvName, tag: &GitTag) -> String {
    let tag_url = format!(
        "{}{code_repo}/-/tags/{}",
        gitlab.server_url(),
        tag.as_str().replace('+', "%2B")
    );
    format!(
        "Opened with `berth request`. This merge request changes only `release.yml`: \
environment **{env}** is to run tag [`{tag}`]({tag_url}) of {code_repo}.\n\
\n\
What happens next:\n\
\n\
1. The merge request pipeline checks the request (only `release.yml` changed, \
the tag exists) and posts a plan as a comment: the commits and files since the \
live release and the configuration that will run.\n\
2. A platform admin reviews the plan and merges. Only maintainers can merge.\n\
3. The main pipeline releases to {env}. The previous release keeps running as \
a backup, and the result is posted here.\n"
    )
}

fn done(
    request: &RequestInfo,
    env_name: &EnvName,
    tag: &GitTag,
    existed: bool,
    env: &Env,
    reporter: &Reporter,
) -> Result<(), CommandError> {
    let text = if existed {
        format!(
            "a merge request for {tag} to {env_name} is already open: {}",
            request.web_url
        )
    } else {
        format!(
            "opened merge request !{} (Release {tag} to {env_name}): {}",
            request.iid, request.web_url
        )
    };
    reporter.result(
        &text,
        &serde_json::json!({
            "ok": true, "existing": existed, "iid": request.iid,
            "web_url": request.web_url, "env": env_name, "ref": tag,
        }),
    );
    let mut outputs = Outputs::default();
    outputs.set("BERTH_MR_IID", request.iid.to_string());
    outputs.set("BERTH_MR_URL", request.web_url.as_str());
    outputs.write(env.dotenv.as_deref())
}

/// `release.yml`'s text with `env`'s ref set to `tag`, every other byte
/// kept (comments, order, quoting of other entries). The result is parsed
/// again and must differ from the original in that one ref only.
fn set_ref(text: &str, env: &EnvName, tag: &GitTag) -> Result<String, String> {
    let root = yaml::parse(text)
        .map_err(|e| e.message)?
        .ok_or("release.yml is empty")?;
    let entry = mapping_get(&root, "environments")
        .and_then(|envs| mapping_get(envs, env.as_str()))
        .ok_or_else(|| format!("release.yml has no entry for environment {env}"))?;
    let node = mapping_get(entry, "ref")
        .ok_or_else(|| format!("release.yml's entry for {env} has no ref"))?;
    let line_index = node.mark.line - 1;
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let line = lines
        .get(line_index)
        .ok_or("release.yml changed while it was read")?;
    let chars: Vec<char> = line.chars().collect();
    let start = node.mark.column - 1;
    let end = scalar_end(&chars, start).ok_or("cannot find the ref's value")?;
    let replaced: String = chars[..start]
        .iter()
        .chain(scalar_text(tag).chars().collect::<Vec<_>>().iter())
        .chain(chars[end..].iter())
        .collect();
    lines[line_index] = replaced;
    let changed = lines.join("\n");

    let before = ReleaseFile::parse("release.yml", text).map_err(|p| p.to_string())?;
    let after = ReleaseFile::parse("release.yml", &changed).map_err(|p| p.to_string())?;
    let same_elsewhere = before.environments.len() == after.environments.len()
        && before
            .environments
            .iter()
            .zip(&after.environments)
            .all(|(b, a)| b.env == a.env && (b.env == *env || b.tag == a.tag));
    if !same_elsewhere || after.get(env).map(|r| &r.tag) != Some(tag) {
        return Err(format!(
            "could not set {env}'s ref to {} in release.yml without changing anything else",
            quoted(tag.as_str())
        ));
    }
    Ok(changed)
}

fn mapping_get<'n>(node: &'n yaml::Node, key: &str) -> Option<&'n yaml::Node> {
    match &node.value {
        Value::Mapping(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
        _ => None,
    }
}

/// Where the scalar starting at `start` ends: after its closing quote, or
/// before a comment, a flow separator or trailing blanks.
fn scalar_end(chars: &[char], start: usize) -> Option<usize> {
    match chars.get(start)? {
        '"' => {
            let mut i = start + 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => i += 2,
                    '"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        '\'' => {
            let mut i = start + 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(i + 1);
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut end = start;
            for (i, c) in chars.iter().enumerate().skip(start) {
                if matches!(c, ',' | '}' | ']')
                    || (*c == '#' && i > 0 && chars[i - 1].is_whitespace())
                {
                    break;
                }
                if !c.is_whitespace() {
                    end = i + 1;
                }
            }
            Some(end)
        }
    }
}

/// The tag as YAML: plain when YAML reads it back as a string, else
/// double-quoted (e.g. `1.10`, which plain would be a number).
fn scalar_text(tag: &GitTag) -> String {
    let plain_is_string = matches!(
        yaml::parse(tag.as_str()),
        Ok(Some(yaml::Node {
            value: Value::Scalar {
                resolved: Resolved::String,
                ..
            },
            ..
        }))
    );
    if plain_is_string {
        tag.to_string()
    } else {
        format!("\"{tag}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "\
# comment stays
environments:
  test:
    ref: v1.0.0   # trailing comment stays
  production: {ref: \"v1.0.0\"}
";

    fn set(env: &str, tag: &str) -> Result<String, String> {
        set_ref(RELEASE, &env.parse().unwrap(), &tag.parse().unwrap())
    }

    #[test]
    fn only_the_requested_ref_changes() {
        assert_eq!(
            set("test", "v1.4.0").unwrap(),
            RELEASE.replace("ref: v1.0.0 ", "ref: v1.4.0 ")
        );
        assert_eq!(
            set("production", "release/2+b").unwrap(),
            RELEASE.replace("{ref: \"v1.0.0\"}", "{ref: release/2+b}")
        );
        assert_eq!(
            set("test", "1.10").unwrap(),
            RELEASE.replace("ref: v1.0.0 ", "ref: \"1.10\" ")
        );
        assert!(set("staging", "v1").unwrap_err().contains("no entry"));
    }

    #[test]
    fn branch_names_and_origin_urls() {
        assert_eq!(
            branch_name(&"test".parse().unwrap(), &"v1/2+3".parse().unwrap()),
            "release/test-v1-2-3"
        );
        for (url, want) in [
            ("https://gitlab.example.com/deploy/shop.git", "deploy/shop"),
            ("http://oauth2:x@127.0.0.1:9/a/b/c.git", "a/b/c"),
            ("git@gitlab.example.com:deploy/shop.git", "deploy/shop"),
            (
                "ssh://git@gitlab.example.com:2222/deploy/shop",
                "deploy/shop",
            ),
        ] {
            assert_eq!(project_of_url(url).as_deref(), Some(want), "{url}");
        }
    }
}
