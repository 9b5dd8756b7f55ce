//! The GitLab executor: the `gitlab` crate's endpoint builders, sent through
//! berth's own transport so that every call retries 429 and 5xx answers with
//! backoff (honouring `Retry-After`), counts itself, and fails with the
//! endpoint and GitLab's own message.
//!
//! Endpoints the crate lacks live in [`endpoints`].

pub mod apply;
pub mod calls;
pub mod endpoints;
pub mod onboarding;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gitlab::api::{self, ApiError, Endpoint, Pageable, Query};
use http::{Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::secret::Secret;

/// How berth proves who it is to GitLab.
#[derive(Debug, Clone)]
pub enum Token {
    /// A personal, project or group access token (`PRIVATE-TOKEN`).
    Private(Secret),
    /// The running job's `CI_JOB_TOKEN` (`JOB-TOKEN`): reads, environments
    /// and deployments only.
    Job(Secret),
}

/// How often and how long a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles after each retry.
    pub first_backoff: Duration,
    /// No single wait is longer, whatever `Retry-After` asks.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// One GitLab instance, reached as `CI_API_V4_URL`.
pub struct GitLab {
    api: Url,
    token: Token,
    http: reqwest::blocking::Client,
    retry: RetryPolicy,
    calls: AtomicUsize,
}

/// A call that failed, named by its endpoint.
#[derive(Debug, thiserror::Error)]
#[error("GitLab {method} {endpoint}: {detail}")]
pub struct GitLabError {
    pub method: String,
    pub endpoint: String,
    /// The HTTP status, when GitLab answered.
    pub status: Option<u16>,
    pub detail: String,
}

impl GitLabError {
    pub fn is(&self, status: u16) -> bool {
        self.status == Some(status)
    }

    /// What the failure means for the caller, from the status and GitLab's
    /// documented messages (`shared/reference/gitlab.md`), so that no
    /// command matches message text itself.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::of(self.status, &self.detail)
    }
}

/// The failures berth reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing to create is there already: a project or variable name
    /// taken, a member, a protected branch or tag rule, a tag, an open merge
    /// request for the branch.
    AlreadyExists,
    /// The write was based on a state that changed meanwhile: a file's
    /// `last_commit_id`, a merge request's head `sha`.
    Stale,
    /// The token may not do this (401, 403, or GitLab's 400 "You are not
    /// allowed to …" for protected branches and tags).
    Forbidden,
    /// No such thing, or not visible to the token.
    NotFound,
    Other,
}

impl ErrorKind {
    fn of(status: Option<u16>, detail: &str) -> ErrorKind {
        let says = |text: &str| detail.contains(text);
        match status {
            Some(401 | 403) => ErrorKind::Forbidden,
            Some(404) => ErrorKind::NotFound,
            Some(400 | 409)
                if says("The file has changed since you started editing it")
                    || says("You are attempting to update a file that has changed")
                    || says("SHA does not match HEAD of source branch") =>
            {
                ErrorKind::Stale
            }
            Some(400 | 409) if says("has already been taken") || says("already exists") => {
                ErrorKind::AlreadyExists
            }
            Some(400) if says("You are not allowed to") => ErrorKind::Forbidden,
            _ => ErrorKind::Other,
        }
    }
}

/// An endpoint from its builder. Builders fail only when a required field
/// is missing: a bug in berth, not bad input, so it is not an error path.
pub(crate) fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("a GitLab endpoint was built without a required field: {e}"))
}

/// A read's answer, or `None` when GitLab says there is no such thing.
pub(crate) fn found<T>(result: Result<T, GitLabError>) -> Result<Option<T>, GitLabError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A transport failure: GitLab did not answer at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

impl GitLab {
    /// `api` is `CI_API_V4_URL`, e.g. `https://gitlab.example.com/api/v4`.
    pub fn new(api: &str, token: Token) -> Result<GitLab, anyhow::Error> {
        let mut api = Url::parse(api)
            .map_err(|e| anyhow::anyhow!("the GitLab API URL {api:?} is not a URL: {e}"))?;
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(GitLab {
            api,
            token,
            http,
            retry: RetryPolicy::default(),
            calls: AtomicUsize::new(0),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> GitLab {
        self.retry = retry;
        self
    }

    /// The instance's base URL (`CI_API_V4_URL` without `/api/v4`).
    pub fn server_url(&self) -> Url {
        let mut base = self.api.clone();
        let path = base
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/api/v4")
            .to_string();
        base.set_path(&format!("{path}/"));
        base
    }

    /// HTTP requests sent so far, retries included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The token, for the git transport (sent as a header, never in a URL).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Calls an endpoint and decodes its JSON answer.
    pub fn call<E, T>(&self, endpoint: &E) -> Result<T, GitLabError>
    where
        E: Endpoint,
        T: DeserializeOwned,
    {
        endpoint.query(self).map_err(|e| describe(endpoint, e))
    }

    /// Calls an endpoint whose answer is empty or not needed.
    pub fn call_ignoring_body<E: Endpoint>(&self, endpoint: &E) -> Result<(), GitLabError> {
        api::ignore(endpoint)
            .query(self)
            .map_err(|e| describe(endpoint, e))
    }

    /// Calls an endpoint that answers raw bytes (a file's content).
    pub fn call_raw<E: Endpoint>(&self, endpoint: &E) -> Result<Vec<u8>, GitLabError> {
        api::raw(endpoint)
            .query(self)
            .map_err(|e| describe(endpoint, e))
    }

    /// Calls a list endpoint and follows its pages, up to `limit` items.
    pub fn call_pages<E, T>(&self, endpoint: &E, limit: usize) -> Result<Vec<T>, GitLabError>
    where
        E: Endpoint + Pageable,
        T: DeserializeOwned + 'static,
    {
        api::paged(endpoint, api::Pagination::Limit(limit))
            .query(self)
            .map_err(|e| describe(endpoint, e))
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &Url,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<reqwest::blocking::Response, reqwest::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (name, value) = match &self.token {
            Token::Private(secret) => ("PRIVATE-TOKEN", secret.expose()),
            Token::Job(secret) => ("JOB-TOKEN", secret.expose()),
        };
        self.http
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .header(name, value)
            .body(body.to_vec())
            .send()
    }

    /// How long to wait before attempt `attempt + 1`, or `None` to give up.
    fn wait_before_retry(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt + 1 >= self.retry.attempts {
            return None;
        }
        let backoff = self.retry.first_backoff * 2u32.saturating_pow(attempt);
        Some(retry_after.unwrap_or(backoff).min(self.retry.max_wait))
    }
}

impl api::RestClient for GitLab {
    type Error = TransportError;

    fn rest_endpoint(&self, endpoint: &str) -> Result<Url, ApiError<TransportError>> {
        Ok(self.api.join(endpoint)?)
    }
}

impl api::Client for GitLab {
    fn rest(
        &self,
        request: http::request::Builder,
        body: Vec<u8>,
    ) -> Result<Response<Bytes>, ApiError<TransportError>> {
        let request = request
            .body(())
            .map_err(|e| ApiError::client(TransportError(e.to_string())))?;
        let (parts, ()) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())?;
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(&parts.method, &url, &parts.headers, &body);
            let retry_after = match &outcome {
                Ok(response) if retryable(response.status()) => retry_after(response.headers()),
                Ok(_) => None,
                Err(e) if e.is_connect() || e.is_timeout() => None,
                Err(_) => None,
            };
            let transient = match &outcome {
                Ok(response) => retryable(response.status()),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if transient {
                if let Some(wait) = self.wait_before_retry(attempt, retry_after) {
                    let why = match &outcome {
                        Ok(response) => format!("answered {}", response.status().as_u16()),
                        Err(e) => format!("did not answer ({e})"),
                    };
                    eprintln!(
                        "berth: GitLab {why} for {} {}; retrying in {:.1}s",
                        parts.method,
                        url.path(),
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                    continue;
                }
            }
            let response =
                outcome.map_err(|e| ApiError::client(TransportError(without_url(&e))))?;
            let mut http_response = Response::builder().status(response.status());
            for (name, value) in response.headers() {
                http_response = http_response.header(name, value);
            }
            let bytes = response
                .bytes()
                .map_err(|e| ApiError::client(TransportError(without_url(&e))))?;
            return http_response
                .body(bytes)
                .map_err(|e| ApiError::client(TransportError(e.to_string())));
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry-After` in seconds (GitLab never sends the date form).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A reqwest error's text without its URL, which may carry a query string.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

/// Turns the crate's error into one that names the endpoint and quotes
/// GitLab's message.
fn describe<E: Endpoint>(endpoint: &E, error: ApiError<TransportError>) -> GitLabError {
    let (status, detail) = match error {
        ApiError::GitlabWithStatus { status, msg } => (Some(status), msg),
        ApiError::GitlabObjectWithStatus { status, obj }
        | ApiError::GitlabUnrecognizedWithStatus { status, obj } => {
            (Some(status), message_of(&obj))
        }
        ApiError::GitlabService { status, data } => {
            let text = String::from_utf8_lossy(&data)
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            (
                Some(status),
                if text.is_empty() {
                    status.to_string()
                } else {
                    text
                },
            )
        }
        ApiError::GitlabRateLimited { .. } => (
            Some(StatusCode::TOO_MANY_REQUESTS),
            "rate limited; gave up after retrying".to_string(),
        ),
        ApiError::MovedPermanently { location } => (
            Some(StatusCode::MOVED_PERMANENTLY),
            format!("moved to {}", location.unwrap_or_default()),
        ),
        other => (None, other.to_string()),
    };
    let detail = match status {
        Some(code) if !detail.starts_with(code.as_str()) => format!("{} {detail}", code.as_u16()),
        _ => detail,
    };
    GitLabError {
        method: endpoint.method().to_string(),
        endpoint: endpoint.endpoint().into_owned(),
        status: status.map(|s| s.as_u16()),
        detail,
    }
}

/// GitLab's `message` or `error`, whether a string, list or map of lists.
fn message_of(body: &serde_json::Value) -> String {
    use serde_json::Value;
    let value = body
        .get("message")
        .or_else(|| body.get("error"))
        .unwrap_or(body);
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join("; "),
        Value::Object(fields) => fields
            .iter()
            .map(|(key, v)| format!("{key} {}", flat(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn flat(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_every_error_shape_read_plainly() {
        let cases = [
            (
                r#"{"message":"404 Project Not Found"}"#,
                "404 Project Not Found",
            ),
            (
                r#"{"message":["Another open merge request already exists for this source branch: !4"]}"#,
                "Another open merge request already exists for this source branch: !4",
            ),
            (
                r#"{"message":{"name":["has already been taken"]}}"#,
                "name has already been taken",
            ),
            (r#"{"error":"title is missing"}"#, "title is missing"),
        ];
        for (body, expected) in cases {
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(message_of(&value), expected, "{body}");
        }
    }

    /// Answers every request with one status and body, as GitLab would.
    struct Canned(u16, &'static str);

    impl api::RestClient for Canned {
        type Error = TransportError;
        fn rest_endpoint(&self, endpoint: &str) -> Result<Url, ApiError<TransportError>> {
            Ok(Url::parse("https://gitlab.example.com/api/v4/")?.join(endpoint)?)
        }
    }

    impl api::Client for Canned {
        fn rest(
            &self,
            _: http::request::Builder,
            _: Vec<u8>,
        ) -> Result<Response<Bytes>, ApiError<TransportError>> {
            Ok(Response::builder()
                .status(self.0)
                .header("content-type", "application/json")
                .body(Bytes::from_static(self.1.as_bytes()))
                .unwrap())
        }
    }

    /// GitLab's own error bodies (`shared/reference/gitlab.md`), decoded
    /// by the crate as berth's calls decode them, then classified.
    #[test]
    fn gitlab_error_bodies_have_the_documented_kinds() {
        use ErrorKind::*;
        let cases: &[(u16, &str, ErrorKind)] = &[
            // 2.1 duplicate project, 4 duplicate variable
            (
                400,
                r#"{"message":{"name":["has already been taken"],"path":["has already been taken"]}}"#,
                AlreadyExists,
            ),
            (
                400,
                r#"{"message":{"key":["(BERTH_APP) has already been taken"]}}"#,
                AlreadyExists,
            ),
            // 2.4 member, 5.1 protected branch, 3.4 protected tag, 3.3 tag
            (409, r#"{"message":"Member already exists"}"#, AlreadyExists),
            (
                409,
                r#"{"message":"Protected branch 'main' already exists"}"#,
                AlreadyExists,
            ),
            (
                409,
                r#"{"message":"Protected tag 'deployed/*' already exists"}"#,
                AlreadyExists,
            ),
            (
                400,
                r#"{"message":"Tag deployed/test/3 already exists"}"#,
                AlreadyExists,
            ),
            // 6.1 an open merge request for the branch, 3.1 branch exists
            (
                409,
                r#"{"message":["Another open merge request already exists for this source branch: !4"]}"#,
                AlreadyExists,
            ),
            (
                400,
                r#"{"message":"A branch called 'release/test-v1' already exists. Switch to that branch in order to make changes"}"#,
                AlreadyExists,
            ),
            // 3.1 commits API, 3.2 files API, 6.4/6.5 merge request head
            (
                400,
                r#"{"message":"The file has changed since you started editing it: allocations.yml"}"#,
                Stale,
            ),
            (
                400,
                r#"{"message":"You are attempting to update a file that has changed since you started editing it."}"#,
                Stale,
            ),
            (
                409,
                r#"{"message":"SHA does not match HEAD of source branch: 1a2b3c"}"#,
                Stale,
            ),
            // 1, 4 (protected tags), 3.1
            (401, r#"{"message":"401 Unauthorized"}"#, Forbidden),
            (403, r#"{"message":"403 Forbidden"}"#, Forbidden),
            (
                403,
                r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token."}"#,
                Forbidden,
            ),
            (
                400,
                r#"{"message":"You are not allowed to create this tag as it is protected."}"#,
                Forbidden,
            ),
            (
                400,
                r#"{"message":"You are not allowed to push into this branch"}"#,
                Forbidden,
            ),
            (404, r#"{"message":"404 Project Not Found"}"#, NotFound),
            (404, r#"{"error":"404 Not Found"}"#, NotFound),
            (404, r#"{"message":"404 Variable Not Found"}"#, NotFound),
            // Everything else is not for berth to interpret.
            (
                409,
                r#"{"message":"There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"}"#,
                Other,
            ),
            (400, r#"{"error":"title is missing"}"#, Other),
            (400, r#"{"message":{"value":["is invalid"]}}"#, Other),
            (400, r#"{"message":"Target nope is invalid"}"#, Other),
            (405, r#"{"message":"405 Method Not Allowed"}"#, Other),
            (422, r#"{"error":"Invalid url given"}"#, Other),
            (500, r#"{"message":"500 Internal Server Error"}"#, Other),
        ];
        let endpoint = gitlab::api::projects::Project::builder()
            .project("deploy/shop")
            .build()
            .unwrap();
        for &(status, body, expected) in cases {
            let error = api::ignore(&endpoint)
                .query(&Canned(status, body))
                .unwrap_err();
            let error = describe(&endpoint, error);
            assert_eq!(error.status, Some(status), "{body}");
            assert_eq!(error.kind(), expected, "{status} {body} read as {error}");
        }
        // A failure without an answer is nothing berth can act on either.
        let unanswered = GitLabError {
            method: "GET".into(),
            endpoint: "projects/deploy%2Fshop".into(),
            status: None,
            detail: "connection refused".into(),
        };
        assert_eq!(unanswered.kind(), Other);
    }

    #[test]
    fn retries_wait_for_retry_after_but_never_longer_than_the_cap() {
        let gitlab = GitLab::new(
            "http://127.0.0.1:9/api/v4",
            Token::Private(Secret::new("x")),
        )
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
        });
        assert_eq!(
            gitlab.wait_before_retry(0, None),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            gitlab.wait_before_retry(1, None),
            Some(Duration::from_millis(200))
        );
        assert_eq!(gitlab.wait_before_retry(2, None), None);
        assert_eq!(
            gitlab.wait_before_retry(0, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(gitlab.server_url().as_str(), "http://127.0.0.1:9/");
    }
}
