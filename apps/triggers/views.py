"""Pages of the triggers app and the public webhook endpoint.

Pages fetch the workflow through the team-scoped helper (404 outside a person's teams, 403
without the role) and change things only through `services`. The webhook endpoint is public:
the URL's token finds the workflow and the signature proves the sender.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.accounts.access import get_for_user, has_role
from apps.accounts.models import Role
from apps.runs.models import Run
from apps.triggers import dead_letters, services, webhooks
from apps.triggers.models import Backfill, DeadLetter, DeadLetterState, TriggerBinding
from apps.workflows.models import Workflow

EVENTS_PER_PAGE = 25
DEAD_LETTERS_SHOWN = 50


def _workflow(request, pk, role=None) -> Workflow:
    return get_for_user(Workflow.objects.select_related("team", "current_version"), request.user, pk, role=role)


def _upcoming(workflow: Workflow) -> dict:
    """Context of the next-runs partial; a schedule naming a missing calendar says so instead."""
    try:
        return {"upcoming": services.next_run_times(workflow), "schedule_problem": ""}
    except services.TriggerError as exc:
        return {"upcoming": [], "schedule_problem": str(exc)}


@login_required
def workflow_triggers(request, pk):
    workflow = _workflow(request, pk)
    events = workflow.trigger_events.select_related("run", "batch").order_by("-received_at", "-pk")
    return render(request, "triggers/workflow.html", {
        "workflow": workflow,
        "bindings": TriggerBinding.objects.filter(workflow=workflow),
        **_upcoming(workflow),
        "webhook": getattr(workflow, "webhook", None),
        "webhook_url": request.build_absolute_uri(reverse("triggers:webhook", args=[workflow.webhook.token]))
        if hasattr(workflow, "webhook") else "",
        "events": Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page")),
        "backfills": workflow.backfills.all()[:10],
        "dead_letters": workflow.dead_letters.filter(state=DeadLetterState.SET_ASIDE)[:DEAD_LETTERS_SHOWN],
        "can_author": has_role(request.user, workflow.team, Role.AUTHOR),
        "can_operate": has_role(request.user, workflow.team, Role.OPERATOR),
        "new_secret": request.session.pop(f"webhook-secret-{workflow.pk}", ""),
    })


@login_required
def next_runs(request, pk):
    """The partial the workflow page includes: the next five scheduled starts."""
    workflow = _workflow(request, pk)
    return render(request, "triggers/_next_runs.html", {"workflow": workflow, **_upcoming(workflow)})


@login_required
@require_POST
def rotate_secret(request, pk):
    workflow = _workflow(request, pk, role=Role.AUTHOR)
    if not workflow.trigger_bindings.filter(kind="webhook").exists():
        messages.error(request, "This workflow has no webhook trigger: add `- webhook: {}` to its triggers first.")
        return redirect("triggers:workflow", pk=workflow.pk)
    _, secret = services.rotate_webhook_secret(request.user, workflow)
    # Shown once on the next page, never stored in plain text.
    request.session[f"webhook-secret-{workflow.pk}"] = secret
    messages.success(request, "New URL and signing secret created; the old ones no longer work.")
    return redirect("triggers:workflow", pk=workflow.pk)


@login_required
@require_POST
def schedules_paused(request, pk):
    """Pause (paused=true) or resume (paused=false) the workflow's schedules; operators only."""
    workflow = _workflow(request, pk, role=Role.OPERATOR)
    paused = request.POST.get("paused") == "true"
    try:
        services.set_schedules_paused(request.user, workflow, paused)
    except services.TriggerError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Schedules paused: nothing starts on a timetable until you resume them."
                         if paused else "Schedules resumed: the next slot starts as planned; slots missed while "
                                        "paused are not run.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("workflows:detail", args=[workflow.pk])
    return redirect(back)


@login_required
@require_POST
def backfill_create(request, pk):
    workflow = _workflow(request, pk, role=Role.OPERATOR)
    try:
        zone = ZoneInfo(request.POST.get("timezone") or "UTC")
        start = datetime.combine(datetime.fromisoformat(request.POST["start"]).date(), time.min, zone)
        end = datetime.combine(datetime.fromisoformat(request.POST["end"]).date(), time.min, zone) + timedelta(days=1)
        backfill = services.create_backfill(request.user, workflow, start, end - timedelta(microseconds=1))
    except (KeyError, ValueError):
        messages.error(request, "Give the first and last day of the range as dates, such as 2026-11-01, "
                                "and an IANA time zone, such as Europe/London.")
        return redirect("triggers:workflow", pk=workflow.pk)
    except services.TriggerError as exc:
        messages.error(request, str(exc))
        return redirect("triggers:workflow", pk=workflow.pk)
    messages.success(request, f"Backfill started: {backfill.slots.count()} run(s) will start as concurrency allows.")
    return redirect("triggers:backfill", pk=backfill.pk)


@login_required
def backfill_detail(request, pk):
    backfill = get_for_user(Backfill.objects.select_related("workflow", "team"), request.user, pk)
    slots = backfill.slots.select_related("run").order_by("slot_at")
    template = "triggers/backfill.html#progress" if request.htmx else "triggers/backfill.html"
    return render(request, template, {
        "backfill": backfill, "progress": services.backfill_progress(backfill),
        "slots": Paginator(slots, EVENTS_PER_PAGE).get_page(request.GET.get("page")),
        "can_operate": has_role(request.user, backfill.team, Role.OPERATOR),
    })


@login_required
@require_POST
def backfill_cancel(request, pk):
    backfill = get_for_user(Backfill.objects.all(), request.user, pk, role=Role.OPERATOR)
    try:
        services.cancel_backfill(request.user, backfill)
        messages.success(request, "Backfill cancelled: unstarted slots will not run and running ones were cancelled.")
    except services.TriggerError as exc:
        messages.error(request, str(exc))
    return redirect("triggers:backfill", pk=backfill.pk)


@login_required
@require_POST
def dead_letter_replay(request, pk):
    letter = get_for_user(DeadLetter.objects.all(), request.user, pk, role=Role.OPERATOR)
    try:
        replayed = dead_letters.replay(request.user, letter.pk)
        messages.success(request, f"Message replayed: {replayed.replay_outcome}.")
    except services.TriggerError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("triggers:workflow", args=[letter.workflow_id]) + "#dead-letters")


@login_required
def run_events(request, run_pk):
    """The partial the run page includes: the events (one, or a whole batch) a run was started for."""
    run = get_for_user(Run.objects.all(), request.user, run_pk)
    events = Paginator(services.events_of_run(run), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "triggers/_run_events.html", {"run": run, "events": events})


def _event_fields(request, event) -> dict:
    """What a webhook answer says of the event a request was recorded as, and of its run."""
    fields = {"event_id": event.pk}
    if event.run is not None:
        fields.update(run_id=event.run.pk, run_state=event.run.state,
                      run_url=request.build_absolute_uri(reverse("runs:detail", args=[event.run.pk])))
    if event.batch_id:
        fields["batch_id"] = event.batch_id
    return fields


@csrf_exempt
@require_POST
def webhook(request, token):
    try:
        # Read here, not through request.body: the webhook's own limit must answer (JSON 413)
        # before Django's DATA_UPLOAD_MAX_MEMORY_SIZE would (an HTML 400).
        accepted = webhooks.receive(token, webhooks.read_body(request), request.headers)
    except webhooks.WebhookRefused as refused:
        body = {"error": refused.message, "errors": refused.errors}
        if refused.first is not None:
            body["first"] = _event_fields(request, refused.first)
        response = JsonResponse(body, status=refused.status)
        if refused.retry_after:
            response["Retry-After"] = str(refused.retry_after)
        return response
    return JsonResponse({**_event_fields(request, accepted.event), "duplicate": accepted.duplicate}, status=202)
