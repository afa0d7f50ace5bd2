"""What the engine and the worker's side share: the errors the engine raises, what a worker
holds while it carries out an attempt, how it reports the end, and its offer to keep a successor.

Nothing here imports the rest of the engine, so the worker's modules (apps.runs.tasks,
apps.runs.context) can use these types without importing the engine that imports them.
"""

from __future__ import annotations

import os
import socket
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import transaction

# The Celery task that carries out an attempt, sent by name so the engine never imports the task module.
RUN_ATTEMPT_TASK = "flowdeck.runs.run_attempt"
# The hard time limit kills a step this long after its soft limit asked it to stop.
HARD_TIME_LIMIT_GRACE_SECONDS = 5


class EngineError(Exception):
    """A request the engine refuses; the message says what to do instead."""


class TransitionNotAllowed(EngineError):
    """The run or step is not in a state that allows this action."""


class CheckpointRequired(TransitionNotAllowed):
    """A paused run's failure is decided only at its checkpoint (apps.approvals)."""


class InvalidInputs(EngineError):
    """The inputs given to a run do not fit the workflow's declared inputs; `errors` maps each
    input's name (or "inputs" for the whole) to what is wrong with it and how to fix it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


class MissingStepType(EngineError):
    def __init__(self, name: str):
        super().__init__(f"Step type {name!r} is not installed on this Flowdeck: ask a platform admin to install "
                         f"it, or change the step's type.")


@dataclass(frozen=True)
class ClaimedAttempt:
    """What a worker needs to carry out an attempt it has claimed."""

    attempt_id: int
    step_run_id: int
    run_id: int
    step_id: str
    kind: str
    number: int
    step_type: str
    params: dict
    idempotency_key: str
    timeout_seconds: int
    worker: str
    queue: str = "steps"
    # The fencing token of this claim: the attempt's delivery count when it was claimed. Every
    # claim counts one more, so a worker that lost its claim (taken over while cut off) is refused
    # even when the next claimant has the same `worker` name (a thread pool shares one pid; two
    # hosts may share a hostname and, in containers, pids).
    claim: int = 1
    # The run's version, when the claim read it: the finish then loads the successors with its lock.
    version_id: int | None = None


@dataclass
class AttemptOutcome:
    """How an attempt ended, as the worker saw it."""

    output: Any = None
    output_artifact: str = ""
    error_type: str = ""
    error_message: str = ""
    # A Reason (apps.catalog.registry) when Flowdeck knows the cause, and what its fix needs.
    error_reason: str = ""
    error_detail: dict | None = None
    permanent: bool = False
    duration_ms: int | None = None
    records_in: int = 0
    records_out: int = 0
    records_rejected: int = 0
    log_lines_dropped: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.error_type)


@dataclass
class Handoff:
    """A finishing worker's offer to run one successor itself instead of sending it through the
    broker: the first attempt made ready without delay on `queue` whose timeout fits in
    `max_timeout` is created already claimed by `worker` (in the same transaction), and no
    message is sent for it. If the worker dies, the attempt's heartbeat goes stale and the
    sweeper requeues it, as for any worker lost mid-step."""

    queue: str
    max_timeout: float
    worker: str
    kept: ClaimedAttempt | None = None

    def wants(self, queue: str, timeout: int, countdown: float) -> bool:
        # Not from inside a savepoint (a signal receiver's): it could roll back while the run commits.
        return (self.kept is None and not countdown and queue == self.queue and timeout <= self.max_timeout
                and not transaction.get_connection().savepoint_ids)


# The offer of the worker finishing an attempt, while the engine moves its run on.
current_handoff: ContextVar[Handoff | None] = ContextVar("flowdeck_handoff", default=None)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
