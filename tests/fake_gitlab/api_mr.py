"""Merge requests, their diffs, notes, approvals and merging (gitlab.md 6).

MR state lives in ``Project.merge_requests``; everything derived from git
(``sha``, ``diff_refs``, conflicts, ``changes_count``, ``detailed_merge_status``)
is computed from the repository on every read, so pushes over HTTP are seen
at once.  ``refs/merge-requests/<iid>/head`` is kept pointing at the source
head, as GitLab does.

Notes run GitLab's quick actions: a line that *starts* with ``/command``
(outside fenced code and ``>>>`` quote blocks) is removed from the note and
executed (approve, unapprove, merge, close, reopen, label, unlabel, title,
draft, ready; other known commands are recorded but have no effect).  A note
that is only commands answers 202 with ``commands_changes``/``summary``.
Every executed command is appended to ``State.quick_actions`` so tests can
assert that berth never triggered one (``GET /__fake/quick_actions``).
"""

import re

from . import entities as E
from . import errors
from .api_core import authorize, authorize_code, find_project, require_user
from .api_ci import pipeline_entity
from .gitrepo import GitError, now_iso
from .routing import paginate, router
from .state import DEVELOPER, MAINTAINER, REPORTER

DRAFT_RE = re.compile(r"\A\s*(\[draft\]|\(draft\)|draft:|draft\s+-|draft\s|\[wip\]|wip:)", re.I)
KNOWN_COMMANDS = {
    "approve", "unapprove", "merge", "close", "reopen", "label", "labels", "unlabel", "remove_label", "relabel",
    "title", "assign", "unassign", "assign_reviewer", "reviewer", "request_review", "unassign_reviewer",
    "remove_reviewer", "milestone", "remove_milestone", "draft", "ready", "wip", "lock", "unlock", "due",
    "remove_due_date", "estimate", "remove_estimate", "spend", "spent", "remove_time_spent", "todo", "done",
    "subscribe", "unsubscribe", "award", "react", "shrug", "tableflip", "target_branch", "rebase",
    "copy_metadata", "cc", "submit_review", "merge_when_pipeline_succeeds", "estimate_time", "spend_time",
    "relate", "blocks", "blocked_by", "duplicate", "move", "clone", "confidential", "weight", "epic",
    "iteration", "health_status", "page", "promote", "checkin_reminder", "board_move", "create_merge_request",
    "tag", "severity", "add_contacts", "remove_contacts", "unassign_all", "status", "q", "zoom", "remove_zoom",
}
# app/models/merge_request.rb validate_branches; lib/api/helpers/merge_requests_helpers.rb
# UNPROCESSABLE_ERROR_KEYS = [:project_access, :branch_conflict, :validate_fork, :base] -> 422
SAME_BRANCH = "You can't use same project/branch for source and target"
COMMAND_LINE = re.compile(r"^/([a-z_]+)(?:[ \t]+(.*))?$")


# -- helpers --------------------------------------------------------------------------------
def _find_mr(ctx, p, iid):
    mr = p.merge_requests.get(int(iid)) if str(iid).isdigit() else None
    if mr is None:
        raise errors.not_found()
    return mr


def _authorize_read(ctx, p):
    """read_merge_request: Reporter+ on private projects (Guests cannot see MRs there)."""
    if p.visibility == "private" and ctx.state.project_level(ctx.auth.user, p) < REPORTER:
        if ctx.auth.user is None:
            raise errors.unauthorized()
        raise errors.forbidden()


def _head(p, mr):
    sha = p.repo.branch_sha(mr["source_branch"])
    if mr["state"] == "merged" or sha is None:
        return mr.get("last_sha") or sha
    return sha


def _sync(p, mr):
    sha = _head(p, mr)
    if sha and mr["state"] == "opened":
        mr["last_sha"] = sha
        try:
            p.repo.update_ref(f"refs/merge-requests/{mr['iid']}/head", sha)
        except GitError:
            pass
    return sha


def _diff_base(p, mr):
    sha = _head(p, mr)
    target = mr.get("merged_target_sha") if mr["state"] == "merged" else p.repo.branch_sha(mr["target_branch"])
    if mr["state"] == "merged" and mr.get("diff_base"):
        return mr["diff_base"], sha, target
    base = p.repo.merge_base(target, sha) if (target and sha) else None
    return base, sha, target


def _is_draft(mr):
    return bool(DRAFT_RE.match(mr["title"]))


def _conflicts(p, mr):
    sha = _head(p, mr)
    target = p.repo.branch_sha(mr["target_branch"])
    if mr["state"] != "opened" or not sha or not target:
        return False
    return p.repo.merge_tree(target, sha)[1]


def _head_pipeline(p, mr, sha):
    cands = [pl for pl in p.pipelines.values()
             if pl["sha"] == sha and pl["ref"] in (mr["source_branch"], f"refs/merge-requests/{mr['iid']}/head")]
    return max(cands, key=lambda pl: pl["id"]) if cands else None


def _detailed_status(ctx, p, mr, sha, pipeline):
    if mr["state"] != "opened":
        return "not_open"
    if _is_draft(mr):
        return "draft_status"
    if _conflicts(p, mr):
        return "conflict"
    if p.settings.get("only_allow_merge_if_pipeline_succeeds"):
        if pipeline is None:
            return "ci_must_pass"
        if pipeline["status"] in ("created", "pending", "running", "waiting_for_resource", "preparing"):
            return "ci_still_running"
        if pipeline["status"] != "success":
            return "ci_must_pass"
    return "mergeable"


def mr_entity(ctx, p, mr, with_changes=False):
    st = ctx.state
    sha = _sync(p, mr)
    base, head, start = _diff_base(p, mr)
    diffs = p.repo.diffs(base, head) if head else []
    pipeline = _head_pipeline(p, mr, sha)
    detailed = _detailed_status(ctx, p, mr, sha, pipeline)
    full = st.project_path(p)
    user = ctx.auth.user
    out = {
        "id": mr["id"], "iid": mr["iid"], "project_id": p.id, "title": mr["title"],
        "description": mr["description"], "state": mr["state"], "created_at": mr["created_at"],
        "updated_at": mr["updated_at"], "merged_at": mr["merged_at"], "closed_at": mr["closed_at"],
        "merged_by": E.user_basic(st, st.users.get(mr["merged_by_id"])),
        "merge_user": E.user_basic(st, st.users.get(mr["merged_by_id"])),
        "closed_by": E.user_basic(st, st.users.get(mr["closed_by_id"])),
        "target_branch": mr["target_branch"], "source_branch": mr["source_branch"],
        "user_notes_count": sum(1 for n in mr["notes"].values() if not n["system"]),
        "upvotes": 0, "downvotes": 0, "author": E.user_basic(st, st.users.get(mr["author_id"])),
        "assignees": [E.user_basic(st, st.users[u]) for u in mr["assignee_ids"] if u in st.users],
        "assignee": E.user_basic(st, st.users.get(mr["assignee_ids"][0])) if mr["assignee_ids"] else None,
        "reviewers": [E.user_basic(st, st.users[u]) for u in mr["reviewer_ids"] if u in st.users],
        "source_project_id": p.id, "target_project_id": p.id, "labels": list(mr["labels"]),
        "draft": _is_draft(mr), "work_in_progress": _is_draft(mr), "milestone": None,
        "merge_when_pipeline_succeeds": mr["merge_when_pipeline_succeeds"],
        "merge_status": "cannot_be_merged" if detailed == "conflict" else "can_be_merged",
        "detailed_merge_status": detailed, "sha": sha, "merge_commit_sha": mr["merge_commit_sha"],
        "squash_commit_sha": mr["squash_commit_sha"], "discussion_locked": None,
        "should_remove_source_branch": mr["should_remove_source_branch"],
        "force_remove_source_branch": mr["remove_source_branch"],
        "prepared_at": mr["created_at"],
        "reference": f"!{mr['iid']}",
        "references": {"short": f"!{mr['iid']}", "relative": f"!{mr['iid']}", "full": f"{full}!{mr['iid']}"},
        "web_url": f"{st.base_url}/{full}/-/merge_requests/{mr['iid']}",
        "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                       "human_total_time_spent": None},
        "squash": mr["squash"], "squash_on_merge": mr["squash"], "task_completion_status": {"count": 0,
                                                                                            "completed_count": 0},
        "has_conflicts": detailed == "conflict", "blocking_discussions_resolved": True,
        "approvals_before_merge": None, "subscribed": False,
        "changes_count": str(len(diffs)), "latest_build_started_at": None, "latest_build_finished_at": None,
        "first_deployed_to_production_at": None,
        "pipeline": pipeline_entity(ctx, pipeline, basic=True) if pipeline else None,
        "head_pipeline": pipeline_entity(ctx, pipeline) if pipeline else None,
        "diff_refs": {"base_sha": base, "head_sha": head, "start_sha": start} if head else None,
        "merge_error": mr.get("merge_error"),
        "user": {"can_merge": bool(user and st.can_merge_branch(user, p, mr["target_branch"]))},
    }
    if with_changes:
        out["changes"] = diffs
        out["overflow"] = False
    return out


def _system_note(ctx, p, mr, text, user=None):
    _add_note(ctx, p, mr, text, system=True, user=user)


def _add_note(ctx, p, mr, body, system=False, user=None, internal=False):
    now = now_iso()
    note = {"id": ctx.state.next_id("note"), "body": body, "author_id": (user or ctx.auth.user).id,
            "created_at": now, "updated_at": now, "system": system, "internal": internal}
    mr["notes"][note["id"]] = note
    return note


def note_entity(ctx, p, mr, n):
    st = ctx.state
    author = E.user_basic(st, st.users.get(n["author_id"]))
    return {"id": n["id"], "type": None, "body": n["body"], "attachment": None, "author": author,
            "created_at": n["created_at"], "updated_at": n["updated_at"], "system": n["system"],
            "noteable_id": mr["id"], "noteable_type": "MergeRequest", "noteable_iid": mr["iid"],
            "project_id": p.id, "commit_id": None, "position": None, "resolvable": False, "resolved": False,
            "resolved_by": None, "resolved_at": None, "confidential": n["internal"], "internal": n["internal"],
            "imported": False, "imported_from": "none"}


# -- quick actions ------------------------------------------------------------------------------
def extract_commands(body):
    """(remaining text, [(command, args)]) following GitLab's extractor rules.

    As ``Gitlab::QuickActions::Extractor#perform_regex``: ``\\r`` is deleted first and the
    remaining text is ``rstrip``-ed -- for every note, commands or not, since
    ``Notes::CreateService``/``UpdateService`` store the extractor's content.
    """
    kept, commands = [], []
    fence = None
    quote = False
    for line in body.replace("\r", "").split("\n"):
        stripped = line.strip()
        if fence:
            kept.append(line)
            if stripped.startswith(fence):
                fence = None
            continue
        if quote:
            kept.append(line)
            if stripped.startswith(">>>"):
                quote = False
            continue
        if stripped.startswith("```") or stripped.startswith("~~~"):
            fence = stripped[:3]
            kept.append(line)
            continue
        if stripped.startswith(">>>"):
            quote = True
            kept.append(line)
            continue
        m = COMMAND_LINE.match(line)
        if m and m.group(1) in KNOWN_COMMANDS:
            commands.append((m.group(1), (m.group(2) or "").strip()))
            continue
        kept.append(line)
    return "\n".join(kept).rstrip(), commands


def _labels(arg):
    return [l.strip('"') for l in re.findall(r'~("[^"]+"|\S+)', arg)] or [a for a in arg.split() if a]


def run_commands(ctx, p, mr, commands):
    """Execute quick actions; returns (commands_changes, summary)."""
    st = ctx.state
    changes, summary = {}, []
    for cmd, arg in commands:
        st.quick_actions.append({"project": st.project_path(p), "merge_request_iid": mr["iid"],
                                 "command": cmd, "args": arg, "user": ctx.auth.user.username,
                                 "time": now_iso()})
        if cmd == "approve" and _can_approve(ctx, p, mr):
            _approve(ctx, p, mr)
            changes["approve"] = True
            summary.append("Approved the current merge request.")
        elif cmd == "unapprove" and any(a["user_id"] == ctx.auth.user.id for a in mr["approvals"]):
            mr["approvals"] = [a for a in mr["approvals"] if a["user_id"] != ctx.auth.user.id]
            changes["unapprove"] = True
            summary.append("Unapproved the current merge request.")
        elif cmd == "close" and mr["state"] == "opened":
            _set_state(ctx, p, mr, "close")
            changes["state_event"] = "close"
            summary.append("Closed this merge request.")
        elif cmd == "reopen" and mr["state"] == "closed":
            _set_state(ctx, p, mr, "reopen")
            changes["state_event"] = "reopen"
            summary.append("Reopened this merge request.")
        elif cmd in ("label", "labels", "relabel"):
            new = _labels(arg)
            if cmd == "relabel":
                mr["labels"] = []
            mr["labels"] += [l for l in new if l not in mr["labels"]]
            changes.setdefault("add_label_ids", []).extend(new)
            summary.append("Added " + " ".join(f"~{l}" for l in new) + " label(s).")
        elif cmd in ("unlabel", "remove_label"):
            gone = _labels(arg) if arg else list(mr["labels"])
            mr["labels"] = [l for l in mr["labels"] if l not in gone]
            changes.setdefault("remove_label_ids", []).extend(gone)
            summary.append("Removed " + " ".join(f"~{l}" for l in gone) + " label(s).")
        elif cmd == "title" and arg:
            mr["title"] = arg
            changes["title"] = arg
            summary.append(f"Changed the title to \"{arg}\".")
        elif cmd in ("draft", "wip") and not _is_draft(mr):
            mr["title"] = "Draft: " + mr["title"]
            changes["wip_event"] = "draft"
            summary.append("Marked this merge request as a draft.")
        elif cmd == "ready" and _is_draft(mr):
            mr["title"] = DRAFT_RE.sub("", mr["title"], count=1).lstrip()
            changes["wip_event"] = "ready"
            summary.append("Marked this merge request as ready.")
        elif cmd == "merge":
            try:
                _merge(ctx, p, mr, {})
                changes["merge"] = mr["last_sha"]
                summary.append("Merged this merge request.")
            except errors.ApiError:
                pass
        elif cmd in KNOWN_COMMANDS:
            changes[cmd] = arg or True
    mr["updated_at"] = now_iso()
    return changes, summary


# -- merge requests ---------------------------------------------------------------------------
@router.add("POST", "/projects/:id/merge_requests")
def create_mr(ctx, id):
    st = ctx.state
    p = find_project(ctx, id)
    authorize(ctx, p, DEVELOPER)
    ctx.params.require("source_branch", "target_branch", "title")
    src, tgt = ctx.params.str("source_branch"), ctx.params.str("target_branch")
    description = ctx.params.str("description")
    if src == tgt:   # MergeRequest#validate_branches :branch_conflict -> unprocessable_entity!
        raise errors.unprocessable([SAME_BRANCH])
    problems = {}
    if p.repo.branch_sha(src) is None:
        problems["source_branch"] = ["does not exist"]
    if p.repo.branch_sha(tgt) is None:
        problems["target_branch"] = ["does not exist"]
    if description and len(description) > 1048576:
        problems["description"] = ["is too long (maximum is 1048576 characters)"]
    if problems:
        raise errors.validation(problems)
    dupe = [m for m in p.merge_requests.values() if m["source_branch"] == src and m["state"] == "opened"]
    if dupe:
        raise errors.conflict([f"Another open merge request already exists for this source branch: !{dupe[0]['iid']}"])
    now = now_iso()
    labels = []
    for l in ctx.params.list("labels"):
        if str(l).strip() and str(l).strip() not in labels:
            labels.append(str(l).strip())
    mr = {"id": st.next_id("merge_request"), "iid": p.next_iid("merge_request"), "title": ctx.params.str("title"),
          "description": description, "state": "opened", "source_branch": src, "target_branch": tgt,
          "author_id": ctx.auth.user.id, "labels": labels, "created_at": now, "updated_at": now,
          "merged_at": None, "closed_at": None, "merged_by_id": None, "closed_by_id": None,
          "merge_commit_sha": None, "squash_commit_sha": None, "last_sha": None,
          "remove_source_branch": bool(ctx.params.bool("remove_source_branch", False)),
          "should_remove_source_branch": None, "squash": bool(ctx.params.bool("squash", False)),
          "approvals": [], "notes": {}, "merge_when_pipeline_succeeds": False,
          "assignee_ids": [int(x) for x in ctx.params.list("assignee_ids")] or
                          ([ctx.params.int("assignee_id")] if ctx.params.int("assignee_id") else []),
          "reviewer_ids": [int(x) for x in ctx.params.list("reviewer_ids")]}
    p.merge_requests[mr["iid"]] = mr
    return 201, mr_entity(ctx, p, mr)


@router.add("GET", "/projects/:id/merge_requests")
def list_mrs(ctx, id):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    items = list(p.merge_requests.values())
    state = ctx.params.values("state", ("opened", "closed", "locked", "merged", "all"), "all")
    if state != "all":
        items = [m for m in items if m["state"] == state]
    for key in ("source_branch", "target_branch"):
        if ctx.params.str(key):
            items = [m for m in items if m[key] == ctx.params.str(key)]
    if ctx.params.int("author_id"):
        items = [m for m in items if m["author_id"] == ctx.params.int("author_id")]
    if ctx.params.str("author_username"):
        u = ctx.state.user_by_name(ctx.params.str("author_username"))
        items = [m for m in items if u and m["author_id"] == u.id]
    wanted = [l.strip() for l in ctx.params.list("labels") if str(l).strip()]
    if wanted:
        items = [m for m in items if all(l in m["labels"] for l in wanted)]
    iids = [int(i) for i in ctx.params.list("iids")]
    if iids:
        items = [m for m in items if m["iid"] in iids]
    if ctx.params.str("search"):
        s = ctx.params.str("search").lower()
        items = [m for m in items if s in m["title"].lower() or s in (m["description"] or "").lower()]
    order = ctx.params.values("order_by", ("created_at", "updated_at", "title", "merged_at"), "created_at")
    items.sort(key=lambda m: (m[order] or "", m["id"]), reverse=ctx.params.str("sort", "desc") == "desc")
    return [mr_entity(ctx, p, m) for m in paginate(ctx, items)]


@router.add("GET", "/projects/:id/merge_requests/:iid")
def get_mr(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    return mr_entity(ctx, p, _find_mr(ctx, p, iid))


def _set_state(ctx, p, mr, event):
    now = now_iso()
    if event == "close" and mr["state"] == "opened":
        mr.update(state="closed", closed_at=now, closed_by_id=ctx.auth.user.id)
        _system_note(ctx, p, mr, "closed")
    elif event == "reopen" and mr["state"] == "closed":
        dupe = [m for m in p.merge_requests.values() if m is not mr and m["state"] == "opened"
                and m["source_branch"] == mr["source_branch"]]
        if dupe:
            raise errors.conflict([f"Another open merge request already exists for this source branch: "
                                   f"!{dupe[0]['iid']}"])
        mr.update(state="opened", closed_at=None, closed_by_id=None)
        _system_note(ctx, p, mr, "reopened")


@router.add("PUT", "/projects/:id/merge_requests/:iid")
def update_mr(ctx, id, iid):
    p = find_project(ctx, id)
    mr = _find_mr(ctx, p, iid)
    user = require_user(ctx)
    if mr["author_id"] != user.id:
        authorize(ctx, p, DEVELOPER)
    keys = ("title", "description", "target_branch", "state_event", "labels", "add_labels", "remove_labels",
            "remove_source_branch", "squash", "assignee_id", "assignee_ids", "reviewer_ids", "discussion_locked",
            "milestone_id", "allow_collaboration")
    if not any(k in ctx.params.data for k in keys):
        raise errors.ApiError(400, {"error": ", ".join(keys) + " are missing, at least one parameter must be provided"})
    if "target_branch" in ctx.params:
        tgt = ctx.params.str("target_branch")
        if p.repo.branch_sha(tgt) is None:
            raise errors.validation({"target_branch": ["does not exist"]})
        if tgt == mr["source_branch"]:
            raise errors.unprocessable([SAME_BRANCH])
        mr["target_branch"] = tgt
    if "title" in ctx.params:
        mr["title"] = ctx.params.str("title")
    if "description" in ctx.params:
        mr["description"] = ctx.params.str("description")
    if "labels" in ctx.params:
        mr["labels"] = [l.strip() for l in ctx.params.list("labels") if str(l).strip()]
    for l in ctx.params.list("add_labels"):
        if l.strip() not in mr["labels"]:
            mr["labels"].append(l.strip())
    if ctx.params.list("remove_labels"):
        mr["labels"] = [l for l in mr["labels"] if l not in [x.strip() for x in ctx.params.list("remove_labels")]]
    for flag in ("remove_source_branch", "squash"):
        if flag in ctx.params:
            mr[flag] = bool(ctx.params.bool(flag))
    if "assignee_ids" in ctx.params:
        mr["assignee_ids"] = [int(x) for x in ctx.params.list("assignee_ids")]
    if "reviewer_ids" in ctx.params:
        mr["reviewer_ids"] = [int(x) for x in ctx.params.list("reviewer_ids")]
    if "state_event" in ctx.params:
        _set_state(ctx, p, mr, ctx.params.values("state_event", ("close", "reopen")))
    mr["updated_at"] = now_iso()
    return mr_entity(ctx, p, mr)


@router.add("GET", "/projects/:id/merge_requests/:iid/changes")
def mr_changes(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    return mr_entity(ctx, p, _find_mr(ctx, p, iid), with_changes=True)


@router.add("GET", "/projects/:id/merge_requests/:iid/diffs")
def mr_diffs(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    base, head, _ = _diff_base(p, mr)
    return paginate(ctx, p.repo.diffs(base, head) if head else [])


@router.add("GET", "/projects/:id/merge_requests/:iid/raw_diffs")
def mr_raw_diffs(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    base, head, _ = _diff_base(p, mr)
    ctx.content_type = "text/plain; charset=utf-8"
    return 200, p.repo.git("diff", "--no-color", base, head) if head and base else b""


@router.add("GET", "/projects/:id/merge_requests/:iid/commits")
def mr_commits(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    base, head, _ = _diff_base(p, mr)
    shas = p.repo.rev_list(f"{base}..{head}") if base and head else (p.repo.rev_list(head) if head else [])
    return [E.commit(ctx.state, p, c) for c in p.repo.commits(paginate(ctx, shas))]


def diff_commit_shas(p, mr):
    """The commits of the MR's (latest) diff: merge base..source head."""
    base, head, _ = _diff_base(p, mr)
    if not head:
        return []
    return p.repo.rev_list(f"{base}..{head}") if base else p.repo.rev_list(head)


@router.add("GET", "/projects/:id/repository/commits/:sha/merge_requests")
def commit_merge_requests(ctx, id, sha):
    """MergeRequestsFinder(project_id:, commit_sha:, state:) -> MergeRequest.by_related_commit_sha:
    MRs of this project whose latest diff contains the commit, or whose merge, squash or
    merged commit it is (lib/api/commits.rb, app/finders/merge_requests_finder.rb,
    app/models/merge_request.rb)."""
    p = find_project(ctx, id)
    authorize_code(ctx, p)            # the Commits API's before-filter: read code
    _authorize_read(ctx, p)           # authorize! :read_merge_request
    full = p.repo.commit_sha(sha) if not p.repo.is_empty() else None
    if full is None:
        raise errors.not_found("Commit")
    state = ctx.params.str("state")
    items = []
    for mr in sorted(p.merge_requests.values(), key=lambda m: m["id"], reverse=True):
        if state and state != "all" and mr["state"] != state:
            continue
        if full in (mr["merge_commit_sha"], mr["squash_commit_sha"]) or full in diff_commit_shas(p, mr):
            items.append(mr)
    return [mr_entity(ctx, p, m) for m in paginate(ctx, items)]


@router.add("GET", "/projects/:id/merge_requests/:iid/pipelines")
def mr_pipelines(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    refs = (mr["source_branch"], f"refs/merge-requests/{mr['iid']}/head")
    items = sorted((pl for pl in p.pipelines.values() if pl["ref"] in refs), key=lambda x: x["id"], reverse=True)
    return [pipeline_entity(ctx, pl, basic=True) for pl in paginate(ctx, items)]


# -- approvals ------------------------------------------------------------------------------------
def _can_approve(ctx, p, mr):
    user = ctx.auth.user
    return (user is not None and mr["state"] == "opened"
            and ctx.state.project_level(user, p) >= DEVELOPER
            and not any(a["user_id"] == user.id for a in mr["approvals"]))


def _approve(ctx, p, mr):
    mr["approvals"].append({"user_id": ctx.auth.user.id, "approved_at": now_iso()})
    _system_note(ctx, p, mr, "approved this merge request")


def approvals_entity(ctx, p, mr):
    st = ctx.state
    user = ctx.auth.user
    return {"id": mr["id"], "iid": mr["iid"], "project_id": p.id, "title": mr["title"],
            "description": mr["description"], "state": mr["state"], "created_at": mr["created_at"],
            "updated_at": mr["updated_at"], "merge_status": "can_be_merged",
            "approved": True, "approvals_required": 0, "approvals_left": 0,
            "require_password_to_approve": False,
            "approved_by": [{"user": E.user_basic(st, st.users[a["user_id"]]), "approved_at": a["approved_at"]}
                            for a in mr["approvals"]],
            "suggested_approvers": [], "approvers": [], "approver_groups": [],
            "user_has_approved": bool(user and any(a["user_id"] == user.id for a in mr["approvals"])),
            "user_can_approve": bool(user and _can_approve(ctx, p, mr)),
            "approval_rules_left": [], "has_approval_rules": False,
            "merge_request_approvers_available": False, "multiple_approval_rules_available": False,
            "invalid_approvers_rules": []}


@router.add("POST", "/projects/:id/merge_requests/:iid/approve")
def approve_mr(ctx, id, iid):
    p = find_project(ctx, id)
    mr = _find_mr(ctx, p, iid)
    sha = ctx.params.str("sha")
    if sha and sha != _head(p, mr):
        raise errors.conflict(f"SHA does not match HEAD of source branch: {sha}")
    if not _can_approve(ctx, p, mr):
        raise errors.unauthorized()
    _approve(ctx, p, mr)
    return 201, approvals_entity(ctx, p, mr)


@router.add("POST", "/projects/:id/merge_requests/:iid/unapprove")
def unapprove_mr(ctx, id, iid):
    p = find_project(ctx, id)
    mr = _find_mr(ctx, p, iid)
    if not any(a["user_id"] == ctx.auth.user.id for a in mr["approvals"]):
        raise errors.not_found()
    mr["approvals"] = [a for a in mr["approvals"] if a["user_id"] != ctx.auth.user.id]
    _system_note(ctx, p, mr, "unapproved this merge request")
    return 201, approvals_entity(ctx, p, mr)


@router.add("GET", "/projects/:id/merge_requests/:iid/approvals")
def get_approvals(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    return approvals_entity(ctx, p, _find_mr(ctx, p, iid))


@router.add("GET", "/projects/:id/merge_requests/:iid/approval_state")
def get_approval_state(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    _find_mr(ctx, p, iid)
    return {"approval_rules_overwritten": False, "rules": []}


# -- merge ------------------------------------------------------------------------------------------
def _merge(ctx, p, mr, opts):
    st = ctx.state
    repo = p.repo
    user = ctx.auth.user
    if not st.can_merge_branch(user, p, mr["target_branch"]):
        raise errors.unauthorized()
    sha = _head(p, mr)
    if opts.get("sha") and opts["sha"] != sha:
        raise errors.conflict(f"SHA does not match HEAD of source branch: {opts['sha']}")
    pipeline = _head_pipeline(p, mr, sha)
    status = _detailed_status(ctx, p, mr, sha, pipeline)
    auto = opts.get("merge_when_pipeline_succeeds") or opts.get("auto_merge")
    if auto and status == "ci_still_running":
        mr["merge_when_pipeline_succeeds"] = True
        return
    if status != "mergeable":
        raise errors.method_not_allowed()
    target = repo.branch_sha(mr["target_branch"])
    method = p.settings.get("merge_method", "merge")
    squash = opts.get("squash", mr["squash"])
    base = repo.merge_base(target, sha)
    full = st.project_path(p)
    if method in ("ff", "rebase_merge") and base != target:
        raise errors.method_not_allowed()   # needs a rebase first (detailed status need_rebase)
    head = sha
    if squash and base and repo.rev_list(f"{base}..{sha}") and len(repo.rev_list(f"{base}..{sha}")) > 1:
        msg = opts.get("squash_commit_message") or mr["title"]
        head = repo.commit_tree(repo.tree_of(sha), [base], msg, (user.name, user.email))
        mr["squash_commit_sha"] = head
    if method == "ff":
        new = head
    else:
        tree, conflicted = repo.merge_tree(target, head)
        if conflicted:
            raise errors.unprocessable("Branch cannot be merged")
        msg = opts.get("merge_commit_message") or (
            f"Merge branch '{mr['source_branch']}' into '{mr['target_branch']}'\n\n{mr['title']}\n\n"
            f"See merge request {full}!{mr['iid']}")
        new = repo.commit_tree(tree, [target, head], msg, (user.name, user.email))
    try:
        repo.update_ref(f"refs/heads/{mr['target_branch']}", new, target)
    except GitError:
        raise errors.unprocessable("Branch cannot be merged")
    now = now_iso()
    mr.update(state="merged", merged_at=now, merged_by_id=user.id, merge_commit_sha=new if method != "ff" else None,
              last_sha=sha, diff_base=base, merged_target_sha=target, updated_at=now)
    _system_note(ctx, p, mr, f"merged")
    remove = opts.get("should_remove_source_branch")
    if remove is None:
        remove = mr["remove_source_branch"]
    if remove and not st.matching_protected_branches(p, mr["source_branch"]):
        try:
            repo.delete_ref(f"refs/heads/{mr['source_branch']}")
        except GitError:
            pass
        mr["should_remove_source_branch"] = True
    st.after_ref_change(p)


@router.add("PUT", "/projects/:id/merge_requests/:iid/merge")
def merge_mr(ctx, id, iid):
    p = find_project(ctx, id)
    mr = _find_mr(ctx, p, iid)
    if ctx.state.project_level(ctx.auth.user, p) < DEVELOPER:
        raise errors.unauthorized()
    opts = {k: ctx.params.str(k) for k in ("sha", "merge_commit_message", "squash_commit_message")
            if ctx.params.str(k)}
    for k in ("squash", "should_remove_source_branch", "merge_when_pipeline_succeeds", "auto_merge"):
        if k in ctx.params:
            opts[k] = ctx.params.bool(k)
    _merge(ctx, p, mr, opts)
    return 200, mr_entity(ctx, p, mr)


# -- notes ------------------------------------------------------------------------------------------
def _find_note(ctx, mr, note_id):
    n = mr["notes"].get(int(note_id)) if str(note_id).isdigit() else None
    if n is None:
        raise errors.not_found("Note")
    return n


def _check_body(body):
    if body is None:
        raise errors.missing("body")
    if not body.strip():
        raise errors.bad_request_helper('Note {:note=>["can\'t be blank"]}')
    if len(body) > 1_000_000:
        raise errors.bad_request_helper('Note {:note=>["is too long (maximum is 1000000 characters)"]}')


@router.add("GET", "/projects/:id/merge_requests/:iid/notes")
def list_notes(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    order = ctx.params.values("order_by", ("created_at", "updated_at"), "created_at")
    desc = ctx.params.values("sort", ("asc", "desc"), "desc") == "desc"
    notes = sorted(mr["notes"].values(), key=lambda n: (n[order], n["id"]), reverse=desc)
    return [note_entity(ctx, p, mr, n) for n in paginate(ctx, notes)]


@router.add("GET", "/projects/:id/merge_requests/:iid/notes/:note_id")
def get_note(ctx, id, iid, note_id):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    return note_entity(ctx, p, mr, _find_note(ctx, mr, note_id))


@router.add("POST", "/projects/:id/merge_requests/:iid/notes")
def create_note(ctx, id, iid):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    body = ctx.params.str("body")
    _check_body(body)
    text, commands = extract_commands(body)
    changes, summary = run_commands(ctx, p, mr, commands) if commands else ({}, [])
    if commands and not text:
        return 202, {"commands_changes": changes, "summary": summary}
    note = _add_note(ctx, p, mr, text, internal=bool(ctx.params.bool("internal", False)))
    return 201, note_entity(ctx, p, mr, note)


def _authorize_note_change(ctx, p, note):
    """Only the note's author or a maintainer may edit or delete it."""
    if note["author_id"] != ctx.auth.user.id and ctx.state.project_level(ctx.auth.user, p) < MAINTAINER:
        raise errors.forbidden()


@router.add("PUT", "/projects/:id/merge_requests/:iid/notes/:note_id")
def update_note(ctx, id, iid, note_id):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    note = _find_note(ctx, mr, note_id)
    if note["system"]:
        raise errors.forbidden()
    _authorize_note_change(ctx, p, note)
    body = ctx.params.str("body")
    _check_body(body)
    text, commands = extract_commands(body)
    if commands:
        run_commands(ctx, p, mr, commands)
        if not text:
            del mr["notes"][note["id"]]
            note = dict(note, body="")
            return 200, note_entity(ctx, p, mr, note)
    note["body"] = text
    note["updated_at"] = now_iso()
    return 200, note_entity(ctx, p, mr, note)


@router.add("DELETE", "/projects/:id/merge_requests/:iid/notes/:note_id")
def delete_note(ctx, id, iid, note_id):
    p = find_project(ctx, id)
    _authorize_read(ctx, p)
    mr = _find_mr(ctx, p, iid)
    note = _find_note(ctx, mr, note_id)
    _authorize_note_change(ctx, p, note)
    del mr["notes"][note["id"]]
    return 204, None
