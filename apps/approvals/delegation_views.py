"""The delegations page: delegate your decisions while you are away, see and end delegations."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.approvals import delegation
from apps.approvals.delegation_forms import DelegationForm
from apps.approvals.models import Delegation


@login_required
def delegations(request):
    form = DelegationForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            created = delegation.create_delegation(request.user, **form.cleaned_data)
        except delegation.DelegationRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{created.delegate.display_name} decides for you from "
                                      f"{timezone.localtime(created.starts_at):%Y-%m-%d %H:%M} until "
                                      f"{timezone.localtime(created.ends_at):%Y-%m-%d %H:%M}.")
            return redirect("approvals:delegations")
    return render(request, "approvals/delegations.html", {
        "form": form, "shown": delegation.shown_to(request.user),
        "past": delegation.history_of(request.user).exclude(ends_at__gt=timezone.now(), ended_at__isnull=True)[:20],
    }, status=400 if request.method == "POST" else 200)


@login_required
@require_POST
def end(request, pk: int):
    if not delegation.history_of(request.user).filter(pk=pk).exists() and not request.user.is_platform_admin:
        raise Http404("No such delegation of yours.")
    try:
        ended = delegation.end_delegation(request.user, pk)
    except (delegation.DelegationRefused, PermissionDenied, Delegation.DoesNotExist) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Ended: {ended.delegate.display_name} no longer decides for "
                                  f"{ended.delegator.display_name}.")
    return redirect(request.POST.get("next") or "approvals:delegations")
