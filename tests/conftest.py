from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugins_app.models import Plugin

# Fixtures defined in modules: plugins_app.testing's install_plugin, registered the way
# docs/testing.md tells a site to, and the delivery tests' one_attempt.
pytest_plugins = ["plugins_app.testing", "tests.delivery_helpers"]

GREETER = (Path(__file__).resolve().parent.parent / "project" / "demo" / "plugins" / "greeter.js").read_text()


@pytest.fixture
def make_plugin(db: None) -> Callable[..., Plugin]:
    """Create, validate and save an enabled plugin from JS source."""

    def make(source: str, slug: str = "p", **fields: Any) -> Plugin:
        fields.setdefault("name", slug)
        fields.setdefault("enabled", True)
        plugin = Plugin(slug=slug, source=source, **fields)
        plugin.full_clean()
        plugin.save()
        return plugin

    return make


@pytest.fixture
def greeter(make_plugin: Callable[..., Plugin]) -> Plugin:
    return make_plugin(GREETER, slug="greeter", config={"version": "1.0.0"})


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# -- the execution log's writer thread (plugins_app.calllog) ---------------------------------------


@pytest.fixture(scope="session")
def _call_log_writer_guard(django_db_setup: None, django_db_blocker: Any) -> Any:
    """Set up after the test database, so torn down before it: stops the writer thread
    (which has a database connection of its own) before the database is dropped."""
    yield
    from plugins_app import calllog

    with django_db_blocker.unblock():
        calllog.clear()
        calllog.shutdown()


@pytest.fixture(autouse=True)
def _call_log_writer_stopped_at_the_end(request: pytest.FixtureRequest) -> None:
    if "django_db_setup" in request.fixturenames:
        request.getfixturevalue("_call_log_writer_guard")


# -- coverage of the sandbox workers (plugins_app.sandbox.pool.coverage_option) ---------------------


@pytest.fixture(scope="session", autouse=True)
def _sandbox_pool_closed_at_the_end() -> Any:
    """Under coverage, a sandbox worker writes its data file when it exits: close this
    process's workers as the session ends, before pytest-cov combines the data files (the
    pool's atexit closure would come after that)."""
    yield
    from plugins_app.sandbox.pool import shutdown_pool

    shutdown_pool()
