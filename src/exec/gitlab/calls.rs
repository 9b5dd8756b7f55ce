//! The GitLab calls berth's commands make, each one request (or one paged
//! list), with just the fields berth reads.

use gitlab::api::projects::merge_requests::notes::MergeRequestNotes;
use gitlab::api::projects::merge_requests::MergeRequest;
use gitlab::api::projects::repository::tags::Tags;
use gitlab::api::users::CurrentUser;
use serde::Deserialize;

use super::{built, found, GitLab, GitLabError};
use crate::report::records::{History, RecordTag, TAG_PREFIX};

pub type CallResult<T> = Result<T, GitLabError>;

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
    #[serde(default)]
    protected: bool,
}

/// The project's default branch (`main` when GitLab names none).
pub fn default_branch(gitlab: &GitLab, project: &str) -> CallResult<String> {
    #[derive(Deserialize)]
    struct ProjectInfo {
        default_branch: Option<String>,
    }
    let info: ProjectInfo = gitlab.call(&built(
        gitlab::api::projects::Project::builder()
            .project(project)
            .build(),
    ))?;
    Ok(info.default_branch.unwrap_or_else(|| "main".to_string()))
}

/// The commit a tag of `project` names (through an annotated tag), or
/// `None` when there is no such tag.
pub fn tag_commit(gitlab: &GitLab, project: &str, tag: &str) -> CallResult<Option<String>> {
    #[derive(Deserialize)]
    struct TagCommit {
        id: String,
    }
    #[derive(Deserialize)]
    struct TagInfo {
        commit: TagCommit,
    }
    let endpoint = built(
        gitlab::api::projects::repository::tags::Tag::builder()
            .project(project)
            .tag_name(tag)
            .build(),
    );
    Ok(found(gitlab.call::<_, TagInfo>(&endpoint))?.map(|info| info.commit.id))
}

/// The open merge request from `branch`, if any: its IID and URL.
pub fn open_request_from(
    gitlab: &GitLab,
    project: &str,
    branch: &str,
) -> CallResult<Option<(u64, String)>> {
    use gitlab::api::projects::merge_requests::{MergeRequestState, MergeRequests};
    #[derive(Deserialize)]
    struct RequestInfo {
        iid: u64,
        web_url: String,
    }
    let endpoint = built(
        MergeRequests::builder()
            .project(project)
            .source_branch(branch)
            .state(MergeRequestState::Opened)
            .build(),
    );
    let open: Vec<RequestInfo> = gitlab.call_pages(&endpoint, 5)?;
    Ok(open.into_iter().next().map(|r| (r.iid, r.web_url)))
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
