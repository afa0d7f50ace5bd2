from django.urls import path

from apps.monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert"),
    path("alerts/<int:pk>/close/", views.alert_close, name="alert_close"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("workflows/<int:workflow_pk>/", views.monitor_settings, name="settings"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/show/", views.dataset_detail, name="dataset"),
    path("runs/<int:run_pk>/sla/", views.run_sla, name="run_sla"),
]
