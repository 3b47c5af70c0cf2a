"""The hooks the demo site calls, declared in the hook catalogue (imported by DemoConfig.ready).

Every hook called in project/ and templates/ is here: the views' direct calls, the
``headline`` filter, the ``sidebar`` template hook and the hooks bound to signals in
settings.SIGNAL_BINDINGS. See docs/hooks.md, "Hook catalogue".
"""

from plugins_app.app_hooks import REQUEST_INFO, SIGNAL_META
from plugins_app.catalogue import declare_hook

NOTE = {
    "title": "note",
    "type": "object",
    "description": "the note's exposed fields (plugin_exposure.py), plus created",
    "properties": {
        "id": {"type": "integer"},
        "author": {"type": "integer", "description": "the author's user id"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "score": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "created": {"type": "boolean", "description": "whether the save created the note"},
    },
    "required": ["id", "author", "title", "body", "score", "created_at", "created"],
}
HTML = {
    "description": "text (escaped), {html} (sanitized), or null for nothing",
    "anyOf": [
        {"type": ["string", "number", "null"]},
        {
            "type": "object",
            "properties": {"html": {"type": "string"}},
            "required": ["html"],
            "additionalProperties": False,
        },
    ],
}

declare_hook(
    "greet",
    kind="call",
    args=[{"title": "name", "type": "string"}],
    returns={"type": "string"},
    description="The home page's greeting, from the greeter plugin (views.home).",
)
declare_hook(
    "summary",
    kind="call",
    returns={"type": "object"},
    description="Note statistics shown on the home page, from the note-stats plugin (views.home).",
)
declare_hook(
    "headline",
    kind="filter",
    args=[{"title": "text", "type": "string"}, REQUEST_INFO],
    returns={"type": "string"},
    description="The home page's headline; each plugin may rewrite it.",
)
declare_hook(
    "sidebar",
    kind="action",
    returns=HTML,
    description="HTML of the home page's sidebar; each plugin's result is rendered ({% plugin_hook \"sidebar\" %}).",
)
declare_hook(
    "noteSaved",
    kind="action",
    args=[NOTE, SIGNAL_META],
    description="A note was saved (after the commit, at least once: see meta.deliveryId).",
)
declare_hook(
    "noteIndexed",
    kind="action",
    args=[NOTE, SIGNAL_META],
    description="A note was saved; runs in the background (on Celery when configured).",
)
