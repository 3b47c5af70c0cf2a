"""URLs of plugins_app. Include them under a prefix of your choice::

    path("plugins/", include("plugins_app.urls")),

``<slug>/`` and ``<slug>/<path>`` are answered by the plugin's ``onRequest`` hook
(see ``docs/views-and-templates.md``).
"""
from django.urls import path

from . import views

app_name = "plugins_app"
urlpatterns = [
    path("<slug:slug>/", views.endpoint, name="endpoint"),
    path("<slug:slug>/<path:path>", views.endpoint, name="endpoint"),
]
