"""The REST API, version 1: each app contributes the routes of its own `api` module."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.api")),
    path("", include("apps.catalog.api")),
    path("", include("apps.workflows.api")),
    path("", include("apps.runs.api")),
    path("", include("apps.approvals.api")),
    path("", include("apps.incidents.api")),
    path("", include("apps.knowledge.api")),
    path("", include("apps.triggers.api")),
    path("", include("apps.monitoring.api")),
]
