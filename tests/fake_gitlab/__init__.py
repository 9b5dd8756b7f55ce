"""A fake GitLab server for berth's tests.

It is a separate process (``python3 -m fake_gitlab`` from ``tests/``) that
speaks the subset of GitLab's REST API (``/api/v4``) that berth uses, following
``shared/reference/gitlab.md``, and serves real bare git repositories over
smart HTTP (``git http-backend``).  Only the standard library and ``git`` are
needed.

Modules and what each one owns:

- ``__main__``   command line: bind, write the ready file, serve.
- ``server``     the HTTP layer: request parsing, authentication, fault
                 injection, request log, dispatch to API / git / control.
- ``routing``    the route table on the *raw* path, and offset pagination.
- ``params``     Rack-style form and JSON parameter parsing and coercion.
- ``errors``     ``ApiError`` and the documented error body shapes.
- ``state``      all in-memory state (users, tokens, groups, projects, MRs,
                 variables ...), the global lock, permissions and seeding.
- ``gitrepo``    every git plumbing call on the bare repositories.
- ``entities``   JSON presenters (what GitLab returns for each object).
- ``api_core``   /user, /job, /users, /groups, /namespaces, /projects, members.
- ``api_repo``   files, commits, tags, branches, compare, tree, submodules,
                 protected branches/tags, commit statuses.
- ``api_ci``     CI/CD variables, environments, protected environments,
                 deployments, pipelines, triggers.
- ``api_mr``     merge requests, diffs/changes, notes, approvals, merge.
- ``control``    the ``/__fake/`` test-control endpoints.
- ``githttp``    smart HTTP through ``git http-backend`` (CGI) and the
                 pre-receive hook that enforces protected branches/tags.
"""
