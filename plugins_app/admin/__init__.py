"""Django admin of plugins_app, one module per screen: plugins (with their grants and
storage; its console, export/import and page buttons are mixins from console.py,
transfer.py and buttons.py) and the delivery outbox. Importing this package registers them."""

from .calls import CallRecordAdmin  # noqa: F401  (the execution log; plugin health: calls.HealthAdminMixin)
from .deliveries import DeliveryAdmin
from .plugins import PausedListFilter, PluginAdmin, PluginGrantInline, StorageItemInline
from .revisions import RevisionsAdminMixin  # noqa: F401  (revision pages, mixed into PluginAdmin)

__all__ = ["DeliveryAdmin", "PausedListFilter", "PluginAdmin", "PluginGrantInline", "StorageItemInline"]
