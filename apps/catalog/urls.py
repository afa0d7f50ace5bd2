from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.step_type_list, name="list"),
    path("types/<str:name>/", views.step_type_detail, name="detail"),
    path("connections/", views.connection_list, name="connections"),
    path("connections/new/", views.connection_create, name="connection_create"),
    path("connections/<slug:name>/edit/", views.connection_edit, name="connection_edit"),
    path("connections/<slug:name>/delete/", views.connection_delete, name="connection_delete"),
    path("allowed-hosts/new/", views.allowed_host_add, name="allowed_host_add"),
    path("allowed-hosts/<int:host_id>/remove/", views.allowed_host_remove, name="allowed_host_remove"),
]
