"""Pages of failure groups (apps.incidents.groups): a group's members with its decision form,
the confirmation naming the count and the risky ones, and the decision's result per member."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from apps.approvals.models import ReasonCode
from apps.approvals.presentation import bulk_confirmation
from apps.approvals.services import ApprovalError, InvalidDecision, require_reason, risky_checkpoints
from apps.incidents.groups import GROUP_VERDICTS, decide_group, failure_group


def _group_or_404(user, key: str):
    group = failure_group(user, key)
    if group is None:
        raise Http404("No failures of this group wait for a decision in your teams: they were decided, or the "
                      "group is not yours.")
    return group


def _page(request, group, *, results=None, error: str = "", status: int = 200):
    return render(request, "incidents/group.html", {
        "group": group, "results": results, "error": error, "verdicts": GROUP_VERDICTS,
        "reason_codes": ReasonCode.choices, "submitted": request.POST if request.method == "POST" else {},
    }, status=status)


@login_required
@require_safe
def group_detail(request, key: str):
    return _page(request, _group_or_404(request.user, key))


@login_required
@require_POST
def group_decide(request, key: str):
    """First the confirmation (count, risky members), then the decision, member by member."""
    ids = [value for value in request.POST.getlist("ids") if value.isdigit()]
    group = failure_group(request.user, key)
    if group is None and not ids:
        raise Http404("No failures of this group wait for a decision in your teams.")
    verdict, comment = request.POST.get("verdict", ""), request.POST.get("comment", "")
    reason_code, confirmed = request.POST.get("reason_code", ""), request.POST.get("confirm") == "yes"
    ids = ids or (group.checkpoint_ids if group else [])
    try:
        require_reason(reason_code, comment.strip())  # asked before the confirmation, not after it
    except InvalidDecision as exc:
        if group is None:
            raise Http404("No failures of this group wait for a decision in your teams.") from None
        return _page(request, group, error=str(exc), status=400)
    if not confirmed and verdict in GROUP_VERDICTS:
        here = reverse("incidents:group", args=[key])
        return render(request, "approvals/confirm_bulk.html", bulk_confirmation(
            ids, verdict, risky_checkpoints(request.user, ids), comment=comment, reason_code=reason_code,
            asked_again="confirm" in request.POST, action=reverse("incidents:group-decide", args=[key]),
            back_url=here, back_label="Failure group"))
    try:
        results = decide_group(request.user, key, verdict, reason_code=reason_code, comment=comment,
                               confirmed=confirmed, ids=ids)
    except (ApprovalError, PermissionDenied) as exc:
        if group is None:
            raise Http404("No failures of this group wait for a decision in your teams.") from None
        return _page(request, group, error=str(exc), status=400)
    # What is left of the group (nothing, when every member was decided).
    return _page(request, failure_group(request.user, key), results=results)
