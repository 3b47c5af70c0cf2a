"""*Download types (.d.ts)* on a plugin's page (``<id>/types/``): the TypeScript
declarations :func:`plugins_app.typegen.plugin_types` generates for that plugin, as an
attachment ``<slug>.d.ts``. Needs the view (or change) permission on plugins, like
reading the plugin's source and grants on its page."""

from __future__ import annotations

import re

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path

from ..typegen import plugin_types
from .bases import PluginAdminMixin


class TypesAdminMixin(PluginAdminMixin):
    """The types download view for ``PluginAdmin`` (its button is in admin/buttons.py)."""

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/types/", self.admin_site.admin_view(self.types_view), name="plugins_app_plugin_types"
            ),
        ]
        return extra + super().get_urls()

    def types_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self.get_object(request, unquote(object_id))
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if not self.has_view_or_change_permission(request, plugin):
            raise PermissionDenied
        response = HttpResponse(plugin_types(plugin), content_type="application/typescript; charset=utf-8")
        # A slug saved without validation could hold quotes or line breaks: keep the header intact.
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", plugin.slug) or "plugin"
        response["Content-Disposition"] = f'attachment; filename="{filename}.d.ts"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
