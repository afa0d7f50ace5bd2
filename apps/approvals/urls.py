from django.urls import path

from apps.approvals import delegation_views, link_views, views

app_name = "approvals"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("history/", views.history, name="history"),
    path("bulk/", views.bulk, name="bulk"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/decide/", views.decide, name="decide"),
    path("<int:pk>/suggestions/", views.suggestions, name="suggestions"),
    path("delegations/", delegation_views.delegations, name="delegations"),
    path("delegations/<int:pk>/end/", delegation_views.end, name="end_delegation"),
    path("link/<str:token>/", link_views.decide_link, name="link"),
]
