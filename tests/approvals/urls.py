"""The project's URLs plus the approvals app's, until apps/urls.py and apps/api_urls.py include them."""

from django.urls import include, path

from apps.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("approvals/", include("apps.approvals.urls")),
    path("api/v1/", include("apps.approvals.api")),
    *project_urlpatterns,
]
