"""What plugin JavaScript may call: the host functions, run on the calling Django thread.

The sandbox forwards every host call here as ``(name, JSON arguments)``; the reply is
JSON text ``{"ok": value}`` or ``{"error": {"name", "message"}}``, which the sandbox's
bootstrap turns into a return value or a thrown JS ``Error`` with that name. Replies
never carry Python internals.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import conf

logger = logging.getLogger("plugins_app.host_api")

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class HostCallError(Exception):
    """Raised by a host function; becomes a JS Error named ``name`` in the plugin."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass
class LogLine:
    level: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


@dataclass
class HostContext:
    """State of one hook call as seen by host functions: the plugin and what it logged."""

    slug: str
    logs: list[LogLine] = field(default_factory=list)
    dropped_logs: int = 0
    host_calls: int = 0

    def handle(self, name: str, args_json: str) -> str:
        """Run host function ``name``; always returns a JSON reply, never raises."""
        self.host_calls += 1
        function = HOST_FUNCTIONS.get(name)
        try:
            if function is None:
                raise HostCallError("PermissionDenied", f"plugin {self.slug!r} may not call {name!r}")
            try:
                args = json.loads(args_json)
            except ValueError:
                raise HostCallError("TypeError", "host call arguments are not valid JSON") from None
            if not isinstance(args, list):
                raise HostCallError("TypeError", "host call arguments must be a list")
            return json.dumps({"ok": function(self, *args)})
        except HostCallError as exc:
            return json.dumps({"error": {"name": exc.name, "message": exc.message}})
        except TypeError:
            return json.dumps({"error": {"name": "TypeError", "message": f"invalid arguments for {name}()"}})
        except Exception:
            logger.exception("host function %r failed for plugin %r", name, self.slug)
            return json.dumps({"error": {"name": "HostError", "message": f"{name}() failed on the host"}})


def _log(ctx: HostContext, level: str, message: str) -> None:
    if len(ctx.logs) >= conf.get("MAX_LOG_LINES"):
        ctx.dropped_logs += 1
        return
    level = level if level in LOG_LEVELS else "info"
    text = str(message)
    limit = conf.get("MAX_LOG_LINE_CHARS")
    if len(text) > limit:
        text = text[:limit] + "…"
    ctx.logs.append(LogLine(level, text))
    logging.getLogger(f"plugins_app.plugins.{ctx.slug}").log(LOG_LEVELS[level], "%s", text)


HOST_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": _log,
}
