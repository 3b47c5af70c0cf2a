"""The console, the execution log and plugin health in a real browser, as a new operator
uses them: open a plugin's console, try a hook as a dry run (its storage write rolled
back) and as a real run (kept), see where an error is (also marked in the editor), run
the plugin page's unsaved source as a draft; find a failed call in *Recent calls*, open
it and replay it in the console; read a plugin's Health page.

The execution log is written by a background thread: tests call ``calllog.flush()``
before looking at it (the conftest forgets what earlier tests left unwritten)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from plugins_app import calllog, hooks
from plugins_app.exceptions import PluginScriptError
from plugins_app.models import CallRecord, Plugin, StorageItem

from .pages import AdminPages, ConsolePage, expect

pytestmark = pytest.mark.django_db(transaction=True)

# Line 8 (`order.items.length`) throws a TypeError for an order without items.
COUNTER = """const plugin = {
  bump(by) {
    const n = storage.incr("n", by);
    log("n is now " + n);
    return { n: n };
  },
  boom(order) {
    const total = order.items.length;
    return total;
  },
};
"""
BOOM_LINE = 8
BOOM_COLUMN = COUNTER.splitlines()[BOOM_LINE - 1].index("length") + 1  # V8 points at the property read


def storage_number(plugin: Plugin, key: str) -> int | None:
    item = StorageItem.objects.filter(plugin=plugin, key=key).first()
    return None if item is None else item.number


def open_console(admin: AdminPages, slug: str) -> ConsolePage:
    admin.open_plugin(slug)
    return admin.open_console()


def test_a_dry_run_rolls_back_storage_and_a_real_run_keeps_it(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(COUNTER, "counter")
    console = open_console(admin, "counter")
    expect(admin.page.get_by_role("heading", name="Console: Counter")).to_be_visible()
    expect(console.hook).to_have_value("bump")  # the plugin's first hook
    expect(console.mode_option("dry")).to_be_checked()  # a dry run unless asked otherwise
    expect(console.target_option("saved")).to_be_checked()

    console.run("bump", "[2]")
    expect(console.mode_banner).to_contain_text("Dry run: writes are rolled back")
    expect(console.mode_banner).to_contain_text("saved version 1")
    assert console.result_json() == {"n": 2}
    expect(console.log).to_contain_text("n is now 2")
    expect(console.fact("Host calls")).to_contain_text(re.compile(r"^1 of \d+"))
    expect(console.fact("Hook")).to_have_text("bump")
    assert storage_number(plugin, "n") is None  # the storage.incr was rolled back

    # The form keeps the hook and arguments: switch to a real run and run again.
    expect(console.args).to_have_value("[2]")
    console.run(mode="real")
    expect(console.mode_banner).to_contain_text("Real run: writes are kept")
    assert console.result_json() == {"n": 2}
    assert storage_number(plugin, "n") == 2

    # A dry run sees what the real run wrote, and still changes nothing.
    console.run(args="[5]", mode="dry")
    expect(console.mode_banner).to_contain_text("Dry run")
    assert console.result_json() == {"n": 7}
    assert storage_number(plugin, "n") == 2

    # The plugin's page shows the kept value in its Storage section (collapsed at first).
    with admin.page.expect_navigation():
        admin.page.locator(".breadcrumbs").get_by_role("link", name="Counter", exact=True).click()
    storage = admin.page.locator(".inline-group", has=admin.page.get_by_role("heading", name="Storage", exact=True))
    storage.get_by_text("Storage", exact=True).first.click()  # open the collapsed section
    row = storage.locator("tbody tr").filter(has=admin.page.get_by_text("n", exact=True))
    expect(row.locator("td.field-number")).to_have_text("2")
    plugin.refresh_from_db()
    assert plugin.consecutive_failures == 0 and plugin.version == 1  # console runs change nothing else


def test_a_run_time_error_in_the_console_says_where(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(COUNTER, "counter")
    console = open_console(admin, "counter")
    console.run("boom", '[{"id": 7}]')
    expect(console.failure.get_by_role("heading")).to_contain_text(f"at line {BOOM_LINE}, column {BOOM_COLUMN}")
    expect(console.error).to_contain_text("TypeError")
    expect(console.error).to_contain_text("reading 'length'")
    expect(console.error).to_have_attribute("data-error-line", str(BOOM_LINE))
    expect(console.result).to_have_count(0)  # no result for a failed call
    expect(console.mode_banner).to_contain_text("Dry run")


def test_a_run_time_error_is_marked_in_the_console_editor(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(COUNTER, "counter")
    console = open_console(admin, "counter")
    console.run("boom", '[{"id": 7}]')
    expect(console.error).to_have_attribute("data-error-line", str(BOOM_LINE))
    editor = console.draft_editor("source")  # shows the saved source, the code that ran
    expect(editor.error_line).to_have_count(1)
    expect(editor.error_line).to_have_attribute("data-error-line", str(BOOM_LINE))
    expect(editor.error_line).to_contain_text("order.items.length")
    expect(editor.root.locator(".cm-plugins-app-error-message")).to_contain_text("TypeError")

    # Editing the marked line removes the mark, as on the plugin page.
    editor.go_to(BOOM_LINE)
    admin.page.keyboard.type(" ")
    expect(editor.error_line).to_have_count(0)


def test_run_the_unsaved_source_from_the_plugin_page_in_the_console(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(COUNTER, "counter")
    admin.open_plugin("counter")
    draft = COUNTER.replace("  boom(order) {", '  peek() {\n    return storage.get("n");\n  },\n  boom(order) {')
    admin.editor("source").set_value(draft)
    admin.submit("Run draft in console")  # not saved: taken to the console as a draft

    console = ConsolePage(admin)
    expect(admin.page.locator("#plugin-console-draft-ok")).to_contain_text(
        "The draft validates; its hooks: bump, peek, boom"
    )
    expect(console.target_option("draft")).to_be_checked()
    assert console.draft_editor("source").value() == draft
    plugin.refresh_from_db()
    assert plugin.source == COUNTER and plugin.hooks == ["bump", "boom"]  # nothing saved

    console.run("peek", "[]")
    expect(console.mode_banner).to_contain_text("Dry run: writes are rolled back · unsaved draft")
    assert console.result_json() is None
    expect(console.fact("Code")).to_contain_text("unsaved draft")


def test_a_draft_with_a_syntax_error_is_marked_in_the_console_editor_and_not_run(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(COUNTER, "counter")
    console = open_console(admin, "counter")
    editor = console.draft_editor("source")
    assert editor.value() == COUNTER  # the draft starts as the saved version
    # Line 3: `const n = storage.incr("n", by);` loses its closing parenthesis.
    editor.set_value(COUNTER.replace('storage.incr("n", by);', 'storage.incr("n", by;'))
    console.run("bump", "[1]", target="draft", mode="real")

    expect(console.failure.get_by_role("heading")).to_contain_text("The draft was not run: it does not validate")
    expect(console.failure.get_by_role("heading")).to_contain_text("at line 3")
    expect(admin.field_errors("source")).to_contain_text(re.compile(r"SyntaxError: .*\(line 3, column \d+\)"))
    editor = console.draft_editor("source")
    expect(editor.error_line).to_have_attribute("data-error-line", "3")
    expect(editor.error_line).to_contain_text('storage.incr("n", by;')
    expect(console.result).to_have_count(0)
    assert storage_number(plugin, "n") is None  # not run, even as a "real" run
    plugin.refresh_from_db()
    assert plugin.source == COUNTER and plugin.version == 1

    # Fixed, the draft runs (with its own code: it counts by ten) and the saved plugin stays.
    editor.set_value(COUNTER.replace('storage.incr("n", by);', 'storage.incr("n", by * 10);'))
    console.run(target="draft", mode="dry")
    expect(console.mode_banner).to_contain_text("unsaved draft")
    assert console.result_json() == {"n": 10}
    plugin.refresh_from_db()
    assert plugin.source == COUNTER and storage_number(plugin, "n") is None


def test_a_failed_call_is_in_the_execution_log_and_replays_in_the_console(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(COUNTER, "counter", enabled=True)
    make_browser_plugin(COUNTER, "other", enabled=True)
    with pytest.raises(PluginScriptError):
        hooks.call("counter", "boom", {"id": 7, "note": "no items"})
    with pytest.raises(PluginScriptError):
        hooks.call("other", "boom", {"id": 8})
    assert calllog.flush()
    assert CallRecord.objects.filter(hook="boom").count() == 2

    # JavaScript plugins › Calls: every recorded call, newest first; search finds this one.
    admin.goto("/admin/")
    admin.click_button("Calls")
    expect(admin.page.get_by_role("heading", name="Select call to view")).to_be_visible()
    expect(admin.call_rows()).to_have_count(2)
    search = admin.page.locator("#searchbar")
    search.fill("counter")
    with admin.page.expect_navigation():
        search.press("Enter")
    rows = admin.call_rows()
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.locator("td.field-plugin_slug")).to_have_text("counter")
    expect(row.locator("td.field-hook")).to_have_text("boom")
    expect(row.locator("td.field-caller")).to_have_text("python")
    expect(row.locator("td.field-outcome_display")).to_have_text("error")
    expect(row.locator("td.field-short_error")).to_contain_text("PluginScriptError")

    # The record: where it failed, the stack, the arguments; and Replay in console.
    with admin.page.expect_navigation():
        row.locator("th a").first.click()
    location = admin.page.locator(".field-location .readonly")
    expect(location).to_contain_text(f"at line {BOOM_LINE}, column {BOOM_COLUMN}")
    expect(location).to_contain_text("TypeError")
    expect(admin.page.locator(".field-stack_text")).to_contain_text("counter.js")
    expect(admin.page.locator(".field-args_text pre")).to_contain_text('"note": "no items"')

    with admin.page.expect_navigation():
        admin.page.locator(".field-replay").get_by_role("link", name="Replay in console").click()
    console = ConsolePage(admin)
    expect(admin.page).to_have_url(re.compile(rf"/admin/plugins_app/plugin/{plugin.pk}/console/\?"))
    expect(admin.page.get_by_role("heading", name="Console: Counter")).to_be_visible()
    expect(console.hook).to_have_value("boom")
    assert json.loads(console.args.input_value()) == [{"id": 7, "note": "no items"}]
    expect(console.mode_option("dry")).to_be_checked()

    console.run()  # the replay fails the same way
    expect(console.failure.get_by_role("heading")).to_contain_text(f"at line {BOOM_LINE}, column {BOOM_COLUMN}")
    assert calllog.flush()

    # The plugin's Recent calls: its own two calls (the replay as a console call), not the other's.
    with admin.page.expect_navigation():
        admin.page.locator(".breadcrumbs").get_by_role("link", name="Counter", exact=True).click()
    admin.open_tool("Recent calls")
    expect(admin.page).to_have_url(re.compile(rf"/admin/plugins_app/callrecord/\?plugin__id__exact={plugin.pk}$"))
    expect(admin.call_rows()).to_have_count(2)
    expect(admin.call_rows().locator("td.field-caller")).to_have_text(["console", "python"])  # newest first
    expect(admin.call_rows().locator("td.field-plugin_slug")).to_have_text(["counter", "counter"])


def _bar_totals(chart: Any) -> tuple[int, int]:
    """Calls and errors summed over a bar chart's bars (each bar's tooltip has its numbers)."""
    calls = errors = 0
    for title in chart.locator("g > title").all_text_contents():
        match = re.search(r"(\d+) calls?, (\d+) errors?", title)
        assert match, title
        calls += int(match.group(1))
        errors += int(match.group(2))
    return calls, errors


def test_the_health_page_shows_numbers_and_charts(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(COUNTER, "counter", enabled=True)
    for _ in range(4):
        hooks.call("counter", "bump", 1)
    with pytest.raises(PluginScriptError):
        hooks.call("counter", "boom", {})
    assert calllog.flush()

    admin.open_plugin("counter")
    panel = admin.page.locator("#plugin-health-panel")
    expect(panel.locator("svg[role=img]")).to_have_count(1)
    expect(panel.locator("tbody tr").first).to_contain_text("5")
    admin.open_health()
    expect(admin.page.get_by_role("heading", name="Health of Counter")).to_be_visible()

    expect(admin.health_value("Calls", 1)).to_have_text("5")
    expect(admin.health_value("Calls", 2)).to_have_text("5")
    expect(admin.health_value("Errors", 1)).to_have_text(re.compile(r"^1 \(20\.0\s%\)$"))
    expect(admin.health_value("Timeouts", 2)).to_have_text("0")
    expect(admin.health_value("p50 latency", 1)).to_have_text(re.compile(r"^\d+(\.\d+)?\s(ms|s)$"))
    expect(admin.page.locator("#plugin-health-last-called")).not_to_have_text("never")
    expect(admin.page.locator("#plugin-health-state")).to_contain_text("closed (1 of")

    charts = admin.page.locator(".plugin-health-charts svg[role=img]")
    expect(charts).to_have_count(3)
    minutes = admin.page.locator('svg[aria-label^="Calls per minute, last hour"]')
    hours = admin.page.locator('svg[aria-label^="Calls per hour, last 24 hours"]')
    latency = admin.page.locator('svg[aria-label^="Latency per hour"]')
    expect(minutes).to_have_attribute("aria-label", re.compile(r"peak [1-5] calls"))
    assert _bar_totals(minutes) == (5, 1)
    assert _bar_totals(hours) == (5, 1)
    expect(latency.locator("title").filter(has_text=re.compile(r"p95"))).not_to_have_count(0)
    box = hours.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 50  # drawn, not collapsed

    failures = admin.page.locator("#plugin-health-failures tbody tr")
    expect(failures).to_have_count(1)
    expect(failures.first).to_contain_text("boom")
    expect(failures.first).to_contain_text("PluginScriptError")

    # A console run is in the log but is not site traffic: the numbers stay.
    admin.goto(f"/admin/plugins_app/plugin/{plugin.pk}/console/")
    ConsolePage(admin).run("bump", "[1]")
    assert calllog.flush()
    admin.goto(f"/admin/plugins_app/plugin/{plugin.pk}/health/")
    expect(admin.health_value("Calls", 1)).to_have_text("5")
