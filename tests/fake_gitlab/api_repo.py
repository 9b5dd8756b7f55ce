"""Repository endpoints, backed by git plumbing (gitlab.md section 3, 5.1, 7).

Files (get/HEAD/raw/create/update/delete), commits (create with actions,
list, get, diff, statuses), tags, protected tags, branches, protected
branches, compare, tree, submodule update, and commit statuses.

``write_commit`` is the one place that makes commits for the API.  It follows
``Files::MultiService``: start point (``start_branch``/``start_sha``/branch),
per-action checks against the *start branch* -- including the per-file
``last_commit_id`` optimistic lock, compared with the last commit that touched
that path, not with the branch head -- then one commit and a compare-and-swap
of the branch ref.  It runs under the state lock, so concurrent writers of the
same file with the same ``last_commit_id`` see exactly one winner -- provided
the winner's write changes the file: an update that leaves its bytes as they
are still makes a commit (as Gitaly does) but does not touch the path, so the
path's last commit, and with it the lock, stays where it was (as in GitLab).
"""

import base64
import hashlib
import re

from . import entities as E
from . import errors
from .api_core import authorize, authorize_code, find_project
from .gitrepo import SHA_RE, GitError, now_iso
from .routing import paginate, router
from .state import DEVELOPER, MAINTAINER, PROTECT_DESCRIPTIONS

PROTECT_LEVELS = (0, 30, 40, 60)
COMMIT_ACTIONS = ("create", "delete", "move", "update", "chmod")


class CommitFailed(Exception):
    pass


def _author(ctx):
    u = ctx.auth.user
    return (ctx.params.str("author_name") or u.name, ctx.params.str("author_email") or u.email), (u.name, u.email)


def _push_check(ctx, p, branch):
    authorize(ctx, p, DEVELOPER)
    if not ctx.state.can_push_branch(ctx.auth.user, p, branch):
        raise errors.forbidden("You are not allowed to push into this branch")


def _content(action, key="content"):
    content = action.get(key)
    if content is None:
        return None
    if isinstance(content, (dict, list)):
        raise errors.invalid(key)
    if (action.get("encoding") or "text") == "base64":
        try:
            return base64.b64decode(str(content), validate=False)
        except ValueError:
            raise errors.bad_request("Invalid base64")
    return str(content).encode("utf-8")


def write_commit(ctx, p, branch, message, actions, start_branch=None, start_sha=None, force=False,
                 changed_msg="The file has changed since you started editing it: {path}", mode="multi"):
    """Create one commit on ``branch``; returns the new commit SHA.

    ``actions``: dicts with action, file_path, previous_path, content,
    encoding, last_commit_id, execute_filemode (as the commits API takes them).
    """
    repo = p.repo
    if start_branch and start_sha:
        raise errors.bad_request("You can't pass both start_branch and start_sha")
    branch_sha = repo.branch_sha(branch)
    empty = repo.is_empty()
    if start_sha:
        if not SHA_RE.match(start_sha) or repo.commit_sha(start_sha) is None:
            raise errors.bad_request(f"Invalid start_sha: {start_sha}" if SHA_RE.match(start_sha or "")
                                     else "start_sha is invalid")
        start = start_sha
    else:
        start = repo.branch_sha(start_branch or branch)
        if start is None and not empty:
            raise errors.bad_request("You can only create or edit files when you are on a branch")
    different = bool(start_sha) or (start_branch is not None and start_branch != branch)
    if different and branch_sha is not None and not force:
        raise errors.bad_request(
            f"A branch called '{branch}' already exists. Switch to that branch in order to make changes")
    if not repo.valid_ref_name("heads", branch):
        raise errors.bad_request(f"Branch name is invalid")

    files = repo.flat_tree(start)
    original = dict(files)
    for a in actions:
        kind = a.get("action")
        path = str(a.get("file_path") or "").strip("/")
        prev = str(a.get("previous_path") or "").strip("/") or None
        # the optimistic lock: last commit that touched this path on the start point
        lock = a.get("last_commit_id")
        if lock:
            checked = prev if (kind == "move" and prev) else path
            last = repo.last_commit_for_path(start, checked) if start else None
            if last and last != str(lock):
                raise errors.bad_request(changed_msg.format(path=path))
        if mode == "multi" and kind != "create":
            # validate_file_exists!: against the start point, before anything is applied
            target = prev if (kind == "move" and prev) else path
            if target not in original and not any(k.startswith(target + "/") for k in original):
                raise errors.bad_request("A file with this name doesn't exist")
        exists = path in files
        is_dir = any(k.startswith(path + "/") for k in files)
        if kind == "create":
            if exists:
                raise errors.bad_request("A file with this name already exists")
            if is_dir:
                raise errors.bad_request("A directory with this name already exists")
            parts = path.split("/")
            if any("/".join(parts[:i]) in files for i in range(1, len(parts))):
                raise errors.bad_request("A file with this name already exists")
            files[path] = ("100755" if a.get("execute_filemode") in (True, "true") else "100644",
                           repo.hash_blob(_content(a) or b""))
        elif kind == "update":
            if not exists:
                raise errors.bad_request("A file with this name doesn't exist")
            mode_, _ = files[path]
            files[path] = (mode_, repo.hash_blob(_content(a) or b""))
        elif kind == "delete":
            if not exists:
                raise errors.bad_request("A file with this name doesn't exist")
            del files[path]
        elif kind == "move":
            if not prev or prev not in files:
                raise errors.bad_request("A file with this name doesn't exist")
            if exists and prev != path:
                raise errors.bad_request("A file with this name already exists")
            mode_, sha = files.pop(prev)
            body = _content(a)
            files[path] = (mode_, repo.hash_blob(body) if body is not None else sha)
        elif kind == "chmod":
            if not exists:
                raise errors.bad_request("A file with this name doesn't exist")
            _, sha = files[path]
            files[path] = ("100755" if a.get("execute_filemode") in (True, "true") else "100644", sha)
        else:
            raise errors.invalid("actions[action]", "does not have a valid value")
    author, committer = _author(ctx)
    tree = repo.write_tree(files)
    new = repo.commit_tree(tree, [start] if start else [], message, author, committer)
    try:
        repo.update_ref(f"refs/heads/{branch}", new, branch_sha or "")
    except GitError:
        raise errors.bad_request("Could not update branch: it was changed by someone else (try again)")
    ctx.state.after_ref_change(p)
    return new


def stats(repo, sha):
    c = repo.commit(sha)
    base = c["parent_ids"][0] if c["parent_ids"] else repo.text("hash-object", "-t", "tree", "/dev/null").strip()
    adds = dels = 0
    for line in repo.text("diff", "--numstat", base, sha).splitlines():
        a, d, _ = line.split("\t", 2)
        adds += int(a) if a.isdigit() else 0
        dels += int(d) if d.isdigit() else 0
    return {"additions": adds, "deletions": dels, "total": adds + dels}


def commit_entity(ctx, p, sha, with_stats=True):
    return E.commit(ctx.state, p, p.repo.commit(sha), stats(p.repo, sha) if with_stats else None)


# -- commits API -------------------------------------------------------------------------
@router.add("POST", "/projects/:id/repository/commits")
def create_commit(ctx, id):
    p = find_project(ctx, id)
    ctx.params.require("branch", "commit_message", "actions")
    branch = ctx.params.str("branch")
    _push_check(ctx, p, branch)
    actions = ctx.params.list("actions")
    if not actions:
        raise errors.ApiError(400, {"error": "actions is empty"})
    for a in actions:
        if not isinstance(a, dict):
            raise errors.invalid("actions")
        if not a.get("action"):
            raise errors.missing("actions[action]")
        if a.get("action") not in COMMIT_ACTIONS:
            raise errors.invalid("actions[action]", "does not have a valid value")
        if not a.get("file_path"):
            raise errors.missing("actions[file_path]")
    new = write_commit(ctx, p, branch, ctx.params.str("commit_message"), actions,
                       ctx.params.str("start_branch"), ctx.params.str("start_sha"),
                       bool(ctx.params.bool("force", False)))
    return 201, commit_entity(ctx, p, new, ctx.params.bool("stats", True))


@router.add("GET", "/projects/:id/repository/commits")
def list_commits(ctx, id):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    repo = p.repo
    if repo.is_empty():
        return paginate(ctx, [])
    args = []
    if ctx.params.bool("all"):
        args.append("--all")
    else:
        ref = ctx.params.str("ref_name") or p.default_branch
        if ".." in ref:
            args.append(ref)
        else:
            sha = repo.commit_sha(ref)
            if sha is None:
                raise errors.not_found("Commit")   # unknown ref_name
            args.append(sha)
    for key, opt in (("since", "--since"), ("until", "--until")):
        if ctx.params.str(key):
            args.append(f"{opt}={ctx.params.str(key)}")
    if ctx.params.bool("first_parent"):
        args.append("--first-parent")
    path = ctx.params.str("path")
    shas = repo.text("rev-list", *args, "--", *([path] if path else [])).split()
    page = paginate(ctx, shas)
    with_stats = ctx.params.bool("with_stats", False)
    return [E.commit(ctx.state, p, c, stats(repo, c["id"]) if with_stats else None) for c in repo.commits(page)]


def _find_commit(ctx, p, ref):
    sha = p.repo.commit_sha(ref) if not p.repo.is_empty() else None
    if sha is None:
        raise errors.not_found("Commit")
    return sha


@router.add("GET", "/projects/:id/repository/commits/:sha")
def get_commit(ctx, id, sha):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    return commit_entity(ctx, p, _find_commit(ctx, p, sha), ctx.params.bool("stats", True))


@router.add("GET", "/projects/:id/repository/commits/:sha/diff")
def get_commit_diff(ctx, id, sha):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    full = _find_commit(ctx, p, sha)
    c = p.repo.commit(full)
    return paginate(ctx, p.repo.diffs(c["parent_ids"][0] if c["parent_ids"] else None, full))


# -- repository files ------------------------------------------------------------------------
def _file_lookup(ctx, p, file_path, ref):
    repo = p.repo
    commit = repo.commit_sha(ref) if not repo.is_empty() else None
    if commit is None:
        raise errors.not_found("Commit")
    entry = repo.entry(commit, file_path)
    if entry is None or entry[1] != "blob":
        raise errors.not_found("File")
    mode, _typ, blob_id = entry
    data = repo.blob(blob_id)
    last = repo.last_commit_for_path(commit, file_path)
    meta = {"file_name": file_path.rsplit("/", 1)[-1], "file_path": file_path, "size": len(data),
            "encoding": "base64", "content_sha256": hashlib.sha256(data).hexdigest(), "ref": ref,
            "blob_id": blob_id, "commit_id": commit, "last_commit_id": last,
            "execute_filemode": mode == "100755"}
    ctx.headers.update({
        "X-Gitlab-Blob-Id": blob_id, "X-Gitlab-Commit-Id": commit, "X-Gitlab-Content-Sha256": meta["content_sha256"],
        "X-Gitlab-Encoding": "base64", "X-Gitlab-File-Name": meta["file_name"], "X-Gitlab-File-Path": file_path,
        "X-Gitlab-Last-Commit-Id": last or "", "X-Gitlab-Ref": ref, "X-Gitlab-Size": str(len(data)),
        "X-Gitlab-Execute-Filemode": "true" if meta["execute_filemode"] else "false"})
    return meta, data


@router.add("GET", "/projects/:id/repository/files/:file_path")
def get_file(ctx, id, file_path):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    ctx.params.require("ref")
    meta, data = _file_lookup(ctx, p, file_path, ctx.params.str("ref"))
    meta["content"] = base64.b64encode(data).decode()
    return meta


@router.add("GET", "/projects/:id/repository/files/:file_path/raw")
def get_file_raw(ctx, id, file_path):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    _meta, data = _file_lookup(ctx, p, file_path, ctx.params.str("ref") or p.default_branch)
    try:
        data.decode("utf-8")
        ctx.content_type = "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        ctx.content_type = "application/octet-stream"
    return 200, data


def _file_write(ctx, id, file_path, action):
    p = find_project(ctx, id)
    ctx.params.require("branch", "commit_message")
    if action in ("create", "update"):
        ctx.params.require("content")
    branch = ctx.params.str("branch")
    _push_check(ctx, p, branch)
    act = {"action": action, "file_path": file_path, "content": ctx.params.raw("content"),
           "encoding": ctx.params.str("encoding", "text"), "last_commit_id": ctx.params.str("last_commit_id"),
           "execute_filemode": ctx.params.bool("execute_filemode")}
    changed = {"update": "You are attempting to update a file that has changed since you started editing it.",
               "delete": "You are attempting to delete a file that has been previously updated.",
               "create": "You are attempting to update a file that has changed since you started editing it."}[action]
    write_commit(ctx, p, branch, ctx.params.str("commit_message"), [act], ctx.params.str("start_branch"),
                 None, False, changed_msg=changed, mode="single")
    return {"file_path": file_path, "branch": branch}


@router.add("POST", "/projects/:id/repository/files/:file_path")
def create_file(ctx, id, file_path):
    return 201, _file_write(ctx, id, file_path, "create")


@router.add("PUT", "/projects/:id/repository/files/:file_path")
def update_file(ctx, id, file_path):
    return 200, _file_write(ctx, id, file_path, "update")


@router.add("DELETE", "/projects/:id/repository/files/:file_path")
def delete_file(ctx, id, file_path):
    _file_write(ctx, id, file_path, "delete")
    return 204, None


@router.add("GET", "/projects/:id/repository/tree")
def get_tree(ctx, id):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    if p.repo.is_empty():
        return paginate(ctx, [])
    commit = p.repo.commit_sha(ctx.params.str("ref") or p.default_branch)
    if commit is None:
        raise errors.not_found("Tree")
    items = p.repo.ls_tree(commit, ctx.params.str("path", ""), bool(ctx.params.bool("recursive", False)))
    if items is None:
        raise errors.ApiError(404, {"message": "404 invalid revision or path Not Found"})
    order = {"tree": 0, "blob": 1, "commit": 2}
    items.sort(key=lambda i: (order.get(i["type"], 3), i["path"]))
    return paginate(ctx, items)


# -- tags ------------------------------------------------------------------------------------
def _version_key(name):
    return [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in re.split(r"(\d+)", name) if x]


@router.add("GET", "/projects/:id/repository/tags")
def list_tags(ctx, id):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    tags = list(p.repo.tags().values())
    search = ctx.params.str("search")
    if search:
        if search.startswith("^"):
            tags = [t for t in tags if t["name"].startswith(search[1:])]
        elif search.endswith("$"):
            tags = [t for t in tags if t["name"].endswith(search[:-1])]
        else:
            tags = [t for t in tags if search in t["name"]]
    order = ctx.params.values("order_by", ("name", "updated", "version"), "updated")
    desc = ctx.params.values("sort", ("asc", "desc"), "desc") == "desc"
    if order == "name":
        tags.sort(key=lambda t: t["name"], reverse=desc)
    elif order == "version":
        tags.sort(key=lambda t: _version_key(t["name"]), reverse=desc)
    else:
        dates = {c["id"]: c["committed_date"] for c in p.repo.commits(sorted({t["commit"] for t in tags}))}
        tags.sort(key=lambda t: (dates.get(t["commit"]) or "", t["name"]), reverse=desc)
    return [E.tag(ctx.state, p, t) for t in paginate(ctx, tags)]


@router.add("GET", "/projects/:id/repository/tags/:tag_name")
def get_tag(ctx, id, tag_name):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    t = p.repo.tags().get(tag_name)
    if t is None:
        raise errors.not_found("Tag")
    return E.tag(ctx.state, p, t)


@router.add("POST", "/projects/:id/repository/tags")
def create_tag(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    ctx.params.require("tag_name", "ref")
    authorize(ctx, p, DEVELOPER)
    name, ref = ctx.params.str("tag_name").strip(), ctx.params.str("ref")
    repo = p.repo
    if not repo.valid_ref_name("tags", name):
        raise errors.bad_request("Tag name invalid")
    if name in repo.tags():
        raise errors.bad_request(f"Tag {name} already exists")
    target = repo.commit_sha(ref) if not repo.is_empty() else None
    if target is None:
        raise errors.bad_request(f"Target {ref} is invalid")
    if not st.can_create_tag(ctx.auth.user, p, name):
        raise errors.bad_request("You are not allowed to create this tag as it is protected.")
    message = ctx.params.str("message")
    if message:
        u = ctx.auth.user
        repo.create_annotated_tag(name, target, message, (u.name, u.email))
    else:
        repo.update_ref(f"refs/tags/{name}", target, "")
    p.last_activity_at = now_iso()
    return 201, E.tag(st, p, repo.tags()[name])


@router.add("DELETE", "/projects/:id/repository/tags/:tag_name")
def delete_tag(ctx, id, tag_name):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    if tag_name not in p.repo.tags():
        raise errors.not_found("Tag")
    if st.matching_protected_tags(p, tag_name) and st.project_level(ctx.auth.user, p) < MAINTAINER:
        raise errors.forbidden()
    p.repo.delete_ref(f"refs/tags/{tag_name}")
    return 204, None


# -- protected tags ---------------------------------------------------------------------------
def _protect_level(ctx, key, default):
    level = ctx.params.int(key, default)
    if level not in PROTECT_LEVELS:
        raise errors.invalid(key, "does not have a valid value")
    return level


def _level_items(ctx, level, extra=None):
    items = [E.level_item(ctx.state.next_id("access_level"), level)]
    for it in extra or []:
        if isinstance(it, dict) and it.get("access_level") is not None:
            items.append(E.level_item(ctx.state.next_id("access_level"), int(it["access_level"])))
    return items


def _protection_rule(rules, name):
    for rule in rules:
        if rule["name"] == name:
            return rule
    raise errors.not_found()


@router.add("GET", "/projects/:id/protected_tags")
def list_protected_tags(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return paginate(ctx, p.protected_tags)


@router.add("GET", "/projects/:id/protected_tags/:name")
def get_protected_tag(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return _protection_rule(p.protected_tags, name)


@router.add("POST", "/projects/:id/protected_tags")
def protect_tag(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("name")
    name = ctx.params.str("name")
    level = _protect_level(ctx, "create_access_level", 40)
    if any(r["name"] == name for r in p.protected_tags):
        raise errors.conflict(f"Protected tag '{name}' already exists")
    rule = {"name": name, "create_access_levels": _level_items(ctx, level, ctx.params.list("allowed_to_create"))}
    p.protected_tags.append(rule)
    return 201, rule


@router.add("DELETE", "/projects/:id/protected_tags/:name")
def unprotect_tag(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    for r in list(p.protected_tags):
        if r["name"] == name:
            p.protected_tags.remove(r)
            return 204, None
    raise errors.not_found()


# -- branches ----------------------------------------------------------------------------------
@router.add("GET", "/projects/:id/repository/branches")
def list_branches(ctx, id):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    items = sorted(p.repo.branches().items())
    search = ctx.params.str("search")
    if search:
        if search.startswith("^"):
            items = [b for b in items if b[0].startswith(search[1:])]
        elif search.endswith("$"):
            items = [b for b in items if b[0].endswith(search[:-1])]
        else:
            items = [b for b in items if search in b[0]]
    regex = ctx.params.str("regex")
    if regex:
        items = [b for b in items if re.search(regex, b[0])]
    return [E.branch(ctx.state, p, n, s, ctx.auth) for n, s in paginate(ctx, items)]


@router.add("GET", "/projects/:id/repository/branches/:branch")
def get_branch(ctx, id, branch):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    sha = p.repo.branch_sha(branch)
    if sha is None:
        raise errors.not_found("Branch")
    return E.branch(ctx.state, p, branch, sha, ctx.auth)


@router.add("POST", "/projects/:id/repository/branches")
def create_branch(ctx, id):
    p = find_project(ctx, id)
    ctx.params.require("branch", "ref")
    authorize(ctx, p, DEVELOPER)
    name, ref = ctx.params.str("branch"), ctx.params.str("ref")
    if not ctx.state.can_push_branch(ctx.auth.user, p, name):
        raise errors.forbidden()
    if not p.repo.valid_ref_name("heads", name):
        raise errors.bad_request("Branch name is invalid")
    if p.repo.branch_sha(name):
        raise errors.bad_request("Branch already exists")
    sha = p.repo.commit_sha(ref) if not p.repo.is_empty() else None
    if sha is None:
        raise errors.bad_request(f"Invalid reference name: {ref}")
    p.repo.update_ref(f"refs/heads/{name}", sha, "")
    ctx.state.after_ref_change(p)
    return 201, E.branch(ctx.state, p, name, sha, ctx.auth)


@router.add("DELETE", "/projects/:id/repository/branches/:branch")
def delete_branch(ctx, id, branch):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    if p.repo.branch_sha(branch) is None:
        raise errors.not_found("Branch")
    if ctx.state.matching_protected_branches(p, branch) or branch == p.default_branch:
        raise errors.forbidden()
    p.repo.delete_ref(f"refs/heads/{branch}")
    return 204, None


# -- protected branches --------------------------------------------------------------------------
@router.add("GET", "/projects/:id/protected_branches")
def list_protected_branches(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    items = p.protected_branches
    if ctx.params.str("search"):
        items = [r for r in items if ctx.params.str("search") in r["name"]]
    return paginate(ctx, items)


@router.add("GET", "/projects/:id/protected_branches/:name")
def get_protected_branch(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return _protection_rule(p.protected_branches, name)


@router.add("POST", "/projects/:id/protected_branches")
def protect_branch(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("name")
    name = ctx.params.str("name")
    push = _protect_level(ctx, "push_access_level", 40)
    merge = _protect_level(ctx, "merge_access_level", 40)
    unprotect = _protect_level(ctx, "unprotect_access_level", 40) if "unprotect_access_level" in ctx.params else None
    if any(r["name"] == name for r in p.protected_branches):
        raise errors.conflict(f"Protected branch '{name}' already exists")
    rule = ctx.state.protect_branch(p, name, push, merge, ctx.params.bool("allow_force_push", False), unprotect)
    rule["code_owner_approval_required"] = bool(ctx.params.bool("code_owner_approval_required", False))
    return 201, rule


@router.add("PATCH", "/projects/:id/protected_branches/:name")
def update_protected_branch(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    for r in p.protected_branches:
        if r["name"] == name:
            if "allow_force_push" in ctx.params:
                r["allow_force_push"] = ctx.params.bool("allow_force_push")
            if "code_owner_approval_required" in ctx.params:
                r["code_owner_approval_required"] = ctx.params.bool("code_owner_approval_required")
            for key in ("push", "merge", "unprotect"):
                for it in ctx.params.list(f"allowed_to_{key}"):
                    if isinstance(it, dict) and it.get("access_level") is not None:
                        r[f"{key}_access_levels"] = _level_items(ctx, int(it["access_level"]))
            return r
    raise errors.not_found()


@router.add("DELETE", "/projects/:id/protected_branches/:name")
def unprotect_branch(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    for r in list(p.protected_branches):
        if r["name"] == name:
            p.protected_branches.remove(r)
            return 204, None
    raise errors.not_found()


# -- compare -----------------------------------------------------------------------------------
@router.add("GET", "/projects/:id/repository/compare")
def compare(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    ctx.params.require("from", "to")
    src, dst = ctx.params.str("from"), ctx.params.str("to")
    repo = p.repo
    a, b = repo.commit_sha(src), repo.commit_sha(dst)
    if a is None or b is None:
        raise errors.not_found()
    straight = bool(ctx.params.bool("straight", False))
    base = a if straight else (repo.merge_base(a, b) or a)
    shas = list(reversed(repo.rev_list(f"{base}..{b}") if base else repo.rev_list(b)))
    commits = [E.commit(st, p, c) for c in repo.commits(shas)]
    return {"commit": commits[-1] if commits else None, "commits": commits,
            "diffs": repo.diffs(base, b) if a != b else [], "compare_timeout": False,
            "compare_same_ref": src == dst,
            "web_url": f"{st.base_url}/{st.project_path(p)}/-/compare/{a}...{b}"}


# -- submodules -------------------------------------------------------------------------------
@router.add("PUT", "/projects/:id/repository/submodules/:submodule")
def update_submodule(ctx, id, submodule):
    p = find_project(ctx, id)
    ctx.params.require("branch", "commit_sha")
    branch, sha = ctx.params.str("branch"), ctx.params.str("commit_sha")
    _push_check(ctx, p, branch)
    repo = p.repo
    if not SHA_RE.match(sha):
        raise errors.bad_request("Invalid parameters")
    if repo.is_empty():
        raise errors.bad_request("The repository is empty")
    head = repo.branch_sha(branch)
    if head is None:
        raise errors.bad_request("You can only create or edit files when you are on a branch")
    path = submodule.strip("/")
    files = repo.flat_tree(head)
    if path not in files or files[path][0] != "160000":
        raise errors.bad_request("Invalid submodule path")
    if files[path][1] == sha:
        raise errors.bad_request(f"The submodule {path} is already at {sha}")
    files[path] = ("160000", sha)
    u = ctx.auth.user
    message = ctx.params.str("commit_message") or f"Update submodule {path} with oid {sha}"
    new = repo.commit_tree(repo.write_tree(files), [head], message, (u.name, u.email))
    try:
        repo.update_ref(f"refs/heads/{branch}", new, head)
    except GitError:
        raise errors.bad_request("Could not update branch: it was changed by someone else (try again)")
    ctx.state.after_ref_change(p)
    return 200, commit_entity(ctx, p, new)


# -- commit statuses ---------------------------------------------------------------------------
STATUS_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
_TRANSITIONS = {  # event -> states it may leave from (CommitStatus state machine)
    "enqueue": ("created", "skipped", "manual", "scheduled"),
    "run": ("pending",),
    "success": ("created", "pending", "running"),
    "drop": ("created", "pending", "running"),
    "cancel": ("created", "pending", "running"),
    "skip": ("created", "pending"),
}


def _transition(status, event, to):
    if status["status"] not in _TRANSITIONS[event]:
        raise errors.bad_request(f"Cannot transition status via :{event} from :{status['status']} "
                                 f"(Reason(s): Status cannot transition via \"{event}\")")
    status["status"] = to
    now = now_iso()
    status["updated_at"] = now
    if to == "running":
        status["started_at"] = now
    if to in ("success", "failed", "canceled", "skipped"):
        status["finished_at"] = now


def _status_entity(ctx, s):
    return {k: v for k, v in s.items() if k not in ("author_id",)} | {
        "author": E.user_basic(ctx.state, ctx.state.users.get(s["author_id"]))}


@router.add("POST", "/projects/:id/statuses/:sha")
def create_status(ctx, id, sha):
    """Ci::CreateCommitStatusService (gitlab-permissions.md section 6)."""
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)                          # authorize! :create_commit_status
    ctx.params.require("state")
    state = ctx.params.values("state", STATUS_STATES)
    pipeline_id = ctx.params.int("pipeline_id")
    full = p.repo.commit_sha(sha) if not p.repo.is_empty() else None
    if full is None or not full.startswith(sha.lower()):
        raise errors.not_found("Commit")
    # first_matching_pipeline: the newest pipeline of the sha (of the last 100, or the one
    # pipeline_id names), of the given ref if any -- whatever its source
    given_ref = ctx.params.str("ref")
    cands = sorted((pl for pl in p.pipelines.values() if pl["sha"] == full), key=lambda pl: pl["id"],
                   reverse=True)
    if pipeline_id is None:
        cands = cands[:100]
    if given_ref:
        cands = [pl for pl in cands if pl["ref"] == given_ref]
    if pipeline_id is not None:
        cands = [pl for pl in cands if pl["id"] == pipeline_id]
    matching = cands[0] if cands else None
    ref = given_ref or (matching["ref"] if matching else None)
    if not ref:   # repository.branch_names_contains(sha).first
        out = p.repo.text("for-each-ref", "--contains", full, "--format=%(refname:lstrip=2)", "refs/heads")
        ref = (out.split() or [None])[0]
    if not ref:
        raise errors.not_found("References for commit")
    if pipeline_id is not None and matching is None:
        raise errors.not_found("Pipeline for pipeline_id, sha and ref")
    if matching is None:
        from .api_ci import new_pipeline
        pipeline = new_pipeline(ctx, p, ref, full, "external", status="pending")
    else:
        pipeline = matching
    # Ci::PipelinePolicy: update_pipeline is prevented on a protected ref the caller may not
    # push or merge to (a tag: may not create)
    user = ctx.auth.user
    allowed = st.can_create_tag(user, p, pipeline["ref"]) if pipeline.get("tag") else (
        st.can_push_branch(user, p, pipeline["ref"]) or st.can_merge_branch(user, p, pipeline["ref"]))
    if not allowed:
        raise errors.forbidden()
    name = ctx.params.str("name") or ctx.params.str("context") or "default"
    # find_or_build_external_commit_status: a running or pending status of this pipeline, ref,
    # name and user is updated; otherwise a new one
    status = next((s for s in reversed(p.statuses) if s["pipeline_id"] == pipeline["id"] and s["ref"] == ref
                   and s["name"] == name and s["author_id"] == user.id
                   and s["status"] in ("pending", "running")), None)
    if status is None:
        now = now_iso()
        status = {"id": st.next_id("job"), "sha": full, "ref": ref, "status": "created", "name": name,
                  "target_url": None, "description": None, "created_at": now, "updated_at": now,
                  "started_at": None, "finished_at": None, "allow_failure": False, "coverage": None,
                  "pipeline_id": pipeline["id"], "author_id": user.id}
        fresh = True
    else:
        fresh = False
    candidate = dict(status)
    if state == "pending":
        _transition(candidate, "enqueue", "pending")
    elif state == "running":
        if candidate["status"] in _TRANSITIONS["enqueue"]:
            _transition(candidate, "enqueue", "pending")
        _transition(candidate, "run", "running")
    else:
        _transition(candidate, {"success": "success", "failed": "drop", "canceled": "cancel",
                                "skipped": "skip"}[state], state)
    for key in ("target_url", "description"):
        if key in ctx.params:
            candidate[key] = ctx.params.str(key)
    if "coverage" in ctx.params:
        candidate["coverage"] = float(ctx.params.str("coverage"))
    status.update(candidate)
    if fresh:
        p.statuses.append(status)
    pipeline["status"] = state if state != "pending" else pipeline["status"]
    pipeline["updated_at"] = now_iso()
    return 201, _status_entity(ctx, status)


@router.add("GET", "/projects/:id/repository/commits/:sha/statuses")
def list_statuses(ctx, id, sha):
    p = find_project(ctx, id)
    authorize_code(ctx, p)
    full = _find_commit(ctx, p, sha)
    items = [s for s in p.statuses if s["sha"] == full]
    for key in ("ref", "name", "stage"):
        if ctx.params.str(key):
            items = [s for s in items if s.get(key) == ctx.params.str(key)]
    if not ctx.params.bool("all", False):
        latest = {}
        for s in items:
            latest[(s["ref"], s["name"])] = s
        items = list(latest.values())
    return [_status_entity(ctx, s) for s in paginate(ctx, items)]
