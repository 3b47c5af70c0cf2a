"""Plugin-served endpoints, filter_value and apply_filters_to_context, through the Django
test client and real sandbox processes (real V8, no mocks)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User
from django.core.handlers.asgi import ASGIRequest
from django.template.response import TemplateResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from plugins_app import views
from plugins_app.decorators import apply_filters_to_context, is_json_data
from plugins_app.exceptions import PluginDataError, PluginScriptError
from plugins_app.models import Plugin, StorageItem

ECHO = "const plugin = { onRequest(req) { return { status: 200, json: req }; } };"


def responder(result_js: str) -> str:
    """A plugin whose onRequest returns the JS expression ``result_js``."""
    return f"const plugin = {{ onRequest(req) {{ return {result_js}; }} }};"


@pytest.fixture
def echo(make_plugin) -> Plugin:
    return make_plugin(ECHO, slug="echo", http_enabled=True)


def sent(response) -> dict:
    """What the echo plugin received."""
    assert response.status_code == 200, response.content
    return json.loads(response.content)


# -- routing and who may serve ------------------------------------------------------


def test_urls():
    assert reverse("plugins_app:endpoint", kwargs={"slug": "echo"}) == "/plugins/echo/"
    assert reverse("plugins_app:endpoint", kwargs={"slug": "echo", "path": "a/b"}) == "/plugins/echo/a/b"


@pytest.mark.parametrize(
    "case", ["no-capability", "disabled", "paused", "no-onRequest", "not-installed", "bad-slug-chars"]
)
def test_404_unless_capable_enabled_unpaused_with_onrequest(client, make_plugin, case):
    if case == "no-capability":
        make_plugin(ECHO, slug="target", http_enabled=False)
    elif case == "disabled":
        make_plugin(ECHO, slug="target", http_enabled=True, enabled=False)
    elif case == "paused":
        plugin = make_plugin(ECHO, slug="target", http_enabled=True)
        Plugin.objects.filter(pk=plugin.pk).update(paused_at=timezone.now(), paused_reason="test")
    elif case == "no-onRequest":
        make_plugin("const plugin = { other(req) { return {status: 200}; } };", slug="target", http_enabled=True)
    url = "/plugins/ta%20rget/" if case == "bad-slug-chars" else "/plugins/target/"
    baseline = client.get("/plugins/never-installed/x")
    for method in ("get", "post", "put", "delete"):
        response = getattr(client, method)(url + "some/path")
        assert response.status_code == 404
        # Nothing tells which check failed: the same page as for an unknown plugin.
        assert response.content == baseline.content
    assert client.get(url).status_code == 404


def test_capable_plugin_serves_its_root_and_sub_paths(client, echo):
    assert sent(client.get("/plugins/echo/"))["path"] == "/"
    assert sent(client.get("/plugins/echo/a/b/c.txt"))["path"] == "/a/b/c.txt"
    assert sent(client.get("/plugins/echo/d%C3%A9j%C3%A0/"))["path"] == "/déjà/"
    # Without the trailing slash: Django's APPEND_SLASH redirect, as for any other view.
    response = client.get("/plugins/echo")
    assert response.status_code == 301 and response["Location"] == "/plugins/echo/"


# -- what the plugin receives --------------------------------------------------------


def test_request_fields_arrive_and_only_allowed_headers(client, echo):
    client.cookies["sessionid"] = "not-for-plugins"
    response = client.get(
        "/plugins/echo/items/7?x=1&x=2&y=&z=%C3%A9",
        headers={
            "Accept": "application/json",
            "Accept-Language": "de",
            "User-Agent": "pytest-agent",
            "If-None-Match": '"v1"',
            "Cookie": "secret=abc",
            "Authorization": "Bearer top-secret",
            "Proxy-Authorization": "Basic eHg=",
            "X-CSRFToken": "tok",
            "X-Forwarded-For": "10.0.0.1",
            "Referer": "https://example.com/private?token=1",
        },
    )
    req = sent(response)
    assert req == {
        "method": "GET",
        "path": "/items/7",
        "query": {"x": ["1", "2"], "y": [""], "z": ["é"]},
        "headers": {
            "accept": "application/json",
            "accept-language": "de",
            "user-agent": "pytest-agent",
            "if-none-match": '"v1"',
        },
        "body": None,
        "user": None,
    }
    assert "top-secret" not in response.content.decode() and "abc" not in response.content.decode()


def test_credentials_never_reach_a_plugin_even_if_allowlisted(client, echo, settings):
    settings.PLUGINS_APP = {"HTTP_ALLOWED_REQUEST_HEADERS": ["cookie", "authorization", "x-csrftoken", "x-custom"]}
    req = sent(
        client.get(
            "/plugins/echo/", headers={"Cookie": "a=b", "Authorization": "x", "X-CSRFToken": "t", "X-Custom": "ok"}
        )
    )
    assert req["headers"] == {"x-custom": "ok"}


def test_user_id_is_passed_when_logged_in(client, echo):
    user = User.objects.create_user("alice", password="pw-alice-123")
    client.force_login(user)
    assert sent(client.get("/plugins/echo/"))["user"] == user.pk
    client.logout()
    assert sent(client.get("/plugins/echo/"))["user"] is None


def test_json_body_is_decoded(client, echo):
    payload = {"a": [1, 2.5, None, True], "s": "Grüße </script>"}
    req = sent(client.post("/plugins/echo/submit", payload, content_type="application/json"))
    assert req["method"] == "POST" and req["body"] == payload
    assert req["headers"]["content-type"] == "application/json"
    req = sent(client.put("/plugins/echo/", '"just a string"', content_type="application/merge-patch+json"))
    assert req["method"] == "PUT" and req["body"] == "just a string"


def test_text_body_is_passed_as_text(client, echo):
    req = sent(client.post("/plugins/echo/", "hello\nwörld", content_type="text/plain; charset=utf-8"))
    assert req["body"] == "hello\nwörld"
    req = sent(client.patch("/plugins/echo/", "a=1&b=2", content_type="application/x-www-form-urlencoded"))
    assert req["method"] == "PATCH" and req["body"] == "a=1&b=2"


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"\xff\xfe not utf-8", "text/plain"),
        (b"{not json", "application/json"),
        (b'{"n": NaN}', "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ],
    ids=["not-utf8", "bad-json", "nan", "deep-json"],
)
def test_undecodable_body_is_400_without_calling_the_plugin(client, make_plugin, settings, body, content_type):
    settings.PLUGINS_APP = {"HTTP_MAX_BODY_BYTES": 1024 * 1024}
    plugin = make_plugin(
        "const plugin = { onRequest(req) { storage.set('called', true); return { body: 'ok' }; } };",
        slug="spy",
        http_enabled=True,
    )
    response = client.post("/plugins/spy/", body, content_type=content_type)
    assert response.status_code == 400
    assert not StorageItem.objects.filter(plugin=plugin).exists()


def test_multipart_is_refused(client, echo):
    response = client.post("/plugins/echo/", {"field": "value"})  # the test client's default: multipart
    assert response.status_code == 415


def test_body_over_the_cap_is_413_without_calling_the_plugin(client, make_plugin, settings):
    settings.PLUGINS_APP = {"HTTP_MAX_BODY_BYTES": 10}
    plugin = make_plugin(
        "const plugin = { onRequest(req) { storage.set('called', true); return { json: req.body }; } };",
        slug="spy",
        http_enabled=True,
    )
    assert client.post("/plugins/spy/", "x" * 10, content_type="text/plain").content == b'"xxxxxxxxxx"'
    StorageItem.objects.filter(plugin=plugin).delete()
    response = client.post("/plugins/spy/", "x" * 11, content_type="text/plain")
    assert response.status_code == 413
    assert response["X-Content-Type-Options"] == "nosniff"
    assert not StorageItem.objects.filter(plugin=plugin).exists()


def asgi_request(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> ASGIRequest:
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
    request = ASGIRequest(scope, io.BytesIO(body))
    request.user = AnonymousUser()
    request._dont_enforce_csrf_checks = True
    return request


@pytest.mark.parametrize("declared", [None, b"5"], ids=["no-content-length", "lying-content-length"])
def test_body_cap_also_applies_to_what_is_actually_read(make_plugin, settings, declared):
    """Under ASGI the body stream is not cut at Content-Length: the cap must hold on the
    bytes read, whatever the header says (or when there is none)."""
    settings.PLUGINS_APP = {"HTTP_MAX_BODY_BYTES": 10}
    plugin = make_plugin(
        "const plugin = { onRequest(req) { storage.set('called', true); return { json: req.body }; } };",
        slug="spy",
        http_enabled=True,
    )
    headers = [(b"content-type", b"text/plain")] + ([(b"content-length", declared)] if declared else [])
    response = views.endpoint(asgi_request("/plugins/spy/", b"y" * 11, headers), slug="spy")
    assert response.status_code == 413
    assert not StorageItem.objects.filter(plugin=plugin).exists()
    response = views.endpoint(asgi_request("/plugins/spy/", b"y" * 10, headers[:1]), slug="spy")
    assert response.status_code == 200 and json.loads(response.content) == "y" * 10


def test_invalid_content_length_is_400(make_plugin):
    make_plugin(ECHO, slug="echo", http_enabled=True)
    request = asgi_request("/plugins/echo/", b"{}", [(b"content-length", b"-1")])
    assert views.endpoint(request, slug="echo").status_code == 400


def test_unsafe_methods_need_a_csrf_token(echo):
    client = Client(enforce_csrf_checks=True)
    assert client.get("/plugins/echo/").status_code == 200
    assert client.post("/plugins/echo/", {}, content_type="application/json").status_code == 403
    assert client.delete("/plugins/echo/").status_code == 403
    client.cookies["csrftoken"] = "a" * 32
    response = client.post(
        "/plugins/echo/", {"x": 1}, content_type="application/json", headers={"X-CSRFToken": "a" * 32}
    )
    assert response.status_code == 200
    req = json.loads(response.content)
    assert req["body"] == {"x": 1} and "x-csrftoken" not in req["headers"] and "cookie" not in req["headers"]


@pytest.mark.django_db(transaction=True)
def test_under_asgi(make_plugin, settings):
    """The endpoint is a sync view; under ASGI it runs in a worker thread per request."""
    from django.test import AsyncClient

    settings.PLUGINS_APP = {"HTTP_MAX_BODY_BYTES": 100}
    make_plugin(ECHO, slug="echo", http_enabled=True)

    async def main():
        client = AsyncClient()
        ok = await client.post(
            "/plugins/echo/x?q=1", {"a": 1}, content_type="application/json", headers={"Authorization": "x"}
        )
        big = await client.post("/plugins/echo/", "z" * 101, content_type="text/plain")
        return ok, big

    # async_to_sync (not asyncio.run): the sync view then runs on this thread, with the
    # test's own database connection, instead of leaving one open in another thread.
    ok, big = async_to_sync(main)()
    assert ok.status_code == 200
    assert ok.json() == {
        "method": "POST",
        "path": "/x",
        "query": {"q": ["1"]},
        "headers": {"content-type": "application/json"},
        "body": {"a": 1},
        "user": None,
    }
    assert big.status_code == 413


def test_other_methods_are_405(client, echo):
    assert client.generic("TRACE", "/plugins/echo/").status_code == 405


# -- what the plugin may answer ------------------------------------------------------


def test_body_response_defaults(client, make_plugin):
    make_plugin(responder("{ status: 201, body: 'créé <b>' }"), slug="r", http_enabled=True)
    response = client.get("/plugins/r/")
    assert response.status_code == 201
    assert response.content == "créé <b>".encode()
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"


def test_json_response_defaults(client, make_plugin):
    make_plugin(responder("{ json: { ok: true, list: [1, 'two'] } }"), slug="r", http_enabled=True)
    response = client.get("/plugins/r/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"ok": True, "list": [1, "two"]}
    assert response["X-Content-Type-Options"] == "nosniff"


def test_empty_response_and_head(client, make_plugin):
    make_plugin(
        responder("{ status: req.method === 'HEAD' ? 200 : 204, body: 'content' }"), slug="r", http_enabled=True
    )
    assert client.get("/plugins/r/").status_code == 204 and client.get("/plugins/r/").content == b""
    head = client.head("/plugins/r/")
    assert head.status_code == 200 and head.content == b""


def test_plugin_cannot_set_cookies_or_arbitrary_headers(client, make_plugin):
    headers = {
        "Set-Cookie": "sessionid=evil; Path=/",
        "set-cookie2": "a=b",
        "X-Evil": "1",
        "X-Frame-Options": "ALLOWALL",
        "X-Content-Type-Options": "sniff",
        "Content-Security-Policy": "default-src *",
        "Access-Control-Allow-Origin": "*",
        "Strict-Transport-Security": "max-age=0",
        "Refresh": "0; url=https://evil.example/",
        "Content-Length": "1",
        "Cache-Control": "no-store",
        "ETag": '"v1"',
        "Content-Language": "de",
        "Content-Type": "text/html",
    }
    make_plugin(
        responder(f"{{ status: 200, headers: {json.dumps(headers)}, body: '<p>hi</p>' }}"), slug="r", http_enabled=True
    )
    response = client.get("/plugins/r/")
    assert response.status_code == 200
    assert not response.cookies
    assert "Set-Cookie" not in response and "set-cookie2" not in response
    for name in ("X-Evil", "Access-Control-Allow-Origin", "Strict-Transport-Security", "Refresh"):
        assert name not in response
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Cache-Control"] == "no-store"
    assert response["ETag"] == '"v1"'
    assert response["Content-Language"] == "de"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Length"] == str(len(b"<p>hi</p>"))


@pytest.mark.parametrize(
    "given, sent",
    [
        ("text/csv", "text/csv; charset=utf-8"),
        ("text/html; charset=UTF-8", "text/html; charset=utf-8"),
        ("application/xml", "text/plain; charset=utf-8"),  # not inert: see test_endpoint_types.py
        ("text/html; charset=latin-1", "text/plain; charset=utf-8"),  # would garble the UTF-8 body
        ("not a media type", "text/plain; charset=utf-8"),
    ],
)
def test_content_type(client, make_plugin, given, sent):
    make_plugin(
        responder(f"{{ headers: {{ 'content-type': {json.dumps(given)} }}, body: 'é' }}"), slug="r", http_enabled=True
    )
    response = client.get("/plugins/r/")
    assert response["Content-Type"] == sent and response.content == "é".encode()


def test_allowlist_setting_cannot_unlock_forbidden_headers(client, make_plugin, settings):
    settings.PLUGINS_APP = {
        "HTTP_ALLOWED_RESPONSE_HEADERS": ["set-cookie", "x-total-count", "access-control-allow-origin"]
    }
    headers = {
        "Set-Cookie": "a=b",
        "X-Total-Count": "42",
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": "public",
    }
    make_plugin(responder(f"{{ headers: {json.dumps(headers)}, json: [] }}"), slug="r", http_enabled=True)
    response = client.get("/plugins/r/")
    assert response["X-Total-Count"] == "42"
    assert not response.cookies and "Set-Cookie" not in response
    assert "Access-Control-Allow-Origin" not in response and "Cache-Control" not in response


@pytest.mark.parametrize(
    "location, kept",
    [
        ("/plugins/r/done?x=1", True),
        ("https://evil.example/", False),
        ("//evil.example/", False),
        ("/\\evil.example/", False),
        ("javascript:alert(1)", False),
        ("http:/evil.example", False),
        ("relative/path", False),
        ("/ok\r\nSet-Cookie: a=b", False),
    ],
)
def test_location_only_as_a_relative_url(client, make_plugin, location, kept):
    make_plugin(
        responder(f"{{ status: 303, headers: {{ Location: {json.dumps(location)} }} }}"), slug="r", http_enabled=True
    )
    response = client.get("/plugins/r/")
    assert response.status_code == 303
    assert not response.cookies
    if kept:
        assert response["Location"] == location
    else:
        assert "Location" not in response


def test_header_values_must_be_strings_of_visible_ascii(client, make_plugin):
    make_plugin(
        responder(
            "{ headers: { 'Cache-Control': 5, ETag: 'caf\u00e9', 'Content-Language': 'en\\nX-Evil: 1' }, body: '' }"
        ),
        slug="r",
        http_enabled=True,
    )
    response = client.get("/plugins/r/")
    assert response.status_code == 200
    assert "Cache-Control" not in response and "ETag" not in response and "Content-Language" not in response
    assert "X-Evil" not in response


@pytest.mark.parametrize(
    "result",
    [
        "{ status: 99 }",
        "{ status: 100 }",
        "{ status: 600 }",
        "{ status: '200' }",
        "{ status: 200.5 }",
        "{ status: true }",
        "{ status: null }",
        "'just a string'",
        "null",
        "[200, {}, 'body']",
        "{ status: 200, body: 'a', json: 1 }",
        "{ status: 200, body: { not: 'a string' } }",
        "{ status: 200, headers: 'nope', body: '' }",
        "{ status: 200, bdy: 'typo' }",
    ],
)
def test_invalid_result_is_502(client, make_plugin, result, caplog):
    make_plugin(responder(result), slug="r", http_enabled=True)
    with caplog.at_level(logging.WARNING, logger="plugins_app.views"):
        response = client.get("/plugins/r/")
    assert response.status_code == 502
    assert response.content == b"Bad Gateway: the plugin returned an invalid response.\n"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert any("invalid response" in record.getMessage() for record in caplog.records)


def test_response_over_the_cap_is_502(client, make_plugin, settings):
    settings.PLUGINS_APP = {"HTTP_MAX_RESPONSE_BYTES": 10}
    make_plugin(
        responder("{ body: req.path === '/big' ? 'x'.repeat(11) : 'x'.repeat(10) }"), slug="r", http_enabled=True
    )
    assert client.get("/plugins/r/small").status_code == 200
    assert client.get("/plugins/r/big").status_code == 502


def test_script_error_is_502_with_a_generic_message(client, make_plugin, caplog):
    make_plugin(
        "const plugin = { onRequest() { throw new Error('internal detail: db password'); } };",
        slug="r",
        http_enabled=True,
    )
    with caplog.at_level(logging.WARNING, logger="plugins_app.views"):
        response = client.get("/plugins/r/")
    assert response.status_code == 502
    assert b"internal detail" not in response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert any("internal detail" in record.getMessage() for record in caplog.records)  # logged for operators


def test_timeout_is_504(client, make_plugin):
    make_plugin("const plugin = { onRequest() { while (true) {} } };", slug="slow", http_enabled=True, timeout_ms=200)
    response = client.get("/plugins/slow/")
    assert response.status_code == 504
    assert response["X-Content-Type-Options"] == "nosniff"


def test_async_hook_and_host_calls_work(client, make_plugin):
    make_plugin(
        """const plugin = {
          async onRequest(req) {
            await null;
            const n = storage.incr('hits');
            return { status: 200, headers: { 'Content-Type': 'application/vnd.api+json' }, json: { hits: n } };
          }
        };""",
        slug="counter",
        http_enabled=True,
    )
    assert client.get("/plugins/counter/").json() == {"hits": 1}
    response = client.get("/plugins/counter/")
    assert response.json() == {"hits": 2}
    assert response["Content-Type"] == "application/vnd.api+json"


# -- filter_value ----------------------------------------------------------------------


def test_filter_value_passes_request_info(make_plugin, rf: RequestFactory):
    make_plugin(
        "const plugin = { price(value, req, currency) { return `${value} ${currency} for ${req.user} at ${req.method} ${req.path}`; } };",
        slug="f",
    )
    request = rf.get("/shop/")
    request.user = AnonymousUser()
    assert views.filter_value(request, "price", 5, "EUR") == "5 EUR for null at GET /shop/"
    assert views.filter_value(request, "no-such-hook", 5) == 5
    assert views.request_info(request) == {"method": "GET", "path": "/shop/", "user": None}


def test_filter_value_fail_open_and_fail_closed(make_plugin, rf: RequestFactory):
    make_plugin("const plugin = { price() { throw new Error('boom'); } };", slug="broken")
    request = rf.get("/")
    request.user = AnonymousUser()
    assert views.filter_value(request, "price", 5) == 5
    with pytest.raises(PluginScriptError):
        views.filter_value(request, "price", 5, fail_closed=True)


@pytest.mark.django_db(transaction=True)
def test_afilter_value(make_plugin, rf: RequestFactory):
    make_plugin("const plugin = { price(value, req) { return [value * 2, req.user]; } };", slug="f")
    user = User.objects.create_user("bob")
    request = rf.get("/")

    async def auser():
        return user

    request.auser = auser
    assert asyncio.run(views.afilter_value(request, "price", 21)) == [42, user.pk]


# -- apply_filters_to_context -----------------------------------------------------------

CONTEXT_FILTER = """const plugin = {
  page_context(context, req) {
    context.title = context.title.toUpperCase();
    context.path = req.path;
    delete context.removed;
    context.note = 'replaced?';
    context.trusted = 'replaced?';
    return context;
  }
};"""


class Opaque:
    """A context value that is not JSON data."""


def test_is_json_data():
    assert is_json_data({"a": [1, 2.5, None, True, "s", {"b": []}]})
    for value in [(1, 2), {1: "a"}, float("nan"), Opaque(), mark_safe("<b>"), [Opaque()], {"a": {"b": Opaque()}}]:
        assert not is_json_data(value)


def test_context_passes_through_the_filter(make_plugin, rf: RequestFactory):
    make_plugin(CONTEXT_FILTER, slug="ctx")
    note, trusted = Opaque(), mark_safe("<b>trusted</b>")

    @apply_filters_to_context("page_context")
    def page(request):
        return TemplateResponse(
            request, "page.html", {"title": "hello", "removed": 1, "note": note, "trusted": trusted}
        )

    request = rf.get("/page/")
    request.user = AnonymousUser()
    response = page(request)
    # JSON entries were filtered; the others were not shown and cannot be replaced.
    assert response.context_data == {"title": "HELLO", "path": "/page/", "note": note, "trusted": trusted}
    assert page.__name__ == "page"


def test_context_filter_that_returns_garbage_leaves_the_context(make_plugin, rf: RequestFactory):
    make_plugin("const plugin = { page_context() { return 'nope'; } };", slug="bad")
    make_plugin("const plugin = { page_context() { throw new Error('x'); } };", slug="throws")

    @apply_filters_to_context("page_context")
    def page(request):
        return TemplateResponse(request, "page.html", {"title": "hello"})

    @apply_filters_to_context("page_context", fail_closed=True)
    def strict(request):
        return TemplateResponse(request, "page.html", {"title": "hello"})

    request = rf.get("/")
    request.user = AnonymousUser()
    assert page(request).context_data == {"title": "hello"}
    with pytest.raises(PluginScriptError):
        strict(request)
    Plugin.objects.filter(slug="throws").delete()
    with pytest.raises(PluginDataError):
        strict(request)


def test_non_template_responses_are_untouched(make_plugin, rf: RequestFactory):
    from django.http import HttpResponse

    make_plugin(CONTEXT_FILTER, slug="ctx")

    @apply_filters_to_context("page_context")
    def plain(request):
        return HttpResponse("hi")

    request = rf.get("/")
    request.user = AnonymousUser()
    assert plain(request).content == b"hi"


@pytest.mark.django_db(transaction=True)
def test_async_view_context_is_filtered(make_plugin, rf: RequestFactory):
    from asgiref.sync import iscoroutinefunction

    make_plugin(CONTEXT_FILTER, slug="ctx")

    @apply_filters_to_context("page_context")
    async def page(request):
        return TemplateResponse(request, "page.html", {"title": "async"})

    assert iscoroutinefunction(page)
    request = rf.get("/async/")

    async def auser():
        return AnonymousUser()

    request.auser = auser
    response = asyncio.run(page(request))
    # (note and trusted were not in this context, so the plugin may add them)
    assert response.context_data == {"title": "ASYNC", "path": "/async/", "note": "replaced?", "trusted": "replaced?"}
