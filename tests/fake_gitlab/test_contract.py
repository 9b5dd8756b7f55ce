"""Contract test: drive the fake GitLab with real, independent clients.

The fake is started as its own process (``python3 -m fake_gitlab``) and then
exercised with Debian's ``python3-gitlab`` (python-gitlab) doing the calls
berth makes, with ``git`` itself over smart HTTP, and with raw ``urllib`` for
the wire details (error bodies, headers, form-encoded Rack bodies as the Rust
``gitlab`` crate sends them).  Anything only berth's own code agreed with
would show up here as a disagreement with python-gitlab or git.

Run: ``tests/fake_gitlab/run-tests`` (or, from ``tests/``:
``/usr/bin/python3 -m unittest -v fake_gitlab.test_contract``).
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import gitlab
import gitlab.exceptions as glexc

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEED = {
    "users": [
        {"username": "alice", "name": "Alice Admin", "email": "alice@example.com"},
        {"username": "dev", "name": "Dee Veloper", "email": "dev@example.com"},
        {"username": "guest", "name": "Gus Guest", "email": "guest@example.com"},
    ],
    "tokens": [
        {"token": "alice-token", "user": "alice", "scopes": ["api"]},
        {"token": "dev-token", "user": "dev", "scopes": ["api"]},
        {"token": "guest-token", "user": "guest", "scopes": ["api"]},
        {"token": "alice-read", "user": "alice", "scopes": ["read_api"]},
    ],
    "groups": [
        {"path": "plugins", "name": "Plugins", "members": {"alice": 50}},
        {"path": "deploy", "name": "Deploy", "members": {"alice": 50}},
    ],
}


class FakeGitLabProcess:
    """Start/stop the fake as a separate process; wait on its ready file."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="fake-gitlab-test-")
        self.proc = None
        self.url = None

    def start(self, timeout=20):
        ready = os.path.join(self.tmp, "ready")
        self.stderr = open(os.path.join(self.tmp, "server.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fake_gitlab", "--port", "0", "--data", os.path.join(self.tmp, "data"),
             "--ready-file", ready, "--parent-pid", str(os.getpid())],
            cwd=TESTS_DIR, stdout=self.stderr, stderr=self.stderr, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fake GitLab exited early:\n" + self.server_log())
            if os.path.exists(ready):
                with open(ready) as f:
                    self.url = f.read().strip()
                return self.url
            time.sleep(0.05)
        raise RuntimeError("fake GitLab did not become ready")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server_log(self):
        try:
            with open(os.path.join(self.tmp, "server.log")) as f:
                return f.read()
        except OSError:
            return ""


SERVER = FakeGitLabProcess()


def setUpModule():
    unittest.addModuleCleanup(SERVER.stop)   # runs even if start() fails half-way
    SERVER.start()


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(SERVER.url + "/__fake" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def raw_api(method, path, token="root-token", data=None, form=None, headers=None):
    """(status, headers, parsed body) of one API call, without python-gitlab."""
    hdrs = dict(headers or {})
    if token:
        hdrs["PRIVATE-TOKEN"] = token
    body = None
    if form is not None:
        body = form.encode() if isinstance(form, str) else urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif data is not None:
        body = json.dumps(data).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(SERVER.url + "/api/v4" + path, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, h, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, h, raw = e.code, e.headers, e.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return status, h, parsed


CLIENTS = []


def gl(token="root-token", **kw):
    """A python-gitlab client (closed after the test)."""
    client = gitlab.Gitlab(SERVER.url, private_token=token, **kw)
    CLIENTS.append(client)
    return client


def close_clients():
    while CLIENTS:
        CLIENTS.pop().session.close()


def git(*args, cwd=None, check=True):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="T",
               GIT_COMMITTER_EMAIL="t@example.com")
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc


def auth_url(path, user="oauth2", token="root-token"):
    host = SERVER.url.split("://", 1)[1]
    return f"http://{user}:{token}@{host}/{path}.git"


class FakeTestCase(unittest.TestCase):
    def setUp(self):
        control("POST", "/reset")
        self.ids = control("POST", "/seed", SEED)
        self.root = gl()
        self.alice = gl("alice-token")
        self.dev = gl("dev-token")
        self.work = tempfile.mkdtemp(prefix="fake-gitlab-work-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.addCleanup(close_clients)
        self.addCleanup(self.assert_no_server_errors)

    def assert_no_server_errors(self):
        """A traceback in the fake's log means a bug in the fake (it answered 500)."""
        log = SERVER.server_log()
        self.assertNotIn("Traceback", log, log)

    def make_project(self, client=None, path="app", namespace="plugins", readme=True, **extra):
        client = client or self.alice
        ns = client.namespaces.get(namespace)
        return client.projects.create({"name": path, "path": path, "namespace_id": ns.id,
                                       "initialize_with_readme": readme, **extra})

    def add_dev(self, project, level=30):
        project.members.create({"user_id": self.ids["users"]["dev"], "access_level": level})


# ---------------------------------------------------------------------------------------------
class TestProjectsAndMembers(FakeTestCase):
    def test_create_get_edit_member(self):
        grp = self.alice.groups.create({"name": "Tools", "path": "tools"})
        self.assertEqual(grp.full_path, "tools")
        sub = self.alice.groups.create({"name": "Sub", "path": "sub", "parent_id": grp.id})
        self.assertEqual(sub.full_path, "tools/sub")
        p = self.alice.projects.create({"name": "My App", "namespace_id": sub.id, "initialize_with_readme": True})
        self.assertEqual(p.path, "my-app")
        self.assertEqual(p.path_with_namespace, "tools/sub/my-app")
        self.assertEqual(p.default_branch, "main")
        self.assertFalse(p.empty_repo)
        self.assertTrue(p.http_url_to_repo.endswith("/tools/sub/my-app.git"))
        # get by encoded path (python-gitlab encodes '/' as %2F) and by id
        self.assertEqual(self.alice.projects.get("tools/sub/my-app").id, p.id)
        self.assertEqual(self.alice.projects.get(p.id).name, "My App")
        # edit ci_config_path
        p.ci_config_path = "templates/berth.yml@platform/ci-templates:v1.2.0"
        p.save()
        self.assertEqual(self.alice.projects.get(p.id).ci_config_path,
                         "templates/berth.yml@platform/ci-templates:v1.2.0")
        # members: add, duplicate (409), unknown user (404), list
        m = p.members.create({"user_id": self.ids["users"]["dev"], "access_level": 30})
        self.assertEqual((m.username, m.access_level), ("dev", 30))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.members.create({"user_id": self.ids["users"]["dev"], "access_level": 30})
        self.assertEqual(cm.exception.response_code, 409)
        self.assertEqual(cm.exception.error_message, "Member already exists")
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.members.create({"user_id": 9999, "access_level": 30})
        self.assertEqual(cm.exception.response_code, 404)
        self.assertEqual([x.username for x in p.members.list(get_all=True)], ["dev"])
        self.assertIn("alice", [x.username for x in p.members_all.list(get_all=True)])
        # the developer sees the project now; the guest does not (404 like GitLab)
        self.assertEqual(self.dev.projects.get("tools/sub/my-app").id, p.id)
        with self.assertRaises(glexc.GitlabGetError) as cm:
            gl("guest-token").projects.get("tools/sub/my-app")
        self.assertEqual(cm.exception.response_code, 404)
        # a developer cannot edit the project (Maintainer+)
        dp = self.dev.projects.get(p.id)
        dp.ci_config_path = ".gitlab-ci.yml"
        with self.assertRaises(glexc.GitlabUpdateError) as cm:
            dp.save()
        self.assertEqual(cm.exception.response_code, 403)

    def test_project_lists_offset_and_keyset(self):
        for i in range(5):
            self.make_project(path=f"p{i}", readme=False)
        self.assertTrue(self.alice.projects.get("plugins/p0").empty_repo)
        ids = [p.id for p in self.alice.projects.list(get_all=True, per_page=2)]
        self.assertEqual(sorted(ids), list(range(1, 6)))
        keyset = self.alice.projects.list(pagination="keyset", order_by="id", sort="asc", per_page=2, get_all=True)
        self.assertEqual([p.id for p in keyset], list(range(1, 6)))
        status, h, body = raw_api("GET", "/projects?pagination=keyset&order_by=id&sort=asc&per_page=2",
                                  token="alice-token")
        self.assertEqual(len(body), 2)
        self.assertTrue(h["Link"].startswith(f"<{SERVER.url}/api/v4/projects?"), h["Link"])
        self.assertIn("id_after=2", h["Link"])
        self.assertEqual([p.path for p in self.alice.groups.get("plugins").projects.list(get_all=True)],
                         ["p4", "p3", "p2", "p1", "p0"])
        self.assertEqual(self.dev.projects.list(get_all=True), [])   # dev is no member anywhere

    def test_duplicate_project_and_errors(self):
        self.make_project()
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            self.make_project()
        self.assertEqual(cm.exception.response_code, 400)
        self.assertEqual(cm.exception.error_message,
                         {"name": ["has already been taken"], "path": ["has already been taken"]})
        status, _, body = raw_api("GET", "/projects/plugins%2Fnope")
        self.assertEqual((status, body), (404, {"message": "404 Project Not Found"}))
        # an unencoded path does not route, as on GitLab
        status, _, body = raw_api("GET", "/projects/plugins/app")
        self.assertEqual((status, body), (404, {"error": "404 Not Found"}))
        status, _, body = raw_api("GET", "/user", token="bogus")
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        with self.assertRaises(glexc.GitlabAuthenticationError):
            gl("bogus").auth()
        status, _, body = raw_api("POST", "/projects/plugins%2Fapp/repository/commits", token="alice-token",
                                  data={"actions": []})
        self.assertEqual((status, body), (400, {"error": "branch is missing, commit_message is missing"}))
        status, _, body = raw_api("POST", "/projects", token="alice-read", data={"name": "x"})
        self.assertEqual(status, 403)
        self.assertEqual(body["error"], "insufficient_scope")
        status, _, body = raw_api("PUT", "/projects/plugins%2Fapp", token="alice-token", data={})
        self.assertEqual(status, 400)
        self.assertIn("at least one parameter must be provided", body["error"])


# ---------------------------------------------------------------------------------------------
class TestRepository(FakeTestCase):
    def test_commit_actions_and_files_with_last_commit_id(self):
        p = self.make_project()
        c = p.commits.create({"branch": "main", "commit_message": "allocations", "actions": [
            {"action": "create", "file_path": "fleet/alloc.yml", "content": "ports: []\n"},
            {"action": "create", "file_path": "hosts.yml", "content": base64.b64encode(b"h1\n").decode(),
             "encoding": "base64"},
        ]})
        self.assertEqual(c.title, "allocations")
        self.assertEqual(c.stats["additions"], 2)
        f = p.files.get("fleet/alloc.yml", ref="main")
        self.assertEqual(base64.b64decode(f.content), b"ports: []\n")
        self.assertEqual(f.last_commit_id, c.id)
        self.assertEqual(p.files.raw("hosts.yml", ref="main"), b"h1\n")
        first = f.last_commit_id
        # update with the right last_commit_id (files API)
        out = p.files.update("fleet/alloc.yml", {"branch": "main", "commit_message": "take 8000",
                                                 "content": "ports: [8000]\n", "last_commit_id": first})
        self.assertEqual(out, {"file_path": "fleet/alloc.yml", "branch": "main"})
        # stale last_commit_id on the files API
        with self.assertRaises(glexc.GitlabUpdateError) as cm:
            p.files.update("fleet/alloc.yml", {"branch": "main", "commit_message": "take 8000 again",
                                               "content": "ports: [8000, 8000]\n", "last_commit_id": first})
        self.assertEqual(cm.exception.response_code, 400)
        self.assertEqual(cm.exception.error_message,
                         "You are attempting to update a file that has changed since you started editing it.")
        # stale last_commit_id on the commits API
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.commits.create({"branch": "main", "commit_message": "x", "actions": [
                {"action": "update", "file_path": "fleet/alloc.yml", "content": "x", "last_commit_id": first}]})
        self.assertEqual(cm.exception.response_code, 400)
        self.assertEqual(cm.exception.error_message,
                         "The file has changed since you started editing it: fleet/alloc.yml")
        # the lock is per file: hosts.yml last changed in `first`, so `first` is still current for it
        p.commits.create({"branch": "main", "commit_message": "hosts", "actions": [
            {"action": "update", "file_path": "hosts.yml", "content": "h1\nh2\n", "last_commit_id": first}]})
        # create-existing / update-missing / branch rules
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.files.create({"file_path": "hosts.yml", "branch": "main", "content": "x", "commit_message": "m"})
        self.assertEqual(cm.exception.error_message, "A file with this name already exists")
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.commits.create({"branch": "nobranch", "commit_message": "x", "actions": [
                {"action": "create", "file_path": "n", "content": "x"}]})
        self.assertEqual(cm.exception.error_message, "You can only create or edit files when you are on a branch")
        p.commits.create({"branch": "feature", "start_branch": "main", "commit_message": "feat", "actions": [
            {"action": "move", "file_path": "hosts2.yml", "previous_path": "hosts.yml"},
            {"action": "delete", "file_path": "README.md"}]})
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.commits.create({"branch": "feature", "start_branch": "main", "commit_message": "again",
                              "actions": [{"action": "create", "file_path": "z", "content": "z"}]})
        self.assertEqual(cm.exception.error_message,
                         "A branch called 'feature' already exists. Switch to that branch in order to make changes")
        self.assertEqual(sorted(b.name for b in p.branches.list(get_all=True)), ["feature", "main"])
        tree = [t["path"] for t in p.repository_tree(ref="feature", recursive=True, get_all=True)]
        self.assertEqual(sorted(tree), ["fleet", "fleet/alloc.yml", "hosts2.yml"])
        cmp = p.repository_compare("main", "feature")
        self.assertEqual([x["title"] for x in cmp["commits"]], ["feat"])
        self.assertEqual(sorted((d["old_path"], d["new_path"], d["renamed_file"], d["deleted_file"])
                                for d in cmp["diffs"]),
                         [("README.md", "README.md", False, True), ("hosts.yml", "hosts2.yml", True, False)])
        with self.assertRaises(glexc.GitlabGetError) as cm:
            p.files.get("nope.txt", ref="main")
        self.assertEqual((cm.exception.response_code, cm.exception.error_message), (404, "404 File Not Found"))
        # HEAD gives the metadata headers
        status, headers, _ = raw_api("HEAD", f"/projects/{p.id}/repository/files/fleet%2Falloc.yml?ref=main")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Gitlab-Last-Commit-Id"], p.files.get("fleet/alloc.yml", ref="main").last_commit_id)

    def test_tags_pagination_and_protected_tags(self):
        p = self.make_project()
        self.add_dev(p)
        for i in range(45):
            p.tags.create({"tag_name": f"v1.{i}.0", "ref": "main"})
        ann = p.tags.create({"tag_name": "deployed/prod/1", "ref": "main", "message": "ref: v1.2.0\nhost: h1"})
        head = p.commits.get("main").id
        self.assertEqual(ann.message, "ref: v1.2.0\nhost: h1")
        self.assertEqual(ann.commit["id"], head)
        self.assertNotEqual(ann.target, head)            # annotated: target = tag object
        self.assertIsNotNone(ann.created_at)
        light = p.tags.get("v1.0.0")
        self.assertEqual((light.target, light.message), (head, ""))
        self.assertEqual(p.tags.get("deployed/prod/1").name, "deployed/prod/1")   # encoded slash
        # python-gitlab walks every page
        self.assertEqual(len(p.tags.list(get_all=True)), 46)
        it = p.tags.list(iterator=True, per_page=20)
        self.assertEqual((it.total, it.total_pages, it.per_page), (46, 3, 20))
        names = [t.name for t in it]
        self.assertEqual(len(names), 46)
        self.assertEqual(len(set(names)), 46)
        self.assertEqual(len(p.tags.list(search="^deployed/", get_all=True)), 1)
        # raw headers on the last page
        status, h, body = raw_api("GET", f"/projects/{p.id}/repository/tags?per_page=20&page=3")
        self.assertEqual((status, len(body), h["X-Total"], h["X-Total-Pages"], h["X-Page"]), (200, 6, "46", "3", "3"))
        self.assertEqual((h["X-Next-Page"], h["X-Prev-Page"]), ("", "2"))
        self.assertIn(f'<{SERVER.url}/api/v4/projects/{p.id}/repository/tags?page=2&per_page=20>; rel="prev"',
                      h["Link"])
        self.assertNotIn('rel="next"', h["Link"])
        # errors
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.tags.create({"tag_name": "v1.0.0", "ref": "main"})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message), (400, "Tag v1.0.0 already exists"))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.tags.create({"tag_name": "x", "ref": "nope"})
        self.assertEqual(cm.exception.error_message, "Target nope is invalid")
        with self.assertRaises(glexc.GitlabGetError) as cm:
            p.tags.get("v9")
        self.assertEqual(cm.exception.error_message, "404 Tag Not Found")
        # protected tags: only maintainers create deployed/*
        pt = p.protectedtags.create({"name": "deployed/*", "create_access_level": 40})
        self.assertEqual(pt.create_access_levels[0]["access_level"], 40)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.protectedtags.create({"name": "deployed/*"})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                         (409, "Protected tag 'deployed/*' already exists"))
        dp = self.dev.projects.get(p.id)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            dp.tags.create({"tag_name": "deployed/prod/2", "ref": "main", "message": "m"})
        self.assertEqual(cm.exception.error_message, "You are not allowed to create this tag as it is protected.")
        dp.tags.create({"tag_name": "v2.0.0", "ref": "main"})
        self.assertTrue(p.tags.get("deployed/prod/1").protected)

    def test_protected_tags_refuse_developers_by_api_and_git(self):
        """Tags carry `protected`; a Developer's protected tag is refused by POST .../tags (400, the
        pre-receive text via Tags::CreateService) and by git push (lib/gitlab/checks/tag_check.rb)."""
        p = self.make_project()
        self.add_dev(p)
        p.protectedtags.create({"name": "deployed/*", "create_access_level": 40})
        p.tags.create({"tag_name": "deployed/test/1", "ref": "main", "message": "env: test"})
        p.tags.create({"tag_name": "v1.0.0", "ref": "main"})
        self.assertEqual({t.name: t.protected for t in p.tags.list(get_all=True)},
                         {"deployed/test/1": True, "v1.0.0": False})
        self.assertEqual((p.tags.get("deployed/test/1").protected, p.tags.get("v1.0.0").protected), (True, False))
        status, _, body = raw_api("POST", f"/projects/{p.id}/repository/tags", token="dev-token",
                                  data={"tag_name": "deployed/test/2", "ref": "main", "message": "forged"})
        self.assertEqual((status, body), (400, {"message": "You are not allowed to create this tag as it is protected."}))
        work = os.path.join(self.work, "dev")
        git("clone", "-q", auth_url("plugins/app", token="dev-token"), work)
        git("tag", "deployed/test/3", cwd=work)
        push = git("push", "origin", "deployed/test/3", cwd=work, check=False)
        self.assertNotEqual(push.returncode, 0)
        self.assertIn("GitLab: You are not allowed to create this tag as it is protected.", push.stderr)
        git("tag", "v1.1.0", cwd=work)
        git("push", "-q", "origin", "v1.1.0", cwd=work)                   # unprotected: fine
        self.assertEqual(sorted(t.name for t in p.tags.list(get_all=True)), ["deployed/test/1", "v1.0.0", "v1.1.0"])

    def test_protected_branches_and_statuses(self):
        p = self.make_project()
        self.add_dev(p)
        # GitLab protects the default branch on its first push (instance default: fully protected)
        pbs = p.protectedbranches.list(get_all=True)
        self.assertEqual([b.name for b in pbs], ["main"])
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.protectedbranches.create({"name": "main", "push_access_level": 40, "merge_access_level": 40})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                         (409, "Protected branch 'main' already exists"))
        p.protectedbranches.delete("main")
        pb = p.protectedbranches.create({"name": "main", "push_access_level": 0, "merge_access_level": 40})
        self.assertEqual(pb.push_access_levels[0]["access_level_description"], "No one")
        dp = self.dev.projects.get(p.id)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            dp.commits.create({"branch": "main", "commit_message": "x", "actions": [
                {"action": "create", "file_path": "x", "content": "x"}]})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                         (403, "403 Forbidden - You are not allowed to push into this branch"))
        self.assertTrue(p.branches.get("main").protected)
        # commit statuses
        sha = p.commits.get("main").id
        st = p.commits.get(sha).statuses.create({"state": "running", "name": "berth/report", "ref": "main",
                                                 "target_url": "http://ci/1", "description": "deploying"})
        self.assertEqual((st.status, st.name, st.ref, st.sha), ("running", "berth/report", "main", sha))
        st2 = p.commits.get(sha).statuses.create({"state": "success", "name": "berth/report", "ref": "main"})
        self.assertEqual((st2.id, st2.status), (st.id, "success"))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.commits.get(sha).statuses.create({"state": "bogus"})
        self.assertEqual(cm.exception.response_code, 400)
        lst = p.commits.get(sha).statuses.list(get_all=True)
        self.assertEqual([(s.name, s.status) for s in lst], [("berth/report", "success")])
        status, _, body = raw_api("POST", f"/projects/{p.id}/statuses/{'0' * 40}", data={"state": "success"})
        self.assertEqual((status, body), (404, {"message": "404 Commit Not Found"}))

    def test_commit_status_pipeline_choice_and_refusals(self):
        """Ci::CreateCommitStatusService: the newest pipeline of the sha (filtered by ref /
        pipeline_id), else a new external one; update_pipeline on protected refs; 404 texts."""
        p = self.make_project()
        self.add_dev(p)
        dp = self.dev.projects.get(p.id)
        main_sha = p.commits.get("main").id
        # a Developer may not set a status on protected main (update_pipeline is prevented)
        status, _, body = raw_api("POST", f"/projects/{p.id}/statuses/{main_sha}", token="dev-token",
                                  data={"state": "success", "ref": "main", "name": "berth/release"})
        self.assertEqual((status, body), (403, {"message": "403 Forbidden"}))
        feat = dp.commits.create({"branch": "feature", "start_branch": "main", "commit_message": "f",
                                  "actions": [{"action": "create", "file_path": "f", "content": "f"}]}).id
        # no pipeline yet: a new external one, on the first branch that contains the sha
        s1 = dp.commits.get(feat, lazy=True).statuses.create({"state": "running", "name": "berth/plan"})
        ext = p.pipelines.get(s1.pipeline_id)
        self.assertEqual((s1.ref, ext.ref, ext.source, ext.sha), ("feature", "feature", "external", feat))
        # an existing pipeline of the sha (any source) is used when it is the newest, and gives the ref
        api_pl = p.pipelines.create({"ref": "feature"})
        s2 = dp.commits.get(feat, lazy=True).statuses.create({"state": "success", "name": "berth/other"})
        self.assertEqual((s2.pipeline_id, s2.ref), (api_pl.id, "feature"))
        s3 = dp.commits.get(feat, lazy=True).statuses.create({"state": "success", "name": "berth/plan",
                                                              "pipeline_id": ext.id})
        self.assertEqual(s3.pipeline_id, ext.id)
        # the same name by another user is another status, not an update of the first
        mine = p.commits.get(feat, lazy=True).statuses.create({"state": "running", "name": "berth/x",
                                                               "ref": "feature"})
        theirs = dp.commits.get(feat, lazy=True).statuses.create({"state": "success", "name": "berth/x",
                                                                  "ref": "feature"})
        self.assertNotEqual(mine.id, theirs.id)
        # 404 texts of the service
        status, _, body = raw_api("POST", f"/projects/{p.id}/statuses/{feat}", token="dev-token",
                                  data={"state": "success", "pipeline_id": 99999})
        self.assertEqual((status, body), (404, {"message": "404 Pipeline for pipeline_id, sha and ref Not Found"}))
        lost = p.commits.create({"branch": "tmp", "start_branch": "main", "commit_message": "lost",
                                 "actions": [{"action": "create", "file_path": "t", "content": "t"}]}).id
        p.branches.delete("tmp")
        status, _, body = raw_api("POST", f"/projects/{p.id}/statuses/{lost}", token="dev-token",
                                  data={"state": "success"})
        self.assertEqual((status, body), (404, {"message": "404 References for commit Not Found"}))

    def test_form_encoded_rack_bodies_like_the_rust_crate(self):
        p = self.make_project()
        form = ("branch=main&commit_message=two+files"
                "&actions%5B%5D%5Baction%5D=create&actions%5B%5D%5Bfile_path%5D=a.txt&actions%5B%5D%5Bcontent%5D=a%2Bb"
                "&actions%5B%5D%5Baction%5D=create&actions%5B%5D%5Bfile_path%5D=b.txt&actions%5B%5D%5Bcontent%5D=b")
        status, _, body = raw_api("POST", f"/projects/{p.id}/repository/commits", form=form)
        self.assertEqual(status, 201, body)
        self.assertEqual(p.files.raw("a.txt", ref="main"), b"a+b")
        self.assertEqual(p.files.raw("b.txt", ref="main"), b"b")
        status, _, body = raw_api("POST", "/projects/deploy%2Fnone/trigger/pipeline", token=None,
                                  form="token=x&ref=main&variables%5BA%5D=1")
        self.assertEqual(status, 404)


# ---------------------------------------------------------------------------------------------
class TestVariables(FakeTestCase):
    def test_variables_and_masking_rules(self):
        p = self.make_project()
        v = p.variables.create({"key": "DEPLOY_TOKEN", "value": "glpat-abcdefgh1234", "masked": True,
                                "protected": True})
        self.assertEqual((v.key, v.masked, v.protected, v.environment_scope), ("DEPLOY_TOKEN", True, True, "*"))
        for bad in ("short", "has spaces in it", "multi\nline-value"):
            with self.assertRaises(glexc.GitlabCreateError) as cm:
                p.variables.create({"key": "M", "value": bad, "masked": True})
            self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                             (400, {"value": ["is invalid"]}), bad)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.variables.create({"key": "NOT-VALID", "value": "x"})
        self.assertEqual(cm.exception.error_message, {"key": ["can contain only letters, digits and '_'."]})
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.variables.create({"key": "DEPLOY_TOKEN", "value": "x"})
        self.assertEqual(cm.exception.error_message, {"key": ["(DEPLOY_TOKEN) has already been taken"]})
        hidden = p.variables.create({"key": "KV_PASSWORD", "value": "s3cr3t-v4lue", "masked_and_hidden": True})
        self.assertEqual((hidden.hidden, hidden.masked, hidden.value), (True, True, None))
        self.assertEqual(p.variables.get("DEPLOY_TOKEN").value, "glpat-abcdefgh1234")
        p.variables.update("DEPLOY_TOKEN", {"value": "glpat-zzzzzzzz9999"})
        self.assertEqual(p.variables.get("DEPLOY_TOKEN").value, "glpat-zzzzzzzz9999")
        # same key in two scopes: unfiltered access is a 409
        p.variables.create({"key": "HOSTS", "value": "a", "environment_scope": "test"})
        p.variables.create({"key": "HOSTS", "value": "b", "environment_scope": "production"})
        with self.assertRaises(glexc.GitlabGetError) as cm:
            p.variables.get("HOSTS")
        self.assertEqual(cm.exception.response_code, 409)
        self.assertEqual(p.variables.get("HOSTS", filter={"environment_scope": "production"}).value, "b")
        self.assertEqual(len(p.variables.list(get_all=True)), 4)
        p.variables.delete("DEPLOY_TOKEN")
        with self.assertRaises(glexc.GitlabGetError) as cm:
            p.variables.get("DEPLOY_TOKEN")
        self.assertEqual((cm.exception.response_code, cm.exception.error_message), (404, "404 Variable Not Found"))
        self.add_dev(p)
        with self.assertRaises(glexc.GitlabListError) as cm:
            self.dev.projects.get(p.id).variables.list()
        self.assertEqual(cm.exception.response_code, 403)


# ---------------------------------------------------------------------------------------------
class TestMergeRequests(FakeTestCase):
    def test_mr_notes_quick_actions_merge(self):
        p = self.make_project(path="mgmt", namespace="deploy")
        p.files.create({"file_path": "release.yml", "branch": "main", "content": "test: v1.0.0\n",
                        "commit_message": "release"})
        self.add_dev(p)
        dp = self.dev.projects.get(p.id)
        dp.commits.create({"branch": "release/v1.1.0", "start_branch": "main", "commit_message": "Release v1.1.0",
                           "actions": [{"action": "update", "file_path": "release.yml", "content": "test: v1.1.0\n"}]})
        mr = dp.mergerequests.create({"source_branch": "release/v1.1.0", "target_branch": "main",
                                      "title": "Release v1.1.0 to test", "description": "berth request",
                                      "labels": "release,test"})
        self.assertEqual((mr.iid, mr.state, mr.labels), (1, "opened", ["release", "test"]))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            dp.mergerequests.create({"source_branch": "release/v1.1.0", "target_branch": "main", "title": "again"})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                         (409, ["Another open merge request already exists for this source branch: !1"]))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            dp.mergerequests.create({"source_branch": "nope", "target_branch": "main", "title": "x"})
        self.assertEqual(cm.exception.error_message, {"source_branch": ["does not exist"]})
        # same branch as source and target: 422 with an array (branch_conflict), not 409
        status, _, body = raw_api("POST", f"/projects/{p.id}/merge_requests", token="dev-token",
                                  data={"source_branch": "main", "target_branch": "main", "title": "x"})
        self.assertEqual((status, body), (422, {"message": ["You can't use same project/branch for source and target"]}))
        status, _, body = raw_api("PUT", f"/projects/{p.id}/merge_requests/1", token="dev-token",
                                  data={"target_branch": "release/v1.1.0"})
        self.assertEqual((status, body), (422, {"message": ["You can't use same project/branch for source and target"]}))
        got = p.mergerequests.get(1)
        self.assertEqual(got.sha, p.branches.get("release/v1.1.0").commit["id"])
        self.assertEqual(got.diff_refs["start_sha"], p.branches.get("main").commit["id"])
        self.assertEqual((got.changes_count, got.detailed_merge_status), ("1", "mergeable"))
        changes = got.changes()["changes"]
        self.assertEqual([c["new_path"] for c in changes], ["release.yml"])
        self.assertIn("-test: v1.0.0\n+test: v1.1.0", changes[0]["diff"])
        status, _, diffs = raw_api("GET", f"/projects/{p.id}/merge_requests/1/diffs")
        self.assertEqual((status, [d["new_path"] for d in diffs]), (200, ["release.yml"]))
        self.assertEqual(len(p.mergerequests.list(state="opened", source_branch="release/v1.1.0", get_all=True)), 1)
        # notes: the bot keeps one living note
        bot = self.alice.projects.get(p.id).mergerequests.get(1)
        note = bot.notes.create({"body": "<!-- berth:plan -->\n## Plan\n\\/merge is escaped"})
        self.assertEqual((note.system, note.noteable_type, note.noteable_iid, note.author["username"]),
                         (False, "MergeRequest", 1, "alice"))
        note.body = "<!-- berth:plan -->\n## Plan v2"
        note.save()
        self.assertEqual(bot.notes.get(note.id).body, "<!-- berth:plan -->\n## Plan v2")
        # the developer may not edit the bot's note
        dnote = dp.mergerequests.get(1).notes.get(note.id)
        dnote.body = "hacked"
        with self.assertRaises(glexc.GitlabUpdateError) as cm:
            dnote.save()
        self.assertEqual(cm.exception.response_code, 403)
        # a line that starts with a quick action is executed and removed
        n2 = bot.notes.create({"body": "text\n/label ~deployed\nmore"})
        self.assertEqual(n2.body, "text\nmore")
        only = bot.notes.create({"body": "/approve"})
        self.assertEqual(only.summary, ["Approved the current merge request."])   # 202, commands only
        qa = control("GET", "/quick_actions")
        self.assertEqual([(q["command"], q["args"]) for q in qa], [("label", "~deployed"), ("approve", "")])
        notes = bot.notes.list(get_all=True, sort="asc")
        self.assertEqual([n.system for n in notes], [False, False, True])
        self.assertIn("deployed", p.mergerequests.get(1).labels)
        bot.notes.delete(n2.id)
        # merge: developers cannot merge into protected main (401), maintainers can
        with self.assertRaises(glexc.GitlabAuthenticationError) as cm:   # python-gitlab's class for any 401
            dp.mergerequests.get(1).merge()
        self.assertEqual(cm.exception.response_code, 401)
        with self.assertRaises(glexc.GitlabMRClosedError) as cm:
            bot.merge(sha="0" * 40)
        self.assertEqual(cm.exception.response_code, 409)
        bot.merge(should_remove_source_branch=True)
        merged = p.mergerequests.get(1)
        self.assertEqual((merged.state, merged.detailed_merge_status), ("merged", "not_open"))
        self.assertEqual(p.files.raw("release.yml", ref="main"), b"test: v1.1.0\n")
        self.assertEqual(p.commits.get(merged.merge_commit_sha).parent_ids[1], got.sha)
        self.assertNotIn("release/v1.1.0", [b.name for b in p.branches.list(get_all=True)])


    def test_note_bodies_are_stored_as_gitlab_parses_them(self):
        """Notes::Create/UpdateService store the quick-action extractor's content: \\r deleted,
        trailing whitespace stripped (leading kept); commands only -> 202, nothing saved."""
        p = self.make_project()
        p.commits.create({"branch": "b", "start_branch": "main", "commit_message": "b",
                          "actions": [{"action": "create", "file_path": "b", "content": "b"}]})
        mr = p.mergerequests.create({"source_branch": "b", "target_branch": "main", "title": "b"})
        n = mr.notes.create({"body": "  <!-- berth:plan -->\r\nline two \t\r\n\n"})
        self.assertEqual(n.body, "  <!-- berth:plan -->\nline two")
        self.assertEqual(mr.notes.get(n.id).body, "  <!-- berth:plan -->\nline two")
        status, _, body = raw_api("PUT", f"/projects/{p.id}/merge_requests/{mr.iid}/notes/{n.id}",
                                  data={"body": "edited\r\n\r\n   "})
        self.assertEqual((status, body["body"]), (200, "edited"))
        fenced = mr.notes.create({"body": "```\n/merge\n```\n"})
        self.assertEqual(fenced.body, "```\n/merge\n```")
        status, _, body = raw_api("POST", f"/projects/{p.id}/merge_requests/{mr.iid}/notes",
                                  data={"body": "/label ~deployed\r\n"})
        self.assertEqual((status, body["summary"]), (202, ["Added ~deployed label(s)."]))
        self.assertEqual([x.body for x in mr.notes.list(get_all=True, sort="asc") if not x.system],
                         ["edited", "```\n/merge\n```"])
        self.assertEqual([q["command"] for q in control("GET", "/quick_actions")], ["label"])

    def test_commit_merge_requests(self):
        """GET /projects/:id/repository/commits/:sha/merge_requests: the project's MRs whose diff
        contains the commit, or whose merge / squash commit it is (MergeRequestsFinder commit_sha)."""
        p = self.make_project()
        self.add_dev(p)
        readme_sha = p.commits.get("main").id
        c1 = p.commits.create({"branch": "feature", "start_branch": "main", "commit_message": "one",
                               "actions": [{"action": "create", "file_path": "a", "content": "a"}]}).id
        c2 = p.commits.create({"branch": "feature", "commit_message": "two",
                               "actions": [{"action": "create", "file_path": "b", "content": "b"}]}).id
        mr = p.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "feature"})
        dp = self.dev.projects.get(p.id)
        for sha in (c1, c2):
            got = dp.commits.get(sha, lazy=True).merge_requests()
            self.assertEqual([(m["iid"], m["state"], m["sha"]) for m in got], [(mr.iid, "opened", c2)])
        self.assertEqual(p.commits.get(readme_sha, lazy=True).merge_requests(), [])   # on main only
        # the merge commit and, after a squash merge, the squash commit belong to their MR too
        mr.merge()
        merged = p.mergerequests.get(mr.iid)
        for sha in (c1, merged.merge_commit_sha):
            self.assertEqual([m["iid"] for m in p.commits.get(sha, lazy=True).merge_requests()], [mr.iid])
        self.assertEqual(p.commits.get(c1, lazy=True).merge_requests(state="opened"), [])
        s1 = p.commits.create({"branch": "squashy", "start_branch": "main", "commit_message": "s1",
                               "actions": [{"action": "create", "file_path": "s", "content": "1"}]}).id
        p.commits.create({"branch": "squashy", "commit_message": "s2",
                          "actions": [{"action": "update", "file_path": "s", "content": "2"}]})
        mr2 = p.mergerequests.create({"source_branch": "squashy", "target_branch": "main", "title": "squashy"})
        status, _, body = raw_api("PUT", f"/projects/{p.id}/merge_requests/{mr2.iid}/merge", token="alice-token",
                                  data={"squash": True})
        self.assertEqual(status, 200, body)
        self.assertIsNotNone(body["squash_commit_sha"])
        for sha in (s1, body["squash_commit_sha"], body["merge_commit_sha"]):
            self.assertEqual([m["iid"] for m in p.commits.get(sha, lazy=True).merge_requests()], [mr2.iid])
        # errors: unknown commit 404; a guest of the private project 403; a stranger 404 (project)
        status, _, body = raw_api("GET", f"/projects/{p.id}/repository/commits/{'0' * 40}/merge_requests")
        self.assertEqual((status, body), (404, {"message": "404 Commit Not Found"}))
        p.members.create({"user_id": self.ids["users"]["guest"], "access_level": 10})
        status, _, body = raw_api("GET", f"/projects/{p.id}/repository/commits/{c1}/merge_requests",
                                  token="guest-token")
        self.assertEqual((status, body), (403, {"message": "403 Forbidden"}))
        p.members.delete(self.ids["users"]["guest"])
        status, _, body = raw_api("GET", f"/projects/{p.id}/repository/commits/{c1}/merge_requests",
                                  token="guest-token")
        self.assertEqual((status, body), (404, {"message": "404 Project Not Found"}))


# ---------------------------------------------------------------------------------------------
class TestEnvironmentsDeployments(FakeTestCase):
    def test_environments_deployments_protected_environments(self):
        p = self.make_project(path="mgmt", namespace="deploy")
        env = p.environments.create({"name": "production", "external_url": "https://app.example.com"})
        self.assertEqual((env.name, env.tier, env.state, env.slug), ("production", "production", "available",
                                                                     "production"))
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            p.environments.create({"name": "production"})
        self.assertEqual(cm.exception.error_message, {"name": ["has already been taken"]})
        self.assertEqual([e.name for e in p.environments.list(name="production", get_all=True)], ["production"])
        sha = p.commits.get("main").id
        d1 = p.deployments.create({"environment": "production", "sha": sha, "ref": "main", "tag": False,
                                   "status": "success"})
        d2 = p.deployments.create({"environment": "production", "sha": sha, "ref": "main", "tag": False,
                                   "status": "running"})
        d2.status = "success"
        d2.save()
        self.assertEqual((d1.iid, d2.iid), (1, 2))
        latest = p.deployments.list(environment="production", status="success", order_by="finished_at",
                                    sort="desc", per_page=1, get_all=False)
        self.assertEqual([d.id for d in latest], [d2.id])
        self.assertEqual(p.environments.get(env.id).last_deployment["id"], d2.id)
        self.assertEqual(p.deployments.create({"environment": "test", "sha": sha, "ref": "main", "tag": False,
                                               "status": "success"}).environment["name"], "test")
        pe = p.protected_environments.create({"name": "production",
                                              "deploy_access_levels": [{"access_level": 40}]})
        self.assertEqual(pe.deploy_access_levels[0]["access_level"], 40)
        self.add_dev(p)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            self.dev.projects.get(p.id).deployments.create({"environment": "production", "sha": sha, "ref": "main",
                                                             "tag": False, "status": "running"})
        self.assertEqual(cm.exception.response_code, 403)
        env.stop()
        self.assertEqual(p.environments.get(env.id).state, "stopped")


# ---------------------------------------------------------------------------------------------
class TestJobToken(FakeTestCase):
    def test_job_token_limits(self):
        p = self.make_project(path="mgmt", namespace="deploy")
        self.add_dev(p)
        job = control("POST", "/jobs", {"token": "job-secret-1", "user": "dev", "project": "deploy/mgmt",
                                        "name": "plan", "stage": "plan"})
        jgl = gitlab.Gitlab(SERVER.url, job_token="job-secret-1")
        CLIENTS.append(jgl)
        status, _, body = raw_api("GET", "/job", token=None, headers={"JOB-TOKEN": "job-secret-1"})
        self.assertEqual((status, body["id"], body["name"], body["user"]["username"]), (200, job["id"], "plan", "dev"))
        # allowed: environments and deployments
        jp = jgl.projects.get(p.id, lazy=True)
        jp.environments.create({"name": "test"})
        self.assertEqual([e.name for e in jp.environments.list(get_all=True)], ["test"])
        sha = p.commits.get("main").id
        jp.deployments.create({"environment": "test", "sha": sha, "ref": "main", "tag": False, "status": "running"})
        # not allowed: the job token is ignored there, so the call is anonymous (401 on writes, 404 on reads)
        p.commits.create({"branch": "b", "start_branch": "main", "commit_message": "b",
                          "actions": [{"action": "create", "file_path": "b", "content": "b"}]})
        mr = p.mergerequests.create({"source_branch": "b", "target_branch": "main", "title": "b"})
        for fn in (lambda: jp.mergerequests.get(mr.iid, lazy=True).notes.create({"body": "hi"}),
                   lambda: jp.tags.create({"tag_name": "t", "ref": "main"}),
                   lambda: jp.variables.create({"key": "K", "value": "v"}),
                   lambda: jp.commits.create({"branch": "main", "commit_message": "m", "actions": [
                       {"action": "create", "file_path": "q", "content": "q"}]}),
                   lambda: jp.commits.get(sha, lazy=True).statuses.create({"state": "success"})):
            with self.assertRaises(glexc.GitlabError) as cm:
                fn()
            self.assertEqual(cm.exception.response_code, 401)
        with self.assertRaises(glexc.GitlabGetError) as cm:
            jgl.projects.get(p.id)
        self.assertEqual(cm.exception.response_code, 404)
        # git: clone with gitlab-ci-token works, push does not
        dest = os.path.join(self.work, "clone")
        git("clone", "-q", auth_url("deploy/mgmt", "gitlab-ci-token", "job-secret-1"), dest)
        git("commit", "-q", "--allow-empty", "-m", "x", cwd=dest)
        push = git("push", "origin", "HEAD:refs/heads/jobpush", cwd=dest, check=False)
        self.assertNotEqual(push.returncode, 0)
        self.assertIn("403", push.stderr)
        # the token dies with the job
        control("PUT", f"/jobs/{job['id']}", {"status": "success"})
        status, _, body = raw_api("GET", "/job", token=None, headers={"JOB-TOKEN": "job-secret-1"})
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        log = control("GET", "/requests?kind=api")
        self.assertTrue(any(e["token_kind"] == "job" and e["path"].endswith("/environments") for e in log))


# ---------------------------------------------------------------------------------------------
def in_days(n):
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + n * 86400))


class TestAccessTokens(FakeTestCase):
    def test_project_access_tokens(self):
        """POST/GET/DELETE /projects/:id/access_tokens[/:token_id][/rotate]: one bot user per
        token, member of the project with the token's role; the token works for REST and git."""
        p = self.make_project()
        dev_id, guest_id = self.ids["users"]["dev"], self.ids["users"]["guest"]
        p.members.create({"user_id": dev_id, "access_level": 40})       # a Maintainer
        p.members.create({"user_id": guest_id, "access_level": 30})     # a Developer
        dp = self.dev.projects.get(p.id)
        expires = in_days(30)
        tok = dp.access_tokens.create({"name": "berth", "scopes": ["api"], "expires_at": expires,
                                       "description": "releases"})
        self.assertEqual((tok.name, tok.scopes, tok.access_level, tok.expires_at, tok.active, tok.revoked,
                          tok.description, tok.resource_type, tok.resource_id),
                         ("berth", ["api"], 40, expires, True, False, "releases", "project", p.id))
        self.assertTrue(tok.token.startswith("glpat-"))
        bot = gl(tok.token)
        bot.auth()
        self.assertRegex(bot.user.username, rf"^project_{p.id}_bot_[0-9a-f]{{32}}$")
        self.assertEqual((bot.user.id, bot.user.bot, bot.user.name), (tok.user_id, True, "berth"))
        members = {m.username: m.access_level for m in p.members.list(get_all=True)}
        self.assertEqual(members[bot.user.username], 40)
        # the token acts with the bot's role and its scopes, on the API and over git
        bp = bot.projects.get(p.id)
        bp.protectedtags.create({"name": "deployed/*", "create_access_level": 40})   # Maintainer
        bp.tags.create({"tag_name": "deployed/prod/1", "ref": "main"})
        work = os.path.join(self.work, "clone")
        git("clone", "-q", auth_url("plugins/app", user="anything", token=tok.token), work)
        git("commit", "-q", "--allow-empty", "-m", "by the bot", cwd=work)
        git("push", "-q", "origin", "HEAD:refs/heads/bot-branch", cwd=work)
        self.assertEqual(p.branches.get("bot-branch").commit["title"], "by the bot")
        ro = dp.access_tokens.create({"name": "reader", "scopes": ["read_repository"], "access_level": 20})
        self.assertEqual((ro.access_level, ro.expires_at), (20, in_days(365)))   # the default lifetime
        git("clone", "-q", auth_url("plugins/app", user="x", token=ro.token), os.path.join(self.work, "ro"))
        status, _, body = raw_api("GET", f"/projects/{p.id}", token=ro.token)
        self.assertEqual((status, body["error"]), (403, "insufficient_scope"))
        # refusals: a token's bot cannot create tokens; a Developer neither; no role above one's own
        for token in (tok.token, "guest-token"):
            status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens", token=token,
                                      data={"name": "x", "scopes": ["api"]})
            self.assertEqual((status, body), (400, {"message": "400 Bad request - User does not have permission "
                                                               "to create project access token"}))
        status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens", token="dev-token",
                                  data={"name": "x", "scopes": ["api"], "access_level": 50})
        self.assertEqual((status, body), (400, {"message": "400 Bad request - Access level of the token contains "
                                                           "permissions not held by the creating user"}))
        status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens", token="dev-token",
                                  data={"name": "x", "scopes": ["sudo"]})
        self.assertEqual((status, body), (400, {"error": "scopes does not have a valid value"}))
        status, _, body = raw_api("GET", f"/projects/{p.id}/access_tokens", token="guest-token")
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        # list and get: never the token value
        self.assertEqual([t.name for t in dp.access_tokens.list(get_all=True)], ["berth", "reader"])
        status, _, body = raw_api("GET", f"/projects/{p.id}/access_tokens/{tok.id}", token="dev-token")
        self.assertEqual((status, body["id"], body["access_level"], "token" in body), (200, tok.id, 40, False))
        status, _, body = raw_api("GET", f"/projects/{p.id}/access_tokens/999", token="dev-token")
        self.assertEqual((status, body),
                         (404, {"message": "404 Could not find project access token with token_id: 999 Not Found"}))
        # rotate: 200, a new token (new id, one week), the old one is revoked at once
        status, _, new = raw_api("POST", f"/projects/{p.id}/access_tokens/{tok.id}/rotate", token="dev-token")
        self.assertEqual((status, new["name"], new["expires_at"], new["revoked"]), (200, "berth", in_days(7), False))
        self.assertNotEqual((new["id"], new["token"]), (tok.id, tok.token))
        status, _, body = raw_api("GET", "/user", token=tok.token)
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        self.assertEqual(raw_api("GET", "/user", token=new["token"])[2]["id"], tok.user_id)
        old = [t for t in dp.access_tokens.list(get_all=True) if t.id == tok.id][0]
        self.assertEqual((old.revoked, old.active), (True, False))
        status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens/{tok.id}/rotate", token="dev-token")
        self.assertEqual((status, body), (400, {"message": "400 Bad request - Token already revoked"}))
        status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens/{new['id']}/rotate", token="guest-token")
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        status, _, body = raw_api("POST", f"/projects/{p.id}/access_tokens/self/rotate", token="dev-token")
        self.assertEqual((status, body), (405, {"message": "405 Method Not Allowed"}))
        status, _, mine = raw_api("POST", f"/projects/{p.id}/access_tokens/self/rotate", token=new["token"],
                                  data={"expires_at": in_days(10)})
        self.assertEqual((status, mine["user_id"], mine["expires_at"]), (200, tok.user_id, in_days(10)))
        # revoke: only Maintainers (400 otherwise); the token dies, its bot stays (GitLab 17.9+)
        status, _, body = raw_api("DELETE", f"/projects/{p.id}/access_tokens/{mine['id']}", token="guest-token")
        self.assertEqual((status, body), (400, {"message": "400 Bad request - Gus Guest cannot delete berth"}))
        dp.access_tokens.delete(mine["id"])
        status, _, body = raw_api("GET", "/user", token=mine["token"])
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        bad = git("ls-remote", auth_url("plugins/app", user="x", token=mine["token"]), check=False)
        self.assertIn("Authentication failed", bad.stderr)
        self.assertEqual([t.name for t in dp.access_tokens.list(state="active", get_all=True)], ["reader"])
        status, _, body = raw_api("GET", f"/projects/{p.id}/access_tokens/{mine['id']}", token="dev-token")
        self.assertEqual((status, body["revoked"], body["active"]), (200, True, False))
        self.assertIn(bot.user.username, [m.username for m in p.members.list(get_all=True)])

    def test_bots_are_members_of_one_project_or_group_only(self):
        """Member: validates :user_id, uniqueness (project bots) -> 400 on POST members."""
        p = self.make_project()
        other = self.make_project(path="other", namespace="deploy")
        tok = p.access_tokens.create({"name": "bot", "scopes": ["api"], "access_level": 30})
        want = (400, {"message": {"user_id": ["project bots cannot be added to other groups / projects"]}})
        for path in (f"/projects/{other.id}/members", f"/groups/{self.ids['groups']['deploy']}/members"):
            status, _, body = raw_api("POST", path, token="alice-token",
                                      data={"user_id": tok.user_id, "access_level": 30})
            self.assertEqual((status, body), want, path)
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            other.members.create({"user_id": tok.user_id, "access_level": 30})
        self.assertEqual((cm.exception.response_code, cm.exception.error_message), (400, want[1]["message"]))
        # its own project: an existing member, as for anyone
        status, _, body = raw_api("POST", f"/projects/{p.id}/members", token="alice-token",
                                  data={"user_id": tok.user_id, "access_level": 30})
        self.assertEqual((status, body), (409, {"message": "Member already exists"}))
        p.members.update(tok.user_id, {"access_level": 20})                # editing it is fine
        self.assertEqual(p.members.get(tok.user_id).access_level, 20)
        # a seed user marked "bot": one membership; a second one is refused like the API does
        control("POST", "/seed", {"users": [{"username": "b1", "bot": True}],
                                  "groups": [{"path": "plugins", "members": {"b1": 20}}]})
        with self.assertRaises(urllib.error.HTTPError) as cm:
            control("POST", "/seed", {"groups": [{"path": "deploy", "members": {"b1": 40}}]})
        self.assertEqual(cm.exception.code, 400)
        self.assertIn("project bots cannot be added to other groups / projects", json.loads(cm.exception.read())["error"])
        status, _, body = raw_api("POST", f"/projects/{other.id}/members", token="alice-token",
                                  data={"username": "b1", "access_level": 30})
        self.assertEqual((status, body), want)


    def test_deploy_tokens(self):
        """Project deploy tokens: Maintainers manage them; they fetch that project's repository over
        HTTP with their own user name, and nothing else (no push, no other project, no REST API)."""
        p = self.make_project()
        other = self.make_project(path="other")
        self.add_dev(p)
        dt = p.deploytokens.create({"name": "berth fetch", "scopes": ["read_repository"]})
        self.assertEqual((dt.name, dt.username, dt.scopes, dt.expires_at, dt.revoked, dt.expired),
                         ("berth fetch", f"gitlab+deploy-token-{dt.id}", ["read_repository"], None, False, False))
        self.assertTrue(dt.token.startswith("gldt-"))
        named = p.deploytokens.create({"name": "named", "scopes": ["read_repository"], "username": "berth-fetch",
                                       "expires_at": "2099-01-31"})
        self.assertEqual((named.username, named.expires_at), ("berth-fetch", "2099-01-31T00:00:00.000Z"))
        registry = p.deploytokens.create({"name": "registry", "scopes": ["read_registry"]})
        listed = p.deploytokens.list(get_all=True)
        self.assertEqual([(d.id, "token" in d.attributes) for d in listed],
                         [(dt.id, False), (named.id, False), (registry.id, False)])
        self.assertEqual(p.deploytokens.get(dt.id).username, dt.username)
        # refusals on the API
        status, _, body = raw_api("POST", f"/projects/{p.id}/deploy_tokens", token="alice-token",
                                  data={"name": "x", "scopes": ["read_repository"], "username": "no spaces"})
        self.assertEqual((status, body),
                         (400, {"message": "Username can contain only letters, digits, '_', '-', '+', and '.'"}))
        status, _, body = raw_api("POST", f"/projects/{p.id}/deploy_tokens", token="alice-token",
                                  data={"name": "x", "scopes": ["write_repository"]})
        self.assertEqual((status, body), (400, {"error": "scopes does not have a valid value"}))
        for method, path in (("POST", f"/projects/{p.id}/deploy_tokens"), ("GET", f"/projects/{p.id}/deploy_tokens")):
            status, _, body = raw_api(method, path, token="dev-token",
                                      data={"name": "x", "scopes": ["read_repository"]} if method == "POST" else None)
            self.assertEqual((status, body), (403, {"message": "403 Forbidden"}), method)
        status, _, body = raw_api("GET", f"/projects/{p.id}", token=dt.token)     # not an API token
        self.assertEqual((status, body), (401, {"message": "401 Unauthorized"}))
        # git: fetch/clone this project with the token's user name
        p.tags.create({"tag_name": "v1.0.0", "ref": "main"})
        clone = os.path.join(self.work, "clone")
        git("clone", "-q", auth_url("plugins/app", user=dt.username, token=dt.token), clone)
        self.assertIn("refs/tags/v1.0.0", git("ls-remote", "--tags", "origin", cwd=clone).stdout)
        git("ls-remote", auth_url("plugins/app", user="berth-fetch", token=named.token))

        def info_refs(path, user, token, service="git-upload-pack"):
            req = urllib.request.Request(f"{SERVER.url}/{path}.git/info/refs?service={service}", headers={
                "Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        self.assertEqual(info_refs("plugins/app", dt.username, dt.token, "git-receive-pack"),
                         (403, "You are not allowed to upload code.\n"))
        self.assertEqual(info_refs("plugins/app", registry.username, registry.token),
                         (403, "You are not allowed to download code.\n"))
        denied = info_refs("plugins/other", dt.username, dt.token)               # another project
        self.assertEqual(denied[0], 401)
        self.assertTrue(denied[1].startswith("HTTP Basic: Access denied."), denied)
        self.assertEqual(info_refs("plugins/app", "oauth2", dt.token)[0], 401)   # not its user name
        git("commit", "-q", "--allow-empty", "-m", "x", cwd=clone)
        push = git("push", "origin", "HEAD:refs/heads/nope", cwd=clone, check=False)
        self.assertNotEqual(push.returncode, 0)
        self.assertIn("403", push.stderr)
        # deleted: gone for git too
        p.deploytokens.delete(dt.id)
        self.assertEqual(info_refs("plugins/app", dt.username, dt.token)[0], 401)
        status, _, body = raw_api("DELETE", f"/projects/{p.id}/deploy_tokens/{dt.id}", token="alice-token")
        self.assertEqual((status, body), (404, {"message": "404 Not found"}))
        status, _, body = raw_api("GET", f"/projects/{other.id}/deploy_tokens/{named.id}", token="alice-token")
        self.assertEqual((status, body), (404, {"message": "404 Not found"}))


# ---------------------------------------------------------------------------------------------
class TestGitSmartHTTP(FakeTestCase):
    def test_clone_fetch_push_and_auth(self):
        p = self.make_project()
        self.add_dev(p)
        p.tags.create({"tag_name": "v1.0.0", "ref": "main", "message": "first"})
        dest = os.path.join(self.work, "app")
        git("clone", "-q", auth_url("plugins/app", token="dev-token"), dest)
        self.assertTrue(os.path.exists(os.path.join(dest, "README.md")))
        git("fetch", "-q", "--tags", cwd=dest)
        self.assertEqual(git("tag", "-l", cwd=dest).stdout.split(), ["v1.0.0"])
        with open(os.path.join(dest, "index.php"), "w") as f:
            f.write("<?php echo 1;\n")
        git("add", "index.php", cwd=dest)
        git("commit", "-q", "-m", "code", cwd=dest)
        git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=dest)
        git("tag", "v1.1.0", cwd=dest)
        git("push", "-q", "origin", "v1.1.0", cwd=dest)
        self.assertEqual(p.tags.get("v1.1.0").commit["id"], git("rev-parse", "HEAD", cwd=dest).stdout.strip())
        self.assertEqual(p.branches.get("feature").commit["title"], "code")
        # a developer may not push to the protected default branch
        rej = git("push", "origin", "HEAD:main", cwd=dest, check=False)
        self.assertNotEqual(rej.returncode, 0)
        self.assertIn("You are not allowed to push code to protected branches on this project.", rej.stderr)
        # no token: 401 with a Basic challenge (git then fails without a prompt)
        req = urllib.request.Request(f"{SERVER.url}/plugins/app.git/info/refs?service=git-upload-pack")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 401)
        self.assertEqual(cm.exception.headers["WWW-Authenticate"], 'Basic realm="GitLab"')
        bad = git("clone", f"{SERVER.url}/plugins/app.git", os.path.join(self.work, "anon"), check=False)
        self.assertNotEqual(bad.returncode, 0)
        wrong = git("clone", auth_url("plugins/app", token="wrong"), os.path.join(self.work, "wrong"), check=False)
        self.assertIn("Authentication failed", wrong.stderr)
        nope = git("clone", auth_url("plugins/app", token="guest-token"), os.path.join(self.work, "g"), check=False)
        self.assertIn("could not be found", nope.stderr)

    def test_submodule_update_endpoint_and_git_submodules(self):
        code = self.make_project(path="app", namespace="plugins")
        mgmt = self.make_project(path="app", namespace="deploy")
        # add `codes/` as a submodule with git itself and push it
        work = os.path.join(self.work, "mgmt")
        git("clone", "-q", auth_url("deploy/app"), work)
        host = SERVER.url.split("://", 1)[1]
        git("-c", "protocol.file.allow=always", "-c", f"url.http://oauth2:root-token@{host}/.insteadOf={SERVER.url}/",
            "submodule", "add", "-q", f"{SERVER.url}/plugins/app.git", "codes", cwd=work)
        git("commit", "-q", "-m", "add codes", cwd=work)
        git("push", "-q", "origin", "HEAD:main", cwd=work)
        new = code.commits.create({"branch": "main", "commit_message": "v2", "actions": [
            {"action": "create", "file_path": "index.php", "content": "<?php\n"}]}).id
        c = mgmt.update_submodule("codes", "main", new, commit_message="Release codes " + new[:8])
        self.assertEqual(c["title"], "Release codes " + new[:8])
        with self.assertRaises(glexc.GitlabUpdateError) as cm:
            mgmt.update_submodule("codes", "main", new)
        self.assertEqual(cm.exception.response_code, 400)
        with self.assertRaises(glexc.GitlabUpdateError) as cm:
            mgmt.update_submodule("README.md", "main", new)
        self.assertEqual(cm.exception.error_message, "Invalid submodule path")
        # a fresh clone checks out the new gitlink with `git submodule update`
        fresh = os.path.join(self.work, "fresh")
        git("clone", "-q", auth_url("deploy/app"), fresh)
        git("-c", f"url.http://oauth2:root-token@{host}/.insteadOf={SERVER.url}/", "submodule", "update",
            "--init", "-q", cwd=fresh)
        self.assertEqual(git("rev-parse", "HEAD", cwd=os.path.join(fresh, "codes")).stdout.strip(), new)
        self.assertTrue(os.path.exists(os.path.join(fresh, "codes", "index.php")))


# ---------------------------------------------------------------------------------------------
class TestFaults(FakeTestCase):
    def test_429_retry_after_then_success(self):
        p = self.make_project()
        control("POST", "/faults", {"method": "GET", "path": f"^/api/v4/projects/{p.id}$", "status": 429,
                                    "retry_after": 1, "count": 2})
        client = gl(retry_transient_errors=True)
        t0 = time.time()
        self.assertEqual(client.projects.get(p.id).id, p.id)
        self.assertGreaterEqual(time.time() - t0, 2.0)     # python-gitlab slept Retry-After twice
        log = [e for e in control("GET", "/requests?kind=api") if e["path"] == f"/api/v4/projects/{p.id}"]
        self.assertEqual([e["status"] for e in log[-3:]], [429, 429, 200])
        self.assertTrue(log[-2]["fault"])
        # the raw 429 looks like GitLab's throttle
        control("POST", "/storm", {"count": 1, "retry_after": 7})
        status, h, body = raw_api("GET", "/user")
        self.assertEqual((status, body, h["Retry-After"], h["RateLimit-Remaining"]), (429, "Retry later\n", "7", "0"))
        self.assertTrue(h["Content-Type"].startswith("text/plain"))

    def test_storm_5xx_and_delay(self):
        p = self.make_project()
        control("POST", "/storm", {"count": 5, "retry_after": 0})
        client = gl(retry_transient_errors=True)
        self.assertEqual(client.projects.get(p.id).id, p.id)
        self.assertEqual(sum(1 for e in control("GET", "/requests?kind=api") if e["status"] == 429), 5)
        control("POST", "/faults", {"path": "/repository/tags", "status": 500, "count": 1})
        with self.assertRaises(glexc.GitlabListError) as cm:
            gl().projects.get(p.id, lazy=True).tags.list()
        self.assertEqual(cm.exception.response_code, 500)
        control("POST", "/faults", {"path": "/repository/tags", "status": 502, "count": 1})
        self.assertEqual(gl(retry_transient_errors=True).projects.get(p.id, lazy=True).tags.list(), [])
        control("POST", "/faults", {"path": "/repository/branches", "delay": 0.6, "count": 1})
        t0 = time.time()
        gl().projects.get(p.id, lazy=True).branches.list()
        self.assertGreaterEqual(time.time() - t0, 0.6)
        # skip: let the first matching call through, fail the second
        control("POST", "/faults", {"method": "POST", "path": "/repository/commits$", "status": 500, "skip": 1})
        actions = [{"action": "create", "file_path": "f1", "content": "1"}]
        p.commits.create({"branch": "main", "commit_message": "1", "actions": actions})
        with self.assertRaises(glexc.GitlabCreateError):
            p.commits.create({"branch": "main", "commit_message": "2",
                              "actions": [{"action": "create", "file_path": "f2", "content": "2"}]})
        self.assertEqual(control("GET", "/faults"), [])


# ---------------------------------------------------------------------------------------------
class TestConcurrency(FakeTestCase):
    WRITERS = 20

    @staticmethod
    def content(rnd, i):
        # Unique per round AND writer: a writer whose bytes equal the file's current content
        # makes a commit that does not change alloc.yml, so (as in GitLab, see
        # test_noop_update_does_not_move_last_commit_id) the file's last_commit_id stays put and
        # a second writer legitimately wins.  With "owner: {i}" alone that happened whenever the
        # previous round's winner was served first again (~1 run in 10).
        return f"owner: {i} (round {rnd})\n"

    def _round(self, project_id, last, use_files_api, rnd):
        barrier = threading.Barrier(self.WRITERS)
        results = [None] * self.WRITERS

        def writer(i):
            client = gl("alice-token")
            p = client.projects.get(project_id, lazy=True)
            barrier.wait()
            try:
                if use_files_api:
                    p.files.update("alloc.yml", {"branch": "main", "commit_message": f"w{i}",
                                                 "content": self.content(rnd, i), "last_commit_id": last})
                else:
                    p.commits.create({"branch": "main", "commit_message": f"w{i}", "actions": [
                        {"action": "update", "file_path": "alloc.yml", "content": self.content(rnd, i),
                         "last_commit_id": last}]})
                results[i] = ("ok", i)
            except glexc.GitlabError as e:
                results[i] = (e.response_code, e.error_message)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(self.WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def test_twenty_writers_exactly_one_wins_per_round(self):
        p = self.make_project()
        p.files.create({"file_path": "alloc.yml", "branch": "main", "content": "owner: none\n",
                        "commit_message": "init"})
        for rnd, files_api in enumerate((False, False, True)):
            last = p.files.get("alloc.yml", ref="main").last_commit_id
            results = self._round(p.id, last, files_api, rnd)
            winners = [r for r in results if r[0] == "ok"]
            losers = [r for r in results if r[0] != "ok"]
            self.assertEqual(len(winners), 1, results)
            expected = ("You are attempting to update a file that has changed since you started editing it."
                        if files_api else "The file has changed since you started editing it: alloc.yml")
            self.assertEqual(set(losers), {(400, expected)}, f"round {rnd}")
            content = p.files.raw("alloc.yml", ref="main").decode()
            self.assertEqual(content, self.content(rnd, winners[0][1]))
        self.assertEqual(len(p.commits.list(get_all=True)), 2 + 3)   # readme, init, one per round

    def test_noop_update_does_not_move_last_commit_id(self):
        """An update that leaves the bytes as they are still makes a commit (Gitaly's
        UserCommitFiles has no "nothing changed" check), but that commit does not touch the
        path, and the lock compares with the last commit that touched it
        (``Commit.last_for_path`` = ``git log -1 -- path``): so it does not move the file's
        last_commit_id, and a writer holding the old id still wins.  The lock protects
        content, not "who wrote last"."""
        p = self.make_project()
        p.files.create({"file_path": "alloc.yml", "branch": "main", "content": "owner: 7\n",
                        "commit_message": "init"})
        last = p.files.get("alloc.yml", ref="main").last_commit_id

        def update(content):
            return p.commits.create({"branch": "main", "commit_message": content, "actions": [
                {"action": "update", "file_path": "alloc.yml", "content": content, "last_commit_id": last}]})

        noop = update("owner: 7\n")                       # same bytes: 201, a new commit
        f = p.files.get("alloc.yml", ref="main")
        self.assertEqual((f.commit_id, f.last_commit_id), (noop.id, last))
        update("owner: 9\n")                              # same last_commit_id: still accepted
        with self.assertRaises(glexc.GitlabCreateError) as cm:
            update("owner: 3\n")                          # now the file did change: refused
        self.assertEqual((cm.exception.response_code, cm.exception.error_message),
                         (400, "The file has changed since you started editing it: alloc.yml"))
        self.assertEqual(p.files.raw("alloc.yml", ref="main").decode(), "owner: 9\n")


if __name__ == "__main__":
    unittest.main()
