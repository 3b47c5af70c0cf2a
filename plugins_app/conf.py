"""Settings of plugins_app, read lazily from ``settings.PLUGINS_APP``.

Every key is optional. Values are read on first use and re-read after
``override_settings`` (the cache is cleared on ``setting_changed``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

MIB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    # Limits given to a new plugin, and the hard upper bounds an operator may set.
    "DEFAULT_MEMORY_MB": 64,
    "MAX_MEMORY_MB": 512,
    "MIN_MEMORY_MB": 8,
    "DEFAULT_TIMEOUT_MS": 1000,
    "MAX_TIMEOUT_MS": 30_000,
    "MIN_TIMEOUT_MS": 10,
    "MAX_SOURCE_BYTES": 256 * 1024,
    "MAX_CONFIG_BYTES": 64 * 1024,
    # Host API use per hook call (defaults of new plugins; operators change them per plugin).
    "DEFAULT_MAX_HOST_CALLS": 200,
    "DEFAULT_MAX_ROWS_READ": 1000,
    "DEFAULT_MAX_ROWS_WRITTEN": 100,
    "DEFAULT_MAX_HOST_RESULT_BYTES": 1 * MIB,
    # Per-plugin storage quotas.
    "STORAGE_MAX_KEY_CHARS": 200,
    "STORAGE_MAX_VALUE_BYTES": 64 * 1024,
    "STORAGE_MAX_TOTAL_BYTES": 1 * MIB,
    # Data crossing the sandbox boundary.
    "MAX_ARGS_BYTES": 1 * MIB,
    "MAX_RESULT_BYTES": 1 * MIB,
    "MAX_LOG_LINES": 100,
    "MAX_LOG_LINE_CHARS": 2000,
    # Arguments, results and host-call data nested deeper than this are refused
    # (PluginDataError / a catchable JS RangeError). Kept well below the JSON codecs' own limits.
    "MAX_DATA_DEPTH": 128,
    # Dispatch.
    "BREAKER_THRESHOLD": 5,  # consecutive failures that pause a plugin; 0 disables the breaker
    # do_action/apply_filters of a hook not declared in the hook catalogue (plugins_app.catalogue):
    # "warn" (log once per hook name per process), "error" (raise UndeclaredHook) or "ignore".
    "UNDECLARED_HOOKS": "warn",
    "MAX_HOOK_DEPTH": 3,  # hooks calling hooks (via host calls and signals), outermost = 1
    # Where the dispatch generation lives (plugins_app.dispatch): None = a row in the database,
    # incremented in the transaction of each change; or an alias of settings.CACHES shared
    # by every process (e.g. Redis), incremented after the commit. Checked by E050.
    "DISPATCH_GENERATION_CACHE": None,
    # Sandbox processes.
    "POOL_SIZE": 2,
    # Warm runtimes are parked (no CPU) but each reserves ~65 MiB of address space under
    # WORKER_DATA_LIMIT_MB; the idle timeout returns their memory.
    # None: as many as fit under WORKER_DATA_LIMIT_MB next to one call of a MAX_MEMORY_MB
    # plugin and the standby runtime (see warm_runtimes_per_worker()).
    "WARM_RUNTIMES_PER_WORKER": None,
    "RUNTIME_IDLE_SECONDS": 60.0,
    "WORKER_DATA_LIMIT_MB": 4096,  # address space, not memory: ~72 MiB per warm runtime
    "WORKER_RSS_LIMIT_MB": 1536,
    "CHECKOUT_TIMEOUT_SECONDS": 10.0,
    "SUPERVISOR_GRACE_MS": 500,
    "WORKER_START_TIMEOUT_SECONDS": 20.0,
    # OS layers of every sandbox process (see docs/security.md). A layer the platform cannot
    # apply is reported by system check W030 and `manage.py plugins doctor`, never skipped silently.
    "SANDBOX_SECCOMP": True,  # seccomp filter: no sockets, exec, ptrace, mount, files opened for writing
    "SANDBOX_LANDLOCK": True,  # Landlock: read-only file access, where the kernel offers it
    # When the Django process runs as root, sandboxes switch to this user (name or uid) after
    # their imports; None keeps root (not recommended).
    "SANDBOX_USER": "nobody",
    # Plugin-served HTTP endpoints (/plugins/<slug>/...; see docs/views-and-templates.md).
    "HTTP_MAX_BODY_BYTES": 64 * 1024,  # larger request bodies get 413 without calling the plugin
    "HTTP_MAX_RESPONSE_BYTES": 512 * 1024,  # larger plugin responses become 502
    # Request headers a plugin may see (lower case). Cookie, Authorization and
    # Proxy-Authorization never reach a plugin, whatever is listed here.
    "HTTP_ALLOWED_REQUEST_HEADERS": (
        "accept",
        "accept-language",
        "content-type",
        "user-agent",
        "if-none-match",
        "if-modified-since",
    ),
    # Response headers a plugin may set (lower case). Set-Cookie, security and framing
    # headers are always dropped; Location is kept only as a relative URL.
    "HTTP_ALLOWED_RESPONSE_HEADERS": (
        "content-type",
        "cache-control",
        "etag",
        "last-modified",
        "expires",
        "content-language",
        "location",
    ),
    # Signal bindings (see plugins_app/signals.py and docs/hooks.md): a list of dicts
    # {"signal", "hook", "sender", "mode", "fail_closed"}.
    "SIGNAL_BINDINGS": (),
    # Background actions: the Celery app (dotted path); None = use Celery if
    # CELERY_BROKER_URL is set in Django settings; False = never (run inline after commit).
    "CELERY_APP": None,
    # Deliveries of after-commit and background hooks (the outbox; see docs/hooks.md).
    "DELIVERY_MAX_ATTEMPTS": 5,  # attempts before a delivery is marked failed
    "DELIVERY_RETRY_BACKOFF": 1.0,  # seconds before the second attempt, doubled for each next one
    "DELIVERY_RETRY_BACKOFF_MAX": 300.0,  # longest wait between attempts
    # A delivery being attempted is leased for this long; a process killed mid-delivery
    # leaves a lease that expires, and the next drain attempts it again. Longer than any call.
    "DELIVERY_LEASE_SECONDS": 90.0,
    "DELIVERY_WAIT_SECONDS": 60.0,  # a delivery to a disabled or paused plugin waits this long, no attempt used
    "DELIVERY_DRAIN_INTERVAL_SECONDS": 5.0,  # how often the Celery beat task drains the outbox
    "DELIVERY_DRAIN_BATCH": 100,  # deliveries one drain pass attempts at most
    "DELIVERY_RETENTION_DAYS": 7,  # delivered rows are pruned after this
    "DELIVERY_FAILED_RETENTION_DAYS": 30,  # failed and discarded rows are pruned after this
    # Deprecated (before the outbox): read as DELIVERY_MAX_ATTEMPTS = BACKGROUND_MAX_RETRIES + 1,
    # DELIVERY_RETRY_BACKOFF and DELIVERY_RETRY_BACKOFF_MAX when those are not set.
    "BACKGROUND_MAX_RETRIES": 3,
    "BACKGROUND_RETRY_BACKOFF": 1.0,
    "BACKGROUND_RETRY_BACKOFF_MAX": 60.0,
    # -- Execution log and health metrics (plugins_app.calllog, plugins_app.metrics; see
    # docs/operators.md#execution-log-and-health). Checked by plugins_app/checks_calls.py.
    "CALL_LOG_ENABLED": True,  # record calls in the execution log (CallRecord)
    "CALL_LOG_SAMPLE_RATE": 0.1,  # share of successful calls recorded, 0..1; failures are always recorded
    "CALL_LOG_QUEUE_SIZE": 2000,  # records waiting for the writer per process; more are dropped (counted)
    "CALL_LOG_FLUSH_SECONDS": 1.0,  # how often each process's writer thread writes what was recorded
    "CALL_LOG_MAX_DATA_BYTES": 16 * 1024,  # arguments, result and log lines kept per record (each)
    "CALL_LOG_REDACT_ARGS": False,  # True: store neither arguments nor results
    "CALL_LOG_REDACT_KEYS": (),  # object keys (any depth, any case) whose values are stored as "[redacted]"
    "CALL_LOG_RETENTION_DAYS": 7,  # records are pruned after this
    "METRICS_ENABLED": True,  # per-plugin, per-minute aggregates of every call (health view, Prometheus)
    "METRICS_RETENTION_DAYS": 30,  # per-minute aggregates are pruned after this (the totals are kept)
    "METRICS_ENDPOINT_ENABLED": False,  # serve Prometheus metrics at plugins_app.urls "metrics"
    "METRICS_TOKEN": None,  # a secret: scrapers send "Authorization: Bearer <token>" (staff sessions also work)
}


@cache
def _user_settings() -> dict[str, Any]:
    value = getattr(settings, "PLUGINS_APP", None) or {}
    if not isinstance(value, dict):
        return {}
    return value


# New name -> (deprecated name, conversion of its value).
_DEPRECATED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "DELIVERY_MAX_ATTEMPTS": ("BACKGROUND_MAX_RETRIES", lambda v: int(v) + 1),
    "DELIVERY_RETRY_BACKOFF": ("BACKGROUND_RETRY_BACKOFF", float),
    "DELIVERY_RETRY_BACKOFF_MAX": ("BACKGROUND_RETRY_BACKOFF_MAX", float),
}


def get(name: str) -> Any:
    """Return the value of plugins_app setting ``name`` (user value or default)."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown plugins_app setting {name!r}")
    user = _user_settings()
    if name not in user and name in _DEPRECATED:
        old, convert = _DEPRECATED[name]
        if old in user:
            return convert(user[old])
    return user.get(name, DEFAULTS[name])


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "PLUGINS_APP":
        _user_settings.cache_clear()


def warm_runtimes_per_worker() -> int:
    """``WARM_RUNTIMES_PER_WORKER``, or when it is None, how many runtimes fit in a worker's
    address space (``WORKER_DATA_LIMIT_MB``) next to one call of a ``MAX_MEMORY_MB`` plugin
    and the standby runtime the worker keeps for the next cold start (at least 1)."""
    value = get("WARM_RUNTIMES_PER_WORKER")
    if value is not None:
        return int(value)
    from .sandbox import snapshot

    return max(1, snapshot.warm_runtimes_that_fit(get("WORKER_DATA_LIMIT_MB"), get("MAX_MEMORY_MB")) - 1)
