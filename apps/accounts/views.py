"""Sign-in and the signed-in person's API tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import services
from apps.accounts.oidc import sso_enabled


class LoginView(auth_views.LoginView):
    """The password form (unless FLOWDECK_LOCAL_LOGIN is off) and the single sign-on button."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not settings.FLOWDECK_LOCAL_LOGIN:
            # The backend refuses passwords too; this says so instead of "do not match".
            return self.render_to_response(self.get_context_data(password_refused=True), status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {
            "local_login": settings.FLOWDECK_LOCAL_LOGIN,
            "sso_enabled": sso_enabled(),
            "sso_provider_name": settings.FLOWDECK_OIDC_PROVIDER_NAME,
        }


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def tokens(request):
    new_key = request.session.pop("new_token_key", None)
    return render(request, "accounts/tokens.html", {
        "tokens": request.user.api_tokens.all(),
        "new_key": new_key,
    })


@login_required
@require_POST
def create_token(request):
    name = request.POST.get("name", "").strip()
    if not name:
        messages.error(request, "Give the token a name that says where it is used, for example 'ci-deploy'.")
        return redirect("accounts:tokens")
    _, key = services.issue_token(request.user, name)
    # Shown exactly once, on the next page load, then gone from the session.
    request.session["new_token_key"] = key
    return redirect("accounts:tokens")


@login_required
@require_POST
def revoke_token(request, token_id: int):
    token = request.user.api_tokens.filter(pk=token_id).first()
    if token is None:
        messages.error(request, "That token does not exist or is not yours.")
    else:
        services.revoke_token(request.user, token.pk)
        messages.success(request, f"Token {token.name} revoked: requests using it are now refused.")
    return redirect("accounts:tokens")
