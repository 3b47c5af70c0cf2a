"""Plugin endpoints serve only inert content types, always with nosniff; bad results and
bad request bodies are clean HTTP errors (real V8, through the Django test client)."""

from __future__ import annotations

import json
import logging

import pytest

from plugins_app.views import INERT_CONTENT_TYPES, served_content_type

TEXT = "text/plain; charset=utf-8"


def serving(make_plugin, content_type: str, *, key: str = "body", value: str = "'<b>x</b>'") -> None:
    result = f"{{ headers: {{ 'Content-Type': {json.dumps(content_type)} }}, {key}: {value} }}"
    make_plugin(f"const plugin = {{ onRequest() {{ return {result}; }} }};", slug="r", http_enabled=True)


@pytest.mark.parametrize(
    "given",
    [
        "application/javascript",
        "text/javascript",
        "text/javascript; charset=utf-8",
        "TEXT/JAVASCRIPT",
        "application/x-javascript",
        "application/ecmascript",
        "text/css",
        "text/css; charset=utf-8",
        "application/xml",
        "text/xml",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/wasm",
        "application/pdf",
        "text/vtt",
        "multipart/x-mixed-replace; boundary=x",
        "text/plain, text/html",
        "text/javascript ; charset=utf-8",
        " text/html",
        "text/html\t",
        "",
        "; charset=utf-8",
        "text/",
        "javascript",
    ],
)
def test_active_or_unknown_types_are_served_as_text_plain(client, make_plugin, caplog, given):
    serving(make_plugin, given)
    with caplog.at_level(logging.INFO, logger="plugins_app.views"):
        response = client.get("/plugins/r/")
    assert response.status_code == 200
    assert response["Content-Type"] == TEXT
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == b"<b>x</b>"


@pytest.mark.parametrize("given", ["text/javascript", "image/svg+xml", "text/css"])
def test_json_bodies_cannot_choose_an_active_type_either(client, make_plugin, given):
    serving(make_plugin, given, key="json", value="{ a: '</script>' }")
    response = client.get("/plugins/r/")
    assert response["Content-Type"] == TEXT and json.loads(response.content) == {"a": "</script>"}


@pytest.mark.parametrize(
    "given, sent",
    [
        ("text/plain", TEXT),
        ("text/csv", "text/csv; charset=utf-8"),
        ("Text/CSV; Charset=UTF-8", "text/csv; charset=utf-8"),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("application/problem+json", "application/problem+json"),
        ("application/octet-stream", "application/octet-stream"),
        # Parameters never pass: a browser may take a media type from them.
        ('text/plain; x="a, text/html"', TEXT),
    ],
)
def test_inert_types_are_served_in_our_own_words(client, make_plugin, given, sent):
    serving(make_plugin, given)
    response = client.get("/plugins/r/")
    assert response["Content-Type"] == sent
    assert response["X-Content-Type-Options"] == "nosniff"


def test_html_is_served_only_as_a_sandboxed_document(client, make_plugin):
    serving(make_plugin, "text/html", value="'<script>alert(document.cookie)</script>'")
    response = client.get("/plugins/r/")
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_allowlist_is_what_the_docs_say():
    assert INERT_CONTENT_TYPES == {
        "text/plain",
        "text/csv",
        "text/html",
        "application/json",
        "application/octet-stream",
    }
    assert served_content_type(None, "application/json") == "application/json"
    assert served_content_type("image/png", "application/json") == TEXT


def test_refused_methods_get_nosniff_too(client, make_plugin):
    serving(make_plugin, "text/plain")
    response = client.generic("TRACE", "/plugins/r/")
    assert response.status_code == 405 and response["X-Content-Type-Options"] == "nosniff"


# -- results a plugin controls ----------------------------------------------------------------

RESPONDERS = {
    "deep json": "(() => { let a = []; for (let i = 0; i < 10000; i++) a = [a]; return { json: a }; })()",
    "deep result": "(() => { let a = []; for (let i = 0; i < 100000; i++) a = [a]; return a; })()",
    "lone surrogate body": "{ body: 'a\\ud800' }",
    "lone surrogate json": "{ json: { x: '\\udc00' } }",
    "lone surrogate header": "{ headers: { ETag: '\\ud800' }, body: '' }",
    "huge status": "{ status: 'x'.repeat(500000) }",
    "newline keys": "{ ['a\\r\\nFAKE LOG LINE']: 1 }",
    "headers list": "{ headers: [['a', 'b']], body: '' }",
    "header names": "{ headers: { ['x\\r\\nSet-Cookie']: 'a', ['\\u2028']: 'b' }, body: '' }",
}


@pytest.mark.parametrize("name", RESPONDERS)
def test_bad_results_are_clean_errors(client, make_plugin, caplog, name):
    make_plugin(f"const plugin = {{ onRequest() {{ return {RESPONDERS[name]}; }} }};", slug="r", http_enabled=True)
    with caplog.at_level(logging.DEBUG):
        response = client.get("/plugins/r/")
    assert response.status_code in (200, 502)
    assert any(getattr(r, "plugin", None) == "r" for r in caplog.records)  # operators learn about it
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response
    assert [r for r in caplog.records if r.exc_info] == []
    for record in (r for r in caplog.records if getattr(r, "plugin", None) == "r"):
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message and "\u2028" not in message
        assert len(message) < 5000


# -- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ["[" * 10_000 + "]" * 10_000, "[" * 129 + "]" * 129, '{"a": "\\ud800"}', '["\\udfff"]']
)
def test_json_bodies_plugins_cannot_be_given_are_400(client, make_plugin, body):
    make_plugin("const plugin = { onRequest(req) { return { json: req.body }; } };", slug="r", http_enabled=True)
    response = client.put("/plugins/r/", body, content_type="application/json")
    assert response.status_code == 400
    assert response["X-Content-Type-Options"] == "nosniff"
