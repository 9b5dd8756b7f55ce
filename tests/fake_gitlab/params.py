"""Request parameters, as Grape sees them.

GitLab merges the query string and the body (JSON or form-encoded) into one
parameter hash.  Form bodies use Rack's nesting rules, which the ``gitlab``
crate relies on:

- ``k=v``                      scalar
- ``k[]=a&k[]=b``              array of scalars
- ``h[k]=v``                   hash
- ``a[][x]=1&a[][y]=2&a[][x]=3``  array of hashes; a new element starts when
  a key already present in the current element repeats.

``Params`` wraps the merged dict with the coercions Grape applies (booleans
from ``"true"``/``"false"``, integers, required parameters).
"""

import json
import re
from urllib.parse import parse_qsl

from . import errors

_FIRST_KEY = re.compile(r"\A[\[\]]*([^\[\]]+)\]*")
_ARRAY_OF_HASH = re.compile(r"\A\[\]\[([^\[\]]+)\]\Z")
_ARRAY_NESTED = re.compile(r"\A\[\](.+)\Z")


def _has_key(h, key):
    """Rack's params_hash_has_key?: does nested key ``a][b`` exist in h?"""
    if re.search(r"\[\]", key):
        return False
    cur = h
    for part in [p for p in re.split(r"[\[\]]+", key) if p]:
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True


def normalize(params, name, value):
    """Port of Rack::QueryParser#normalize_params."""
    m = _FIRST_KEY.match(name)
    if not m:
        return params
    k = m.group(1)
    after = name[m.end():]
    if after == "":
        params[k] = value
    elif after == "[]":
        lst = params.setdefault(k, [])
        if not isinstance(lst, list):
            raise errors.bad_request_helper(f"expected Array (got {type(lst).__name__}) for param `{k}'")
        lst.append(value)
    else:
        m2 = _ARRAY_OF_HASH.match(after) or _ARRAY_NESTED.match(after)
        if m2:
            child = m2.group(1)
            lst = params.setdefault(k, [])
            if lst and isinstance(lst[-1], dict) and not _has_key(lst[-1], child):
                normalize(lst[-1], child, value)
            else:
                lst.append(normalize({}, child, value))
        else:
            sub = params.get(k)
            if not isinstance(sub, dict):
                sub = {}
            params[k] = normalize(sub, after, value)
    return params


def parse_form(text):
    out = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        normalize(out, name, value)
    return out


def parse_body(content_type, raw):
    """Parse a request body into a dict (JSON or form-encoded)."""
    if not raw:
        return {}
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and raw[:1] in (b"{", b"[")):
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise errors.bad_request_helper("Invalid JSON")  # Grape answers 400 on bad JSON
        return data if isinstance(data, dict) else {}
    if ctype in ("application/x-www-form-urlencoded", ""):
        return parse_form(raw.decode("utf-8", "replace"))
    # multipart and others: not used by berth nor by the calls we test
    return {}


TRUE = {"true", "1", "t", "yes", "y", "on"}
FALSE = {"false", "0", "f", "no", "n", "off", ""}


class Params:
    """The merged parameters of one request, with Grape-like coercions."""

    def __init__(self, data):
        self.data = data

    def __contains__(self, key):
        return key in self.data and self.data[key] is not None

    def raw(self, key, default=None):
        v = self.data.get(key)
        return default if v is None else v

    def str(self, key, default=None):
        v = self.data.get(key)
        if v is None:
            return default
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (dict, list)):
            raise errors.invalid(key)
        return str(v)

    def int(self, key, default=None):
        v = self.data.get(key)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            raise errors.invalid(key)
        try:
            return int(v)
        except (TypeError, ValueError):
            raise errors.invalid(key)

    def bool(self, key, default=None):
        v = self.data.get(key)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in TRUE:
            return True
        if s in FALSE:
            return False
        raise errors.invalid(key)

    def list(self, key):
        v = self.data.get(key)
        if v is None:
            return []
        if isinstance(v, list):
            return v
        if isinstance(v, dict):  # Rack turns a[0][k] into a hash keyed by index
            return [v[k] for k in sorted(v, key=lambda s: int(s) if str(s).isdigit() else 0)]
        if isinstance(v, str):
            return [s for s in v.split(",") if s != ""]
        return [v]

    def dict(self, key):
        v = self.data.get(key)
        return v if isinstance(v, dict) else {}

    def require(self, *names, allow_blank=True):
        absent = [n for n in names if self.data.get(n) is None]
        if absent:
            raise errors.missing(*absent)
        if not allow_blank:
            blank = [n for n in names if isinstance(self.data[n], str) and self.data[n].strip() == ""]
            if blank:
                raise errors.ApiError(400, {"error": ", ".join(f"{n} is empty" for n in blank)})

    def values(self, key, allowed, default=None):
        v = self.str(key, default)
        if v is not None and v not in allowed:
            raise errors.invalid(key, "does not have a valid value")
        return v
