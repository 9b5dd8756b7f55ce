//! The git executor: fetches a tag of a code repository with git2 and checks
//! its commit out in a working directory.
//!
//! libgit2 is built without its own HTTP and TLS stacks. Its smart-HTTP
//! requests go through reqwest instead (rustls, and a DNS resolver that does
//! not need glibc's NSS), so the static binary fetches from any GitLab. The
//! token travels in an `Authorization` header, never in a URL, so it cannot
//! show up in an error message or a git config.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

use crate::config::values::GitTag;
use crate::exec::gitlab::Token;

/// A tag resolved to the commit it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTag {
    pub tag: String,
    pub commit: String,
}

/// Fetches `tag` from `url` into the repository at `dir` (created when
/// missing) and checks its commit out, detached, discarding local changes.
pub fn checkout_tag(dir: &Path, url: &str, token: &Token, tag: &GitTag) -> Result<ResolvedTag> {
    register_transport();
    *AUTHORIZATION.lock().unwrap_or_else(|e| e.into_inner()) = Some(basic_auth(token));
    let result = fetch_and_checkout(dir, url, tag);
    *AUTHORIZATION.lock().unwrap_or_else(|e| e.into_inner()) = None;
    result
}

fn fetch_and_checkout(dir: &Path, url: &str, tag: &GitTag) -> Result<ResolvedTag> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let repo = match git2::Repository::open(dir) {
        Ok(repo) if repo.path().starts_with(dir) || dir.join(".git").exists() => repo,
        _ => git2::Repository::init(dir)
            .with_context(|| format!("create a git repository in {}", dir.display()))?,
    };
    let refspec = format!("+refs/tags/{tag}:refs/tags/{tag}", tag = tag.as_str());
    let mut remote = repo
        .remote_anonymous(url)
        .context("set up the code repository's remote")?;
    let mut options = git2::FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    remote
        .fetch(&[refspec.as_str()], Some(&mut options), None)
        .map_err(|e| anyhow::anyhow!("fetch tag {} from {url}: {}", tag.as_str(), e.message()))?;
    let reference = repo
        .find_reference(&format!("refs/tags/{}", tag.as_str()))
        .with_context(|| format!("the code repository has no tag {}", tag.as_str()))?;
    let commit = reference
        .peel_to_commit()
        .with_context(|| format!("tag {} does not name a commit", tag.as_str()))?;
    repo.set_head_detached(commit.id())
        .context("point HEAD at the tag's commit")?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repo.checkout_head(Some(&mut checkout))
        .with_context(|| format!("check out {} in {}", tag.as_str(), dir.display()))?;
    Ok(ResolvedTag {
        tag: tag.as_str().to_string(),
        commit: commit.id().to_string(),
    })
}

/// The `Authorization` header for the fetch in progress. libgit2 builds
/// transports through a global registry, so the header is passed this way.
static AUTHORIZATION: Mutex<Option<String>> = Mutex::new(None);

fn basic_auth(token: &Token) -> String {
    use base64::Engine;
    let (user, secret) = match token {
        Token::Private(secret) => ("oauth2", secret.expose()),
        Token::Job(secret) => ("gitlab-ci-token", secret.expose()),
    };
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

fn register_transport() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        for scheme in ["http", "https"] {
            // SAFETY: registration happens once, before any fetch, from this
            // `Once`, as git2 requires.
            let registered = unsafe {
                git2::transport::register(scheme, |remote| {
                    Transport::smart(remote, true, SmartHttp::new())
                })
            };
            if let Err(e) = registered {
                eprintln!("berth: could not register the {scheme} git transport: {e}");
            }
        }
    });
}

/// git's smart HTTP protocol (fetch only) over reqwest.
struct SmartHttp {
    http: reqwest::blocking::Client,
}

impl SmartHttp {
    fn new() -> SmartHttp {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("git/2.0 (berth/", env!("CARGO_PKG_VERSION"), ")"))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .expect("an HTTP client with fixed settings builds");
        SmartHttp { http }
    }
}

impl SmartSubtransport for SmartHttp {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> std::result::Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let base = url.trim_end_matches('/');
        let stream = match action {
            Service::UploadPackLs => {
                HttpStream::Get(format!("{base}/info/refs?service=git-upload-pack"))
            }
            Service::UploadPack => HttpStream::Post {
                url: format!("{base}/git-upload-pack"),
                body: Vec::new(),
            },
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str(
                    "berth only fetches; pushing is not supported",
                ));
            }
        };
        Ok(Box::new(Exchange {
            http: self.http.clone(),
            request: Some(stream),
            response: None,
        }))
    }

    fn close(&self) -> std::result::Result<(), git2::Error> {
        Ok(())
    }
}

enum HttpStream {
    Get(String),
    Post { url: String, body: Vec<u8> },
}

/// One request and its response: libgit2 writes the request body, then
/// reads; the request goes out on the first read.
struct Exchange {
    http: reqwest::blocking::Client,
    request: Option<HttpStream>,
    response: Option<reqwest::blocking::Response>,
}

impl Exchange {
    fn send(&mut self) -> io::Result<()> {
        let Some(request) = self.request.take() else {
            return Ok(());
        };
        let authorization = AUTHORIZATION
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (builder, path) = match request {
            HttpStream::Get(url) => {
                let path = url_path(&url);
                (self.http.get(url), path)
            }
            HttpStream::Post { url, body } => {
                let path = url_path(&url);
                let builder = self
                    .http
                    .post(url)
                    .header("Content-Type", "application/x-git-upload-pack-request")
                    .header("Accept", "application/x-git-upload-pack-result")
                    .body(body);
                (builder, path)
            }
        };
        let builder = match authorization {
            Some(value) => builder.header("Authorization", value),
            None => builder,
        };
        let response = builder
            .send()
            .map_err(|e| io::Error::other(format!("{path}: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => " (the token cannot read this repository)",
                404 => " (no such repository, or the token cannot see it)",
                _ => "",
            };
            return Err(io::Error::other(format!("{path}: HTTP {status}{hint}")));
        }
        self.response = Some(response);
        Ok(())
    }
}

fn url_path(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default()
}

impl Read for Exchange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.send()?;
        match &mut self.response {
            Some(response) => response.read(buf),
            None => Ok(0),
        }
    }
}

impl Write for Exchange {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.request {
            Some(HttpStream::Post { body, .. }) => {
                body.extend_from_slice(data);
                Ok(data.len())
            }
            _ => Err(io::Error::other("this git request takes no body")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
