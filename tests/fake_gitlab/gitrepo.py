"""Git plumbing on the bare repositories (one ``Repo`` per project).

Everything the REST API does to or reads from a repository goes through
here, as ``git`` subprocesses: reading blobs and trees, the last commit that
touched a path (for ``last_commit_id``), writing commits with a temporary index
(``update-index --index-info`` / ``write-tree`` / ``commit-tree``) and moving
refs with a compare-and-swap ``update-ref``, tags, merge bases, diffs and
merges (``merge-tree --write-tree``).

Callers hold the server's state lock around writes, so a read-check-write
sequence (the per-file ``last_commit_id`` check) is atomic with respect to
other API writers; pushes over HTTP are guarded by ``update-ref``'s old-value
check instead.
"""

import os
import re
import subprocess
import tempfile
from datetime import datetime, timezone

ZERO = "0" * 40
SHA_RE = re.compile(r"\A[0-9a-f]{40}\Z")

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_LITERAL_PATHSPECS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


class GitError(Exception):
    def __init__(self, args, code, stderr):
        super().__init__(f"git {' '.join(args)} failed ({code}): {stderr.strip()}")
        self.code = code
        self.stderr = stderr


def git_env(extra=None):
    env = dict(os.environ)
    env.update(GIT_ENV)
    if extra:
        env.update(extra)
    return env


def gitlab_time(iso):
    """'2024-01-02T03:04:05+00:00' -> '2024-01-02T03:04:05.000+00:00'."""
    if not iso:
        return None
    if iso.endswith("Z"):
        iso = iso[:-1] + "+00:00"
    return iso[:19] + ".000" + iso[19:]


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Repo:
    def __init__(self, path):
        self.path = path

    # -- running git ---------------------------------------------------------
    def git(self, *args, input=None, env=None, check=True):
        proc = subprocess.run(
            ["git", *args], cwd=self.path, input=input, env=git_env(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout if check else proc

    def text(self, *args, **kw):
        return self.git(*args, **kw).decode("utf-8", "replace")

    def init(self, default_branch):
        os.makedirs(self.path, exist_ok=True)
        self.git("init", "--quiet", "--bare", f"--initial-branch={default_branch}")
        # let http-backend serve it and accept pushes from authenticated users
        self.git("config", "http.receivepack", "true")
        self.git("config", "receive.advertisePushOptions", "true")
        self.git("config", "uploadpack.allowAnySHA1InWant", "true")

    def set_head(self, branch):
        self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    # -- refs ----------------------------------------------------------------
    def branches(self):
        out = self.text("for-each-ref", "refs/heads", "--format=%(refname:lstrip=2)%00%(objectname)")
        return dict(line.split("\0") for line in out.splitlines() if line)

    def branch_sha(self, name):
        return self.branches().get(name)

    def is_empty(self):
        return not self.text("for-each-ref", "--count=1", "refs/heads")

    def tags(self):
        """{name: {target, commit, message, created_at, annotated}}."""
        fmt = "%(refname:lstrip=2)%00%(objectname)%00%(objecttype)%00%(*objectname)%00%(taggerdate:iso-strict)%00%(contents)%01"
        out = self.text("for-each-ref", "refs/tags", f"--format={fmt}")
        tags = {}
        for rec in out.split("\x01"):
            rec = rec.lstrip("\n")
            if not rec:
                continue
            name, obj, otype, peeled, tdate, contents = rec.split("\0", 5)
            annotated = otype == "tag"
            commit = peeled if annotated else obj
            if annotated and not peeled:
                continue
            msg = contents.rstrip("\n") if annotated else None
            if annotated and "-----BEGIN PGP SIGNATURE-----" in (msg or ""):
                msg = msg.split("-----BEGIN PGP SIGNATURE-----")[0].rstrip("\n")
            tags[name] = {"name": name, "target": obj, "commit": commit,
                          "message": msg if annotated else "",
                          "created_at": gitlab_time(tdate) if annotated else None,
                          "annotated": annotated}
        return tags

    def commit_sha(self, rev):
        """Resolve a branch, tag or (short) SHA to a commit SHA, or None."""
        if not rev:
            return None
        for cand in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
            p = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{cand}^{{commit}}", check=False)
            if p.returncode == 0:
                return p.stdout.decode().strip()
        return None

    def update_ref(self, ref, new, old=None):
        args = ["update-ref", ref, new]
        if old is not None:
            args.append(old or ZERO)
        self.git(*args)

    def delete_ref(self, ref):
        self.git("update-ref", "-d", ref)

    def valid_ref_name(self, kind, name):
        if not name or name.startswith("-") or name == "HEAD" or name.startswith("refs/"):
            return False
        p = self.git("check-ref-format", f"refs/{kind}/{name}", check=False)
        return p.returncode == 0

    # -- objects -------------------------------------------------------------
    def commits(self, shas):
        if not shas:
            return []
        fmt = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x01"
        out = self.text("log", "--no-walk=unsorted", f"--format={fmt}", *shas, "--")
        result = []
        for rec in out.split("\x01"):
            rec = rec.lstrip("\n")
            if not rec:
                continue
            sha, parents, an, ae, ad, cn, ce, cd, body = rec.split("\0", 8)
            result.append({"id": sha, "parent_ids": parents.split() if parents else [],
                           "author_name": an, "author_email": ae, "authored_date": gitlab_time(ad),
                           "committer_name": cn, "committer_email": ce, "committed_date": gitlab_time(cd),
                           "message": body})
        return result

    def commit(self, sha):
        c = self.commits([sha])
        return c[0] if c else None

    def rev_list(self, *args, limit=None):
        extra = [f"--max-count={limit}"] if limit else []
        return self.text("rev-list", *extra, *args, "--").split()

    def merge_base(self, a, b):
        p = self.git("merge-base", a, b, check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def is_ancestor(self, a, b):
        return self.git("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    def entry(self, commit, path):
        """(mode, type, sha) of ``path`` in ``commit`` or None."""
        path = path.strip("/")
        if not path:
            return None
        out = self.git("ls-tree", "-z", "--full-tree", commit, "--", path)
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            if name.decode("utf-8", "surrogateescape") == path:
                mode, typ, sha = meta.decode().split()
                return mode, typ, sha
        return None

    def blob(self, sha):
        return self.git("cat-file", "blob", sha)

    def flat_tree(self, commit):
        """{path: (mode, sha)} of every non-tree entry (files, symlinks, gitlinks)."""
        if not commit:
            return {}
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit)
        files = {}
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            mode, _typ, sha = meta.decode().split()
            files[name.decode("utf-8", "surrogateescape")] = (mode, sha)
        return files

    def ls_tree(self, commit, path="", recursive=False):
        args = ["ls-tree", "-z", "--full-tree"]
        if recursive:
            args += ["-r", "-t"]
        args.append(f"{commit}:{path.strip('/')}" if path.strip("/") else commit)
        p = self.git(*args, check=False)
        if p.returncode != 0:
            return None
        prefix = (path.strip("/") + "/") if path.strip("/") else ""
        items = []
        for rec in p.stdout.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            mode, typ, sha = meta.decode().split()
            rel = name.decode("utf-8", "surrogateescape")
            items.append({"id": sha, "name": rel.rsplit("/", 1)[-1], "type": typ,
                          "path": prefix + rel, "mode": mode})
        return items

    def last_commit_for_path(self, commit, path):
        if not commit:
            return None
        out = self.text("log", "-1", "--format=%H", commit, "--", path).strip()
        return out or None

    def hash_blob(self, data):
        return self.text("hash-object", "-w", "--stdin", input=data).strip()

    def write_tree(self, files):
        """Write a tree from {path: (mode, sha)} with a throwaway index."""
        with tempfile.TemporaryDirectory(prefix="fakegl-idx-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            data = b"".join(
                f"{mode} {sha}\t".encode() + path.encode("utf-8", "surrogateescape") + b"\0"
                for path, (mode, sha) in sorted(files.items()))
            if data:
                self.git("update-index", "-z", "--index-info", input=data, env=env)
            return self.text("write-tree", env=env).strip()

    def commit_tree(self, tree, parents, message, author, committer=None):
        committer = committer or author
        env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
               "GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1]}
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        args += ["-F", "-"]
        return self.text(*args, input=message.encode("utf-8"), env=env).strip()

    def tree_of(self, commit):
        return self.text("rev-parse", f"{commit}^{{tree}}").strip()

    def create_annotated_tag(self, name, commit, message, tagger):
        env = {"GIT_COMMITTER_NAME": tagger[0], "GIT_COMMITTER_EMAIL": tagger[1]}
        obj = (f"object {commit}\ntype commit\ntag {name}\n"
               f"tagger {tagger[0]} <{tagger[1]}> {int(datetime.now().timestamp())} +0000\n\n{message}")
        if not obj.endswith("\n"):
            obj += "\n"
        sha = self.text("mktag", input=obj.encode("utf-8"), env=env).strip()
        self.update_ref(f"refs/tags/{name}", sha, ZERO)
        return sha

    def merge_tree(self, ours, theirs):
        """(tree_sha, conflicted) of merging theirs into ours, without a worktree."""
        p = self.git("merge-tree", "--write-tree", "--no-messages", ours, theirs, check=False)
        if p.returncode not in (0, 1):
            raise GitError(("merge-tree",), p.returncode, p.stderr.decode())
        tree = p.stdout.decode().split("\n", 1)[0].strip()
        return tree, p.returncode == 1

    # -- diffs ---------------------------------------------------------------
    def diffs(self, base, head):
        """GitLab diff entries from base to head (rename detection on)."""
        if not base:
            base = self.text("hash-object", "-t", "tree", os.devnull).strip()  # empty tree
        raw = self.git("diff", "--raw", "-z", "-M", "--no-abbrev", base, head)
        fields = raw.split(b"\0")
        entries = []
        i = 0
        while i < len(fields) and fields[i]:
            meta = fields[i].decode().lstrip(":").split()
            status = meta[4]
            old_mode, new_mode = meta[0], meta[1]
            if status[0] in "RC":
                old_path, new_path = fields[i + 1], fields[i + 2]
                i += 3
            else:
                old_path = new_path = fields[i + 1]
                i += 2
            entries.append({
                "old_path": old_path.decode("utf-8", "surrogateescape"),
                "new_path": new_path.decode("utf-8", "surrogateescape"),
                "a_mode": "0" if old_mode == "000000" else old_mode,
                "b_mode": "0" if new_mode == "000000" else new_mode,
                "new_file": status[0] == "A", "renamed_file": status[0] == "R",
                "deleted_file": status[0] == "D", "generated_file": False, "diff": ""})
        if not entries:
            return []
        patch = self.text("diff", "-M", "--no-abbrev", "--no-color", "--no-ext-diff", base, head)
        chunks = re.split(r"(?m)^diff --git ", patch)[1:]
        for entry, chunk in zip(entries, chunks):
            lines = chunk.split("\n")
            body_start = None
            for n, line in enumerate(lines):
                if line.startswith("@@") or line.startswith("Binary files"):
                    body_start = n
                    break
            if body_start is not None:
                text = "\n".join(lines[body_start:])
                entry["diff"] = text if text.endswith("\n") else text + "\n"
        return entries
