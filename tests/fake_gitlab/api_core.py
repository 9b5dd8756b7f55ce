"""Users, the current job, groups, namespaces, projects and members.

Also the shared lookup/authorization helpers every ``api_*`` module uses:
``find_project`` (404 ``Project Not Found`` for missing *and* invisible
projects, and for job tokens from projects outside the target's job-token
allowlist) and ``authorize`` (401 for anonymous, 403 for too low a role).
"""

import re
import shutil

from . import entities as E
from . import errors
from .gitrepo import now_iso
from .routing import keyset_paginate, paginate, router
from .state import DEVELOPER, GUEST, MAINTAINER, OWNER, REPORTER

ACCESS_LEVELS = {0, 5, 10, 15, 20, 30, 40, 50}
VISIBILITIES = ("private", "internal", "public")
PATH_RE = re.compile(r"\A[a-zA-Z0-9_.][a-zA-Z0-9_.-]*\Z")
BOT_ELSEWHERE = "project bots cannot be added to other groups / projects"
PATH_ERROR = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'"


# -- helpers shared by all api modules -----------------------------------------------
def find_project(ctx, ref):
    st, auth = ctx.state, ctx.auth
    p = st.project_by_ref(ref)
    if p is None:
        raise errors.not_found("Project")
    if auth.kind == "job" and auth.job.project_id not in p.job_token_allowlist:
        raise errors.not_found("Project")
    if not st.visible(auth, p):
        raise errors.not_found("Project")
    return p


def authorize(ctx, p, level):
    if ctx.state.project_level(ctx.auth.user, p) < level:
        if ctx.auth.user is None:
            raise errors.unauthorized()
        raise errors.forbidden()


def authorize_code(ctx, p):
    if not ctx.state.can_read_code(ctx.auth, p):
        if ctx.auth.user is None:
            raise errors.unauthorized()
        raise errors.forbidden()


def find_group(ctx, ref):
    ns = ctx.state.namespace_by_ref(ref)
    if ns is None or ns.kind != "group" or not ctx.state.group_visible(ctx.auth, ns):
        raise errors.not_found("Group")
    return ns


def require_user(ctx):
    if ctx.auth.user is None:
        raise errors.unauthorized()
    return ctx.auth.user


def find_user_param(ctx, value):
    st = ctx.state
    if value is None:
        return None
    s = str(value)
    return st.users.get(int(s)) if s.isdigit() else st.user_by_name(s)


def member_level(st, user, p):
    """The level a user has through memberships (admins get nothing extra)."""
    lv = p.members.get(user.id, 0)
    for a in st.ancestors(st.namespaces[p.namespace_id]):
        lv = max(lv, a.members.get(user.id, 0), OWNER if a.kind == "user" and a.owner_id == user.id else 0)
    return lv


def parameterize(name):
    s = re.sub(r"[^a-z0-9_.-]+", "-", name.lower())
    return re.sub(r"-{2,}", "-", s).strip("-") or "project"


def job_entity(st, job):
    p = st.projects[job.project_id]
    user = st.users[job.user_id]
    c = p.repo.commit(job.sha) if job.sha else None
    return {"id": job.id, "name": job.name, "stage": job.stage, "status": job.status, "ref": job.ref,
            "tag": job.tag, "allow_failure": False, "created_at": job.created_at, "started_at": job.created_at,
            "finished_at": None, "duration": None, "user": E.user_full(st, user),
            "commit": E.commit(st, p, c), "coverage": None, "artifacts": [], "runner": None,
            "pipeline": {"id": job.pipeline_id, "project_id": p.id, "ref": job.ref, "sha": job.sha,
                         "status": "running"},
            "web_url": f"{st.base_url}/{st.project_path(p)}/-/jobs/{job.id}", "failure_reason": None}


# -- current user / job / users ---------------------------------------------------------
@router.add("GET", "/user")
def get_current_user(ctx):
    return E.user_full(ctx.state, require_user(ctx))


@router.add("GET", "/job", job_token=True)
def get_current_job(ctx):
    if ctx.auth.kind != "job":
        raise errors.unauthorized()
    return job_entity(ctx.state, ctx.auth.job)


@router.add("GET", "/users")
def list_users(ctx):
    st = ctx.state
    users = sorted(st.users.values(), key=lambda u: u.id)
    username = ctx.params.str("username")
    if username:
        users = [u for u in users if u.username.lower() == username.lower()]
    search = ctx.params.str("search")
    if search:
        users = [u for u in users if search.lower() in (u.username + " " + u.name + " " + u.email).lower()]
    return paginate(ctx, [E.user_basic(st, u) for u in users])


@router.add("GET", "/users/:user_id")
def get_user(ctx, user_id):
    u = find_user_param(ctx, user_id)
    if u is None:
        raise errors.not_found("User")
    return E.user_basic(ctx.state, u)


@router.add("POST", "/users")
def create_user(ctx):
    me = require_user(ctx)
    if not me.admin:
        raise errors.forbidden()
    ctx.params.require("email", "name", "username")
    st = ctx.state
    if st.user_by_name(ctx.params.str("username")):
        raise errors.conflict("Username has already been taken")
    u = st.add_user(ctx.params.str("username"), ctx.params.str("name"), ctx.params.str("email"),
                    bool(ctx.params.bool("admin", False)))
    return 201, E.user_full(st, u)


@router.add("POST", "/users/:user_id/personal_access_tokens")
def create_pat(ctx, user_id):
    me = require_user(ctx)
    if not me.admin:
        raise errors.forbidden()
    u = find_user_param(ctx, user_id)
    if u is None:
        raise errors.not_found("User")
    ctx.params.require("name", "scopes")
    import secrets
    value = "glpat-" + secrets.token_urlsafe(15)
    tok = ctx.state.add_token(value, u, ctx.params.list("scopes"), "personal", ctx.params.str("name"),
                              ctx.params.str("expires_at"))
    return 201, {"id": tok.id, "name": tok.name, "revoked": False, "created_at": tok.created_at,
                 "scopes": tok.scopes, "user_id": u.id, "active": True, "expires_at": tok.expires_at,
                 "token": value}


# -- groups and namespaces -------------------------------------------------------------
@router.add("POST", "/groups")
def create_group(ctx):
    user = require_user(ctx)
    st = ctx.state
    ctx.params.require("name", "path")
    name, path = ctx.params.str("name"), ctx.params.str("path")
    visibility = ctx.params.values("visibility", VISIBILITIES, "private")
    parent = None
    if "parent_id" in ctx.params:
        parent = st.namespace_by_ref(ctx.params.str("parent_id"))
        if parent is None or parent.kind != "group" or not st.group_visible(ctx.auth, parent):
            raise errors.not_found("Group")
        if st.group_level(user, parent) < MAINTAINER:
            raise errors.forbidden()
    if not PATH_RE.match(path) or path.endswith(".git") or path.endswith(".atom"):
        raise errors.bad_request(f"Failed to save group {{:path=>[\"{PATH_ERROR}\"]}}")
    siblings = [n for n in st.namespaces.values()
                if n.parent_id == (parent.id if parent else None) and n.path.lower() == path.lower()]
    if siblings:
        raise errors.bad_request('Failed to save group {:path=>["has already been taken"]}')
    ns = st.add_group(name, path, parent, visibility, ctx.params.str("description", ""))
    ns.members[user.id] = OWNER   # Groups::CreateService adds the creator as Owner
    return 201, E.group(st, ns)


def _visible_groups(ctx):
    st = ctx.state
    return [n for n in sorted(st.namespaces.values(), key=lambda n: n.id)
            if n.kind == "group" and st.group_visible(ctx.auth, n)]


@router.add("GET", "/groups")
def list_groups(ctx):
    st = ctx.state
    groups = _visible_groups(ctx)
    search = ctx.params.str("search")
    if search:
        groups = [g for g in groups if search.lower() in (g.name + " " + g.path).lower()]
    if ctx.params.bool("top_level_only"):
        groups = [g for g in groups if g.parent_id is None]
    return paginate(ctx, [E.group(st, g) for g in groups])


@router.add("GET", "/groups/:id")
def get_group(ctx, id):
    st = ctx.state
    ns = find_group(ctx, id)
    out = E.group(st, ns)
    if ctx.params.bool("with_projects", True):
        out["projects"] = [E.project(st, p) for p in sorted(st.projects.values(), key=lambda p: p.id)
                           if p.namespace_id == ns.id and st.visible(ctx.auth, p)]
        out["shared_projects"] = []
    return out


@router.add("GET", "/groups/:id/subgroups")
def list_subgroups(ctx, id):
    ns = find_group(ctx, id)
    return paginate(ctx, [E.group(ctx.state, g) for g in _visible_groups(ctx) if g.parent_id == ns.id])


@router.add("GET", "/groups/:id/projects")
def list_group_projects(ctx, id):
    st = ctx.state
    ns = find_group(ctx, id)
    deep = ctx.params.bool("include_subgroups", False)
    out = []
    for p in sorted(st.projects.values(), key=lambda p: p.id, reverse=True):
        owners = [a.id for a in st.ancestors(st.namespaces[p.namespace_id])]
        if (p.namespace_id == ns.id or (deep and ns.id in owners)) and st.visible(ctx.auth, p):
            out.append(E.project(st, p, ctx.auth))
    return paginate(ctx, out)


@router.add("DELETE", "/groups/:id")
def delete_group(ctx, id):
    st = ctx.state
    ns = find_group(ctx, id)
    if st.group_level(ctx.auth.user, ns) < OWNER:
        raise errors.forbidden()
    doomed = {n.id for n in st.namespaces.values() if ns.id in {a.id for a in st.ancestors(n)}}
    for p in [p for p in st.projects.values() if p.namespace_id in doomed]:
        _destroy_project(st, p)
    for nid in doomed:
        st.namespaces.pop(nid, None)
    return 202, {"message": "202 Accepted"}


def _namespace_entity(ctx, ns):
    st = ctx.state
    out = E.namespace(st, ns)
    out.update({"members_count_with_descendants": None, "billable_members_count": None, "plan": "free",
                "trial": False})
    return out


@router.add("GET", "/namespaces")
def list_namespaces(ctx):
    st = ctx.state
    user = require_user(ctx)
    out = []
    for ns in sorted(st.namespaces.values(), key=lambda n: n.id):
        if ns.kind == "user" and ns.owner_id != user.id and not user.admin:
            continue
        if ns.kind == "group" and not st.group_visible(ctx.auth, ns):
            continue
        out.append(ns)
    search = ctx.params.str("search")
    if search:
        out = [n for n in out if search.lower() in (n.name + " " + st.full_path(n)).lower()]
    return paginate(ctx, [_namespace_entity(ctx, n) for n in out])


@router.add("GET", "/namespaces/:id")
def get_namespace(ctx, id):
    st = ctx.state
    user = require_user(ctx)
    ns = st.namespace_by_ref(id)
    if ns is None or (ns.kind == "user" and ns.owner_id != user.id and not user.admin) or \
            (ns.kind == "group" and not st.group_visible(ctx.auth, ns)):
        raise errors.not_found("Namespace")
    return _namespace_entity(ctx, ns)


# -- projects ----------------------------------------------------------------------------
PROJECT_SETTINGS_BOOL = ("only_allow_merge_if_pipeline_succeeds", "only_allow_merge_if_all_discussions_are_resolved",
                         "restrict_user_defined_variables", "allow_pipeline_trigger_approve_deployment",
                         "remove_source_branch_after_merge", "ci_push_repository_for_job_token_allowed")
PROJECT_SETTINGS_STR = {"merge_method": ("merge", "rebase_merge", "ff"),
                        "squash_option": ("never", "always", "default_on", "default_off"),
                        "ci_pipeline_variables_minimum_override_role":
                            ("owner", "maintainer", "developer", "no_one_allowed")}


def _read_settings(ctx):
    out = {}
    for key in PROJECT_SETTINGS_BOOL:
        if key in ctx.params:
            out[key] = ctx.params.bool(key)
    for key, allowed in PROJECT_SETTINGS_STR.items():
        if key in ctx.params:
            out[key] = ctx.params.values(key, allowed)
    if "topics" in ctx.params:
        out["topics"] = ctx.params.list("topics")
    return out


@router.add("POST", "/projects")
def create_project(ctx):
    st = ctx.state
    user = require_user(ctx)
    name, path = ctx.params.str("name"), ctx.params.str("path")
    if not name and not path:
        raise errors.ApiError(400, {"error": "name, path are missing, at least one parameter must be provided"})
    name = name or path
    path = path or parameterize(name)
    visibility = ctx.params.values("visibility", VISIBILITIES, "private")
    if "namespace_id" in ctx.params:
        ns = st.namespace_by_ref(ctx.params.str("namespace_id"))
        if ns is None:
            raise errors.not_found("Namespace")
    else:
        ns = st.user_namespace(user)
    allowed = st.group_level(user, ns) >= (OWNER if ns.kind == "user" else MAINTAINER)
    if not allowed:
        raise errors.validation({"namespace": ["is not valid"]})
    problems = {}
    if not PATH_RE.match(path) or path.endswith(".git") or path.endswith(".atom"):
        problems["path"] = [PATH_ERROR]
    siblings = [p for p in st.projects.values() if p.namespace_id == ns.id]
    if any(p.name.lower() == name.lower() for p in siblings):
        problems["name"] = ["has already been taken"]
    if any(p.path.lower() == path.lower() for p in siblings):
        problems.setdefault("path", []).append("has already been taken")
    if ns.kind == "group" and any(n.parent_id == ns.id and n.path.lower() == path.lower()
                                  for n in st.namespaces.values()):
        problems.setdefault("path", []).append("has already been taken")
    if problems:
        raise errors.validation(problems)
    p = st.create_project(user, ns, name, path, description=ctx.params.str("description", ""),
                          visibility=visibility,
                          initialize_with_readme=ctx.params.bool("initialize_with_readme", False),
                          default_branch=ctx.params.str("default_branch"),
                          ci_config_path=ctx.params.str("ci_config_path"), settings=_read_settings(ctx))
    return 201, E.project(st, p, ctx.auth)


@router.add("GET", "/projects")
def list_projects(ctx):
    st = ctx.state
    auth = ctx.auth
    items = [p for p in st.projects.values() if st.visible(auth, p)]
    if ctx.params.bool("membership") and auth.user:
        items = [p for p in items if member_level(st, auth.user, p) >= GUEST]
    if ctx.params.bool("owned") and auth.user:
        items = [p for p in items if st.project_level(auth.user, p) >= OWNER]
    search = ctx.params.str("search")
    if search:
        items = [p for p in items if search.lower() in (p.name + " " + st.project_path(p)).lower()]
    if ctx.params.str("visibility"):
        items = [p for p in items if p.visibility == ctx.params.str("visibility")]
    entities = [E.project(st, p, auth) for p in items]
    if ctx.params.str("pagination") == "keyset":
        return keyset_paginate(ctx, entities)
    order = ctx.params.str("order_by", "created_at")
    desc = ctx.params.str("sort", "desc") == "desc"
    key = {"id": "id", "name": "name", "path": "path", "last_activity_at": "last_activity_at"}.get(order, "id")
    entities.sort(key=lambda e: (e[key], e["id"]), reverse=desc)
    return paginate(ctx, entities)


@router.add("GET", "/projects/:id")
def get_project(ctx, id):
    p = find_project(ctx, id)
    return E.project(ctx.state, p, ctx.auth)


@router.add("PUT", "/projects/:id")
def edit_project(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    keys = ("name", "path", "description", "default_branch", "visibility", "ci_config_path", "topics") + \
        PROJECT_SETTINGS_BOOL + tuple(PROJECT_SETTINGS_STR)
    if not any(k in ctx.params.data for k in keys):
        raise errors.ApiError(400, {"error": ", ".join(keys) + " are missing, at least one parameter must be provided"})
    if "visibility" in ctx.params:
        ctx.params.values("visibility", VISIBILITIES)
        if st.project_level(ctx.auth.user, p) < OWNER:
            raise errors.forbidden()
    problems = {}
    siblings = [q for q in st.projects.values() if q.namespace_id == p.namespace_id and q.id != p.id]
    new_name = ctx.params.str("name")
    if new_name and any(q.name.lower() == new_name.lower() for q in siblings):
        problems["name"] = ["has already been taken"]
    new_path = ctx.params.str("path")
    if new_path and new_path != p.path:
        if not PATH_RE.match(new_path):
            problems["path"] = [PATH_ERROR]
        elif any(q.path.lower() == new_path.lower() for q in siblings):
            problems["path"] = ["has already been taken"]
    if problems:
        raise errors.validation(problems)
    if new_name:
        p.name = new_name
    if new_path and new_path != p.path:
        old = p.repo.path
        p.path = new_path
        p.repo.path = st.repo_dir(st.namespaces[p.namespace_id], new_path)
        shutil.move(old, p.repo.path)
    if "description" in ctx.params:
        p.description = ctx.params.str("description")
    if "visibility" in ctx.params:
        p.visibility = ctx.params.str("visibility")
    if "ci_config_path" in ctx.params.data:
        p.ci_config_path = ctx.params.str("ci_config_path") or None
    if "default_branch" in ctx.params:
        b = ctx.params.str("default_branch")
        if p.repo.branch_sha(b) is not None:
            p.default_branch = b
            p.repo.set_head(b)
    p.settings.update(_read_settings(ctx))
    p.last_activity_at = now_iso()
    return E.project(st, p, ctx.auth)


def _destroy_project(st, p):
    st.projects.pop(p.id, None)
    shutil.rmtree(p.repo.path, ignore_errors=True)


@router.add("DELETE", "/projects/:id")
def delete_project(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, OWNER)
    _destroy_project(ctx.state, p)
    return 202, {"message": "202 Accepted"}


# -- members (projects and groups) ----------------------------------------------------------
def _member_target(ctx, kind, id):
    if kind == "projects":
        p = find_project(ctx, id)
        return p, ctx.state.project_level(ctx.auth.user, p), p.members
    ns = find_group(ctx, id)
    return ns, ctx.state.group_level(ctx.auth.user, ns), ns.members


def _inherited(ctx, kind, target, user):
    st = ctx.state
    if kind == "projects":
        return st.group_level(user, st.namespaces[target.namespace_id]), st.namespaces[target.namespace_id]
    if target.parent_id:
        parent = st.namespaces[target.parent_id]
        return st.group_level(user, parent), parent
    return 0, None


def _members_list(kind):
    def handler(ctx, id):
        st = ctx.state
        target, _level, members = _member_target(ctx, kind, id)
        items = [E.member(st, st.users[uid], lv) for uid, lv in sorted(members.items())]
        query = ctx.params.str("query")
        if query:
            items = [m for m in items if query.lower() in (m["username"] + " " + m["name"]).lower()]
        return paginate(ctx, items)
    return handler


def _members_all(kind):
    def handler(ctx, id):
        st = ctx.state
        target, _level, _members = _member_target(ctx, kind, id)
        levels = {}
        for uid, u in st.users.items():
            lv = member_level(st, u, target) if kind == "projects" else \
                max([a.members.get(uid, 0) for a in st.ancestors(target)] + [0])
            if lv:
                levels[uid] = lv
        return paginate(ctx, [E.member(st, st.users[u], lv) for u, lv in sorted(levels.items())])
    return handler


def _member_get(kind, all_=False):
    def handler(ctx, id, user_id):
        st = ctx.state
        target, _level, members = _member_target(ctx, kind, id)
        u = st.users.get(int(user_id)) if user_id.isdigit() else None
        lv = members.get(u.id) if u else None
        if u and all_ and not lv:
            lv = _inherited(ctx, kind, target, u)[0] or None
        if not lv:
            raise errors.not_found("Member")
        return E.member(st, u, lv)
    return handler


def _access_level_param(ctx):
    ctx.params.require("access_level")
    access = ctx.params.int("access_level")
    if access not in ACCESS_LEVELS:
        raise errors.invalid("access_level", "does not have a valid value")
    return access


def _member_add(kind):
    def handler(ctx, id):
        st = ctx.state
        target, level, members = _member_target(ctx, kind, id)
        if level < MAINTAINER:
            raise errors.forbidden()
        access = _access_level_param(ctx)
        if "user_id" not in ctx.params and "username" not in ctx.params:
            raise errors.ApiError(400, {"error": "user_id, username are missing, exactly one parameter must be provided"})
        refs = [s.strip() for s in ctx.params.str("user_id").split(",")] if "user_id" in ctx.params \
            else [ctx.params.str("username")]
        users = [find_user_param(ctx, r) for r in refs]
        if any(u is None for u in users):
            raise errors.not_found("User")
        if access == OWNER and level < OWNER:
            raise errors.forbidden()
        if len(users) == 1:
            u = users[0]
            if u.id in members:
                raise errors.conflict("Member already exists")
            problems = {}
            inherited, source = _inherited(ctx, kind, target, u)
            if inherited and not u.admin and access < inherited:
                desc = {10: "Guest", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}[inherited]
                problems["access_level"] = [
                    f"should be greater than or equal to {desc} inherited membership from group {source.name}"]
            if st.bot_elsewhere(u, target) is not None:   # Member: user_id uniqueness for project bots
                problems["user_id"] = [BOT_ELSEWHERE]
            if problems:
                raise errors.validation(problems)
            members[u.id] = access
            return 201, E.member(st, u, access)
        failed = {}
        for u in users:
            if u.id not in members and st.bot_elsewhere(u, target) is not None:
                failed[u.username] = "User " + BOT_ELSEWHERE
                continue
            members.setdefault(u.id, access)
        if failed:   # Members::CreateService's result for several users (shape unverified)
            return 201, {"status": "error", "message": failed}
        return 201, {"status": "success"}
    return handler


def _member_edit(kind):
    def handler(ctx, id, user_id):
        st = ctx.state
        target, level, members = _member_target(ctx, kind, id)
        if level < MAINTAINER:
            raise errors.forbidden()
        access = _access_level_param(ctx)
        uid = int(user_id) if user_id.isdigit() else -1
        if uid not in members:
            raise errors.not_found("Member")
        members[uid] = access
        return E.member(st, st.users[uid], access)
    return handler


def _member_delete(kind):
    def handler(ctx, id, user_id):
        target, level, members = _member_target(ctx, kind, id)
        uid = int(user_id) if user_id.isdigit() else -1
        if level < MAINTAINER and (ctx.auth.user is None or ctx.auth.user.id != uid):
            raise errors.forbidden()
        if uid not in members:
            raise errors.not_found("Member")
        del members[uid]
        return 204, None
    return handler


for _kind in ("projects", "groups"):
    router.add("GET", f"/{_kind}/:id/members")(_members_list(_kind))
    router.add("GET", f"/{_kind}/:id/members/all")(_members_all(_kind))
    router.add("GET", f"/{_kind}/:id/members/all/:user_id")(_member_get(_kind, all_=True))
    router.add("GET", f"/{_kind}/:id/members/:user_id")(_member_get(_kind))
    router.add("POST", f"/{_kind}/:id/members")(_member_add(_kind))
    router.add("PUT", f"/{_kind}/:id/members/:user_id")(_member_edit(_kind))
    router.add("DELETE", f"/{_kind}/:id/members/:user_id")(_member_delete(_kind))


# -- job token scope ---------------------------------------------------------------------------
@router.add("GET", "/projects/:id/job_token_scope/allowlist")
def job_token_allowlist(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return paginate(ctx, [E.project(st, st.projects[i]) for i in sorted(p.job_token_allowlist) if i in st.projects])


@router.add("POST", "/projects/:id/job_token_scope/allowlist")
def job_token_allow(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("target_project_id")
    target = st.project_by_ref(ctx.params.str("target_project_id"))
    if target is None or not st.visible(ctx.auth, target):
        raise errors.not_found("Project")
    if target.id in p.job_token_allowlist and target.id != p.id:
        raise errors.validation({"target_project": ["is already in the allowlist"]})
    p.job_token_allowlist.add(target.id)
    return 201, {"source_project_id": p.id, "target_project_id": target.id}


@router.add("DELETE", "/projects/:id/job_token_scope/allowlist/:target_project_id")
def job_token_disallow(ctx, id, target_project_id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    tid = int(target_project_id) if target_project_id.isdigit() else -1
    if tid not in p.job_token_allowlist or tid == p.id:
        raise errors.not_found()
    p.job_token_allowlist.discard(tid)
    return 204, None


__all__ = ["find_project", "authorize", "authorize_code", "require_user", "find_user_param",
           "DEVELOPER", "REPORTER", "MAINTAINER", "GUEST"]
