"""Who may do what on the operator console's screens, in a real browser: a view-only staff
user sees a plugin, its revisions, diffs, health and export, but is offered no way to
run, roll back, import or change anything, and the server refuses the requests a crafted
form would send; a staff user who may run the console (but not change plugins) gets dry
runs of the saved version only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from plugins_app.models import Plugin, PluginRevision, StorageItem

from .conftest import ADMIN_PASSWORD, ADMIN_USER, VIEWER_PASSWORD, VIEWER_USER
from .pages import PLUGINS, AdminPages, ConsolePage, expect

pytestmark = pytest.mark.django_db(transaction=True)

V1 = 'const plugin = {\n  bump() {\n    return storage.incr("n");\n  },\n};\n'
V2 = V1.replace('storage.incr("n")', 'storage.incr("n", 2)')
RUNNER_USER, RUNNER_PASSWORD = "runner", "Runner-pass-1!"


def two_revisions(make_browser_plugin: Callable[..., Plugin]) -> Plugin:
    plugin = make_browser_plugin(V1, "counter", enabled=True)
    plugin.source = V2
    plugin.full_clean()
    plugin.save()
    assert list(plugin.revisions.values_list("number", flat=True).order_by("number")) == [1, 2]
    return plugin


def state(plugin: Plugin) -> tuple[Any, ...]:
    plugin.refresh_from_db()
    return (
        plugin.source,
        plugin.enabled,
        plugin.paused_at,
        plugin.version,
        plugin.name,
        PluginRevision.objects.filter(plugin=plugin).count(),
        StorageItem.objects.filter(plugin=plugin).count(),
        Plugin.objects.count(),
    )


def test_a_view_only_user_can_see_but_not_run_roll_back_import_or_change(
    page: Any, live_server: Any, viewer_user: Any, admin_user: Any, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = two_revisions(make_browser_plugin)
    # Paused by the circuit breaker: a Resume button would be offered to those who may change it.
    Plugin.objects.filter(pk=plugin.pk).update(paused_at=timezone.now(), paused_reason="5 failures in a row")
    before = state(plugin)
    viewer = AdminPages(page, live_server.url)
    viewer.login(VIEWER_USER, VIEWER_PASSWORD)

    # The list: no Import, no Add.
    viewer.open_changelist()
    expect(page.locator("#result_list")).to_contain_text("counter")
    expect(viewer.tool("Import")).to_have_count(0)

    # The plugin's page: what there is to see, and no button that runs or changes.
    viewer.open_plugin("counter")
    expect(page.get_by_role("heading", name=re.compile("View plugin"))).to_be_visible()
    expect(page.locator("#plugin-paused-warning")).to_contain_text("5 failures in a row")
    expect(viewer.tool("Export")).to_be_visible()
    expect(viewer.tool("Revisions (2)")).to_be_visible()
    for absent in ("Console", "Enable", "Disable", "Resume", "Recent calls"):
        expect(viewer.tool(absent)).to_have_count(0)
    expect(page.get_by_role("link", name="Open console")).to_have_count(0)
    expect(page.get_by_role("button", name="Run draft in console")).to_have_count(0)
    expect(page.locator("input[name=source_file]")).to_have_count(0)
    expect(page.locator("input[type=submit]")).to_have_count(0)
    expect(page.locator("#plugin-health-panel svg[role=img]")).to_have_count(1)

    _, exported = viewer.export_plugin()  # seeing includes exporting
    assert exported["plugins"][0]["source"] == V2

    viewer.open_health()
    expect(viewer.health_value("Calls", 2)).to_have_text("0")

    # Revisions and diffs: visible; rolling back: not offered.
    viewer.open_plugin("counter")
    viewer.open_revisions()
    expect(viewer.revision_rows()).to_have_count(2)
    viewer.compare_revisions(1, 2)
    expect(viewer.diff_of("source").locator("tr.add td.code")).to_contain_text(['storage.incr("n", 2)'])
    viewer.open_revisions()
    viewer.open_revision(1)
    expect(page.locator("#revision-source pre")).to_contain_text('storage.incr("n")')
    expect(page.locator("#revision-rollback-form")).to_have_count(0)
    expect(viewer.button("Roll back to this revision")).to_have_count(0)

    # What a crafted form would send is refused by the server.
    pk = plugin.pk
    run = {"hook": "bump", "args": "[]", "target": "saved"}
    refused = {
        "roll back": (f"{PLUGINS}{pk}/revisions/1/rollback/", {"latest": "2"}, None),
        "open the console": (f"{PLUGINS}{pk}/console/", {}, None),
        "dry-run in the console": (f"{PLUGINS}{pk}/console/", {**run, "mode": "dry"}, None),
        "real-run in the console": (f"{PLUGINS}{pk}/console/", {**run, "mode": "real"}, None),
        "import": (f"{PLUGINS}import/", {"replace": "on"}, {"file": ("counter.json", json.dumps(exported).encode())}),
        "change": (
            f"{PLUGINS}{pk}/change/",
            {"name": "Renamed", "slug": "counter", "source": V1, "config": "{}"},
            None,
        ),
        "disable": (f"{PLUGINS}{pk}/disable/", {}, None),
        "delete": (f"{PLUGINS}{pk}/delete/", {"post": "yes"}, None),
    }
    for what, (path, data, files) in refused.items():
        status, _ = viewer.post(path, data, files=files)
        assert status == 403, f"{what}: HTTP {status}"
    for path in (f"{PLUGINS}{pk}/console/", f"{PLUGINS}import/"):
        response = viewer.goto(path)
        assert response is not None and response.status == 403, path
    assert state(plugin) == before  # nothing ran, rolled back, was imported or changed

    # A superuser gets what the view-only user did not (so the checks above look at the
    # right places), and the same rollback request goes through.
    admin = AdminPages(page, live_server.url)
    admin.login(ADMIN_USER, ADMIN_PASSWORD)
    admin.open_changelist()
    expect(admin.tool("Import")).to_be_visible()
    admin.open_plugin("counter")
    for offered in ("Console", "Disable", "Resume", "Export", "Revisions (2)"):
        expect(admin.tool(offered)).to_be_visible()
    expect(page.get_by_role("link", name="Open console")).to_be_visible()
    expect(page.get_by_role("button", name="Run draft in console")).to_be_visible()
    expect(page.locator("input[name=source_file]")).to_have_count(1)
    status, _ = admin.post(f"{PLUGINS}{pk}/revisions/1/rollback/", {"latest": "2"})
    assert status == 302
    plugin.refresh_from_db()
    assert plugin.source == V1


@pytest.fixture
def runner_user(transactional_db: None) -> Any:
    """A staff user who may view plugins and run them from the console, not change them."""
    user = get_user_model().objects.create_user(RUNNER_USER, "runner@example.com", RUNNER_PASSWORD, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="plugins_app", codename__in=["view_plugin", "run_console"])
    )
    return user


def test_a_console_user_without_change_permission_gets_dry_runs_only(
    page: Any, live_server: Any, runner_user: Any, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(V1, "counter")
    runner = AdminPages(page, live_server.url)
    runner.login(RUNNER_USER, RUNNER_PASSWORD)
    runner.open_plugin("counter")
    console = runner.open_console()

    expect(console.mode_option("dry")).to_be_checked()
    expect(console.mode_option("real")).to_have_count(0)
    expect(console.target_option("draft")).to_have_count(0)
    expect(page.locator("#plugin-console-draft")).to_have_count(0)
    expect(page.locator(".field-mode .help")).to_contain_text("needs the change permission")

    console.run("bump", "[]")
    expect(console.mode_banner).to_contain_text("Dry run: writes are rolled back")
    assert console.result_json() == 1
    assert not StorageItem.objects.filter(plugin=plugin).exists()

    path = f"{PLUGINS}{plugin.pk}/console/"
    status, body = runner.post(path, {"hook": "bump", "args": "[]", "target": "saved", "mode": "dry"})
    assert status == 200 and "plugin-console-result" in body  # the form the page offers
    for forged in ({"mode": "real", "target": "saved"}, {"mode": "dry", "target": "draft", "source": V2}):
        status, _ = runner.post(path, {"hook": "bump", "args": "[]", **forged})
        assert status == 403, forged
    assert not StorageItem.objects.filter(plugin=plugin).exists()
    plugin.refresh_from_db()
    assert plugin.source == V1

    ConsolePage(runner).run()  # the page still works after the refusals
    expect(console.mode_banner).to_contain_text("Dry run")
