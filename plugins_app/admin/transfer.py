"""Export and import of plugins in the admin (the logic is :mod:`plugins_app.transfer`).

- *Export* (``<id>/export/``, a button on the plugin page) and the *Export selected
  plugins* action download one JSON file; they need the view (or change) permission,
  like reading the source on the plugin page.
- *Import* (``import/``, a button on the plugin list) uploads such a file: it needs the
  add permission, and replacing existing plugins also the change permission. Grants in
  the file are imported only for users who may add, change and delete grants (the
  *Grants* inline's rule); otherwise, and for models or fields this site does not expose,
  they are left out and listed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from .. import transfer
from ..models import Plugin, PluginGrant
from .bases import PluginAdminMixin


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Export file",
        widget=forms.FileInput(attrs={"accept": ".json,application/json"}),
        help_text="A JSON file from Export (on a plugin's page), the Export action, or manage.py plugins export.",
    )
    replace = forms.BooleanField(
        label="Replace plugins that exist",
        required=False,
        help_text="Update a plugin whose slug is already installed (its storage and enabled state are kept, "
        "its grants replaced). Without this, such a file is refused. Needs the change permission.",
    )
    enable = forms.BooleanField(
        label="Enable after import",
        required=False,
        help_text="Otherwise new plugins are installed disabled: try them in the console first.",
    )


def _perm(request: HttpRequest, action: str, model: Any) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def export_response(plugins: list[Plugin], request: HttpRequest) -> HttpResponse:
    text = transfer.export_json(plugins, exported_by=request.user.get_username())
    response = HttpResponse(text, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{transfer.export_filename(plugins)}"'
    return response


class TransferAdminMixin(PluginAdminMixin):
    """Export (page button and list action) and import for ``PluginAdmin``."""

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        extra = [
            path("import/", site.admin_view(self.import_view), name="plugins_app_plugin_import"),
            path("<path:object_id>/export/", site.admin_view(self.export_view), name="plugins_app_plugin_export"),
        ]
        return extra + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self.has_add_permission(request):
            extra_context = {
                **(extra_context or {}),
                "plugin_import_url": reverse("admin:plugins_app_plugin_import", current_app=self.admin_site.name),
            }
        return super().changelist_view(request, extra_context)

    @admin.action(description="Export selected plugins (one JSON file)", permissions=["view"])
    def export_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> HttpResponse:
        return export_response(list(queryset.order_by("slug")), request)

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self.get_object(request, unquote(object_id))
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if not self.has_view_or_change_permission(request, plugin):
            raise PermissionDenied
        return export_response([plugin], request)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        request.current_app = self.admin_site.name
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            replace = form.cleaned_data["replace"]
            if replace and not self.has_change_permission(request):
                raise PermissionDenied
            grant_actions = ("add", "change", "delete") if replace else ("add",)
            may_grant = all(_perm(request, action, PluginGrant) for action in grant_actions)
            upload = form.cleaned_data["file"]
            try:
                reports = transfer.import_plugins(
                    upload.read(transfer.MAX_FILE_BYTES + 1),
                    replace=replace,
                    enable=form.cleaned_data["enable"],
                    user=request.user,
                    grants=may_grant,
                    origin="admin",
                    comment=f"Imported from {upload.name}.",
                )
            except transfer.PluginImportError as exc:
                errors = exc.errors
            else:
                return self._imported(request, reports)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "errors": errors,
            "title": "Import plugins",
        }
        return TemplateResponse(request, "admin/plugins_app/plugin/import.html", context)

    def _imported(self, request: HttpRequest, reports: list[transfer.ImportReport]) -> HttpResponse:
        for report in reports:
            plugin = report.plugin
            if report.created:
                self.log_addition(request, plugin, [{"added": {}}])
            else:
                self.log_change(request, plugin, "Replaced by an import.")
            url = reverse("admin:plugins_app_plugin_change", args=[quote(plugin.pk)], current_app=self.admin_site.name)
            self.message_user(
                request, format_html('<a href="{}">{}</a>: {}', url, plugin.slug, str(report)), messages.SUCCESS
            )
            for skipped in report.skipped_grants:
                self.message_user(request, f"{plugin.slug}: grant {skipped}.", messages.WARNING)
        if len(reports) == 1:
            target = reverse(
                "admin:plugins_app_plugin_change", args=[quote(reports[0].plugin.pk)], current_app=self.admin_site.name
            )
        else:
            target = reverse("admin:plugins_app_plugin_changelist", current_app=self.admin_site.name)
        return HttpResponseRedirect(target)
