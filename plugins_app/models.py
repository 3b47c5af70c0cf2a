"""Database models: a Plugin is its source, its limits, its configuration and its version."""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf


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

    @property
    def runtime_key(self) -> str:
        return make_runtime_key(self.slug, self.version, self.fingerprint)


_DISPATCH_COLUMNS = (
    "id", "slug", "enabled", "hooks", "version", "fingerprint", "timeout_ms", "memory_limit_mb",
    "max_host_calls", "max_rows_read", "max_rows_written", "max_host_result_bytes",
    "consecutive_failures", "paused_at",
)


@cache
def _dispatch_sql(alias: str, table: str) -> str:
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(c) for c in _DISPATCH_COLUMNS)
    return f"SELECT {columns} FROM {quote(table)} WHERE {quote('slug')} = %s"


def _dispatch_row(row: tuple[Any, ...]) -> DispatchRow:
    pk, slug, enabled, hooks, *rest, paused_at = row
    if isinstance(hooks, str | bytes):  # JSON columns arrive as text on some backends
        hooks = json.loads(hooks)
    return DispatchRow(pk, slug, bool(enabled), tuple(hooks or ()), *rest, paused=paused_at is not None)


class PluginQuerySet(models.QuerySet["Plugin"]):
    def enabled(self) -> PluginQuerySet:
        return self.filter(enabled=True)

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
        plugins = self.filter(hook_index__name=hook, enabled=True, paused_at__isnull=True)
        rows = plugins.order_by("priority", "slug").values_list(*[c if c != "id" else "pk" for c in _DISPATCH_COLUMNS])
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
    source = models.TextField(_("source"), help_text=_("JavaScript defining `const plugin = { hook(...) { ... } }`."))
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
        help_text=_("JSON object, visible to the plugin as the read-only global `config`."),
    )
    config_schema = models.JSONField(
        _("configuration schema"),
        null=True,
        blank=True,
        help_text=_("Optional JSON Schema that `config` must satisfy (checked on save)."),
    )
    max_host_calls = models.PositiveIntegerField(
        _("host calls per call"), default=default_max_host_calls, help_text=_("db/storage calls allowed per hook call (log is capped separately).")
    )
    max_rows_read = models.PositiveIntegerField(
        _("rows read per call"), default=default_max_rows_read, help_text=_("Rows `db` may return per hook call.")
    )
    max_rows_written = models.PositiveIntegerField(
        _("rows written per call"), default=default_max_rows_written, help_text=_("Rows `db` may create, update or delete per hook call.")
    )
    max_host_result_bytes = models.PositiveIntegerField(
        _("host result bytes per call"),
        default=default_max_host_result_bytes,
        help_text=_("Total size of what host calls may return to the plugin per hook call."),
    )
    hooks = models.JSONField(_("hooks"), default=list, editable=False, help_text=_("Discovered on save."))
    priority = models.IntegerField(
        _("priority"), default=100, db_index=True,
        help_text=_("Actions and filters run plugins in ascending priority, then by slug."),
    )
    http_enabled = models.BooleanField(
        _("serves HTTP"), default=False,
        help_text=_("Lets the plugin answer requests under /plugins/<slug>/ with its onRequest hook."),
    )
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0, editable=False)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True, editable=False)
    paused_reason = models.TextField(_("pause reason"), blank=True, editable=False)
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    fingerprint = models.CharField(max_length=64, editable=False, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )

    objects = PluginQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        verbose_name = _("plugin")
        verbose_name_plural = _("plugins")

    def __str__(self) -> str:
        return self.name or self.slug

    # -- versioning --------------------------------------------------------------------
    def compute_fingerprint(self) -> str:
        """Hash of everything that changes what the sandbox runs."""
        payload = json.dumps(
            [
                self.source, self.config, self.config_schema, self.memory_limit_mb, self.timeout_ms,
                self.max_host_calls, self.max_rows_read, self.max_rows_written, self.max_host_result_bytes,
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

    # -- validation ------------------------------------------------------------------------
    def clean(self) -> None:
        """Check sizes and limits, then load the source in a sandbox and discover its hooks."""
        from .validation import validate_plugin

        validate_plugin(self)

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
        super().save(*args, **kwargs)
        self._sync_hook_index()

    def _sync_hook_index(self) -> None:
        wanted = set(self.hooks or ())
        index = self.hook_index.all()
        have = {h.name for h in index}
        if wanted != have:
            index.exclude(name__in=wanted).delete()
            PluginHook.objects.bulk_create([PluginHook(plugin=self, name=n) for n in wanted - have])

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class PluginHook(models.Model):
    """One hook a plugin defines: an index so that dispatch by hook name touches only
    the plugins that implement it, however many are installed."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="hook_index")
    name = models.CharField(max_length=200, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plugin", "name"], name="plugins_app_hook_unique")]

    def __str__(self) -> str:
        return f"{self.plugin_id}:{self.name}"


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

    class Meta:
        ordering = ["plugin", "model"]
        constraints = [models.UniqueConstraint(fields=["plugin", "model"], name="plugins_app_grant_unique_model")]
        verbose_name = _("grant")
        verbose_name_plural = _("grants")

    def __str__(self) -> str:
        return f"{self.plugin.slug} → {self.model}"

    def clean(self) -> None:
        from .exposure import validate_grant

        validate_grant(self)

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save (validating against the exposure even without ``full_clean()``) and
        bump the plugin's version."""
        from .exposure import validate_grant

        validate_grant(self)
        super().save(*args, **kwargs)
        Plugin.objects.filter(pk=self.plugin_id).update(version=models.F("version") + 1)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete(*args, **kwargs)
        Plugin.objects.filter(pk=self.plugin_id).update(version=models.F("version") + 1)
        return result


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
