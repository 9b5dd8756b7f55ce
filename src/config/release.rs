//! `release.yml`: the one file an outside developer edits. It names the tag
//! of the code repository each environment should run, and the commit that
//! tag named when the request was made: the admin approves that commit, and
//! `checkout` deploys exactly it.

use super::decode::{Decoder, Problems};
use super::values::{CommitId, EnvName, GitTag};
use super::yaml::{Mark, Node};

pub const FILE_NAME: &str = "release.yml";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReleaseFile {
    pub environments: Vec<RequestedRelease>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestedRelease {
    pub env: EnvName,
    #[serde(rename = "ref")]
    pub tag: GitTag,
    /// The commit `tag` names. Optional in the file (a new app's first
    /// release.yml has none); `check` requires it for every environment a
    /// request changes, and `checkout` releases nothing without it.
    pub commit: Option<CommitId>,
    /// Where the environment's entry starts, for errors found later
    /// (an environment app.yml does not know).
    #[serde(skip)]
    pub mark: Mark,
    /// Where its `ref` value is (a tag that does not exist).
    #[serde(skip)]
    pub ref_mark: Mark,
    /// Where its `commit` value is, or the entry when it has none.
    #[serde(skip)]
    pub commit_mark: Mark,
}

impl ReleaseFile {
    pub fn parse(file: &str, text: &str) -> Result<ReleaseFile, Problems> {
        Decoder::decode_text(file, text, decode)
    }

    pub fn get(&self, env: &EnvName) -> Option<&RequestedRelease> {
        self.environments.iter().find(|r| &r.env == env)
    }
}

fn decode(d: &mut Decoder, root: &Node) -> Option<ReleaseFile> {
    let mut fields = d.mapping(root, "")?;
    let environments = fields.required(d, "environments", |d, node, key| {
        d.named(node, key, |d, env, mark, node, key| {
            let mut fields = d.mapping(node, key)?;
            let mut ref_mark = mark;
            let mut commit_mark = mark;
            let tag = fields.required(d, "ref", |d, node, key| {
                ref_mark = node.mark;
                Decoder::scalar::<GitTag>(d, node, key)
            });
            let commit = fields.optional(d, "commit", |d, node, key| {
                commit_mark = node.mark;
                Decoder::scalar::<CommitId>(d, node, key)
            });
            fields.finish(d);
            Some(RequestedRelease {
                env: env?,
                tag: tag?,
                commit,
                mark,
                ref_mark,
                commit_mark,
            })
        })
    });
    fields.finish(d);
    Some(ReleaseFile {
        environments: environments?,
    })
}
