"""What plugins write reaches the log escaped and tagged with the plugin's slug, and what
plugins are told never quotes Python internals (real V8)."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import User

from plugins_app import hooks
from plugins_app.background import execute_action
from plugins_app.host_api import HOST_FUNCTIONS, HostContext, host_function
from plugins_app.host_api.log import log_safe
from plugins_app.models import PluginGrant

NASTY = "a\r\nFAKE\x1b[31mred\x7f\x85\x9b\u2028\u2029\u202eb\ttab"
ESCAPED = "a\\r\\nFAKE\\x1b[31mred\\x7f\\x85\\x9b\\u2028\\u2029\\u202eb\\ttab"


def one_line(records) -> None:
    for record in records:
        message = record.getMessage()
        assert not any(ch in message for ch in "\r\n\x1b\x7f\x85\u2028\u2029"), message


def test_log_safe():
    assert log_safe(NASTY) == ESCAPED
    assert log_safe("plain text, ünïcode 😀 and \\n") == "plain text, ünïcode 😀 and \\n"
    assert log_safe("\x00\x1f\ud800") == "\\x00\\x1f\\ud800"
    assert log_safe("x" * 10 + "\n", limit=10) == "x" * 10 + "…"


@pytest.mark.parametrize(
    "method, level",
    [
        ("log", logging.INFO),
        ("console.warn", logging.WARNING),
        ("console.error", logging.ERROR),
        ("console.debug", logging.DEBUG),
    ],
)
def test_plugin_log_lines_are_escaped_and_tagged(make_plugin, caplog, method, level):
    make_plugin(f"const plugin = {{ run(text) {{ {method}(text, {{ k: text }}); return 1; }} }};", slug="noisy")
    with caplog.at_level(logging.DEBUG, logger="plugins_app.plugins"):
        result = hooks.run("noisy", "run", NASTY)
    [record] = [r for r in caplog.records if r.name == "plugins_app.plugins.noisy"]
    assert record.levelno == level
    assert record.plugin == "noisy"
    as_json = json.dumps({"k": NASTY}, ensure_ascii=False, separators=(",", ":"))  # as JSON.stringify writes it
    assert record.getMessage() == ESCAPED + " " + log_safe(as_json)
    one_line([record])
    # Callers get the line as the plugin wrote it: it is data.
    assert [line.message for line in result.logs] == [NASTY + " " + as_json]


THROWER = (
    "const plugin = { fail(text) { throw new Error(text); }, onRequest(req) { throw new Error(req.query.m[0]); } };"
)


def test_failures_with_plugin_text_are_logged_on_one_line_with_the_slug(make_plugin, caplog, client):
    make_plugin(THROWER, slug="thrower", http_enabled=True)
    with caplog.at_level(logging.DEBUG):
        assert not hooks.do_action("fail", NASTY)[0].ok
        assert hooks.apply_filters("fail", NASTY) == NASTY
        runs = execute_action("fail", [NASTY])
        assert client.get("/plugins/thrower/", {"m": NASTY}).status_code == 502
    about = [r for r in caplog.records if getattr(r, "plugin", None) == "thrower"]
    assert {r.name for r in about} >= {"plugins_app.hooks", "plugins_app.background", "plugins_app.views"}
    assert all(ESCAPED in r.getMessage() for r in about if r.levelno >= logging.WARNING)
    one_line(about)
    assert ESCAPED in runs[0].error and "\n" not in runs[0].error


def test_log_line_cap_still_applies(make_plugin, caplog, settings):
    settings.PLUGINS_APP = {"MAX_LOG_LINE_CHARS": 5}
    make_plugin("const plugin = { run() { log('\\n'.repeat(10)); return 1; } };", slug="capped")
    with caplog.at_level(logging.INFO, logger="plugins_app.plugins"):
        result = hooks.run("capped", "run")
    assert result.logs[0].message == "\n" * 5 + "…"
    assert caplog.records[-1].getMessage() == "\\n" * 5 + "…"


# -- errors plugins see -------------------------------------------------------------------------

PYTHON_WORDS = ("Traceback", "positional argument", ".py", "plugins_app.", "Field '", "object is not", "Error(")

PROBE = """
const attempt = (fn) => { try { fn(); return "ok"; } catch (e) { return e.name + ": " + e.message; } };
const plugin = {
  run() {
    return [
      attempt(() => storage.get()),
      attempt(() => storage.get("a", "b", "c")),
      attempt(() => storage.set()),
      attempt(() => storage.incr("k", 1, 2)),
      attempt(() => db.query("auth.User", { where: { id: "abc" } })),
      attempt(() => db.query("auth.User", { where: { id__in: 5 } })),
      attempt(() => db.count("auth.User", { id__gt: "x" })),
      attempt(() => db.query("auth.User", { where: { id: 1e300 } })),
      attempt(() => db.get("auth.User", { username__in: [1, [2]] })),
      attempt(() => { storage.set("n", "text"); storage.incr("n"); }),
    ];
  },
};
"""


def test_host_errors_are_written_by_us(make_plugin, caplog, db):
    plugin = make_plugin(PROBE, slug="probe")
    User.objects.create_user("ada", password="x" * 12)
    g = PluginGrant(plugin=plugin, model="auth.User", read=["id", "username"])
    g.full_clean()
    g.save()
    with caplog.at_level(logging.DEBUG):
        messages = hooks.call("probe", "run")
    assert messages[:4] == [
        "TypeError: storage.get() takes 1 argument (0 given)",
        "TypeError: storage.get() takes 1 argument (3 given)",
        "TypeError: storage.set() takes 1 to 2 arguments (0 given)",
        "TypeError: storage.incr() takes 1 to 2 arguments (3 given)",
    ]
    assert messages[4] == 'ValidationError: invalid value for "id" in where on "auth.User"'
    assert messages[5] == 'ValidationError: invalid value for "id__in" in where on "auth.User"'
    assert messages[6] == 'ValidationError: invalid value for "id__gt" in where on "auth.User"'
    assert messages[7] == "ok"  # out of range: Django matches nothing
    assert messages[8].startswith("TypeError: ")
    assert messages[9] == 'TypeError: storage key "n" does not hold an integer'
    for message in messages:
        assert not any(word in message for word in PYTHON_WORDS), message
    assert [r for r in caplog.records if r.exc_info] == []


def test_a_host_bug_is_logged_with_its_traceback_and_the_plugin_sees_a_generic_error(caplog):
    @host_function("test.broken")
    def broken(ctx: HostContext) -> None:
        raise KeyError("/srv/site/secret.py: internal detail")

    try:
        with caplog.at_level(logging.ERROR, logger="plugins_app.host_api"):
            answer = json.loads(HostContext("p").handle("test.broken", "[]"))
    finally:
        del HOST_FUNCTIONS["test.broken"]
    assert answer == {"error": {"name": "HostError", "message": "test.broken() failed on the host"}}
    [record] = caplog.records
    assert record.exc_info and record.plugin == "p"


def test_unknown_host_function_names_are_quoted_as_data():
    answer = json.loads(HostContext("p").handle("os.system\n\u2028", "[]"))
    assert answer["error"]["name"] == "PermissionDenied"
    assert answer["error"]["message"] == "plugin 'p' may not call \"os.system\\n\\u2028\""
