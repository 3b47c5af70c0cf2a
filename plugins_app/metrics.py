"""Health metrics: per-plugin, per-minute aggregates of every hook call (not sampled).

Writing: :func:`store_aggregates` adds what one process counted (see
:mod:`plugins_app.calllog`) to ``CallMinute`` (one row per plugin and minute) and
``CallTotal`` (one row per plugin, never pruned) with atomic increments
(``INSERT ... ON CONFLICT DO UPDATE SET calls = calls + excluded.calls`` on PostgreSQL and
SQLite; update-or-insert with ``F()`` elsewhere), so any number of processes can write
the same rows.

Reading: :func:`plugin_health` (one plugin, last hour and day, with series for charts),
:func:`sparklines` (many plugins, one query), :func:`percentile` (p50/p95 from the
latency histogram).

Prometheus: :func:`metrics_view` serves the same counters and histograms, built from the
database at scrape time by a custom collector: every gunicorn worker answers with the
same numbers, nothing is kept per process. Off unless ``METRICS_ENDPOINT_ENABLED``;
needs a staff session with the view permission on plugins, or ``METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Coalesce, Greatest, TruncHour
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from . import conf
from .calllog import CALLS, DROPPED, ERRORS, HISTOGRAM, LAST, MAX_MS, MEMORY_ERRORS, SUM_MS, TIMEOUTS
from .models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, CallMinute, CallTotal, Plugin

ADDED = ("calls", "errors", "timeouts", "memory_errors", "log_dropped", "duration_ms_sum", *LATENCY_COLUMNS)
# Databases whose INSERT ... ON CONFLICT (...) DO UPDATE we use; others take the portable path.
NATIVE_UPSERT_VENDORS = {"postgresql", "sqlite"}


# -- writing -------------------------------------------------------------------------------------


def _db_datetime(timestamp: float) -> datetime:
    value = datetime.fromtimestamp(timestamp, tz=dt_timezone.utc)
    return value if settings.USE_TZ else timezone.make_naive(value)


def _values(aggregate: list[Any]) -> dict[str, Any]:
    values = {
        "calls": aggregate[CALLS],
        "errors": aggregate[ERRORS],
        "timeouts": aggregate[TIMEOUTS],
        "memory_errors": aggregate[MEMORY_ERRORS],
        "log_dropped": aggregate[DROPPED],
        "duration_ms_sum": float(aggregate[SUM_MS]),
        "duration_ms_max": float(aggregate[MAX_MS]),
        "last_called": _db_datetime(aggregate[LAST]) if aggregate[LAST] else None,
    }
    values.update(zip(LATENCY_COLUMNS, aggregate[HISTOGRAM:], strict=True))
    return values


def store_aggregates(minutes: dict[tuple[int, str, int], list[Any]]) -> None:
    """Add ``{(plugin id, slug, minute since the epoch): aggregate}`` to the per-minute
    rows and the totals, in one transaction. Aggregates of plugins deleted (or replaced
    by another plugin with the same id) meanwhile are skipped."""
    if not minutes:
        return
    from .calllog import merge_aggregate

    alias = router.db_for_write(CallMinute)
    with transaction.atomic(using=alias):
        ids = {key[0] for key in minutes}
        existing = dict(Plugin.objects.using(alias).filter(pk__in=ids).values_list("pk", "slug"))
        per_minute: list[dict[str, Any]] = []
        totals: dict[tuple[int, str, int], list[Any]] = {}
        for (plugin_id, slug, minute), aggregate in sorted(minutes.items(), key=lambda item: (item[0][0], item[0][2])):
            if existing.get(plugin_id) != slug:
                continue
            per_minute.append({"plugin_id": plugin_id, "minute": _db_datetime(minute * 60), **_values(aggregate)})
            merge_aggregate(totals, (plugin_id, slug, 0), aggregate)
        per_plugin = [{"plugin_id": key[0], **_values(aggregate)} for key, aggregate in sorted(totals.items())]
        upsert(CallMinute, ("plugin_id", "minute"), per_minute, using=alias)
        upsert(CallTotal, ("plugin_id",), per_plugin, using=alias)


def upsert(model: Any, keys: tuple[str, ...], rows: list[dict[str, Any]], *, using: str) -> None:
    """Insert each row, or add its counters to the existing row with the same ``keys``
    (``duration_ms_max`` and ``last_called`` take the larger value). Atomic per row
    against concurrent writers. Call inside a transaction."""
    if not rows:
        return
    connection = connections[using]
    if connection.vendor in NATIVE_UPSERT_VENDORS:
        _native_upsert(connection, model, keys, rows)
    else:
        _portable_upsert(model, keys, rows, using)


def _native_upsert(connection: Any, model: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = list(rows[0])
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    assignments = [f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in ADDED]
    assignments.append(
        f"{quote('duration_ms_max')} = {greatest}({table}.{quote('duration_ms_max')}, excluded.{quote('duration_ms_max')})"
    )
    last = quote("last_called")
    assignments.append(f"{last} = {greatest}(COALESCE({table}.{last}, excluded.{last}), excluded.{last})")
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per_statement = max(1, 900 // len(columns))  # well under SQLite's variable limit
    adapt = {
        "minute": connection.ops.adapt_datetimefield_value,
        "last_called": connection.ops.adapt_datetimefield_value,
    }
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                params.extend(adapt[c](row[c]) if c in adapt else row[c] for c in columns)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES {', '.join([placeholders] * len(chunk))} "
                f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {', '.join(assignments)}",
                params,
            )


def _portable_upsert(model: Any, keys: tuple[str, ...], rows: list[dict[str, Any]], using: str) -> None:
    manager = model.objects.using(using)
    for row in rows:
        lookup = {k: row[k] for k in keys}
        changes: dict[str, Any] = {c: F(c) + row[c] for c in ADDED}
        changes["duration_ms_max"] = Greatest(F("duration_ms_max"), Value(row["duration_ms_max"]))
        if row["last_called"] is not None:
            changes["last_called"] = Greatest(
                Coalesce(F("last_called"), Value(row["last_called"])), Value(row["last_called"])
            )
        if manager.filter(**lookup).update(**changes):
            continue
        try:
            with transaction.atomic(using=using):
                manager.create(**row)
        except IntegrityError:  # another process inserted it first: add to theirs
            manager.filter(**lookup).update(**changes)


# -- reading ---------------------------------------------------------------------------------------


def percentile(histogram: list[int], q: float, max_ms: float | None = None) -> float | None:
    """The ``q`` quantile (0..1) in milliseconds from calls per latency bucket, None
    without calls.

    As Prometheus' ``histogram_quantile``: find the bucket holding the rank ``q * total``
    and interpolate linearly inside it. The overflow bucket (slower than the last bound)
    reaches up to ``max_ms``, the longest call seen; any bucket's upper end is at most that.
    """
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else (max_ms or lower)
            if max_ms is not None and max_ms > 0:
                upper = max(lower, min(upper, max_ms))
            return lower + (upper - lower) * max(0.0, rank - seen) / count
        seen += count
    return max_ms  # pragma: no cover - rank <= total always lands in a bucket


@dataclass
class Summary:
    """Calls over a window, every call counted."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    memory_errors: int = 0
    log_dropped: int = 0
    duration_ms_sum: float = 0.0
    duration_ms_max: float = 0.0
    last_called: datetime | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))

    def add(self, row: Any) -> None:
        self.calls += row.calls
        self.errors += row.errors
        self.timeouts += row.timeouts
        self.memory_errors += row.memory_errors
        self.log_dropped += row.log_dropped
        self.duration_ms_sum += row.duration_ms_sum
        self.duration_ms_max = max(self.duration_ms_max, row.duration_ms_max)
        if row.last_called is not None and (self.last_called is None or row.last_called > self.last_called):
            self.last_called = row.last_called
        for i, name in enumerate(LATENCY_COLUMNS):
            self.histogram[i] += getattr(row, name)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def mean_ms(self) -> float | None:
        return self.duration_ms_sum / self.calls if self.calls else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.histogram, 0.50, self.duration_ms_max)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.histogram, 0.95, self.duration_ms_max)


def summarize(rows: Iterable[Any]) -> Summary:
    summary = Summary()
    for row in rows:
        summary.add(row)
    return summary


@dataclass
class Bucket:
    """One bar of a chart: a minute or an hour."""

    start: datetime
    summary: Summary


@dataclass
class Health:
    """What the admin shows about one plugin's calls."""

    hour: Summary
    day: Summary
    minutes: list[Bucket]  # the last 60 minutes, oldest first
    hours: list[Bucket]  # the last 24 hours, oldest first
    last_called: datetime | None
    total_calls: int


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def plugin_health(plugin_id: int, now: datetime | None = None) -> Health:
    """Last hour and last day of ``plugin_id``'s calls, from ``CallMinute`` (one query,
    at most 1,440 rows) and ``CallTotal``."""
    now = now or timezone.now()
    this_minute = _floor_minute(now)
    day_start = this_minute - timedelta(minutes=24 * 60 - 1)
    hour_start = this_minute - timedelta(minutes=59)
    rows = list(
        CallMinute.objects.filter(plugin_id=plugin_id, minute__gte=day_start, minute__lte=now).order_by("minute")
    )
    minutes = [Bucket(hour_start + timedelta(minutes=i), Summary()) for i in range(60)]
    this_hour = this_minute.replace(minute=0)
    hours = [Bucket(this_hour - timedelta(hours=23 - i), Summary()) for i in range(24)]
    hour, day = Summary(), Summary()
    for row in rows:
        day.add(row)
        if row.minute >= hour_start:
            hour.add(row)
            minutes[int((row.minute - hour_start).total_seconds() // 60)].summary.add(row)
        index = 23 - int((this_hour - row.minute.replace(minute=0)).total_seconds() // 3600)
        if 0 <= index < 24:
            hours[index].summary.add(row)
    total = CallTotal.objects.filter(plugin_id=plugin_id).values_list("calls", "last_called").first()
    return Health(
        hour=hour,
        day=day,
        minutes=minutes,
        hours=hours,
        last_called=total[1] if total else None,
        total_calls=total[0] if total else 0,
    )


@dataclass
class Sparkline:
    """Calls and errors per hour over the last 24 hours, oldest first."""

    calls: list[int]
    errors: list[int]

    @property
    def total_calls(self) -> int:
        return sum(self.calls)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)


def sparklines(plugin_ids: Iterable[int], now: datetime | None = None) -> dict[int, Sparkline]:
    """Hourly calls and errors of the last 24 hours for each plugin, in one query."""
    ids = list(plugin_ids)
    result = {pk: Sparkline([0] * 24, [0] * 24) for pk in ids}
    if not ids:
        return result
    now = now or timezone.now()
    this_hour = _floor_minute(now).replace(minute=0)
    start = this_hour - timedelta(hours=23)
    rows = (
        CallMinute.objects.filter(plugin_id__in=ids, minute__gte=start, minute__lte=now)
        .annotate(hour=TruncHour("minute"))
        .values("plugin_id", "hour")
        .annotate(n=Sum("calls"), e=Sum("errors"))
        .order_by()
    )
    for row in rows:
        index = int((row["hour"] - start).total_seconds() // 3600)
        if 0 <= index < 24:
            line = result[row["plugin_id"]]
            line.calls[index] += row["n"] or 0
            line.errors[index] += row["e"] or 0
    return result


# -- Prometheus ---------------------------------------------------------------------------------------

BUCKET_BOUNDS_SECONDS = tuple(bound / 1000.0 for bound in LATENCY_BOUNDS_MS)


class PluginCollector:
    """A prometheus_client collector reading ``CallTotal`` and ``Plugin`` at scrape time."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ["plugin"]
        calls = CounterMetricFamily("plugins_app_calls", "Hook calls, every call counted.", labels=labels)
        errors = CounterMetricFamily(
            "plugins_app_call_errors", "Hook calls that failed (timeouts and memory errors included).", labels=labels
        )
        timeouts = CounterMetricFamily(
            "plugins_app_call_timeouts", "Hook calls stopped at the time limit.", labels=labels
        )
        memory = CounterMetricFamily(
            "plugins_app_call_memory_errors", "Hook calls stopped at the memory limit.", labels=labels
        )
        dropped = CounterMetricFamily(
            "plugins_app_call_log_dropped",
            "Execution log records dropped because a process's queue was full.",
            labels=labels,
        )
        duration = HistogramMetricFamily("plugins_app_call_duration_seconds", "Duration of hook calls.", labels=labels)
        last = GaugeMetricFamily(
            "plugins_app_last_call_timestamp_seconds", "When the plugin was last called (Unix time).", labels=labels
        )
        enabled = GaugeMetricFamily("plugins_app_plugin_enabled", "1 if the plugin is enabled.", labels=labels)
        paused = GaugeMetricFamily(
            "plugins_app_plugin_paused", "1 if the circuit breaker paused the plugin.", labels=labels
        )
        failures = GaugeMetricFamily(
            "plugins_app_plugin_consecutive_failures", "Failures in a row (the circuit breaker's count).", labels=labels
        )
        version = GaugeMetricFamily("plugins_app_plugin_version", "The plugin's current version.", labels=labels)
        totals = {t.plugin_id: t for t in CallTotal.objects.all()}
        plugins = Plugin.objects.order_by("slug").values_list(
            "pk", "slug", "enabled", "paused_at", "consecutive_failures", "version"
        )
        for pk, slug, is_enabled, paused_at, consecutive, current in plugins:
            enabled.add_metric([slug], 1.0 if is_enabled else 0.0)
            paused.add_metric([slug], 1.0 if paused_at is not None else 0.0)
            failures.add_metric([slug], float(consecutive))
            version.add_metric([slug], float(current))
            total = totals.get(pk)
            if total is None:
                total = CallTotal()
            calls.add_metric([slug], float(total.calls))
            errors.add_metric([slug], float(total.errors))
            timeouts.add_metric([slug], float(total.timeouts))
            memory.add_metric([slug], float(total.memory_errors))
            dropped.add_metric([slug], float(total.log_dropped))
            cumulative = 0
            buckets = []
            for bound, count in zip([*BUCKET_BOUNDS_SECONDS, math.inf], total.histogram(), strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else _le(bound), float(cumulative)))
            duration.add_metric([slug], buckets, total.duration_ms_sum / 1000.0)
            if total.last_called is not None:
                last.add_metric([slug], total.last_called.timestamp())
        yield from (calls, errors, timeouts, memory, dropped, duration, last, enabled, paused, failures, version)


def _le(bound: float) -> str:
    return repr(float(bound))


def exposition(accept: str = "") -> tuple[bytes, str]:
    """(body, content type) of the metrics, in the format ``accept`` asks for
    (OpenMetrics or Prometheus text)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PluginCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def _token_ok(request: HttpRequest) -> bool | None:
    """True/False when a bearer token was sent (right/wrong), None when none was."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    token = conf.get("METRICS_TOKEN")
    if not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8"), token.encode("utf-8"))


def _staff_ok(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return False
    return bool(user.has_perm("plugins_app.view_plugin") or user.has_perm("plugins_app.change_plugin"))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (GET). 404 unless ``METRICS_ENDPOINT_ENABLED``; 401 without a
    right bearer token or a staff session with the view permission on plugins."""
    if not conf.get("METRICS_ENDPOINT_ENABLED"):
        raise Http404("metrics are not enabled")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    token = _token_ok(request)
    if not (token or (token is None and _staff_ok(request))):
        user = getattr(request, "user", None)
        status = 403 if token is None and user is not None and user.is_authenticated else 401
        response = HttpResponse(
            "Forbidden\n" if status == 403 else "Unauthorized\n", status=status, content_type="text/plain"
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="plugins_app metrics"'
        return response
    try:
        body, content_type = exposition(request.headers.get("Accept", ""))
    except ImportError:  # system check W040 says so at start-up
        return HttpResponse("prometheus-client is not installed\n", status=503, content_type="text/plain")
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
