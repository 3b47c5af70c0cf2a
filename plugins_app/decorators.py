"""View decorators that let plugins take part in a request handler.

>>> from django.template.response import TemplateResponse
>>> from plugins_app.decorators import apply_filters_to_context
>>>
>>> @apply_filters_to_context("note_context")
... def note(request, pk):
...     return TemplateResponse(request, "note.html", {"title": "Hi", "note": Note.objects.get(pk=pk)})

See ``docs/views-and-templates.md``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.template.response import SimpleTemplateResponse

from . import calllog, hooks
from .exceptions import PluginDataError
from .views import arequest_info, request_info

__all__ = ["apply_filters_to_context", "is_json_data"]

logger = logging.getLogger("plugins_app.decorators")

View = TypeVar("View", bound=Callable[..., Any])

_MAX_DEPTH = 64


def is_json_data(value: Any, _depth: int = 0) -> bool:
    """True if ``value`` is plain JSON data that survives a trip through a plugin
    unchanged: ``None``, ``bool``, ``int``, finite ``float``, ``str`` (not a
    ``SafeString``: trusted markup is never handed out to be changed), and lists and
    dicts with ``str`` keys of those. Tuples, lazy strings, model instances... are not."""
    if _depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if kind is list:
        return all(is_json_data(item, _depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and is_json_data(v, _depth + 1) for k, v in value.items())
    return False


def _split(context: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what plugins see, what they never see nor replace)."""
    shared = {k: v for k, v in context.items() if type(k) is str and is_json_data(v)}
    kept = {k: v for k, v in context.items() if k not in shared}
    return shared, kept


def _merge(
    hook: str, kept: dict[str, Any], filtered: Any, original: dict[str, Any], fail_closed: bool
) -> dict[str, Any]:
    if not isinstance(filtered, dict) or not all(type(k) is str for k in filtered):
        message = f"filter {hook!r} must return an object (the context), got {type(filtered).__name__}"
        if fail_closed:
            raise PluginDataError(message)
        logger.warning("%s; the context is left unchanged", message)
        return original
    # Keys the plugins never saw cannot be replaced by a key of the same name.
    return {**{k: v for k, v in filtered.items() if k not in kept}, **kept}


def _should_filter(response: Any) -> TypeGuard[SimpleTemplateResponse]:
    return isinstance(response, SimpleTemplateResponse) and not response.is_rendered


def apply_filters_to_context(
    hook: str, *, fail_closed: bool = False, timeout: float | None = None
) -> Callable[[View], View]:
    """Decorate a view returning a ``TemplateResponse`` so that, before it is rendered,
    its ``context_data`` goes through filter ``hook``.

    Each plugin is called as ``hook(context, request)``: ``context`` holds the context
    entries whose values are plain JSON data (see :func:`is_json_data`); the others
    (model instances, forms, safe strings...) are neither shown to plugins nor
    replaceable by them, and are put back after filtering. ``request`` is
    :func:`plugins_app.views.request_info`. What the last plugin returns (an object)
    replaces the shared entries: a plugin may change, add or remove them.

    Failing plugins are skipped (logged) unless ``fail_closed=True``, which raises the
    :class:`~plugins_app.exceptions.PluginError` (also for a result that is not an
    object, which otherwise leaves the context unchanged). Responses that are not
    unrendered template responses pass through untouched. ``async def`` views are
    supported and use :func:`plugins_app.hooks.aapply_filters`.
    """

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
                response: HttpResponseBase = await view(request, *args, **kwargs)
                if _should_filter(response):
                    original = response.context_data or {}
                    shared, kept = _split(original)
                    info = await arequest_info(request)
                    with calllog.caller("view"):
                        filtered = await hooks.aapply_filters(
                            hook, shared, info, fail_closed=fail_closed, timeout=timeout
                        )
                    response.context_data = _merge(hook, kept, filtered, original, fail_closed)
                return response

            return cast(View, async_wrapper)  # functools.wraps: the view's own signature

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response: HttpResponseBase = view(request, *args, **kwargs)
            if _should_filter(response):
                original = response.context_data or {}
                shared, kept = _split(original)
                with calllog.caller("view"):
                    filtered = hooks.apply_filters(
                        hook, shared, request_info(request), fail_closed=fail_closed, timeout=timeout
                    )
                response.context_data = _merge(hook, kept, filtered, original, fail_closed)
            return response

        return cast(View, wrapper)

    return decorator
