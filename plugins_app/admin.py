"""Django admin for plugins: install, edit, enable/disable and try hooks."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import hooks
from .exceptions import PluginError
from .forms import PluginForm, TryHookForm
from .models import Plugin


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    form = PluginForm
    list_display = ("name", "slug", "enabled", "hook_list", "version", "memory_limit_mb", "timeout_ms", "updated_at")
    list_display_links = ("name", "slug")
    list_filter = ("enabled",)
    search_fields = ("slug", "name", "description")
    readonly_fields = ("hook_list", "version", "created_at", "updated_at", "created_by", "updated_by", "try_link")
    prepopulated_fields = {"slug": ("name",)}
    actions = ("enable_plugins", "disable_plugins")
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "enabled")}),
        ("Code", {"fields": ("source", "hook_list", "try_link")}),
        ("Limits", {"fields": ("memory_limit_mb", "timeout_ms")}),
        ("Configuration", {"fields": ("config",)}),
        ("History", {"classes": ("collapse",), "fields": ("version", "created_at", "created_by", "updated_at", "updated_by")}),
    )

    @admin.display(description="hooks")
    def hook_list(self, obj: Plugin) -> str:
        return ", ".join(obj.hooks or []) or "—"

    @admin.display(description="try it")
    def try_link(self, obj: Plugin) -> str:
        if not obj.pk:
            return "Save the plugin first."
        url = reverse("admin:plugins_app_plugin_try", args=[obj.pk])
        return format_html('<a class="button" href="{}">Call a hook…</a>', url)

    def save_model(self, request: HttpRequest, obj: Plugin, form: forms.ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    # -- actions -----------------------------------------------------------------------
    @admin.action(description="Enable selected plugins", permissions=["change"])
    def enable_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None:
        count = queryset.update(enabled=True)
        self.message_user(request, f"Enabled {count} plugin(s).", messages.SUCCESS)

    @admin.action(description="Disable selected plugins", permissions=["change"])
    def disable_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None:
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} plugin(s).", messages.SUCCESS)

    # -- "try a hook" page -----------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<path:object_id>/try/",
                self.admin_site.admin_view(self.try_view),
                name="plugins_app_plugin_try",
            )
        ]
        return extra + super().get_urls()

    def try_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = get_object_or_404(Plugin, pk=object_id)
        # Calling runs plugin code with the site's data: it needs the change permission.
        if not self.has_change_permission(request, plugin):
            raise PermissionDenied
        form = TryHookForm(request.POST or None, hooks=plugin.hooks)
        result: hooks.CallResult | None = None
        error: str | None = None
        if request.method == "POST" and form.is_valid():
            try:
                result = hooks.run(plugin.slug, form.cleaned_data["hook"], *form.cleaned_data["args"], require_enabled=False)
            except PluginError as exc:
                error = f"{type(exc).__name__}: {exc}"
                if getattr(exc, "stack", None):
                    error += "\n\n" + exc.stack  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": plugin,
            "plugin": plugin,
            "form": form,
            "result": result,
            "result_json": json.dumps(result.value, indent=2, ensure_ascii=False) if result else None,
            "error": error,
            "title": f"Call a hook of {plugin}",
        }
        return TemplateResponse(request, "admin/plugins_app/plugin/try.html", context)
