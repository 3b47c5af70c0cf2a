"""The hook catalogue in the admin: ``catalogue/`` under the plugin list (a link on it).

Lists every declared hook (:mod:`plugins_app.catalogue`) with its kind, arguments, return
value, description and the installed plugins that implement it, then the hooks plugins
define that nobody declares (with a "did you mean"). Needs the view (or change)
permission on plugins, like the plugin list. Saving a plugin in the admin shows the
catalogue's warnings about it (:func:`plugins_app.catalogue.save_warnings`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from .. import catalogue
from ..models import Plugin, PluginHook
from .bases import PluginAdminMixin


@dataclass
class Implementer:
    slug: str
    name: str
    enabled: bool
    url: str


@dataclass
class HookRow:
    name: str
    spec: catalogue.HookSpec | None = None
    implementers: list[Implementer] = field(default_factory=list)
    suggestion: str | None = None

    @property
    def args(self) -> list[tuple[str, str, str]]:
        """(parameter, short type, schema as JSON) per argument."""
        assert self.spec is not None
        return [(name, type_summary(schema), pretty(schema)) for name, schema in self.spec.args]

    @property
    def returns(self) -> tuple[str, str] | None:
        if self.spec is None or self.spec.returns is None:
            return None
        return type_summary(self.spec.returns), pretty(self.spec.returns)


def type_summary(schema: Any) -> str:
    """A schema's ``type`` in a few characters (``string | null``), or ``any``."""
    if schema is False:
        return "never"
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and kind:
        return " | ".join(map(str, kind))
    if isinstance(schema, dict) and "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    return "any"


def pretty(schema: Any) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False)


def catalogue_rows(site_name: str) -> tuple[list[HookRow], list[HookRow]]:
    """(declared hooks, hooks plugins define that are not declared), each with its implementers."""
    implementers: dict[str, list[Implementer]] = {}
    rows = PluginHook.objects.order_by("name", "plugin__slug").values_list(
        "name", "plugin__pk", "plugin__slug", "plugin__name", "plugin__enabled"
    )
    for hook, pk, slug, name, enabled in rows:
        url = reverse("admin:plugins_app_plugin_change", args=[quote(pk)], current_app=site_name)
        implementers.setdefault(hook, []).append(Implementer(slug, name, enabled, url))
    declared = catalogue.hooks()
    known = [HookRow(name, spec, implementers.get(name, [])) for name, spec in sorted(declared.items())]
    unknown = []
    for hook in sorted(set(implementers) - set(declared)):
        close = difflib.get_close_matches(hook, list(declared), n=1, cutoff=0.75)
        unknown.append(HookRow(hook, None, implementers[hook], close[0] if close else None))
    return known, unknown


class CatalogueAdminMixin(PluginAdminMixin):
    """The catalogue page and its link on the plugin list, and the catalogue's warnings
    after a plugin is saved, for ``PluginAdmin``."""

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path("catalogue/", self.admin_site.admin_view(self.catalogue_view), name="plugins_app_plugin_catalogue"),
        ]
        return extra + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "plugin_catalogue_url": reverse("admin:plugins_app_plugin_catalogue", current_app=self.admin_site.name),
        }
        return super().changelist_view(request, extra_context)

    def catalogue_view(self, request: HttpRequest) -> HttpResponse:
        request.current_app = self.admin_site.name
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        declared, undeclared = catalogue_rows(self.admin_site.name)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Hook catalogue",
            "declared": declared,
            "undeclared": undeclared,
            "undeclared_mode": _mode(),
        }
        return TemplateResponse(request, "admin/plugins_app/plugin/catalogue.html", context)

    def save_related(self, request: HttpRequest, form: forms.ModelForm[Plugin], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        plugin: Plugin = form.instance
        for warning in catalogue.save_warnings(plugin.hooks, getattr(plugin, "_hook_arity", None)):
            messages.warning(request, f"{plugin}: {warning}")


def _mode() -> str:
    from .. import conf

    return str(conf.get("UNDECLARED_HOOKS"))
