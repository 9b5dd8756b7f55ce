"""All in-memory state of the fake, its lock, permissions and seeding.

One ``State`` object holds users, tokens, running jobs (job tokens), groups
and user namespaces, projects and everything that hangs off a project
(members, protected branches/tags/environments, variables, environments,
deployments, merge requests and notes, commit statuses, pipelines).  Git data
itself lives in bare repositories under ``<data>/repos/<full_path>.git``.

Concurrency: ``State.lock`` (one re-entrant lock) is held by the server around
every API handler, so each request sees and changes the state atomically,
including its git writes.  Smart-HTTP pushes run outside the lock.

Permissions follow GitLab's role model (10 Guest, 20 Reporter, 30 Developer,
40 Maintainer, 50 Owner; admins count as 60): a user's level on a project is
the highest of its direct membership, its membership of any ancestor group,
and ownership of a personal namespace.
"""

import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from .gitrepo import Repo, now_iso

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER, ADMIN = 10, 20, 30, 40, 50, 60
ACCESS_DESCRIPTIONS = {0: "No access", 5: "Minimal access", 10: "Guest", 15: "Planner", 20: "Reporter",
                       30: "Developer", 40: "Maintainer", 50: "Owner", 60: "Admin"}
PROTECT_DESCRIPTIONS = {0: "No one", 30: "Developers + Maintainers", 40: "Maintainers", 60: "Admins"}

DEFAULT_SEED = {
    "users": [{"username": "root", "name": "Administrator", "email": "admin@example.com", "admin": True}],
    "tokens": [{"token": "root-token", "user": "root", "scopes": ["api"]}],
}


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    admin: bool = False
    bot: bool = False
    state: str = "active"
    created_at: str = field(default_factory=now_iso)
    bot_project_id: Optional[int] = None   # the project whose access token made this bot


@dataclass
class Token:
    value: str
    user_id: int
    scopes: list
    kind: str = "personal"   # personal | project | group | oauth
    name: str = "token"
    revoked: bool = False
    id: int = 0
    expires_at: Optional[str] = None      # YYYY-MM-DD; the token stops working on that day
    description: Optional[str] = None
    created_at: str = field(default_factory=now_iso)
    last_used_at: Optional[str] = None

    def expired(self):
        return self.expires_at is not None and self.expires_at <= today()

    def active(self):
        return not self.revoked and not self.expired()


@dataclass
class DeployToken:
    """A project deploy token: git over HTTP only (its username + token), no REST API."""
    id: int
    project_id: int
    name: str
    username: str
    token: str
    scopes: list
    expires_at: Optional[str] = None      # ISO timestamp or None (never expires)
    revoked: bool = False
    created_at: str = field(default_factory=now_iso)

    def expired(self):
        return self.expires_at is not None and self.expires_at <= now_iso()

    def active(self):
        return not self.revoked and not self.expired()


@dataclass
class Job:
    """A running CI job; its token is a JOB-TOKEN while status == running."""
    id: int
    token: str
    user_id: int
    project_id: int
    name: str = "job"
    stage: str = "test"
    ref: str = "main"
    sha: Optional[str] = None
    tag: bool = False
    status: str = "running"
    pipeline_id: Optional[int] = None
    created_at: str = field(default_factory=now_iso)


@dataclass
class Namespace:
    id: int
    name: str
    path: str
    kind: str                 # group | user
    parent_id: Optional[int] = None
    owner_id: Optional[int] = None
    visibility: str = "private"
    description: str = ""
    members: dict = field(default_factory=dict)    # user_id -> access level
    created_at: str = field(default_factory=now_iso)


@dataclass
class Project:
    id: int
    name: str
    path: str
    namespace_id: int
    creator_id: int
    repo: Repo
    description: str = ""
    visibility: str = "private"
    default_branch: str = "main"
    ci_config_path: Optional[str] = None
    archived: bool = False
    settings: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)           # user_id -> access level
    protected_branches: list = field(default_factory=list)
    protected_tags: list = field(default_factory=list)
    protected_environments: dict = field(default_factory=dict)  # name -> dict
    variables: list = field(default_factory=list)
    environments: dict = field(default_factory=dict)      # id -> dict
    deployments: dict = field(default_factory=dict)       # id -> dict
    merge_requests: dict = field(default_factory=dict)    # iid -> dict
    statuses: list = field(default_factory=list)
    pipelines: dict = field(default_factory=dict)         # id -> dict
    triggers: dict = field(default_factory=dict)          # id -> dict
    job_token_allowlist: set = field(default_factory=set)  # project ids allowed in
    iids: dict = field(default_factory=dict)
    default_branch_seen: bool = False
    created_at: str = field(default_factory=now_iso)
    last_activity_at: str = field(default_factory=now_iso)

    def next_iid(self, kind):
        self.iids[kind] = self.iids.get(kind, 0) + 1
        return self.iids[kind]


@dataclass
class Auth:
    """Who is calling: user (None = anonymous), how, and with which scopes."""
    user: Optional[User] = None
    kind: Optional[str] = None        # private | oauth | job | None
    token: Optional[str] = None
    scopes: tuple = ()
    job: Optional[Job] = None
    invalid: bool = False             # a token was sent but is unknown/revoked/expired
    token_obj: Optional[Token] = None     # the access token used (PRIVATE-TOKEN / Bearer / git)
    deploy_token: Optional[DeployToken] = None


class SeedError(ValueError):
    """A seed the fake refuses as GitLab would refuse the same state (answered 400, no traceback)."""


def today():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def wildcard_match(pattern, name):
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, name) is not None


class State:
    def __init__(self, data_dir, seed=None):
        self.lock = threading.RLock()
        self.data_dir = os.path.abspath(data_dir)
        self.repos_dir = os.path.join(self.data_dir, "repos")
        self.base_url = "http://127.0.0.1"
        self.initial_seed = seed if seed is not None else DEFAULT_SEED
        self.reset()

    # -- lifecycle -------------------------------------------------------------
    def reset(self):
        with self.lock:
            if os.path.isdir(self.repos_dir):
                shutil.rmtree(self.repos_dir)
            os.makedirs(self.repos_dir, exist_ok=True)
            self.settings = {"default_branch_protection": 2, "default_branch": "main"}
            self.counters = {}
            self.users, self.tokens, self.jobs = {}, {}, {}
            self.deploy_tokens = {}   # id -> DeployToken
            self.namespaces, self.projects = {}, {}
            self.quick_actions = []
            self.apply_seed(self.initial_seed)

    def next_id(self, kind):
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    # -- lookups -----------------------------------------------------------------
    def user_by_name(self, username):
        for u in self.users.values():
            if u.username.lower() == str(username).lower():
                return u
        return None

    def full_path(self, ns):
        parts = []
        while ns is not None:
            parts.append(ns.path)
            ns = self.namespaces.get(ns.parent_id) if ns.parent_id else None
        return "/".join(reversed(parts))

    def full_name(self, ns):
        parts = []
        while ns is not None:
            parts.append(ns.name)
            ns = self.namespaces.get(ns.parent_id) if ns.parent_id else None
        return " / ".join(reversed(parts))

    def namespace_by_ref(self, ref):
        """A namespace by numeric id or (URL-decoded) full path."""
        ref = str(ref)
        if ref.isdigit():
            return self.namespaces.get(int(ref))
        for ns in self.namespaces.values():
            if self.full_path(ns).lower() == ref.lower():
                return ns
        return None

    def project_path(self, p):
        return f"{self.full_path(self.namespaces[p.namespace_id])}/{p.path}"

    def project_by_ref(self, ref):
        ref = str(ref)
        if ref.isdigit():
            return self.projects.get(int(ref))
        for p in self.projects.values():
            if self.project_path(p).lower() == ref.lower():
                return p
        return None

    def ancestors(self, ns):
        while ns is not None:
            yield ns
            ns = self.namespaces.get(ns.parent_id) if ns.parent_id else None

    # -- permissions ---------------------------------------------------------------
    def group_level(self, user, ns):
        if user is None:
            return 0
        if user.admin:
            return ADMIN
        level = 0
        for anc in self.ancestors(ns):
            if anc.kind == "user" and anc.owner_id == user.id:
                level = max(level, OWNER)
            level = max(level, anc.members.get(user.id, 0))
        return level

    def project_level(self, user, project):
        if user is None:
            return 0
        if user.admin:
            return ADMIN
        level = project.members.get(user.id, 0)
        return max(level, self.group_level(user, self.namespaces[project.namespace_id]))

    def visible(self, auth, project):
        if project.visibility == "public":
            return True
        if project.visibility == "internal" and auth.user is not None:
            return True
        return self.project_level(auth.user, project) >= GUEST

    def can_read_code(self, auth, project):
        if project.visibility == "public":
            return True
        if project.visibility == "internal" and auth.user is not None:
            return True
        return self.project_level(auth.user, project) >= REPORTER

    def group_visible(self, auth, ns):
        if ns.visibility == "public" or (ns.visibility == "internal" and auth.user):
            return True
        if self.group_level(auth.user, ns) >= GUEST:
            return True
        # members of a project below the group can see the group
        for p in self.projects.values():
            below = {a.id for a in self.ancestors(self.namespaces[p.namespace_id])}
            if ns.id in below and self.project_level(auth.user, p) >= GUEST:
                return True
        return False

    def matching_protected_branches(self, project, branch):
        return [r for r in project.protected_branches if wildcard_match(r["name"], branch)]

    def matching_protected_tags(self, project, tag):
        return [r for r in project.protected_tags if wildcard_match(r["name"], tag)]

    @staticmethod
    def allowed_by(levels, level):
        return any(l["access_level"] != 0 and level >= l["access_level"] for l in levels)

    def _may_on_branch(self, user, project, branch, levels_key):
        """Developer+, and allowed by every protection rule matching the branch."""
        level = self.project_level(user, project)
        if level < DEVELOPER:
            return False
        rules = self.matching_protected_branches(project, branch)
        return not rules or any(self.allowed_by(r[levels_key], level) for r in rules)

    def can_push_branch(self, user, project, branch):
        return self._may_on_branch(user, project, branch, "push_access_levels")

    def can_merge_branch(self, user, project, branch):
        return self._may_on_branch(user, project, branch, "merge_access_levels")

    def can_create_tag(self, user, project, tag):
        level = self.project_level(user, project)
        if level < DEVELOPER:
            return False
        rules = self.matching_protected_tags(project, tag)
        return not rules or any(self.allowed_by(r["create_access_levels"], level) for r in rules)

    # -- mutations shared by the API and seeding ------------------------------------
    def add_user(self, username, name=None, email=None, admin=False, bot=False):
        if self.user_by_name(username):
            return self.user_by_name(username)
        u = User(self.next_id("user"), username, name or username, email or f"{username}@example.com", admin, bot)
        self.users[u.id] = u
        ns = Namespace(self.next_id("namespace"), username, username, "user", owner_id=u.id)
        self.namespaces[ns.id] = ns
        return u

    def user_namespace(self, user):
        for ns in self.namespaces.values():
            if ns.kind == "user" and ns.owner_id == user.id:
                return ns
        return None

    def add_group(self, name, path, parent=None, visibility="private", description=""):
        ns = Namespace(self.next_id("namespace"), name, path, "group",
                       parent_id=parent.id if parent else None, visibility=visibility, description=description)
        self.namespaces[ns.id] = ns
        return ns

    def repo_dir(self, ns, path):
        return os.path.join(self.repos_dir, self.full_path(ns), path + ".git")

    def create_project(self, creator, ns, name, path, **opts):
        from . import githttp
        repo = Repo(self.repo_dir(ns, path))
        p = Project(self.next_id("project"), name, path, ns.id, creator.id, repo)
        p.description = opts.get("description") or ""
        p.visibility = opts.get("visibility") or "private"
        p.default_branch = opts.get("default_branch") or self.settings["default_branch"]
        p.ci_config_path = opts.get("ci_config_path") or None
        p.settings.update(opts.get("settings") or {})
        p.job_token_allowlist.add(p.id)
        repo.init(p.default_branch)
        githttp.install_hooks(repo.path)
        self.projects[p.id] = p
        # Group projects get no direct member (group members inherit access);
        # personal projects are owned through the namespace (see group_level).
        if opts.get("initialize_with_readme"):
            blob = repo.hash_blob(f"# {name}\n".encode())
            tree = repo.write_tree({"README.md": ("100644", blob)})
            sha = repo.commit_tree(tree, [], "Initial commit", (creator.name, creator.email))
            repo.update_ref(f"refs/heads/{p.default_branch}", sha, "")
        self.after_ref_change(p)
        return p

    def after_ref_change(self, project):
        """Bookkeeping GitLab does after a push: default branch and its protection."""
        branches = project.repo.branches()
        if branches and project.default_branch not in branches and not project.default_branch_seen:
            project.default_branch = sorted(branches)[0]   # first pushed branch becomes default
            project.repo.set_head(project.default_branch)
        if project.default_branch in branches and not project.default_branch_seen:
            project.default_branch_seen = True
            mode = self.settings.get("default_branch_protection", 2)
            if mode and not self.matching_protected_branches(project, project.default_branch):
                push = {1: DEVELOPER}.get(mode, MAINTAINER)
                merge = {3: DEVELOPER, 1: DEVELOPER}.get(mode, MAINTAINER)
                self.protect_branch(project, project.default_branch, push, merge, False)
        project.last_activity_at = now_iso()

    def protect_branch(self, project, name, push, merge, allow_force_push, unprotect=None):
        def lv(level):
            return {"id": self.next_id("access_level"), "access_level": level,
                    "access_level_description": PROTECT_DESCRIPTIONS.get(level, str(level)),
                    "user_id": None, "group_id": None, "deploy_key_id": None}
        rule = {"id": self.next_id("protected_branch"), "name": name,
                "push_access_levels": [lv(push)], "merge_access_levels": [lv(merge)],
                "unprotect_access_levels": [lv(unprotect)] if unprotect else [],
                "allow_force_push": bool(allow_force_push), "code_owner_approval_required": False,
                "inherited": False}
        project.protected_branches.append(rule)
        return rule

    def set_member(self, target, user, level):
        target.members[user.id] = level

    def memberships(self, user):
        """Every project and group with ``user`` as a direct member."""
        return [p for p in self.projects.values() if user.id in p.members] + \
            [n for n in self.namespaces.values() if n.kind == "group" and user.id in n.members]

    def source_name(self, target):
        return self.project_path(target) if isinstance(target, Project) else self.full_path(target)

    def bot_elsewhere(self, user, target):
        """A token bot is a member of one project or group only (app/models/member.rb:
        ``validates :user_id, uniqueness: {message: "project bots cannot be added to other
        groups / projects"}, if: :project_bot?``); the other membership, if any."""
        if not user.bot:
            return None
        return next((m for m in self.memberships(user) if m is not target), None)

    def add_token(self, value, user, scopes, kind="personal", name="token", expires_at=None,
                  description=None):
        tok = Token(value, user.id, list(scopes), kind, name, id=self.next_id("token"),
                    expires_at=expires_at, description=description)
        self.tokens[value] = tok
        return tok

    # -- seeding -----------------------------------------------------------------
    def apply_seed(self, seed):
        """Apply a seed document (see docs/fake-gitlab.md); returns what was created."""
        out = {"users": {}, "tokens": [], "groups": {}, "projects": {}, "jobs": {}}
        with self.lock:
            self.settings.update(seed.get("settings") or {})
            for u in seed.get("users") or []:
                user = self.add_user(u["username"], u.get("name"), u.get("email"),
                                     bool(u.get("admin")), bool(u.get("bot")))
                out["users"][user.username] = user.id
            for t in seed.get("tokens") or []:
                user = self.user_by_name(t["user"])
                if user is None:
                    raise ValueError(f"token for unknown user {t['user']!r}")
                self.add_token(t["token"], user, t.get("scopes") or ["api"], t.get("kind", "personal"),
                               t.get("name", "token"), t.get("expires_at"))
                out["tokens"].append(t["token"])
            for g in seed.get("groups") or []:
                full = g["path"]
                parent_path, _, leaf = full.rpartition("/")
                parent = self.namespace_by_ref(parent_path) if parent_path else None
                ns = self.namespace_by_ref(full)
                if ns is None:
                    ns = self.add_group(g.get("name", leaf), leaf, parent, g.get("visibility", "private"))
                for uname, level in (g.get("members") or {}).items():
                    self._seed_member(ns, uname, level)
                out["groups"][full] = ns.id
            for pr in seed.get("projects") or []:
                full = pr["path"]
                ns_path, _, leaf = full.rpartition("/")
                p = self.project_by_ref(full)
                if p is None:
                    ns = self.namespace_by_ref(ns_path)
                    creator = self.user_by_name(pr.get("creator", "root")) or next(iter(self.users.values()))
                    p = self.create_project(creator, ns, pr.get("name", leaf), leaf,
                                            visibility=pr.get("visibility", "private"),
                                            initialize_with_readme=pr.get("initialize_with_readme", False),
                                            default_branch=pr.get("default_branch"))
                for uname, level in (pr.get("members") or {}).items():
                    self._seed_member(p, uname, level)
                out["projects"][full] = p.id
            for j in seed.get("jobs") or []:
                job = self.add_job(j)
                out["jobs"][job.token] = job.id
        return out

    def _seed_member(self, target, username, level):
        user = self.user_by_name(username)
        if user is None:
            raise ValueError(f"member {username!r} is not a user of the seed")
        other = self.bot_elsewhere(user, target)
        if other is not None:
            # the same refusal as POST .../members: a bot belongs to one project or group
            raise SeedError(f"{username!r} is a bot (\"bot\": true) and already a member of "
                             f"{self.source_name(other)!r}: project bots cannot be added to other "
                             f"groups / projects (as on GitLab; use a non-bot user, e.g. a "
                             f"service account, to be a member of several)")
        self.set_member(target, user, int(level))

    def add_job(self, spec):
        user = self.user_by_name(spec["user"])
        project = self.project_by_ref(spec["project"])
        if user is None or project is None:
            raise ValueError("job needs an existing user and project")
        job = Job(self.next_id("job"), spec["token"], user.id, project.id,
                  spec.get("name", "job"), spec.get("stage", "test"), spec.get("ref", project.default_branch),
                  spec.get("sha"), bool(spec.get("tag", False)), spec.get("status", "running"),
                  spec.get("pipeline_id"))
        if job.sha is None:
            job.sha = project.repo.commit_sha(job.ref)
        self.jobs[job.id] = job
        return job

    def job_by_token(self, token):
        for j in self.jobs.values():
            if j.token == token:
                return j
        return None
