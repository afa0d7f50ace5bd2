from django.urls import path

from apps.workflows import views

app_name = "workflows"
urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("<int:pk>/", views.workflow_detail, name="detail"),
]
