"""What a person needs on screen to decide a request without leaving it.

First the summary: the step, its type and risk, its parameters as the step will receive them
(rendered by the engine's own `step_params` for a gate; as the failed attempt ran them for a
checkpoint; secrets redacted), who asked, how long it waited, when it expires, the quorum so far,
and the value-level changes since the last approved run. Then the evidence: for a checkpoint first
what changed before the step failed (apps.runs.investigation), then inputs, upstream outputs, the
version diff, and for a checkpoint the error, the log tail, what compensation
would undo and what operators did last time. And the decision form's fields, generated from
the step type's schemas (apps.approvals.forms). Nothing here loads a model: suggestions come later, by htmx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from apps.approvals.models import CHECKPOINT_CHOICES, ApprovalRequest, ReasonCode, RequestKind, RequestState, Verdict
from apps.approvals.services import acting_for, last_params, refusal
from apps.audit.log import redact
from apps.catalog.registry import Risk, StepType, get_step_type
from apps.runs import engine
from apps.runs.changes import ValueChange, params_of, value_changes
from apps.runs.investigation import Fact, investigate
from apps.runs.models import AttemptKind, RunState, StepLogLine, StepRun, StepState
from apps.workflows.services import VersionDiff, diff_versions
from apps.workflows.spec.templating import TemplateEvaluationError

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
    step_type: StepType | None
    params: dict
    params_source: str
    params_problem: str
    upstream: list[StepRun]
    diff: VersionDiff | None
    previous_version_label: str
    previous_run_id: int | None = None
    changes: list[ValueChange] = field(default_factory=list)
    approvals_given: int = 0
    log_tail: list[StepLogLine] = field(default_factory=list)
    compensation: list[CompensationStep] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)  # a checkpoint's: what changed before the step failed
    past: list[ApprovalRequest] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    cannot_decide_because: str = ""

    @property
    def high_risk(self) -> bool:
        return self.step_type is not None and self.step_type.risk == Risk.HIGH

    @property
    def asked_by(self) -> str:
        run = self.request.run
        if run.started_by_id:
            return f"{run.started_by.display_name}, who started run #{run.pk}"
        return f"the {run.get_trigger_display().lower()} trigger of run #{run.pk}"

    @property
    def params_json(self) -> str:
        return _pretty(self.params)

    @property
    def inputs_json(self) -> str:
        return _pretty(redact(self.request.run.inputs)) if self.request.run.inputs else ""

    @property
    def upstream_outputs(self) -> list[tuple[StepRun, str]]:
        return [(row, _pretty(redact(row.output))) for row in self.upstream]


def decision_context(request: ApprovalRequest, user) -> DecisionContext:
    run, step_run = request.run, request.step_run
    plan = run.version.plan
    step = plan.steps.get(step_run.step_id)
    params, source, problem = params_to_decide(request, plan, step)
    previous = _last_approved_run(request)
    context = DecisionContext(
        request=request, step_spec=step.definition if step else {}, step_type=get_step_type(step_run.step_type),
        params=redact(params), params_source=source, params_problem=problem,
        upstream=list(run.step_runs.filter(step_id__in=(step.definition.get("needs") if step else None) or [])
                      .order_by("position")),
        diff=diff_versions(previous.version, run.version) if previous and previous.version_id != run.version_id
        else None,
        previous_version_label=(f"v{previous.version.number} (run #{previous.pk})" if previous else ""),
        previous_run_id=previous.pk if previous else None,
    )
    decisions = list(request.decisions.all())  # prefetched by the view: the form lists them too
    context.approvals_given = sum(1 for decision in decisions if decision.verdict == Verdict.APPROVE)
    if previous is not None:
        context.changes = value_changes(redact(params_of(previous.pk, step_run.step_id)), context.params,
                                         redact(previous.inputs), redact(run.inputs))
    if request.kind == RequestKind.CHECKPOINT:
        attempt = step_run.attempts.filter(kind=AttemptKind.STEP).order_by("-number").first()
        if attempt is not None:
            context.log_tail = list(reversed(attempt.log_lines.order_by("-at", "-id")[:LOG_TAIL_LINES]))
        context.compensation = compensation_preview(request)
        context.facts = investigate(step_run)
        context.past = past_decisions(request)
    context.allowed, context.cannot_decide_because = _choices_for(request, user, decisions)
    return context


def params_to_decide(request: ApprovalRequest, plan, step) -> tuple[dict, str, str]:
    """The parameters the decision is about, where they come from, and why they could not be
    rendered (when they could not)."""
    step_run = request.step_run
    if request.kind == RequestKind.CHECKPOINT:
        ran_with = last_params(step_run)
        if ran_with or step is None:
            return ran_with, "as the failed attempt ran them", ""
    if step is None:
        return {}, "unknown: the step is no longer in its version", ""
    if request.is_open and step_run.state == StepState.WAITING_APPROVAL:
        try:
            return (engine.step_params(request.run, plan, step, step_run),
                    "exactly as the step will receive them when approved", "")
        except TemplateEvaluationError as exc:
            return step.params, "as written in the workflow", f"They cannot be rendered yet: {exc}"
    ran_with = last_params(step_run)
    if ran_with:
        return ran_with, "as the step ran them", ""
    return step.params, "as written in the workflow (the step never ran)", ""


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


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


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


def _choices_for(request: ApprovalRequest, user, decisions: list) -> tuple[list[str], str]:
    """The verdicts `user` may give, and why none when they may give none."""
    if not request.is_open:
        return [], ""
    if any(decision.person_id == user.pk for decision in decisions):
        return [], "You already decided on this request; it waits for other approvers."
    choices = (Verdict.APPROVE, Verdict.REJECT) if request.kind == RequestKind.GATE else CHECKPOINT_CHOICES
    refusals = {choice: refusal(user, request, choice) for choice in choices}
    for choice, refused in refusals.items():
        if refused:  # a delegation may let them decide it for someone away
            refusals[choice] = refusal(user, request, choice, acting_for(user, request, choice))
    allowed = [choice for choice in choices if not refusals[choice]]
    return allowed, "" if allowed else refusals[choices[0]]


def bulk_confirmation(ids, verdict: str, high_risk: list[ApprovalRequest], *, comment: str = "",
                      reason_code: str = "", asked_again: bool = False, **where) -> dict:
    """The context of approvals/confirm_bulk.html, the one confirmation of bulk decisions (the
    inbox's and an incident group's; `where` may set action, back_url and back_label)."""
    return {"ids": list(ids), "verdict": verdict, "verdict_label": Verdict(verdict).label, "high_risk": high_risk,
            "comment": comment, "reason_code": reason_code, "asked_again": asked_again,
            "reason_label": ReasonCode(reason_code).label if reason_code in ReasonCode.values else "", **where}
