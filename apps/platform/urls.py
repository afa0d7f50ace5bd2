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
    path("editor/preview/", views.editor_preview, name="editor_preview"),
    path("editor/step-form/", views.editor_step_form, name="editor_step_form"),
    path("editor/add-step/", views.editor_add_step, name="editor_add_step"),
]
