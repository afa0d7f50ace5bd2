"""URL map: one include per app for pages, one per app for the REST API under /api/v1/."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from apps.platform import views as platform_views
from apps.platform.demo.services import demo_service

urlpatterns = [
    path("", platform_views.home, name="home"),
    path("home/failing/", platform_views.home_failing, name="home-failing"),
    path("accounts/", include("apps.accounts.urls")),
    path("catalog/", include("apps.catalog.urls")),
    path("workflows/", include("apps.workflows.urls")),
    path("runs/", include("apps.runs.urls")),
    path("approvals/", include("apps.approvals.urls")),
    path("incidents/", include("apps.incidents.urls")),
    path("knowledge/", include("apps.knowledge.urls")),
    path("triggers/", include("apps.triggers.urls")),
    path("monitoring/", include("apps.monitoring.urls")),
    path("metrics", include("apps.monitoring.metrics_urls")),
    path("audit/", include("apps.audit.urls")),
    path("platform/", include("apps.platform.urls")),
    path("demo/services/<path:path>", demo_service, name="demo-service"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
