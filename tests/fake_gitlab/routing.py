"""Route table on the raw request path, and offset pagination.

Routes are written like ``/projects/:id/repository/files/:file_path/raw``.
Each ``:param`` matches one *raw* path segment (``[^/]+``), so an encoded
``%2F`` stays inside its segment, as GitLab routes it (gitlab.md section 11);
the captured value is then URL-decoded.  An unencoded ``group/app`` in place
of ``:id`` therefore does not match, and the caller gets GitLab's 404.
"""

import math
import re
from urllib.parse import quote, unquote, urlencode

from . import errors


class Route:
    def __init__(self, method, pattern, handler, job_token=False, anonymous_write=False):
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.job_token = job_token            # JOB-TOKEN is accepted here
        self.anonymous_write = anonymous_write  # no authenticate! before a write
        rx = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", re.escape(pattern).replace(r"\:", ":"))
        self.regex = re.compile("^" + rx + "$")


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, **flags):
        def deco(fn):
            for m in method.split("|"):
                self.routes.append(Route(m, pattern, fn, **flags))
            return fn
        return deco

    def match(self, method, path):
        """(route, decoded path params); raises GitLab's 404/405 otherwise."""
        path_matched = False
        for r in self.routes:
            m = r.regex.match(path)
            if not m:
                continue
            if r.method == method or (method == "HEAD" and r.method == "GET"):
                return r, {k: unquote(v) for k, v in m.groupdict().items()}
            path_matched = True
        if path_matched:
            raise errors.ApiError(405, {"error": "405 Not Allowed"})
        raise errors.route_not_found()


def paginate(ctx, items):
    """Offset pagination with GitLab's x-* headers and an absolute Link header."""
    try:
        page = int(ctx.params.raw("page", 1))
    except (TypeError, ValueError):
        raise errors.invalid("page")
    try:
        per_page = int(ctx.params.raw("per_page", 20))
    except (TypeError, ValueError):
        raise errors.invalid("per_page")
    page = max(page, 1)
    if per_page < 1:
        per_page = 20
    per_page = min(per_page, 100)
    total = len(items)
    total_pages = max(1, math.ceil(total / per_page))
    chunk = items[(page - 1) * per_page: page * per_page]

    def url(n):
        q = [(k, v) for k, v in ctx.query_pairs if k not in ("page", "per_page")]
        q += [("page", str(n)), ("per_page", str(per_page))]
        return f"{ctx.base_url}{ctx.raw_path}?{urlencode(q, quote_via=quote, safe='[]')}"

    links = []
    if page > 1:
        links.append(f'<{url(min(page - 1, total_pages))}>; rel="prev"')
    if page < total_pages:
        links.append(f'<{url(page + 1)}>; rel="next"')
    links.append(f'<{url(1)}>; rel="first"')
    links.append(f'<{url(total_pages)}>; rel="last"')
    ctx.headers.update({
        "X-Page": str(page), "X-Per-Page": str(per_page),
        "X-Next-Page": str(page + 1) if page < total_pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
        "X-Total": str(total), "X-Total-Pages": str(total_pages),
        "Link": ", ".join(links),
    })
    return chunk


def keyset_paginate(ctx, items, key="id"):
    """Keyset pagination (``pagination=keyset``): only an absolute rel="next" Link."""
    per_page = min(max(int(ctx.params.raw("per_page", 20) or 20), 1), 100)
    desc = (ctx.params.str("sort", "asc") or "asc") == "desc"
    items = sorted(items, key=lambda x: x[key], reverse=desc)
    after = ctx.params.int("id_after") if not desc else ctx.params.int("id_before")
    if after is not None:
        items = [x for x in items if (x[key] < after if desc else x[key] > after)]
    chunk = items[:per_page]
    if len(items) > per_page:
        q = [(k, v) for k, v in ctx.query_pairs if k not in ("id_after", "id_before")]
        q.append(("id_before" if desc else "id_after", str(chunk[-1][key])))
        ctx.headers["Link"] = f'<{ctx.base_url}{ctx.raw_path}?{urlencode(q, quote_via=quote, safe="[]")}>; rel="next"'
    return chunk


router = Router()
"""The one route table; api_* modules register their handlers on it."""
