"""What plugin JavaScript may call: the host functions, run on the calling Django thread.

The sandbox forwards every host call here as ``(name, JSON arguments)``; the reply is
JSON text ``{"ok": value}`` or ``{"error": {"name", "message"}}``, which the sandbox's
bootstrap turns into a return value or a thrown JS ``Error`` with that name. Replies
never carry SQL, tracebacks or other Python internals.

Host functions are registered with :func:`host_function` in the modules of this
package (``log``, ``db``, ``storage``); each receives the call's :class:`HostContext`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("plugins_app.host_api")

HostFunction = Callable[..., Any]
HOST_FUNCTIONS: dict[str, HostFunction] = {}
# Host functions that do not count against the host-call budget (they have caps of their own).
UNMETERED: set[str] = set()
# Host functions with side effects: their (small) results are counted but never refused
# after the fact, which would report a failure for a write that happened.
WRITES: set[str] = set()


def host_function(name: str, *, metered: bool = True, writes: bool = False) -> Callable[[HostFunction], HostFunction]:
    """Register ``fn(ctx, *args)`` as the host function ``name`` (e.g. ``"db.query"``).

    ``metered=False`` keeps it out of the host-call budget; ``writes=True`` marks a
    function with side effects (see ``WRITES``).
    """

    def register(fn: HostFunction) -> HostFunction:
        HOST_FUNCTIONS[name] = fn
        if not metered:
            UNMETERED.add(name)
        if writes:
            WRITES.add(name)
        return fn

    return register


class HostCallError(Exception):
    """Raised by a host function; becomes a JS ``Error`` named ``name`` in the plugin."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def permission_denied(message: str) -> HostCallError:
    return HostCallError("PermissionDenied", message)


def limit_exceeded(message: str) -> HostCallError:
    return HostCallError("LimitExceeded", message)


@dataclass
class LogLine:
    level: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


@dataclass
class HostLimits:
    """Per hook call budgets; 0 means none allowed."""

    host_calls: int = 200
    rows_read: int = 1000
    rows_written: int = 100
    result_bytes: int = 1024 * 1024


@dataclass
class HostContext:
    """State of one hook call as host functions see it: whose call, budgets, logs."""

    slug: str
    plugin_id: int | None = None
    limits: HostLimits = field(default_factory=HostLimits)
    logs: list[LogLine] = field(default_factory=list)
    dropped_logs: int = 0
    host_calls: int = 0
    rows_read: int = 0
    rows_written: int = 0
    result_bytes: int = 0
    _grants: dict[str, Any] | None = None

    # -- budgets ----------------------------------------------------------------------
    def charge_rows_read(self, count: int) -> None:
        if self.rows_read + count > self.limits.rows_read:
            raise limit_exceeded(f"plugin {self.slug!r} may read at most {self.limits.rows_read} rows per call")
        self.rows_read += count

    def remaining_rows_read(self) -> int:
        return max(0, self.limits.rows_read - self.rows_read)

    def charge_rows_written(self, count: int) -> None:
        if self.rows_written + count > self.limits.rows_written:
            raise limit_exceeded(f"plugin {self.slug!r} may write at most {self.limits.rows_written} rows per call")
        self.rows_written += count

    def remaining_rows_written(self) -> int:
        return max(0, self.limits.rows_written - self.rows_written)

    # -- grants -------------------------------------------------------------------------
    def grant(self, label: str) -> Any:
        """This plugin's ``PluginGrant`` for model ``label`` (lowercase key), or None."""
        if self._grants is None:
            from ..models import PluginGrant

            grants = PluginGrant.objects.filter(plugin_id=self.plugin_id) if self.plugin_id else []
            self._grants = {g.model.lower(): g for g in grants}
        return self._grants.get(label.lower())

    # -- dispatch ---------------------------------------------------------------------------
    def handle(self, name: str, args_json: str) -> str:
        """Run host function ``name``; always returns a JSON reply, never raises."""
        try:
            return json.dumps({"ok": self._call(name, args_json)}, ensure_ascii=False, allow_nan=False)
        except HostCallError as exc:
            return json.dumps({"error": {"name": exc.name, "message": exc.message}})
        except Exception:
            logger.exception("host function %r failed for plugin %r", name, self.slug)
            return json.dumps({"error": {"name": "HostError", "message": f"{name}() failed on the host"}})

    def _call(self, name: str, args_json: str) -> Any:
        function = HOST_FUNCTIONS.get(name)
        if function is None:
            raise permission_denied(f"plugin {self.slug!r} may not call {name!r}")
        if name not in UNMETERED:
            self.host_calls += 1
            if self.host_calls > self.limits.host_calls:
                raise limit_exceeded(
                    f"plugin {self.slug!r} may make at most {self.limits.host_calls} host calls per call"
                )
        try:
            args = json.loads(args_json)
        except ValueError:
            raise HostCallError("TypeError", "host call arguments are not valid JSON") from None
        if not isinstance(args, list):
            raise HostCallError("TypeError", "host call arguments must be a list")
        try:
            result = function(self, *args)
        except TypeError as exc:
            # Wrong arity from JS; anything else is a bug and goes to the generic handler.
            if "positional argument" in str(exc) or "required" in str(exc):
                raise HostCallError("TypeError", f"wrong number of arguments for {name}()") from None
            raise
        size = len(json.dumps(result, ensure_ascii=False, default=str))
        if name not in WRITES and self.result_bytes + size > self.limits.result_bytes:
            raise limit_exceeded(
                f"host calls of plugin {self.slug!r} may return at most {self.limits.result_bytes} bytes per call"
            )
        self.result_bytes += size
        return result


# Register the host functions (import for side effect, at the end: they use the above).
from . import db, log, storage  # noqa: E402,F401
