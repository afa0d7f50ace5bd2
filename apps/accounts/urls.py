from django.urls import path

from apps.accounts import oidc, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("sso/", oidc.SsoStartView.as_view(), name="sso_start"),
    path("sso/callback/", oidc.SsoCallbackView.as_view(), name="sso_callback"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/new/", views.create_token, name="create_token"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
]
