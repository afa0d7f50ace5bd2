from django.urls import path

from apps.platform import views

app_name = "platform"
urlpatterns: list = []
