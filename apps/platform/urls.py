"""URLs of the platform app, included at /platform/."""

from django.urls import path

from apps.platform import views

app_name = "platform"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workers/", views.workers, name="workers"),
    path("step-types/", views.step_types, name="step_types"),
    path("people/", views.people, name="people"),
    path("search/", views.search_page, name="search"),
]
