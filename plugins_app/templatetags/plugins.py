"""Template tags: ``{% load plugins %}``.

``{% plugin_hook "sidebar" note %}`` runs action ``sidebar`` of every enabled plugin
that defines it, with the given arguments as JSON data, and renders what each returns,
escaped or sanitized, in ``<div class="plugin-hook" data-plugin="<slug>">``. See
``docs/views-and-templates.md``.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import math
import uuid
from typing import Any

import nh3
from django import template
from django.conf import settings
from django.db import models
from django.utils.functional import Promise
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from .. import calllog, conf, hooks
from ..exposure import exposed_row, get_exposure, model_label
from ..host_api.log import plugin_extra
from ..sandbox import jsondata

__all__ = ["ALLOWED_ATTRIBUTES", "ALLOWED_TAGS", "plugin_data", "plugin_hook", "render_result", "sanitize"]

register = template.Library()
logger = logging.getLogger("plugins_app.templatetags")

#: Tags kept by :func:`sanitize`: text structure only. No script, style, iframe, form,
#: input, img, media or embed (nothing that runs code, loads resources or takes input);
#: other tags are removed with their text kept, script/style with their content.
ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
#: Attributes kept per tag ("*": every tag). No ``on*``, ``style``, ``class`` or ``id``.
ALLOWED_ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
#: URL schemes allowed in ``href`` (relative URLs are kept too).
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})

_MAX_DEPTH = 64


def sanitize(html: str) -> SafeString:
    """Clean plugin HTML with nh3 (ammonia) down to :data:`ALLOWED_TAGS`; links get
    ``rel="noopener noreferrer"``; comments are removed."""
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return mark_safe(cleaned)  # noqa: S308 - sanitized just above


def _instance_data(instance: models.Model) -> dict[str, Any]:
    concrete = instance._meta.concrete_model or type(instance)  # None only on abstract models
    exposure = get_exposure(model_label(type(instance))) or get_exposure(concrete._meta.label)
    if exposure is None:
        raise TypeError(f"{model_label(type(instance))} is not exposed to plugins (plugins_app.exposure.expose)")
    return exposed_row(instance, [f.name for f in instance._meta.concrete_fields if f.name in exposure.read])


def plugin_data(value: Any, _depth: int = 0) -> Any:
    """``value`` as the JSON data handed to plugins.

    Plain JSON data (``None``, bools, numbers, strings, lists/tuples, dicts with string
    keys) passes as is; a model instance becomes a dict of the fields its exposure makes
    readable (foreign keys as primary keys); dates and times become ISO 8601 strings,
    ``Decimal`` and ``UUID`` strings. Anything else raises ``TypeError``.
    """
    if _depth > _MAX_DEPTH:
        raise TypeError("value nested too deeply for plugins")
    if value is None:
        return None
    # Subclasses (SafeString, IntEnum, lazy translations...) cross as their plain value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str | Promise):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value!r} is not JSON data")
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [plugin_data(item, _depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys given to plugins must be strings")
        return {str(key): plugin_data(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, models.Model):
        return _instance_data(value)
    raise TypeError(f"{type(value).__name__} cannot be given to plugins (not JSON data nor a model instance)")


def render_result(slug: str, hook: str, value: Any) -> SafeString:
    """One plugin's result as HTML: a string (or number) as escaped text, ``{"html":
    "..."}`` sanitized; ``null`` or an empty string renders nothing; any other shape is
    logged and renders nothing."""
    if value is None or value == "":
        return SafeString("")
    if isinstance(value, str):
        content = escape(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        content = escape(str(value))
    elif isinstance(value, dict) and set(value) == {"html"} and isinstance(value["html"], str):
        content = sanitize(value["html"])
    else:
        logger.warning(
            'hook %r: plugin %r returned %s; expected a string or {"html": string}',
            hook,
            slug,
            type(value).__name__,
            extra=plugin_extra(slug),
        )
        return SafeString("")
    return format_html('<div class="plugin-hook" data-plugin="{}">{}</div>', slug, content)


@register.simple_tag
def plugin_hook(hook: str, *args: Any) -> SafeString:
    """``{% plugin_hook "hook" arg1 arg2 %}``: run action ``hook`` of every enabled plugin
    that defines it (priority order) with the arguments as JSON data (see
    :func:`plugin_data`), and render each plugin's result (see :func:`render_result`).

    A plugin that fails renders nothing (the failure is logged); the others still
    render. An argument that cannot be given to plugins raises ``TypeError`` (or
    ``ValueError`` for text that is not valid Unicode) when ``settings.DEBUG`` is on;
    otherwise it is logged and the tag renders nothing.
    """
    try:
        data = [plugin_data(arg) for arg in args]
        for arg in data:  # e.g. a string with a lone surrogate: no plugin could be given it
            jsondata.check(arg, conf.get("MAX_DATA_DEPTH"), what="an argument")
    except (TypeError, ValueError) as exc:
        if settings.DEBUG:
            raise
        logger.warning("{%% plugin_hook %r %%} not run: %s", hook, exc)
        return SafeString("")
    parts = []
    with calllog.caller("template"):
        results = hooks.do_action(str(hook), *data)
    for result in results:
        if result.ok:
            parts.append(render_result(result.slug, hook, result.value))
    return mark_safe("".join(parts))  # noqa: S308 - each part is escaped or sanitized
