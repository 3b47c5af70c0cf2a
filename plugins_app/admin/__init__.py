"""Django admin of plugins_app, one module per screen: plugins (with their grants, storage
and the *Call a hook* page) and the delivery outbox. Importing this package registers them."""
from .deliveries import DeliveryAdmin
from .plugins import PausedListFilter, PluginAdmin, PluginGrantInline, StorageItemInline

__all__ = ["DeliveryAdmin", "PausedListFilter", "PluginAdmin", "PluginGrantInline", "StorageItemInline"]
