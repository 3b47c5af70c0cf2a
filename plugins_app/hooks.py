"""The public calling API: run one plugin's hook with arguments as data.

>>> from plugins_app import hooks
>>> hooks.call("greeter", "greet", "World")
'Hello, World! App version: 1.0.0'

Every failure is a :class:`~plugins_app.exceptions.PluginError` subclass.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from . import conf
from .exceptions import HookNotFound, PluginDataError, PluginDisabled, PluginNotFound
from .host_api import HostContext, HostLimits, LogLine
from .sandbox import pool

__all__ = ["CallResult", "acall", "arun", "call", "run"]

@dataclass
class CallResult:
    """What one hook call produced: its value, the plugin's log lines and timing."""

    slug: str
    hook: str
    value: Any
    version: int
    duration_ms: float
    logs: list[LogLine] = field(default_factory=list)


def _encode_args(slug: str, args: tuple[Any, ...]) -> str:
    try:
        text = json.dumps(list(args), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PluginDataError(f"arguments for plugin {slug!r} are not JSON data: {exc}", slug=slug) from None
    limit = conf.get("MAX_ARGS_BYTES")
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise PluginDataError(f"arguments for plugin {slug!r} exceed {limit} bytes", slug=slug)
    return text


def _effective_timeout(limit_ms: int, timeout: float | None) -> float:
    seconds = limit_ms / 1000.0
    if timeout is not None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        seconds = min(seconds, float(timeout))
    return seconds


def run(slug: str, hook: str, *args: Any, timeout: float | None = None, require_enabled: bool = True) -> CallResult:
    """Call ``hook`` of plugin ``slug`` with JSON-able ``args``; return a :class:`CallResult`.

    ``timeout`` (seconds) can only shorten the plugin's own time limit. Host calls made
    by the plugin run on this thread, with this thread's database connection.
    """
    from .models import Plugin

    row = Plugin.objects.dispatch_row(slug)
    if row is None:
        raise PluginNotFound(f"no plugin {slug!r} is installed", slug=slug)
    if require_enabled and not row.enabled:
        raise PluginDisabled(f"plugin {slug!r} is disabled", slug=slug)
    if hook not in row.hooks:
        raise HookNotFound(f"plugin {slug!r} defines no hook {hook!r}", slug=slug)
    args_json = _encode_args(slug, args)
    seconds = _effective_timeout(row.timeout_ms, timeout)
    context = HostContext(
        slug,
        plugin_id=row.pk,
        limits=HostLimits(row.max_host_calls, row.max_rows_read, row.max_rows_written, row.max_host_result_bytes),
    )

    def load_spec() -> dict[str, Any]:
        plugin = Plugin.objects.filter(pk=row.pk).values("source", "config", "fingerprint").first()
        if plugin is None or plugin["fingerprint"] != row.fingerprint:
            # Changed or deleted mid-call; the next call sees the new version.
            raise PluginNotFound(f"plugin {slug!r} changed during the call; try again", slug=slug)
        return {
            "key": row.runtime_key,
            "slug": slug,
            "source": plugin["source"],
            "config": json.dumps(plugin["config"], ensure_ascii=False),
            "memory_mb": row.memory_limit_mb,
        }

    started = time.perf_counter()
    text = pool.invoke(
        pool.Invocation(
            slug=slug,
            key=row.runtime_key,
            hook=hook,
            args_json=args_json,
            timeout=seconds,
            memory_mb=row.memory_limit_mb,
            spec_loader=load_spec,
            host=context.handle,
        )
    )
    duration = (time.perf_counter() - started) * 1000.0
    limit = conf.get("MAX_RESULT_BYTES")
    if len(text) > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
        raise PluginDataError(f"plugin {slug!r} returned a result over {limit} bytes", slug=slug)
    try:
        value = json.loads(text)
    except ValueError:
        raise PluginDataError(f"plugin {slug!r} returned something that is not JSON", slug=slug) from None
    return CallResult(slug, hook, value, row.version, duration, context.logs)


def call(slug: str, hook: str, *args: Any, timeout: float | None = None) -> Any:
    """Call ``hook`` of the enabled plugin ``slug`` and return its (JSON-like) result."""
    return run(slug, hook, *args, timeout=timeout).value


def _run_in_executor_thread(*args: Any, **kwargs: Any) -> CallResult:
    try:
        return run(*args, **kwargs)
    finally:
        # Executor threads are not request threads: nothing else would ever close (or
        # recycle, per CONN_MAX_AGE) the connection this thread opened for host calls.
        close_old_connections()


async def arun(slug: str, hook: str, *args: Any, timeout: float | None = None, require_enabled: bool = True) -> CallResult:
    """Async twin of :func:`run` for ASGI views.

    The call runs in a thread of the default executor (not Django's single
    thread-sensitive thread), so slow plugins do not serialize an ASGI site; host calls
    therefore use that thread's own database connection, outside any caller transaction.
    """
    return await sync_to_async(_run_in_executor_thread, thread_sensitive=False)(
        slug, hook, *args, timeout=timeout, require_enabled=require_enabled
    )


async def acall(slug: str, hook: str, *args: Any, timeout: float | None = None) -> Any:
    """Async twin of :func:`call`."""
    return (await arun(slug, hook, *args, timeout=timeout)).value
