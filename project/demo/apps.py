from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "project.demo"
    label = "demo"
    verbose_name = "Demo site"

    def ready(self) -> None:
        from . import plugin_hooks  # noqa: F401  (declares the hooks the demo calls)
