from django.urls import path

from apps.triggers import views

app_name = "triggers"
urlpatterns = [
    path("workflows/<int:pk>/", views.workflow_triggers, name="workflow"),
    path("workflows/<int:pk>/next-runs/", views.next_runs, name="next_runs"),
    path("workflows/<int:pk>/schedules/paused/", views.schedules_paused, name="schedules_paused"),
    path("workflows/<int:pk>/webhook/rotate/", views.rotate_secret, name="rotate_secret"),
    path("workflows/<int:pk>/backfills/", views.backfill_create, name="backfill_create"),
    path("backfills/<int:pk>/", views.backfill_detail, name="backfill"),
    path("backfills/<int:pk>/cancel/", views.backfill_cancel, name="backfill_cancel"),
    path("runs/<int:run_pk>/events/", views.run_events, name="run_events"),
    path("dead-letters/<int:pk>/replay/", views.dead_letter_replay, name="dead_letter_replay"),
    path("hooks/<str:token>/", views.webhook, name="webhook"),
]
