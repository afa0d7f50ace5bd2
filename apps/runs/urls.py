from django.urls import path

from apps.runs import views

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("dashboard/", views.team_dashboard, name="dashboard"),
    path("start/<int:workflow_pk>/", views.start_run, name="start"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/cancel/", views.cancel_run, name="cancel"),
    path("<int:pk>/rerun/", views.rerun, name="rerun"),
    path("<int:pk>/abort/", views.abort_run, name="abort"),
    path("<int:pk>/compensate-and-abort/", views.compensate_and_abort, name="compensate-and-abort"),
    path("<int:pk>/artifacts/<path:path>", views.artifact, name="artifact"),
    path("<int:pk>/steps/<str:step_id>/", views.step_detail, name="step"),
]
