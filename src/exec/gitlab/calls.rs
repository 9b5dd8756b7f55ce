//! The GitLab calls berth's commands make, each one request (or one paged
//! list), with just the fields berth reads.

use gitlab::api::projects::merge_requests::notes::{
    CreateMergeRequestNote, EditMergeRequestNote, MergeRequestNotes,
};
use gitlab::api::projects::merge_requests::MergeRequest;
use gitlab::api::projects::repository::commits::{CommitStatusState, CreateCommitStatus};
use gitlab::api::projects::repository::tags::{CreateTag, Tag, Tags};
use gitlab::api::users::CurrentUser;
use serde::Deserialize;

use super::{GitLab, GitLabError};
use crate::report::records::{History, RecordTag, ReleaseRecord, TAG_PREFIX};

pub type CallResult<T> = Result<T, GitLabError>;

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    // Builders fail only when a required field is missing: a bug here, not
    // bad input, so it is not worth an error path.
    result.unwrap_or_else(|e| panic!("a GitLab endpoint was built without a required field: {e}"))
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
}

pub fn current_user(gitlab: &GitLab) -> CallResult<User> {
    gitlab.call(&CurrentUser::builder().build().expect("no fields"))
}

#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequestInfo {
    pub iid: u64,
    pub state: String,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub squash_commit_sha: Option<String>,
    pub web_url: Option<String>,
    pub diff_refs: Option<DiffRefs>,
}

/// The commits a merge request's current diff is between.
#[derive(Debug, Clone, Deserialize)]
pub struct DiffRefs {
    pub base_sha: Option<String>,
    pub head_sha: Option<String>,
}

pub fn merge_request(gitlab: &GitLab, project: &str, iid: u64) -> CallResult<MergeRequestInfo> {
    gitlab.call(&built(
        MergeRequest::builder()
            .project(project)
            .merge_request(iid)
            .build(),
    ))
}

/// The merged merge request whose merge produced `sha` (its merge or
/// squash commit, or its head when it was merged fast-forward), asked of
/// GitLab by commit: `GET /projects/:id/repository/commits/:sha/merge_requests`.
pub fn merged_request_for(
    gitlab: &GitLab,
    project: &str,
    sha: &str,
) -> CallResult<Option<MergeRequestInfo>> {
    let endpoint = built(
        gitlab::api::projects::repository::commits::MergeRequests::builder()
            .project(project)
            .sha(sha)
            .build(),
    );
    let requests: Vec<MergeRequestInfo> = match gitlab.call_pages(&endpoint, 100) {
        Ok(requests) => requests,
        Err(e) if e.is(404) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(requests.into_iter().find(|mr| {
        mr.state == "merged"
            && [&mr.merge_commit_sha, &mr.squash_commit_sha, &mr.sha]
                .iter()
                .any(|candidate| candidate.as_deref() == Some(sha))
    }))
}

#[derive(Debug, Deserialize)]
struct TagInfo {
    name: String,
    message: Option<String>,
    commit: CommitInfo,
    #[serde(default)]
    protected: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub short_id: String,
    pub title: String,
    #[serde(default)]
    pub author_name: String,
}

/// The commit a tag of `project` names, or `None` when there is no such tag.
pub fn tag_commit(gitlab: &GitLab, project: &str, tag: &str) -> CallResult<Option<String>> {
    let endpoint = built(Tag::builder().project(project).tag_name(tag).build());
    match gitlab.call::<_, TagInfo>(&endpoint) {
        Ok(info) => Ok(Some(info.commit.id)),
        Err(e) if e.is(404) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
struct NoteInfo {
    id: u64,
    body: String,
    author: User,
}

/// The first note on the merge request by `me` that starts with `marker`,
/// with its id.
pub fn find_own_note(
    gitlab: &GitLab,
    project: &str,
    iid: u64,
    me: &User,
    marker: &str,
) -> CallResult<Option<(u64, String)>> {
    let endpoint = built(
        MergeRequestNotes::builder()
            .project(project)
            .merge_request(iid)
            .build(),
    );
    let notes: Vec<NoteInfo> = gitlab.call_pages(&endpoint, 1000)?;
    Ok(notes
        .into_iter()
        .find(|note| note.author.id == me.id && note.body.starts_with(marker))
        .map(|note| (note.id, note.body)))
}

/// Keeps exactly one note by berth that starts with `marker`: edits it, or
/// creates it when there is none.
pub fn upsert_note(
    gitlab: &GitLab,
    project: &str,
    iid: u64,
    marker: &str,
    body: &str,
) -> CallResult<()> {
    let me = current_user(gitlab)?;
    match find_own_note(gitlab, project, iid, &me, marker)? {
        // GitLab stores a note without `\r` and trailing whitespace.
        Some((_, old)) if old == body.replace('\r', "").trim_end() => Ok(()),
        Some((note, _)) => gitlab.call_ignoring_body(&built(
            EditMergeRequestNote::builder()
                .project(project)
                .merge_request(iid)
                .note(note)
                .body(body)
                .build(),
        )),
        None => add_note(gitlab, project, iid, body),
    }
}

pub fn add_note(gitlab: &GitLab, project: &str, iid: u64, body: &str) -> CallResult<()> {
    gitlab.call_ignoring_body(&built(
        CreateMergeRequestNote::builder()
            .project(project)
            .merge_request(iid)
            .body(body)
            .build(),
    ))
}

/// Every `deployed/*` tag of the management repository, with its message
/// and whether it is protected; `history::History::read` decides which
/// to believe.
pub fn release_record_tags(gitlab: &GitLab, project: &str) -> CallResult<Vec<RecordTag>> {
    let search = format!("^{TAG_PREFIX}");
    let endpoint = built(
        Tags::builder()
            .project(project)
            .search(search.as_str())
            .build(),
    );
    let tags: Vec<TagInfo> = gitlab.call_pages(&endpoint, 10_000)?;
    Ok(tags
        .into_iter()
        .filter(|tag| tag.name.starts_with(TAG_PREFIX))
        .map(|tag| RecordTag {
            name: tag.name,
            message: tag.message.unwrap_or_default(),
            protected: tag.protected,
        })
        .collect())
}

/// The release history: the records berth believes and the tags it does not.
pub fn release_history(gitlab: &GitLab, project: &str) -> CallResult<History> {
    Ok(History::read(release_record_tags(gitlab, project)?))
}

/// Writes a release record as an annotated tag on `commit`.
pub fn create_record(
    gitlab: &GitLab,
    project: &str,
    record: &ReleaseRecord,
    commit: &str,
) -> CallResult<()> {
    let name = record.tag_name();
    let message = record.message();
    gitlab.call_ignoring_body(&built(
        CreateTag::builder()
            .project(project)
            .tag_name(name.as_str())
            .ref_(commit)
            .message(message.as_str())
            .build(),
    ))
}

/// Sets berth's commit status (`berth/<name>`) on a commit.
pub fn commit_status(
    gitlab: &GitLab,
    project: &str,
    sha: &str,
    ok: bool,
    name: &str,
    target_url: Option<&str>,
    description: &str,
) -> CallResult<()> {
    let state = if ok {
        CommitStatusState::Success
    } else {
        CommitStatusState::Failed
    };
    let mut builder = CreateCommitStatus::builder();
    builder
        .project(project)
        .commit(sha)
        .state(state)
        .name(name)
        .description(description);
    if let Some(url) = target_url {
        builder.target_url(url);
    }
    gitlab.call_ignoring_body(&built(builder.build()))
}

/// A GitLab deployment, as the environment's page shows it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct DeploymentInfo {
    pub iid: u64,
    #[serde(rename = "ref")]
    pub reference: String,
    pub sha: String,
    pub status: String,
    pub created_at: Option<String>,
}

/// The newest successful GitLab deployment of `environment`, if any.
pub fn last_deployment(
    gitlab: &GitLab,
    project: &str,
    environment: &str,
) -> CallResult<Option<DeploymentInfo>> {
    use gitlab::api::common::SortOrder;
    use gitlab::api::projects::deployments::{
        DeploymentOrderBy, DeploymentStatusFilter, Deployments,
    };
    let endpoint = built(
        Deployments::builder()
            .project(project)
            .environment(environment)
            .status(DeploymentStatusFilter::Success)
            .order_by(DeploymentOrderBy::Id)
            .sort(SortOrder::Descending)
            .build(),
    );
    let deployments: Vec<DeploymentInfo> = gitlab.call(&endpoint)?;
    Ok(deployments.into_iter().next())
}
