"""URLs of plugins_app. Include them under a prefix of your choice::

    path("plugins/", include("plugins_app.urls")),

``<slug>/`` and ``<slug>/<path>`` are answered by the plugin's ``onRequest`` hook
(see ``docs/views-and-templates.md``). ``metrics`` (no trailing slash, so no plugin slug
can take it) serves Prometheus metrics when ``METRICS_ENDPOINT_ENABLED`` is on
(``docs/operators.md``).
"""

from django.urls import path

from . import metrics, views

app_name = "plugins_app"
urlpatterns = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("<slug:slug>/", views.endpoint, name="endpoint"),
    path("<slug:slug>/<path:path>", views.endpoint, name="endpoint"),
]
