"""Pages of the approvals app: the inbox (live, with in-place decisions), a request's page with
everything needed to decide, bulk actions, and the history of decided requests.

Each view fetches through the team-scoped helpers in services (404 outside your teams), calls one
domain function and renders; htmx requests get the page's fragment.
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.access import visible_teams
from apps.approvals import delegation, gate_forms, services
from apps.approvals.forms import checkpoint_choice, decision_form
from apps.approvals.models import CHECKPOINT_CHOICES, ApprovalRequest, Decision, ReasonCode, RequestKind, RequestState
from apps.approvals.presentation import bulk_confirmation, decision_context
from apps.pagination import KeyPaginator
from apps.runs.models import StepState

PAGE_SIZE = 25
# Refresh the inbox this often; it pauses while a request is open for reading.
POLL_SECONDS = 10
# The history, which only grows, counts at most this many requests; past it pages read "of many".
HISTORY_COUNT_CAP = 1000
# What an inbox row shows, loaded by key once the page's keys are known: the inbox's filters
# with all these joins took PostgreSQL longer to plan than to run.
INBOX_ROWS = ApprovalRequest.objects.select_related("run__workflow", "step_run", "team", "group")
# The inbox's workflow filter offers the workflows of its first this many requests (most urgent
# first): collecting them from every request joined the whole run history (84 ms for an admin's
# 10,000 open checkpoints at 10M step runs). A workflow further down can still be filtered by link.
WORKFLOW_CHOICES_FROM = 1000
# The inbox's "waiting at least" filter.
AGES = {"1h": ("an hour", timedelta(hours=1)), "1d": ("a day", timedelta(days=1)),
        "1w": ("a week", timedelta(weeks=1))}


def _filtered(requests, params):
    kind, team, query = params.get("kind", ""), params.get("team", ""), params.get("q", "").strip()
    workflow, age = params.get("workflow", ""), params.get("age", "")
    if kind in RequestKind.values:
        requests = requests.filter(kind=kind)
    if team:
        requests = requests.filter(team__slug=team)
    if workflow.isdigit():
        requests = requests.filter(run__workflow_id=int(workflow))
    if age in AGES:
        requests = requests.filter(created_at__lte=timezone.now() - AGES[age][1])
    if query:
        requests = requests.filter(Q(run__workflow__name__icontains=query) | Q(step_run__step_id__icontains=query))
    return requests, {"kind": kind, "team": team, "q": query, "workflow": workflow, "age": age}


@login_required
def inbox(request):
    mine = services.inbox_for(request.user)
    requests, filters = _filtered(mine, request.GET)
    any_filter = any(filters.values())
    # The inbox's rule, evaluated once, gives the page, its count and (on the unfiltered page) the
    # first requests whose workflows the filter offers: each of the three read all the requests
    # apart before (10,000 open checkpoints for an admin at 10M step runs).
    choices_from = 0 if request.htmx or any_filter else WORKFLOW_CHOICES_FROM
    paginator = KeyPaginator(requests, PAGE_SIZE, rows=INBOX_ROWS, count_with_keys=True, lead=choices_from)
    page = paginator.get_page(request.GET.get("page"))
    if not any_filter:
        services.remember_badge(request.user, paginator.count)  # the navigation's count agrees with the list
    _attach_rankings(page)
    template = "approvals/inbox.html#inbox-list" if request.htmx else "approvals/inbox.html"
    return render(request, template, {
        "page": page, "filters": filters, "kinds": RequestKind.choices, "reason_codes": ReasonCode.choices,
        "poll_seconds": POLL_SECONDS, "teams": visible_teams(request.user), "ages": AGES,
        "workflows": None if request.htmx else _workflow_choices(
            mine.values("pk")[:WORKFLOW_CHOICES_FROM] if paginator.lead_keys is None else paginator.lead_keys),
        "any_filter": any_filter,
        "delegations": None if request.htmx else delegation.shown_to(request.user),
    })


def _workflow_choices(first_requests):
    """(id, name) of the workflows of the inbox's first requests (keys), by name."""
    return ApprovalRequest.objects.filter(pk__in=first_requests).order_by("run__workflow__name") \
        .values_list("run__workflow_id", "run__workflow__name").distinct()


def _attach_rankings(page) -> None:
    """Each checkpoint's stored ranking (`ranking`), for the assistant's headline in its row."""
    from apps.knowledge.incident_ranking import rankings_of_step_runs

    checkpoints = [r for r in page if r.kind == RequestKind.CHECKPOINT]
    rankings = rankings_of_step_runs(r.step_run_id for r in checkpoints) if checkpoints else {}
    for approval_request in checkpoints:
        approval_request.ranking = rankings.get(approval_request.step_run_id)


@login_required
def history(request):
    requests, filters = _filtered(services.history_for(request.user), request.GET)
    state = request.GET.get("state", "")
    if state in RequestState.values:
        requests = requests.filter(state=state)
    filters["state"] = state
    page = KeyPaginator(requests.prefetch_related("decisions__person", "decisions__on_behalf_of"), PAGE_SIZE,
                        count_cap=HISTORY_COUNT_CAP).get_page(request.GET.get("page"))
    return render(request, "approvals/history.html", {
        "page": page, "filters": filters, "kinds": RequestKind.choices, "teams": visible_teams(request.user),
        "states": [choice for choice in RequestState.choices if choice[0] != RequestState.PENDING],
    })


def _detail_context(request, approval_request, error: str = "", submitted=None, errors=None,
                    outcome: str = "") -> dict:
    # Read once here: the summary's quorum, the decision list and the form all show them.
    prefetch_related_objects([approval_request], Prefetch("decisions", Decision.objects.select_related(
        "person", "on_behalf_of")))
    return {
        "ctx": decision_context(approval_request, request.user), "req": approval_request, "error": error,
        "form": decision_form(approval_request, submitted, errors), "outcome": outcome,
        "reason_codes": ReasonCode.choices, "checkpoint_choices": CHECKPOINT_CHOICES,
    }


@login_required
def detail(request, pk: int):
    approval_request = services.get_request_for_user(request.user, pk)
    template = "approvals/detail.html#context" if request.htmx else "approvals/detail.html"
    return render(request, template, _detail_context(request, approval_request))


@login_required
@require_POST
def decide(request, pk: int):
    """One decision, from the request's page or in place from the inbox (htmx)."""
    approval_request = services.get_request_for_user(request.user, pk)
    try:
        _apply(request.user, approval_request, request.POST)
    except (services.ApprovalError, PermissionDenied) as exc:
        status = 403 if isinstance(exc, PermissionDenied) else 409 if isinstance(exc, services.DecisionConflict) \
            else 400
        if request.htmx:
            # htmx swaps only 2xx answers: the refusal goes into the form's place so the person sees it.
            status = 200
        approval_request = services.get_request_for_user(request.user, pk)
        template = "approvals/detail.html#decide" if request.htmx else "approvals/detail.html"
        return render(request, template, _detail_context(request, approval_request, str(exc), request.POST,
                                                         getattr(exc, "fields", None)), status=status)
    approval_request = services.get_request_for_user(request.user, pk)
    outcome = services.what_happened(approval_request) + _what_follows(approval_request)
    if request.htmx:
        return render(request, "approvals/detail.html#decide",
                      _detail_context(request, approval_request, outcome=outcome))
    messages.success(request, f"Your decision on request #{pk} was recorded: {outcome}.")
    return redirect("approvals:inbox")


def _what_follows(approval_request) -> str:
    if approval_request.kind != RequestKind.CHECKPOINT:
        return ""
    step_run = approval_request.step_run
    step_run.refresh_from_db(fields=["state"])
    if step_run.state == StepState.WAITING_APPROVAL:
        return (f"; step {step_run.step_id} is risky and its parameters changed, so it waits for someone else to "
                f"approve the new parameters")
    return ""


def _apply(user, approval_request, submitted) -> None:
    # An option's button sends "approve:<option>".
    verdict, _, option = submitted.get("verdict", "").partition(":")
    on_behalf_of = services.acting_for(user, approval_request, verdict)
    if approval_request.kind == RequestKind.GATE:
        services.decide_gate(user, approval_request, verdict, submitted.get("comment", ""), option=option,
                             form_values=gate_forms.submitted_values(approval_request, submitted),
                             on_behalf_of=on_behalf_of)
        return
    choice = checkpoint_choice(approval_request, verdict, submitted)
    services.decide_checkpoint(user, approval_request, verdict, reason_code=submitted.get("reason_code", ""),
                               comment=submitted.get("comment", ""), params_override=choice.params_override,
                               skip_output=choice.skip_output, on_behalf_of=on_behalf_of)


@login_required
@require_POST
def bulk(request):
    ids = [value for value in request.POST.getlist("ids") if value.isdigit()]
    if not ids:
        messages.error(request, "Select at least one request with its checkbox, then choose the action.")
        return redirect("approvals:inbox")
    try:
        results = services.bulk_decide(request.user, ids, request.POST.get("verdict", ""),
                                       comment=request.POST.get("comment", ""),
                                       reason_code=request.POST.get("reason_code", ""),
                                       confirmed=request.POST.get("confirm") == "yes")
    except services.ConfirmationNeeded as needed:
        # Asked, not refused: the same selection again, with the high-risk steps named.
        return render(request, "approvals/confirm_bulk.html", bulk_confirmation(
            ids, needed.verdict, needed.high_risk, comment=request.POST.get("comment", ""),
            reason_code=request.POST.get("reason_code", ""), asked_again=request.POST.get("confirm") == "yes"))
    except services.InvalidDecision as exc:
        messages.error(request, str(exc))
        return redirect("approvals:inbox")
    done = [result for result in results if result.ok]
    if done:
        messages.success(request, f"{len(done)} request(s) decided: " + ", ".join(r.message for r in done))
    for result in results:
        if not result.ok:
            messages.error(request, result.message)
    return redirect("approvals:inbox")


@login_required
@require_safe
def suggestions(request, pk: int):
    """The ranking of the checkpoint's failure, the one its incident's page shows, loaded after
    the page (and polled while a worker computes it)."""
    approval_request = services.get_request_for_user(request.user, pk)
    if approval_request.kind != RequestKind.CHECKPOINT:
        raise Http404("Only failure checkpoints have suggested root causes.")
    from apps.incidents.access import incident_of_step_run
    # Imported here: the index and its faiss import are only for the pages that suggest.
    from apps.knowledge.incident_ranking import ranking_for

    incident = incident_of_step_run(approval_request.step_run_id)
    # With `incident`, the decider can confirm the root cause here (kept beside their decision).
    return render(request, "knowledge/_suggestions.html", {
        "suggestions": ranking_for(incident) if incident else None, "failure_incident": incident,
        "incident": incident, "poll_url": reverse("approvals:suggestions", args=[pk]), "req": approval_request})
