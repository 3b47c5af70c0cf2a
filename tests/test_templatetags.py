"""{% plugin_hook %}: escaping, sanitizing, model instances as exposed data, failures
(real V8, no mocks)."""

from __future__ import annotations

import html
import json
import logging
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.template import Context, Template
from django.utils.safestring import mark_safe

from plugins_app.exposure import exposing
from plugins_app.templatetags.plugins import plugin_data, sanitize
from project.demo.models import Note

XSS = "<script>alert(1)</script>"


def render(source: str, **context) -> str:
    return Template("{% load plugins %}" + source).render(Context(context))


def returning(js: str, hook: str = "sidebar") -> str:
    """A plugin whose ``hook(...args)`` returns the JS expression ``js``."""
    return f"const plugin = {{ {hook}(...args) {{ return {js}; }} }};"


def wrapped(slug: str, content: str) -> str:
    return f'<div class="plugin-hook" data-plugin="{slug}">{content}</div>'


def test_no_plugins_renders_nothing(db):
    assert render('{% plugin_hook "sidebar" %}') == ""


def test_string_result_is_escaped_text(make_plugin):
    make_plugin(returning(json.dumps(XSS + ' & <img src=x onerror=alert(1)> "q"')), slug="p")
    out = render('{% plugin_hook "sidebar" %}')
    assert out == wrapped(
        "p", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt; &quot;q&quot;"
    )
    assert "<script" not in out and "<img" not in out


def test_numbers_are_text(make_plugin):
    make_plugin(returning("args[0] * 2"), slug="p")
    assert render('{% plugin_hook "sidebar" n %}', n=21) == wrapped("p", "42")


def test_html_result_is_sanitized(make_plugin):
    dirty = (
        "<p>Hello <b>bold</b> <em>em</em></p>"
        + XSS
        + "<style>body{display:none}</style>"
        + "<iframe src='https://evil.example'></iframe>"
        + "<img src=x onerror=alert(1)>"
        + "<b onmouseover='alert(1)' style='position:fixed' class='admin' id='x'>hover</b>"
        + "<a href='javascript:alert(1)' onclick='alert(2)'>js</a>"
        + "<a href='https://example.com/' target='_blank'>ext</a>"
        + "<form action='/admin/'><input name=q></form>"
        + "<svg><script>alert(3)</script></svg><!-- comment -->"
    )
    make_plugin(returning(json.dumps({"html": dirty})), slug="p")
    out = render('{% plugin_hook "sidebar" %}')
    assert out.startswith('<div class="plugin-hook" data-plugin="p"><p>Hello <b>bold</b> <em>em</em></p>')
    lowered = out.lower()
    for bad in (
        "<script",
        "alert(1)",
        "<style",
        "<iframe",
        "<img",
        "onerror",
        "onmouseover",
        "onclick",
        "javascript:",
        "style=",
        "class='admin'",
        'id="x"',
        "<form",
        "<input",
        "<svg",
        "comment",
        "target",
    ):
        assert bad not in lowered, bad
    assert "<b>hover</b>" in out
    assert '<a rel="noopener noreferrer">js</a>' in out
    assert '<a href="https://example.com/" rel="noopener noreferrer">ext</a>' in out


def test_sanitize_directly():
    assert sanitize('<a href="/local">x</a>') == '<a href="/local" rel="noopener noreferrer">x</a>'
    assert sanitize("<img src=x onerror=alert(1)>") == ""
    assert sanitize("<p title='t' onclick='x'>a</p>") == '<p title="t">a</p>'
    assert sanitize("1 < 2 & 3 > 2") == "1 &lt; 2 &amp; 3 &gt; 2"


def test_html_that_tries_to_break_out_of_the_wrapper(make_plugin):
    make_plugin(returning(json.dumps({"html": "</div><script>alert(1)</script><div>"})), slug="p")
    out = render('{% plugin_hook "sidebar" %}')
    # The fragment is parsed and re-serialized balanced: the stray </div> cannot close ours.
    assert out == wrapped("p", "<div></div>")


def test_null_empty_and_other_shapes_render_nothing(make_plugin, caplog):
    make_plugin(returning("null"), slug="a")
    make_plugin(returning("''"), slug="b")
    make_plugin(returning("[1, 2]"), slug="c")
    make_plugin(returning("{ html: '<b>x</b>', extra: 1 }"), slug="d")
    make_plugin(returning("{ html: 5 }"), slug="e")
    make_plugin(returning("true"), slug="f")
    make_plugin(returning("'shown'"), slug="g")
    with caplog.at_level(logging.WARNING, logger="plugins_app.templatetags"):
        assert render('{% plugin_hook "sidebar" %}') == wrapped("g", "shown")
    assert len([r for r in caplog.records if r.name == "plugins_app.templatetags"]) == 4


def test_failing_plugin_renders_nothing_and_others_still_render(make_plugin, caplog):
    make_plugin(returning("'first'"), slug="a", priority=1)
    make_plugin("const plugin = { sidebar() { throw new Error('boom'); } };", slug="b", priority=2)
    make_plugin("const plugin = { sidebar() { while (true) {} } };", slug="c", priority=3, timeout_ms=100)
    make_plugin(returning("{ html: '<i>last</i>' }"), slug="d", priority=4)
    make_plugin(returning("'disabled'"), slug="e", enabled=False)
    with caplog.at_level(logging.WARNING, logger="plugins_app.hooks"):
        out = render('{% plugin_hook "sidebar" %}')
    assert out == wrapped("a", "first") + wrapped("d", "<i>last</i>")
    assert "boom" in caplog.text  # logged, not rendered


def test_arguments_are_json_data(make_plugin):
    make_plugin(returning("JSON.stringify(args)"), slug="p")
    out = render(
        '{% plugin_hook "sidebar" d l s n "lit" %}',
        d={"k": [1, None, True], "safe": mark_safe("<b>")},
        l=(1, 2),
        s="x",
        n=Decimal("1.50"),
    )
    assert json.loads(html.unescape(out.removeprefix(wrapped("p", "")[:-6]).removesuffix("</div>"))) == [
        {"k": [1, None, True], "safe": "<b>"},
        [1, 2],
        "x",
        "1.50",
        "lit",
    ]


def test_hook_name_from_a_variable(make_plugin):
    make_plugin(returning("'footer!'", hook="footer"), slug="p")
    assert render("{% plugin_hook name %}", name="footer") == wrapped("p", "footer!")


# -- model instances -------------------------------------------------------------------


def echo_instance(make_plugin) -> None:
    make_plugin(returning("JSON.stringify(args[0])"), slug="p")


def rendered_json(out: str) -> object:
    prefix = '<div class="plugin-hook" data-plugin="p">'
    assert out.startswith(prefix) and out.endswith("</div>")
    return json.loads(html.unescape(out[len(prefix) : -len("</div>")]))


def test_user_instance_becomes_its_exposed_fields_only(make_plugin):
    """The demo exposes auth.User as id and username: no email, names, flags, dates or hash."""
    echo_instance(make_plugin)
    user = User.objects.create_user("alice", email="alice@example.com", password="pw-alice-123", first_name="Alice")
    out = render('{% plugin_hook "sidebar" user %}', user=user)
    assert rendered_json(out) == {"id": user.pk, "username": "alice"}
    for secret in ("alice@example.com", "Alice", "md5$", "password", "is_superuser"):
        assert secret not in out


def test_foreign_keys_are_primary_keys_and_dates_iso(make_plugin):
    echo_instance(make_plugin)
    author = User.objects.create_user("bob")
    note = Note.objects.create(author=author, title="<b>T</b>", body="text", score=3)
    data = rendered_json(render('{% plugin_hook "sidebar" note %}', note=note))
    assert data == {
        "id": note.pk,
        "author": author.pk,
        "title": "<b>T</b>",
        "body": "text",
        "score": 3,
        "created_at": note.created_at.isoformat(),
    }
    assert plugin_data([note, {"n": note}]) == [data, {"n": data}]


def test_exposure_decides_what_is_passed(make_plugin):
    echo_instance(make_plugin)
    user = User.objects.create_user("carol", email="c@example.com")
    with exposing(("auth.User", {"read": ["username", "email"]})):
        assert rendered_json(render('{% plugin_hook "sidebar" u %}', u=user)) == {
            "username": "carol",
            "email": "c@example.com",
        }


@pytest.mark.parametrize("value", ["group", "object", "set", "nan"])
def test_unexposed_model_or_non_json_value(make_plugin, settings, caplog, value):
    echo_instance(make_plugin)
    arg = {
        "group": lambda: Group.objects.create(name="g"),
        "object": object,
        "set": lambda: {1},
        "nan": lambda: float("nan"),
    }[value]()
    settings.DEBUG = True
    with pytest.raises(TypeError):
        render('{% plugin_hook "sidebar" "ok" arg %}', arg=arg)
    settings.DEBUG = False
    with caplog.at_level(logging.WARNING, logger="plugins_app.templatetags"):
        assert render('before{% plugin_hook "sidebar" "ok" arg %}after', arg=arg) == "beforeafter"
    assert "not run" in caplog.text
