"""What plugin JavaScript may call: the host functions, run on the calling Django thread.

The sandbox forwards every host call here as ``(name, JSON arguments)``; the reply is
JSON text ``{"ok": value}`` or ``{"error": {"name", "message"}}``, which the sandbox's
bootstrap turns into a return value or a thrown JS ``Error`` with that name. Replies
never carry SQL, tracebacks or other Python internals.

Host functions are registered with :func:`host_function` in the modules of this
package (``log``, ``db``, ``storage``); each receives the call's :class:`HostContext`.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import conf
from ..sandbox import jsondata

logger = logging.getLogger("plugins_app.host_api")

HostFunction = Callable[..., Any]
HOST_FUNCTIONS: dict[str, HostFunction] = {}
# Host functions that do not count against the host-call budget (they have caps of their own).
UNMETERED: set[str] = set()
# Host functions with side effects: their (small) results are counted but never refused
# after the fact, which would report a failure for a write that happened.
WRITES: set[str] = set()
# (fewest, most) arguments of each host function, from its signature (most None = any).
ARITY: dict[str, tuple[int, int | None]] = {}


def host_function(name: str, *, metered: bool = True, writes: bool = False) -> Callable[[HostFunction], HostFunction]:
    """Register ``fn(ctx, *args)`` as the host function ``name`` (e.g. ``"db.query"``).

    ``metered=False`` keeps it out of the host-call budget; ``writes=True`` marks a
    function with side effects (see ``WRITES``).
    """

    def register(fn: HostFunction) -> HostFunction:
        HOST_FUNCTIONS[name] = fn
        ARITY[name] = _arity(fn)
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
    _grants: Mapping[str, Any] | None = None

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
        """This plugin's grant for model ``label`` (any case), or None: from the state
        pinned by the enclosing ``hooks.scope()`` (no query), else its ``PluginGrant``
        rows, read once per call. Either has ``read``, ``create``, ``update``, ``can_delete``."""
        if self._grants is None:
            from ..dispatch import pinned_state

            state = pinned_state()
            if state is not None:
                self._grants = state.grants.get(self.plugin_id, {}) if self.plugin_id else {}
            else:
                from ..models import PluginGrant

                grants = PluginGrant.objects.filter(plugin_id=self.plugin_id) if self.plugin_id else []
                self._grants = {g.model.lower(): g for g in grants}
        return self._grants.get(label.lower())

    # -- dispatch ---------------------------------------------------------------------------
    def handle(self, name: str, args_json: str) -> str:
        """Run host function ``name``; always returns a JSON reply, never raises.

        A plugin's bad input is a ``HostCallError`` written by us; only a failure we did
        not foresee (a host bug) is logged with its traceback, as ``HostError``.
        """
        try:
            return '{"ok":' + self._call(name, args_json) + "}"
        except HostCallError as exc:
            return error_reply(exc.name, exc.message)
        except Exception:
            known = name if name in HOST_FUNCTIONS else "host call"
            logger.exception("host function %s failed for plugin %r", known, self.slug, extra={"plugin": self.slug})
            return error_reply("HostError", f"{known}() failed on the host")

    def _call(self, name: str, args_json: str) -> str:
        """Run host function ``name`` and return its result as JSON text."""
        function = HOST_FUNCTIONS.get(name)
        if function is None:
            raise permission_denied(f"plugin {self.slug!r} may not call {quote(name)}")
        if name not in UNMETERED:
            self.host_calls += 1
            if self.host_calls > self.limits.host_calls:
                raise limit_exceeded(
                    f"plugin {self.slug!r} may make at most {self.limits.host_calls} host calls per call"
                )
        args = _arguments(args_json)
        _check_arity(name, len(args))
        encoded = _encode_result(name, function(self, *args))
        size = len(encoded)
        if name not in WRITES and self.result_bytes + size > self.limits.result_bytes:
            raise limit_exceeded(
                f"host calls of plugin {self.slug!r} may return at most {self.limits.result_bytes} bytes per call"
            )
        self.result_bytes += size
        return encoded


def error_reply(name: str, message: str) -> str:
    """The JSON reply that makes the plugin's host call throw ``name: message``.
    ASCII-only, so whatever text the message quotes cannot break the frame."""
    return json.dumps({"error": {"name": name, "message": message}})


def quote(text: Any, limit: int = 100) -> str:
    """``text`` in double quotes, as plugin authors write strings, for error messages."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return json.dumps(text)


def _data_problem(exc: jsondata.DataError) -> str:
    # Depth and text problems are the plugin's; anything else (a type that is not JSON)
    # is ours to fix.
    return exc.reason if exc.reason in {"depth", "text"} else "other"


def _arguments(args_json: str) -> list[Any]:
    depth = conf.get("MAX_DATA_DEPTH")
    try:
        args = jsondata.loads(args_json, depth, what="host call arguments")
    except jsondata.DataError as exc:
        problem = _data_problem(exc)
        if problem == "depth":
            raise HostCallError("RangeError", f"host call arguments are nested deeper than {depth} levels") from None
        if problem == "text":
            raise HostCallError(
                "TypeError",
                "host call arguments contain a lone surrogate (half of a UTF-16 pair, not valid Unicode text); "
                "use String.prototype.toWellFormed()",
            ) from None
        raise HostCallError("TypeError", "host call arguments are not valid JSON") from None
    if not isinstance(args, list):
        raise HostCallError("TypeError", "host call arguments must be a list")
    return args


def _arity(function: HostFunction) -> tuple[int, int | None]:
    """(fewest, most) arguments ``function`` takes after the context; most None = any."""
    params = list(inspect.signature(function).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        most = None
    else:
        most = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    fewest = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)
    return fewest, most


def _check_arity(name: str, given: int) -> None:
    fewest, most = ARITY[name]
    if given >= fewest and (most is None or given <= most):
        return
    if most == fewest:
        expected = f"{fewest} argument{'s' if fewest != 1 else ''}"
    elif most is None:
        expected = f"at least {fewest} arguments"
    else:
        expected = f"{fewest} to {most} arguments"
    raise HostCallError("TypeError", f"{name}() takes {expected} ({given} given)")


def _encode_result(name: str, result: Any) -> str:
    try:
        return jsondata.dumps(result, conf.get("MAX_DATA_DEPTH"), what=f"the result of {name}()")
    except jsondata.DataError as exc:
        # Stored data (e.g. written before these checks existed) can be too deep or hold a
        # lone surrogate; a value that is not JSON at all is a host bug (logged by handle).
        if _data_problem(exc) == "depth":
            raise HostCallError("RangeError", f"{exc} and cannot be returned") from None
        if _data_problem(exc) == "text":
            raise HostCallError("TypeError", f"{exc} and cannot be returned") from None
        raise


def check_no_nul(value: Any, what: str) -> None:
    """Raise a ``ValidationError`` host error if a string in ``value`` (or a key of an
    object in it) contains NUL, which PostgreSQL cannot store in text; refused on every
    database alike. ``value`` is host-call data: already depth-checked."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                message = f"{what} contains a NUL character (\\u0000), which cannot be stored"
                raise HostCallError("ValidationError", message)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# Register the host functions (import for side effect, at the end: they use the above).
from . import db, log, storage  # noqa: E402,F401 - imported to register their functions, after what they use
