"""Past runs for the demo: each `PastRun` (what happened, told by the demo loader) is played out
step by step on the version's plan, in simulated time, and written in three bulk inserts (runs,
step runs, attempts), with the same shapes the engine writes: attempts numbered per step with
their idempotency keys, retries after the step's backoff, gates opened when a step became ready
and released when the last approver decided, a failed step paused at its checkpoint until an
operator chose, steps after an abort cancelled. No audit events: this is imported history.

The approvals of those runs belong to the approvals app: `load_history` returns them as
`PastDecision`s for `apps.approvals.demo.load_decisions`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from apps.catalog.registry import Risk, get_step_type
from apps.runs.models import AttemptState, Run, RunState, SkipReason, StepAttempt, StepRun, StepState
from apps.runs.signatures import error_signature
from apps.workflows.plan import APPROVED, OnFailure, StepPlan, plan_for
from apps.workflows.spec.templating import TemplateEvaluationError, render_params

DEMO_WORKER = "flowdeck-worker-1"


@dataclass
class PastFailure:
    step: str
    error_type: str
    message: str
    retried: int = 0  # failed attempts before one succeeded; 0 means it failed for good
    decided_by: object = None  # the operator who decided its checkpoint
    decision: str = ""  # retry, skip or abort
    reason_code: str = ""
    comment: str = ""
    after_minutes: float = 30


@dataclass
class PastRun:
    version: object
    created_at: datetime
    inputs: dict
    trigger: str
    started_by: object = None
    seconds: dict[str, float] = field(default_factory=dict)  # typical duration of each step
    rows: dict[str, int] = field(default_factory=dict)  # records each step read
    outputs: dict[str, dict] = field(default_factory=dict)  # JSON answers of http steps
    skipped: frozenset[str] = frozenset()  # steps whose `when` was false
    approvers: list = field(default_factory=list)  # who approved each gate, in order
    approval_minutes: float = 30
    failure: PastFailure | None = None


@dataclass
class PastDecision:
    kind: str  # gate or checkpoint
    run: Run
    step_run: StepRun
    approval: dict | None
    opened_at: datetime
    decided_at: datetime
    people: list
    verdict: str
    reason_code: str = ""
    comment: str = ""
    error_type: str = ""
    error_message: str = ""


def _order(steps: dict[str, StepPlan]) -> list[StepPlan]:
    done, ordered = set(), []
    while len(ordered) < len(steps):
        for step in steps.values():
            if step.id not in done and all(need in done for need in step.needs):
                done.add(step.id)
                ordered.append(step)
    return ordered


def _output(step: StepPlan, rows: int, answer: dict | None, seconds: float):
    if step.type == "sql.query":
        columns = re.match(r"\s*select\s+(.+?)\s+from\s", step.params.get("sql", ""), re.IGNORECASE | re.DOTALL)
        names = [c.split(" as ")[-1].strip() for c in columns.group(1).split(",")] if columns else []
        return {"columns": names, "rows": [], "row_count": rows, "truncated": rows > 0}
    if step.type == "sql.execute":
        return {"columns": [], "rows": [], "row_count": 1, "truncated": False}
    if step.type == "data.check":
        return {"rows": rows, "results": [{"check": name, "passed": True} for name in step.params.get("checks", {})]}
    if step.type == "http.request":
        return {"status": 200, "headers": {"content-type": "application/json"}, "json": answer or {"status": "ok"}}
    if step.type == "notify":
        return {"email": "sent", "webhook": "not asked"}
    if step.type == "wait":
        return {"waited_seconds": seconds}
    return {}


class _Player:
    """Plays one past run forward in time; collects its rows."""

    def __init__(self, past: PastRun, rng: random.Random):
        self.past, self.rng = past, rng
        self.plan = plan_for(past.version.pk)
        self.steps: dict[str, StepRun] = {}
        self.attempts: dict[str, list[StepAttempt]] = {}
        self.decisions: list[tuple] = []  # (kind, step id, opened, decided, people, verdict, failure)
        self.outputs: dict[str, dict] = {}

    def vary(self, seconds: float, spread: float = 0.2) -> timedelta:
        return timedelta(seconds=max(0.05, seconds * self.rng.lognormvariate(0, spread)))

    def queue_wait(self) -> timedelta:
        return timedelta(seconds=self.rng.uniform(0.05, 1.2))

    def play(self) -> Run:
        past = self.past
        run = Run(workflow_id=past.version.workflow_id, version=past.version, team_id=past.version.workflow.team_id,
                  inputs=past.inputs, trigger=past.trigger, started_by=past.started_by, created_at=past.created_at,
                  started_at=past.created_at + self.queue_wait(), state=RunState.SUCCEEDED)
        ended_at, stopped_at = run.started_at, None
        approvers = iter(past.approvers * 4)
        for step in _order(self.plan.steps):
            row = StepRun(step_id=step.id, position=step.position, step_type=step.type)
            self.steps[step.id] = row
            needs = [self.steps[need] for need in step.needs]
            ready = max([need.finished_at for need in needs], default=run.started_at)
            if stopped_at is not None:
                row.state, row.finished_at = StepState.CANCELLED, stopped_at
                continue
            if needs and all(need.state == StepState.SKIPPED for need in needs):
                row.state, row.skip_reason, row.finished_at = StepState.SKIPPED, SkipReason.UPSTREAM_SKIPPED, ready
                continue
            if step.id in past.skipped:
                row.state, row.skip_reason, row.finished_at = StepState.SKIPPED, SkipReason.CONDITION, ready
                continue
            step_type = get_step_type(step.type)
            if step.approval or (step_type and step_type.risk == Risk.HIGH):
                quorum = int((step.approval or {}).get("quorum") or 1)
                people = [next(approvers) for _ in range(quorum)]
                decided = ready + self.vary(past.approval_minutes * 60, 0.6)
                self.decisions.append(("gate", step.id, ready, decided, people, "approve", None))
                row.decision = APPROVED
                ready = decided
            finished = self._attempts(step, row, ready)
            ended_at = max(ended_at, finished)
            if row.state == StepState.FAILED and step.on_failure != OnFailure.CONTINUE:
                # Failed for good, and not retried or skipped at its checkpoint: the run ends here.
                run.state = RunState.FAILED
                run.failure_summary = f"Step {step.id} failed: {row.error_type}: {row.error_message}"[:2000]
                stopped_at = finished
        run.finished_at = max([ended_at, *(row.finished_at for row in self.steps.values())])
        return run

    def _attempt(self, step: StepPlan, row: StepRun, queued: datetime, seconds: float, spread: float = 0.2,
                 **fields) -> StepAttempt:
        number = len(self.attempts.setdefault(step.id, [])) + 1
        started = queued + self.queue_wait()
        ended = started + self.vary(seconds, spread)
        step_type = get_step_type(step.type)
        context = {"inputs": self.past.inputs, "steps": {sid: {"output": out} for sid, out in self.outputs.items()},
                   "run": {"id": 0, "workflow": self.plan.name, "started_at": queued.isoformat()}}
        try:
            params = render_params(step.params, context, step_id=step.id)
        except TemplateEvaluationError:
            params = step.params
        attempt = StepAttempt(
            number=number, step_type=step.type, queue=step.queue or step_type.queue, params=params,
            timeout_seconds=step.timeout or step_type.timeout_seconds, queued_at=queued, not_before=queued,
            deliveries=1, started_at=started, ended_at=ended, heartbeat_at=ended,
            worker=f"{DEMO_WORKER}:{self.rng.randint(2000, 2400)}",
            duration_ms=int((ended - started).total_seconds() * 1000), **fields)
        self.attempts[step.id].append(attempt)
        row.attempt, row.started_at = number, row.started_at or started
        return attempt

    def _attempts(self, step: StepPlan, row: StepRun, ready: datetime) -> datetime:
        """The attempts of a started step; returns when it ended (or was decided after failing)."""
        past, failure = self.past, self.past.failure
        failure = failure if failure and failure.step == step.id else None
        typical = past.seconds.get(step.id, 2.0)
        queued = ready
        failed_attempts = 0
        if failure is not None:
            # Permanent errors are never retried; the others use up the step's retries.
            failed_attempts = failure.retried or (1 if failure.error_type == "PermanentStepError"
                                                  else step.retries["count"] + 1)
        for attempt_index in range(failed_attempts):
            seconds = (step.timeout or get_step_type(step.type).timeout_seconds) if failure.error_type == "Timeout" \
                else typical * self.rng.uniform(0.1, 0.6)
            attempt = self._attempt(step, row, queued, seconds, 0.001 if failure.error_type == "Timeout" else 0.2,
                                    state=AttemptState.FAILED, error_type=failure.error_type,
                                    error_message=failure.message,
                                    error_signature=error_signature(failure.error_type, failure.message))
            delay = step.retries["delay"] * (2 ** attempt_index if step.retries["backoff"] == "exponential" else 1)
            queued = attempt.ended_at + timedelta(seconds=min(delay, step.retries["max_delay"]))
        if failure is not None and not failure.retried:
            failed_at = self.attempts[step.id][-1].ended_at
            row.state, row.finished_at = StepState.FAILED, failed_at
            row.error_type, row.error_message = failure.error_type, failure.message
            if step.on_failure != OnFailure.PAUSE:
                return failed_at
            decided = failed_at + self.vary(failure.after_minutes * 60, 0.3)
            self.decisions.append(("checkpoint", step.id, failed_at, decided, [failure.decided_by], failure.decision,
                                   failure))
            if failure.decision == "skip":
                row.state, row.skip_reason, row.finished_at = StepState.SKIPPED, SkipReason.OPERATOR, decided
                return decided
            if failure.decision != "retry":
                return decided
            row.retry_budget_from = len(self.attempts[step.id]) + 1
            queued = decided
        attempt = self._attempt(step, row, queued, typical, state=AttemptState.SUCCEEDED,
                                records_in=int(past.rows.get(step.id, 0) * self.rng.uniform(0.9, 1.1)),
                                records_out=1 if step.type == "sql.execute" else 0)
        attempt.output = _output(step, attempt.records_in, past.outputs.get(step.id),
                                 round(typical))
        self.outputs[step.id] = attempt.output
        row.state, row.output, row.finished_at = StepState.SUCCEEDED, attempt.output, attempt.ended_at
        row.error_type = row.error_message = ""
        return attempt.ended_at


@transaction.atomic
def load_history(past_runs: list[PastRun], seed: int = 5) -> list[PastDecision]:
    """Write `past_runs` (three bulk inserts) and return the approvals decided in them."""
    rng = random.Random(seed)
    players = [_Player(past, rng) for past in past_runs]
    runs = Run.objects.bulk_create([player.play() for player in players])
    for run, player in zip(runs, players):
        for row in player.steps.values():
            row.run = run
    StepRun.objects.bulk_create([row for player in players for row in player.steps.values()])
    attempts = []
    for run, player in zip(runs, players):
        for step_id, step_attempts in player.attempts.items():
            for attempt in step_attempts:
                attempt.step_run = player.steps[step_id]
                attempt.idempotency_key = f"{run.pk}:{step_id}:{attempt.number}"
                attempts.append(attempt)
    StepAttempt.objects.bulk_create(attempts)
    decisions = []
    for run, player in zip(runs, players):
        for kind, step_id, opened, decided, people, verdict, failure in player.decisions:
            decisions.append(PastDecision(
                kind=kind, run=run, step_run=player.steps[step_id], approval=player.plan.steps[step_id].approval,
                opened_at=opened, decided_at=decided, people=people, verdict=verdict,
                reason_code=failure.reason_code if failure else "", comment=failure.comment if failure else "",
                error_type=failure.error_type if failure else "", error_message=failure.message if failure else ""))
    return decisions
