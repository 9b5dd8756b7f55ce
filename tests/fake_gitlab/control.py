"""Test controls under ``/__fake/`` (not part of GitLab; no auth; not logged).

==========================================  ==================================================
``GET    /__fake/health``                    liveness
``POST   /__fake/reset``                     wipe all state and repositories, re-apply the
                                             start-up seed, clear faults and the request log
``POST   /__fake/seed``                      apply a seed document (users, tokens, groups,
                                             projects, jobs, settings); returns their ids
``PUT    /__fake/settings``                  e.g. ``{"default_branch_protection": 0}``
``GET    /__fake/requests?since=N&kind=api``  the request log (``DELETE`` clears it)
``POST   /__fake/faults``                    inject a fault (see ``server.Faults.add``)
``GET    /__fake/faults``                    active faults (``DELETE`` clears them)
``POST   /__fake/storm``                     429 for the next ``count`` API calls
``POST   /__fake/jobs``                      start a job: mints a JOB-TOKEN
``PUT    /__fake/jobs/:id``                  change a job's status (a finished job's token dies)
``PUT    /__fake/pipelines/:id``             set a pipeline's status
``GET    /__fake/quick_actions``             quick actions executed from notes (``DELETE``)
``GET    /__fake/state``                     a summary of users, groups and projects
==========================================  ==================================================
"""

import json
import re
import traceback
from urllib.parse import parse_qs

from .gitrepo import now_iso
from .state import SeedError


def _json(handler, status, body):
    handler.send(status, json.dumps(body).encode(), "application/json")


def handle(handler, method, raw_path, query, body):
    server = handler.server
    st = server.state
    q = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except ValueError:
        return _json(handler, 400, {"error": "body must be JSON"})
    path = raw_path[len("/__fake"):].rstrip("/")
    try:
        if path == "/health":
            return _json(handler, 200, {"ok": True, "url": st.base_url})
        if path == "/reset" and method == "POST":
            st.reset()
            server.faults.clear()
            server.log.clear()
            return _json(handler, 200, {"ok": True})
        if path == "/seed" and method == "POST":
            return _json(handler, 201, st.apply_seed(data))
        if path == "/settings" and method == "PUT":
            with st.lock:
                st.settings.update(data)
            return _json(handler, 200, st.settings)
        if path == "/requests":
            if method == "DELETE":
                server.log.clear()
                return handler.send(204, b"")
            return _json(handler, 200, server.log.since(int(q.get("since", 0)), q.get("kind")))
        if path == "/faults":
            if method == "POST":
                specs = data if isinstance(data, list) else [data]
                return _json(handler, 201, [server.faults.add(s) for s in specs])
            if method == "DELETE":
                server.faults.clear()
                return handler.send(204, b"")
            return _json(handler, 200, server.faults.list())
        if path == "/storm" and method == "POST":
            rule = server.faults.add({"method": "*", "path": data.get("path", ".*"), "status": 429,
                                      "count": int(data.get("count", 10)),
                                      "retry_after": data.get("retry_after", 1), "kind": "api"})
            return _json(handler, 201, rule)
        if path == "/jobs" and method == "POST":
            with st.lock:
                job = st.add_job(data)
            return _json(handler, 201, {"id": job.id, "token": job.token, "status": job.status})
        m = re.fullmatch(r"/jobs/(\d+)", path)
        if m and method == "PUT":
            with st.lock:
                job = st.jobs.get(int(m.group(1)))
                if job is None:
                    return _json(handler, 404, {"error": "no such job"})
                job.status = data.get("status", job.status)
            return _json(handler, 200, {"id": job.id, "status": job.status})
        m = re.fullmatch(r"/pipelines/(\d+)", path)
        if m and method == "PUT":
            with st.lock:
                for p in st.projects.values():
                    pl = p.pipelines.get(int(m.group(1)))
                    if pl:
                        pl["status"] = data.get("status", pl["status"])
                        pl["updated_at"] = now_iso()
                        return _json(handler, 200, pl)
            return _json(handler, 404, {"error": "no such pipeline"})
        if path == "/quick_actions":
            with st.lock:
                if method == "DELETE":
                    st.quick_actions.clear()
                    return handler.send(204, b"")
                return _json(handler, 200, list(st.quick_actions))
        if path == "/state":
            with st.lock:
                return _json(handler, 200, {
                    "users": {u.username: {"id": u.id, "admin": u.admin} for u in st.users.values()},
                    "groups": {st.full_path(n): {"id": n.id, "members": n.members}
                               for n in st.namespaces.values() if n.kind == "group"},
                    "projects": {st.project_path(p): {"id": p.id, "members": p.members,
                                                      "repo": p.repo.path} for p in st.projects.values()},
                    "settings": st.settings})
        return _json(handler, 404, {"error": f"no control endpoint {method} {raw_path}"})
    except SeedError as e:
        return _json(handler, 400, {"error": str(e)})
    except (ValueError, KeyError, TypeError) as e:
        traceback.print_exc()
        return _json(handler, 400, {"error": f"{type(e).__name__}: {e}"})
