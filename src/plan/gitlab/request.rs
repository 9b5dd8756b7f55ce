//! `berth request` as a plan: from the management repository's `main`
//! (its `app.yml` and `release.yml`), the commit the requested tag names
//! and the merge requests already open, either nothing to do or the two
//! writes that ask for the release: one commit on `release/<env>-<tag>`
//! changing only that environment's `ref` and `commit` in `release.yml`,
//! and the merge request. Pure.

use crate::config::decode::{Problem, Problems};
use crate::config::values::{quoted, CommitId, EnvName, GitTag, ProjectPath};
use crate::config::yaml::{self, Resolved, Value};
use crate::config::{AppFile, ReleaseFile};

use super::{Commit, FileAction, FileChange, GitLabPlan, GitLabWrite, NewMergeRequest};

/// What was asked, validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub project: ProjectPath,
    pub env: EnvName,
    pub tag: GitTag,
}

/// What GitLab holds, read before planning.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `https://gitlab.example.com/` (links in the description).
    pub server_url: String,
    pub default_branch: String,
    pub app: AppFile,
    pub release_text: String,
    /// The last commit that changed `release.yml` on the default branch.
    pub release_last_commit: String,
    /// The commit the tag names in the code repository (the tags API's
    /// peeled `commit.id`); `None` when there is no such tag.
    pub tag_commit: Option<CommitId>,
    /// A merge request already open from the request's branch.
    pub open: Option<OpenRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    pub iid: u64,
    pub web_url: String,
}

/// What `berth request` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// `release.yml` on the default branch asks for this tag and commit.
    Unchanged { commit: CommitId },
    /// A merge request from the branch is open already: shown, not made.
    Open(OpenRequest),
    /// The commit and the merge request.
    Writes { commit: CommitId, plan: GitLabPlan },
}

/// `release/<env>-<tag>`, with the tag's `/` and `+` made `-`.
pub fn branch_name(env: &EnvName, tag: &GitTag) -> String {
    let tag: String = tag
        .as_str()
        .chars()
        .map(|c| if matches!(c, '/' | '+') { '-' } else { c })
        .collect();
    format!("release/{env}-{tag}")
}

/// A problem with what `berth request` was asked (`--env`, `--ref`, …).
pub fn problem(key: &str, message: String, hint: &str) -> Problem {
    Problem {
        file: "berth request".to_string(),
        line: None,
        column: None,
        key: key.to_string(),
        message,
        hint: hint.to_string(),
    }
}

pub fn plan(request: &Request, observed: &Observed) -> Result<Planned, Problems> {
    let Request { project, env, tag } = request;
    let app = &observed.app;
    if app.environment(env).is_none() {
        let known: Vec<&str> = app.environments.iter().map(|e| e.name.as_str()).collect();
        return Err(Problems(vec![problem(
            "--env",
            format!("environment {env} is not defined in app.yml of {project}"),
            &format!("this app's environments are: {}", known.join(", ")),
        )]));
    }
    let Some(commit) = observed.tag_commit.clone() else {
        return Err(Problems(vec![problem(
            "--ref",
            format!(
                "tag {tag} does not exist in the code repository {}",
                app.code_repo
            ),
            &format!("tag a commit and push the tag first: git tag {tag} && git push origin {tag}"),
        )]));
    };
    let release = ReleaseFile::parse(&format!("{project}:release.yml"), &observed.release_text)?;
    if release
        .get(env)
        .is_some_and(|r| &r.tag == tag && r.commit.as_ref() == Some(&commit))
    {
        return Ok(Planned::Unchanged { commit });
    }
    let changed = set_release(&observed.release_text, env, tag, &commit).map_err(|message| {
        Problems(vec![problem(
            "release.yml",
            message,
            "ask the platform team to add the environment to release.yml",
        )])
    })?;
    if let Some(open) = &observed.open {
        return Ok(Planned::Open(open.clone()));
    }
    let branch = branch_name(env, tag);
    let title = format!("Release {tag} to {env}");
    let main = &observed.default_branch;
    let plan = GitLabPlan::from(vec![
        GitLabWrite::Commit(Commit {
            project: project.clone(),
            branch: branch.clone(),
            start_branch: Some(main.clone()),
            force: true,
            message: title.clone(),
            changes: vec![FileChange {
                action: FileAction::Update,
                path: "release.yml".to_string(),
                content: changed,
                last_commit_id: Some(observed.release_last_commit.clone()),
            }],
        }),
        GitLabWrite::CreateMergeRequest(NewMergeRequest {
            project: project.clone(),
            source_branch: branch,
            target_branch: main.clone(),
            title,
            description: description(&observed.server_url, &app.code_repo, env, tag, &commit),
            remove_source_branch: true,
        }),
    ]);
    Ok(Planned::Writes { commit, plan })
}

/// What the admin and the developer read on the merge request. The tag,
/// commit, environment and project are validated values (no backtick,
/// bracket or newline can be in them), and none starts a line, so no
/// quick action can be smuggled in.
pub fn description(
    server_url: &str,
    code_repo: &ProjectPath,
    env: &EnvName,
    tag: &GitTag,
    commit: &CommitId,
) -> String {
    let tag_url = format!(
        "{server_url}{code_repo}/-/tags/{}",
        tag.as_str().replace('+', "%2B")
    );
    format!(
        "Opened with `berth request`. This merge request changes only `release.yml`: \
environment **{env}** is to run tag [`{tag}`]({tag_url}) of {code_repo}, \
which names commit `{commit}`.\n\
\n\
What happens next:\n\
\n\
1. The merge request pipeline checks the request (only `release.yml` changed, \
the tag still names that commit) and posts a plan as a comment: the commits and \
files since the live release and the configuration that will run.\n\
2. A platform admin reviews the plan and merges. Only maintainers can merge, \
and what they approve is that commit: a tag moved later is not released.\n\
3. The main pipeline releases to {env}. The previous release keeps running as \
a backup, and the result is posted here.\n"
    )
}

/// `release.yml`'s text with `env`'s `ref` set to `tag` and its `commit`
/// to `commit` (a line added beside `ref` when there is none), every other
/// byte kept (comments, order, quoting of other entries). The result is
/// parsed again and must differ from the original in those two values
/// only.
pub fn set_release(
    text: &str,
    env: &EnvName,
    tag: &GitTag,
    commit: &CommitId,
) -> Result<String, String> {
    let root = yaml::parse(text)
        .map_err(|e| e.message)?
        .ok_or("release.yml is empty")?;
    let entry = mapping_get(&root, "environments")
        .and_then(|envs| mapping_get(envs, env.as_str()))
        .ok_or_else(|| format!("release.yml has no entry for environment {env}"))?;
    let (ref_key, ref_node) = mapping_entry(entry, "ref")
        .ok_or_else(|| format!("release.yml's entry for {env} has no ref"))?;
    let mut lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
    let line_of = |lines: &Vec<Vec<char>>, mark: yaml::Mark| -> Result<(usize, usize), String> {
        let index = mark.line - 1;
        if lines.get(index).is_none_or(|l| l.len() < mark.column - 1) {
            return Err("release.yml changed while it was read".to_string());
        }
        Ok((index, mark.column - 1))
    };
    let commit_text = scalar_text(commit.as_str());
    let tag_text = scalar_text(tag.as_str());
    let (ref_line, ref_start) = line_of(&lines, ref_node.mark)?;
    match mapping_entry(entry, "commit") {
        Some((_, node)) => {
            // Two values to replace: the later one first, so that the
            // earlier one's column still holds.
            let (commit_line, commit_start) = line_of(&lines, node.mark)?;
            let mut edits = [
                ((ref_line, ref_start), tag_text),
                ((commit_line, commit_start), commit_text),
            ];
            edits.sort_by_key(|edit| std::cmp::Reverse(edit.0));
            for ((line, start), text) in edits {
                replace_scalar(&mut lines[line], start, &text)?;
            }
        }
        None => {
            // The commit goes right after the ref, which stays where it is.
            // In a flow mapping (`{ref: v1}`) the key follows `{` or `,`.
            let (key_line, key_start) = line_of(&lines, ref_key.mark)?;
            let before_key = lines[..key_line]
                .iter()
                .flat_map(|l| l.iter().chain(['\n'].iter()))
                .chain(lines[key_line][..key_start].iter())
                .rev()
                .find(|c| !c.is_whitespace());
            let flow = matches!(before_key, Some('{' | ','));
            if flow {
                let end =
                    scalar_end(&lines[ref_line], ref_start).ok_or("cannot find the ref's value")?;
                let insert: Vec<char> = format!(", commit: {commit_text}").chars().collect();
                lines[ref_line].splice(end..end, insert);
            } else {
                let indent = ref_key.mark.column - 1;
                let line: Vec<char> = format!("{}commit: {commit_text}", " ".repeat(indent))
                    .chars()
                    .collect();
                lines.insert(ref_line + 1, line);
            }
            replace_scalar(&mut lines[ref_line], ref_start, &tag_text)?;
        }
    }
    let changed: String = lines
        .iter()
        .map(|l| l.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");

    let before = ReleaseFile::parse("release.yml", text).map_err(|p| p.to_string())?;
    let after = ReleaseFile::parse("release.yml", &changed).map_err(|p| p.to_string())?;
    let same_elsewhere = before.environments.len() == after.environments.len()
        && before
            .environments
            .iter()
            .zip(&after.environments)
            .all(|(b, a)| {
                b.env == a.env && (b.env == *env || (b.tag == a.tag && b.commit == a.commit))
            });
    let wanted = after
        .get(env)
        .is_some_and(|r| &r.tag == tag && r.commit.as_ref() == Some(commit));
    if !same_elsewhere || !wanted {
        return Err(format!(
            "could not set {env}'s ref to {} and its commit in release.yml without changing anything else",
            quoted(tag.as_str())
        ));
    }
    Ok(changed)
}

fn mapping_entry<'n>(node: &'n yaml::Node, key: &str) -> Option<(&'n yaml::Key, &'n yaml::Node)> {
    match &node.value {
        Value::Mapping(entries) => entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(k, v)| (k, v)),
        _ => None,
    }
}

fn mapping_get<'n>(node: &'n yaml::Node, key: &str) -> Option<&'n yaml::Node> {
    mapping_entry(node, key).map(|(_, v)| v)
}

/// Replaces the scalar that starts at `start` with `text`.
fn replace_scalar(line: &mut Vec<char>, start: usize, text: &str) -> Result<(), String> {
    let end = scalar_end(line, start).ok_or("cannot find a value's end in release.yml")?;
    line.splice(start..end, text.chars());
    Ok(())
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

/// A validated value as YAML: plain when YAML reads it back as a string,
/// else double-quoted (a tag `1.10`, a commit id of digits only).
fn scalar_text(value: &str) -> String {
    let plain_is_string = matches!(
        yaml::parse(value),
        Ok(Some(yaml::Node {
            value: Value::Scalar {
                resolved: Resolved::String,
                ..
            },
            ..
        }))
    );
    if plain_is_string {
        value.to_string()
    } else {
        format!("\"{value}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    const RELEASE: &str = "\
# comment stays
environments:
  test:
    ref: v1.0.0   # trailing comment stays
  production: {ref: \"v1.0.0\"}
";

    fn set(text: &str, env: &str, tag: &str, commit: &str) -> Result<String, String> {
        set_release(
            text,
            &env.parse().unwrap(),
            &tag.parse().unwrap(),
            &commit.parse().unwrap(),
        )
    }

    #[test]
    fn the_ref_changes_and_the_commit_goes_beside_it() {
        assert_eq!(
            set(RELEASE, "test", "v1.4.0", A).unwrap(),
            RELEASE.replace(
                "ref: v1.0.0   # trailing comment stays\n",
                &format!("ref: v1.4.0   # trailing comment stays\n    commit: {A}\n")
            )
        );
        assert_eq!(
            set(RELEASE, "production", "release/2+b", A).unwrap(),
            RELEASE.replace(
                "{ref: \"v1.0.0\"}",
                &format!("{{ref: release/2+b, commit: {A}}}")
            )
        );
        // A tag or commit YAML would read as a number is quoted.
        let digits = "1234567890123456789012345678901234567890";
        assert_eq!(
            set(RELEASE, "test", "1.10", digits).unwrap(),
            RELEASE.replace(
                "ref: v1.0.0   # trailing comment stays\n",
                &format!("ref: \"1.10\"   # trailing comment stays\n    commit: \"{digits}\"\n")
            )
        );
        assert!(set(RELEASE, "staging", "v1", A)
            .unwrap_err()
            .contains("no entry"));
    }

    #[test]
    fn a_commit_already_there_is_replaced_in_place() {
        let pinned = format!(
            "environments:\n  test:\n    commit: '{A}'  # old\n    ref: v1.0.0\n  production:\n    ref: v1.0.0\n    commit: {A}\n"
        );
        assert_eq!(
            set(&pinned, "test", "v2", B).unwrap(),
            pinned
                .replacen(&format!("'{A}'"), B, 1)
                .replacen("ref: v1.0.0", "ref: v2", 1)
        );
        let flow = format!("environments:\n  test: {{commit: \"{A}\", ref: v1}}\n");
        assert_eq!(
            set(&flow, "test", "v2", B).unwrap(),
            format!("environments:\n  test: {{commit: {B}, ref: v2}}\n")
        );
    }

    #[test]
    fn branch_names() {
        assert_eq!(
            branch_name(&"test".parse().unwrap(), &"v1/2+3".parse().unwrap()),
            "release/test-v1-2-3"
        );
    }

    fn observed() -> Observed {
        let app = AppFile::parse(
            "app.yml",
            &include_str!("../../../mgmt-repo-skeleton/app.yml")
                .replace("code_repo: plugins/example", "code_repo: plugins/shop"),
        )
        .unwrap();
        Observed {
            server_url: "https://gitlab.example.com/".into(),
            default_branch: "main".into(),
            app,
            release_text: RELEASE.into(),
            release_last_commit: "feedbeef".into(),
            tag_commit: Some(A.parse().unwrap()),
            open: None,
        }
    }

    fn request(env: &str, tag: &str) -> Request {
        Request {
            project: "deploy/shop".parse().unwrap(),
            env: env.parse().unwrap(),
            tag: tag.parse().unwrap(),
        }
    }

    #[test]
    fn a_request_is_a_commit_and_a_merge_request() {
        let Planned::Writes { commit, plan } =
            plan(&request("test", "v1.4.0"), &observed()).unwrap()
        else {
            panic!("writes expected")
        };
        assert_eq!(commit.as_str(), A);
        assert_eq!(
            plan.to_string(),
            "\
POST projects/deploy%2Fshop/repository/commits  branch=release/test-v1.4.0 start_branch=main force=true commit_message=\"Release v1.4.0 to test\" action=update:release.yml@feedbeef
POST projects/deploy%2Fshop/merge_requests  source_branch=release/test-v1.4.0 target_branch=main title=\"Release v1.4.0 to test\" remove_source_branch=true
"
        );
        let GitLabWrite::CreateMergeRequest(mr) = &plan.writes[1] else {
            panic!()
        };
        assert!(mr
            .description
            .contains(&format!("which names commit `{A}`")));
        assert!(mr
            .description
            .lines()
            .all(|l| !l.trim_start().starts_with('/')));
    }

    #[test]
    fn nothing_is_written_when_asked_already_or_open() {
        let mut asked = observed();
        asked.release_text = format!("environments:\n  test:\n    ref: v1.4.0\n    commit: {A}\n");
        assert_eq!(
            plan(&request("test", "v1.4.0"), &asked).unwrap(),
            Planned::Unchanged {
                commit: A.parse().unwrap()
            }
        );
        // The same tag without its commit (a new app's release.yml) is a
        // change: the commit is added.
        asked.release_text = "environments:\n  test:\n    ref: v1.4.0\n".into();
        assert!(matches!(
            plan(&request("test", "v1.4.0"), &asked).unwrap(),
            Planned::Writes { .. }
        ));
        let mut open = observed();
        open.open = Some(OpenRequest {
            iid: 4,
            web_url: "https://gitlab.example.com/deploy/shop/-/merge_requests/4".into(),
        });
        assert!(matches!(
            plan(&request("test", "v1.4.0"), &open).unwrap(),
            Planned::Open(OpenRequest { iid: 4, .. })
        ));
    }

    #[test]
    fn unknown_environments_and_tags_are_problems() {
        let error = plan(&request("staging", "v1.4.0"), &observed()).unwrap_err();
        assert_eq!(
            error.0[0].message,
            "environment staging is not defined in app.yml of deploy/shop"
        );
        let mut untagged = observed();
        untagged.tag_commit = None;
        let error = plan(&request("test", "v9"), &untagged).unwrap_err();
        assert_eq!(
            error.0[0].message,
            "tag v9 does not exist in the code repository plugins/shop"
        );
    }
}
