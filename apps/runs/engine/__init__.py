"""The execution engine: the only code that changes the state of runs, step runs and attempts.

State lives in the database; Celery carries out one step attempt at a time (apps.runs.tasks).
Every transition locks the run's row, re-checks the state against the declared state machine,
changes it, writes an audit event, and enqueues the attempts that became ready with
`transaction.on_commit`, so a message never points at a row that was rolled back. One exception:
a step's success that only settles one of its successors' needs holds the run's row shared, so a
fan-out's branches finish side by side (worker._succeed_beside_siblings). Audit volume:
run transitions and step outcomes (succeeded, failed, skipped, gated, retried, compensated,
requeued) are audited; the mechanical queued -> running of each attempt is recorded on the
attempt row (times, worker) instead.

Where each rule lives:
- `transitions`: the state machines (which moves, which people's actions from which states,
  the role each needs, the audit action); `allowed_actions` for pages and the API.
- `starting`: the one way a run starts, with its inputs checked, for every path.
- `advancing`: which steps start, skip, wait or fail; the run's state; failure policy and
  compensation; queued runs starting as slots free up.
- `attempts`: the one builder of an attempt (parameters, queue, timeout) and its message, and
  `template_context`, what templates and conditions read (approvals evaluates `auto_approve` in it).
- `worker`: claim, heartbeat, finish, and the hand-off of a successor to the finishing worker.
- `decisions`: retry, skip, release, reject, cancel, abort, compensate.
- `recovery`: the sweeper and re-running from a failure.
- `contract`: the errors and the types the worker's side shares with the engine.
"""

from apps.runs.engine.advancing import lock
from apps.runs.engine.contract import (
    AttemptOutcome, CheckpointRequired, ClaimedAttempt, EngineError, Handoff, InvalidInputs, TransitionNotAllowed,
    worker_identity,
)
from apps.runs.engine.attempts import step_params, template_context
from apps.runs.engine.decisions import (
    abort_run, cancel_run, compensate_and_abort, reject_gate, release_gate, retry_step, skip_step,
)
from apps.runs.engine.recovery import rerun_from_failure, sweep, take_over
from apps.runs.engine.starting import checked_inputs, start_run
from apps.runs.engine.transitions import RUN_ACTIONS, STEP_ACTIONS, allowed_actions
from apps.runs.engine.worker import claim_attempt, finish_attempt, heartbeat, retry_delay

__all__ = [
    "RUN_ACTIONS", "STEP_ACTIONS", "AttemptOutcome", "CheckpointRequired", "ClaimedAttempt", "EngineError", "Handoff",
    "InvalidInputs", "TransitionNotAllowed", "abort_run", "allowed_actions", "cancel_run", "checked_inputs",
    "claim_attempt", "compensate_and_abort", "finish_attempt", "heartbeat", "lock", "reject_gate", "release_gate",
    "rerun_from_failure", "retry_delay", "retry_step", "skip_step", "start_run", "step_params", "sweep", "take_over",
    "template_context", "worker_identity",
]
