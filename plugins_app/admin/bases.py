"""Base classes of the admin, generic in their model for mypy and plain at run time.

django-stubs makes ``ModelAdmin`` and ``TabularInline`` generic in the model they edit;
Django's own classes cannot be subscripted at run time (only django-stubs-ext's
monkeypatch, not a dependency, would allow it), so the subscripted bases exist for the
type checker only. The mixins of :class:`~plugins_app.admin.PluginAdmin` are typed as
the ``ModelAdmin`` they are mixed into, and are plain classes at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib import admin

if TYPE_CHECKING:
    from ..models import CallRecord, Delivery, Plugin, PluginGrant, StorageItem

    CallRecordModelAdmin = admin.ModelAdmin[CallRecord]
    DeliveryModelAdmin = admin.ModelAdmin[Delivery]
    PluginModelAdmin = admin.ModelAdmin[Plugin]
    PluginGrantTabularInline = admin.TabularInline[PluginGrant, Plugin]
    StorageItemTabularInline = admin.TabularInline[StorageItem, Plugin]
    PluginAdminMixin = admin.ModelAdmin[Plugin]
else:
    CallRecordModelAdmin = DeliveryModelAdmin = PluginModelAdmin = admin.ModelAdmin
    PluginGrantTabularInline = StorageItemTabularInline = admin.TabularInline
    PluginAdminMixin = object


def fieldset_names(fieldsets: Iterable[tuple[Any, Mapping[str, Any]]]) -> tuple[str, ...]:
    """The field names of flat ``fieldsets`` (no nested rows), in order."""
    return tuple(name for _, spec in fieldsets for name in spec["fields"])
