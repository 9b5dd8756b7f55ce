"""JSON presenters: the shapes GitLab returns (gitlab.md sections 2-7).

Each function turns a state object into the dict GitLab's API entity would
serialize, with the fields berth (and python-gitlab) read.
"""

import hashlib

from .state import PROTECT_DESCRIPTIONS


def user_basic(st, user):
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "name": user.name, "state": user.state,
            "locked": False, "avatar_url": None, "web_url": f"{st.base_url}/{user.username}"}


def user_full(st, user):
    out = user_basic(st, user)
    out.update({"email": user.email, "public_email": None, "is_admin": user.admin, "bot": user.bot,
                "created_at": user.created_at, "can_create_group": True, "can_create_project": True,
                "two_factor_enabled": False, "external": False})
    return out


def member(st, user, level, expires_at=None):
    out = user_basic(st, user)
    out.update({"access_level": level, "expires_at": expires_at, "created_at": user.created_at,
                "membership_state": "active", "email": user.email})
    return out


def namespace(st, ns):
    full = st.full_path(ns)
    return {"id": ns.id, "name": ns.name, "path": ns.path, "kind": ns.kind, "full_path": full,
            "parent_id": ns.parent_id, "avatar_url": None, "web_url": f"{st.base_url}/{full}"}


def group(st, ns):
    full = st.full_path(ns)
    return {"id": ns.id, "name": ns.name, "path": ns.path, "description": ns.description,
            "visibility": ns.visibility, "full_name": st.full_name(ns), "full_path": full,
            "parent_id": ns.parent_id, "created_at": ns.created_at, "web_url": f"{st.base_url}/groups/{full}",
            "avatar_url": None, "project_creation_level": "maintainer", "subgroup_creation_level": "maintainer"}


def project(st, p, auth=None):
    ns = st.namespaces[p.namespace_id]
    full = st.project_path(p)
    out = {
        "id": p.id, "description": p.description, "name": p.name,
        "name_with_namespace": f"{st.full_name(ns)} / {p.name}",
        "path": p.path, "path_with_namespace": full, "created_at": p.created_at,
        "default_branch": p.default_branch, "tag_list": [], "topics": p.settings.get("topics", []),
        "ssh_url_to_repo": f"git@127.0.0.1:{full}.git",
        "http_url_to_repo": f"{st.base_url}/{full}.git",
        "web_url": f"{st.base_url}/{full}", "readme_url": None, "avatar_url": None,
        "forks_count": 0, "star_count": 0, "last_activity_at": p.last_activity_at,
        "namespace": namespace(st, ns), "visibility": p.visibility, "archived": p.archived,
        "empty_repo": p.repo.is_empty(), "creator_id": p.creator_id,
        "ci_config_path": p.ci_config_path,
        "merge_method": p.settings.get("merge_method", "merge"),
        "squash_option": p.settings.get("squash_option", "default_off"),
        "only_allow_merge_if_pipeline_succeeds": p.settings.get("only_allow_merge_if_pipeline_succeeds", False),
        "only_allow_merge_if_all_discussions_are_resolved":
            p.settings.get("only_allow_merge_if_all_discussions_are_resolved", False),
        "remove_source_branch_after_merge": p.settings.get("remove_source_branch_after_merge", True),
        "restrict_user_defined_variables": p.settings.get("restrict_user_defined_variables", False),
        "ci_pipeline_variables_minimum_override_role":
            p.settings.get("ci_pipeline_variables_minimum_override_role", "developer"),
        "ci_job_token_scope_enabled": True,
        "ci_push_repository_for_job_token_allowed": p.settings.get("ci_push_repository_for_job_token_allowed", False),
        "allow_pipeline_trigger_approve_deployment": p.settings.get("allow_pipeline_trigger_approve_deployment", False),
        "issues_enabled": True, "merge_requests_enabled": True, "jobs_enabled": True, "wiki_enabled": True,
        "snippets_enabled": True, "container_registry_enabled": False,
        "merge_requests_access_level": "enabled", "builds_access_level": "enabled",
        "repository_access_level": "enabled", "shared_runners_enabled": True, "lfs_enabled": True,
        "request_access_enabled": True, "shared_with_groups": [], "open_issues_count": 0,
    }
    if auth is not None:
        direct = p.members.get(auth.user.id) if auth.user else None
        gl = st.group_level(auth.user, ns) if auth.user and ns.kind == "group" else 0
        out["permissions"] = {
            "project_access": {"access_level": direct, "notification_level": 3} if direct else None,
            "group_access": {"access_level": gl, "notification_level": 3} if gl and gl < 60 else None,
        }
    return out


def commit(st, p, c, stats=None):
    if c is None:
        return None
    msg = c["message"]
    out = {"id": c["id"], "short_id": c["id"][:8], "created_at": c["committed_date"],
           "parent_ids": c["parent_ids"], "title": msg.split("\n", 1)[0], "message": msg,
           "author_name": c["author_name"], "author_email": c["author_email"],
           "authored_date": c["authored_date"], "committer_name": c["committer_name"],
           "committer_email": c["committer_email"], "committed_date": c["committed_date"],
           "trailers": {}, "extended_trailers": {},
           "web_url": f"{st.base_url}/{st.project_path(p)}/-/commit/{c['id']}"}
    if stats is not None:
        out["stats"] = stats
        out["status"] = None
        out["project_id"] = p.id
        out["last_pipeline"] = None
    return out


def branch(st, p, name, sha, auth):
    can_push = auth.user is not None and st.can_push_branch(auth.user, p, name)
    rules = st.matching_protected_branches(p, name)
    dev_push = any(l["access_level"] == 30 for r in rules for l in r["push_access_levels"])
    dev_merge = any(l["access_level"] == 30 for r in rules for l in r["merge_access_levels"])
    merged = name != p.default_branch and p.repo.branch_sha(p.default_branch) is not None and \
        p.repo.is_ancestor(sha, p.repo.branch_sha(p.default_branch))
    return {"name": name, "merged": merged, "protected": bool(rules), "default": name == p.default_branch,
            "developers_can_push": dev_push, "developers_can_merge": dev_merge, "can_push": can_push,
            "web_url": f"{st.base_url}/{st.project_path(p)}/-/tree/{name}",
            "commit": commit(st, p, p.repo.commit(sha))}


def tag(st, p, t):
    return {"name": t["name"], "message": t["message"], "target": t["target"],
            "commit": commit(st, p, p.repo.commit(t["commit"])), "release": None,
            "protected": bool(st.matching_protected_tags(p, t["name"])), "created_at": t["created_at"]}


def variable(v):
    return {"variable_type": v["variable_type"], "key": v["key"],
            "value": None if v["hidden"] else v["value"], "protected": v["protected"],
            "masked": v["masked"], "hidden": v["hidden"], "raw": v["raw"],
            "environment_scope": v["environment_scope"], "description": v["description"]}


def env_slug(name):
    """Gitlab::Slug::Environment."""
    slug = "".join(ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else "-" for ch in name.lower())
    if not slug or not ("a" <= slug[0] <= "z"):
        slug = "env-" + slug
    while "--" in slug:
        slug = slug.replace("--", "-")
    if len(slug) > 24 or slug != name:
        n = int(hashlib.sha256(name.encode()).hexdigest(), 16)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        b36 = ""
        while n:
            n, r = divmod(n, 36)
            b36 = digits[r] + b36
        slug = slug[:17].rstrip("-") + "-" + b36[-6:]
    return slug.rstrip("-")


def level_item(item_id, level, **extra):
    out = {"id": item_id, "access_level": level,
           "access_level_description": PROTECT_DESCRIPTIONS.get(level, str(level)),
           "user_id": None, "group_id": None, "deploy_key_id": None}
    out.update(extra)
    return out
