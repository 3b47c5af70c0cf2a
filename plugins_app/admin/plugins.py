"""Django admin for plugins: install (or upload a .js file), edit, enable/disable, resume
paused plugins, grant model access, and see each plugin's failed deliveries. The console
(admin/console.py), export/import (admin/transfer.py), the types download (admin/types.py)
and the page's buttons (admin/buttons.py) are mixed into ``PluginAdmin``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminBigIntegerFieldWidget
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from .. import breaker
from ..exposure import column
from ..forms import HOST_LIMIT_FIELDS, PluginForm, PluginGrantForm
from ..models import Delivery, Plugin, PluginGrant, PluginHook, StorageItem
from ..widgets import code_block, editor_media
from .bases import PluginGrantTabularInline, PluginModelAdmin, StorageItemTabularInline
from .buttons import PluginButtonsMixin
from .calls import HEALTH_FIELDSET, HealthAdminMixin  # health: page, panel, list column
from .catalogue import CatalogueAdminMixin  # the hook catalogue page; warnings after a save
from .console import ConsoleAdminMixin, can_run_console, console_button
from .deliveries import can_view_deliveries, delivery_list_url
from .revisions import RevisionsAdminMixin
from .transfer import TransferAdminMixin
from .types import TypesAdminMixin  # Download types (.d.ts)

FieldsetSpec = tuple[str | None, dict[str, Any]]

MAIN_FIELDSET: FieldsetSpec = (None, {"fields": ("name", "slug", "description", "enabled", "priority", "http_enabled")})
LIMITS_FIELDSET: FieldsetSpec = ("Limits", {"fields": ("memory_limit_mb", "timeout_ms", *HOST_LIMIT_FIELDS)})
# Set by the circuit breaker (plugins_app.breaker), never by the form.
BREAKER_FIELDS = ("consecutive_failures", "paused_at", "paused_reason")
BREAKER_FIELDSET: FieldsetSpec = ("Circuit breaker", {"fields": BREAKER_FIELDS})
HISTORY_FIELDSET: FieldsetSpec = (
    "History",
    {"classes": ("collapse",), "fields": ("version", "created_at", "created_by", "updated_at", "updated_by")},
)


def _has_plugin_perm(request: HttpRequest, action: str) -> bool:
    opts = Plugin._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


class PluginGrantInline(PluginGrantTabularInline):
    """A plugin's grants, edited on its page.

    Seeing them needs permission to see the plugin; changing them needs both the change
    permission on the plugin and the grant's own add/change/delete permission, since a
    grant lets plugin code reach the site's data.
    """

    model = PluginGrant
    form = PluginGrantForm
    fields = ("model", "read", "create", "update", "can_delete")
    extra = 0
    verbose_name = "model access grant"
    verbose_name_plural = "Model access (grants)"

    def has_view_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return (
            _has_plugin_perm(request, "view")
            or _has_plugin_perm(request, "change")
            or super().has_view_permission(request, obj)
        )

    def has_add_permission(self, request: HttpRequest, obj: Plugin | None) -> bool:  # type: ignore[override]  # an inline's (stubs: BaseModelAdmin's)
        return _has_plugin_perm(request, "change") and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return _has_plugin_perm(request, "change") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return _has_plugin_perm(request, "change") and super().has_delete_permission(request, obj)


class StorageItemInline(StorageItemTabularInline):
    """A plugin's key/value store, read-only; whoever may change the plugin may delete keys."""

    model = StorageItem
    fields = ("key", "value_preview", "number", "size", "updated_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    classes = ("collapse",)
    verbose_name_plural = "Storage"

    @admin.display(description="value")
    def value_preview(self, obj: StorageItem) -> str:
        text = json.dumps(obj.value, ensure_ascii=False)
        return text if len(text) <= 200 else text[:199] + "…"

    def has_view_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return _has_plugin_perm(request, "view") or _has_plugin_perm(request, "change")

    def has_add_permission(self, request: HttpRequest, obj: Plugin | None) -> bool:  # type: ignore[override]  # an inline's (stubs: BaseModelAdmin's)
        return False

    def has_change_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Plugin | None = None) -> bool:
        return _has_plugin_perm(request, "change")


class PausedListFilter(admin.SimpleListFilter):
    """Plugins the circuit breaker paused (``paused_at`` set), or those running normally."""

    title = "paused"
    parameter_name = "paused"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "Paused"), ("no", "Not paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> QuerySet[Plugin]:
        if self.value() == "yes":
            return queryset.filter(paused_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(paused_at__isnull=True)
        return queryset


@admin.register(Plugin)
class PluginAdmin(
    HealthAdminMixin,
    ConsoleAdminMixin,
    TransferAdminMixin,
    PluginButtonsMixin,
    RevisionsAdminMixin,
    CatalogueAdminMixin,
    TypesAdminMixin,
    PluginModelAdmin,
):
    form = PluginForm
    inlines = (PluginGrantInline, StorageItemInline)
    # Fits 1280 px with both sidebars open, where the results get ~630 px (measured in
    # Chromium, with room for a 150 px column more): the name, slug and "serves HTTP" share
    # a column, version, limits and dates are on the plugin's page, headers and hooks wrap
    # and cells are padded less (change_list.html); "paused" marks only paused plugins.
    list_display = ("name_and_slug", "enabled", "paused", "call_health", "failed_deliveries", "priority", "hook_list")
    list_display_links = ("name_and_slug",)
    list_editable = ("priority",)
    list_filter = ("enabled", PausedListFilter, "http_enabled")
    # hook_index__name: plugins by the hooks they define (the list search ignored them).
    search_fields = ("slug", "name", "description", "hook_index__name")
    readonly_fields = (
        "hook_list",
        "version",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "console_link",
        "source_code",
        "config_json",
        "config_schema_json",
        *BREAKER_FIELDS,
    )
    prepopulated_fields = {"slug": ("name",)}
    actions = ("enable_plugins", "disable_plugins", "resume_plugins", "export_plugins")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plugin]:
        # One correlated subquery for the whole page (no query per row, no GROUP BY over
        # the plugin's large text columns).
        failed = (
            Delivery.objects.filter(plugin=OuterRef("pk"), state=Delivery.State.FAILED)
            .order_by()
            .values("plugin")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(failed_deliveries=Coalesce(Subquery(failed, output_field=IntegerField()), 0))
        )

    def get_list_display(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        if can_view_deliveries(request):
            return [("failed_deliveries_link" if c == "failed_deliveries" else c) for c in self.list_display]
        return self.list_display

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Plugin | None = None,
    ) -> HttpResponse:
        context["media"] = context["media"] + editor_media()  # read-only code blocks (view-only users)
        if obj is not None and obj.pk is not None:
            context["plugin_buttons"] = self.plugin_buttons(request, obj)
            reason = " ".join((obj.paused_reason or "").split())
            # The banner's sentence ends with a full stop, whatever the reason ends with.
            context["paused_reason_sentence"] = reason if reason.endswith((".", "!", "?")) else f"{reason}."
        if obj is not None and obj.pk is not None and can_view_deliveries(request):
            context["deliveries_url"] = delivery_list_url(plugin_id=obj.pk, site_name=self.admin_site.name)
            failed = getattr(obj, "failed_deliveries", None)
            if failed is None:
                failed = obj.deliveries.filter(state=Delivery.State.FAILED).count()
            context["failed_deliveries"] = failed
        return super().render_change_form(request, context, add, change, form_url, obj)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in HOST_LIMIT_FIELDS:
            # The admin's integer input is 5em wide: 1048576 showed as "104857".
            kwargs["widget"] = AdminBigIntegerFieldWidget
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Plugin | None = None) -> list[FieldsetSpec]:  # type: ignore[override]  # plain dicts (stubs: a private TypedDict)
        if obj is None:
            # Hooks, version and history only exist once the plugin is saved.
            return [
                MAIN_FIELDSET,
                ("Code", {"fields": ("source", "source_file")}),
                LIMITS_FIELDSET,
                ("Configuration", {"fields": ("config", "config_schema")}),
            ]
        if self.has_change_permission(request, obj):
            code: Sequence[str] = ("source", "source_file", "hook_list")
            if can_run_console(request):
                code = (*code, "console_link")
            config: Sequence[str] = ("config", "config_schema")
        else:
            # Read-only: show code and JSON verbatim, and no link to a page that would refuse.
            code = ("source_code", "hook_list")
            config = ("config_json", "config_schema_json")
        return [
            MAIN_FIELDSET,
            ("Code", {"fields": code}),
            LIMITS_FIELDSET,
            ("Configuration", {"fields": config}),
            BREAKER_FIELDSET,
            HEALTH_FIELDSET,
            HISTORY_FIELDSET,
        ]

    # -- read-only displays ------------------------------------------------------------------
    @admin.display(description="hooks")
    def hook_list(self, obj: Plugin) -> str:
        return ", ".join(obj.hooks or []) or "—"

    @admin.display(description="paused", ordering="paused_at")
    def paused(self, obj: Plugin) -> SafeString | None:
        """A mark on paused plugins only (None shows the list's "-"): a red cross on every
        healthy plugin read as "something is wrong"."""
        if not obj.is_paused:
            return None
        return format_html(
            '<span class="plugin-paused" title="{}"><img src="{}" alt="Paused"> paused</span>',
            obj.paused_reason or "paused by the circuit breaker",
            static("admin/img/icon-alert.svg"),
        )

    @admin.display(description="plugin", ordering="name")
    def name_and_slug(self, obj: Plugin) -> SafeString:
        http = format_html('<br><span class="plugin-http">{}</span>', "serves HTTP") if obj.http_enabled else ""
        return format_html('{}<br><span class="plugin-slug">{}</span>{}', obj.name, obj.slug, http)

    @admin.display(description="limits")
    def limits(self, obj: Plugin) -> str:
        return f"{obj.memory_limit_mb}\u00a0MiB, {obj.timeout_ms}\u00a0ms"  # no break inside a value

    @admin.display(description="failed deliveries", ordering="failed_deliveries")
    def failed_deliveries(self, obj: Plugin) -> int:
        count: int = obj.failed_deliveries  # type: ignore[attr-defined]  # annotated by get_queryset
        return count

    @admin.display(description="failed deliveries", ordering="failed_deliveries")
    def failed_deliveries_link(self, obj: Plugin) -> SafeString | int:
        count: int = obj.failed_deliveries  # type: ignore[attr-defined]  # annotated by get_queryset
        if not count:
            return count
        url = delivery_list_url(plugin_id=obj.pk, state=Delivery.State.FAILED, site_name=self.admin_site.name)
        return format_html('<a class="delivery-failed-count" href="{}">{}</a>', url, count)

    @admin.display(description="console")
    def console_link(self, obj: Plugin) -> str:
        return console_button(obj, self.admin_site.name)

    @admin.display(description="source")
    def source_code(self, obj: Plugin) -> str:
        return code_block(obj.source, "javascript", "plugin-source")

    @admin.display(description="configuration")
    def config_json(self, obj: Plugin) -> str:
        return code_block(json.dumps(obj.config, indent=2, ensure_ascii=False), "json")

    @admin.display(description="configuration schema")
    def config_schema_json(self, obj: Plugin) -> str:
        if obj.config_schema is None:
            return "—"
        return code_block(json.dumps(obj.config_schema, indent=2, ensure_ascii=False), "json")

    # -- saving --------------------------------------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Plugin, form: forms.ModelForm[Plugin], change: bool) -> None:
        # The admin's user is logged in (the stubs allow an AnonymousUser on any request).
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]  # a User (see above)
        obj.updated_by = request.user  # type: ignore[assignment]  # a User (see above)
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Leave the circuit breaker's columns alone: a plugin paused (or failing) between
        # loading this form and saving it must stay paused (and keep its count).
        fields = [f.name for f in Plugin._meta.concrete_fields if not f.primary_key and f.name not in BREAKER_FIELDS]
        obj.save(update_fields=fields)

    def save_related(self, request: HttpRequest, form: forms.ModelForm[Plugin], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        obj.refresh_from_db(fields=["version"])  # saving a grant bumps it in the database
        self.message_user(request, f"{obj}: version {obj.version}, hooks: {self.hook_list(obj)}.", messages.INFO)

    # -- actions -------------------------------------------------------------------------------
    @admin.action(description="Enable selected plugins", permissions=["change"])
    def enable_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable selected plugins", permissions=["change"])
    def disable_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Resume selected plugins", permissions=["change"])
    def resume_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None:
        """Resume plugins paused by the circuit breaker, recording it in each one's history."""
        field_labels = [str(capfirst(column(Plugin, name).verbose_name)) for name in BREAKER_FIELDS]
        resumed = []
        with transaction.atomic():
            for plugin in queryset.filter(paused_at__isnull=False):
                if not breaker.resume(plugin.slug):
                    continue  # resumed meanwhile by someone else
                Plugin.objects.filter(pk=plugin.pk).update(updated_at=timezone.now(), updated_by=request.user)
                self.log_change(request, plugin, [{"changed": {"fields": field_labels}}])
                resumed.append(plugin)
        not_paused = queryset.count() - len(resumed)
        text = f"Resumed {len(resumed)} plugin(s)."
        if not_paused:
            text += f" {not_paused} not paused."
        self.message_user(request, text, messages.SUCCESS if resumed else messages.WARNING)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Plugin], *, enabled: bool) -> None:
        """Switch the selected plugins, recording who did it in each one's history.

        ``update()`` skips ``Plugin.save()``: the source is unchanged, so there is
        nothing to validate again, and the version (which tracks code) stays the same.
        """
        verb = "Enabled" if enabled else "Disabled"
        field_label = str(capfirst(Plugin._meta.get_field("enabled").verbose_name))
        with transaction.atomic():
            changing = list(queryset.exclude(enabled=enabled))
            Plugin.objects.filter(pk__in=[p.pk for p in changing]).update(
                enabled=enabled, updated_at=timezone.now(), updated_by=request.user
            )
            for plugin in changing:
                self.log_change(request, plugin, [{"changed": {"fields": [field_label]}}])
        unchanged = queryset.count() - len(changing)
        text = f"{verb} {len(changing)} plugin(s)."
        if unchanged:
            text += f" {unchanged} already {verb.lower()}."
        self.message_user(request, text, messages.SUCCESS if changing else messages.WARNING)

    # -- the delete page -------------------------------------------------------------------------
    # Internal rows deleted with a plugin, left out of the delete confirmation's list and
    # counts (they meant nothing to an operator: "Plugin hook: 5:big").
    HIDDEN_WHEN_DELETING: tuple[type[Model], ...] = (PluginHook,)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        prefixes = tuple(f"{capfirst(model._meta.verbose_name)}: " for model in self.HIDDEN_WHEN_DELETING)
        for model in self.HIDDEN_WHEN_DELETING:
            model_count.pop(str(model._meta.verbose_name_plural), None)  # its keys are lazy strings: equal
        return _without_items(to_delete, prefixes), model_count, perms_needed, protected


def _without_items(nested: list[Any], prefixes: tuple[str, ...]) -> list[Any]:
    """``nested`` (the delete page's list: items, each optionally followed by the list of
    what it takes along) without the items starting with ``prefixes`` and their lists."""
    kept: list[Any] = []
    skip_children = False
    for item in nested:
        if isinstance(item, list):
            if not skip_children:
                kept.append(_without_items(item, prefixes))
            skip_children = False
            continue
        skip_children = str(item).startswith(prefixes)
        if not skip_children:
            kept.append(item)
    return kept
