from django.urls import path

from apps.workflows import git_views, views

app_name = "workflows"
urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("new/", views.workflow_new, name="new"),
    path("validate/", views.validate, name="validate"),
    path("editor/preview/", views.editor_preview, name="editor_preview"),
    path("editor/step-form/", views.editor_step_form, name="editor_step_form"),
    path("editor/add-step/", views.editor_add_step, name="editor_add_step"),
    path("git/", git_views.source_list, name="git_sources"),
    path("git/<int:pk>/", git_views.source_detail, name="git_source"),
    path("git/<int:pk>/sync/", git_views.source_sync, name="git_source_sync"),
    path("git/<int:pk>/token/", git_views.source_rotate_token, name="git_source_token"),
    path("git/<int:pk>/delete/", git_views.source_delete, name="git_source_delete"),
    path("git/<int:pk>/hook/", git_views.source_webhook, name="git_source_webhook"),
    path("<int:pk>/", views.workflow_detail, name="detail"),
    path("<int:pk>/edit/", views.workflow_edit, name="edit"),
    path("<int:pk>/diff/", views.version_diff, name="diff"),
    path("<int:pk>/versions/<int:number>/", views.version_detail, name="version"),
]
