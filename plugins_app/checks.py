"""System checks for plugins_app settings (ids plugins_app.E001...)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from . import conf
from .sandbox import jsondata

_POSITIVE_INTS = [
    "DEFAULT_MEMORY_MB",
    "MAX_MEMORY_MB",
    "MIN_MEMORY_MB",
    "DEFAULT_TIMEOUT_MS",
    "MAX_TIMEOUT_MS",
    "MIN_TIMEOUT_MS",
    "MAX_SOURCE_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_ARGS_BYTES",
    "MAX_RESULT_BYTES",
    "MAX_LOG_LINES",
    "MAX_LOG_LINE_CHARS",
    "POOL_SIZE",
    "WORKER_DATA_LIMIT_MB",
    "WORKER_RSS_LIMIT_MB",
    "DEFAULT_MAX_HOST_CALLS",
    "DEFAULT_MAX_ROWS_READ",
    "DEFAULT_MAX_ROWS_WRITTEN",
    "DEFAULT_MAX_HOST_RESULT_BYTES",
    "STORAGE_MAX_KEY_CHARS",
    "STORAGE_MAX_VALUE_BYTES",
    "STORAGE_MAX_TOTAL_BYTES",
    "HTTP_MAX_BODY_BYTES",
    "HTTP_MAX_RESPONSE_BYTES",
]
_STRING_LISTS = ["HTTP_ALLOWED_REQUEST_HEADERS", "HTTP_ALLOWED_RESPONSE_HEADERS"]


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
    for key in _STRING_LISTS:
        value = conf.get(key)
        if isinstance(value, str) or not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            errors.append(
                checks.Error(
                    f"PLUGINS_APP[{key!r}] must be a list of header names.",
                    hint='e.g. ["accept", "content-type"]; a single string would be read letter by letter.',
                    id="plugins_app.E007",
                )
            )
    if errors:
        return errors
    if not conf.get("MIN_MEMORY_MB") <= conf.get("DEFAULT_MEMORY_MB") <= conf.get("MAX_MEMORY_MB"):
        errors.append(
            checks.Error("DEFAULT_MEMORY_MB must lie between MIN_MEMORY_MB and MAX_MEMORY_MB.", id="plugins_app.E004")
        )
    if not conf.get("MIN_TIMEOUT_MS") <= conf.get("DEFAULT_TIMEOUT_MS") <= conf.get("MAX_TIMEOUT_MS"):
        errors.append(
            checks.Error(
                "DEFAULT_TIMEOUT_MS must lie between MIN_TIMEOUT_MS and MAX_TIMEOUT_MS.", id="plugins_app.E005"
            )
        )
    depth = conf.get("MAX_DATA_DEPTH")
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= jsondata.MAX_SUPPORTED_DEPTH:
        errors.append(
            checks.Error(
                f"PLUGINS_APP['MAX_DATA_DEPTH'] must be an integer from 1 to {jsondata.MAX_SUPPORTED_DEPTH}.",
                hint="Data crossing the sandbox is written with orjson, which nests at most 254 levels.",
                id="plugins_app.E003",
            )
        )
    warm = conf.get("WARM_RUNTIMES_PER_WORKER")
    if warm is not None and (not isinstance(warm, int) or isinstance(warm, bool) or warm <= 0):
        errors.append(
            checks.Error(
                "PLUGINS_APP['WARM_RUNTIMES_PER_WORKER'] must be a positive integer or None.", id="plugins_app.E003"
            )
        )
    elif not any(e.id == "plugins_app.E003" for e in errors):
        errors.extend(_check_capacity(warm))
    return errors


def _check_capacity(warm: int | None) -> list[checks.CheckMessage]:
    """E006: the warm runtimes, the standby runtime and one call of a MAX_MEMORY_MB plugin
    fit under WORKER_DATA_LIMIT_MB (the model: ``sandbox.snapshot.worker_data_needed_mb``);
    past it V8 aborts the whole worker instead of raising an error."""
    from .sandbox import snapshot

    max_memory, limit = conf.get("MAX_MEMORY_MB"), conf.get("WORKER_DATA_LIMIT_MB")
    fit = snapshot.warm_runtimes_that_fit(limit, max_memory) - 1  # one is the standby
    count = fit if warm is None else warm
    needed = snapshot.worker_data_needed_mb(max(count, 1) + 1, max_memory)
    if needed <= limit:
        return []
    if fit >= 1:
        fits = f"only {fit} warm runtime{'s' if fit != 1 else ''} fit{'s' if fit == 1 else ''}"
    else:
        fits = f"not even one runtime and one call of a plugin with MAX_MEMORY_MB = {max_memory} fit"
    setting = "None (as many as fit)" if warm is None else str(warm)
    return [
        checks.Error(
            f"Sandbox workers would run out of address space: WARM_RUNTIMES_PER_WORKER = {setting} with "
            f"MAX_MEMORY_MB = {max_memory} needs WORKER_DATA_LIMIT_MB >= {needed}, but it is {limit}: {fits}.",
            hint=(
                f"Each runtime reserves ~{snapshot.RUNTIME_RESERVE_MB} MiB of address space "
                f"({snapshot.runtime_reserve_mb(max_memory)} MiB for a {max_memory} MiB plugin), the worker keeps "
                f"one more as a standby for cold starts, a call may map 2 x its memory limit + "
                f"{snapshot.CALL_SLACK_MB} MiB, and the worker itself takes ~{snapshot.WORKER_BASE_MB} MiB; past "
                "the limit V8 aborts the worker. Lower WARM_RUNTIMES_PER_WORKER or MAX_MEMORY_MB, or raise "
                "WORKER_DATA_LIMIT_MB."
            ),
            id="plugins_app.E006",
        )
    ]


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


@checks.register()
def check_signal_bindings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Signal bindings from ``PLUGINS_APP["SIGNAL_BINDINGS"]`` and ``signals.bind()``
    (ids E020-E024, W020)."""
    from .exposure import get_exposure
    from .signals import KIND_FILTER, KIND_MODEL, BindingError, parse_entry, python_bindings

    messages: list[checks.CheckMessage] = []
    user = getattr(settings, "PLUGINS_APP", {})
    if not isinstance(user, dict):
        return messages  # E001
    entries = conf.get("SIGNAL_BINDINGS")
    if not isinstance(entries, list | tuple):
        return [
            checks.Error(
                "PLUGINS_APP['SIGNAL_BINDINGS'] must be a list of dicts.",
                hint='e.g. [{"signal": "post_save", "sender": "demo.Note", "hook": "noteSaved"}]',
                id="plugins_app.E020",
            )
        ]
    found = []
    for index, entry in enumerate(entries):
        try:
            found.append(parse_entry(index, entry))
        except BindingError as exc:
            messages.append(checks.Error(exc.message, hint=exc.hint, id=exc.id))
    for binding in [*found, *python_bindings()]:
        if binding.kind not in (KIND_MODEL, KIND_FILTER):
            continue
        exposure = get_exposure(binding.sender)
        if exposure is None:
            messages.append(
                checks.Error(
                    f"{binding.origin}: sender {binding.sender!r} of {binding.signal_name} is not an exposed model.",
                    hint="Only models exposed with plugins_app.exposure.expose() can be bound; their readable "
                    "fields are the payload.",
                    id="plugins_app.E022",
                )
            )
        elif binding.signal_name == "post_save" and "created" in exposure.read:
            messages.append(
                checks.Warning(
                    f"{binding.origin}: {exposure.label} exposes a field named 'created', which the post_save "
                    "payload's created flag replaces.",
                    hint="Plugins can read the flag from the second argument (meta.created) too; rename the field "
                    "to pass it.",
                    id="plugins_app.W020",
                )
            )
    return messages


@checks.register()
def check_background(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Background (Celery) and delivery settings (ids E025, E026, W021, W022, W023)."""
    messages: list[checks.CheckMessage] = []
    user = getattr(settings, "PLUGINS_APP", {})
    if not isinstance(user, dict):
        return messages  # E001
    attempts = conf.get("DELIVERY_MAX_ATTEMPTS")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        messages.append(
            checks.Error("PLUGINS_APP['DELIVERY_MAX_ATTEMPTS'] must be an integer >= 1.", id="plugins_app.E026")
        )
    for key in (
        "DELIVERY_RETRY_BACKOFF",
        "DELIVERY_RETRY_BACKOFF_MAX",
        "DELIVERY_WAIT_SECONDS",
        "DELIVERY_RETENTION_DAYS",
        "DELIVERY_FAILED_RETENTION_DAYS",
    ):
        value = conf.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            messages.append(checks.Error(f"PLUGINS_APP[{key!r}] must be a number >= 0.", id="plugins_app.E026"))
    for key in ("DELIVERY_DRAIN_INTERVAL_SECONDS", "DELIVERY_DRAIN_BATCH"):
        value = conf.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            messages.append(checks.Error(f"PLUGINS_APP[{key!r}] must be a number > 0.", id="plugins_app.E026"))
    lease = conf.get("DELIVERY_LEASE_SECONDS")
    longest = (
        conf.get("MAX_TIMEOUT_MS") / 1000
        + conf.get("SUPERVISOR_GRACE_MS") / 1000
        + conf.get("CHECKOUT_TIMEOUT_SECONDS")
    )
    if not isinstance(lease, int | float) or isinstance(lease, bool) or not lease > 0:
        messages.append(
            checks.Error("PLUGINS_APP['DELIVERY_LEASE_SECONDS'] must be a number > 0.", id="plugins_app.E026")
        )
    elif lease <= longest:
        messages.append(
            checks.Warning(
                f"PLUGINS_APP['DELIVERY_LEASE_SECONDS'] ({lease:g} s) is not longer than the longest delivery "
                f"({longest:g} s: MAX_TIMEOUT_MS + SUPERVISOR_GRACE_MS + CHECKOUT_TIMEOUT_SECONDS).",
                hint="A drain could then attempt a delivery that is still running: a duplicate. Raise the lease.",
                id="plugins_app.W022",
            )
        )
    for old in ("BACKGROUND_MAX_RETRIES", "BACKGROUND_RETRY_BACKOFF", "BACKGROUND_RETRY_BACKOFF_MAX"):
        if old in user:
            messages.append(
                checks.Warning(
                    f"PLUGINS_APP[{old!r}] is deprecated.",
                    hint="Use DELIVERY_MAX_ATTEMPTS (= retries + 1), DELIVERY_RETRY_BACKOFF, DELIVERY_RETRY_BACKOFF_MAX.",
                    id="plugins_app.W023",
                )
            )
    path = conf.get("CELERY_APP")
    wants_celery = bool(path) or (path is None and bool(getattr(settings, "CELERY_BROKER_URL", None)))
    try:
        import celery
    except ImportError:
        if wants_celery:
            messages.append(
                checks.Warning(
                    "Celery is configured for background actions, but celery is not installed: they run inline.",
                    hint="pip install 'django-plugins-app[celery]'",
                    id="plugins_app.W021",
                )
            )
        return messages
    if path is None or path is False:
        return messages
    if not isinstance(path, str):
        messages.append(
            checks.Error("PLUGINS_APP['CELERY_APP'] must be a dotted path, None or False.", id="plugins_app.E025")
        )
        return messages
    try:
        from celery.utils.imports import symbol_by_name

        app = symbol_by_name(path)
    except (ImportError, AttributeError, ValueError) as exc:
        messages.append(
            checks.Error(
                f"PLUGINS_APP['CELERY_APP'] = {path!r} cannot be imported: {exc}",
                hint='e.g. "project.celery.app"',
                id="plugins_app.E025",
            )
        )
        return messages
    if not isinstance(app, celery.Celery):
        messages.append(
            checks.Error(f"PLUGINS_APP['CELERY_APP'] = {path!r} is not a Celery app.", id="plugins_app.E025")
        )
    return messages


# Cache backends that each process holds alone (or that hold nothing): a generation kept
# there is never seen by the other processes.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@checks.register()
def check_dispatch_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``DISPATCH_GENERATION_CACHE`` (ids E050, W050): where processes learn of plugin changes."""
    from django.core.cache.backends.filebased import FileBasedCache
    from django.utils.module_loading import import_string

    user = getattr(settings, "PLUGINS_APP", {})
    if not isinstance(user, dict):
        return []  # E001
    alias = conf.get("DISPATCH_GENERATION_CACHE")
    if alias is None:
        return []
    hint = "Leave it None (the generation is then a row in the database), or name a cache every process shares (Redis, Memcached)."
    configured = getattr(settings, "CACHES", {})
    if not isinstance(alias, str) or alias not in configured:
        return [
            checks.Error(
                f"PLUGINS_APP['DISPATCH_GENERATION_CACHE'] = {alias!r} is not an alias of settings.CACHES.",
                hint=hint,
                id="plugins_app.E050",
            )
        ]
    backend = str(configured[alias].get("BACKEND", ""))
    try:
        backend_class = import_string(backend)
    except ImportError:
        return []  # Django's own cache checks report it
    local = tuple(import_string(path) for path in PROCESS_LOCAL_CACHES)
    if isinstance(backend_class, type) and issubclass(backend_class, local):
        return [
            checks.Error(
                f"PLUGINS_APP['DISPATCH_GENERATION_CACHE'] = {alias!r} uses {backend}, which each process holds "
                "alone: other processes would never see a plugin change.",
                hint=hint,
                id="plugins_app.E050",
            )
        ]
    if isinstance(backend_class, type) and issubclass(backend_class, FileBasedCache):
        return [
            checks.Warning(
                f"PLUGINS_APP['DISPATCH_GENERATION_CACHE'] = {alias!r} uses {backend}, which only the processes of "
                "one host share: processes on other hosts would never see a plugin change.",
                hint="Fine on a single host; with several, " + hint[0].lower() + hint[1:],
                id="plugins_app.W050",
            )
        ]
    return []
