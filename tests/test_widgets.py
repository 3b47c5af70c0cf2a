"""The code editor widget (plugins_app.widgets) and its vendored CodeMirror bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django import forms
from django.contrib.staticfiles import finders

from plugins_app.forms import PluginForm
from plugins_app.widgets import (
    EDITOR_CSS,
    EDITOR_JS,
    CodeEditorBoundField,
    CodeEditorWidget,
    code_block,
    error_position,
)

APP = Path(__file__).resolve().parent.parent / "plugins_app"
STATIC = APP / "static" / "plugins_app" / "editor"
BUILD = APP / "static_src" / "editor"


def attrs_of(html: str, tag: str = "textarea") -> dict[str, str]:
    match = re.search(rf"<{tag}\b([^>]*)>", html)
    assert match, html
    return {m.group(1): m.group(3) or "" for m in re.finditer(r'([\w-]+)(="([^"]*)")?', match.group(1))}


# -- the widget -----------------------------------------------------------------------------
def test_renders_a_plain_textarea_marked_for_the_editor() -> None:
    html = CodeEditorWidget("javascript").render("source", "const plugin = {};", attrs={"id": "id_source"})
    attrs = attrs_of(html)
    assert attrs["name"] == "source"
    assert attrs["data-code-editor"] == "javascript"
    assert attrs["wrap"] == "off"  # no soft wrap, even without JavaScript
    assert attrs["spellcheck"] == "false"
    assert "plugins-app-code" in attrs["class"].split()
    assert attrs["rows"] == "24"
    assert "readonly" not in attrs
    assert ">\nconst plugin = {};</textarea>" in html


def test_json_language_rows_classes_and_readonly() -> None:
    widget = CodeEditorWidget("json", attrs={"rows": 6, "class": "mine"}, readonly=True)
    attrs = attrs_of(widget.render("config", "{}"))
    assert attrs["data-code-editor"] == "json"
    assert attrs["rows"] == "6"
    assert attrs["class"].split() == ["mine", "plugins-app-code"]
    assert "readonly" in attrs


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        CodeEditorWidget("python")


def test_media_is_the_vendored_bundle() -> None:
    media = CodeEditorWidget().media
    # Rendered, not Media._js: Django 6 keeps Script objects there.
    scripts, styles = list(media.render_js()), list(media.render_css())
    assert len(scripts) == 1 and f'src="/static/{EDITOR_JS}"' in scripts[0]
    assert len(styles) == 1 and f'href="/static/{EDITOR_CSS}"' in styles[0]
    rendered = str(media)
    assert "/static/plugins_app/editor/editor.js" in rendered
    assert "/static/plugins_app/editor/editor.css" in rendered
    assert "://" not in rendered  # served by the site itself, no CDN


def test_code_block_escapes_and_marks_read_only() -> None:
    html = code_block("if (a < b) {}", "javascript", "plugin-source")
    assert html == (
        '<pre class="plugin-source plugins-app-code-block" data-code-editor="javascript" data-readonly>'
        "if (a &lt; b) {}</pre>"
    )


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (["SyntaxError: Unexpected token ';' (line 2, column 23)"], (2, 23)),
        (["Not valid JSON: Expecting value (line 1, column 5)."], (1, 5)),
        (["Something about line 7"], (7, None)),
        (["The source is empty."], None),
        (["The source is empty.", "ReferenceError: x is not defined (line 4, column 1)"], (4, 1)),
    ],
)
def test_error_position(messages: list[str], expected: tuple[int, int | None] | None) -> None:
    position = error_position(messages)
    assert (position[:2] if position else None) == expected


# -- the plugin form ------------------------------------------------------------------------
def test_plugin_form_uses_the_editor_for_source_config_and_schema() -> None:
    form = PluginForm()
    assert form.bound_field_class is CodeEditorBoundField
    languages = {name: form.fields[name].widget.language for name in ("source", "config", "config_schema")}
    assert languages == {"source": "javascript", "config": "json", "config_schema": "json"}
    assert EDITOR_JS in str(form.media)
    assert "data-error-line" not in str(form["source"])


@pytest.mark.django_db
def test_source_error_line_and_column_reach_the_widget() -> None:
    data = {
        "name": "Bad",
        "slug": "bad",
        "priority": 100,
        "memory_limit_mb": 64,
        "timeout_ms": 1000,
        "source": "const plugin = {\n greet(n) { return n +; }\n};",
        "config": "{}",
        "config_schema": "",
    }
    form = PluginForm(data=data)
    assert not form.is_valid()
    attrs = attrs_of(str(form["source"]))
    assert attrs["data-error-line"] == "2"
    assert attrs["data-error-column"] == "23"
    assert attrs["data-error-message"].startswith("SyntaxError: Unexpected token")
    assert attrs["aria-invalid"] == "true"


@pytest.mark.django_db
def test_json_error_line_and_column_reach_the_widget() -> None:
    data = {
        "name": "Bad",
        "slug": "bad",
        "priority": 100,
        "memory_limit_mb": 64,
        "timeout_ms": 1000,
        "source": "const plugin = { ok() { return 1; } };",
        "config": '{\n  "a": 1,\n  oops\n}',
        "config_schema": "",
    }
    form = PluginForm(data=data)
    assert not form.is_valid()
    attrs = attrs_of(str(form["config"]))
    assert (attrs["data-error-line"], attrs["data-error-column"]) == ("3", "3")
    assert "data-error-line" not in attrs_of(str(form["source"]))


def test_an_error_without_a_position_adds_nothing() -> None:
    class Form(forms.Form):
        bound_field_class = CodeEditorBoundField
        code = forms.CharField(widget=CodeEditorWidget("json"))
        other = forms.CharField(widget=forms.Textarea)

    form = Form(data={"code": "", "other": ""})
    assert not form.is_valid()
    assert "data-error-line" not in str(form["code"])
    assert "data-error-line" not in str(form["other"])


# -- the vendored bundle and its build --------------------------------------------------------
def test_static_files_exist_and_are_found_by_staticfiles() -> None:
    for name in ("editor.js", "editor.css", "LICENSES.txt"):
        assert (STATIC / name).is_file(), name
    assert finders.find(EDITOR_JS) and finders.find(EDITOR_CSS)
    bundle = (STATIC / "editor.js").read_text()
    assert bundle.startswith("/* plugins_app code editor: CodeMirror 6")
    assert "PluginsAppEditor" in bundle
    assert not re.search(r"""(?:^|[^\w.])(?:import|require)\s*\(\s*["']""", bundle)  # one file, nothing loaded later


def test_licence_file_covers_codemirror_and_every_bundled_package() -> None:
    licences = (STATIC / "LICENSES.txt").read_text()
    assert "Copyright (C) 2018-2021 by Marijn Haverbeke" in licences
    assert "Permission is hereby granted, free of charge" in licences  # the MIT text itself
    lock = json.loads((BUILD / "package-lock.json").read_text())["packages"]
    listed = dict(re.findall(r"^(\S+) (\d+\.\d+\.\d+\S*) \(MIT\)$", licences, re.M))
    for name in (
        "codemirror",
        "@codemirror/view",
        "@codemirror/state",
        "@codemirror/lang-javascript",
        "@codemirror/lang-json",
        "@lezer/javascript",
        "@lezer/json",
    ):
        assert name in listed, name
    for name, version in listed.items():
        assert lock[f"node_modules/{name}"]["version"] == version, name  # the bundle is what the lock pins


def test_build_pins_exact_versions() -> None:
    package = json.loads((BUILD / "package.json").read_text())
    lock = json.loads((BUILD / "package-lock.json").read_text())
    wanted = {**package["dependencies"], **package["devDependencies"]}
    for name in ("codemirror", "@codemirror/lang-javascript", "@codemirror/lang-json", "esbuild"):
        assert name in wanted
    for name, version in wanted.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly: {version}"
    packages = lock["packages"]
    assert lock["lockfileVersion"] >= 2
    for path, entry in packages.items():
        if not path:
            continue
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", entry["version"]), path
        assert entry["integrity"].startswith("sha512-"), path
    for name, version in wanted.items():
        assert packages[f"node_modules/{name}"]["version"] == version
    script = (BUILD / "build.sh").read_text()
    assert "npm ci" in script  # installs exactly the lock file
    assert (BUILD / "build.sh").stat().st_mode & 0o111
