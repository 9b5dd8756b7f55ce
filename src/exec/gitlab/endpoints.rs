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

/// `POST /projects/:id/access_tokens`: a project access token (a bot
/// user, member of the project with `access_level`). The crate's builder
/// takes a `chrono` date; berth passes `YYYY-MM-DD` itself.
pub struct CreateAccessToken<'a> {
    pub project: NameOrId<'a>,
    pub name: &'a str,
    pub access_level: u64,
    pub scopes: &'a [&'a str],
    pub expires_at: &'a str,
}

impl Endpoint for CreateAccessToken<'_> {
    fn method(&self) -> Method {
        Method::POST
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/access_tokens", self.project).into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        let mut params = FormParams::default();
        params.push("name", self.name);
        params.push("access_level", self.access_level);
        params.push("expires_at", self.expires_at);
        params.extend(self.scopes.iter().map(|scope| ("scopes[]", *scope)));
        params.into_body()
    }
}

/// `GET /projects/:id/deploy_tokens`: the project's deploy tokens
/// (Maintainer), revoked and expired ones included.
pub struct DeployTokens<'a> {
    pub project: NameOrId<'a>,
}

impl Endpoint for DeployTokens<'_> {
    fn method(&self) -> Method {
        Method::GET
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/deploy_tokens", self.project).into()
    }
}

impl Pageable for DeployTokens<'_> {}

/// `POST /projects/:id/deploy_tokens`: a deploy token, for git over HTTP
/// with its user name and token.
pub struct CreateDeployToken<'a> {
    pub project: NameOrId<'a>,
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    pub expires_at: Option<&'a str>,
}

impl Endpoint for CreateDeployToken<'_> {
    fn method(&self) -> Method {
        Method::POST
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/deploy_tokens", self.project).into()
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        let mut params = FormParams::default();
        params.push("name", self.name);
        params.push_opt("expires_at", self.expires_at);
        params.extend(self.scopes.iter().map(|scope| ("scopes[]", *scope)));
        params.into_body()
    }
}

/// `DELETE /projects/:id/deploy_tokens/:token_id`: revokes a deploy token.
pub struct RevokeDeployToken<'a> {
    pub project: NameOrId<'a>,
    pub id: u64,
}

impl Endpoint for RevokeDeployToken<'_> {
    fn method(&self) -> Method {
        Method::DELETE
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/deploy_tokens/{}", self.project, self.id).into()
    }
}

/// `GET /groups/:id/members/all/:user_id`: a user's role in a group,
/// inherited ones included (404 when they have none).
pub struct AllGroupMember<'a> {
    pub group: NameOrId<'a>,
    pub user: u64,
}

impl Endpoint for AllGroupMember<'_> {
    fn method(&self) -> Method {
        Method::GET
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("groups/{}/members/all/{}", self.group, self.user).into()
    }
}
