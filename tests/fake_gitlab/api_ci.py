"""CI/CD endpoints (gitlab.md sections 4, 5.2-5.5, 7).

Project variables (with the documented key/masking validation and the
``filter[environment_scope]`` 409), environments, protected environments,
deployments, pipelines (create, trigger, list/get, cancel/retry, variables),
pipeline triggers and jobs.

The fake does not run CI: a created pipeline just sits in ``created`` until a
test changes it through ``PUT /__fake/pipelines/:id``.  Jobs exist only when a
test creates them (``POST /__fake/jobs`` or the seed), which also mints their
``CI_JOB_TOKEN``.  Environments, deployments and the trigger endpoint accept
``JOB-TOKEN`` as GitLab does.
"""

import re
import secrets

from . import entities as E
from . import errors
from .api_core import authorize, find_project, job_entity
from .gitrepo import now_iso
from .routing import keyset_paginate, paginate, router
from .state import DEVELOPER, MAINTAINER, OWNER, REPORTER

KEY_RE = re.compile(r"\A[a-zA-Z0-9_]+\Z")
MASK_RE = re.compile(r"\A[a-zA-Z0-9_+=/@:.~-]{8,}\Z")       # expanded variables
MASK_RAW_RE = re.compile(r"\A[\x21-\x7e]{8,}\Z")             # raw: printable ASCII, no spaces
PREDEFINED = {"CI", "GITLAB_CI", "CI_JOB_TOKEN", "CI_COMMIT_SHA", "CI_PROJECT_ID", "CI_API_V4_URL",
              "CI_REGISTRY_PASSWORD", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_SERVER_URL"}
TIERS = ("production", "staging", "testing", "development", "other")


# -- variables -----------------------------------------------------------------------------
def _scope_filter(ctx):
    f = ctx.params.dict("filter")
    return f.get("environment_scope")


def _find_variable(ctx, p, key):
    scope = _scope_filter(ctx)
    found = [v for v in p.variables if v["key"] == key and (scope is None or v["environment_scope"] == scope)]
    if not found:
        raise errors.not_found("Variable")
    if len(found) > 1:
        raise errors.conflict("There are multiple variables with provided parameters. "
                              "Please use 'filter[environment_scope]'")
    return found[0]


def _check_masked(p, v, problems):
    if not v["masked"]:
        return
    value = v["value"] or ""
    rx = MASK_RAW_RE if v["raw"] else MASK_RE
    taken = {x["key"] for x in p.variables} | PREDEFINED
    if "\n" in value or not rx.match(value) or value in taken:
        problems.setdefault("value", []).append("is invalid")


@router.add("GET", "/projects/:id/variables")
def list_variables(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return [E.variable(v) for v in paginate(ctx, p.variables)]


@router.add("GET", "/projects/:id/variables/:key")
def get_variable(ctx, id, key):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return E.variable(_find_variable(ctx, p, key))


@router.add("POST", "/projects/:id/variables")
def create_variable(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("key", "value")
    key = ctx.params.str("key")
    hidden = bool(ctx.params.bool("masked_and_hidden", False))
    v = {"key": key, "value": ctx.params.str("value"),
         "variable_type": ctx.params.values("variable_type", ("env_var", "file"), "env_var"),
         "protected": bool(ctx.params.bool("protected", False)),
         "masked": hidden or bool(ctx.params.bool("masked", False)), "hidden": hidden,
         "raw": bool(ctx.params.bool("raw", False)),
         "environment_scope": ctx.params.str("environment_scope") or "*",
         "description": ctx.params.str("description")}
    problems = {}
    if len(key) > 255:
        problems.setdefault("key", []).append("is too long (maximum is 255 characters)")
    if not KEY_RE.match(key):
        problems.setdefault("key", []).append("can contain only letters, digits and '_'.")
    if any(x["key"] == key and x["environment_scope"] == v["environment_scope"] for x in p.variables):
        problems.setdefault("key", []).append(f"({key}) has already been taken")
    _check_masked(p, v, problems)
    if problems:
        raise errors.validation(problems)
    p.variables.append(v)
    return 201, E.variable(v)


@router.add("PUT", "/projects/:id/variables/:key")
def update_variable(ctx, id, key):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    v = _find_variable(ctx, p, key)
    new = dict(v)
    if "value" in ctx.params:
        new["value"] = ctx.params.str("value")
    if "variable_type" in ctx.params:
        new["variable_type"] = ctx.params.values("variable_type", ("env_var", "file"))
    for flag in ("protected", "masked", "raw"):
        if flag in ctx.params:
            new[flag] = bool(ctx.params.bool(flag))
    if "environment_scope" in ctx.params:
        new["environment_scope"] = ctx.params.str("environment_scope") or "*"
    if "description" in ctx.params:
        new["description"] = ctx.params.str("description")
    problems = {}
    if v["hidden"] and not new["masked"]:
        problems["masked"] = ["The visibility setting cannot be changed for masked and hidden variables."]
    if new["environment_scope"] != v["environment_scope"] and any(
            x is not v and x["key"] == key and x["environment_scope"] == new["environment_scope"] for x in p.variables):
        problems.setdefault("key", []).append(f"({key}) has already been taken")
    others = [x for x in p.variables if x is not v]
    _check_masked(type("P", (), {"variables": others})(), new, problems)
    if problems:
        raise errors.validation(problems)
    v.update(new)
    return E.variable(v)


@router.add("DELETE", "/projects/:id/variables/:key")
def delete_variable(ctx, id, key):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    p.variables.remove(_find_variable(ctx, p, key))
    return 204, None


# -- environments ---------------------------------------------------------------------------
def _guess_tier(name):
    n = name.lower()
    for tier, words in (("production", ("prod", "live")), ("staging", ("stag", "model", "pre")),
                        ("testing", ("test", "qa", "uat")), ("development", ("dev", "review", "trunk"))):
        if any(w in n for w in words):
            return tier
    return "other"


def _env_entity(ctx, p, env, with_last=False):
    out = {k: env[k] for k in ("id", "name", "slug", "description", "external_url", "state", "tier",
                               "created_at", "updated_at", "auto_stop_at")}
    out["auto_stop_setting"] = "always"
    out["cluster_agent"] = None
    out["kubernetes_namespace"] = None
    out["flux_resource_path"] = None
    if with_last:
        last = _last_deployment(p, env)
        out["last_deployment"] = _deployment_entity(ctx, p, last, with_env=False) if last else None
    return out


def _last_deployment(p, env):
    done = [d for d in p.deployments.values() if d["environment_id"] == env["id"] and d["status"] == "success"]
    return max(done, key=lambda d: (d["finished_at"] or "", d["id"])) if done else None


def _find_env(ctx, p, env_id):
    env = p.environments.get(int(env_id)) if str(env_id).isdigit() else None
    if env is None:
        raise errors.not_found("Environment")
    return env


def create_env(ctx, p, name, external_url=None, tier=None, description=None):
    now = now_iso()
    env = {"id": ctx.state.next_id("environment"), "name": name, "slug": E.env_slug(name),
           "description": description, "external_url": external_url, "state": "available",
           "tier": tier or _guess_tier(name), "created_at": now, "updated_at": now, "auto_stop_at": None}
    p.environments[env["id"]] = env
    return env


@router.add("GET", "/projects/:id/environments", job_token=True)
def list_environments(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    envs = sorted(p.environments.values(), key=lambda e: e["id"])
    if "name" in ctx.params:
        envs = [e for e in envs if e["name"] == ctx.params.str("name")]
    search = ctx.params.str("search")
    if search is not None:
        if len(search) < 3:
            raise errors.bad_request_helper("Search query is less than 3 characters")
        envs = [e for e in envs if search in e["name"]]
    if ctx.params.str("states"):
        envs = [e for e in envs if e["state"] == ctx.params.values("states", ("available", "stopping", "stopped"))]
    return [_env_entity(ctx, p, e) for e in paginate(ctx, envs)]


@router.add("GET", "/projects/:id/environments/:environment_id", job_token=True)
def get_environment(ctx, id, environment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    return _env_entity(ctx, p, _find_env(ctx, p, environment_id), with_last=True)


@router.add("POST", "/projects/:id/environments", job_token=True)
def create_environment(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    ctx.params.require("name")
    name = ctx.params.str("name")
    tier = ctx.params.values("tier", TIERS)
    if any(e["name"] == name for e in p.environments.values()):
        raise errors.validation({"name": ["has already been taken"]})
    if not re.match(r"\A[a-zA-Z0-9 _/${}.-]+\Z", name):
        raise errors.validation({"name": ["can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', "
                                          "and spaces, but it cannot start or end with '/'"]})
    env = create_env(ctx, p, name, ctx.params.str("external_url"), tier, ctx.params.str("description"))
    return 201, _env_entity(ctx, p, env)


@router.add("PUT", "/projects/:id/environments/:environment_id", job_token=True)
def update_environment(ctx, id, environment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    env = _find_env(ctx, p, environment_id)
    if "external_url" in ctx.params:
        env["external_url"] = ctx.params.str("external_url")
    if "tier" in ctx.params:
        env["tier"] = ctx.params.values("tier", TIERS)
    if "description" in ctx.params:
        env["description"] = ctx.params.str("description")
    env["updated_at"] = now_iso()
    return _env_entity(ctx, p, env)


@router.add("POST", "/projects/:id/environments/:environment_id/stop", job_token=True)
def stop_environment(ctx, id, environment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    env = _find_env(ctx, p, environment_id)
    env["state"] = "stopped"
    env["updated_at"] = now_iso()
    return 200, _env_entity(ctx, p, env)


@router.add("DELETE", "/projects/:id/environments/:environment_id")
def delete_environment(ctx, id, environment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    env = _find_env(ctx, p, environment_id)
    if env["state"] != "stopped":
        raise errors.forbidden()
    del p.environments[env["id"]]
    return 204, None


# -- protected environments (Premium) ----------------------------------------------------------
def _deploy_items(ctx, items, approvals=False):
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise errors.invalid("deploy_access_levels")
        level = it.get("access_level")
        entry = {"id": ctx.state.next_id("deploy_access_level"),
                 "access_level": int(level) if level is not None else None,
                 "access_level_description": E.PROTECT_DESCRIPTIONS.get(int(level), str(level)) if level is not None
                 else ("user" if it.get("user_id") else "group"),
                 "user_id": int(it["user_id"]) if it.get("user_id") else None,
                 "group_id": int(it["group_id"]) if it.get("group_id") else None,
                 "group_inheritance_type": int(it.get("group_inheritance_type") or 0)}
        if approvals:
            entry["required_approvals"] = int(it.get("required_approvals") or 1)
        out.append(entry)
    return out


def _pe_entity(pe):
    return {"name": pe["name"], "deploy_access_levels": pe["deploy_access_levels"],
            "required_approval_count": sum(r["required_approvals"] for r in pe["approval_rules"]),
            "approval_rules": pe["approval_rules"]}


def can_deploy(st, user, p, env_name):
    pe = p.protected_environments.get(env_name)
    if pe is None:
        return True
    level = st.project_level(user, p)
    for item in pe["deploy_access_levels"]:
        if item["access_level"] and level >= item["access_level"]:
            return True
        if item["user_id"] and user and item["user_id"] == user.id:
            return True
        if item["group_id"] and user and st.namespaces.get(item["group_id"]) and \
                st.group_level(user, st.namespaces[item["group_id"]]) >= DEVELOPER:
            return True
    return user is not None and user.admin


@router.add("GET", "/projects/:id/protected_environments")
def list_protected_environments(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return [_pe_entity(pe) for pe in paginate(ctx, list(p.protected_environments.values()))]


@router.add("GET", "/projects/:id/protected_environments/:name")
def get_protected_environment(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    if name not in p.protected_environments:
        raise errors.not_found()
    return _pe_entity(p.protected_environments[name])


@router.add("POST", "/projects/:id/protected_environments")
def protect_environment(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("name", "deploy_access_levels")
    name = ctx.params.str("name")
    if name in p.protected_environments:
        raise errors.conflict(f"Protected environment '{name}' already exists")
    pe = {"name": name, "deploy_access_levels": _deploy_items(ctx, ctx.params.list("deploy_access_levels")),
          "approval_rules": _deploy_items(ctx, ctx.params.list("approval_rules"), approvals=True)}
    p.protected_environments[name] = pe
    return 201, _pe_entity(pe)


@router.add("PUT", "/projects/:id/protected_environments/:name")
def update_protected_environment(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    pe = p.protected_environments.get(name)
    if pe is None:
        raise errors.not_found()
    for key, approvals in (("deploy_access_levels", False), ("approval_rules", True)):
        for it in ctx.params.list(key):
            if isinstance(it, dict) and it.get("id"):
                pe[key] = [x for x in pe[key] if x["id"] != int(it["id"]) or not it.get("_destroy")]
                for x in pe[key]:
                    if x["id"] == int(it["id"]):
                        x.update({k: v for k, v in it.items() if k in x and k != "id"})
            elif isinstance(it, dict):
                pe[key] += _deploy_items(ctx, [it], approvals)
    return _pe_entity(pe)


@router.add("DELETE", "/projects/:id/protected_environments/:name")
def unprotect_environment(ctx, id, name):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    if p.protected_environments.pop(name, None) is None:
        raise errors.not_found()
    return 204, None


# -- deployments -------------------------------------------------------------------------------
DEPLOY_STATES = ("created", "running", "success", "failed", "canceled", "blocked")


def _deployment_entity(ctx, p, d, with_env=True):
    st = ctx.state
    out = {k: d[k] for k in ("id", "iid", "ref", "sha", "status", "created_at", "updated_at", "finished_at")}
    out["user"] = E.user_basic(st, st.users.get(d["user_id"]))
    out["deployable"] = None
    out["pending_approval_count"] = 0
    out["approvals"] = []
    env = p.environments.get(d["environment_id"])
    if with_env and env:
        out["environment"] = {k: env[k] for k in ("id", "name", "slug", "external_url", "created_at",
                                                 "updated_at", "state", "tier")}
    return out


@router.add("GET", "/projects/:id/deployments", job_token=True)
def list_deployments(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    items = list(p.deployments.values())
    env_name = ctx.params.str("environment")
    if env_name:
        ids = {e["id"] for e in p.environments.values() if e["name"] == env_name}
        items = [d for d in items if d["environment_id"] in ids]
    if ctx.params.str("status"):
        items = [d for d in items if d["status"] == ctx.params.values("status", DEPLOY_STATES)]
    order = ctx.params.values("order_by", ("id", "iid", "created_at", "updated_at", "finished_at", "ref"), "id")
    sort = ctx.params.values("sort", ("asc", "desc"), "asc")
    if order == "finished_at" or any(k in ctx.params for k in ("finished_after", "finished_before")):
        if ctx.params.str("status") != "success" or order != "finished_at":
            raise errors.bad_request_helper(
                "`finished_at` filter and order requires the `status` filter to be `success`")  # (text unverified)
    for key, op in (("updated_after", "gt"), ("updated_before", "lt"),
                    ("finished_after", "gt"), ("finished_before", "lt")):
        if ctx.params.str(key):
            field = key.split("_")[0] + "_at"
            val = ctx.params.str(key)
            items = [d for d in items if d[field] and (d[field] > val if op == "gt" else d[field] < val)]
    items.sort(key=lambda d: (d[order] or "", d["id"]) if order not in ("id", "iid") else d[order],
               reverse=sort == "desc")
    return [_deployment_entity(ctx, p, d) for d in paginate(ctx, items)]


@router.add("GET", "/projects/:id/deployments/:deployment_id", job_token=True)
def get_deployment(ctx, id, deployment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    d = p.deployments.get(int(deployment_id)) if deployment_id.isdigit() else None
    if d is None:
        raise errors.not_found("Deployment")   # (text unverified)
    return _deployment_entity(ctx, p, d)


@router.add("POST", "/projects/:id/deployments", job_token=True)
def create_deployment(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    ctx.params.require("environment", "sha", "ref", "tag", "status")
    status = ctx.params.values("status", ("running", "success", "failed", "canceled"))
    name = ctx.params.str("environment")
    if not can_deploy(st, ctx.auth.user, p, name):
        raise errors.forbidden()
    env = next((e for e in p.environments.values() if e["name"] == name), None) or create_env(ctx, p, name)
    now = now_iso()
    d = {"id": st.next_id("deployment"), "iid": p.next_iid("deployment"), "ref": ctx.params.str("ref"),
         "sha": ctx.params.str("sha"), "tag": bool(ctx.params.bool("tag")), "status": status,
         "created_at": now, "updated_at": now,
         "finished_at": now if status in ("success", "failed", "canceled") else None,
         "user_id": ctx.auth.user.id, "environment_id": env["id"]}
    p.deployments[d["id"]] = d
    if status == "success" and env["state"] == "stopped":
        env["state"] = "available"
    return 201, _deployment_entity(ctx, p, d)


@router.add("PUT", "/projects/:id/deployments/:deployment_id", job_token=True)
def update_deployment(ctx, id, deployment_id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    d = p.deployments.get(int(deployment_id)) if deployment_id.isdigit() else None
    if d is None:
        raise errors.not_found("Deployment")
    ctx.params.require("status")
    status = ctx.params.values("status", ("running", "success", "failed", "canceled"))
    env = p.environments[d["environment_id"]]
    if not can_deploy(st, ctx.auth.user, p, env["name"]):
        raise errors.forbidden()
    d["status"] = status
    d["updated_at"] = now_iso()
    if status in ("success", "failed", "canceled"):
        d["finished_at"] = d["updated_at"]
    return _deployment_entity(ctx, p, d)


@router.add("DELETE", "/projects/:id/deployments/:deployment_id")
def delete_deployment(ctx, id, deployment_id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    d = p.deployments.get(int(deployment_id)) if deployment_id.isdigit() else None
    if d is None:
        raise errors.not_found("Deployment")
    if d["status"] == "running":
        raise errors.bad_request("400 Cannot destroy running deployment")
    env = p.environments.get(d["environment_id"])
    if env and _last_deployment(p, env) is d:
        raise errors.bad_request("400 Deployment currently deployed to environment")
    del p.deployments[d["id"]]
    return 204, None


# -- pipelines -------------------------------------------------------------------------------
def new_pipeline(ctx, p, ref, sha, source, status="created", variables=None, user=None):
    st = ctx.state
    now = now_iso()
    pid = st.next_id("pipeline")
    pl = {"id": pid, "iid": p.next_iid("pipeline"), "project_id": p.id, "sha": sha, "ref": ref,
          "status": status, "source": source, "before_sha": "0" * 40,
          "tag": ref in p.repo.tags(), "user_id": (user or ctx.auth.user).id if (user or ctx.auth.user) else None,
          "created_at": now, "updated_at": now, "started_at": None, "finished_at": None, "committed_at": None,
          "duration": None, "queued_duration": None, "coverage": None, "name": None,
          "web_url": f"{st.base_url}/{st.project_path(p)}/-/pipelines/{pid}",
          "variables": variables or []}
    p.pipelines[pid] = pl
    return pl


def pipeline_entity(ctx, pl, basic=False):
    out = {k: v for k, v in pl.items() if k not in ("variables", "user_id")}
    if basic:
        return {k: out[k] for k in ("id", "iid", "project_id", "sha", "ref", "status", "source",
                                    "created_at", "updated_at", "web_url")}
    out["user"] = E.user_basic(ctx.state, ctx.state.users.get(pl["user_id"]))
    out["detailed_status"] = {"icon": f"status_{pl['status']}", "text": pl["status"], "label": pl["status"],
                              "group": pl["status"], "has_details": True,
                              "details_path": pl["web_url"].split("127.0.0.1", 1)[-1].split("/", 1)[-1]}
    out["yaml_errors"] = None
    return out


def _check_pipeline_variables(ctx, p, variables, user):
    if not variables or not p.settings.get("restrict_user_defined_variables"):
        return
    role = p.settings.get("ci_pipeline_variables_minimum_override_role", "developer")
    need = {"owner": OWNER, "maintainer": MAINTAINER, "developer": DEVELOPER, "no_one_allowed": 999}[role]
    if ctx.state.project_level(user, p) < need:
        raise errors.validation({"base": ["Insufficient permissions to set pipeline variables"]})


@router.add("POST", "/projects/:id/pipeline")
def create_pipeline(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    ctx.params.require("ref")
    ref = ctx.params.str("ref")
    sha = p.repo.commit_sha(ref) if not p.repo.is_empty() else None
    if sha is None:
        raise errors.validation({"base": ["Reference not found"]})
    variables = [{"key": v.get("key"), "value": v.get("value"), "variable_type": v.get("variable_type", "env_var")}
                 for v in ctx.params.list("variables") if isinstance(v, dict)]
    _check_pipeline_variables(ctx, p, variables, ctx.auth.user)
    return 201, pipeline_entity(ctx, new_pipeline(ctx, p, ref, sha, "api", variables=variables))


@router.add("POST", "/projects/:id/trigger/pipeline", anonymous_write=True)
def trigger_pipeline(ctx, id):
    st = ctx.state
    ctx.params.require("ref", "token")
    token = ctx.params.str("token")
    p = st.project_by_ref(id)
    if p is None:
        raise errors.not_found()
    trigger = next((t for t in p.triggers.values() if t["token"] == token), None)
    job = st.job_by_token(token)
    if trigger:
        user, source = st.users[trigger["owner_id"]], "trigger"
        trigger["last_used"] = now_iso()
    elif job and job.status == "running" and job.project_id in p.job_token_allowlist and \
            st.project_level(st.users[job.user_id], p) >= DEVELOPER:
        user, source = st.users[job.user_id], "pipeline"
    else:
        raise errors.not_found()   # bad token (status unverified in gitlab.md)
    ref = ctx.params.str("ref")
    sha = p.repo.commit_sha(ref) if not p.repo.is_empty() else None
    if sha is None:
        raise errors.validation({"base": ["Reference not found"]})
    variables = [{"key": k, "value": v, "variable_type": "env_var"} for k, v in ctx.params.dict("variables").items()]
    _check_pipeline_variables(ctx, p, variables, user)
    pl = new_pipeline(ctx, p, ref, sha, source, variables=variables, user=user)
    return 201, pipeline_entity(ctx, pl)


@router.add("GET", "/projects/:id/pipelines")
def list_pipelines(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    items = list(p.pipelines.values())
    for key in ("ref", "sha", "status", "source"):
        if ctx.params.str(key):
            items = [x for x in items if x[key] == ctx.params.str(key)]
    order = ctx.params.values("order_by", ("id", "status", "ref", "updated_at", "user_id"), "id")
    items.sort(key=lambda x: (x[order] or 0, x["id"]), reverse=ctx.params.str("sort", "desc") == "desc")
    return [pipeline_entity(ctx, x, basic=True) for x in paginate(ctx, items)]


def _find_pipeline(ctx, p, pipeline_id):
    pl = p.pipelines.get(int(pipeline_id)) if pipeline_id.isdigit() else None
    if pl is None:
        raise errors.not_found()
    return pl


@router.add("GET", "/projects/:id/pipelines/:pipeline_id")
def get_pipeline(ctx, id, pipeline_id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    return pipeline_entity(ctx, _find_pipeline(ctx, p, pipeline_id))


@router.add("GET", "/projects/:id/pipelines/:pipeline_id/variables")
def get_pipeline_variables(ctx, id, pipeline_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    return _find_pipeline(ctx, p, pipeline_id)["variables"]


@router.add("POST", "/projects/:id/pipelines/:pipeline_id/cancel")
def cancel_pipeline(ctx, id, pipeline_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    pl = _find_pipeline(ctx, p, pipeline_id)
    if pl["status"] in ("created", "pending", "running", "waiting_for_resource", "preparing", "manual", "scheduled"):
        pl["status"] = "canceled"
        pl["finished_at"] = pl["updated_at"] = now_iso()
    return 200, pipeline_entity(ctx, pl)


@router.add("POST", "/projects/:id/pipelines/:pipeline_id/retry")
def retry_pipeline(ctx, id, pipeline_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    pl = _find_pipeline(ctx, p, pipeline_id)
    if pl["status"] in ("failed", "canceled"):
        pl["status"] = "pending"
        pl["finished_at"] = None
        pl["updated_at"] = now_iso()
    return 201, pipeline_entity(ctx, pl)


@router.add("GET", "/projects/:id/pipelines/:pipeline_id/jobs")
def pipeline_jobs(ctx, id, pipeline_id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    pl = _find_pipeline(ctx, p, pipeline_id)
    jobs = [j for j in ctx.state.jobs.values() if j.pipeline_id == pl["id"]]
    scopes = ctx.params.list("scope")
    if scopes:
        jobs = [j for j in jobs if j.status in scopes]
    return [job_entity(ctx.state, j) for j in paginate(ctx, jobs)]


# -- pipeline triggers --------------------------------------------------------------------------
def _trigger_entity(ctx, t):
    return {"id": t["id"], "description": t["description"], "created_at": t["created_at"],
            "last_used": t["last_used"], "token": t["token"], "updated_at": t["created_at"],
            "owner": E.user_basic(ctx.state, ctx.state.users.get(t["owner_id"]))}


@router.add("GET", "/projects/:id/triggers")
def list_triggers(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    return [_trigger_entity(ctx, t) for t in paginate(ctx, list(p.triggers.values()))]


@router.add("POST", "/projects/:id/triggers")
def create_trigger(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    ctx.params.require("description")
    t = {"id": ctx.state.next_id("trigger"), "description": ctx.params.str("description"),
         "token": "glptt-" + secrets.token_hex(20), "owner_id": ctx.auth.user.id,
         "created_at": now_iso(), "last_used": None}
    p.triggers[t["id"]] = t
    return 201, _trigger_entity(ctx, t)


@router.add("DELETE", "/projects/:id/triggers/:trigger_id")
def delete_trigger(ctx, id, trigger_id):
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    if p.triggers.pop(int(trigger_id) if trigger_id.isdigit() else -1, None) is None:
        raise errors.not_found("Trigger")
    return 204, None


# -- jobs ------------------------------------------------------------------------------------------
def _find_job(ctx, p, job_id):
    j = ctx.state.jobs.get(int(job_id)) if job_id.isdigit() else None
    if j is None or j.project_id != p.id:
        raise errors.not_found()
    return j


@router.add("GET", "/projects/:id/jobs")
def list_jobs(ctx, id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    jobs = [job_entity(ctx.state, j) for j in ctx.state.jobs.values() if j.project_id == p.id]
    scopes = ctx.params.list("scope")
    if scopes:
        jobs = [j for j in jobs if j["status"] in scopes]
    if ctx.params.str("pagination") == "keyset":
        ctx.params.data.setdefault("sort", "desc")
        return keyset_paginate(ctx, jobs)
    jobs.sort(key=lambda j: j["id"], reverse=True)
    return paginate(ctx, jobs)


@router.add("GET", "/projects/:id/jobs/:job_id")
def get_job(ctx, id, job_id):
    p = find_project(ctx, id)
    authorize(ctx, p, REPORTER)
    return job_entity(ctx.state, _find_job(ctx, p, job_id))


@router.add("POST", "/projects/:id/jobs/:job_id/play")
def play_job(ctx, id, job_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    j = _find_job(ctx, p, job_id)
    if j.status != "manual":
        raise errors.bad_request_helper("Unplayable Job")
    j.status = "pending"
    j.user_id = ctx.auth.user.id
    return 200, job_entity(ctx.state, j)


@router.add("POST", "/projects/:id/jobs/:job_id/cancel")
def cancel_job(ctx, id, job_id):
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    j = _find_job(ctx, p, job_id)
    if j.status in ("created", "pending", "running", "manual"):
        j.status = "canceled"
    return 201, job_entity(ctx.state, j)
