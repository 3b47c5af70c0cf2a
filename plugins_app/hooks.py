"""The public calling API: run one plugin's hook with arguments as data.

>>> from plugins_app import hooks
>>> hooks.call("greeter", "greet", "World")
'Hello, World! App version: 1.0.0'

Every failure is a :class:`~plugins_app.exceptions.PluginError` subclass.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from . import breaker, calllog, catalogue, conf, dispatch
from .dispatch import scope
from .exceptions import (
    HookDepthExceeded,
    HookNotFound,
    PluginCrashed,
    PluginDataError,
    PluginDisabled,
    PluginError,
    PluginMemoryError,
    PluginNotFound,
    PluginPaused,
    PluginResultError,
    PluginScriptError,
    PluginTimeout,
)
from .host_api import HostContext, HostLimits, LogLine
from .host_api import log as host_log
from .host_api.log import log_safe, plugin_extra
from .sandbox import jsondata, pool

if TYPE_CHECKING:
    from .models import DispatchRow

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "ActionResult",
    "CallResult",
    "aapply_filters",
    "acall",
    "ado_action",
    "apply_filters",
    "arun",
    "call",
    "do_action",
    "encode_arguments",
    "run",
    "scope",
]

logger = logging.getLogger("plugins_app.hooks")

# Failures that are the plugin's own doing and count towards its circuit breaker.
# (Not: unknown/disabled plugin or hook, bad arguments from the caller, a busy pool.)
PLUGIN_FAULTS = (PluginTimeout, PluginMemoryError, PluginCrashed, PluginScriptError, PluginResultError)
# Longest error text (often the plugin's own message) written to the log per failure.
LOGGED_CHARS = 2000


@dataclass
class CallResult:
    """What one hook call produced: its value, the plugin's log lines and timing."""

    slug: str
    hook: str
    value: Any
    version: int
    duration_ms: float
    logs: list[LogLine] = field(default_factory=list)
    # The result as the JSON text the plugin returned (what the execution log stores).
    result_json: str | None = field(default=None, repr=False, compare=False)


def encode_arguments(args: tuple[Any, ...] | list[Any], *, what: str = "arguments", slug: str | None = None) -> str:
    """``args`` as the JSON text of a list, for a hook call.

    Raises :class:`PluginDataError` (naming the argument) unless every argument is JSON
    data nested at most ``MAX_DATA_DEPTH`` levels, with well-formed strings (no lone
    surrogates), and the text is at most ``MAX_ARGS_BYTES`` bytes of UTF-8.
    """
    depth = conf.get("MAX_DATA_DEPTH")
    try:
        for index, arg in enumerate(args, 1):
            jsondata.check(arg, depth, what=f"argument {index}")
        # Checked above: nothing deep enough for the encoder's own nesting limit.
        text = jsondata.encode(list(args), what=what)
    except (TypeError, ValueError) as exc:  # DataError is a ValueError
        raise PluginDataError(f"{what} are not JSON data: {exc}", slug=slug) from None
    limit = conf.get("MAX_ARGS_BYTES")
    # A character is at most 4 bytes of UTF-8: short texts need no encoding to be measured.
    if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
        raise PluginDataError(f"{what} exceed {limit} bytes", slug=slug)
    return text


def _decode_result(slug: str, text: str) -> Any:
    limit = conf.get("MAX_RESULT_BYTES")
    if len(text) > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
        raise PluginResultError(f"plugin {slug!r} returned a result over {limit} bytes", slug=slug)
    try:
        return jsondata.loads(text, conf.get("MAX_DATA_DEPTH"), what=f"the result of plugin {slug!r}")
    except jsondata.DataError as exc:
        raise PluginResultError(str(exc), slug=slug) from None


def _effective_timeout(limit_ms: int, timeout: float | None) -> float:
    seconds = limit_ms / 1000.0
    if timeout is not None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        seconds = min(seconds, float(timeout))
    return seconds


def run(
    slug: str,
    hook: str,
    *args: Any,
    timeout: float | None = None,
    require_enabled: bool = True,
    count_failures: bool = True,
) -> CallResult:
    """Call ``hook`` of plugin ``slug`` with JSON-able ``args``; return a :class:`CallResult`.

    ``timeout`` (seconds) can only shorten the plugin's own time limit. Host calls made
    by the plugin run on this thread, with this thread's database connection.
    ``count_failures=False`` keeps the call away from the circuit breaker: a failure does
    not count towards a pause and a success does not reset the count (the admin console).
    """
    row = dispatch.current().rows_by_slug.get(slug)
    if row is None:
        raise PluginNotFound(f"no plugin {slug!r} is installed", slug=slug)
    if require_enabled and not row.enabled:
        raise PluginDisabled(f"plugin {slug!r} is disabled", slug=slug)
    if require_enabled and row.paused:
        raise PluginPaused(f"plugin {slug!r} was paused after repeated failures; resume it to call it", slug=slug)
    return _run_row(row, hook, args, timeout, count_failures=count_failures)


def _run_row(
    row: DispatchRow,
    hook: str,
    args: tuple[Any, ...],
    timeout: float | None,
    *,
    count_failures: bool = True,
    context: HostContext | None = None,
    spec: dict[str, Any] | None = None,
) -> CallResult:
    """Run one hook of ``row``. ``count_failures=False``: not seen by the circuit breaker.
    ``context``: the call's HostContext (the caller reads its counters afterwards).
    ``spec``: run this code instead of the saved one (a runtime spec with its own ``key``;
    the admin console's drafts and dry runs)."""
    slug = row.slug
    started = time.perf_counter()
    args_json = None
    try:
        if hook not in row.hooks:
            raise HookNotFound(f"plugin {slug!r} defines no hook {hook!r}", slug=slug)
        args_json = encode_arguments(args, what=f"arguments for plugin {slug!r}", slug=slug)
        seconds = _effective_timeout(row.timeout_ms, timeout)
        if context is None:
            context = _host_context(row)
        if _depth.value >= conf.get("MAX_HOOK_DEPTH"):
            limit = conf.get("MAX_HOOK_DEPTH")
            raise HookDepthExceeded(f"hooks nested deeper than {limit} levels (at plugin {slug!r})", slug=slug)
        _depth.value += 1  # see _nesting (inlined: this is every call's path)
        try:
            result = _invoke(row, hook, args_json, seconds, context, spec=spec)
        except PluginError as exc:
            if count_failures and isinstance(exc, PLUGIN_FAULTS):
                breaker.record_failure(row, exc)
            raise
        finally:
            _depth.value -= 1
    except PluginError as exc:
        # The execution log and health metrics: in memory only, never raises (calllog.py).
        calllog.record(row, hook, time.perf_counter() - started, exc, context, args_json, None)
        raise
    calllog.record(row, hook, time.perf_counter() - started, None, context, args_json, result.result_json)
    if count_failures and row.consecutive_failures:
        breaker.record_success(row)
    return result


def _host_context(row: DispatchRow) -> HostContext:
    return HostContext(
        row.slug,
        plugin_id=row.pk,
        limits=HostLimits(row.max_host_calls, row.max_rows_read, row.max_rows_written, row.max_host_result_bytes),
    )


def _spec_loader(row: DispatchRow) -> Callable[[], dict[str, Any]]:
    """Loads what a sandbox needs to start ``row``'s version (asked for on a cold start)."""

    def load_spec() -> dict[str, Any]:
        slug = row.slug
        found = dispatch.plugin_code(row.pk)
        if found is None or found[2] != row.fingerprint:
            # Saved since this scope pinned the version: run the pinned version's code,
            # kept by its revision (deleted: there is none, and the next call sees it).
            found = _revision_code(row)
            if found is None:
                raise PluginNotFound(f"plugin {slug!r} changed during the call; try again", slug=slug)
        source, config, _ = found
        return {
            "key": row.runtime_key,
            "slug": slug,
            "source": source,
            "config": jsondata.encode(config),
            "memory_mb": row.memory_limit_mb,
        }

    return load_spec


def _revision_code(row: DispatchRow) -> tuple[str, Any, str] | None:
    """``(source, config, fingerprint)`` of exactly ``row``'s version, from its revision
    (checked against the row's fingerprint), or None."""
    from .models import Plugin, PluginRevision
    from .revisions import PLUGIN_FIELDS

    revisions = PluginRevision.objects.filter(plugin_id=row.pk, plugin_version=row.version).order_by("-number")
    for values in revisions.values(*PLUGIN_FIELDS)[:3]:
        if Plugin(**values).compute_fingerprint() == row.fingerprint:
            return values["source"], values["config"], row.fingerprint
    return None


def _invoke(
    row: DispatchRow,
    hook: str,
    args_json: str,
    seconds: float,
    context: HostContext | None = None,
    *,
    spec: dict[str, Any] | None = None,
) -> CallResult:
    slug = row.slug
    if context is None:
        context = _host_context(row)

    # A given spec (console draft or dry run) is a runtime of its own, under its own key.
    key = row.runtime_key if spec is None else spec["key"]
    spec_loader = _spec_loader(row) if spec is None else (lambda: spec)

    started = time.perf_counter()
    text = pool.invoke(
        pool.Invocation(
            slug=slug,
            key=key,
            hook=hook,
            args_json=args_json,
            timeout=seconds,
            memory_mb=row.memory_limit_mb,
            spec_loader=spec_loader,
            host=context.handle,
            nested=_depth.value > 1,
            logs=partial(host_log.receive, context),
        )
    )
    duration = (time.perf_counter() - started) * 1000.0
    return CallResult(slug, hook, _decode_result(slug, text), row.version, duration, context.logs, result_json=text)


class _Depth(threading.local):
    value = 0


_depth = _Depth()


@contextmanager
def _nesting(slug: str) -> Iterator[None]:
    """Count hook calls nested on this thread (a host call whose signal calls a hook)."""
    limit = conf.get("MAX_HOOK_DEPTH")
    if _depth.value >= limit:
        raise HookDepthExceeded(f"hooks nested deeper than {limit} levels (at plugin {slug!r})", slug=slug)
    _depth.value += 1
    try:
        yield
    finally:
        _depth.value -= 1


def call(slug: str, hook: str, *args: Any, timeout: float | None = None) -> Any:
    """Call ``hook`` of the enabled plugin ``slug`` and return its (JSON-like) result."""
    return run(slug, hook, *args, timeout=timeout).value


async def arun(
    slug: str, hook: str, *args: Any, timeout: float | None = None, require_enabled: bool = True
) -> CallResult:
    """Async twin of :func:`run` for ASGI views.

    The call runs in a thread of the default executor (not Django's single
    thread-sensitive thread), so slow plugins do not serialize an ASGI site; host calls
    therefore use that thread's own database connection, outside any caller transaction.
    """
    return await _in_executor_thread(run)(slug, hook, *args, timeout=timeout, require_enabled=require_enabled)


async def acall(slug: str, hook: str, *args: Any, timeout: float | None = None) -> Any:
    """Async twin of :func:`call`."""
    return (await arun(slug, hook, *args, timeout=timeout)).value


# -- actions and filters -------------------------------------------------------------


@dataclass
class ActionResult:
    """One plugin's outcome in :func:`do_action`: its value, or the error it raised."""

    slug: str
    value: Any = None
    error: PluginError | None = None
    logs: list[LogLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def do_action(hook: str, *args: Any, timeout: float | None = None) -> list[ActionResult]:
    """Run ``hook`` of every enabled, unpaused plugin that defines it, in priority order.

    A robust send: a failing plugin is logged and reported in its ``ActionResult``; the
    others still run. Nothing is raised for plugin failures.
    """
    catalogue.check_called(hook)  # an undeclared hook: warn once, raise or ignore (UNDECLARED_HOOKS)
    rows = dispatch.current().rows_for_hook.get(hook, ())
    if not rows:
        return []
    _, results = _run_chain(rows, hook, args, timeout)
    return results


def apply_filters(
    hook: str,
    value: Any,
    *args: Any,
    fail_closed: bool = False,
    timeout: float | None = None,
    errors: list[ActionResult] | None = None,
) -> Any:
    """Pass ``value`` through ``hook`` of each enabled, unpaused plugin in priority order.

    Each plugin receives ``(value, *args)`` and returns the new value. A failing plugin
    is skipped (logged, and appended to ``errors`` if a list is given) and the value it
    was given goes on to the next one, unless ``fail_closed=True``, in which case its
    ``PluginError`` is raised.
    """
    catalogue.check_called(hook)  # an undeclared hook: warn once, raise or ignore (UNDECLARED_HOOKS)
    rows = dispatch.current().rows_for_hook.get(hook, ())
    if not rows:
        return value
    value, results = _run_chain(rows, hook, args, timeout, value=value, fail_closed=fail_closed)
    if errors is not None:
        errors.extend(r for r in results if not r.ok)
    return value


_NO_VALUE: Any = object()


def _run_chain(
    rows: tuple[DispatchRow, ...],
    hook: str,
    args: tuple[Any, ...],
    timeout: float | None,
    *,
    value: Any = _NO_VALUE,
    fail_closed: bool = False,
) -> tuple[Any, list[ActionResult]]:
    """Run ``hook`` of each of ``rows`` in order: an action (every plugin gets ``args``)
    or, given ``value``, a filter (each gets ``(value, *args)`` and returns the next).

    The plugins run in one conversation with one sandbox process (pool.run_chain), each
    under its own time limit, host context, breaker accounting and log; a failing plugin
    is logged and skipped (its input goes on), or raised when ``fail_closed``. Should the
    sandbox die during a plugin, that plugin gets the error and the rest run again in a
    new conversation: each plugin runs at most once.
    """
    is_filter = value is not _NO_VALUE
    what = f"arguments for hook {hook!r}"
    try:
        if is_filter:
            value_json = encode_arguments((value,), what=what)[1:-1]
            rest_json = encode_arguments(args, what=what)
        else:
            args_json = encode_arguments(args, what=what)
    except PluginDataError:
        # Bad arguments: each plugin reports it as a call of its own would.
        return _run_one_by_one(rows, hook, args, timeout, value, fail_closed, is_filter)
    if len(rows) == 1 or _depth.value >= conf.get("MAX_HOOK_DEPTH"):
        # One plugin needs no chain; too deep: each plugin reports HookDepthExceeded.
        return _run_one_by_one(rows, hook, args, timeout, value, fail_closed, is_filter)
    contexts = [_host_context(row) for row in rows]
    results: list[ActionResult] = []
    pending = list(range(len(rows)))
    with _nesting(rows[0].slug):
        steps = [
            pool.Invocation(
                slug=row.slug,
                key=row.runtime_key,
                hook=hook,
                args_json="",
                timeout=_effective_timeout(row.timeout_ms, timeout),
                memory_mb=row.memory_limit_mb,
                spec_loader=_spec_loader(row),
                host=contexts[i].handle,
                nested=_depth.value > 1,
                logs=partial(host_log.receive, contexts[i]),
            )
            for i, row in enumerate(rows)
        ]
        while pending:
            outcomes = pool.run_chain(
                [steps[i] for i in pending],
                mode="filter" if is_filter else "action",
                args_json="" if is_filter else args_json,
                value_json=value_json if is_filter else "null",
                rest_json=rest_json if is_filter else "[]",
                stop_on_error=fail_closed,
                nested=steps[0].nested,
            )
            ran = 0
            for index, outcome in zip(pending, outcomes, strict=True):
                if outcome is None:
                    break
                ran += 1
                row, context = rows[index], contexts[index]
                step_args = (
                    ("[" + value_json + ("]" if rest_json == "[]" else "," + rest_json[1:])) if is_filter else args_json
                )
                error = outcome.error
                result = None
                if error is None:
                    assert outcome.text is not None
                    try:
                        result = _decode_result(row.slug, outcome.text)
                    except PluginResultError as exc:
                        error = exc
                calllog.record(row, hook, outcome.ms / 1000.0, error, context, step_args, outcome.text)
                if error is not None:
                    if isinstance(error, PLUGIN_FAULTS):
                        breaker.record_failure(row, error)
                    if fail_closed:
                        raise error
                    _log_failure(hook, row.slug, error, is_filter)
                    results.append(ActionResult(row.slug, error=error))
                    continue
                if row.consecutive_failures:
                    breaker.record_success(row)
                results.append(ActionResult(row.slug, value=result, logs=context.logs))
                if is_filter:
                    assert outcome.text is not None  # no error: the step has a result (asserted above)
                    value, value_json = result, outcome.text
            pending = pending[ran:]
    return (value if is_filter else None), results


def _log_failure(hook: str, slug: str, exc: PluginError, is_filter: bool) -> None:
    logger.warning(
        "%s %r: plugin %r %s: %s: %s",
        "filter" if is_filter else "action",
        hook,
        slug,
        "skipped" if is_filter else "failed",
        type(exc).__name__,
        log_safe(exc, LOGGED_CHARS),
        extra=plugin_extra(slug),
    )


def _run_one_by_one(
    rows: tuple[DispatchRow, ...],
    hook: str,
    args: tuple[Any, ...],
    timeout: float | None,
    value: Any,
    fail_closed: bool,
    is_filter: bool,
) -> tuple[Any, list[ActionResult]]:
    """The plugins of a chain called one at a time (each reports its own argument error)."""
    results = []
    for row in rows:
        try:
            result = _run_row(row, hook, (value, *args) if is_filter else args, timeout)
        except PluginError as exc:
            if fail_closed:
                raise
            _log_failure(hook, row.slug, exc, is_filter)
            results.append(ActionResult(row.slug, error=exc))
        else:
            results.append(ActionResult(row.slug, value=result.value, logs=result.logs))
            if is_filter:
                value = result.value
    return (value if is_filter else None), results


def _in_executor_thread(function: Callable[_P, _R]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """``function`` as an awaitable run in the default executor. Executor threads are not
    request threads: nothing else would ever close (or recycle, per CONN_MAX_AGE) the
    connection such a thread opened for host calls."""

    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(wrapper, thread_sensitive=False)


async def ado_action(hook: str, *args: Any, timeout: float | None = None) -> list[ActionResult]:
    """Async twin of :func:`do_action` (runs in an executor thread, like :func:`arun`)."""
    return await _in_executor_thread(do_action)(hook, *args, timeout=timeout)


async def aapply_filters(
    hook: str,
    value: Any,
    *args: Any,
    fail_closed: bool = False,
    timeout: float | None = None,
    errors: list[ActionResult] | None = None,
) -> Any:
    """Async twin of :func:`apply_filters`."""
    return await _in_executor_thread(apply_filters)(
        hook, value, *args, fail_closed=fail_closed, timeout=timeout, errors=errors
    )
