"""Plugins in request handlers: filtering values, and the endpoints plugins serve.

Two things live here (docs: ``docs/views-and-templates.md``):

* :func:`filter_value` / :func:`afilter_value`, to pass a value through a filter hook
  from a view, with a small description of the request as extra argument;
* :func:`endpoint`, the view behind ``/plugins/<slug>/<path>``: it hands a plain,
  allowlisted description of the request to the plugin's ``onRequest`` hook and turns
  what the hook returns into an ``HttpResponse``, refusing anything unsafe.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    RawPostDataException,
    UnreadablePostError,
)
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect

from . import calllog, conf, hooks
from .exceptions import HookNotFound, PluginBusy, PluginDisabled, PluginError, PluginNotFound, PluginTimeout
from .host_api.log import log_safe, plugin_extra
from .sandbox import jsondata

__all__ = ["ENDPOINT_HOOK", "afilter_value", "arequest_info", "endpoint", "filter_value", "request_info"]

logger = logging.getLogger("plugins_app.views")

#: The hook a plugin defines to answer HTTP requests.
ENDPOINT_HOOK = "onRequest"

#: Methods the endpoint accepts. Unsafe ones go through Django's CSRF protection.
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: Request headers that never reach a plugin, whatever HTTP_ALLOWED_REQUEST_HEADERS says
#: (credentials; the CSRF header named by settings.CSRF_HEADER_NAME is added at run time).
NEVER_FORWARDED_REQUEST_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "x-csrftoken"})

#: Response headers a plugin can never set, whatever HTTP_ALLOWED_RESPONSE_HEADERS says:
#: cookies, framing and security policy, hop-by-hop and length headers, authentication
#: challenges and CORS (``access-control-*``, ``cross-origin-*`` prefixes as well).
NEVER_SET_RESPONSE_HEADERS = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "clear-site-data",
        "content-security-policy",
        "content-security-policy-report-only",
        "x-content-type-options",
        "x-frame-options",
        "x-xss-protection",
        "strict-transport-security",
        "permissions-policy",
        "referrer-policy",
        "www-authenticate",
        "proxy-authenticate",
        "refresh",
        "link",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "trailer",
        "vary",
        "server",
        "date",
    }
)
_NEVER_SET_PREFIXES = ("access-control-", "cross-origin-", "sec-", "proxy-")

#: Added to every response a plugin produces (and to the endpoint's own error responses).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # A plugin-served document runs no script, submits no form and gets an opaque
    # origin: it can never act as the site in the visitor's browser.
    "Content-Security-Policy": "sandbox",
}

#: Media types a plugin may serve (``Content-Type``), all inert in the site's origin:
#: with ``nosniff`` a browser will not run them as script or apply them as a stylesheet,
#: and none is a document that runs script, except ``text/html``, which is allowed only
#: because every plugin response carries ``Content-Security-Policy: sandbox`` (see
#: SECURITY_HEADERS). ``application/<name>+json`` types are JSON too. Any other type is
#: served as ``text/plain; charset=utf-8``. Binary types (images...) are not listed:
#: bodies are text.
INERT_CONTENT_TYPES = frozenset({"text/plain", "text/csv", "text/html", "application/json", "application/octet-stream"})

_RESULT_KEYS = frozenset({"status", "headers", "body", "json"})
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(\s*;.*)?")
_TEXT_PLAIN = "text/plain; charset=utf-8"


# -- helpers for your own views -------------------------------------------------------


def _user_pk(user: Any) -> int | str | None:
    """The primary key of an authenticated user as JSON data, else ``None``."""
    if user is None or not user.is_authenticated:
        return None
    pk = user.pk
    return pk if isinstance(pk, int) else str(pk)


def _user_id(request: HttpRequest) -> int | str | None:
    return _user_pk(getattr(request, "user", None))


def request_info(request: HttpRequest) -> dict[str, Any]:
    """What filters called from a view learn about the request: ``{"method", "path",
    "user"}``, ``user`` being the authenticated user's primary key or ``None``."""
    return {"method": request.method, "path": request.path, "user": _user_id(request)}


def filter_value(
    request: HttpRequest,
    hook: str,
    value: Any,
    *args: Any,
    fail_closed: bool = False,
    timeout: float | None = None,
) -> Any:
    """Pass ``value`` through filter ``hook`` from a request handler and return the result.

    Each plugin's hook is called as ``hook(value, request, ...args)`` where ``request``
    is :func:`request_info`. Failing plugins are skipped (logged) unless
    ``fail_closed=True``; see :func:`plugins_app.hooks.apply_filters`.
    """
    with calllog.caller("view"):
        return hooks.apply_filters(hook, value, request_info(request), *args, fail_closed=fail_closed, timeout=timeout)


async def arequest_info(request: HttpRequest) -> dict[str, Any]:
    """Async twin of :func:`request_info`: loads the user with ``request.auser()``, as
    an async view must not touch the database (lazy ``request.user``) on the event loop."""
    auser = getattr(request, "auser", None)
    user = await auser() if auser is not None else getattr(request, "user", None)
    return {"method": request.method, "path": request.path, "user": _user_pk(user)}


async def afilter_value(
    request: HttpRequest,
    hook: str,
    value: Any,
    *args: Any,
    fail_closed: bool = False,
    timeout: float | None = None,
) -> Any:
    """Async twin of :func:`filter_value`, for ``async def`` views."""
    info = await arequest_info(request)
    with calllog.caller("view"):
        return await hooks.aapply_filters(hook, value, info, *args, fail_closed=fail_closed, timeout=timeout)


# -- plugin-served endpoints ----------------------------------------------------------


class _Refused(Exception):
    """The request is refused before the plugin is called."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _BadResult(Exception):
    """What the plugin returned is not an acceptable HTTP response."""


def _plain(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type=_TEXT_PLAIN)
    for name, value in SECURITY_HEADERS.items():
        response[name] = value
    return response


def _serves_http(slug: str) -> bool:
    from .models import Plugin

    return Plugin.objects.filter(
        slug=slug, enabled=True, http_enabled=True, paused_at__isnull=True, hook_index__name=ENDPOINT_HOOK
    ).exists()


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read_body(request: HttpRequest) -> Any:
    """The request body for the plugin: ``None`` when empty, parsed JSON for a JSON
    content type, else text. Enforces HTTP_MAX_BODY_BYTES on the declared length and
    on what is actually read."""
    cap = int(conf.get("HTTP_MAX_BODY_BYTES"))
    declared = (request.META.get("CONTENT_LENGTH") or "").strip()
    if declared:
        if not declared.isdigit():
            raise _Refused(400, "Bad Request: invalid Content-Length.")
        if int(declared) > cap:
            raise _Refused(413, f"Request body too large (limit {cap} bytes).")
    media_type = _media_type(request.META.get("CONTENT_TYPE", ""))
    if media_type == "multipart/form-data":
        raise _Refused(415, "Unsupported Media Type: send JSON or text.")
    try:
        raw = request.read(cap + 1)
    except (RawPostDataException, UnreadablePostError):
        raise _Refused(400, "Bad Request: the request body could not be read.") from None
    if len(raw) > cap:
        raise _Refused(413, f"Request body too large (limit {cap} bytes).")
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "Bad Request: the body is not valid UTF-8.") from None
    if not _is_json_type(media_type):
        return text
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _Refused(400, "Bad Request: the body is not valid JSON.") from None
    try:
        jsondata.check(value, conf.get("MAX_DATA_DEPTH"), what="the body")
    except jsondata.DataError:
        # Too deep, or a \ud800 escape (lone surrogate): not data a plugin can be given.
        raise _Refused(400, "Bad Request: the body is not valid JSON.") from None
    return value


def _never_forwarded() -> frozenset[str]:
    csrf_header = str(getattr(settings, "CSRF_HEADER_NAME", "HTTP_X_CSRFTOKEN"))
    csrf_header = csrf_header.removeprefix("HTTP_").replace("_", "-").lower()
    return NEVER_FORWARDED_REQUEST_HEADERS | {csrf_header}


def _request_headers(request: HttpRequest) -> dict[str, str]:
    never = _never_forwarded()
    headers: dict[str, str] = {}
    for name in conf.get("HTTP_ALLOWED_REQUEST_HEADERS"):
        name = str(name).lower()
        if name in never:
            continue
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


def _plugin_request(request: HttpRequest, path: str) -> dict[str, Any]:
    """The plain object ``onRequest(req)`` receives (see docs/views-and-templates.md)."""
    return {
        "method": request.method,
        "path": "/" + path,
        "query": {key: request.GET.getlist(key) for key in request.GET},
        "headers": _request_headers(request),
        "body": _read_body(request),
        "user": _user_id(request),
    }


def _settable(name: str, allowed: frozenset[str]) -> bool:
    return name in allowed and name not in NEVER_SET_RESPONSE_HEADERS and not name.startswith(_NEVER_SET_PREFIXES)


def _relative_url(value: str) -> bool:
    """``/some/path?query``: same site, same scheme. Anything with a scheme, a host or
    backslashes (``//evil``, ``/\\evil``, ``javascript:``) is refused."""
    return (
        value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and url_has_allowed_host_and_scheme(value, allowed_hosts=None)
    )


def served_content_type(value: str | None, default: str) -> str:
    """The ``Content-Type`` sent for a plugin's response: the plugin's ``value`` (if
    given) when its media type is in :data:`INERT_CONTENT_TYPES` (or JSON), rewritten
    by us; else ``text/plain``. Parameters are never passed on (a browser may read a
    type from them); text types get ``charset=utf-8``, as bodies are sent as UTF-8."""
    if value is None:
        return default
    if not _valid_content_type(value):
        return _TEXT_PLAIN
    media_type = _media_type(value)
    if media_type not in INERT_CONTENT_TYPES and not _is_json_type(media_type):
        return _TEXT_PLAIN
    return f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type


def _valid_content_type(value: str) -> bool:
    """A media type whose charset, if given, is UTF-8 (bodies are always sent as UTF-8)."""
    if not _MEDIA_TYPE.fullmatch(value):
        return False
    params = [p.strip().lower() for p in value.split(";")[1:]]
    charsets = [p.split("=", 1)[1].strip().strip('"') for p in params if p.startswith("charset=")]
    return all(c in ("utf-8", "utf8") for c in charsets)


def _response_headers(slug: str, headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise _BadResult("'headers' must be an object")
    allowed = frozenset(str(h).lower() for h in conf.get("HTTP_ALLOWED_RESPONSE_HEADERS"))
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        lower = name.lower()
        if (
            not _settable(lower, allowed)
            or not isinstance(value, str)
            or not _HEADER_VALUE.fullmatch(value)
            or (lower == "location" and not _relative_url(value))
        ):
            dropped.append(name)
            continue
        kept[lower] = value
    if dropped:
        logger.info(
            "endpoint of plugin %r: dropped response headers %s",
            slug,
            log_safe(", ".join(map(repr, dropped)), 500),
            extra=plugin_extra(slug),
        )
    return kept


def _build_response(request: HttpRequest, slug: str, result: Any) -> HttpResponse:
    if not isinstance(result, dict):
        raise _BadResult(f"onRequest returned {type(result).__name__}, not an object")
    unknown = set(result) - _RESULT_KEYS
    if unknown:
        raise _BadResult(f"unknown keys {sorted(unknown)} (allowed: status, headers, body or json)")
    status = result.get("status", 200)
    if type(status) is not int or not 200 <= status <= 599:
        raise _BadResult(f"status {status!r} is not an integer from 200 to 599")
    if "body" in result and "json" in result:
        raise _BadResult("give either 'body' or 'json', not both")
    if "json" in result:
        try:
            content = jsondata.dumps(result["json"], conf.get("MAX_DATA_DEPTH"), what="'json'")
        except jsondata.DataError as exc:
            raise _BadResult(str(exc)) from None
        content_type = "application/json"
    else:
        body = result.get("body")
        if body is None:
            body = ""
        if not isinstance(body, str):
            raise _BadResult("'body' must be a string (use 'json' for data)")
        content = body
        content_type = _TEXT_PLAIN
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadResult("the body is not encodable as UTF-8 (lone surrogate)") from None
    limit = int(conf.get("HTTP_MAX_RESPONSE_BYTES"))
    if len(data) > limit:
        raise _BadResult(f"the body is over HTTP_MAX_RESPONSE_BYTES ({limit} bytes)")
    headers = _response_headers(slug, result.get("headers"))
    given_type = headers.pop("content-type", None)
    content_type = served_content_type(given_type, content_type)
    if given_type is not None and content_type == _TEXT_PLAIN and _media_type(given_type) != "text/plain":
        logger.info(
            "endpoint of plugin %r: Content-Type %s served as text/plain",
            slug,
            log_safe(repr(given_type), 200),
            extra=plugin_extra(slug),
        )
    if request.method == "HEAD" or status in (204, 304):
        data = b""
    response = HttpResponse(data, status=status, content_type=content_type)
    for name, value in headers.items():
        response[name] = value
    for name, value in SECURITY_HEADERS.items():
        response[name] = value
    return response


@csrf_protect
def endpoint(request: HttpRequest, slug: str, path: str = "") -> HttpResponse:
    """Serve ``/plugins/<slug>/<path>`` with the plugin's ``onRequest`` hook.

    404 unless the plugin exists, is enabled, is not paused, has ``http_enabled`` and
    defines ``onRequest`` (the same 404 whichever check failed). Unsafe methods need a
    CSRF token like any other Django view. Plugin failures give 502, a timeout 504.
    """
    if request.method not in ALLOWED_METHODS:
        not_allowed = HttpResponseNotAllowed(ALLOWED_METHODS)
        not_allowed["X-Content-Type-Options"] = "nosniff"
        return not_allowed
    if not _serves_http(slug):
        raise Http404("No such page.")
    try:
        req = _plugin_request(request, path)
    except _Refused as refused:
        return _plain(refused.status, refused.message)
    try:
        with calllog.caller("endpoint"):
            result = hooks.run(slug, ENDPOINT_HOOK, req)
    except (PluginNotFound, PluginDisabled, HookNotFound):
        # Changed between the check above and the call.
        raise Http404("No such page.") from None
    except PluginTimeout as exc:
        _warn(slug, "timed out: %s", exc)
        return _plain(504, "Gateway Timeout: the plugin did not answer in time.")
    except PluginBusy as exc:
        _warn(slug, "no sandbox free: %s", exc)
        response = _plain(503, "Service Unavailable: try again shortly.")
        response["Retry-After"] = "1"
        return response
    except PluginError as exc:
        _warn(slug, "failed: %s: %s", type(exc).__name__, exc)
        return _plain(502, "Bad Gateway: the plugin failed.")
    try:
        return _build_response(request, slug, result.value)
    except _BadResult as exc:
        _warn(slug, "returned an invalid response: %s", exc)
        return _plain(502, "Bad Gateway: the plugin returned an invalid response.")


def _warn(slug: str, message: str, *args: Any) -> None:
    """Log a warning about plugin ``slug``'s endpoint; texts the plugin controls escaped."""
    safe = [log_safe(arg, 2000) for arg in args]
    logger.warning("endpoint of plugin %r " + message, slug, *safe, extra=plugin_extra(slug))
