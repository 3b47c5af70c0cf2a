"""The code editor widget: a textarea that CodeMirror 6 enhances into an editor.

``CodeEditorWidget(language="javascript" | "json")`` renders a plain ``<textarea>``
(monospace, no soft wrap) marked ``data-code-editor="<language>"``; its media,
``plugins_app/editor/editor.js`` and ``editor.css`` (a vendored CodeMirror build, see
``plugins_app/static_src/editor/``), replace it with an editor with syntax highlighting,
line numbers and Tab indenting, and keep the textarea's value in sync, so the form posts
the same field with or without JavaScript.

A form whose ``bound_field_class`` is :class:`CodeEditorBoundField` also passes the
position of a field's validation error to the editor (``data-error-line``,
``data-error-column``, ``data-error-message``), read from messages that say
"line N, column M" (the trial load's script errors and the JSON fields' syntax errors),
and the editor marks that line.

Scripts on the page reach the editors through ``window.PluginsAppEditor`` (``get(selector)``
returns a handle with ``getValue()``, ``setValue()``, ``markError(line, column, message)``,
``clearError()``); see ``plugins_app/static_src/editor/src/editor.js``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.forms.boundfield import BoundField
from django.utils.html import format_html
from django.utils.safestring import SafeString

LANGUAGES = ("javascript", "json")
EDITOR_JS = "plugins_app/editor/editor.js"
EDITOR_CSS = "plugins_app/editor/editor.css"

# "SyntaxError: Unexpected token ';' (line 2, column 23)", "Not valid JSON: ... (line 1, column 5)."
_POSITION = re.compile(r"\bline (?P<line>\d+)(?:, column (?P<column>\d+))?")


def editor_media() -> forms.Media:
    """The editor's script and stylesheet, for pages that show code without the widget."""
    return forms.Media(js=[EDITOR_JS], css={"all": [EDITOR_CSS]})


def error_position(messages: Iterable[object]) -> tuple[int, int | None, str] | None:
    """``(line, column or None, message)`` of the first message that names a line
    (messages are taken as text: strings, lazy strings, an ``ErrorList``'s items)."""
    for message in messages:
        match = _POSITION.search(str(message))
        if match:
            column = match.group("column")
            return int(match.group("line")), int(column) if column else None, str(message)
    return None


class CodeEditorWidget(forms.Textarea):
    """A textarea for code, enhanced into a CodeMirror editor by its media.

    ``language`` picks the highlighting (and, for JSON, a live syntax check);
    ``readonly=True`` shows the code in a read-only editor (the textarea is ``readonly``).
    """

    def __init__(
        self, language: str = "javascript", attrs: dict[str, Any] | None = None, *, readonly: bool = False
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        self.language = language
        self.readonly = readonly
        defaults: dict[str, Any] = {"rows": 24 if language == "javascript" else 8, "cols": 100}
        super().__init__({**defaults, **(attrs or {})})

    @property
    def media(self) -> forms.Media:
        return editor_media()

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        classes = widget_attrs.get("class", "").split()
        widget_attrs.update(
            {
                "class": " ".join(dict.fromkeys([*classes, "plugins-app-code"])),
                "data-code-editor": self.language,
                "spellcheck": "false",
                "autocapitalize": "off",
                "autocomplete": "off",
                "wrap": "off",  # no soft wrap, so line numbers in errors match what is seen
            }
        )
        if self.readonly:
            widget_attrs["readonly"] = True
        return context


class CodeEditorBoundField(BoundField):
    """A bound field that tells a :class:`CodeEditorWidget` where its validation error is.

    Set it as a form's ``bound_field_class``; fields with other widgets render as usual.
    """

    def build_widget_attrs(self, attrs: dict[str, Any], widget: forms.Widget | None = None) -> dict[str, Any]:
        attrs = super().build_widget_attrs(attrs, widget)
        widget = widget or self.field.widget
        if isinstance(widget, CodeEditorWidget) and self.form.is_bound and self.errors:
            position = error_position(list(self.errors))
            if position:
                line, column, message = position
                attrs["data-error-line"] = str(line)
                if column is not None:
                    attrs["data-error-column"] = str(column)
                attrs["data-error-message"] = message
        return attrs


def code_block(code: str, language: str = "javascript", css_class: str = "") -> SafeString:
    """Code shown read-only: a ``<pre>`` that the editor script turns into a read-only
    editor with line numbers and highlighting (include :func:`editor_media` on the page)."""
    return format_html(
        '<pre class="{}" data-code-editor="{}" data-readonly>{}</pre>',
        " ".join(c for c in (css_class, "plugins-app-code-block") if c),
        language,
        code,
    )
