"""The HTTP layer: one ``ThreadingHTTPServer`` for the API, git and controls.

For each request the handler:

1. reads the body (``Content-Length`` or chunked, as git sends large pushes);
2. sends ``/__fake/...`` to the test controls (never faulted, never logged);
3. applies the first matching injected fault (delay, status, 429 storm);
4. dispatches ``/api/v4/...`` to the route table (under the state lock) or
   ``/<path>.git/...`` to ``git http-backend``;
5. appends an entry to the request log (method, path, query, status, token).

API authentication follows gitlab.md section 1 and 8.3: ``PRIVATE-TOKEN`` (or
``?private_token=``), ``Authorization: Bearer``, and ``JOB-TOKEN`` (or
``?job_token=``) which is honoured only on routes that accept job tokens and
is otherwise ignored, so the call runs as anonymous (404 on private reads,
401 on writes) as on GitLab.  An unknown or revoked token is a 401.
"""

import email.utils
import json
import re
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from . import api_ci, api_core, api_mr, api_repo, api_tokens, control, errors, githttp  # noqa: F401 (route registration)
from .routing import router
from .params import Params, parse_body, parse_form
from .gitrepo import now_iso
from .state import Auth


class Ctx:
    """Everything a handler needs about the current API request."""

    def __init__(self, server, method, raw_path, query, params, headers):
        self.state = server.state
        self.server = server
        self.method = method
        self.raw_path = raw_path
        self.query_pairs = parse_qsl(query, keep_blank_values=True)
        self.params = Params(params)
        self.request_headers = headers
        self.auth = Auth()
        self.headers = {}          # response headers set by handlers
        self.content_type = "application/json"

    @property
    def base_url(self):
        return self.state.base_url


class Faults:
    """Injected faults: the next N requests matching method + path regex."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.seq = 0

    def add(self, spec):
        with self.lock:
            self.seq += 1
            rule = {
                "id": self.seq,
                "method": (spec.get("method") or "*").upper(),
                "path": spec.get("path") or ".*",
                "query": spec.get("query"),
                "kind": spec.get("kind", "api"),     # api | git | any
                "status": spec.get("status"),
                "count": int(spec.get("count", 1)),  # -1 = until removed
                "skip": int(spec.get("skip", 0)),    # let this many matches through first
                "delay": float(spec.get("delay", 0)),
                "retry_after": spec.get("retry_after"),
                "body": spec.get("body"),
                "content_type": spec.get("content_type"),
                "headers": spec.get("headers") or {},
                "hits": 0,
            }
            re.compile(rule["path"])
            self.rules.append(rule)
            return rule

    def take(self, kind, method, path, query):
        with self.lock:
            for rule in self.rules:
                if rule["kind"] not in ("any", kind):
                    continue
                if rule["method"] not in ("*", method):
                    continue
                if not re.search(rule["path"], path):
                    continue
                if rule["query"] and not re.search(rule["query"], query):
                    continue
                if rule["skip"] > 0:
                    rule["skip"] -= 1
                    return None
                rule["hits"] += 1
                if rule["count"] > 0:
                    rule["count"] -= 1
                    if rule["count"] == 0:
                        self.rules.remove(rule)
                return dict(rule)
            return None

    def clear(self):
        with self.lock:
            self.rules.clear()

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]


class RequestLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []
        self.seq = 0

    def add(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.entries.append(entry)

    def since(self, seq=0, kind=None):
        with self.lock:
            return [e for e in self.entries if e["seq"] > seq and (kind is None or e["kind"] == kind)]

    def clear(self):
        with self.lock:
            self.entries.clear()


def fault_response(rule):
    """(status, content_type, body bytes, headers) of an injected fault."""
    status = int(rule["status"])
    headers = dict(rule["headers"])
    body = rule["body"]
    ctype = rule["content_type"]
    if status == 429:
        now = int(time.time())
        retry = int(rule["retry_after"] if rule["retry_after"] is not None else 1)
        headers.setdefault("Retry-After", str(retry))
        headers.setdefault("RateLimit-Name", "throttle_authenticated_api")
        headers.setdefault("RateLimit-Limit", "2000")
        headers.setdefault("RateLimit-Observed", "2001")
        headers.setdefault("RateLimit-Remaining", "0")
        headers.setdefault("RateLimit-Reset", str(now + retry))
        headers.setdefault("RateLimit-ResetTime", email.utils.formatdate(now + retry, usegmt=True))
        if body is None:
            body, ctype = "Retry later\n", ctype or "text/plain"
    elif rule["retry_after"] is not None:
        headers.setdefault("Retry-After", str(rule["retry_after"]))
    if body is None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        if status in (502, 503, 504):
            body = f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1></body></html>\n"
            ctype = ctype or "text/html"
        else:
            body = {"message": f"{status} {phrase}"}
    if isinstance(body, (dict, list)):
        return status, ctype or "application/json", json.dumps(body).encode(), headers
    return status, ctype or "text/plain", str(body).encode(), headers


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "nginx"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-gitlab: " + (fmt % args) + "\n")

    # every method goes through one path
    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status, body=b"", content_type="application/json", headers=None):
        entry, self.pending_entry = getattr(self, "pending_entry", None), None
        if entry is not None:  # log before answering, so a client that asks next sees it
            entry.update(status=status, duration=time.time() - entry["time"])
            self.server.log.add(entry)
        self.send_response(status)
        if status != 204 and body is not None:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        payload = b"" if (self.command == "HEAD" or status in (204, 304)) else (body or b"")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def handle_any(self):
        self.pending_entry = None
        method = self.command
        raw_path, _, query = self.path.partition("?")
        body = self.read_body()
        if raw_path.startswith("/__fake/") or raw_path == "/__fake":
            control.handle(self, method, raw_path, query, body)
            return
        if raw_path.startswith("/api/v4/"):
            kind = "api"
        elif githttp.is_git_path(raw_path):
            kind = "git"
        else:
            kind = "other"
        started = time.time()
        entry = {"kind": kind, "method": method, "path": raw_path, "query": query,
                 "time": started, "token": None, "token_kind": None, "user": None, "fault": False}
        self.pending_entry = entry   # logged by send()
        rule = self.server.faults.take(kind, method, raw_path, query)
        if rule and rule["delay"]:
            time.sleep(rule["delay"])
        if rule and rule["status"]:
            status, ctype, payload, headers = fault_response(rule)
            entry["fault"] = True
            self.send(status, payload, ctype, headers)
            return
        if kind == "api":
            self.handle_api(method, raw_path, query, body, entry)
        elif kind == "git":
            try:
                githttp.serve(self, method, raw_path, query, body, entry)
            except Exception:  # a bug in the fake
                traceback.print_exc()
                if self.pending_entry is not None:
                    self.send(500, b"500 Internal Server Error\n", "text/plain")
        else:
            self.send(404, b"404 page not found\n", "text/plain")

    def handle_api(self, method, raw_path, query, body, entry):
        state = self.server.state
        api_path = raw_path[len("/api/v4"):]
        ctx = None
        try:
            qparams = parse_form(query)
            bparams = parse_body(self.headers.get("Content-Type"), body)
            merged = dict(qparams)
            merged.update(bparams)
            entry["params"] = {k: v for k, v in merged.items() if k not in ("private_token", "job_token")}
            ctx = Ctx(self.server, method, raw_path, query, merged, self.headers)
            route, path_params = router.match(method, api_path)
            with state.lock:
                ctx.auth = authenticate(state, self.headers, qparams, route)
                entry.update(token=ctx.auth.token, token_kind=ctx.auth.kind,
                             user=ctx.auth.user.username if ctx.auth.user else None)
                if ctx.auth.invalid:
                    raise errors.unauthorized()
                check_scope(ctx.auth, method, api_path)
                if method not in ("GET", "HEAD") and ctx.auth.user is None and not route.anonymous_write:
                    raise errors.unauthorized()
                result = route.handler(ctx, **path_params)
            status, out = result if isinstance(result, tuple) else (200, result)
            headers = ctx.headers
            if isinstance(out, bytes):
                payload = out
            elif status == 204 or out is None:
                payload = b""
            else:
                payload = json.dumps(out).encode()
            self.send(status, payload, ctx.content_type, headers)
            return status
        except errors.ApiError as e:
            body_bytes = e.body if isinstance(e.body, bytes) else (
                e.body.encode() if isinstance(e.body, str) else json.dumps(e.body).encode())
            headers = dict(e.headers)
            if e.status == 401:
                headers.setdefault("WWW-Authenticate", 'Bearer realm="GitLab"')
            self.send(e.status, body_bytes, e.content_type, headers)
            return e.status
        except Exception:  # a bug in the fake: say so loudly, answer like GitLab's 500
            traceback.print_exc()
            self.send(500, json.dumps({"message": "500 Internal Server Error"}).encode())
            return 500


def authenticate(state, headers, qparams, route):
    pat = headers.get("PRIVATE-TOKEN") or qparams.get("private_token")
    authz = headers.get("Authorization") or ""
    bearer = authz[7:].strip() if authz.lower().startswith("bearer ") else None
    job_token = headers.get("JOB-TOKEN") or qparams.get("job_token")
    value = pat or bearer
    if value:
        kind = "private" if pat else "oauth"
        tok = state.tokens.get(value)
        if tok is None or not tok.active() or state.users[tok.user_id].state != "active":
            return Auth(kind=kind, token=value, invalid=True)
        tok.last_used_at = now_iso()
        return Auth(state.users[tok.user_id], kind, value, tuple(tok.scopes), token_obj=tok)
    if job_token:
        if not route.job_token:
            # GitLab ignores the job token where it is not allowed: anonymous call
            return Auth(kind="job-ignored", token=job_token)
        job = state.job_by_token(job_token)
        if job is None or job.status != "running":
            return Auth(kind="job", token=job_token, invalid=True)
        return Auth(state.users[job.user_id], "job", job_token, ("api",), job)
    return Auth()


SELF_ROTATE = re.compile(r"^/(projects|groups)/[^/]+/access_tokens/self/rotate$")


def check_scope(auth, method, api_path):
    if auth.kind not in ("private", "oauth") or "api" in auth.scopes:
        return
    if method == "POST" and "self_rotate" in auth.scopes and SELF_ROTATE.match(api_path):
        return   # API::ResourceAccessTokens::SelfRotation: allow_access_with_scope :self_rotate
    if method in ("GET", "HEAD") and "read_api" in auth.scopes:
        return
    if api_path == "/user" and method == "GET" and "read_user" in auth.scopes:
        return
    raise errors.insufficient_scope()


class FakeGitLab(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, state, verbose=False):
        super().__init__(address, Handler)
        self.state = state
        self.verbose = verbose
        self.faults = Faults()
        self.log = RequestLog()
        host, port = self.server_address[:2]
        state.base_url = f"http://{host}:{port}"
