"""The page a signed decision link opens: one request, what is asked, and its decision form,
sized for a phone. Signing in comes first (login_required sends the person back here after)."""

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from apps.approvals import link_decisions, links, services
from apps.approvals.forms import decision_form
from apps.approvals.models import ReasonCode, RequestKind, Verdict
from apps.approvals.presentation import params_to_decide
from apps.audit.log import redact


def _page(request, approval_request, token, *, error: str = "", decided=None, form=None, status=200):
    choices = link_decisions.choices_for(request.user, approval_request)
    on_behalf = {choice.on_behalf_of for choice in choices if choice.on_behalf_of is not None}
    plan = approval_request.run.version.plan
    params, params_source, params_problem = params_to_decide(approval_request, plan,
                                                             plan.steps.get(approval_request.step_run.step_id))
    return render(request, "approvals/decide_link.html", {
        "req": approval_request, "token": token, "choices": choices, "error": error, "decided": decided,
        "form": form or decision_form(approval_request), "reason_codes": ReasonCode.choices,
        "on_behalf_of": next(iter(on_behalf), None), "params": _shown(redact(params)),
        "params_source": params_source, "params_problem": params_problem,
        "approvals_given": approval_request.decisions.filter(verdict=Verdict.APPROVE).count(),
        "cannot_decide_because": "" if choices or not approval_request.is_open
        else services.refusal(request.user, approval_request,
                              Verdict.APPROVE if approval_request.kind == RequestKind.GATE else Verdict.RETRY),
    }, status=status)


def _shown(params: dict) -> list[tuple[str, str]]:
    """Parameters as people read them: text as is, anything else as JSON."""
    return [(name, value if isinstance(value, str) else json.dumps(value)) for name, value in params.items()]


def _refused(request, refused: links.LinkRefused):
    return render(request, "approvals/decide_link.html", {"refused": refused}, status=refused.status)


@login_required
def decide_link(request, token: str):
    try:
        _, approval_request = link_decisions.open_link(request.user, token)
    except links.LinkRefused as refused:
        return _refused(request, refused)
    if request.method != "POST":
        return _page(request, approval_request, token)
    submitted = request.POST
    try:
        decided = link_decisions.decide(request.user, token, verdict=submitted.get("verdict", ""),
                                        comment=submitted.get("comment", ""),
                                        reason_code=submitted.get("reason_code", ""), gate_fields=submitted)
    except links.LinkRefused as refused:
        return _refused(request, refused)
    except (services.ApprovalError, PermissionDenied) as exc:
        form = decision_form(approval_request, submitted, getattr(exc, "fields", {}))
        status = 403 if isinstance(exc, PermissionDenied) else 409 if isinstance(exc, services.DecisionConflict) \
            else 400
        approval_request.refresh_from_db()
        return _page(request, approval_request, token, error=str(exc), form=form, status=status)
    decided.step_run.refresh_from_db(fields=["state"])
    return _page(request, decided, token, decided=decided.decisions.filter(person=request.user).first())
