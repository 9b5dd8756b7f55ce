"""Project access tokens and project deploy tokens (docs/fake-gitlab.md, "Tokens").

Project access tokens (``lib/api/resource_access_tokens.rb``,
``app/services/resource_access_tokens/*``, ``app/services/project_access_tokens/rotate_service.rb``,
``app/services/personal_access_tokens/rotate_service.rb``): each token gets its own bot
user ``project_<project id>_bot_<32 hex>`` (``bot: true``), a direct member of the
project with the token's role; the token is a personal access token of that bot, so
it authenticates the REST API (``PRIVATE-TOKEN``) and git over HTTP (any user name)
with role and scopes as for any user.  A bot belongs to that one project only
(``State.bot_elsewhere``).

Deploy tokens (``lib/api/deploy_tokens.rb``, ``app/models/deploy_token.rb``,
``lib/gitlab/auth.rb#deploy_token_check``): git over HTTP only, with the token's
user name and the token as password, for the one project; never the REST API.
"""

import re
import secrets
from datetime import date, datetime, timedelta, timezone

from . import errors
from .api_core import authorize, find_project
from .routing import paginate, router
from .state import ADMIN, MAINTAINER, OWNER, DeployToken, today

# Gitlab::Auth.resource_bot_scopes (gitlab-permissions.md section 1)
RESOURCE_BOT_SCOPES = ("api", "read_api", "read_repository", "write_repository", "read_registry",
                       "write_registry", "create_runner", "manage_runner", "ai_features", "k8s_proxy",
                       "self_rotate")
# Gitlab::Access.options_with_owner: Guest, Planner, Reporter, Developer, Maintainer, Owner
TOKEN_ACCESS_LEVELS = (10, 15, 20, 30, 40, 50)
PLANNER = 15
DEPLOY_SCOPES = ("read_repository", "read_registry", "write_registry", "read_package_registry",
                 "write_package_registry", "read_virtual_registry", "write_virtual_registry")


def _date_param(ctx, key):
    """A Grape ``type: Date`` parameter as YYYY-MM-DD, or None when absent."""
    raw = ctx.params.str(key)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        raise errors.invalid(key)


def _in_days(n):
    return (datetime.now(timezone.utc).date() + timedelta(days=n)).isoformat()


def _encompasses(current, wanted):
    """Authz::Role.access_level_encompasses?: Planner only by Owners and Planners."""
    if current >= ADMIN:
        return True
    if wanted == PLANNER:
        return current in (OWNER, PLANNER)
    return wanted <= current


# -- project access tokens -----------------------------------------------------------------------
def _bots(st, p):
    """Project#bots: the project's (direct) members that are bot users."""
    return [st.users[uid] for uid in p.members if uid in st.users and st.users[uid].bot]


def _project_tokens(st, p):
    ids = {u.id for u in _bots(st, p)}
    return sorted((t for t in st.tokens.values() if t.user_id in ids), key=lambda t: t.id)


def _find_token(st, p, token_id):
    return next((t for t in _project_tokens(st, p) if str(t.id) == str(token_id)), None)


def _can_read_tokens(st, user, p):
    """read_/destroy_resource_access_tokens: can?(:admin_project), i.e. Maintainer+."""
    return user is not None and st.project_level(user, p) >= MAINTAINER


def _can_manage_tokens(st, user, p):
    """create_/manage_resource_access_tokens: as above, but prevented for project bots."""
    return _can_read_tokens(st, user, p) and not user.bot


def token_entity(st, p, tok, with_token=False):
    """Entities::ResourceAccessToken(WithToken)."""
    out = {"id": tok.id, "name": tok.name, "revoked": tok.revoked, "created_at": tok.created_at,
           "description": tok.description, "scopes": list(tok.scopes), "user_id": tok.user_id,
           "last_used_at": tok.last_used_at, "active": tok.active(), "expired": tok.expired(),
           "expires_at": tok.expires_at, "access_level": p.members.get(tok.user_id),
           "resource_type": "project", "resource_id": p.id}
    if with_token:
        out["token"] = tok.value
    return out


def _new_value():
    return "glpat-" + secrets.token_urlsafe(15)


@router.add("GET", "/projects/:id/access_tokens")
def list_access_tokens(ctx, id):
    st = ctx.state
    state = ctx.params.values("state", ("active", "inactive"))
    p = find_project(ctx, id)
    if not _can_read_tokens(st, ctx.auth.user, p):
        raise errors.unauthorized()   # `next unauthorized! unless can?(:read_resource_access_tokens)`
    toks = _project_tokens(st, p)
    if state:
        toks = [t for t in toks if t.active() == (state == "active")]
    return [token_entity(st, p, t) for t in paginate(ctx, toks)]


@router.add("GET", "/projects/:id/access_tokens/:token_id")
def get_access_token(ctx, id, token_id):
    st = ctx.state
    p = find_project(ctx, id)
    if not _can_read_tokens(st, ctx.auth.user, p):
        raise errors.unauthorized()
    tok = _find_token(st, p, token_id)
    if tok is None:
        raise errors.not_found(f"Could not find project access token with token_id: {token_id}")
    return token_entity(st, p, tok)


@router.add("POST", "/projects/:id/access_tokens")
def create_access_token(ctx, id):
    st = ctx.state
    ctx.params.require("name", "scopes")
    scopes = [str(s) for s in ctx.params.list("scopes")]
    if not scopes or any(s not in RESOURCE_BOT_SCOPES for s in scopes):
        raise errors.invalid("scopes", "does not have a valid value")
    level = ctx.params.int("access_level", MAINTAINER)
    if level not in TOKEN_ACCESS_LEVELS:
        raise errors.invalid("access_level", "does not have a valid value")
    expires_at = _date_param(ctx, "expires_at") or _in_days(365)   # the param's default
    p = find_project(ctx, id)
    user = ctx.auth.user
    # ResourceAccessTokens::CreateService; its errors go through bad_request!
    if not _can_manage_tokens(st, user, p):
        raise errors.bad_request_helper("User does not have permission to create project access token")
    if not _encompasses(st.project_level(user, p), level):
        raise errors.bad_request_helper("Access level of the token contains permissions not held by the "
                                        "creating user")
    name = ctx.params.str("name")
    username = f"project_{p.id}_bot_{secrets.token_hex(16)}"
    host = st.base_url.split("://", 1)[-1].split(":", 1)[0]
    bot = st.add_user(username, name, f"{username}@noreply.{host}", bot=True)
    bot.bot_project_id = p.id
    p.members[bot.id] = level
    tok = st.add_token(_new_value(), bot, scopes, "project", name, expires_at, ctx.params.str("description"))
    return 201, token_entity(st, p, tok, with_token=True)


def _rotate(st, tok, expires_at):
    """PersonalAccessTokens::RotateService: revoke, then a new token of the same bot."""
    tok.revoked = True
    bot = st.users[tok.user_id]
    new = st.add_token(_new_value(), bot, tok.scopes, tok.kind, tok.name,
                       expires_at or _in_days(7), tok.description)   # EXPIRATION_PERIOD = 1.week
    return new


@router.add("POST", "/projects/:id/access_tokens/:token_id/rotate")
def rotate_access_token(ctx, id, token_id):
    st = ctx.state
    expires_at = _date_param(ctx, "expires_at")
    user = ctx.auth.user
    if token_id == "self":
        # API::ResourceAccessTokens::SelfRotation
        if ctx.auth.token_obj is None or not user.bot:
            raise errors.method_not_allowed()
        p = find_project(ctx, id)
        tok = _find_token(st, p, ctx.auth.token_obj.id)
        if tok is None:
            raise errors.unauthorized()
        return 200, token_entity(st, p, _rotate(st, tok, expires_at), with_token=True)
    p = find_project(ctx, id)
    tok = _find_token(st, p, token_id) if _can_manage_tokens(st, user, p) else None
    if tok is None:
        # "Only admins should be informed if the token doesn't exist"
        raise errors.not_found() if user.admin else errors.unauthorized()
    if tok.revoked:
        raise errors.bad_request_helper("Token already revoked")
    if not _encompasses(st.project_level(user, p), p.members.get(tok.user_id, 0)):
        raise errors.bad_request_helper("Not eligible to rotate token with access level higher than the user")
    return 200, token_entity(st, p, _rotate(st, tok, expires_at), with_token=True)


@router.add("DELETE", "/projects/:id/access_tokens/:token_id")
def revoke_access_token(ctx, id, token_id):
    st = ctx.state
    p = find_project(ctx, id)
    tok = _find_token(st, p, token_id)
    if tok is None:
        raise errors.not_found(f"Could not find project access token with token_id: {token_id}")
    bot = st.users[tok.user_id]
    if not _can_read_tokens(st, ctx.auth.user, p):   # destroy_resource_access_tokens
        raise errors.bad_request_helper(f"{ctx.auth.user.name} cannot delete {bot.name}")
    # ResourceAccessTokens::RevokeService: revoke.  Since GitLab 17.9 the bot user and its
    # membership are retained after the revocation (issue 462217, "Bot users for projects"), so
    # the token stays listed as inactive; before, the bot user was deleted at once.
    tok.revoked = True
    return 204, None


# -- deploy tokens ------------------------------------------------------------------------------------
def _datetime_param(ctx, key):
    """A Grape ``type: DateTime`` parameter, as GitLab renders it (UTC, milliseconds)."""
    raw = ctx.params.str(key)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            dt = datetime.fromisoformat(raw).replace(tzinfo=timezone.utc)
        else:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            dt = dt.replace(tzinfo=dt.tzinfo or timezone.utc).astimezone(timezone.utc)
    except ValueError:
        raise errors.invalid(key)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def deploy_token_entity(dt, with_token=False):
    """Entities::DeployToken(WithToken)."""
    out = {"id": dt.id, "name": dt.name, "username": dt.username, "expires_at": dt.expires_at,
           "scopes": list(dt.scopes), "revoked": dt.revoked,
           "expired": dt.expires_at is not None and dt.expires_at[:10] < today()}
    if with_token:
        out["token"] = dt.token
    return out


def _token_id(raw):
    """``requires :token_id, type: Integer``."""
    if not raw.isdigit():
        raise errors.invalid("token_id")
    return int(raw)


def _project_deploy_tokens(st, p):
    return sorted((d for d in st.deploy_tokens.values() if d.project_id == p.id), key=lambda d: d.id)


@router.add("GET", "/projects/:id/deploy_tokens")
def list_deploy_tokens(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)     # read_deploy_token
    items = _project_deploy_tokens(st, p)
    if "active" in ctx.params:
        want = ctx.params.bool("active")
        items = [d for d in items if d.active() == want]
    return [deploy_token_entity(d) for d in paginate(ctx, items)]


@router.add("GET", "/projects/:id/deploy_tokens/:token_id")
def get_deploy_token(ctx, id, token_id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)
    d = st.deploy_tokens.get(_token_id(token_id))
    if d is None or d.project_id != p.id:
        raise errors.not_found()      # ActiveRecord::RecordNotFound: 404 Not found
    return deploy_token_entity(d)


@router.add("POST", "/projects/:id/deploy_tokens")
def create_deploy_token(ctx, id):
    st = ctx.state
    ctx.params.require("name", "scopes")
    scopes = [str(s) for s in ctx.params.list("scopes")]
    if any(s not in DEPLOY_SCOPES for s in scopes):
        raise errors.invalid("scopes", "does not have a valid value")
    expires_at = _datetime_param(ctx, "expires_at")
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)     # create_deploy_token
    username = ctx.params.str("username") or None
    problems = []
    if username is not None:
        if len(username) > 255 or not re.fullmatch(r"[a-zA-Z0-9.+_-]+", username):
            problems.append("Username can contain only letters, digits, '_', '-', '+', and '.'")
    if not scopes:
        problems.append("Scopes can't be blank")
    if problems:   # Projects::DeployTokens::CreateService: full_messages.to_sentence, 400
        raise errors.bad_request(" and ".join(problems) if len(problems) == 2 else problems[0])
    did = st.next_id("deploy_token")
    d = DeployToken(did, p.id, ctx.params.str("name"), username or f"gitlab+deploy-token-{did}",
                    "gldt-" + secrets.token_urlsafe(15), scopes, expires_at)
    st.deploy_tokens[did] = d
    return 201, deploy_token_entity(d, with_token=True)


@router.add("DELETE", "/projects/:id/deploy_tokens/:token_id")
def delete_deploy_token(ctx, id, token_id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, MAINTAINER)     # destroy_deploy_token
    d = st.deploy_tokens.get(_token_id(token_id))
    if d is None or d.project_id != p.id:
        raise errors.not_found()      # DeployTokenMethods#destroy_deploy_token: find -> RecordNotFound
    del st.deploy_tokens[d.id]
    return 204, None


def deploy_token_for_git(st, login, password, project):
    """Gitlab::Auth#deploy_token_check: an active token of ``project`` whose user name is ``login``."""
    for d in st.deploy_tokens.values():
        if d.token == password:
            if d.active() and login == d.username and project is not None and d.project_id == project.id:
                return d
            return None
    return None
