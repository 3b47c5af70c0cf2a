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
