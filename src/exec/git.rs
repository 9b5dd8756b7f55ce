//! The git executor. For the code repository: the commit a tag names
//! (`ls-remote`), one fetch of the tags a plan compares and the commits and
//! files between two releases, and the checkout of a tag's commit. For the
//! job's own checkout of the management repository: files and changes read
//! from git objects at a given commit, never from the work tree. And the
//! push of a new management repository's first commit, the one commit the
//! API cannot make (a submodule's gitlink). It carries out; the decisions
//! about what it finds are in `plan::review`.
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

use crate::config::values::{CommitId, GitTag};
use crate::exec::gitlab::Token;
use crate::plan::review::{FileAt, TreeChange};
use crate::secret::Secret;

/// A tag resolved to the commit it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTag {
    pub tag: String,
    pub commit: String,
}

/// Who berth is to a git remote over HTTP.
#[derive(Debug, Clone, Copy)]
pub enum GitAuth<'a> {
    /// A GitLab access token or the job token.
    Token(&'a Token),
    /// A user name and password, e.g. a deploy token
    /// (`BERTH_CODE_USER` / `BERTH_CODE_TOKEN`).
    Basic { user: &'a str, secret: &'a Secret },
}

/// Runs `work` with `auth` as the `Authorization` of every git request it
/// makes, and forgets it afterwards.
fn authorized<T>(auth: GitAuth<'_>, work: impl FnOnce() -> Result<T>) -> Result<T> {
    register_transport();
    *AUTHORIZATION.lock().unwrap_or_else(|e| e.into_inner()) = Some(basic_auth(auth));
    let result = work();
    *AUTHORIZATION.lock().unwrap_or_else(|e| e.into_inner()) = None;
    result
}

/// Fetches `tag` from `url` into the repository at `dir` (created when
/// missing) and checks its commit out, detached, discarding local changes.
/// The caller compares the commit with the approved one.
pub fn checkout_tag(dir: &Path, url: &str, auth: GitAuth<'_>, tag: &GitTag) -> Result<ResolvedTag> {
    authorized(auth, || fetch_and_checkout(dir, url, tag))
}

/// The commit `tag` names on the remote at `url` (peeled through an
/// annotated tag), or `None` when there is no such tag. Only the ref
/// advertisement is read; nothing is downloaded.
pub fn remote_tag_commit(url: &str, auth: GitAuth<'_>, tag: &GitTag) -> Result<Option<String>> {
    authorized(auth, || {
        let scratch = tempfile::tempdir().context("create a scratch directory")?;
        let repo =
            git2::Repository::init_bare(scratch.path()).context("create a scratch repository")?;
        let mut remote = repo.remote_anonymous(url)?;
        remote
            .connect(git2::Direction::Fetch)
            .map_err(|e| anyhow::anyhow!("list the tags of {url}: {}", e.message()))?;
        let name = format!("refs/tags/{}", tag.as_str());
        let peeled = format!("{name}^{{}}");
        let heads = remote
            .list()
            .map_err(|e| anyhow::anyhow!("list the tags of {url}: {}", e.message()))?;
        let direct = heads.iter().find(|h| h.name() == name).map(|h| h.oid());
        let through = heads.iter().find(|h| h.name() == peeled).map(|h| h.oid());
        Ok(through.or(direct).map(|oid| oid.to_string()))
    })
}

/// A code repository fetched into a scratch directory, to compare two
/// releases without GitLab's API.
pub struct Fetched {
    repo: git2::Repository,
    _dir: tempfile::TempDir,
}

/// Fetches `tags` (and, when they are not reachable from those, the
/// `extra` commits by id) from `url` into a scratch bare repository.
/// Tags that do not exist and commits the server will not give are left
/// out; the comparison says what is missing.
pub fn fetch_for_compare(
    url: &str,
    auth: GitAuth<'_>,
    tags: &[&GitTag],
    extra: &[&CommitId],
) -> Result<Fetched> {
    authorized(auth, || {
        let dir = tempfile::tempdir().context("create a scratch directory")?;
        let repo =
            git2::Repository::init_bare(dir.path()).context("create a scratch repository")?;
        {
            let mut remote = repo.remote_anonymous(url)?;
            let mut options = git2::FetchOptions::new();
            options.download_tags(git2::AutotagOption::None);
            remote
                .connect(git2::Direction::Fetch)
                .map_err(|e| anyhow::anyhow!("list the tags of {url}: {}", e.message()))?;
            let advertised: Vec<String> = remote
                .list()
                .map_err(|e| anyhow::anyhow!("list the tags of {url}: {}", e.message()))?
                .iter()
                .map(|h| h.name().to_string())
                .collect();
            remote.disconnect()?;
            let refspecs: Vec<String> = tags
                .iter()
                .map(|t| format!("refs/tags/{}", t.as_str()))
                .filter(|name| advertised.contains(name))
                .map(|name| format!("+{name}:{name}"))
                .collect();
            if !refspecs.is_empty() {
                remote
                    .fetch(&refspecs, Some(&mut options), None)
                    .map_err(|e| anyhow::anyhow!("fetch from {url}: {}", e.message()))?;
            }
            for commit in extra {
                let present = git2::Oid::from_str(commit.as_str())
                    .ok()
                    .and_then(|oid| repo.find_commit(oid).ok())
                    .is_some();
                if !present {
                    // A server that refuses a want by id is not an error:
                    // the commit is then reported as unavailable.
                    let _ = remote.fetch(&[commit.as_str()], Some(&mut options), None);
                }
            }
        }
        Ok(Fetched { repo, _dir: dir })
    })
}

impl Fetched {
    /// The file at `path` in commit `id`, as [`LocalRepo::file`] reads it;
    /// `Missing` too when the commit was not fetched.
    pub fn file(&self, id: &CommitId, path: &str, max_bytes: usize) -> Result<FileAt> {
        let Some(commit) = git2::Oid::from_str(id.as_str())
            .ok()
            .and_then(|oid| self.repo.find_commit(oid).ok())
        else {
            return Ok(FileAt::Missing);
        };
        file_in(&self.repo, &commit, path, max_bytes)
    }

    /// The commits in `to` but not in `from`, newest first, and the files
    /// changed from their merge base to `to` (GitLab's compare), or `None`
    /// when either commit is not in the fetched repository.
    pub fn compare(&self, from: &CommitId, to: &CommitId) -> Result<Option<Comparison>> {
        let repo = &self.repo;
        let find = |id: &CommitId| {
            git2::Oid::from_str(id.as_str())
                .ok()
                .and_then(|oid| repo.find_commit(oid).ok())
        };
        let (Some(old), Some(new)) = (find(from), find(to)) else {
            return Ok(None);
        };
        let mut walk = repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        walk.push(new.id())?;
        walk.hide(old.id())?;
        let mut commits = Vec::new();
        for oid in walk {
            let commit = repo.find_commit(oid?)?;
            commits.push(CommitSummary {
                id: commit.id().to_string(),
                title: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                    .into_owned(),
                author: String::from_utf8_lossy(commit.author().name_bytes()).into_owned(),
            });
        }
        let base = repo
            .merge_base(old.id(), new.id())
            .ok()
            .and_then(|oid| repo.find_commit(oid).ok());
        let base_tree = match &base {
            Some(commit) => Some(commit.tree()?),
            None => None,
        };
        let mut diff = repo.diff_tree_to_tree(base_tree.as_ref(), Some(&new.tree()?), None)?;
        diff.find_similar(None)?;
        let files = diff
            .deltas()
            .map(|delta| {
                let path = |file: git2::DiffFile<'_>| {
                    file.path()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                let change = match delta.status() {
                    git2::Delta::Added => FileDelta::Added,
                    git2::Delta::Deleted => FileDelta::Deleted,
                    git2::Delta::Renamed => FileDelta::Renamed,
                    _ => FileDelta::Modified,
                };
                ChangedPath {
                    change,
                    old_path: path(delta.old_file()),
                    new_path: path(delta.new_file()),
                }
            })
            .collect();
        Ok(Some(Comparison { commits, files }))
    }
}

/// One commit between two releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub id: String,
    pub title: String,
    pub author: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDelta {
    Added,
    Modified,
    Deleted,
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedPath {
    pub change: FileDelta,
    pub old_path: String,
    pub new_path: String,
}

/// Commits and files between two releases of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub commits: Vec<CommitSummary>,
    pub files: Vec<ChangedPath>,
}

/// The management repository checked out for this job, read as git
/// objects rather than through the work tree: what a commit holds, not
/// what a symlink or a leftover file in the directory says.
pub struct LocalRepo {
    repo: git2::Repository,
}

impl LocalRepo {
    pub fn open(dir: &Path) -> Result<LocalRepo> {
        let repo = git2::Repository::open(dir).with_context(|| {
            format!(
                "{} is not a git checkout of the management repository",
                dir.display()
            )
        })?;
        Ok(LocalRepo { repo })
    }

    fn commit(&self, id: &str) -> Result<git2::Commit<'_>> {
        let oid = git2::Oid::from_str(id).with_context(|| format!("{id:?} is not a commit id"))?;
        self.repo.find_commit(oid).with_context(|| {
            format!(
                "commit {id} is not in this checkout (a shallow clone? the job needs GIT_DEPTH: 0)"
            )
        })
    }

    /// The first parent of `id`, if it has one.
    pub fn first_parent(&self, id: &str) -> Result<Option<String>> {
        let commit = self.commit(id)?;
        Ok(commit.parent_ids().next().map(|oid| oid.to_string()))
    }

    /// Every path whose entry differs between the trees of `base` and
    /// `head` (renames are not paired: a rename is a deletion and an
    /// addition), with the git file modes on both sides.
    pub fn changes(&self, base: &str, head: &str) -> Result<Vec<TreeChange>> {
        let base_tree = self.commit(base)?.tree()?;
        let head_tree = self.commit(head)?.tree()?;
        let mut options = git2::DiffOptions::new();
        options.include_typechange(true).ignore_submodules(false);
        let diff =
            self.repo
                .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut options))?;
        Ok(diff
            .deltas()
            .map(|delta| {
                let side = |file: git2::DiffFile<'_>| {
                    let mode: u32 = i32::from(file.mode()) as u32;
                    (mode != 0).then_some(mode)
                };
                let path = delta
                    .new_file()
                    .path()
                    .or_else(|| delta.old_file().path())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                TreeChange {
                    path,
                    old_mode: side(delta.old_file()),
                    new_mode: side(delta.new_file()),
                }
            })
            .collect())
    }

    /// The file at `path` in commit `id`: its mode and, for a regular file
    /// no larger than `max_bytes`, its bytes.
    pub fn file(&self, id: &str, path: &str, max_bytes: usize) -> Result<FileAt> {
        file_in(&self.repo, &self.commit(id)?, path, max_bytes)
    }
}

fn file_in(
    repo: &git2::Repository,
    commit: &git2::Commit<'_>,
    path: &str,
    max_bytes: usize,
) -> Result<FileAt> {
    let tree = commit.tree()?;
    let Ok(entry) = tree.get_path(Path::new(path)) else {
        return Ok(FileAt::Missing);
    };
    let mode = entry.filemode() as u32;
    if mode != 0o100644 && mode != 0o100755 {
        return Ok(FileAt::NotRegular { mode });
    }
    let (size, _) = repo.odb()?.read_header(entry.id())?;
    if size > max_bytes {
        return Ok(FileAt::TooLarge { size });
    }
    let blob = repo.find_blob(entry.id())?;
    Ok(FileAt::Regular {
        mode,
        bytes: blob.content().to_vec(),
    })
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

/// One entry of a commit built in memory.
pub enum Entry {
    File(Vec<u8>),
    /// A submodule: the commit of the other repository it points at.
    Gitlink(String),
}

/// Pushes a root commit holding `entries` (top-level names only) as
/// `branch` of the empty repository at `url`; returns the commit id.
///
/// GitLab's commits API writes files only, and its submodule API moves an
/// existing gitlink but cannot add one, so a repository whose first
/// commit has a submodule is pushed. A branch that appeared meanwhile is
/// not overwritten: the push is refused.
pub fn push_root_commit(
    url: &str,
    token: &Token,
    branch: &str,
    entries: &[(&str, Entry)],
    message: &str,
    author: (&str, &str),
) -> Result<String> {
    authorized(GitAuth::Token(token), || {
        build_and_push(url, branch, entries, message, author)
    })
}

fn build_and_push(
    url: &str,
    branch: &str,
    entries: &[(&str, Entry)],
    message: &str,
    (name, email): (&str, &str),
) -> Result<String> {
    let scratch = tempfile::tempdir().context("create a scratch directory")?;
    let repo =
        git2::Repository::init_bare(scratch.path()).context("create a scratch repository")?;
    let mut tree = repo.treebuilder(None)?;
    for (path, entry) in entries {
        anyhow::ensure!(!path.contains('/'), "{path}: only top-level entries");
        match entry {
            Entry::File(bytes) => {
                let blob = repo.blob(bytes)?;
                tree.insert(path, blob, 0o100644)?;
            }
            Entry::Gitlink(commit) => {
                let oid = git2::Oid::from_str(commit)
                    .with_context(|| format!("{path}: {commit:?} is not a commit id"))?;
                tree.insert(path, oid, 0o160000)?;
            }
        }
    }
    let tree = repo.find_tree(tree.write()?)?;
    let signature = git2::Signature::now(name, email)?;
    let local = format!("refs/heads/{branch}");
    let commit = repo.commit(Some(&local), &signature, &signature, message, &tree, &[])?;
    let rejected: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.push_update_reference(|reference, status| {
        if let Some(status) = status {
            *rejected.borrow_mut() = Some(format!("{reference}: {status}"));
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    let mut remote = repo.remote_anonymous(url)?;
    remote
        .push(&[format!("{local}:{local}")], Some(&mut options))
        .map_err(|e| anyhow::anyhow!("push {branch} to {url}: {}", e.message()))?;
    drop(remote);
    drop(options);
    if let Some(why) = rejected.into_inner() {
        anyhow::bail!("push {branch} to {url}: refused: {why}");
    }
    Ok(commit.to_string())
}

/// The `Authorization` header for the fetch in progress. libgit2 builds
/// transports through a global registry, so the header is passed this way.
static AUTHORIZATION: Mutex<Option<String>> = Mutex::new(None);

fn basic_auth(auth: GitAuth<'_>) -> String {
    use base64::Engine;
    let (user, secret) = match auth {
        GitAuth::Token(Token::Private(secret)) => ("oauth2", secret.expose()),
        GitAuth::Token(Token::Job(secret)) => ("gitlab-ci-token", secret.expose()),
        GitAuth::Basic { user, secret } => (user, secret.expose()),
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

/// git's smart HTTP protocol (fetch, and the push of a new repository's
/// first commit) over reqwest.
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
                service: "git-upload-pack",
                body: Vec::new(),
            },
            Service::ReceivePackLs => {
                HttpStream::Get(format!("{base}/info/refs?service=git-receive-pack"))
            }
            Service::ReceivePack => HttpStream::Post {
                url: format!("{base}/git-receive-pack"),
                service: "git-receive-pack",
                body: Vec::new(),
            },
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
    Post {
        url: String,
        service: &'static str,
        body: Vec<u8>,
    },
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
            HttpStream::Post { url, service, body } => {
                let path = url_path(&url);
                let builder = self
                    .http
                    .post(url)
                    .header("Content-Type", format!("application/x-{service}-request"))
                    .header("Accept", format!("application/x-{service}-result"))
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
