"""System checks of the execution log and health metrics settings (ids plugins_app.E040,
plugins_app.E041, plugins_app.W040, plugins_app.W041)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from . import conf

_POSITIVE_INTS = ("CALL_LOG_QUEUE_SIZE", "CALL_LOG_MAX_DATA_BYTES")
_POSITIVE_NUMBERS = ("CALL_LOG_FLUSH_SECONDS", "CALL_LOG_RETENTION_DAYS", "METRICS_RETENTION_DAYS")
_BOOLEANS = ("CALL_LOG_ENABLED", "CALL_LOG_REDACT_ARGS", "METRICS_ENABLED", "METRICS_ENDPOINT_ENABLED")
MIN_TOKEN_CHARS = 16


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@checks.register()
def check_call_log(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not isinstance(getattr(settings, "PLUGINS_APP", {}), dict):
        return []  # E001
    messages: list[checks.CheckMessage] = []

    def error(text: str, hint: str | None = None) -> None:
        messages.append(checks.Error(text, hint=hint, id="plugins_app.E040"))

    rate = conf.get("CALL_LOG_SAMPLE_RATE")
    if not _is_number(rate) or not 0 <= rate <= 1:
        error(
            "PLUGINS_APP['CALL_LOG_SAMPLE_RATE'] must be a number from 0 to 1.", "e.g. 0.1 records one success in ten."
        )
    for key in _POSITIVE_INTS:
        value = conf.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            error(f"PLUGINS_APP[{key!r}] must be a positive integer.")
    for key in _POSITIVE_NUMBERS:
        value = conf.get(key)
        if not _is_number(value) or not value > 0:
            error(f"PLUGINS_APP[{key!r}] must be a number > 0.")
    for key in _BOOLEANS:
        if not isinstance(conf.get(key), bool):
            error(f"PLUGINS_APP[{key!r}] must be True or False.")
    keys = conf.get("CALL_LOG_REDACT_KEYS")
    if (
        isinstance(keys, str)
        or not isinstance(keys, list | tuple | set | frozenset)
        or not all(isinstance(k, str) for k in keys)
    ):
        error(
            "PLUGINS_APP['CALL_LOG_REDACT_KEYS'] must be a list of object keys.",
            'e.g. ["password", "email"]; a single string would be read letter by letter.',
        )
    token = conf.get("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS):
        messages.append(
            checks.Error(
                f"PLUGINS_APP['METRICS_TOKEN'] must be None or a string of at least {MIN_TOKEN_CHARS} characters.",
                hint="e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="plugins_app.E041",
            )
        )
    if conf.get("METRICS_ENDPOINT_ENABLED") is True:
        try:
            import prometheus_client  # noqa: F401 - only whether it is installed
        except ImportError:
            messages.append(
                checks.Warning(
                    "METRICS_ENDPOINT_ENABLED is on, but prometheus-client is not installed: the endpoint answers 503.",
                    hint="pip install 'django-plugins-app[metrics]'",
                    id="plugins_app.W040",
                )
            )
        if conf.get("METRICS_ENABLED") is False:
            messages.append(
                checks.Warning(
                    "METRICS_ENDPOINT_ENABLED is on but METRICS_ENABLED is off: the call counters stay at zero.",
                    id="plugins_app.W041",
                )
            )
    return messages
