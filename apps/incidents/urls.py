from django.urls import path

from apps.incidents import group_views, views

app_name = "incidents"
urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.open_incident, name="open"),
    path("categories/", views.categories, name="categories"),
    path("groups/<str:key>/", group_views.group_detail, name="group"),
    path("groups/<str:key>/decide/", group_views.group_decide, name="group-decide"),
    path("<int:pk>/", views.incident_detail, name="detail"),
    path("<int:pk>/own/", views.take_ownership, name="own"),
    path("<int:pk>/resolve/", views.resolve, name="resolve"),
]
