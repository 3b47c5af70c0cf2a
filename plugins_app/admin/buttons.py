"""The buttons at the top of a plugin's page: links to its other screens (Console,
Recent calls, Export, Download types) and one-plugin versions of the list's actions (Enable/Disable,
Resume), each a POST with CSRF that needs the change permission. (*Deliveries* and
*Revisions*, with their counts, are added by the deliveries and revisions code, see
``render_change_form``.)

Links to screens that do not exist on this site (their URL does not reverse) or that the
user may not see are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import urlencode

from ..models import Plugin
from .bases import PluginAdminMixin
from .console import can_run_console


@dataclass
class Button:
    label: str
    url: str
    id: str
    post: bool = False  # a state change: a form with CSRF, not a link


def _reverse(name: str, args: list[Any], site_name: str) -> str | None:
    try:
        return reverse(f"admin:{name}", args=args, current_app=site_name)
    except NoReverseMatch:
        return None


def _can_view_calls(request: HttpRequest) -> bool:
    """View or change permission on the execution log (if this version has one)."""
    from .. import models

    record = getattr(models, "CallRecord", None)
    if record is None:
        return False
    opts = record._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


class PluginButtonsMixin(PluginAdminMixin):
    """Single-plugin buttons for ``PluginAdmin`` (needs its ``_set_enabled`` and
    ``resume_plugins``)."""

    if TYPE_CHECKING:  # PluginAdmin's, declared for the type checker

        def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Plugin], *, enabled: bool) -> None: ...
        def resume_plugins(self, request: HttpRequest, queryset: QuerySet[Plugin]) -> None: ...

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        extra = [
            path(
                f"<path:object_id>/{name}/",
                site.admin_view(getattr(self, f"{name}_view")),
                name=f"plugins_app_plugin_{name}",
            )
            for name in ("enable", "disable", "resume")
        ]
        return extra + super().get_urls()

    def plugin_buttons(self, request: HttpRequest, plugin: Plugin) -> list[Button]:
        site = self.admin_site.name
        pk = quote(plugin.pk)
        buttons = []
        if can_run_console(request):
            buttons.append(
                Button("Console", _reverse("plugins_app_plugin_console", [pk], site) or "", "plugin-console-button")
            )
        calls = _reverse("plugins_app_callrecord_changelist", [], site)
        if calls and _can_view_calls(request):
            buttons.append(
                Button("Recent calls", f"{calls}?{urlencode({'plugin__id__exact': plugin.pk})}", "plugin-calls-button")
            )
        export = _reverse("plugins_app_plugin_export", [pk], site)
        if export:
            buttons.append(Button("Export", export, "plugin-export-button"))
        types = _reverse("plugins_app_plugin_types", [pk], site)
        if types and self.has_view_or_change_permission(request, plugin):
            buttons.append(Button("Download types (.d.ts)", types, "plugin-types-button"))
        if self.has_change_permission(request, plugin):
            if plugin.enabled:
                buttons.append(
                    Button(
                        "Disable",
                        _reverse("plugins_app_plugin_disable", [pk], site) or "",
                        "plugin-disable-button",
                        post=True,
                    )
                )
            else:
                buttons.append(
                    Button(
                        "Enable",
                        _reverse("plugins_app_plugin_enable", [pk], site) or "",
                        "plugin-enable-button",
                        post=True,
                    )
                )
            if plugin.is_paused:
                buttons.append(
                    Button(
                        "Resume",
                        _reverse("plugins_app_plugin_resume", [pk], site) or "",
                        "plugin-resume-button",
                        post=True,
                    )
                )
        return [b for b in buttons if b.url]

    def _button_target(self, request: HttpRequest, object_id: str) -> tuple[Plugin, HttpResponse | None]:
        plugin = self.get_object(request, unquote(object_id))
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if request.method != "POST":
            return plugin, HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request, plugin):
            raise PermissionDenied
        return plugin, None

    def _back(self, plugin: Plugin) -> HttpResponse:
        return HttpResponseRedirect(
            reverse("admin:plugins_app_plugin_change", args=[quote(plugin.pk)], current_app=self.admin_site.name)
        )

    def enable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin, refused = self._button_target(request, object_id)
        if refused:
            return refused
        self._set_enabled(request, Plugin.objects.filter(pk=plugin.pk), enabled=True)
        return self._back(plugin)

    def disable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin, refused = self._button_target(request, object_id)
        if refused:
            return refused
        self._set_enabled(request, Plugin.objects.filter(pk=plugin.pk), enabled=False)
        return self._back(plugin)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin, refused = self._button_target(request, object_id)
        if refused:
            return refused
        self.resume_plugins(request, Plugin.objects.filter(pk=plugin.pk))
        return self._back(plugin)
