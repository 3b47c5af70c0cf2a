"""The supported matrix (Django x Python), run with nox: ``nox -l`` lists the sessions.

README's test command is the quick default (Python 3.11, the newest Django 5.2). These
sessions run the same suite on every supported Django, each on a Python it supports
(Django 6.x needs Python 3.12 or newer). The database comes from ``DATABASE_URL``, as in
the README's command (SQLite when unset); arguments after ``--`` go to pytest:

    nox -s "tests(3.13-django6.1)" -- -x tests/test_hooks.py
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

# (Python, Django): each supported Django once, on a Python it supports.
MATRIX = [("3.11", "5.2"), ("3.12", "6.0"), ("3.13", "6.1")]


@nox.session
@nox.parametrize(("python", "django"), MATRIX, ids=[f"{p}-django{d}" for p, d in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    """The test suite on one (Python, Django) pair."""
    session.install("-e", ".[test]", f"django~={django}.0")
    session.run(
        "python", "-c", "import django, sys; print('Django', django.get_version(), 'on Python', sys.version.split()[0])"
    )
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


# pytest-xdist: two test processes (this machine has two cores). Each process has its own
# test database (pytest-django suffixes its name with the worker id), its own sandbox
# pool, its own live_server and browser, free ports, Celery queues and deployment
# databases named uniquely, temporary files only, and the npm/tsc cache in
# ~/.cache/plugins_app-tests is filled with atomic renames. Used for the fast suite
# (SQLite and PostgreSQL); the whole suite on PostgreSQL runs serially in CI: there, with
# -n 2, a transactional test's flush (TRUNCATE) was seen deadlocking with another
# connection to the same test database.
PARALLEL = ["-n", "2"]
# The fast suite, which every matrix cell runs; the slow suites (fault and deployment tests,
# which need PostgreSQL, the browser tests, the npm/tsc tests) run once, on the newest Django.
FAST = ["-m", "not faults and not node", "--ignore=tests/browser", "--ignore=tests/test_deployment.py"]


@nox.session(python="3.11")
def coverage(session: nox.Session) -> None:
    """The fast suite under coverage.py (Python 3.11, Django 5.2, SQLite unless DATABASE_URL
    says otherwise), sandbox workers and subprocesses included; fails below the floor
    of pyproject.toml ([tool.coverage.report] fail_under)."""
    session.install("-e", ".[test]", "django~=5.2.0")
    session.run("pytest", "-p", "no:cacheprovider", *PARALLEL, *FAST, "--cov", "--cov-report=term", *session.posargs)
