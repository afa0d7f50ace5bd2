"""Pages of the runs app: the run list, a run live (graph, steps, attempts), a step's detail,
starting a run from a workflow, and the operator's actions.

Reads go through the team-scoped helpers below (404 outside a person's teams, 403 without the
operator role for actions); every change goes through `apps.runs.engine`, except what decides a
paused run's failure: that is a decision on its checkpoint (`apps.approvals.services`), taken on
the checkpoint's page, which the run and step pages link to. A transition the run's state no longer
allows answers 409 with the engine's message. Scoped reads and input checks live in
`apps.runs.services`, shared with the REST API and the run_workflow command.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.access import has_role, visible_teams
from apps.accounts.models import Role
from apps.approvals import services as approvals
from apps.approvals.models import ApprovalRequest, Verdict
from apps.pagination import KeyPaginator
from apps.paths import scrub, scrub_traceback
from apps.runs import engine, history
from apps.runs.graph import step_graph
from apps.runs.investigation import investigate
from apps.runs.models import Run, RunState, StepAttempt, StepLogLine, StepState, Trigger
from apps.runs.services import (
    checked_inputs, get_run_for_user, get_step_of_run, runs_for, start_workflow_run, step_log_lines,
)
from apps.runs.timeline import progress_bar, run_timeline, seconds_between, why_queued
from apps.workflows.plan import plan_for
from apps.workflows.services import get_workflow_for_user, workflows_for
from apps.workflows.spec.forms import inputs_from_form

RUNS_PER_PAGE = 25
# The runs list counts at most this many runs; past it the page count reads "many".
RUNS_COUNT_CAP = 1000
# A runs list row, loaded by key once the page's keys are known, with only the columns it shows:
# whole rows of four tables cost a third more to build into objects.
RUNS_LIST_ROWS = Run.objects.select_related("workflow", "team", "version", "started_by").only(
    "state", "trigger", "failure_summary", "created_at", "finished_at", "rerun_of_id", "workflow__name", "team__name",
    "version__number", "started_by__username", "started_by__first_name", "started_by__last_name")
# The timeline of a run's attempts shows these (not their parameters, nor the step's output).
ATTEMPT_COLUMNS_SHOWN = ("kind", "number", "state", "worker", "queue", "queued_at", "not_before", "started_at",
                         "ended_at", "duration_ms", "records_in", "records_out", "records_rejected", "error_type",
                         "error_message", "step_run__step_id")
LOG_TAIL = 200
DASHBOARD_WORKFLOWS = 25
POLL_SECONDS = 2

# --- Pages ------------------------------------------------------------------------------------------

def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _workflow_choices(user, chosen: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) for the workflow filter: hundreds of options render fast as tuples."""
    workflows = workflows_for(user).select_related(None).values_list("pk", "team__slug", "name")
    return [(str(pk), f"{team}/{name}", str(pk) == chosen) for pk, team, name in workflows]


@login_required
def run_list(request):
    runs, chosen = runs_for(request.user, request.GET)
    page = KeyPaginator(runs, RUNS_PER_PAGE, rows=RUNS_LIST_ROWS, count_cap=RUNS_COUNT_CAP) \
        .get_page(request.GET.get("page"))
    context = {"page": page, "chosen": chosen, "filtered": any(chosen.values()), "query": _query_without_page(request)}
    if request.htmx:  # only the results, the filters stay on the page
        return render(request, "runs/list.html#results", context)
    return render(request, "runs/list.html", {
        **context, "teams": visible_teams(request.user), "states": RunState.choices, "triggers": Trigger.choices,
        "workflow_choices": _workflow_choices(request.user, chosen["workflow"]),
    })


@login_required
def team_dashboard(request):
    """A team's last weeks: runs, success rate, durations and records per day, and each of its
    workflows' last runs (the workflows list's bars)."""
    teams = list(visible_teams(request.user))
    chosen = request.GET.get("team", "")
    team = next((team for team in teams if team.slug == chosen), None) if chosen else (teams[0] if teams else None)
    if chosen and team is None:
        raise Http404(f"You are in no team {chosen!r}.")
    workflows = list(workflows_for(request.user, team_slug=team.slug)[:DASHBOARD_WORKFLOWS]) if team else []
    return render(request, "runs/dashboard.html", {
        "teams": teams, "team": team, "workflows": workflows, "more_workflows": len(workflows) == DASHBOARD_WORKFLOWS,
        "charts": history.team_dashboard(team) if team else [], "window_days": history.WINDOW_DAYS,
    })


def _live_context(request, run: Run) -> dict:
    rows = {row.step_id: row for row in run.step_runs.all()}
    plan = plan_for(run.version_id)
    attempts = list(StepAttempt.objects.filter(step_run__run=run).select_related("step_run")
                    .only(*ATTEMPT_COLUMNS_SHOWN).order_by("queued_at", "pk"))
    waits = ApprovalRequest.objects.filter(run=run).order_by("created_at", "pk") \
        .values_list("step_run__step_id", "kind", "created_at", "decided_at")
    now = timezone.now()
    return {
        "run": run, "steps": [(row, progress_bar(row.progress)) for row in rows.values()],
        "poll_seconds": POLL_SECONDS,
        "graph": step_graph([(step.id, step.needs) for step in plan.steps.values()], rows),
        "attempts": attempts, "timeline": run_timeline(run, attempts, list(waits), now),
        "records_reported": any(a.records_in or a.records_out or a.records_rejected for a in attempts),
        "total_seconds": seconds_between(run.started_at, run.finished_at or (now if run.started_at else None)),
        "queue_seconds": seconds_between(run.created_at, run.started_at or (now if not run.is_finished else None)),
        "why_queued": why_queued(run, attempts, now),
        "can_act": has_role(request.user, run.team, Role.OPERATOR),
        "actions": engine.allowed_actions(run, request.user),
        "checkpoints": approvals.open_checkpoints(run),
        "kept_approvals": approvals.kept_approvals(run),
    }


@login_required
def run_detail(request, pk: int):
    run = get_run_for_user(request.user, pk)
    template = "runs/detail.html#live" if request.htmx else "runs/detail.html"
    return render(request, template, _live_context(request, run))


@login_required
def step_detail(request, pk: int, step_id: str):
    run = get_run_for_user(request.user, pk)
    row = get_step_of_run(run, step_id)
    attempts = list(row.attempts.all())
    latest = attempts[-1] if attempts else None
    chosen = {"level": request.GET.get("level", ""), "q": request.GET.get("q", "").strip()[:200]}
    lines = step_log_lines(row, chosen["level"], search=chosen["q"]).select_related("attempt")
    tail = list(lines.order_by("-at", "-id")[:LOG_TAIL])[::-1]
    output = row.output if isinstance(row.output, dict) else {}
    template = "runs/step.html#live" if request.htmx else "runs/step.html"
    # Outside the live part, which polls: investigated once per page.
    facts = investigate(row) if row.state == StepState.FAILED and not request.htmx else []
    return render(request, template, {
        "facts": facts,
        "run": run, "row": row, "attempts": attempts, "latest": latest, "log_lines": [_log_line(line) for line in tail],
        "chosen": chosen, "query": urlencode({key: value for key, value in chosen.items() if value}),
        "log_tail": LOG_TAIL, "progress": row.progress or {}, "progress_bar": progress_bar(row.progress),
        "records_reported": bool(latest and (latest.records_in or latest.records_out or latest.records_rejected)),
        "artifacts": [output[key] for key in ("artifact", "output", "rejects") if isinstance(output.get(key), str)],
        "can_act": has_role(request.user, run.team, Role.OPERATOR), "poll_seconds": POLL_SECONDS,
        "checkpoint": next((request for request in approvals.open_checkpoints(run) if request.step_run_id == row.pk),
                           None),
        "gate": approvals.open_gate_of(row) if row.state == StepState.WAITING_APPROVAL else None,
    })


def _log_line(line: StepLogLine) -> dict:
    """A log line as the viewer shows it: a traceback apart (real newlines, server paths named by
    their root), the other fields as JSON."""
    fields = dict(line.fields or {})
    traceback = fields.pop("traceback", "")
    return {"line": line, "message": scrub(line.message), "traceback": scrub_traceback(traceback) if traceback else "",
            "fields": fields}


@login_required
def artifact(request, pk: int, path: str):
    """A file a step of this run stored under ARTIFACT_DIR (outputs, rejects)."""
    run = get_run_for_user(request.user, pk)
    root = Path(settings.ARTIFACT_DIR).resolve()
    run_folder = (root / "runs" / str(run.pk)).resolve()
    file = (root / path).resolve()
    if run_folder not in file.parents or not file.is_file():
        raise Http404(f"Run {run.pk} has no artifact {path!r}; it may have been cleaned up.")
    return FileResponse(file.open("rb"), as_attachment=True, filename=file.name)


# --- Starting a run --------------------------------------------------------------------------------

def _input_fields(version, values: dict, errors: dict[str, str]) -> list[dict]:
    fields = []
    for name, declared in version.plan.inputs.items() if version else ():
        current = values.get(name, declared.get("default"))
        if declared["type"] in ("object", "array") and not isinstance(current, str) and current is not None:
            current = json.dumps(current)
        fields.append({"name": name, "declared": declared, "value": "" if current is None else current,
                       "error": errors.get(name, "")})
    return fields


@login_required
def start_run(request, workflow_pk: int):
    """The start form (GET); on POST, check the inputs and start, or show the form again (400)."""
    workflow = get_workflow_for_user(request.user, workflow_pk, role=Role.OPERATOR)
    version = workflow.current_version
    errors: dict[str, str] = {}
    values: dict = {}
    if request.method == "POST":
        values = {name: request.POST.get(f"input-{name}", "") for name in version.plan.inputs} \
            if version else {}
        provided, unreadable = inputs_from_form(version.plan.inputs, request.POST) if version else ({}, {})
        try:
            if unreadable:
                checked_inputs(workflow, provided)  # only to report the other fields' problems too
                raise engine.InvalidInputs({})
            run = start_workflow_run(request.user, workflow, provided)
        except engine.InvalidInputs as invalid:
            errors = {**invalid.errors, **unreadable}
        else:
            messages.success(request, f"Run {run.pk} of {workflow.name} started.")
            return redirect("runs:detail", pk=run.pk)
    return render(request, "runs/start.html", {
        "workflow": workflow, "fields": _input_fields(version, values, errors), "errors": errors,
        "general_errors": {k: v for k, v in errors.items() if k not in version.plan.inputs}
        if version else {},
    }, status=400 if errors else 200)


# --- Actions ---------------------------------------------------------------------------------------

def _conflict(request, run: Run, error: engine.EngineError):
    return render(request, "runs/conflict.html", {"run": run, "message": str(error)}, status=409)


def _run_action(action, done_message: str):
    @login_required
    @require_POST
    def view(request, pk: int):
        run = get_run_for_user(request.user, pk, role=Role.OPERATOR)
        try:
            result = action(request.user, run)
        except engine.EngineError as error:
            return _conflict(request, run, error)
        messages.success(request, done_message.format(run=run))
        return redirect("runs:detail", pk=result.pk if isinstance(result, Run) else run.pk)

    return view


cancel_run = _run_action(engine.cancel_run, "Run {run.pk} cancelled.")
rerun = _run_action(engine.rerun_from_failure,
                    "A new run of {run.workflow.name} re-runs run {run.pk} from its failure.")


def _end_run(choice: str, done_message: str):
    """Abort, or compensate and abort: a paused run's checkpoint decides it (its page asks for the
    reason and the comment, so a refusal for lack of them sends the person there)."""
    @login_required
    @require_POST
    def view(request, pk: int):
        run = get_run_for_user(request.user, pk, role=Role.OPERATOR)
        try:
            approvals.end_run(request.user, run, choice, reason_code=request.POST.get("reason_code", ""),
                              comment=request.POST.get("comment", ""))
        except approvals.InvalidDecision as invalid:
            checkpoints = approvals.open_checkpoints(run)
            messages.error(request, str(invalid))
            return redirect("approvals:detail", pk=checkpoints[0].pk) if checkpoints else \
                redirect("runs:detail", pk=run.pk)
        except approvals.DecisionConflict as conflict:
            return _conflict(request, run, conflict)
        messages.success(request, done_message.format(run=run))
        return redirect("runs:detail", pk=run.pk)

    return view


abort_run = _end_run(Verdict.ABORT, "Run {run.pk} aborted.")
compensate_and_abort = _end_run(Verdict.COMPENSATE, "Run {run.pk} is undoing its completed steps, then ends failed.")
