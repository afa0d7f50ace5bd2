"""The project's URLs plus the incidents and knowledge pages and API, until apps.urls includes them."""

from django.urls import include, path

from apps.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("incidents/", include("apps.incidents.urls")),
    path("knowledge/", include("apps.knowledge.urls")),
    path("api/v1/", include("apps.incidents.api")),
    path("api/v1/", include("apps.knowledge.api")),
]
