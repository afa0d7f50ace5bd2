"""The state machines of runs and step runs, declared in one place.

`RUN_MOVES` lists the moves the engine may make (target: sources); `set_run_state` refuses any
other. `RUN_ACTIONS` and `STEP_ACTIONS` are what people do: the states each is allowed from, the
team role it needs and the audit action it writes. The engine's action functions check them under
the run's lock with `require`; pages and the API ask `allowed_actions` instead of
repeating the rules. Deciding a paused run's failure (retry, skip, abort, compensate) also needs
a decision on its checkpoint: apps.approvals holds that decision and its separation of duties.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.accounts.access import has_role
from apps.accounts.models import Role
from apps.runs.engine.contract import CheckpointRequired, TransitionNotAllowed
from apps.runs.models import Run, RunState, StepRun, StepState

# Step states that still need work; FAILED is open too while it blocks the run (pause).
OPEN_STEP_STATES = (StepState.PENDING, StepState.WAITING_APPROVAL, StepState.QUEUED, StepState.RUNNING)
# States in which a step may no longer hold back what needs it (FAILED only with on_failure: continue).
SETTLED_IF_ALLOWED = (StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED)
# Runs that may start new steps.
ADVANCING_RUN_STATES = (RunState.RUNNING, RunState.WAITING)
# Runs whose failed attempts are still retried (mechanically, even while another branch paused it).
RETRYING_RUN_STATES = (RunState.RUNNING, RunState.WAITING, RunState.PAUSED)

_UNFINISHED = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.WAITING, RunState.PAUSED,
                        RunState.COMPENSATING})
_ACTIVE = frozenset({RunState.RUNNING, RunState.WAITING, RunState.PAUSED})

RUN_MOVES: dict[str, frozenset[str]] = {
    RunState.RUNNING: frozenset({RunState.QUEUED, RunState.WAITING, RunState.PAUSED}),
    RunState.WAITING: frozenset({RunState.RUNNING}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.WAITING}),
    RunState.SUCCEEDED: frozenset({RunState.RUNNING, RunState.WAITING}),
    RunState.COMPENSATING: _ACTIVE,
    RunState.FAILED: _ACTIVE | {RunState.COMPENSATING},
    RunState.CANCELLED: _UNFINISHED - {RunState.PAUSED},
}


class IllegalMove(AssertionError):
    """The engine tried a move RUN_MOVES does not declare: a bug, never a person's mistake."""


def check_move(run: Run, target: str) -> None:
    if run.state not in RUN_MOVES[target]:
        raise IllegalMove(f"Run {run.pk} cannot move from {run.state} to {target}.")


@dataclass(frozen=True)
class RunAction:
    """Something a person does to a run."""

    label: str
    sources: frozenset[str]
    role: str
    audit: str
    # What the refusal says after "Run N is <state>; " when the run's state does not allow it.
    refusal: str
    # From a paused run, only a decision on its checkpoint takes it.
    at_checkpoint: bool = False


@dataclass(frozen=True)
class StepAction:
    """Something a person does to a step run."""

    label: str
    run_sources: frozenset[str]
    step_sources: frozenset[str]
    role: str
    audit: str
    refusal: str
    at_checkpoint: bool = False


RUN_ACTIONS: dict[str, RunAction] = {
    "cancel": RunAction("Cancel", _UNFINISHED - {RunState.PAUSED}, Role.OPERATOR, "run.cancelled",
                        "there is nothing to cancel"),
    "abort": RunAction("Abort", _ACTIVE, Role.OPERATOR, "run.failed",
                       "only a running, waiting or paused run can be aborted", at_checkpoint=True),
    "compensate": RunAction("Compensate and abort", _ACTIVE, Role.OPERATOR, "run.compensating",
                            "only a running, waiting or paused run can be aborted", at_checkpoint=True),
    "rerun": RunAction("Re-run from failure", frozenset({RunState.FAILED, RunState.CANCELLED}), Role.OPERATOR,
                       "run.created", "only a failed or cancelled run can be re-run from its failure"),
}

# Who decides a gate is the approval's own rule (its group, or the team's approvers): see apps.approvals.
STEP_ACTIONS: dict[str, StepAction] = {
    "retry": StepAction("Retry", frozenset({RunState.PAUSED}), frozenset({StepState.FAILED}), Role.OPERATOR,
                        "step.retried", "only a failed step of a paused run can be retried", at_checkpoint=True),
    "skip": StepAction("Skip", frozenset({RunState.PAUSED}), frozenset({StepState.FAILED}), Role.OPERATOR,
                       "step.skipped", "only a failed step of a paused run can be skipped", at_checkpoint=True),
    "release": StepAction("Approve", frozenset(ADVANCING_RUN_STATES), frozenset({StepState.WAITING_APPROVAL}),
                          Role.APPROVER, "step.released", "nothing to release"),
    # Audited as step.failed, or step.skipped when the gate says `on_reject: skip | continue`.
    "reject": StepAction("Reject", _UNFINISHED, frozenset({StepState.WAITING_APPROVAL}), Role.APPROVER,
                         "step.failed", "nothing to reject"),
}


def can_step(run: Run, step_run: StepRun, action: str) -> bool:
    rule = STEP_ACTIONS[action]
    return run.state in rule.run_sources and step_run.state in rule.step_sources


def allowed_actions(run: Run, user) -> set[str]:
    """The run actions `user` may take on `run` now: its state allows them and `user` holds the role."""
    return {name for name, rule in RUN_ACTIONS.items()
            if run.state in rule.sources and has_role(user, run.team_id, rule.role)}


def require(run: Run, action: str, *, checkpoint: int | None = None) -> None:
    """Raise unless `run`'s state allows `action` (under the run's lock)."""
    rule = RUN_ACTIONS[action]
    if run.state == RunState.PAUSED and checkpoint is None and (rule.at_checkpoint or action == "cancel"):
        raise CheckpointRequired(f"Run {run.pk} is paused at a failed step: decide at its checkpoint instead "
                                 f"(abort ends the run), with a reason and a comment.")
    if run.state not in rule.sources:
        verb = "already" if run.is_finished else "is"
        raise TransitionNotAllowed(f"Run {run.pk} {verb} {run.state}; {rule.refusal}.")


def require_step(run: Run, step_run: StepRun, action: str) -> None:
    rule = STEP_ACTIONS[action]
    if not can_step(run, step_run, action):
        raise TransitionNotAllowed(
            f"Step {step_run.step_id} is {step_run.get_state_display().lower()} in a {run.state} run; "
            f"{rule.refusal}.")
