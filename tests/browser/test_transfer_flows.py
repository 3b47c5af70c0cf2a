"""Getting plugins in and out in a real browser, as a new operator does it: add a plugin by
uploading its ``.js`` file (and see a broken file's error marked at its line), export a
plugin from its page and import the file on a site that exposes less (the grants it
cannot give are reported)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from plugins_app.exposure import exposing
from plugins_app.models import Plugin, PluginGrant, PluginRevision

from .pages import AdminPages, expect

pytestmark = pytest.mark.django_db(transaction=True)

UPLOADED = """const plugin = {
  shout(text) {
    return text.toUpperCase() + "!";
  },
  whisper(text) {
    return text.toLowerCase();
  },
};
"""
NOTES = """const plugin = {
  titles() {
    return db.query("demo.Note", { fields: ["id", "title"] }).map((n) => config.prefix + n.title);
  },
};
"""


def test_add_a_plugin_by_uploading_a_js_file(admin: AdminPages) -> None:
    admin.open_changelist()
    admin.click_button("Add plugin")
    admin.fill("Name", "Shouter")
    admin.page.keyboard.press("Tab")
    expect(admin.page.locator("#id_slug")).to_have_value("shouter")
    assert admin.editor("source").value() == ""  # nothing typed: the file is the source
    # Saved on Windows, with a byte order mark: stored as plain UTF-8 with LF line ends.
    admin.upload_source("shouter.js", "\ufeff" + UPLOADED.replace("\n", "\r\n"))
    admin.submit("Save and continue editing")

    admin.assert_message("was added successfully")
    admin.assert_message("version 1, hooks: shout, whisper")
    plugin = Plugin.objects.get(slug="shouter")
    assert plugin.source == UPLOADED
    assert plugin.hooks == ["shout", "whisper"]
    assert admin.editor("source").value() == UPLOADED  # the page shows the file's text
    expect(admin.page.locator(".field-hook_list .readonly")).to_have_text("shout, whisper")
    admin.open_tool("History")
    expect(admin.page.locator("#change-history")).to_contain_text("Added.")


def test_an_uploaded_file_with_a_syntax_error_is_marked_at_its_line(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(UPLOADED, "shouter")
    admin.open_plugin("shouter")
    broken = UPLOADED.replace("return text.toLowerCase();", "return text.toLowerCase(;")  # line 6
    admin.upload_source("shouter.js", broken)
    admin.submit("Save and continue editing")

    expect(admin.field_errors("source")).to_contain_text(re.compile(r"SyntaxError: .*\(line 6, column \d+\)"))
    source = admin.editor("source")
    assert source.value() == broken  # the box shows the file's text, with its error marked
    expect(source.error_line).to_have_attribute("data-error-line", "6")
    expect(source.error_line).to_contain_text("return text.toLowerCase(;")
    assert Plugin.objects.get(slug="shouter").source == UPLOADED  # nothing saved

    # A file that is not a .js file is refused with a reason.
    admin.open_plugin("shouter")
    admin.source_file_input.set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x"})
    admin.submit("Save and continue editing")
    expect(admin.field_errors("source_file")).to_contain_text("extension")
    assert Plugin.objects.get(slug="shouter").source == UPLOADED


def test_export_and_import_a_plugin_with_grants_this_site_cannot_give(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(
        NOTES,
        "note-titles",
        description="Lists notes.",
        config={"prefix": "# "},
        priority=7,
        timeout_ms=700,
    )
    PluginGrant(plugin=plugin, model="demo.Note", read=["id", "title", "body"], update=["score"]).save()
    PluginGrant(plugin=plugin, model="auth.User", read=["id", "username"]).save()

    admin.open_plugin("note-titles")
    filename, exported = admin.export_plugin()
    assert filename.startswith("note-titles") and filename.endswith(".json")
    (entry,) = exported["plugins"]
    assert entry["slug"] == "note-titles" and entry["source"] == NOTES and entry["config"] == {"prefix": "# "}
    assert {g["model"] for g in entry["grants"]} == {"demo.Note", "auth.User"}

    # Delete it, as an operator would, from its page.
    admin.open_plugin("note-titles")
    admin.click_button("Delete")
    admin.submit("Yes, I’m sure")
    admin.assert_message("was deleted successfully")
    assert not Plugin.objects.filter(slug="note-titles").exists()

    # A site that exposes less: no auth.User at all, and demo.Note without its body.
    with exposing(("demo.Note", {"read": ["id", "title"], "write": ["score"]})):
        admin.open_import()
        admin.import_file(filename, json.dumps(exported))
        expect(admin.page).to_have_url(re.compile(r"/admin/plugins_app/plugin/\d+/change/$"))
        admin.assert_message(re.compile(r"note-titles: Imported note-titles version \d+ \(disabled\); hooks: titles"))
        admin.assert_message(
            "note-titles: grant auth.User: not imported (this site does not expose that model to plugins).", "warning"
        )
        admin.assert_message("note-titles: grant demo.Note: imported without read: body (not exposed here)", "warning")

    imported = Plugin.objects.get(slug="note-titles")
    assert imported.source == NOTES
    assert imported.config == {"prefix": "# "}
    assert (imported.description, imported.priority, imported.timeout_ms) == ("Lists notes.", 7, 700)
    assert not imported.enabled  # installed disabled: try it first
    grants = {g.model: g for g in imported.grants.all()}
    assert set(grants) == {"demo.Note"}
    assert grants["demo.Note"].read == ["id", "title"] and grants["demo.Note"].update == ["score"]
    assert PluginRevision.objects.get(plugin=imported).comment == f"Imported from {filename}."
    assert admin.editor("source").value() == NOTES
    expect(admin.page.locator(".field-enabled input")).not_to_be_checked()

    # Importing it again without "Replace plugins that exist" is refused, nothing changes.
    admin.open_import()
    admin.import_file(filename, json.dumps(exported))
    expect(admin.page.locator("#plugin-import-errors")).to_contain_text("Nothing was imported")
    expect(admin.page.locator("#plugin-import-errors li")).to_contain_text(["note-titles"])
    assert Plugin.objects.filter(slug="note-titles").count() == 1
