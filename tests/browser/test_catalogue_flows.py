"""The hook catalogue and generated types in a real browser, as an operator meets them:
the catalogue page from the plugin list, the "did you mean" warning after saving a
plugin with a misspelt hook, and the types file downloaded from the plugin's page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugins_app.models import Plugin

from .pages import AdminPages, expect

pytestmark = pytest.mark.django_db(transaction=True)

# "noteSavd": the demo declares noteSaved; "greet" is declared (kind call, one argument).
MISSPELT = "const plugin = {\n  greet(name) { return name; },\n  noteSavd(note) { return note; },\n};\n"


def test_catalogue_page_lists_declared_hooks_and_implementers(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(MISSPELT, "speller")
    admin.open_changelist()
    admin.page.locator("#plugin-catalogue-link").click()
    expect(admin.page.get_by_role("heading", name="Hook catalogue")).to_be_visible()
    page = admin.page.content()
    for declared in ("onRequest", "noteSaved", "headline", "sidebar", "greet"):
        assert declared in page
    # Implemented by the plugin, declared by nobody, with the suggestion.
    assert "noteSavd" in page and "noteSaved" in page
    expect(admin.page.get_by_role("link", name="speller").first).to_be_visible()


def test_saving_a_misspelt_hook_warns_with_a_suggestion(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin("const plugin = { greet(name) { return name; } };", "speller")
    admin.open_plugin("speller")
    admin.editor("source").type(MISSPELT.replace("\n", " "))
    admin.save()
    admin.assert_message("noteSavd")
    admin.assert_message("noteSaved")
    plugin.refresh_from_db()
    assert "noteSavd" in plugin.hooks  # a warning: saved all the same


def test_types_download_from_the_plugin_page(admin: AdminPages, make_browser_plugin: Callable[..., Plugin]) -> None:
    make_browser_plugin(MISSPELT, "speller")
    admin.open_plugin("speller")
    with admin.page.expect_download() as info:
        admin.page.locator("#plugin-types-button").click()
    download = info.value
    assert download.suggested_filename == "speller.d.ts"
    text = open(download.path(), encoding="utf-8").read()
    assert "declare const host" in text and 'declare module "plugin:host"' in text
    assert "greet" in text  # the declared hook it implements, typed
