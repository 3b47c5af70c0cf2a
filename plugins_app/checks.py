"""System checks for plugins_app settings (ids plugins_app.E001...)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from . import conf

_POSITIVE_INTS = [
    "DEFAULT_MEMORY_MB", "MAX_MEMORY_MB", "MIN_MEMORY_MB", "DEFAULT_TIMEOUT_MS", "MAX_TIMEOUT_MS",
    "MIN_TIMEOUT_MS", "MAX_SOURCE_BYTES", "MAX_CONFIG_BYTES", "MAX_ARGS_BYTES", "MAX_RESULT_BYTES",
    "MAX_LOG_LINES", "MAX_LOG_LINE_CHARS", "POOL_SIZE", "WARM_RUNTIMES_PER_WORKER",
    "WORKER_DATA_LIMIT_MB", "WORKER_RSS_LIMIT_MB", "DEFAULT_MAX_HOST_CALLS", "DEFAULT_MAX_ROWS_READ",
    "DEFAULT_MAX_ROWS_WRITTEN", "DEFAULT_MAX_HOST_RESULT_BYTES", "STORAGE_MAX_KEY_CHARS",
    "STORAGE_MAX_VALUE_BYTES", "STORAGE_MAX_TOTAL_BYTES",
]


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    user = getattr(settings, "PLUGINS_APP", {})
    if not isinstance(user, dict):
        return [checks.Error("PLUGINS_APP must be a dict.", id="plugins_app.E001")]
    for key in user:
        if key not in conf.DEFAULTS:
            errors.append(
                checks.Error(
                    f"PLUGINS_APP has an unknown key {key!r}.",
                    hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    id="plugins_app.E002",
                )
            )
    for key in _POSITIVE_INTS:
        value = conf.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            errors.append(checks.Error(f"PLUGINS_APP[{key!r}] must be a positive integer.", id="plugins_app.E003"))
    if errors:
        return errors
    if not conf.get("MIN_MEMORY_MB") <= conf.get("DEFAULT_MEMORY_MB") <= conf.get("MAX_MEMORY_MB"):
        errors.append(checks.Error("DEFAULT_MEMORY_MB must lie between MIN_MEMORY_MB and MAX_MEMORY_MB.", id="plugins_app.E004"))
    if not conf.get("MIN_TIMEOUT_MS") <= conf.get("DEFAULT_TIMEOUT_MS") <= conf.get("MAX_TIMEOUT_MS"):
        errors.append(checks.Error("DEFAULT_TIMEOUT_MS must lie between MIN_TIMEOUT_MS and MAX_TIMEOUT_MS.", id="plugins_app.E005"))
    if conf.get("WORKER_DATA_LIMIT_MB") < 2 * conf.get("MAX_MEMORY_MB") + 256:
        errors.append(
            checks.Error(
                "WORKER_DATA_LIMIT_MB is too small for MAX_MEMORY_MB.",
                hint="Use at least 2 * MAX_MEMORY_MB + 256: a runtime needs room beyond its heap.",
                id="plugins_app.E006",
            )
        )
    if conf.get("WARM_RUNTIMES_PER_WORKER") * conf.get("POOL_SIZE") > 4:
        errors.append(
            checks.Warning(
                "More than 4 warm runtimes in total.",
                hint="Every open jsrun runtime spins a CPU core until it is closed (jsrun 0.3).",
                id="plugins_app.W001",
            )
        )
    return errors


@checks.register()
def check_exposures(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Re-check every exposure against the models as they are now (ids E010, W010)."""
    from .exposure import exposures, get_exposure, is_secret_field, model_label

    messages: list[checks.CheckMessage] = []
    for exposure in exposures():
        opts = exposure.model._meta
        for name in sorted(exposure.read | exposure.write | exposure.relations):
            if is_secret_field(exposure.model, name):
                messages.append(
                    checks.Error(
                        f"{exposure.label}.{name} holds a secret and is exposed to plugins.",
                        hint="Remove it from the expose() call.",
                        obj=exposure.model,
                        id="plugins_app.E010",
                    )
                )
        for name in sorted(exposure.relations):
            target = opts.get_field(name).related_model
            if target is not None and get_exposure(model_label(target)) is None:
                messages.append(
                    checks.Warning(
                        f"{exposure.label}.{name} is exposed as a relation, but its target "
                        f"{target._meta.label} is not exposed: following it will always be denied.",
                        hint=f"expose({target._meta.label!r}, read=[...]) or drop the relation.",
                        obj=exposure.model,
                        id="plugins_app.W010",
                    )
                )
    return messages
