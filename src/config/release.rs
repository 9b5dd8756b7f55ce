//! `release.yml`: the one file an outside developer edits. It names the tag
//! of the code repository each environment should run.

use super::decode::{Decoder, Problems};
use super::values::{EnvName, GitTag};
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
    /// Where the environment's entry starts, for errors found later
    /// (an environment app.yml does not know, a tag that does not exist).
    #[serde(skip)]
    pub mark: Mark,
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
            let tag = fields.required(d, "ref", Decoder::scalar::<GitTag>);
            fields.finish(d);
            Some(RequestedRelease {
                env: env?,
                tag: tag?,
                mark,
            })
        })
    });
    fields.finish(d);
    Some(ReleaseFile {
        environments: environments?,
    })
}
