"""Database models: a Plugin is its source, its limits, its configuration and its version."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf, dispatch


def default_memory_mb() -> int:
    return int(conf.get("DEFAULT_MEMORY_MB"))


def default_timeout_ms() -> int:
    return int(conf.get("DEFAULT_TIMEOUT_MS"))


def default_config() -> dict[str, Any]:
    return {}


def default_max_host_calls() -> int:
    return int(conf.get("DEFAULT_MAX_HOST_CALLS"))


def default_max_rows_read() -> int:
    return int(conf.get("DEFAULT_MAX_ROWS_READ"))


def default_max_rows_written() -> int:
    return int(conf.get("DEFAULT_MAX_ROWS_WRITTEN"))


def default_max_host_result_bytes() -> int:
    return int(conf.get("DEFAULT_MAX_HOST_RESULT_BYTES"))


def make_runtime_key(slug: str, version: int, fingerprint: str) -> str:
    """Identifies one exact version of a plugin inside the sandbox's caches."""
    return f"{slug}@{version}:{fingerprint[:16]}"


@dataclass(frozen=True)
class DispatchRow:
    """The columns a hook call needs to decide whether and how to run a plugin."""

    pk: int
    slug: str
    enabled: bool
    hooks: tuple[str, ...]
    version: int
    fingerprint: str
    timeout_ms: int
    memory_limit_mb: int
    max_host_calls: int = 0
    max_rows_read: int = 0
    max_rows_written: int = 0
    max_host_result_bytes: int = 0
    consecutive_failures: int = 0
    paused: bool = False

    @cached_property  # frozen: computed once per row (rows are cached per process)
    def runtime_key(self) -> str:
        return make_runtime_key(self.slug, self.version, self.fingerprint)


_DISPATCH_COLUMNS = (
    "id",
    "slug",
    "enabled",
    "hooks",
    "version",
    "fingerprint",
    "timeout_ms",
    "memory_limit_mb",
    "max_host_calls",
    "max_rows_read",
    "max_rows_written",
    "max_host_result_bytes",
    "consecutive_failures",
    "paused_at",
)


@cache
def _dispatch_sql(alias: str, table: str) -> str:
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(c) for c in _DISPATCH_COLUMNS)
    return f"SELECT {columns} FROM {quote(table)} WHERE {quote('slug')} = %s"


def _dispatch_row(row: tuple[Any, ...]) -> DispatchRow:
    (
        pk,
        slug,
        enabled,
        hooks,
        version,
        fingerprint,
        timeout_ms,
        memory_limit_mb,
        max_host_calls,
        max_rows_read,
        max_rows_written,
        max_host_result_bytes,
        consecutive_failures,
        paused_at,
    ) = row  # _DISPATCH_COLUMNS
    if isinstance(hooks, str | bytes):  # JSON columns arrive as text on some backends
        hooks = json.loads(hooks)
    return DispatchRow(
        pk,
        slug,
        bool(enabled),
        tuple(hooks or ()),
        version,
        fingerprint,
        timeout_ms,
        memory_limit_mb,
        max_host_calls,
        max_rows_read,
        max_rows_written,
        max_host_result_bytes,
        consecutive_failures,
        paused=paused_at is not None,
    )


# Columns whose change is not an edit of the plugin: writing only these leaves its
# ``edit_token`` (optimistic concurrency, plugins_app.revisions) as it is.
NOT_EDITS = frozenset(
    {
        "consecutive_failures",
        "paused_at",
        "paused_reason",
        "updated_at",
        "updated_by",
        "updated_by_id",
        "edit_token",
    }
)


# Plugin columns that no hook call reads: writing only these leaves the dispatch cache
# (plugins_app.dispatch) valid. Any other write invalidates it.
NOT_DISPATCHED = frozenset(
    {
        "name",
        "description",
        "paused_reason",
        "updated_at",
        "updated_by",
        "updated_by_id",
        "created_at",
        "created_by",
        "created_by_id",
        "edit_token",
    }
)


_M = TypeVar("_M", bound=models.Model)


class DispatchQuerySet(models.QuerySet[_M]):
    """A QuerySet whose writes invalidate the dispatch cache (:func:`plugins_app.dispatch.invalidate`,
    in the same transaction): ``update()``, ``delete()``, ``bulk_create()``, ``bulk_update()``.
    These send no model signals, so the cache cannot learn of them any other way."""

    def _dispatched(self, fields: Any) -> bool:
        return True

    def _written_db(self) -> str:
        return self._db or router.db_for_write(self.model, **self._hints)  # type: ignore[attr-defined]  # QuerySet internals the stubs omit

    def update(self, **kwargs: Any) -> int:
        count = super().update(**kwargs)
        if count and self._dispatched(kwargs):
            dispatch.invalidate(self._written_db())
        return count

    update.alters_data = True  # type: ignore[attr-defined]  # Django's flag on QuerySet methods

    def delete(self) -> tuple[int, dict[str, int]]:
        result = super().delete()
        if result[0]:
            dispatch.invalidate(self._written_db())
        return result

    delete.alters_data = True  # type: ignore[attr-defined]  # Django's flags on QuerySet methods
    delete.queryset_only = True  # type: ignore[attr-defined]  # (as on QuerySet.delete)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            dispatch.invalidate(self._written_db())
        return created

    def bulk_update(self, objs: Any, fields: Any, *args: Any, **kwargs: Any) -> int:
        count = super().bulk_update(objs, fields, *args, **kwargs)
        if count and self._dispatched(fields):
            dispatch.invalidate(self._written_db())
        return count


class PluginQuerySet(DispatchQuerySet["Plugin"]):
    def enabled(self) -> PluginQuerySet:
        return self.filter(enabled=True)

    def _dispatched(self, fields: Any) -> bool:
        return bool(set(fields) - NOT_DISPATCHED)

    def update(self, **kwargs: Any) -> int:
        """``QuerySet.update()`` that also rotates ``edit_token`` when it changes what an
        operator edits (enable/disable, a grant bumping ``version``...), so that a form
        opened before it is refused (see :mod:`plugins_app.revisions`). The circuit
        breaker's columns and the "updated" stamps alone leave the token alone. Invalidates
        the dispatch cache unless it wrote only columns dispatch does not read."""
        if set(kwargs) - NOT_EDITS:
            kwargs.setdefault("edit_token", uuid.uuid4())
        return super().update(**kwargs)

    def count_failure(self) -> None:
        """Add one to ``consecutive_failures`` (the circuit breaker). Only a plugin's first
        failure invalidates the dispatch cache: dispatch reads the count only as "failing
        or not" (whether a success must reset it), and a flaky plugin would otherwise make
        every process reload its state after each failure."""
        if not self.filter(consecutive_failures=0).update(consecutive_failures=1):
            models.QuerySet.update(self, consecutive_failures=models.F("consecutive_failures") + 1)

    def dispatch_row(self, slug: str) -> DispatchRow | None:
        """Fetch what a hook call needs about plugin ``slug`` in one plain statement.

        This runs on every hook call, so it skips the ORM's query building, which cost
        ~250 us per call here against ~30 us for the statement itself (bench/run.py).
        """
        with connections[self.db].cursor() as cursor:
            cursor.execute(_dispatch_sql(self.db, self.model._meta.db_table), [slug])
            row = cursor.fetchone()
        if row is None:
            return None
        return _dispatch_row(row)

    def dispatch_rows_for_hook(self, hook: str) -> list[DispatchRow]:
        """Enabled, unpaused plugins that define ``hook``, in dispatch order.

        Goes through the ``PluginHook`` index, so its cost depends on how many plugins
        implement the hook, not on how many are installed.
        """
        return self.filter(hook_index__name=hook, enabled=True, paused_at__isnull=True).dispatch_rows()

    def dispatch_rows(self) -> list[DispatchRow]:
        """The dispatch rows of these plugins, in dispatch order (priority, then slug)."""
        rows = self.order_by("priority", "slug").values_list(*[c if c != "id" else "pk" for c in _DISPATCH_COLUMNS])
        return [_dispatch_row(row) for row in rows]


class Plugin(models.Model):
    """A user-installed JavaScript plugin.

    ``source`` is a classic script defining ``const plugin = { hookName(...) {...} }``.
    Saving validates it in a sandbox (see :meth:`clean`), records the hooks it defines
    and bumps ``version`` whenever the source, configuration or limits change, so every
    process picks up the change before its next call.
    """

    slug = models.SlugField(_("slug"), max_length=64, unique=True, help_text=_("Stable, URL-safe identifier."))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    source = models.TextField(
        _("source"), help_text=_("JavaScript defining <code>const plugin = { hook(...) { ... } }</code>.")
    )
    enabled = models.BooleanField(_("enabled"), default=False, db_index=True)
    memory_limit_mb = models.PositiveIntegerField(
        _("memory limit (MiB)"), default=default_memory_mb, help_text=_("V8 heap and buffer limit per call.")
    )
    timeout_ms = models.PositiveIntegerField(
        _("time limit (ms)"), default=default_timeout_ms, help_text=_("Wall-clock limit per call.")
    )
    config = models.JSONField(
        _("configuration"),
        default=default_config,
        blank=True,
        help_text=_("JSON object, visible to the plugin as the read-only global <code>config</code>."),
    )
    config_schema = models.JSONField(
        _("configuration schema"),
        null=True,
        blank=True,
        help_text=_("Optional JSON Schema that <code>config</code> must satisfy (checked on save)."),
    )
    max_host_calls = models.PositiveIntegerField(
        _("host calls per call"),
        default=default_max_host_calls,
        help_text=_("db/storage calls allowed per hook call (log is capped separately)."),
    )
    max_rows_read = models.PositiveIntegerField(
        _("rows read per call"),
        default=default_max_rows_read,
        help_text=_("Rows <code>db</code> may return per hook call."),
    )
    max_rows_written = models.PositiveIntegerField(
        _("rows written per call"),
        default=default_max_rows_written,
        help_text=_("Rows <code>db</code> may create, update or delete per hook call."),
    )
    max_host_result_bytes = models.PositiveIntegerField(
        _("host result bytes per call"),
        default=default_max_host_result_bytes,
        help_text=_("Total size of what host calls may return to the plugin per hook call."),
    )
    hooks = models.JSONField(_("hooks"), default=list, editable=False, help_text=_("Discovered on save."))
    priority = models.IntegerField(
        _("priority"),
        default=100,
        db_index=True,
        help_text=_("Actions and filters run plugins in ascending priority, then by slug."),
    )
    http_enabled = models.BooleanField(
        _("serves HTTP"),
        default=False,
        help_text=_(
            "Lets the plugin answer requests under <code>/plugins/&lt;slug&gt;/</code> with its <code>onRequest</code> hook."
        ),
    )
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0, editable=False)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True, editable=False)
    paused_reason = models.TextField(_("pause reason"), blank=True, editable=False)
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    fingerprint = models.CharField(max_length=64, editable=False, blank=True)
    edit_token = models.UUIDField(
        _("edit token"),
        default=uuid.uuid4,
        editable=False,
        help_text=_("Changes on every save: a form opened before another save is refused (plugins_app.revisions)."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )
    # Not columns: set on the instance by plugins_app.validation, read by save() and the
    # hook catalogue's save warnings (only declared here, for the type checker).
    _validated_fingerprint: str
    _hook_arity: dict[str, int]

    objects = PluginQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        verbose_name = _("plugin")
        verbose_name_plural = _("plugins")
        # The admin console (plugins_app.admin.console); running a draft or a real (not dry)
        # run there also needs the change permission.
        permissions = [("run_console", _("Can run plugins from the console"))]

    def __str__(self) -> str:
        return self.name or self.slug

    # -- saving ------------------------------------------------------------------------------
    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, making sure the current source was validated and the version is current.

        A plugin whose source changed without :meth:`clean` being called is validated
        here; if that fails, :class:`~plugins_app.exceptions.PluginValidationError` is
        raised and nothing is saved.
        """
        from .exceptions import PluginValidationError
        from .validation import validate_plugin

        fingerprint = self.compute_fingerprint()
        stored = fingerprint == self.fingerprint and self.hooks
        if not stored and getattr(self, "_validated_fingerprint", None) != fingerprint:
            try:
                validate_plugin(self)
            except ValidationError as exc:
                raise PluginValidationError("; ".join(exc.messages), slug=self.slug) from None
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.version = (self.version or 0) + 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "fingerprint", "version", "hooks"}
        # Revisions and optimistic concurrency (plugins_app.revisions): every save that
        # writes an edited column gets a new edit token and may record a revision.
        update_fields = kwargs.get("update_fields")
        edits = update_fields is None or bool(set(update_fields) - NOT_EDITS)
        if edits:
            self.edit_token = uuid.uuid4()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "edit_token"}
        super().save(*args, **kwargs)
        self._sync_hook_index()
        if update_fields is None or set(update_fields) - NOT_DISPATCHED:
            dispatch.invalidate(self._state.db)
        if edits:
            _note_change(self.pk)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        using = kwargs.get("using") or (args[0] if args else None) or router.db_for_write(Plugin, instance=self)
        result = super().delete(*args, **kwargs)
        dispatch.invalidate(using)
        return result

    def _sync_hook_index(self) -> None:
        wanted = set(self.hooks or ())
        index = self.hook_index.all()
        have = {h.name for h in index}
        if wanted != have:
            index.exclude(name__in=wanted).delete()
            PluginHook.objects.bulk_create([PluginHook(plugin=self, name=n) for n in wanted - have])

    # -- validation ------------------------------------------------------------------------
    def clean(self) -> None:
        """Check sizes and limits, then load the source in a sandbox and discover its hooks."""
        from .validation import validate_plugin

        validate_plugin(self)

    # -- versioning --------------------------------------------------------------------
    def compute_fingerprint(self) -> str:
        """Hash of everything that changes what the sandbox runs."""
        payload = json.dumps(
            [
                self.source,
                self.config,
                self.config_schema,
                self.memory_limit_mb,
                self.timeout_ms,
                self.max_host_calls,
                self.max_rows_read,
                self.max_rows_written,
                self.max_host_result_bytes,
            ],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def runtime_key(self) -> str:
        """Identifies this exact version inside the sandbox's caches."""
        return make_runtime_key(self.slug, self.version, self.fingerprint)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class PluginHook(models.Model):
    """One hook a plugin defines: an index so that dispatch by hook name touches only
    the plugins that implement it, however many are installed."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="hook_index")
    name = models.CharField(max_length=200, db_index=True)

    objects = DispatchQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plugin", "name"], name="plugins_app_hook_unique")]

    def __str__(self) -> str:
        return f"{self.plugin_id}:{self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        dispatch.invalidate(self._state.db)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        using = kwargs.get("using") or (args[0] if args else None) or router.db_for_write(PluginHook, instance=self)
        result = super().delete(*args, **kwargs)
        dispatch.invalidate(using)
        return result


class PluginGrant(models.Model):
    """What one plugin may do with one exposed model (see ``plugins_app.exposure``).

    Field lists are narrowed to what the site's developers exposed; a grant can never
    widen that. Changing a grant bumps the plugin's version.
    """

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="grants")
    model = models.CharField(_("model"), max_length=200, help_text=_('"app_label.ModelName" of an exposed model.'))
    read = models.JSONField(_("readable fields"), default=list, blank=True)
    create = models.JSONField(_("fields it may set on create"), default=list, blank=True)
    update = models.JSONField(_("fields it may update"), default=list, blank=True)
    can_delete = models.BooleanField(_("may delete"), default=False)

    objects = DispatchQuerySet.as_manager()

    class Meta:
        ordering = ["plugin", "model"]
        constraints = [models.UniqueConstraint(fields=["plugin", "model"], name="plugins_app_grant_unique_model")]
        verbose_name = _("grant")
        verbose_name_plural = _("grants")

    def __str__(self) -> str:
        return f"{self.plugin.slug} → {self.model}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save (validating against the exposure even without ``full_clean()``) and
        bump the plugin's version."""
        from .exposure import validate_grant

        validate_grant(self)
        super().save(*args, **kwargs)
        Plugin.objects.filter(pk=self.plugin_id).update(version=models.F("version") + 1)
        _note_change(self.plugin_id)

    def clean(self) -> None:
        from .exposure import validate_grant

        validate_grant(self)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete(*args, **kwargs)
        Plugin.objects.filter(pk=self.plugin_id).update(version=models.F("version") + 1)
        _note_change(self.plugin_id)
        return result


class DispatchGeneration(models.Model):
    """The dispatch generation: one row, incremented (``UPDATE ... SET value = value + 1``)
    in the transaction of every change that affects dispatch, so that every process knows
    when its cached dispatch state is stale (see :mod:`plugins_app.dispatch`). Not used when
    ``DISPATCH_GENERATION_CACHE`` names a cache instead."""

    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("dispatch generation")
        verbose_name_plural = _("dispatch generation")

    def __str__(self) -> str:
        return str(self.value)


class StorageItem(models.Model):
    """One key of a plugin's private key/value store (the JS global ``storage``)."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="storage_items")
    key = models.CharField(max_length=255)
    value = models.JSONField(null=True)
    # Integers live here instead of in ``value`` so that ``storage.incr`` can be one
    # atomic UPDATE ... SET number = number + n on every database.
    number = models.BigIntegerField(null=True)
    size = models.PositiveIntegerField(default=0, help_text=_("Bytes of key + JSON value, for quotas."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plugin", "key"]
        constraints = [models.UniqueConstraint(fields=["plugin", "key"], name="plugins_app_storage_unique_key")]
        verbose_name = _("storage item")
        verbose_name_plural = _("storage items")

    def __str__(self) -> str:
        return f"{self.plugin_id}:{self.key}"


class Delivery(models.Model):
    """One hook call owed to one plugin because of a committed change (the outbox).

    Written in the same transaction as the change, so a rollback delivers nothing and a
    commit is never lost; attempted after the commit and retried until delivered or
    failed (see :mod:`plugins_app.outbox`). ``delivery_id`` stays the same across
    retries: plugins receive it as ``meta.deliveryId`` to deduplicate.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        IN_PROGRESS = "in_progress", _("in progress")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")
        DISCARDED = "discarded", _("discarded")

    class Mode(models.TextChoices):
        AFTER_COMMIT = "after_commit", _("after commit")
        BACKGROUND = "background", _("background")

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="deliveries")
    hook = models.CharField(max_length=200)
    mode = models.CharField(max_length=20, choices=Mode.choices)
    args = models.JSONField(default=list, help_text=_("Arguments of the hook call (JSON data)."))
    meta = models.JSONField(
        default=dict, help_text=_("Passed as the last argument, with deliveryId and attempt added.")
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    # A fresh token per claim: an attempt records its outcome only while its claim holds,
    # so an attempt that outlived its lease cannot overwrite the one that took over.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    last_error_stack = models.TextField(blank=True)
    plugin_version = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Version of the plugin that ran the last attempt.")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="plugins_app_delivery_due")]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")

    def __str__(self) -> str:
        return f"{self.hook} #{str(self.delivery_id)[:8]} ({self.get_state_display()})"


# -- execution log and health (plugins_app.calllog, plugins_app.metrics) -----------------

# Upper bounds (milliseconds) of the latency histogram buckets kept per plugin and minute
# (CallMinute.h0 ... h15; h16 counts the slower calls). Changing them needs a migration.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10_000,
    30_000,
)
LATENCY_COLUMNS: tuple[str, ...] = tuple(f"h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class CallRecord(models.Model):
    """One recorded hook call (the execution log): every failure, and a sample of the
    successes (``CALL_LOG_SAMPLE_RATE``). Written by :mod:`plugins_app.calllog`'s
    background writer, never by the call itself; read-only in the admin."""

    class Outcome(models.TextChoices):
        OK = "ok", _("ok")
        ERROR = "error", _("error")
        TIMEOUT = "timeout", _("timeout")
        MEMORY = "memory", _("memory error")

    class Caller(models.TextChoices):
        PYTHON = "python", _("python")
        VIEW = "view", _("view")
        TEMPLATE = "template", _("template")
        SIGNAL = "signal", _("signal")
        BACKGROUND = "background", _("background")
        ENDPOINT = "endpoint", _("endpoint")
        CONSOLE = "console", _("console")
        CLI = "cli", _("CLI")

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="call_records")
    plugin_version = models.PositiveIntegerField(_("plugin version"))
    hook = models.CharField(_("hook"), max_length=200)
    caller = models.CharField(_("caller"), max_length=32, choices=Caller.choices, default=Caller.PYTHON)
    started_at = models.DateTimeField(_("started"))
    duration_ms = models.FloatField(_("duration (ms)"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    sampled = models.BooleanField(
        _("sampled"),
        default=False,
        help_text=_("Recorded as part of the sample of successes (failures are all recorded)."),
    )
    error_class = models.CharField(_("error class"), max_length=100, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    js_error_name = models.CharField(_("JavaScript error name"), max_length=200, blank=True)
    js_message = models.TextField(_("JavaScript message"), blank=True)
    js_stack = models.TextField(_("JavaScript stack"), blank=True)
    line = models.PositiveIntegerField(_("line"), null=True, blank=True)
    column = models.PositiveIntegerField(_("column"), null=True, blank=True)
    logs = models.JSONField(_("log lines"), default=list, blank=True)
    logs_dropped = models.PositiveIntegerField(
        _("log lines not kept"), default=0, help_text=_("Over MAX_LOG_LINES, or over the record's size cap.")
    )
    args = models.TextField(_("arguments"), blank=True, help_text=_("JSON list; cut at CALL_LOG_MAX_DATA_BYTES."))
    args_bytes = models.PositiveIntegerField(_("arguments size (bytes)"), default=0)
    result = models.TextField(_("result"), blank=True, help_text=_("JSON; cut at CALL_LOG_MAX_DATA_BYTES."))
    result_bytes = models.PositiveIntegerField(_("result size (bytes)"), default=0)
    redacted = models.BooleanField(
        _("arguments and result redacted"),
        default=False,
        help_text=_("CALL_LOG_REDACT_ARGS was on: neither was stored."),
    )
    host_calls = models.PositiveIntegerField(_("host calls"), default=0)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    rows_written = models.PositiveIntegerField(_("rows written"), default=0)
    host_result_bytes = models.PositiveIntegerField(_("host result bytes"), default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["plugin", "-started_at"], name="plugins_app_call_plugin"),
            models.Index(fields=["started_at"], name="plugins_app_call_started"),
            models.Index(fields=["outcome", "-started_at"], name="plugins_app_call_outcome"),
        ]
        verbose_name = _("call")
        verbose_name_plural = _("calls")

    def __str__(self) -> str:
        return f"{self.hook} ({self.get_outcome_display()}, {self.duration_ms:.1f} ms)"

    @property
    def args_complete(self) -> bool:
        """Whether ``args`` holds the whole argument list (not cut, not redacted)."""
        return not self.redacted and bool(self.args) and len(self.args.encode("utf-8")) >= self.args_bytes


class _CallCounters(models.Model):
    """Counters shared by the per-minute aggregates and the running totals."""

    calls = models.PositiveBigIntegerField(_("calls"), default=0)
    errors = models.PositiveBigIntegerField(
        _("errors"), default=0, help_text=_("Every failed call, timeouts included.")
    )
    timeouts = models.PositiveBigIntegerField(_("timeouts"), default=0)
    memory_errors = models.PositiveBigIntegerField(_("memory errors"), default=0)
    log_dropped = models.PositiveBigIntegerField(
        _("log records dropped"), default=0, help_text=_("Calls that should have been recorded, dropped (queue full).")
    )
    duration_ms_sum = models.FloatField(_("total duration (ms)"), default=0.0)
    duration_ms_max = models.FloatField(_("longest call (ms)"), default=0.0)
    last_called = models.DateTimeField(_("last called"), null=True, blank=True)
    # Latency histogram: calls per bucket of LATENCY_BOUNDS_MS (h16: slower than the last bound).
    h0 = models.PositiveBigIntegerField(default=0)
    h1 = models.PositiveBigIntegerField(default=0)
    h2 = models.PositiveBigIntegerField(default=0)
    h3 = models.PositiveBigIntegerField(default=0)
    h4 = models.PositiveBigIntegerField(default=0)
    h5 = models.PositiveBigIntegerField(default=0)
    h6 = models.PositiveBigIntegerField(default=0)
    h7 = models.PositiveBigIntegerField(default=0)
    h8 = models.PositiveBigIntegerField(default=0)
    h9 = models.PositiveBigIntegerField(default=0)
    h10 = models.PositiveBigIntegerField(default=0)
    h11 = models.PositiveBigIntegerField(default=0)
    h12 = models.PositiveBigIntegerField(default=0)
    h13 = models.PositiveBigIntegerField(default=0)
    h14 = models.PositiveBigIntegerField(default=0)
    h15 = models.PositiveBigIntegerField(default=0)
    h16 = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True

    def histogram(self) -> list[int]:
        """Calls per latency bucket (see ``LATENCY_BOUNDS_MS``; the last is the overflow)."""
        return [getattr(self, name) for name in LATENCY_COLUMNS]


class CallMinute(_CallCounters):
    """All calls of one plugin in one minute, every call counted (not sampled): what the
    health view and charts read. Upserted with increments by every process."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="call_minutes")
    minute = models.DateTimeField(_("minute"))

    class Meta:
        ordering = ["plugin", "minute"]
        constraints = [models.UniqueConstraint(fields=["plugin", "minute"], name="plugins_app_callminute_unique")]
        indexes = [models.Index(fields=["minute"], name="plugins_app_callminute_minute")]
        verbose_name = _("calls in a minute")
        verbose_name_plural = _("calls per minute")

    def __str__(self) -> str:
        return f"{self.plugin_id}@{self.minute:%Y-%m-%d %H:%M}: {self.calls}"


class CallTotal(_CallCounters):
    """All calls of one plugin since it was installed: monotonic counters for Prometheus
    (never pruned; deleted with the plugin)."""

    plugin = models.OneToOneField(Plugin, on_delete=models.CASCADE, primary_key=True, related_name="call_total")

    class Meta:
        verbose_name = _("call totals")
        verbose_name_plural = _("call totals")

    def __str__(self) -> str:
        return f"{self.plugin_id}: {self.calls}"


# -- revisions (plugins_app.revisions) ------------------------------------------------------


def _note_change(plugin_pk: Any) -> None:
    """A plugin or one of its grants was saved: let :mod:`plugins_app.revisions` record a
    revision if what it snapshots changed (now, or when the surrounding
    ``revisions.recording()`` block ends)."""
    from . import revisions

    revisions.note_change(plugin_pk)


class PluginRevision(models.Model):
    """An immutable snapshot of what a plugin runs with, recorded by every save that changes it.

    Holds the source, configuration, schema, limits, ``http_enabled`` and the grants (as
    data), who saved it, when, how (admin, command line, code, migration) and why (the
    comment). ``number`` counts 1, 2, 3... per plugin. See :mod:`plugins_app.revisions`.
    """

    class Origin(models.TextChoices):
        ADMIN = "admin", _("admin")
        CLI = "cli", _("command line")
        CODE = "code", _("code")
        MIGRATION = "migration", _("migration")

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField(_("revision"))
    created_at = models.DateTimeField(_("saved at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("saved by"),
    )
    created_by_name = models.CharField(
        _("saved by (name)"),
        max_length=150,
        blank=True,
        help_text=_("The user's name when it was saved, or the shell user for the command line."),
    )
    origin = models.CharField(_("saved from"), max_length=16, choices=Origin.choices, default=Origin.CODE)
    comment = models.TextField(_("comment"), blank=True)
    rolled_back_to = models.PositiveIntegerField(
        _("rollback to"), null=True, blank=True, help_text=_("The revision this one restored, for a rollback.")
    )
    changes = models.JSONField(
        _("changed"), default=list, blank=True, help_text=_("What differs from the previous revision.")
    )
    plugin_version = models.PositiveIntegerField(_("plugin version"), default=0)
    source = models.TextField(_("source"))
    config = models.JSONField(_("configuration"), default=dict, blank=True)
    config_schema = models.JSONField(_("configuration schema"), null=True, blank=True)
    memory_limit_mb = models.PositiveIntegerField(_("memory limit (MiB)"))
    timeout_ms = models.PositiveIntegerField(_("time limit (ms)"))
    max_host_calls = models.PositiveIntegerField(_("host calls per call"))
    max_rows_read = models.PositiveIntegerField(_("rows read per call"))
    max_rows_written = models.PositiveIntegerField(_("rows written per call"))
    max_host_result_bytes = models.PositiveIntegerField(_("host result bytes per call"))
    http_enabled = models.BooleanField(_("serves HTTP"), default=False)
    grants = models.JSONField(
        _("grants"),
        default=list,
        blank=True,
        help_text=_('[{"model", "read", "create", "update", "can_delete"}, ...], by model.'),
    )

    class Meta:
        ordering = ["plugin", "-number"]
        constraints = [models.UniqueConstraint(fields=["plugin", "number"], name="plugins_app_revision_unique_number")]
        verbose_name = _("plugin revision")
        verbose_name_plural = _("plugin revisions")

    def __str__(self) -> str:
        return f"{self.plugin_id} r{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Plugin revisions are immutable: record a new one instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("Plugin revisions are immutable; they are deleted with their plugin.")

    @property
    def author(self) -> str:
        """Who saved it, for display: the user's current name, else the name recorded."""
        if self.created_by_id is not None and self.created_by is not None:
            return self.created_by.get_username()
        return self.created_by_name
