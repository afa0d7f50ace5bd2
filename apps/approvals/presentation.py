"""What a person needs on screen to decide a request without leaving it: the workflow and what
changed since the last approved run, inputs, parameters, upstream outputs, and for a checkpoint
the error, the log tail, what compensation would undo and what operators did last time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.approvals.models import CHECKPOINT_CHOICES, ApprovalRequest, RequestKind, RequestState, Verdict
from apps.approvals.services import last_params, refusal
from apps.runs.models import AttemptKind, RunState, StepLogLine, StepRun, StepState
from apps.workflows.services import VersionDiff, diff_versions

LOG_TAIL_LINES = 20
PAST_DECISIONS = 5


@dataclass
class CompensationStep:
    step_id: str
    finished_at: Any
    compensate_type: str | None  # None: the step declares no compensation, so it stays done


@dataclass
class DecisionContext:
    request: ApprovalRequest
    step_spec: dict
    params: dict
    params_source: str
    upstream: list[StepRun]
    diff: VersionDiff | None
    previous_version_label: str
    log_tail: list[StepLogLine] = field(default_factory=list)
    compensation: list[CompensationStep] = field(default_factory=list)
    past: list[ApprovalRequest] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    cannot_decide_because: str = ""


def decision_context(request: ApprovalRequest, user) -> DecisionContext:
    run, step_run = request.run, request.step_run
    step = run.version.plan.steps.get(step_run.step_id)
    spec = step.definition if step else {}
    rendered = last_params(step_run)
    previous = _last_approved_run(request)
    context = DecisionContext(
        request=request, step_spec=spec, params=rendered or spec.get("with") or {},
        params_source="as the last attempt ran them" if rendered else "as written in the workflow (not yet rendered)",
        upstream=list(run.step_runs.filter(step_id__in=spec.get("needs") or []).order_by("position")),
        diff=diff_versions(previous.version, run.version) if previous and previous.version_id != run.version_id
        else None,
        previous_version_label=(f"v{previous.version.number} (run {previous.pk})" if previous else ""),
    )
    if request.kind == RequestKind.CHECKPOINT:
        attempt = step_run.attempts.filter(kind=AttemptKind.STEP).order_by("-number").first()
        if attempt is not None:
            context.log_tail = list(reversed(attempt.log_lines.order_by("-at", "-id")[:LOG_TAIL_LINES]))
        context.compensation = compensation_preview(request)
        context.past = past_decisions(request)
    context.allowed, context.cannot_decide_because = _choices_for(request, user)
    return context


def _last_approved_run(request: ApprovalRequest):
    """The latest earlier run of the workflow whose same step was approved (gates) or that
    succeeded (checkpoints): what the decider last saw go through."""
    earlier = request.run.workflow.runs.filter(created_at__lt=request.run.created_at).select_related("version")
    if request.kind == RequestKind.GATE:
        earlier = earlier.filter(approval_requests__step_run__step_id=request.step_run.step_id,
                                 approval_requests__state=RequestState.APPROVED)
    else:
        earlier = earlier.filter(state=RunState.SUCCEEDED)
    return earlier.order_by("-created_at").first()


def compensation_preview(request: ApprovalRequest) -> list[CompensationStep]:
    """The completed steps in the order compensation undoes them (reverse completion order)."""
    steps = request.run.version.plan.steps
    done = request.run.step_runs.filter(state=StepState.SUCCEEDED).order_by("-finished_at", "-pk")
    return [CompensationStep(row.step_id, row.finished_at,
                             (steps[row.step_id].compensate or {}).get("type") if row.step_id in steps else None)
            for row in done]


def past_decisions(request: ApprovalRequest) -> list[ApprovalRequest]:
    """What operators decided on the same error signature before, and how those runs ended."""
    if not request.error_signature:
        return []
    return list(ApprovalRequest.objects.filter(
        kind=RequestKind.CHECKPOINT, error_signature=request.error_signature, state=RequestState.DECIDED,
        team_id=request.team_id,
    ).exclude(pk=request.pk).select_related("run", "run__workflow").prefetch_related("decisions__person")
        .order_by("-decided_at")[:PAST_DECISIONS])


def _choices_for(request: ApprovalRequest, user) -> tuple[list[str], str]:
    """The verdicts `user` may give, and why none when they may give none."""
    if not request.is_open:
        return [], ""
    if request.decisions.filter(person=user).exists():
        return [], "You already decided on this request; it waits for other approvers."
    choices = (Verdict.APPROVE, Verdict.REJECT) if request.kind == RequestKind.GATE else CHECKPOINT_CHOICES
    refusals = {choice: refusal(user, request, choice) for choice in choices}
    allowed = [choice for choice in choices if not refusals[choice]]
    return allowed, "" if allowed else refusals[choices[0]]


