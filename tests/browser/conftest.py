"""Browser tests: Playwright's sync API driving the system's Chromium (Debian's
``chromium`` package; Playwright's own browser download is never used) against
pytest-django's ``live_server``.

Locally, the tests are skipped, with the reason shown, when the ``playwright`` package
or Chromium is missing (``pip install -e ".[test]"``, ``apt-get install -y chromium``).
With ``BROWSER_TESTS=required`` (set by ``.ci/run``) a missing one is an error instead.
``CHROMIUM`` picks another browser binary.

On a failure the page's screenshot and HTML are saved to ``$BROWSER_ARTIFACTS`` (default
``tests/browser/artifacts/``), named after the test; ``BROWSER_SCREENSHOTS=all`` saves them
for every test (to look at what the tests saw).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from plugins_app.models import Plugin

from .pages import AdminPages

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")
ADMIN_USER, ADMIN_PASSWORD = "admin", "Admin-pass-1!"
VIEWER_USER, VIEWER_PASSWORD = "viewer", "Viewer-pass-1!"
TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if os.environ.get("BROWSER_TESTS", "").lower() == "required":
        pytest.fail(f"browser tests are required (BROWSER_TESTS=required) but {reason}", pytrace=False)
    pytest.skip(reason)


def _chromium_path() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the browser tests (closed when they are done)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable('the "playwright" package is not installed (pip install -e ".[test]")')
    executable = _chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install -y chromium)")
    # While Playwright's sync API is active, its event loop counts as running in this
    # thread, and Django refuses ORM calls from a thread with a running loop. The tests'
    # own ORM calls (fixtures, checks) are synchronous and safe; the server runs in a
    # thread of its own.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    """Options of each test's browser context; override in a module to change them."""
    return {"viewport": {"width": 1280, "height": 900}, "locale": "en-US"}


@pytest.fixture
def page(
    browser: Browser, live_server: Any, browser_context_args: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh page (own cookies) on the live server; JS errors and HTTP 5xx fail the test."""
    context = browser.new_context(base_url=live_server.url, **browser_context_args)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"JavaScript error: {exc}"))

    def on_console(message: Any) -> None:
        # Missing resources show as HTTP errors (5xx above); a 404 favicon is no problem.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console.error: {message.text}")

    page.on("console", on_console)
    page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status} {response.request.method} {response.url}")
            if response.status >= 500
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]  # tests that expect some may clear it
    try:
        yield page
        if _failed(request):
            return
        if problems:
            pytest.fail("the browser saw: " + "; ".join(problems), pytrace=False)
    finally:
        if _failed(request) or problems or os.environ.get("BROWSER_SCREENSHOTS") == "all":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::", 1)[-1])
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(page.content())
                print(f"screenshot of the page: {ARTIFACTS / name}.png (and .html)")
            except Exception as exc:  # the page may be gone; the test's own failure matters more
                print(f"could not save the failure screenshot: {exc}")
        context.close()


@pytest.fixture(autouse=True)
def _call_log_forgotten(transactional_db: None) -> Iterator[None]:
    """Calls an earlier test recorded but the execution log's writer thread has not written
    yet must not land on this test's plugins (SQLite reuses the ids of emptied tables),
    nor this test's on the next's: forget them before and after each test (after: before
    the test's tables are emptied)."""
    from plugins_app import calllog

    calllog.clear()
    yield
    calllog.clear()


@pytest.fixture
def admin_user(transactional_db: None) -> Any:
    return get_user_model().objects.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)


@pytest.fixture
def viewer_user(transactional_db: None) -> Any:
    """A staff user who may only view plugins (and their grants and storage)."""
    user = get_user_model().objects.create_user(VIEWER_USER, "viewer@example.com", VIEWER_PASSWORD, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="plugins_app", codename__in=["view_plugin", "view_plugingrant", "view_storageitem"]
        )
    )
    return user


@pytest.fixture
def admin(page: Page, live_server: Any, admin_user: Any) -> AdminPages:
    """The admin, logged in as a superuser."""
    pages = AdminPages(page, live_server.url)
    pages.login(ADMIN_USER, ADMIN_PASSWORD)
    return pages


@pytest.fixture
def make_browser_plugin(transactional_db: None) -> Callable[..., Plugin]:
    """Create a validated plugin directly in the database (for tests that start from one)."""

    def make(source: str, slug: str, **fields: Any) -> Plugin:
        fields.setdefault("name", slug.replace("-", " ").title())
        plugin = Plugin(slug=slug, source=source, **fields)
        plugin.full_clean()
        plugin.save()
        return plugin

    return make
