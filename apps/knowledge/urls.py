from django.urls import path

from apps.knowledge import views

app_name = "knowledge"
urlpatterns = [
    path("runbooks/", views.runbook_list, name="runbooks"),
    path("runbooks/<int:pk>/", views.runbook_detail, name="runbook"),
    path("incidents/<int:incident_id>/feedback/", views.feedback, name="feedback"),
    path("incidents/<int:incident_id>/summary/", views.summary, name="summary"),
    path("incidents/<int:incident_id>/suggestions/", views.incident_suggestions, name="incident_suggestions"),
    path("admin/", views.admin_page, name="admin"),
]
