"""The plugin admin in a real browser, as a new operator uses it: log in, add a plugin by
typing in the code editor, fix a syntax error the editor points at, read the list at
1280 px, and see (not change) plugins as a view-only staff user."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from plugins_app.models import Plugin

if TYPE_CHECKING:
    from playwright.sync_api import Page

from .conftest import VIEWER_PASSWORD, VIEWER_USER
from .pages import PLUGINS, AdminPages, expect

pytestmark = pytest.mark.django_db(transaction=True)

GREETER = 'const plugin = {\n  greet(name) {\n    return "Hello, " + name;\n  },\n};\n'


def test_log_in_and_find_plugins(admin: AdminPages) -> None:
    admin.page.get_by_role("link", name="Plugins", exact=True).first.click()
    expect(admin.page).to_have_url(admin.url(PLUGINS))
    expect(admin.page.get_by_role("heading", name="Select plugin to change")).to_be_visible()


def test_add_a_plugin_by_typing_in_the_editor(admin: AdminPages) -> None:
    admin.open_add_plugin()
    admin.fill("Name", "Hello world")
    admin.page.keyboard.press("Tab")
    expect(admin.page.locator("#id_slug")).to_have_value("hello-world")  # prepopulated
    source = admin.editor("source")
    # Typed one key at a time: the editor closes brackets and quotes as they are typed and
    # steps over the closing ones, so the text ends up exactly as typed.
    typed = 'const plugin = { hello(name) { return "Hello, " + name; } };'
    source.type(typed)
    assert source.value() == typed
    assert source.textarea_value() == typed  # kept in sync for the form
    expect(source.root.locator(".cm-lineNumbers")).to_be_visible()
    expect(source.content.locator(".tok-keyword").first).to_have_text("const")  # highlighted
    config = admin.editor("config")
    config.type('{"greeting": "Hi"}')
    assert config.value() == '{"greeting": "Hi"}'

    admin.save()

    admin.assert_message("was added successfully")
    admin.assert_message("version 1, hooks: hello")
    plugin = Plugin.objects.get(slug="hello-world")
    assert plugin.source == typed
    assert plugin.config == {"greeting": "Hi"}


def test_tab_indents_and_lines_do_not_wrap(admin: AdminPages) -> None:
    admin.open_add_plugin()
    source = admin.editor("source")
    source.type("x")
    admin.page.keyboard.press("Home")
    admin.page.keyboard.press("Tab")
    assert source.value() == "  x"  # Tab indented the line; focus stayed in the editor
    expect(source.content).to_be_focused()
    source.set_value("// " + "a very long comment " * 40 + "\nx")
    lines = source.content.locator(".cm-line")
    expect(lines).to_have_count(2)
    first, second = lines.nth(0).bounding_box(), lines.nth(1).bounding_box()
    assert first["height"] == second["height"]  # one visual line each: no soft wrap
    assert first["width"] > source.root.bounding_box()["width"]  # the long line scrolls sideways
    expect(source.root.locator(".plugins-app-editor-status")).to_contain_text("Line 1, column")


def test_a_syntax_error_is_shown_and_its_line_marked(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(GREETER, "greeter")
    admin.open_plugin("greeter")
    source = admin.editor("source")
    assert source.value() == GREETER
    # On line 3, turn `return "Hello, " + name;` into `... + name +;`.
    source.go_to(3)
    admin.page.keyboard.press("Backspace")
    admin.page.keyboard.type(" +;")

    admin.save()

    errors = admin.field_errors("source")
    expect(errors).to_contain_text(re.compile(r"SyntaxError: .*\(line 3, column \d+\)"))
    source = admin.editor("source")
    expect(source.error_line).to_have_count(1)
    expect(source.error_line).to_have_attribute("data-error-line", "3")
    expect(source.error_line).to_contain_text('return "Hello, " + name +;')
    expect(source.root.locator(".cm-plugins-app-error-mark")).to_have_text(";")  # the column
    expect(source.root.locator(".cm-plugins-app-error-message")).to_contain_text("SyntaxError")
    assert source.value() == GREETER.replace("name;", "name +;")  # what was typed is kept
    assert Plugin.objects.get(slug="greeter").source == GREETER  # nothing saved

    # Fixing the marked line removes the mark; saving works.
    source.go_to(3)
    admin.page.keyboard.press("Backspace")
    admin.page.keyboard.press("Backspace")
    admin.page.keyboard.press("Backspace")
    admin.page.keyboard.type(" + '!';")
    expect(source.error_line).to_have_count(0)
    admin.save()
    admin.assert_message("was changed successfully")
    assert "name + '!';" in Plugin.objects.get(slug="greeter").source


def test_a_json_syntax_error_is_marked_in_the_config_editor(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(GREETER, "greeter")
    admin.open_plugin("greeter")
    config = admin.editor("config")
    config.set_value('{\n  "greeting": "Hi",\n  oops\n}')
    admin.save()
    expect(admin.field_errors("config")).to_contain_text("Not valid JSON")
    config = admin.editor("config")
    expect(config.error_line).to_have_attribute("data-error-line", "3")


def test_the_plain_textarea_works_without_javascript(browser: Any, live_server: Any, admin_user: Any) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        admin = AdminPages(page, live_server.url)
        admin.login("admin", "Admin-pass-1!")
        admin.open_add_plugin()
        admin.fill("Name", "No JS")
        admin.fill("Slug", "no-js")
        textarea = page.locator("textarea[name=source]")
        expect(textarea).to_be_visible()
        expect(textarea).to_have_attribute("wrap", "off")
        textarea.fill("const plugin = {\n  ping() { return 'pong'; },\n};")
        admin.save()
        admin.assert_message("was added successfully")
        assert Plugin.objects.get(slug="no-js").hooks == ["ping"]
    finally:
        context.close()


def test_the_changelist_fits_1280px(admin: AdminPages, make_browser_plugin: Callable[..., Plugin]) -> None:
    for n in range(3):
        make_browser_plugin(GREETER, f"plugin-with-a-rather-long-slug-{n}", description="x" * 200)
    admin.page.set_viewport_size({"width": 1280, "height": 800})
    admin.open_changelist()
    expect(admin.page.locator("#result_list tbody tr")).to_have_count(3)
    last_header = admin.page.locator("#result_list thead th").last
    expect(last_header).to_be_in_viewport()
    admin.assert_no_horizontal_overflow()


def test_a_view_only_user_sees_but_cannot_change(
    page: Page, live_server: Any, viewer_user: Any, make_browser_plugin: Callable[..., Plugin]
) -> None:
    make_browser_plugin(GREETER, "greeter")
    admin = AdminPages(page, live_server.url)
    admin.login(VIEWER_USER, VIEWER_PASSWORD)

    admin.open_changelist()
    expect(page.locator("#result_list")).to_contain_text("greeter")
    actions = " ".join(page.locator("select[name=action] option").all_inner_texts())
    for refused in ("Enable selected", "Disable selected", "Resume selected", "Delete selected"):
        assert refused not in actions  # no bulk action that changes plugins
    expect(admin.button("Add plugin")).to_have_count(0)

    admin.open_plugin("greeter")
    expect(page.get_by_role("heading", name=re.compile("View plugin"))).to_be_visible()
    expect(page.locator("input[type=submit]")).to_have_count(0)  # no Save buttons
    expect(page.locator("textarea[name=source]")).to_have_count(0)
    code = page.locator(".field-source_code .plugins-app-editor")  # a read-only editor
    expect(code.locator(".cm-content")).to_contain_text('return "Hello, " + name;')
    expect(code.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(code.locator(".cm-lineNumbers")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Call a hook"))).to_have_count(0)

    # Pages that change things refuse.
    plugin = Plugin.objects.get(slug="greeter")
    for path in (f"{PLUGINS}add/", f"{PLUGINS}{plugin.pk}/delete/"):
        response = admin.goto(path)
        assert response is not None and response.status == 403, path
