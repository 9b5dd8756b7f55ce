//! GitLab endpoints the `gitlab` crate does not have, written as its
//! `Endpoint`s so they share the transport, retries and errors.

use gitlab::api::common::NameOrId;
use gitlab::api::endpoint_prelude::*;

/// `POST /projects/:id/environments`: create an environment with its tier
/// and URL (jobs create them implicitly, but without a tier).
pub struct CreateEnvironment<'a> {
    pub project: NameOrId<'a>,
    pub name: &'a str,
    pub external_url: Option<&'a str>,
    pub tier: &'a str,
}

impl Endpoint for CreateEnvironment<'_> {
    fn method(&self) -> Method {
        Method::POST
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/environments", self.project).into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        let mut params = FormParams::default();
        params.push("name", self.name);
        params.push_opt("external_url", self.external_url);
        params.push("tier", self.tier);
        params.into_body()
    }
}

/// `POST /projects/:id/protected_environments` (Premium): only
/// maintainers deploy to it.
pub struct ProtectEnvironment<'a> {
    pub project: NameOrId<'a>,
    pub name: &'a str,
    pub deploy_access_level: u64,
}

impl Endpoint for ProtectEnvironment<'_> {
    fn method(&self) -> Method {
        Method::POST
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/protected_environments", self.project).into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        JsonParams::into_body(&serde_json::json!({
            "name": self.name,
            "deploy_access_levels": [{"access_level": self.deploy_access_level}],
        }))
    }
}

/// `PUT /projects/:id/repository/submodules/:submodule`: point a
/// submodule's gitlink at a commit.
pub struct UpdateSubmodule<'a> {
    pub project: NameOrId<'a>,
    pub submodule: &'a str,
    pub branch: &'a str,
    pub commit_sha: &'a str,
    pub commit_message: &'a str,
}

impl Endpoint for UpdateSubmodule<'_> {
    fn method(&self) -> Method {
        Method::PUT
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!(
            "projects/{}/repository/submodules/{}",
            self.project,
            gitlab::api::common::path_escaped(self.submodule)
        )
        .into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        let mut params = FormParams::default();
        params.push("branch", self.branch);
        params.push("commit_sha", self.commit_sha);
        params.push("commit_message", self.commit_message);
        params.into_body()
    }
}
