"""Sign-in and the signed-in person's API tokens."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import services


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


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
