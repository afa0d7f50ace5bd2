"""Starting runs: the one way a run comes to exist, for every path (page, API, CLI, webhook,
queue message, schedule, file, upstream workflow, micro-batch, backfill, rerun). Inputs are
checked here against the version's declared inputs, so no path can skip the check.
"""

from __future__ import annotations

from apps.audit.log import batched, record
from apps.runs import statements
from apps.runs.engine.advancing import active_runs_locked, move, moved, start_steps
from apps.runs.engine.contract import InvalidInputs
from apps.runs.models import Run, RunState, StepRun, StepState, Trigger
from apps.workflows.plan import Plan, plan_for
from apps.workflows.spec import validate_inputs


@batched()
def start_run(actor, version, *, inputs: dict | None = None, trigger: str = Trigger.MANUAL,
              trigger_detail: dict | None = None) -> Run:
    """Create a run of `version` and start it, or leave it queued when the workflow is at its
    concurrency limit (it starts when a running one ends). Raises InvalidInputs."""
    plan = plan_for(version.pk)
    values = checked_inputs(plan, {} if inputs is None else inputs)
    return create_run(actor, version, plan, values, trigger, trigger_detail or {})


def create_run(actor, version, plan: Plan, inputs: dict, trigger: str, trigger_detail: dict, *,
               rerun_of: Run | None = None, kept: dict[str, StepRun] | None = None) -> Run:
    kept = kept or {}
    run = Run(
        workflow_id=version.workflow_id, version=version, team_id=version.workflow.team_id, inputs=inputs,
        trigger=trigger, trigger_detail=trigger_detail, started_by=actor, rerun_of=rerun_of,
    )
    # A run that may start now is inserted running: its row (eleven indexes) is written once, not
    # inserted and then updated; the move from queued is checked and audited all the same.
    begins = plan.concurrency is None or active_runs_locked(run.workflow_id) < plan.concurrency
    if begins:
        run.started_at = run.created_at
        move(run, RunState.RUNNING, extra_fields=["started_at"])
    rows = [StepRun(step_id=step.id, position=step.position, step_type=step.type,
                    **({"state": StepState.SUCCEEDED, "output": kept[step.id].output, "reused_from": kept[step.id],
                        "decision": kept[step.id].decision, "decision_input": kept[step.id].decision_input,
                        "started_at": kept[step.id].started_at, "finished_at": kept[step.id].finished_at}
                       if step.id in kept else {}))
            for step in plan.steps.values()]
    statements.insert_run(run, rows)
    run.team = version.workflow.team  # for the audit events; no re-read of the row just written
    record(actor, "run.created", run, after={
        "workflow": plan.name, "version": version.number, "trigger": trigger, "rerun_of": rerun_of and rerun_of.pk,
    })
    if begins:
        moved(run, RunState.QUEUED, actor)
        # The step runs just inserted, with their keys: the first advance reads none back.
        start_steps(run, plan, actor, rows={row.step_id: row for row in rows})
    return run


def checked_inputs(plan: Plan, given) -> dict:
    """The run's input values, defaults filled in; InvalidInputs naming each field that does not
    fit (unknown, missing, wrong type, not one of its choices)."""
    values, errors = validate_inputs({"inputs": plan.inputs}, given)
    if errors:
        raise InvalidInputs({error.path.removeprefix("inputs.") if error.path else "inputs":
                            f"{error.message}. {error.hint}" for error in errors})
    return values
