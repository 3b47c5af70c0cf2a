from django.apps import AppConfig


class PluginsAppConfig(AppConfig):
    name = "plugins_app"
    verbose_name = "JavaScript plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            app_hooks,  # noqa: F401  (declares the app's own hooks, e.g. onRequest)
            checks,  # noqa: F401  (registers system checks)
            checks_calls,  # noqa: F401  (registers E040/E041, W040/W041: execution log and metrics)
            checks_catalogue,  # noqa: F401  (registers E060-E062, W060/W061: the hook catalogue)
            checks_sandbox,  # noqa: F401  (registers W030/W031, the sandbox's OS layers)
            dispatch,
        )
        from .exposure import autodiscover

        autodiscover()
        dispatch.connect_signals()  # loaddata of plugins invalidates the dispatch cache

        from . import signal_handlers

        # Receivers for the signals that bindings use (dispatch_uid: never twice).
        signal_handlers.connect_receivers()
