"""Reading and starting runs for a person: team-scoped queries, and starting the current version
of a workflow for the pages, the REST API and the run_workflow command. Inputs are checked, and
state changed, by `engine` alone."""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from apps.accounts.access import get_for_user, scope_to_user
from apps.runs import engine
from apps.runs.models import Run, RunState, StepLogLine, StepRun, Trigger
from apps.workflows.plan import plan_for
from apps.workflows.models import Workflow

FILTERS = ("workflow", "state", "team", "trigger", "since", "until")
# A log level filter keeps that level and the ones above it.
LOG_LEVELS_FROM = {"info": ("info", "warning", "error"), "warning": ("warning", "error"), "error": ("error",)}


def checked_inputs(workflow: Workflow, provided) -> dict:
    """The run's input values (defaults filled in) for the current version; engine.InvalidInputs
    naming each field otherwise (the start form asks it to report every field at once)."""
    return engine.checked_inputs(plan_for(_current_version(workflow).pk), provided)


def start_workflow_run(actor, workflow: Workflow, provided, trigger: str = Trigger.MANUAL) -> Run:
    """Start a run of the current version; engine.InvalidInputs names each field that does not fit."""
    return engine.start_run(actor, _current_version(workflow), inputs=provided, trigger=trigger)


def _current_version(workflow: Workflow):
    if workflow.current_version is None:
        raise engine.InvalidInputs({"workflow": f"{workflow.name} has no saved version yet: save its YAML first."})
    version = workflow.current_version
    version.workflow = workflow  # already loaded (with its team): starting a run reads both
    return version


def _day(text: str, end: bool):
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min))


def runs_for(user, filters: dict) -> tuple[QuerySet, dict]:
    """The runs `user` may see, narrowed by the filters given (workflow id, state, team slug,
    trigger, since/until as YYYY-MM-DD); also the filters that were understood."""
    runs = scope_to_user(Run.objects.select_related("workflow", "team", "version", "started_by"), user)
    chosen = {name: (filters.get(name) or "").strip() for name in FILTERS}
    if chosen["workflow"].isdigit():
        runs = runs.filter(workflow_id=int(chosen["workflow"]))
    if chosen["state"] in RunState.values:
        runs = runs.filter(state=chosen["state"])
    if chosen["team"]:
        runs = runs.filter(team__slug=chosen["team"])
    if chosen["trigger"] in Trigger.values:
        runs = runs.filter(trigger=chosen["trigger"])
    if since := _day(chosen["since"], end=False):
        runs = runs.filter(created_at__gte=since)
    if until := _day(chosen["until"], end=True):
        runs = runs.filter(created_at__lte=until)
    return runs, chosen


def get_run_for_user(user, pk, *, role: str | None = None) -> Run:
    # The run's pages show the version's number, not its YAML or spec (the plan is cached by
    # version), and link a re-run's original by its id alone.
    return get_for_user(Run.objects.select_related("workflow", "team", "version", "started_by")
                        .defer("trigger_detail", "version__source", "version__spec", "version__message"),
                        user, pk, role=role)


def get_step_run_for_user(user, pk, *, role: str | None = None) -> StepRun:
    return get_for_user(StepRun.objects.select_related("run", "run__team", "run__workflow"), user, pk,
                        team_field="run__team", role=role)


def get_step_of_run(run: Run, step_id: str) -> StepRun:
    step_run = run.step_runs.filter(step_id=step_id).first()
    if step_run is None:
        raise Http404(f"Run {run.pk} has no step {step_id!r}.")
    return step_run


def step_log_lines(step_run: StepRun, level: str = "", *, search: str = "") -> QuerySet:
    """The log lines of every attempt of `step_run`, at `level` or above when it is one of
    LOG_LEVELS_FROM (every line otherwise), whose message contains `search` when given; the page
    and the API order them as they need."""
    lines = StepLogLine.objects.filter(attempt__step_run=step_run)
    if level in LOG_LEVELS_FROM:
        lines = lines.filter(level__in=LOG_LEVELS_FROM[level])
    if search:
        lines = lines.filter(message__icontains=search)
    return lines
