"""Settings of plugins_app, read lazily from ``settings.PLUGINS_APP``.

Every key is optional. Values are read on first use and re-read after
``override_settings`` (the cache is cleared on ``setting_changed``).
"""
from __future__ import annotations

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
    # Dispatch.
    "BREAKER_THRESHOLD": 5,  # consecutive failures that pause a plugin; 0 disables the breaker
    "MAX_HOOK_DEPTH": 3,  # hooks calling hooks (via host calls and signals), outermost = 1
    # Sandbox processes.
    "POOL_SIZE": 2,
    "WARM_RUNTIMES_PER_WORKER": 2,
    "RUNTIME_IDLE_SECONDS": 1.0,
    "WORKER_DATA_LIMIT_MB": 2048,
    "WORKER_RSS_LIMIT_MB": 1536,
    "CHECKOUT_TIMEOUT_SECONDS": 10.0,
    "SUPERVISOR_GRACE_MS": 500,
    "WORKER_START_TIMEOUT_SECONDS": 20.0,
}


@cache
def _user_settings() -> dict[str, Any]:
    value = getattr(settings, "PLUGINS_APP", None) or {}
    if not isinstance(value, dict):
        return {}
    return value


def get(name: str) -> Any:
    """Return the value of plugins_app setting ``name`` (user value or default)."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown plugins_app setting {name!r}")
    return _user_settings().get(name, DEFAULTS[name])


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "PLUGINS_APP":
        _user_settings.cache_clear()
