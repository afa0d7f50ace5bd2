from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [path("", views.step_type_list, name="list")]
