from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("plugins/", include("plugins_app.urls")),
    path("", include("project.demo.urls")),
]
