"""Smart HTTP git serving through ``git http-backend``, with GitLab's auth.

URLs are ``/<namespace path>/<project path>.git/...`` as on GitLab.  HTTP
basic auth carries a token as the password: a personal/project/group access
token with any user name (``oauth2`` is customary), a job token with the
user name ``gitlab-ci-token``, or a deploy token with its own user name (for
its own project only; fetch with ``read_repository``, never push).  Rules (as
GitLab answers git clients):

- no credentials on a non-public repository, or a push without credentials,
  or wrong credentials: 401 with ``WWW-Authenticate: Basic realm="GitLab"``;
- valid credentials but the project is not visible: 404;
- visible but no right to read code (Guest on private): 403;
- push below Developer, with a read-only token scope, or with a job token
  (unless the project allows job-token pushes): 403.

Protected branches and tags are enforced by a ``pre-receive`` hook installed
in every repository; the server passes the pusher's level and the project's
protection rules to it in the ``FAKE_GITLAB_PUSH`` environment variable, and
it rejects with GitLab's messages.
"""

import base64
import json
import os
import re
import subprocess

from .gitrepo import git_env, now_iso
from .state import DEVELOPER, Auth

GIT_PATH = re.compile(r"^/(?P<repo>[^?]+?)\.git(?P<rest>/.*)$")

DENIED = ("HTTP Basic: Access denied. If a password was provided for Git authentication, the password was "
          "incorrect or you're required to use a token instead of a password. If a token was provided, it was "
          "either incorrect, expired, or improperly scoped.\n")
NOT_FOUND = "The project you were looking for could not be found or you don't have permission to view it.\n"

PRE_RECEIVE = r'''#!/usr/bin/python3
"""pre-receive hook of the fake GitLab: protected branches and tags."""
import json, os, re, subprocess, sys
ZERO = "0" * 40
rules = json.loads(os.environ.get("FAKE_GITLAB_PUSH") or "null")
if rules is None:
    sys.exit(0)
def match(pattern, name):
    return re.match("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", name) is not None
def allowed(levels):
    return any(l != 0 and rules["level"] >= l for l in levels)
def deny(msg):
    sys.stderr.write("GitLab: " + msg + "\n")
    sys.exit(1)
for line in sys.stdin:
    old, new, ref = line.split()
    if ref.startswith("refs/heads/"):
        name = ref[len("refs/heads/"):]
        hits = [r for r in rules["protected_branches"] if match(r["name"], name)]
        if not hits:
            continue
        if new == ZERO:
            deny("You can only delete protected branches using the web interface.")
        if not any(allowed(r["push"]) for r in hits):
            deny("You are not allowed to push code to protected branches on this project.")
        if old != ZERO and subprocess.run(["git", "merge-base", "--is-ancestor", old, new]).returncode != 0 \
                and not any(r["allow_force_push"] for r in hits):
            deny("You are not allowed to force push code to a protected branch on this project.")
    elif ref.startswith("refs/tags/"):
        name = ref[len("refs/tags/"):]
        hits = [r for r in rules["protected_tags"] if match(r["name"], name)]
        if not hits:
            continue
        if new == ZERO:
            if rules["level"] < 40:
                deny("You are not allowed to delete protected tags from this project. "
                     "Only a project maintainer or owner can delete a protected tag.")
        elif old != ZERO:
            deny("Protected tags cannot be updated.")
        elif not any(allowed(r["create"]) for r in hits):
            deny("You are not allowed to create this tag as it is protected.")
    elif ref.startswith("refs/merge-requests/") or ref.startswith("refs/pipelines/") \
            or ref.startswith("refs/environments/"):
        deny("You cannot push to " + ref.split("/")[1] + " refs.")  # GitLab-managed namespaces
sys.exit(0)
'''


def is_git_path(path):
    return GIT_PATH.match(path) is not None


def install_hooks(repo_path):
    hook = os.path.join(repo_path, "hooks", "pre-receive")
    os.makedirs(os.path.dirname(hook), exist_ok=True)
    with open(hook, "w") as f:
        f.write(PRE_RECEIVE)
    os.chmod(hook, 0o755)


def _credentials(headers):
    authz = headers.get("Authorization") or ""
    if not authz.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(authz[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return ("", "")
    return user, password


def _authenticate(state, creds, project):
    """Auth for a git client, or None if the credentials are wrong.

    As ``Gitlab::Auth.find_for_git_client``: a job token (user ``gitlab-ci-token``), then a
    personal/project/group access token (any user name), then a deploy token, which counts
    only with its own user name and only for its own project (``deploy_token_check``:
    ``return if project && !token.has_access_to?(project)``), else the credentials fail.
    """
    if creds is None:
        return Auth()
    login, password = creds
    if login == "gitlab-ci-token":
        job = state.job_by_token(password)
        if job is None or job.status != "running":
            return None
        return Auth(state.users[job.user_id], "job", password, ("read_repository",), job)
    tok = state.tokens.get(password)
    if tok is not None:
        if not tok.active() or state.users[tok.user_id].state != "active":
            return None
        tok.last_used_at = now_iso()
        return Auth(state.users[tok.user_id], "oauth" if login == "oauth2" else "private", password,
                    tuple(tok.scopes), token_obj=tok)
    from .api_tokens import deploy_token_for_git
    deploy = deploy_token_for_git(state, login, password, project)
    if deploy is None:
        return None
    return Auth(None, "deploy", password, tuple(deploy.scopes), deploy_token=deploy)


def _reply(handler, status, text, headers=None):
    handler.send(status, text.encode(), "text/plain; charset=utf-8", headers)
    return status


def serve(handler, method, raw_path, query, body, entry):
    state = handler.server.state
    m = GIT_PATH.match(raw_path)
    rest = m.group("rest")
    write = rest == "/git-receive-pack" or (rest == "/info/refs" and "service=git-receive-pack" in query)
    challenge = {"WWW-Authenticate": 'Basic realm="GitLab"'}
    with state.lock:
        p = state.project_by_ref(m.group("repo"))
        auth = _authenticate(state, _credentials(handler.headers), p)
        if auth is None:
            return _reply(handler, 401, DENIED, challenge)
        entry.update(token=auth.token, token_kind=auth.kind and f"basic-{auth.kind}",
                     user=auth.user.username if auth.user else (auth.deploy_token.username
                                                                if auth.deploy_token else None))
        if auth.deploy_token is not None:
            # Gitlab::GitAccess#check_authentication_abilities!: a deploy token's abilities come
            # from its scopes (read_repository -> download_code); it never has push_code.
            if write:
                return _reply(handler, 403, "You are not allowed to upload code.\n")
            if "read_repository" not in auth.scopes:
                return _reply(handler, 403, "You are not allowed to download code.\n")
        if p is not None and auth.kind == "job" and auth.job.project_id not in p.job_token_allowlist:
            p = None   # job token scope: the job's project is not on this project's allowlist
        visible = p is not None and (auth.deploy_token is not None or state.visible(auth, p))
        if auth.user is None and auth.deploy_token is None and (write or not visible):
            return _reply(handler, 401, "HTTP Basic: Access denied\n", challenge)
        if not visible:
            return _reply(handler, 404, NOT_FOUND)
        scopes = set(auth.scopes)
        if auth.kind in ("private", "oauth") and not scopes & {"api", "read_repository", "write_repository"}:
            return _reply(handler, 403, "You are not allowed to download code from this project.\n")
        if auth.deploy_token is None and not state.can_read_code(auth, p):
            return _reply(handler, 403, "You are not allowed to download code from this project.\n")
        level = state.project_level(auth.user, p)
        if write:
            if auth.kind == "job" and not (p.settings.get("ci_push_repository_for_job_token_allowed")
                                           and auth.job.project_id == p.id):
                return _reply(handler, 403, "You are not allowed to push code to this project.\n")
            if auth.kind in ("private", "oauth") and not scopes & {"api", "write_repository"}:
                return _reply(handler, 403, "You are not allowed to push code to this project.\n")
            if level < DEVELOPER:
                return _reply(handler, 403, "You are not allowed to push code to this project.\n")
        rules = {
            "level": level,
            "protected_branches": [{"name": r["name"], "push": [l["access_level"] for l in r["push_access_levels"]],
                                    "allow_force_push": r["allow_force_push"]} for r in p.protected_branches],
            "protected_tags": [{"name": r["name"], "create": [l["access_level"] for l in r["create_access_levels"]]}
                               for r in p.protected_tags],
        }
        repo_rel = os.path.relpath(p.repo.path, state.repos_dir)
    env = git_env({
        "GIT_PROJECT_ROOT": state.repos_dir, "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": "/" + repo_rel + rest, "QUERY_STRING": query, "REQUEST_METHOD": method,
        "CONTENT_TYPE": handler.headers.get("Content-Type") or "", "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": auth.user.username if auth.user else "", "REMOTE_ADDR": handler.client_address[0],
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol") or "",
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding") or "",
        "FAKE_GITLAB_PUSH": json.dumps(rules),
    })
    if not env["REMOTE_USER"]:
        del env["REMOTE_USER"]
    proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout
    sep = out.find(b"\r\n\r\n")
    sep_len = 4
    if sep < 0:
        sep, sep_len = out.find(b"\n\n"), 2
    if sep < 0:
        return _reply(handler, 500, "git http-backend failed: " + proc.stderr.decode("utf-8", "replace"))
    status, headers, ctype = 200, {}, "application/octet-stream"
    for line in out[:sep].decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key.lower() == "content-type":
            ctype = value
        elif key:
            headers[key] = value
    handler.send(status, out[sep + sep_len:], ctype, headers)
    if write and method == "POST":
        with state.lock:
            state.after_ref_change(p)
    return status
