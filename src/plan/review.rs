//! Judging a release request, pure: which environments it changes, whether
//! it changes anything but `release.yml`, and whether each tag still names
//! the commit `release.yml` pins. `check`, `plan` and `checkout` observe git
//! and GitLab, then ask these functions; nothing here reads a note.

use crate::config::release::{ReleaseFile, RequestedRelease, FILE_NAME};
use crate::config::values::quoted;
use crate::config::{Problem, Problems};

/// The only git mode `release.yml` may have: a regular, non-executable file.
pub const REGULAR_FILE: u32 = 0o100644;

/// One path that differs between the request's base and its head; a mode
/// is `None` on the side where the path does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    pub path: String,
    pub old_mode: Option<u32>,
    pub new_mode: Option<u32>,
}

/// What a commit holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAt {
    Missing,
    NotRegular { mode: u32 },
    TooLarge { size: usize },
    Regular { mode: u32, bytes: Vec<u8> },
}

/// The text of a configuration file read from a commit, or the problem
/// that stops berth from reading it: missing, a link or a submodule
/// (never followed), too large (sized from the object header, before
/// reading), or not UTF-8.
pub fn file_text(name: &str, commit: &str, file: FileAt) -> Result<String, Problems> {
    let problem = |message: String, hint: &str| Problems(vec![whole_file(name, message, hint)]);
    match file {
        FileAt::Missing => Err(problem(
            format!("there is no {name} in commit {commit}"),
            "the management repository must hold release.yml and app.yml at its top level",
        )),
        FileAt::NotRegular { mode } => Err(problem(
            format!(
                "{name} is {} in commit {commit}; berth reads only regular files",
                describe_mode(mode)
            ),
            "commit it as a plain text file",
        )),
        FileAt::TooLarge { size } => Err(problem(
            format!(
                "file is {size} bytes, more than the {} bytes berth reads",
                crate::config::yaml::MAX_FILE_BYTES
            ),
            "configuration files are small; check that the right file was committed",
        )),
        FileAt::Regular { bytes, .. } => String::from_utf8(bytes)
            .map_err(|_| problem("file is not UTF-8 text".into(), "save the file as UTF-8")),
    }
}

/// What a git mode is, in words.
pub fn describe_mode(mode: u32) -> String {
    match mode {
        0o100644 => "a regular file".to_string(),
        0o100755 => "an executable file".to_string(),
        0o120000 => "a symbolic link".to_string(),
        0o160000 => "a submodule".to_string(),
        0o040000 => "a directory".to_string(),
        other => format!("git mode {other:o}"),
    }
}

fn whole_file(file: &str, message: String, hint: &str) -> Problem {
    Problem {
        file: file.to_string(),
        line: None,
        column: None,
        key: String::new(),
        message,
        hint: hint.to_string(),
    }
}

/// Every change of the request that a release request may not make: any
/// path but `release.yml`, and `release.yml` deleted or turned into
/// anything but a regular file (a link, a submodule, an executable).
pub fn change_problems(changes: &[TreeChange]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for change in changes {
        if change.path != FILE_NAME {
            problems.push(whole_file(
                &quoted_path(&change.path),
                "this merge request changes it, but a release request may change only release.yml"
                    .into(),
                "move other changes to a separate merge request for the platform team",
            ));
            continue;
        }
        match change.new_mode {
            None => problems.push(whole_file(
                FILE_NAME,
                "this merge request deletes release.yml".into(),
                "change the ref and commit of an environment instead",
            )),
            Some(REGULAR_FILE) => {}
            Some(mode) => problems.push(whole_file(
                FILE_NAME,
                format!(
                    "this merge request makes release.yml {}; it must stay a regular file (git mode 100644)",
                    describe_mode(mode)
                ),
                "commit release.yml as a plain text file (git update-index --chmod=-x, no symlink)",
            )),
        }
    }
    problems
}

/// A path from the developer's branch, made safe to print as a file name:
/// plain paths stay as they are, anything else is quoted and escaped.
fn quoted_path(path: &str) -> String {
    let plain = !path.is_empty()
        && path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/+@".contains(&b));
    if plain {
        path.to_string()
    } else {
        quoted(path)
    }
}

/// The environments whose `ref` or `commit` `head` changes against `base`
/// (all of them when there is no base file), in `head`'s order.
pub fn changed_environments<'a>(
    base: Option<&ReleaseFile>,
    head: &'a ReleaseFile,
) -> Vec<&'a RequestedRelease> {
    head.environments
        .iter()
        .filter(|wanted| {
            let before = base.and_then(|b| b.get(&wanted.env));
            before.map(|b| (&b.tag, &b.commit)) != Some((&wanted.tag, &wanted.commit))
        })
        .collect()
}

fn entry_problem(release: &RequestedRelease, key: &str, message: String, hint: String) -> Problem {
    let mark = if key == "ref" {
        release.ref_mark
    } else {
        release.commit_mark
    };
    Problem {
        file: FILE_NAME.to_string(),
        line: Some(mark.line),
        column: Some(mark.column),
        key: format!("environments.{}.{key}", release.env),
        message,
        hint,
    }
}

/// Whether the tag of `release` names, in the code repository, the commit
/// `release.yml` pins. `remote` is the commit the tag names now (`None`:
/// no such tag).
pub fn pinned_commit_problem(
    release: &RequestedRelease,
    code_repo: &str,
    remote: Option<&str>,
) -> Option<Problem> {
    let tag = &release.tag;
    let Some(pinned) = &release.commit else {
        return Some(entry_problem(
            release,
            "commit",
            format!("{tag} is requested without the commit it names; the admin approves a commit, not a tag"),
            format!("add `commit: <id>` beside `ref:` (git rev-parse '{tag}^{{commit}}' prints it), or open the request with berth request, which writes both"),
        ));
    };
    match remote {
        None => Some(entry_problem(
            release,
            "ref",
            format!("{tag} is not a tag of the code repository {code_repo}"),
            format!(
                "tag the commit in {code_repo} and push the tag (git push origin TAG), then re-run"
            ),
        )),
        Some(now) if now != pinned.as_str() => Some(entry_problem(
            release,
            "commit",
            format!("tag {tag} names commit {now} in {code_repo}, but release.yml pins {pinned}"),
            "a tag that moves is not a release: tag the new commit with a new tag and request that"
                .to_string(),
        )),
        Some(_) => None,
    }
}

/// After the merge: whether the tag checked out for `release` still names
/// the commit the merged `release.yml` pins.
pub fn approved_commit_problem(release: &RequestedRelease, fetched: &str) -> Option<Problem> {
    let tag = &release.tag;
    match &release.commit {
        None => Some(entry_problem(
            release,
            "commit",
            format!("release.yml on the default branch requests {tag} without the commit it names; nothing was released"),
            "an admin approves a commit: open a release request with berth request, which writes both".to_string(),
        )),
        Some(pinned) if pinned.as_str() != fetched => Some(entry_problem(
            release,
            "commit",
            format!("tag {tag} now names commit {fetched}, but the approved release.yml pins {pinned}: the tag was moved after approval; nothing was released"),
            "tag a new release in the code repository and open a new release request".to_string(),
        )),
        Some(_) => None,
    }
}

/// A merge request pipeline judges exactly its own commit: when the merge
/// request's head has moved on, this pipeline's verdict would be about
/// something else than what can be merged.
pub fn head_problem(
    pipeline_commit: &str,
    merge_request_head: Option<&str>,
    iid: u64,
) -> Option<Problem> {
    match merge_request_head {
        Some(head) if head == pipeline_commit => None,
        head => Some(whole_file(
            FILE_NAME,
            format!(
                "this pipeline runs for commit {pipeline_commit}, but the head of merge request !{iid} is {}",
                head.unwrap_or("unknown")
            ),
            "the newest push has its own pipeline, which judges it; a merge needs that pipeline to pass",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, old: Option<u32>, new: Option<u32>) -> TreeChange {
        TreeChange {
            path: path.into(),
            old_mode: old,
            new_mode: new,
        }
    }

    fn lines(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn only_a_regular_release_yml_may_change() {
        let problems = change_problems(&[
            change("release.yml", Some(0o100644), Some(0o100644)),
            change("app.yml", Some(0o100644), Some(0o100644)),
            change("codes", Some(0o160000), Some(0o160000)),
            change("evil\nname", None, Some(0o100644)),
        ]);
        assert_eq!(
            lines(&problems),
            [
                "app.yml: this merge request changes it, but a release request may change only release.yml\n  hint: move other changes to a separate merge request for the platform team",
                "codes: this merge request changes it, but a release request may change only release.yml\n  hint: move other changes to a separate merge request for the platform team",
                "\"evil\\nname\": this merge request changes it, but a release request may change only release.yml\n  hint: move other changes to a separate merge request for the platform team",
            ]
        );
        for (mode, what) in [
            (0o120000, "a symbolic link"),
            (0o100755, "an executable file"),
            (0o160000, "a submodule"),
        ] {
            let problems = change_problems(&[change("release.yml", Some(0o100644), Some(mode))]);
            assert_eq!(
                lines(&problems),
                [format!("release.yml: this merge request makes release.yml {what}; it must stay a regular file (git mode 100644)\n  hint: commit release.yml as a plain text file (git update-index --chmod=-x, no symlink)")]
            );
        }
        assert_eq!(
            lines(&change_problems(&[change("release.yml", Some(0o100644), None)])),
            ["release.yml: this merge request deletes release.yml\n  hint: change the ref and commit of an environment instead"]
        );
    }

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn release(text: &str) -> ReleaseFile {
        ReleaseFile::parse("release.yml", text).expect("valid")
    }

    #[test]
    fn an_environment_changes_when_its_ref_or_commit_does() {
        let base = release(&format!(
            "environments:\n  test:\n    ref: v1\n    commit: {A}\n  production:\n    ref: v1\n    commit: {A}\n  staging:\n    ref: v1\n"
        ));
        let head = release(&format!(
            "environments:\n  test:\n    ref: v1\n    commit: {B}\n  production:\n    ref: v1\n    commit: {A}\n  staging:\n    ref: v2\n  qa:\n    ref: v1\n"
        ));
        let names: Vec<&str> = changed_environments(Some(&base), &head)
            .iter()
            .map(|r| r.env.as_str())
            .collect();
        assert_eq!(names, ["test", "staging", "qa"]);
        assert_eq!(changed_environments(None, &head).len(), 4);
    }

    #[test]
    fn a_tag_must_name_the_pinned_commit() {
        let head = release(&format!(
            "environments:\n  test:\n    ref: v2\n    commit: {A}\n  production:\n    ref: v2\n"
        ));
        let test = &head.environments[0];
        let production = &head.environments[1];
        assert_eq!(pinned_commit_problem(test, "plugins/shop", Some(A)), None);
        assert_eq!(
            pinned_commit_problem(test, "plugins/shop", Some(B)).unwrap().to_string(),
            format!("release.yml:4:13: environments.test.commit: tag v2 names commit {B} in plugins/shop, but release.yml pins {A}\n  hint: a tag that moves is not a release: tag the new commit with a new tag and request that")
        );
        assert_eq!(
            pinned_commit_problem(test, "plugins/shop", None).unwrap().to_string(),
            "release.yml:3:10: environments.test.ref: v2 is not a tag of the code repository plugins/shop\n  hint: tag the commit in plugins/shop and push the tag (git push origin TAG), then re-run"
        );
        assert_eq!(
            pinned_commit_problem(production, "plugins/shop", Some(A)).unwrap().to_string(),
            "release.yml:5:3: environments.production.commit: v2 is requested without the commit it names; the admin approves a commit, not a tag\n  hint: add `commit: <id>` beside `ref:` (git rev-parse 'v2^{commit}' prints it), or open the request with berth request, which writes both"
        );
        assert_eq!(approved_commit_problem(test, A), None);
        assert_eq!(
            approved_commit_problem(test, B).unwrap().message,
            format!("tag v2 now names commit {B}, but the approved release.yml pins {A}: the tag was moved after approval; nothing was released")
        );
        assert!(approved_commit_problem(production, A).is_some());
    }

    #[test]
    fn a_pipeline_judges_only_the_head_of_its_request() {
        assert_eq!(head_problem(A, Some(A), 4), None);
        assert_eq!(
            head_problem(A, Some(B), 4).unwrap().message,
            format!("this pipeline runs for commit {A}, but the head of merge request !4 is {B}")
        );
    }
}
