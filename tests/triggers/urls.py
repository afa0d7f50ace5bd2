"""The project's URLs plus the triggers and monitoring pages, until apps.urls includes them."""

from django.urls import include, path

from apps.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("triggers/", include("apps.triggers.urls")),
    path("monitoring/", include("apps.monitoring.urls")),
    path("metrics", include("apps.monitoring.metrics_urls")),
    path("api/v1/", include("apps.triggers.api")),
]
