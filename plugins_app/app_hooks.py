"""The hooks plugins_app itself calls, in the hook catalogue (imported by ``AppConfig.ready``).

Schemas that sites reuse when they declare their own hooks are public here:
:data:`REQUEST_INFO` (what :func:`plugins_app.views.filter_value` passes to a filter after
the value) and :data:`SIGNAL_META` (the ``meta`` argument of hooks bound to signals).
"""

from __future__ import annotations

from typing import Any

from .catalogue import declare_hook

USER_PK: dict[str, Any] = {"type": ["integer", "string", "null"], "description": "the user's primary key, or null"}

#: The second argument of filters called through ``views.filter_value``: ``{method, path, user}``.
REQUEST_INFO: dict[str, Any] = {
    "title": "request",
    "type": "object",
    "properties": {"method": {"type": "string"}, "path": {"type": "string"}, "user": USER_PK},
    "required": ["method", "path", "user"],
    "additionalProperties": False,
}

#: The ``meta`` argument of hooks bound to signals (see docs/hooks.md, "What can be bound").
SIGNAL_META: dict[str, Any] = {
    "title": "meta",
    "type": "object",
    "properties": {
        "signal": {"type": "string"},
        "model": {"type": "string", "description": "the model's label, for model signals"},
        "created": {"type": "boolean", "description": "post_save only"},
        "sender": {"type": ["string", "null"], "description": "other signals: the sender's name"},
        "deliveryId": {
            "type": "string",
            "description": "after-commit and background deliveries: the same on every attempt",
        },
        "attempt": {"type": "integer", "description": "after-commit and background deliveries: 1, 2, ..."},
    },
    "required": ["signal"],
}

ENDPOINT_REQUEST: dict[str, Any] = {
    "title": "req",
    "type": "object",
    "properties": {
        "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
        "path": {"type": "string", "description": "after /plugins/<slug>, starting with /"},
        "query": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"description": "null, the parsed JSON body, or the body as text"},
        "user": USER_PK,
    },
    "required": ["method", "path", "query", "headers", "body", "user"],
    "additionalProperties": False,
}

ENDPOINT_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "minimum": 200, "maximum": 599},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string"},
        "json": {"description": "any JSON value, sent as application/json"},
    },
    "additionalProperties": False,
}

declare_hook(
    "onRequest",
    kind="call",
    args=[ENDPOINT_REQUEST],
    returns=ENDPOINT_RESPONSE,
    description="Answers HTTP requests under /plugins/<slug>/ for a plugin allowed to serve HTTP "
    "(docs/views-and-templates.md). Called on that one plugin, neither an action nor a filter.",
)
