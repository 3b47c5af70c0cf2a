"""The execution log: a record of hook calls (every failure, a sample of the successes)
and per-minute aggregates of all of them, written off the call path.

The call path (``hooks._run_row``) calls :func:`record` once per call. That only adds the
call to this process's in-memory aggregates and, for a failure or a sampled success,
appends one tuple to a bounded in-memory queue: no I/O, no waiting, nothing raised into
the caller. A full queue drops the record and counts it (:func:`stats`, and
``CallMinute.log_dropped``); the aggregates are never dropped.

One daemon thread per process (the *writer*, started by the first call and again after a
fork) wakes every ``CALL_LOG_FLUSH_SECONDS``, inserts the queued records in batches and
adds the aggregates to the database with atomic increments (:mod:`plugins_app.metrics`),
on the thread's own database connection: never inside a caller's transaction. What it
could not write is retried (records three times, aggregates until written). It prunes
old rows about once an hour (:func:`prune_calls`), and the process writes what is left
when it exits (``atexit``). :func:`flush` waits until everything recorded so far is
written: what tests call instead of sleeping.

Callers say who they are with :func:`caller` (``with calllog.caller("template"):``); a
call made outside any such block is recorded as ``"python"``. Calls from the admin console
(``"console"``) are logged but not counted in the aggregates (they are not site traffic).
"""

from __future__ import annotations

import atexit
import bisect
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import DatabaseError, connections, router, transaction
from django.dispatch import receiver
from django.utils import timezone

from . import conf
from .exceptions import PluginMemoryError, PluginScriptError, PluginTimeout

if TYPE_CHECKING:
    from .host_api import HostContext
    from .models import DispatchRow

__all__ = [
    "CALLER_KINDS",
    "caller",
    "clear",
    "current_caller",
    "flush",
    "prune_calls",
    "record",
    "shutdown",
    "stats",
]

logger = logging.getLogger("plugins_app.calllog")

# Caller kinds plugins_app itself sets; site code may pass any short name of its own.
CALLER_KINDS = ("python", "view", "template", "signal", "background", "endpoint", "console", "cli")
# Calls from the admin console are logged but left out of the health metrics.
CONSOLE = "console"
MAX_CALLER_CHARS = 32

# Records inserted per statement; a record that failed to be written this many times is dropped.
BATCH_SIZE = 500
MAX_WRITE_ATTEMPTS = 3
# The writer prunes old rows this often (the first time this long after it started).
PRUNE_EVERY_SECONDS = 3600.0
FIRST_PRUNE_AFTER_SECONDS = 300.0
# At most this many (plugin, minute) aggregates wait in memory while the database is away.
MAX_PENDING_MINUTES = 50_000
# Longest texts kept from an error.
ERROR_CHARS = 4000
STACK_CHARS = 16_000
# Writer failures are logged at most this often.
WARN_EVERY_SECONDS = 60.0

_caller: ContextVar[str] = ContextVar("plugins_app_caller", default="python")


@contextmanager
def caller(kind: str) -> Iterator[None]:
    """Record hook calls made inside this block (this thread or task, and the executor
    threads of ``hooks.a*``) as made by ``kind``: one of :data:`CALLER_KINDS` or a short
    name of your own. Blocks nest; the innermost wins."""
    if not isinstance(kind, str) or not kind or len(kind) > MAX_CALLER_CHARS:
        raise ValueError(f"a caller kind is a non-empty string of at most {MAX_CALLER_CHARS} characters")
    token = _caller.set(kind)
    try:
        yield
    finally:
        _caller.reset(token)


def current_caller() -> str:
    """The caller kind hook calls made here are recorded with."""
    return _caller.get()


# -- settings, read once per change ------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    log: bool
    metrics: bool
    rate: float
    queue_size: int
    flush_seconds: float
    max_data: int
    bounds: tuple[float, ...]  # LATENCY_BOUNDS_MS


_settings: _Settings | None = None


def _load_settings() -> _Settings:
    global _settings
    from .models import LATENCY_BOUNDS_MS

    def number(name: str, default: float) -> float:
        value = conf.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default

    _settings = _Settings(
        log=bool(conf.get("CALL_LOG_ENABLED")),
        metrics=bool(conf.get("METRICS_ENABLED")),
        rate=min(1.0, max(0.0, number("CALL_LOG_SAMPLE_RATE", 0.0))),
        queue_size=max(0, int(number("CALL_LOG_QUEUE_SIZE", 0))),
        flush_seconds=max(0.01, number("CALL_LOG_FLUSH_SECONDS", 1.0)),
        max_data=max(1, int(number("CALL_LOG_MAX_DATA_BYTES", 16 * 1024))),
        bounds=LATENCY_BOUNDS_MS,
    )
    return _settings


@receiver(setting_changed)
def _reset_settings(*, setting: str, **kwargs: Any) -> None:
    global _settings
    if setting == "PLUGINS_APP":
        _settings = None


# -- the per-process state: queue, aggregates, writer -------------------------------------

# An aggregate is a list: the counters below, then the latency histogram.
CALLS, ERRORS, TIMEOUTS, MEMORY_ERRORS, DROPPED, SUM_MS, MAX_MS, LAST = range(8)
HISTOGRAM = 8

OUTCOME_OK, OUTCOME_ERROR, OUTCOME_TIMEOUT, OUTCOME_MEMORY = "ok", "error", "timeout", "memory"


class _State:
    """Everything :func:`record` touches; replaced as a whole in a forked child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: deque[tuple[Any, ...]] = deque()
        # (plugin id, slug, minute since the epoch) -> aggregate list
        self.minutes: dict[tuple[int, str, int], list[Any]] = {}
        self.dropped = 0
        self.writer: _Writer | None = None
        self.start_lock = threading.Lock()


_state = _State()


def _after_fork_in_child() -> None:
    # The parent writes what it recorded; the child starts empty, with its own writer
    # (the parent's thread does not exist here) started by its first call.
    global _state
    _state = _State()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _new_aggregate(buckets: int) -> list[Any]:
    return [0, 0, 0, 0, 0, 0.0, 0.0, 0.0] + [0] * buckets


# -- the hot path ------------------------------------------------------------------------------

_random = random.random
_time = time.time
_bucket = bisect.bisect_left  # index of the first bound >= the duration: Prometheus' "le"


def record(
    row: DispatchRow,
    hook: str,
    duration: float,
    exc: BaseException | None,
    context: HostContext | None,
    args_json: str | None,
    result_json: str | None,
) -> None:
    """Count one finished hook call of ``row`` (``duration`` seconds; ``exc`` if it failed)
    and queue its record if it is a failure or sampled. Never raises, never blocks on I/O."""
    try:
        settings = _settings or _load_settings()
        if not (settings.log or settings.metrics):
            return
        now = _time()
        duration_ms = duration * 1000.0
        if exc is None:
            outcome = OUTCOME_OK
            rate = settings.rate
            keep = settings.log and rate > 0.0 and (rate >= 1.0 or _random() < rate)
        else:
            if isinstance(exc, PluginTimeout):
                outcome = OUTCOME_TIMEOUT
            elif isinstance(exc, PluginMemoryError):
                outcome = OUTCOME_MEMORY
            else:
                outcome = OUTCOME_ERROR
            keep = settings.log
        kind = _caller.get()
        entry = (
            _entry(row, hook, kind, now, duration_ms, outcome, exc, context, args_json, result_json, settings.max_data)
            if keep
            else None
        )
        bounds = settings.bounds
        index = _bucket(bounds, duration_ms)
        state = _state
        with state.lock:
            aggregate = None
            if settings.metrics and kind != CONSOLE:  # operators' tries are not the site's traffic
                key = (row.pk, row.slug, int(now // 60))
                aggregate = state.minutes.get(key)
                if aggregate is None:
                    aggregate = state.minutes[key] = _new_aggregate(len(bounds) + 1)
                aggregate[CALLS] += 1
                if outcome != OUTCOME_OK:
                    aggregate[ERRORS] += 1
                    if outcome == OUTCOME_TIMEOUT:
                        aggregate[TIMEOUTS] += 1
                    elif outcome == OUTCOME_MEMORY:
                        aggregate[MEMORY_ERRORS] += 1
                aggregate[SUM_MS] += duration_ms
                if duration_ms > aggregate[MAX_MS]:
                    aggregate[MAX_MS] = duration_ms
                aggregate[LAST] = now
                aggregate[HISTOGRAM + index] += 1
            if entry is not None:
                if len(state.queue) < settings.queue_size:
                    state.queue.append(entry)
                else:
                    state.dropped += 1
                    if aggregate is not None:
                        aggregate[DROPPED] += 1
        if state.writer is None:
            _start_writer(state)
    except Exception:  # a bug here must never fail a hook call
        _warn("could not record a call", exc_info=True)


def _entry(
    row: DispatchRow,
    hook: str,
    kind: str,
    now: float,
    duration_ms: float,
    outcome: str,
    exc: BaseException | None,
    context: HostContext | None,
    args_json: str | None,
    result_json: str | None,
    limit: int,
) -> tuple[Any, ...]:
    """What the writer needs to build a ``CallRecord``: plain values, each already cut to
    about ``limit`` (a queued record never holds a megabyte result), and no exception (its
    traceback would keep the caller's frames alive until written)."""
    # (class, message, JS name, JS message, stack, line, column)
    error: tuple[str, str, str | None, str | None, str | None, int | None, int | None] | None = None
    if exc is not None:
        if isinstance(exc, PluginScriptError):
            error = (
                type(exc).__name__,
                str(exc)[:ERROR_CHARS],
                exc.name,
                (exc.js_message or "")[:ERROR_CHARS],
                (exc.stack or "")[:STACK_CHARS],
                exc.line,
                exc.column,
            )
        else:
            error = (type(exc).__name__, str(exc)[:ERROR_CHARS], None, None, None, None, None)
    if context is not None:
        logs, cut = _first_lines(context.logs, limit)
        host: tuple[Sequence[Any], int, int, int, int, int] = (
            logs,
            context.dropped_logs + cut,
            context.host_calls,
            context.rows_read,
            context.rows_written,
            context.result_bytes,
        )
    else:
        host = ((), 0, 0, 0, 0, 0)
    return (
        row.pk,
        row.slug,
        row.version,
        hook,
        kind,
        now,
        duration_ms,
        outcome,
        error,
        host,
        _prefix(args_json, limit),
        _prefix(result_json if exc is None else None, limit),
    )


def _prefix(text: str | None, limit: int) -> tuple[str, int, bool] | None:
    """(text, or its first ``limit`` characters; its size in UTF-8 bytes; whether cut)."""
    if text is None:
        return None
    if len(text) <= limit:
        return text, -1, False  # measured by the writer
    return text[:limit], _byte_size(text), True


def _first_lines(lines: list[Any], limit: int) -> tuple[list[Any], int]:
    """The first log lines, up to about ``limit`` characters; and how many were left out."""
    total = 0
    for index, line in enumerate(lines):
        total += len(line.message) + 32
        if total > limit:
            return lines[:index], len(lines) - index
    return lines, 0


# -- the writer thread -----------------------------------------------------------------------------


def _start_writer(state: _State) -> _Writer:
    with state.start_lock:
        writer = state.writer
        if writer is None or not writer.alive():
            writer = _Writer(state)
            writer.start()
            state.writer = writer
        return writer


class _Writer:
    """Writes one process's queued records and aggregates from a daemon thread."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.pid = os.getpid()
        self.wake = threading.Event()
        self.cond = threading.Condition()
        self.requested = 0  # flush requests made
        self.done = 0  # flush requests answered
        self.ok = True  # whether the last pass wrote everything it had
        self.stopping = False
        self.retry: list[tuple[Any, ...]] = []  # records whose write failed
        self.retry_attempts = 0
        self.pending_minutes: dict[tuple[int, str, int], list[Any]] = {}
        self.written = 0
        self.write_errors = 0
        self.failed_dropped = 0
        self.next_prune = time.monotonic() + FIRST_PRUNE_AFTER_SECONDS
        self.last_warning = 0.0
        self.thread = threading.Thread(target=self._run, name="plugins_app-calllog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive() and not self.stopping

    # -- waiting ----------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        with self.cond:
            self.requested += 1
            target = self.requested
            self.wake.set()
            answered = self.cond.wait_for(lambda: self.done >= target or not self.thread.is_alive(), timeout)
            return bool(answered) and self.done >= target and self.ok

    def stop(self, timeout: float) -> bool:
        with self.cond:
            self.stopping = True
            self.requested += 1
            target = self.requested
            self.wake.set()
        self.thread.join(timeout)
        return not self.thread.is_alive() and self.done >= target and self.ok

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                settings = _settings or _load_settings()
                self.wake.wait(settings.flush_seconds)
                self.wake.clear()
                with self.cond:
                    target = self.requested
                    stopping = self.stopping
                try:
                    ok = self._pass()
                except Exception:  # a bug: keep the thread alive, say it once a minute
                    ok = False
                    _warn("the execution log writer failed", exc_info=True)
                with self.cond:
                    self.done = target
                    self.ok = ok
                    self.cond.notify_all()
                if stopping:
                    return
        finally:
            _close_connections()
            with self.cond:
                self.cond.notify_all()

    def _pass(self) -> bool:
        """Write what is queued (and what failed before); prune when due. True if all written."""
        state = self.state
        with state.lock:
            records, state.queue = state.queue, deque()
            minutes, state.minutes = state.minutes, {}
        ok = True
        try:
            if minutes or self.pending_minutes:
                ok = self._write_minutes(minutes) and ok
            if records or self.retry:
                ok = self._write_records(records) and ok
            if time.monotonic() >= self.next_prune:
                self.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                try:
                    prune_calls()
                except Exception as exc:
                    self._warning("could not prune the execution log: %s: %s", type(exc).__name__, exc)
        finally:
            _close_connections(obsolete_only=True)
        return ok

    def _write_minutes(self, minutes: dict[tuple[int, str, int], list[Any]]) -> bool:
        from . import metrics

        pending = self.pending_minutes
        for key, aggregate in minutes.items():
            merge_aggregate(pending, key, aggregate)
        try:
            metrics.store_aggregates(pending)
        except Exception as exc:
            self.write_errors += 1
            if len(pending) > MAX_PENDING_MINUTES:
                for key in sorted(pending, key=lambda k: k[2])[: len(pending) - MAX_PENDING_MINUTES]:
                    del pending[key]
            self._warning(
                "could not write the call aggregates of %d plugin-minutes (kept, retried): %s: %s",
                len(pending),
                type(exc).__name__,
                exc,
            )
            return False
        self.pending_minutes = {}
        return True

    def _write_records(self, records: deque[tuple[Any, ...]]) -> bool:
        batch = self.retry + list(records)
        try:
            self.written += write_records(batch, last_try=self.retry_attempts + 1 >= MAX_WRITE_ATTEMPTS)
        except Exception as exc:
            self.write_errors += 1
            self.retry_attempts += 1
            if self.retry_attempts >= MAX_WRITE_ATTEMPTS:
                self.failed_dropped += len(batch)
                self.retry, self.retry_attempts = [], 0
                what = "dropped"
            else:
                self.retry = batch
                what = "retried"
            self._warning(
                "could not write %d execution log records (%s): %s: %s", len(batch), what, type(exc).__name__, exc
            )
            return False
        self.retry, self.retry_attempts = [], 0
        return True

    def _warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last_warning >= WARN_EVERY_SECONDS:
            self.last_warning = now
            logger.warning(message, *args)
        else:
            logger.debug(message, *args)


def merge_aggregate(
    into: dict[tuple[int, str, int], list[Any]], key: tuple[int, str, int], aggregate: list[Any]
) -> None:
    """Add ``aggregate`` to ``into[key]``."""
    have = into.get(key)
    if have is None:
        into[key] = list(aggregate)
        return
    for i in (CALLS, ERRORS, TIMEOUTS, MEMORY_ERRORS, DROPPED, SUM_MS):
        have[i] += aggregate[i]
    have[MAX_MS] = max(have[MAX_MS], aggregate[MAX_MS])
    have[LAST] = max(have[LAST], aggregate[LAST])
    for i in range(HISTOGRAM, len(have)):
        have[i] += aggregate[i]


def _close_connections(*, obsolete_only: bool = False) -> None:
    """Close this thread's database connections (all, or those CONN_MAX_AGE retires)."""
    for connection in connections.all(initialized_only=True):
        try:
            if obsolete_only:
                connection.close_if_unusable_or_obsolete()
            else:
                connection.close()
        except Exception:  # nothing to do about a connection that fails to close
            logger.debug("closing the writer's connection %r failed", connection.alias, exc_info=True)


_last_internal_warning = 0.0


def _warn(message: str, *, exc_info: bool = False) -> None:
    global _last_internal_warning
    now = time.monotonic()
    if now - _last_internal_warning >= WARN_EVERY_SECONDS:
        _last_internal_warning = now
        logger.error(message, exc_info=exc_info)


# -- turning queued tuples into rows ------------------------------------------------------------


def _db_datetime(timestamp: float) -> datetime:
    value = datetime.fromtimestamp(timestamp, tz=dt_timezone.utc)
    from django.conf import settings

    return value if settings.USE_TZ else timezone.make_naive(value)


def _storable(text: str) -> str:
    """``text`` as the database can store it: lone surrogates and NUL written as escapes."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (at a character boundary)."""
    if len(text) <= limit // 4:
        return text
    encoded = text.encode("utf-8")
    return text if len(encoded) <= limit else encoded[:limit].decode("utf-8", "ignore")


def _byte_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


REDACTED = "[redacted]"


def redact(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with the value of every object key in ``keys`` (lower case) replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if k.lower() in keys else redact(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, keys) for v in value]
    return value


def _data(value: tuple[str, int, bool] | None, limit: int, keys: frozenset[str]) -> tuple[str, int]:
    """(stored text, full size in bytes) of an argument list or result in JSON text."""
    if value is None:
        return "", 0
    text, size, cut = value
    if keys:
        if cut:  # a prefix cannot be redacted reliably: keep none of it
            return "", size
        try:
            text = json.dumps(redact(json.loads(text), keys), ensure_ascii=False, separators=(",", ":"))
        except ValueError:  # not JSON after all: keep nothing rather than a secret
            return "", 0
    text = _storable(text)
    if size < 0 or keys:
        size = _byte_size(text)
    return _cut(text, limit), size


def _logs(lines: Any, limit: int) -> tuple[list[dict[str, str]], int]:
    kept: list[dict[str, str]] = []
    size = 0
    for line in lines:
        entry = {"level": line.level, "message": _storable(line.message)}
        size += _byte_size(json.dumps(entry, ensure_ascii=False, separators=(",", ":"))) + 1  # as stored
        if size > limit:
            return kept, len(lines) - len(kept)
        kept.append(entry)
    return kept, 0


def build_record(entry: tuple[Any, ...]) -> Any:
    """A ``CallRecord`` (unsaved) from a queued entry, capped and redacted per settings."""
    from .models import CallRecord

    (plugin_id, _slug, version, hook, kind, ended, duration_ms, outcome, error, host, args, result) = entry
    limit = int(conf.get("CALL_LOG_MAX_DATA_BYTES"))
    redact_all = bool(conf.get("CALL_LOG_REDACT_ARGS"))
    keys = frozenset(str(k).lower() for k in (conf.get("CALL_LOG_REDACT_KEYS") or ()))
    logs, logs_dropped, host_calls, rows_read, rows_written, host_result_bytes = host
    kept_logs, cut_logs = _logs(logs, limit)
    if redact_all:
        args_text, args_bytes, result_text, result_bytes = "", 0, "", 0
    else:
        args_text, args_bytes = _data(args, limit, keys)
        result_text, result_bytes = _data(result, limit, keys)
    fields: dict[str, Any] = {}
    if error is not None:
        class_name, message, js_name, js_message, stack, line, column = error
        fields = {
            "error_class": class_name[:100],
            "error_message": _storable(message),
            "js_error_name": _storable((js_name or "")[:200]),
            "js_message": _storable(js_message or ""),
            "js_stack": _storable(stack or ""),
            "line": line if isinstance(line, int) and line >= 0 else None,
            "column": column if isinstance(column, int) and column >= 0 else None,
        }
    return CallRecord(
        plugin_id=plugin_id,
        plugin_version=version,
        hook=_storable(hook[:200]),
        caller=kind,
        started_at=_db_datetime(ended - duration_ms / 1000.0),
        duration_ms=duration_ms,
        outcome=outcome,
        sampled=error is None,
        logs=kept_logs,
        logs_dropped=logs_dropped + cut_logs,
        args=args_text,
        args_bytes=args_bytes,
        result=result_text,
        result_bytes=result_bytes,
        redacted=redact_all,
        host_calls=host_calls,
        rows_read=rows_read,
        rows_written=rows_written,
        host_result_bytes=host_result_bytes,
        **fields,
    )


def write_records(entries: list[tuple[Any, ...]], *, last_try: bool = False) -> int:
    """Insert ``entries`` (skipping those of plugins deleted meanwhile); return how many
    were written. On the last try, a batch the database refuses is written row by row,
    so one bad record cannot lose the others."""
    from .models import CallRecord, Plugin

    if not entries:
        return 0
    alias = router.db_for_write(CallRecord)
    written = 0
    with transaction.atomic(using=alias):
        ids = {entry[0] for entry in entries}
        existing = dict(Plugin.objects.using(alias).filter(pk__in=ids).values_list("pk", "slug"))
        rows = [build_record(e) for e in entries if existing.get(e[0]) == e[1]]
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            if not last_try:
                CallRecord.objects.using(alias).bulk_create(chunk)
                written += len(chunk)
                continue
            for row in chunk:
                try:
                    with transaction.atomic(using=alias):
                        row.save(using=alias, force_insert=True)
                    written += 1
                except DatabaseError as exc:
                    logger.warning("dropped an execution log record of plugin %s: %s", row.plugin_id, exc)
    return written


# -- public helpers ----------------------------------------------------------------------------------


def flush(timeout: float = 10.0) -> bool:
    """Write everything this process recorded so far; wait at most ``timeout`` seconds.

    True when it was all written (or dropped as unwritable), False on a timeout or while
    the database refuses the writes (they are retried by the next pass)."""
    state = _state
    writer = state.writer
    if writer is None or not writer.alive():
        writer = _start_writer(state)
    return writer.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Write what is left and stop this process's writer thread (it closes its database
    connection). The next recorded call starts a new one."""
    state = _state
    writer = state.writer
    if writer is None or writer.pid != os.getpid() or not writer.thread.is_alive():
        return True
    with state.start_lock:
        state.writer = None
    return writer.stop(timeout)


def clear() -> None:
    """Forget what this process recorded and has not written yet (for tests)."""
    state = _state
    with state.lock:
        state.queue.clear()
        state.minutes.clear()
    writer = state.writer
    if writer is not None:
        writer.retry, writer.retry_attempts, writer.pending_minutes = [], 0, {}


def stats() -> dict[str, int]:
    """This process's counters: ``queued`` (waiting now), ``dropped`` (queue full),
    ``written``, ``write_errors`` and ``failed_dropped`` (records given up after
    ``MAX_WRITE_ATTEMPTS`` failed writes)."""
    state = _state
    writer = state.writer
    with state.lock:
        queued = len(state.queue)
        dropped = state.dropped
    return {
        "queued": queued + (len(writer.retry) if writer else 0),
        "dropped": dropped,
        "written": writer.written if writer else 0,
        "write_errors": writer.write_errors if writer else 0,
        "failed_dropped": writer.failed_dropped if writer else 0,
    }


def prune_calls(now: datetime | None = None) -> dict[str, int]:
    """Delete execution log records older than ``CALL_LOG_RETENTION_DAYS`` and per-minute
    aggregates older than ``METRICS_RETENTION_DAYS``. Returns ``{"calls": n, "minutes": m}``.
    (The running totals behind the Prometheus counters are never pruned.)"""
    from .models import CallMinute, CallRecord

    now = now or timezone.now()
    calls = _delete_before(CallRecord, "started_at", now - timedelta(days=float(conf.get("CALL_LOG_RETENTION_DAYS"))))
    minutes = _delete_before(CallMinute, "minute", now - timedelta(days=float(conf.get("METRICS_RETENTION_DAYS"))))
    if calls or minutes:
        logger.info("pruned %d execution log records and %d per-minute aggregates", calls, minutes)
    return {"calls": calls, "minutes": minutes}


def _delete_before(model: Any, field: str, cutoff: datetime, chunk: int = 5000) -> int:
    """Delete rows of ``model`` with ``field`` before ``cutoff``, a chunk per statement
    (short locks, however much there is)."""
    alias = router.db_for_write(model)
    manager = model.objects.using(alias)
    deleted: int = 0
    while True:
        ids = list(manager.filter(**{f"{field}__lt": cutoff}).order_by().values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        deleted += manager.filter(pk__in=ids).delete()[0]
        if len(ids) < chunk:
            return deleted


def _at_exit() -> None:
    try:
        shutdown(timeout=5.0)
    except Exception:  # the interpreter is going away; nothing else to do
        logger.debug("writing the execution log at exit failed", exc_info=True)


atexit.register(_at_exit)
