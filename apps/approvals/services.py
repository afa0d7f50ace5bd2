"""Domain functions of the approvals app: the only code that writes approval requests,
decisions, risk waivers and notification channels.

Every decision locks the run (`engine.lock`) and then the request, always in that order (the
order the engine's own signals use), re-checks the request's state, records the decision
and its audit event, and calls the engine; so two approvers deciding at the same moment give
exactly one outcome, and a decision and its effect on the run commit together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.accounts.access import (
    get_for_user,
    has_role,
    require_platform_admin,
    scope_to_user,
    team_ids_with_role,
)
from apps.accounts.models import ApproverGroup, Membership, Role, Team, User
from apps.approvals import delegation, links, reminders
from apps.approvals.models import (
    CHECKPOINT_CHOICES,
    ApprovalRequest,
    AutoApprovalBan,
    Decision,
    OnExpiry,
    ReasonCode,
    RequestCause,
    RequestKind,
    RequestState,
    RiskWaiver,
    Verdict,
)
from apps.approvals.signals import checkpoint_decided
from apps.audit.log import canonical, record
from apps.catalog.registry import Risk, get_step_type, params_errors
from apps.catalog.schema_form import errors_by_field
from apps.knowledge.decision_record import suggestions_at_decision
from apps.notifications.services import absolute_url, notify
from apps.runs import engine
from apps.runs.models import AttemptKind, Run, RunState, StepRun, StepState
from apps.runs.signatures import error_signature
from apps.workflows.plan import APPROVED, REJECTED, Gate, gate_of, step_definitions
from apps.workflows.spec import form_errors
from apps.workflows.spec.templating import (
    TemplateEvaluationError,
    evaluate_condition,
    expression_values,
)

# Checkpoint choices and the role each needs; skipping a risky step needs an approver.
CHOICE_ROLES = {Verdict.RETRY: Role.OPERATOR, Verdict.SKIP: Role.OPERATOR, Verdict.COMPENSATE: Role.OPERATOR,
                Verdict.ABORT: Role.OPERATOR}
RISKY_SKIP_ROLE = Role.APPROVER
# Remind the deciders when this share of the approval's timeout is left.
WARN_AT_SHARE_LEFT = 0.2
# A waived, auto-approved or kept gate is released on commit; one still waiting after this is released by the
# expiry task.
WAIVED_RELEASE_GRACE = timedelta(seconds=30)
UNATTENDED_STATES = (RequestState.WAIVED, RequestState.AUTO_APPROVED, RequestState.KEPT)


class ApprovalError(Exception):
    """A decision that cannot be taken; the message says what to do instead."""


class InvalidDecision(ApprovalError):
    """The decision is incomplete or malformed (pages show it on the form; the API answers 400).
    `fields` names the form fields at fault, each with why, when the fault is in some of them."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class ConfirmationNeeded(InvalidDecision):
    """A bulk decision that needs a confirmation first: approving high-risk steps (with a
    comment), or skipping or aborting several failures at once. `high_risk` names the risky
    requests among them, for the confirmation to list."""

    def __init__(self, high_risk: list[ApprovalRequest], verdict: str = Verdict.APPROVE, count: int = 0):
        self.high_risk, self.verdict, self.count = high_risk, verdict, count
        names = ", ".join(f"#{request.pk} {request.step_run.step_id} ({request.step_run.step_type})"
                          for request in high_risk)
        if verdict == Verdict.APPROVE:
            super().__init__(f"Approving {names} runs high-risk steps: confirm that you checked each of them, and "
                             f"say why in the comment.",
                             {"comment": "A bulk approval of high-risk steps needs a comment."})
            return
        risky = f" ({len(high_risk)} of them risky: {names})" if high_risk else ""
        super().__init__(f"To {Verdict(verdict).label.lower()} {count} failed step(s) at once{risky}, confirm it "
                         f"(`confirm`): it cannot be undone.")


class InvalidFormValues(InvalidDecision):
    """What the approver filled in does not fit the gate's form; `fields` names each problem."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("The form is not filled in correctly: "
                         + "; ".join(f"{name} {problem}" for name, problem in fields.items()) + ".", fields)


class DecisionConflict(ApprovalError):
    """The request is no longer in a state that takes this decision (the API answers 409)."""


class DecisionExpired(DecisionConflict):
    """The request's time to decide is over, whether or not the expiry task has run yet."""

    def __init__(self, request: ApprovalRequest):
        self.expires_at = request.expires_at
        then = timezone.localtime(request.expires_at)
        if request.on_expiry == OnExpiry.ESCALATE and request.escalate_to and request.escalated_at is None:
            after = f"it goes to {request.escalate_to.slug}, who decide from then on"
        else:
            after = "the step fails as rejected"
        super().__init__(f"Request {request.pk} expired at {then:%Y-%m-%d %H:%M:%S %Z}: it can no longer be "
                         f"decided, and {after}.")


# --- Opening requests (called from the engine's signals, inside its transaction) -------------


def open_gate(run: Run, step_run: StepRun, approval: dict | None) -> ApprovalRequest:
    """Record that a step waits for approval; tell the deciders of its first sign-off. A high-risk
    step type without its own `approval` block runs at once when a platform admin waived that type
    for the team; a gate whose `auto_approve` holds runs at once, approved automatically."""
    now = timezone.now()
    if approval is None and RiskWaiver.objects.filter(team_id=run.team_id, step_type=step_run.step_type).exists():
        request = ApprovalRequest.objects.create(
            kind=RequestKind.GATE, state=RequestState.WAIVED, team_id=run.team_id, run=run, step_run=step_run,
            risky=True, decided_at=now)
        record(None, "approval.waived", request, team=run.team, after=_describe(request))
        transaction.on_commit(lambda: _release_unattended(request.pk))
        return request
    gate = gate_for(run, step_run)
    digest = params_digest(run, step_run)
    kept = _keep_earlier_approval(run, step_run, gate, digest, now)
    if kept is not None:
        return kept
    if gate.auto_approve:
        request = _auto_approve(run, step_run, gate, now)
        if request is not None:
            return request
    requests = _open_stage(run, step_run, gate, 0, now)
    ApprovalRequest.objects.filter(pk__in=[request.pk for request in requests]).update(params_digest=digest)
    return requests[0]


def params_digest(run: Run, step_run: StepRun) -> str:
    """sha256 of the step's version and its parameters rendered as they would run now ("" when
    they cannot be rendered yet: nothing to compare)."""
    plan = run.version.plan
    try:
        # What the step would receive, overrides included: the engine's own rendering, as the gate page shows.
        params = engine.step_params(run, plan, plan.steps[step_run.step_id], step_run)
    except TemplateEvaluationError:
        return ""
    return hashlib.sha256(canonical({"version": run.version_id, "params": params}).encode()).hexdigest()


def _keep_earlier_approval(run: Run, step_run: StepRun, gate, digest: str, now) -> ApprovalRequest | None:
    """In a rerun, the approval of the same step in the run it reruns still holds when the version
    and the rendered parameters are unchanged (and the gate's `reapprove` is `on_change`): the gate
    is released at once, recorded as kept, with the earlier decision and what was filled in."""
    if run.rerun_of_id is None or gate.reapprove == "always" or not digest:
        return None
    earlier = ApprovalRequest.objects.filter(
        run_id=run.rerun_of_id, step_run__step_id=step_run.step_id, kind=RequestKind.GATE,
        state__in=(RequestState.APPROVED, RequestState.AUTO_APPROVED, RequestState.KEPT),
    ).select_related("step_run").order_by("-stage", "-pk").first()
    if earlier is None or earlier.step_run.decision in ("", None, REJECTED):
        return None
    if earlier.params_digest != digest:
        record(None, "approval.asked_again", object_type="runs.steprun", object_id=step_run.pk, team=run.team,
               after={"run": run.pk, "step": step_run.step_id, "earlier_run": run.rerun_of_id,
                      "reason": "its parameters or version changed since the earlier approval"})
        return None
    request = ApprovalRequest.objects.create(
        kind=RequestKind.GATE, state=RequestState.KEPT, outcome=Verdict.APPROVE, team_id=run.team_id, run=run,
        step_run=step_run, risky=True, decided_at=now, params_digest=digest, kept_from=earlier)
    record(None, "approval.kept", request, team=run.team, after={
        "run": run.pk, "step": step_run.step_id, "earlier_run": run.rerun_of_id, "earlier_request": earlier.pk,
        "decision": earlier.step_run.decision, "reason": "same version and rendered parameters"})
    transaction.on_commit(lambda: _release_unattended(request.pk))
    return request


def gate_for(run: Run, step_run: StepRun) -> Gate:
    """The gate a step waits at: its `approval`, or the team's approvers for a high-risk type without one."""
    step = run.version.plan.steps.get(step_run.step_id)
    return step.gate if step is not None and step.gate is not None else gate_of(None)


def _open_stage(run: Run, step_run: StepRun, gate: Gate, index: int, now) -> list[ApprovalRequest]:
    """One request per group of sign-off `index`. Whoever approved an earlier sign-off is a cause
    of this one: a chain needs different people at each stage (separation of duties)."""
    earlier = Decision.objects.filter(request__step_run=step_run, request__kind=RequestKind.GATE,
                                      request__stage__lt=index, verdict=Verdict.APPROVE)
    approved_before = {}
    # A delegate's approval binds both: neither may approve a later stage.
    for person_id, for_id, stage in earlier.values_list("person_id", "on_behalf_of_id", "request__stage"):
        approved_before[person_id] = f"approved stage {stage + 1} of this step"
        if for_id:
            approved_before.setdefault(for_id, f"had stage {stage + 1} of this step approved on their behalf")
    timeout = gate.timeout
    expires_at = now + timedelta(seconds=timeout) if timeout else None
    requests = []
    for approvers in gate.stages[index].approvers:
        request = ApprovalRequest.objects.create(
            kind=RequestKind.GATE, team_id=run.team_id, run=run, step_run=step_run,
            group=_group_of_team(approvers.group, run.team_id), quorum=max(1, approvers.quorum), stage=index,
            timeout_seconds=timeout, expires_at=expires_at,
            # A gate that says when to remind (`remind`) gets those reminders instead of the default one.
            warn_at=expires_at - timedelta(seconds=timeout * WARN_AT_SHARE_LEFT) if timeout and not gate.remind
            else None,
            on_expiry=gate.on_expiry or OnExpiry.REJECT,
            escalate_to=_group_of_team(gate.escalate_to, run.team_id), risky=True,
            due_at=_earliest(expires_at, run.version.plan.deadline(run)),
        )
        _record_causes(request, run, step_run, also=approved_before)
        reminders.schedule(request, list(gate.remind))
        record(None, "approval.requested", request, team=run.team, after=_describe(request))
        chain = f" (sign-off {index + 1} of {len(gate.stages)})" if len(gate.stages) > 1 else ""
        _notify_request(request, "approval.requested", f"Approval needed: {_title(request)}",
                        f"Step {step_run.step_id} of run {run.pk} waits for {request.quorum} approval(s){chain}"
                        f"{_expiry_phrase(request)}.")
        requests.append(request)
    return requests


def _auto_approve(run: Run, step_run: StepRun, gate: Gate, now) -> ApprovalRequest | None:
    """Approve the gate without a person when its `auto_approve` holds, and audit the expression
    with the values it read. None (a person decides) when it does not hold, cannot be evaluated,
    or a platform admin forbade auto-approval for the step's type."""
    context = engine.template_context(run, run.version.plan, run.version.plan.steps[step_run.step_id].reads_steps)
    detail = {"run": run.pk, "step": step_run.step_id, "expression": gate.auto_approve,
              "values": expression_values(gate.auto_approve, context)}
    forbidden = AutoApprovalBan.objects.filter(step_type=step_run.step_type).values_list("reason", flat=True).first()
    try:
        holds = not forbidden and evaluate_condition(gate.auto_approve, context, step_id=step_run.step_id)
    except TemplateEvaluationError as exc:
        detail["error"], holds = str(exc), False
    if forbidden or "error" in detail:
        record(None, "approval.auto_approve_refused", object_type="runs.steprun", object_id=step_run.pk,
               team=run.team, after={**detail, "reason": forbidden or "the expression could not be evaluated"})
    if not holds:
        return None
    request = ApprovalRequest.objects.create(
        kind=RequestKind.GATE, state=RequestState.AUTO_APPROVED, outcome=Verdict.APPROVE, team_id=run.team_id,
        run=run, step_run=step_run, risky=True, decided_at=now)
    record(None, "approval.auto_approved", request, team=run.team,
           after={**detail, "decision_input": gate.form_defaults or None})
    transaction.on_commit(lambda: _release_unattended(request.pk))
    return request


def open_checkpoint(run: Run, step_run: StepRun, error_type: str, error_message: str) -> ApprovalRequest | None:
    """A step failed for good and its run paused: ask the team's operators to decide."""
    if ApprovalRequest.objects.filter(step_run=step_run, kind=RequestKind.CHECKPOINT,
                                      state=RequestState.PENDING).exists():
        return None
    step_type = get_step_type(step_run.step_type)
    attempt = step_run.attempts.filter(kind=AttemptKind.STEP).order_by("-number").first()
    signature = (attempt.error_signature if attempt and attempt.error_signature
                 else error_signature(error_type, error_message))
    request = ApprovalRequest.objects.create(
        kind=RequestKind.CHECKPOINT, team_id=run.team_id, run=run, step_run=step_run,
        risky=bool(run.version.plan.steps[step_run.step_id].approval) or (step_type is not None
                                                                            and step_type.risk == Risk.HIGH),
        error_type=error_type[:200], error_message=error_message, error_signature=signature,
        due_at=run.version.plan.deadline(run),
    )
    _record_causes(request, run, step_run)
    record(None, "checkpoint.opened", request, team=run.team, after=_describe(request))
    _notify_request(request, "checkpoint.opened", f"Run paused: {_title(request)}",
                    f"Step {step_run.step_id} of run {run.pk} failed: {error_type}: {error_message[:500]}\n"
                    f"Decide to retry, skip, compensate or abort.")
    return request


def withdraw_stale(run: Run) -> None:
    """Close the open requests of `run` that no longer wait on anything (the run finished, or a
    gated or failed step moved on outside the inbox)."""
    stale = ApprovalRequest.objects.filter(run=run, state=RequestState.PENDING)
    if not run.is_finished:
        # A checkpoint stays open while its step is failed, even when another branch resumed the run:
        # the run pauses again on that step, and the decision is still needed then.
        stale = stale.filter(Q(kind=RequestKind.GATE) & ~Q(step_run__state=StepState.WAITING_APPROVAL)
                             | Q(kind=RequestKind.CHECKPOINT) & ~Q(step_run__state=StepState.FAILED))
    now = timezone.now()
    for request in stale:
        request.state, request.decided_at = RequestState.WITHDRAWN, now
        request.save(update_fields=["state", "decided_at"])
        record(None, "approval.withdrawn", request, team=run.team,
               after={"run_state": run.state, "step_state": request.step_run.state})


def _group_of_team(slug: str | None, team_id: int) -> ApproverGroup | None:
    # A group of another team cannot decide for this one: its requests fall back to the team's approvers.
    return ApproverGroup.objects.filter(slug=slug, team_id=team_id).first() if slug else None


def _earliest(*moments):
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def _record_causes(request: ApprovalRequest, run: Run, step_run: StepRun, also: dict[int, str] | None = None) -> None:
    causes: dict[int, str] = dict(also or {})
    if run.started_by_id:
        causes[run.started_by_id] = f"started run {run.pk}"
    for number, author_id in step_authors(run, step_run.step_id):
        causes.setdefault(author_id, f"wrote step {step_run.step_id} in version {number}")
    edits = Decision.objects.filter(request__step_run=step_run, request__kind=RequestKind.CHECKPOINT,
                                    verdict=Verdict.RETRY, params_override__isnull=False)
    for person_id, checkpoint_id, edited in edits.values_list("person_id", "request_id", "params_override"):
        if edited:
            causes.setdefault(person_id, f"edited the parameters of step {step_run.step_id} at checkpoint "
                                         f"{checkpoint_id}")
    RequestCause.objects.bulk_create([RequestCause(request=request, person_id=person_id, reason=reason)
                                      for person_id, reason in causes.items()])


def step_authors(run: Run, step_id: str) -> list[tuple[int, int]]:
    """(version number, author id) of the version that introduced the step and of the version
    that last changed its definition, walking back from the run's version."""
    versions = run.workflow.versions.filter(number__lte=run.version.number).order_by("-number")
    current = run.version.plan.steps[step_id].definition
    introduced = changed = None
    for number, author_id, definition in step_definitions(versions, step_id):
        if definition is None:
            break
        introduced = (number, author_id)
        if definition == current:
            changed = (number, author_id)
    return [found for found in (introduced, changed) if found and found[1]]


def _release_unattended(request_id: int) -> None:
    """Release a gate nobody had to decide (waived, or approved automatically with the form's defaults)."""
    request = ApprovalRequest.objects.select_related("run__version", "step_run", "kept_from__step_run") \
        .get(pk=request_id)
    decision, given = APPROVED, None
    if request.state == RequestState.AUTO_APPROVED:
        given = gate_for(request.run, request.step_run).form_defaults
    elif request.state == RequestState.KEPT:
        decision, given = request.kept_from.step_run.decision, request.kept_from.step_run.decision_input
    try:
        engine.release_gate(request.step_run, decision=decision, decision_input=given or None)
    except engine.TransitionNotAllowed:
        pass  # the run was cancelled meanwhile, or an earlier release won


# --- Deciding ----------------------------------------------------------------------------------


def _lock(request_id: int) -> ApprovalRequest:
    run_id = ApprovalRequest.objects.values_list("run_id", flat=True).get(pk=request_id)
    engine.lock(run_id)
    return ApprovalRequest.objects.select_for_update(of=("self",)) \
        .select_related("run", "run__team", "run__workflow", "step_run", "group", "team").get(pk=request_id)


def _require_open(request: ApprovalRequest, kind: str) -> None:
    if request.kind != kind:
        raise InvalidDecision(f"Request {request.pk} is {_a(request.get_kind_display().lower())}; "
                              f"use its own choices.")
    if request.state != RequestState.PENDING:
        raise DecisionConflict(f"Request {request.pk} is already {request.get_state_display().lower()}; "
                               f"there is nothing left to decide. Open the history to see who decided.")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def caused_by(request: ApprovalRequest, person) -> str:
    """Why `person` caused the request ("" when they did not)."""
    return request.causes.filter(person=person).values_list("reason", flat=True).first() or ""


def _may_decide_gate(actor, request: ApprovalRequest) -> bool:
    if request.group_id is not None:
        return request.group.members.filter(pk=actor.pk).exists()
    return has_role(actor, request.team_id, Role.APPROVER)


def _self_approval_allowed(request: ApprovalRequest) -> bool:
    return request.group is not None and request.group.allow_self_approval


def _is_approval(request: ApprovalRequest, verdict: str) -> bool:
    """Whether `verdict` approves something risky, which separation of duties applies to."""
    return request.kind == RequestKind.GATE or required_role(request, verdict) == RISKY_SKIP_ROLE


def refusal(actor, request: ApprovalRequest, verdict: str, on_behalf_of=None) -> str:
    """Why `actor` may not give `verdict` on `request` ("" when they may): the role or group it
    needs, and separation of duties (nobody approves what they caused, unless the group allows it).
    On behalf of a delegator: their delegation, their authority, and the SoD of both people."""
    if on_behalf_of is not None:
        return _refusal_on_behalf(actor, request, verdict, on_behalf_of)
    if request.kind == RequestKind.GATE:
        if not _may_decide_gate(actor, request):
            who = f"members of {request.group.slug}" if request.group else "approvers of the team"
            return f"Only {who} can decide this request; ask one of them."
        approving_kind = True
    else:
        role = required_role(request, verdict)
        if not has_role(actor, request.team_id, role):
            return (f"Only people with the {role} role in {request.team.name} can "
                    f"{Verdict(verdict).label.lower()} this step; ask one of them.")
        approving_kind = role == RISKY_SKIP_ROLE
    reason = caused_by(request, actor) if approving_kind else ""
    if reason and not _self_approval_allowed(request):
        return f"You {reason}, so you cannot decide this request: another approver must (separation of duties)."
    return ""


def _refusal_on_behalf(actor, request: ApprovalRequest, verdict: str, delegator) -> str:
    name = delegator.display_name
    if not delegation.holds(delegator, actor, request.team_id):
        return f"{name} has not delegated their decisions in {request.team.name} to you at this time."
    if refusal(delegator, request, verdict):
        return f"{name} may not {Verdict(verdict).label.lower()} this request, so nobody can on their behalf."
    reason = caused_by(request, actor) if _is_approval(request, verdict) else ""
    if reason and not _self_approval_allowed(request):
        return (f"You {reason}, so you cannot decide this request, not even on behalf of {name} "
                f"(separation of duties).")
    return ""


def acting_for(actor, request: ApprovalRequest, verdict: str):
    """The delegator whose authority `actor` gives `verdict` with: None when they may give it in
    their own name or hold no delegation here. When no delegation they hold lets them, the first
    one, so that the decision is refused with the reason it does not."""
    if verdict not in ((Verdict.APPROVE, Verdict.REJECT) if request.kind == RequestKind.GATE else CHECKPOINT_CHOICES):
        return None  # the decision function refuses it with the reason
    if not refusal(actor, request, verdict):
        return None
    delegators = delegation.delegators_of(actor, request.team_id)
    for delegator in delegators:
        if not refusal(actor, request, verdict, on_behalf_of=delegator) and not _counted(request, delegator):
            return delegator
    return delegators[0] if delegators else None


def _counted(request: ApprovalRequest, person) -> bool:
    """Whether `person`'s say on `request` was given, by them or by their delegate."""
    return request.decisions.filter(Q(person=person) | Q(on_behalf_of=person)).exists()


def _record_decision(actor, request: ApprovalRequest, verdict: str, **fields) -> Decision:
    if request.decisions.filter(person=actor).exists():
        raise DecisionConflict("You already decided on this request; quorum counts distinct people, so "
                               "another approver has to give the next approval.")
    # A delegation counts once: the delegator's say is given by them or by their delegate, not both.
    if request.decisions.filter(on_behalf_of=actor).exists():
        raise DecisionConflict("Your delegate already decided this request on your behalf; quorum counts you once.")
    principal = fields.get("on_behalf_of")
    if principal is not None and _counted(request, principal):
        raise DecisionConflict(f"{principal.display_name}'s say on this request was already given; a delegation "
                               f"counts once.")
    try:
        with transaction.atomic():
            decision = Decision.objects.create(request=request, person=actor, verdict=verdict, **fields)
    except IntegrityError:
        raise DecisionConflict("You already decided on this request.") from None
    forget_badge(actor)  # the decider's inbox changed: their own badge must not lag behind it
    audited = {key: value for key, value in fields.items() if value not in (None, "", False)}
    if principal is not None:
        audited["on_behalf_of"] = principal.username
    record(actor, f"approval.decision.{verdict}", request, team=request.team, after={
        "request": request.pk, "kind": request.kind, "run": request.run_id, "step": request.step_run.step_id,
        "verdict": verdict, **audited,
    })
    return decision


def _close(actor, request: ApprovalRequest, state: str, outcome: str = "") -> None:
    before = request.state
    request.state, request.outcome, request.decided_at = state, outcome, timezone.now()
    request.save(update_fields=["state", "outcome", "decided_at"])
    record(actor, f"approval.{state}", request, team=request.team, before={"state": before},
           after={"state": state, "outcome": outcome})


@transaction.atomic
def decide_gate(actor, request: ApprovalRequest, verdict: str, comment: str = "", *, option: str = "",
                form_values: dict | None = None, on_behalf_of=None) -> ApprovalRequest:
    """Approve or reject a gate. Approving chooses one of the gate's `options` when it names
    some, and fills in its `form` (the values given over the last approver's, over the form's
    defaults). Once the quorum of distinct approvers is reached the sign-off is done: the next
    sign-off of a chain opens, or the step is queued (on commit). One rejection rejects the
    gate, and needs a comment; the gate's `on_reject` says what happens to the step. A delegate
    decides `on_behalf_of` the delegator whose delegation they hold."""
    comment = (comment or "").strip()
    request = _lock(request.pk)
    _require_open(request, RequestKind.GATE)
    if request.expires_at is not None and request.expires_at <= timezone.now():
        # Refused here, not only by the expiry task: beat may be late or down.
        raise DecisionExpired(request)
    if verdict not in (Verdict.APPROVE, Verdict.REJECT):
        raise InvalidDecision("An approval gate takes approve or reject.")
    refused = refusal(actor, request, verdict, on_behalf_of)
    if refused:
        raise PermissionDenied(refused)
    self_approval = bool(caused_by(request, actor))
    gate = gate_for(request.run, request.step_run)
    given = {}
    if verdict == Verdict.REJECT:
        if not comment:
            raise InvalidDecision("A rejection needs a comment: say why, so the author knows what to change.")
    else:
        given = {"option": _chosen_option(gate, option), "form_values": _filled_form(gate, request, form_values)}
    _record_decision(actor, request, verdict, comment=comment, self_approval=self_approval,
                     on_behalf_of=on_behalf_of, **given)
    finished = True
    try:
        if verdict == Verdict.REJECT:
            _close(actor, request, RequestState.REJECTED, Verdict.REJECT)
            _withdraw_siblings(request)
            engine.reject_gate(request.step_run, comment, actor=actor)
        elif request.decisions.filter(verdict=Verdict.APPROVE).count() >= request.quorum:
            _close(actor, request, RequestState.APPROVED, Verdict.APPROVE)
            finished = _sign_off_done(actor, request, gate, **given)
    except engine.EngineError as exc:
        raise DecisionConflict(str(exc)) from None
    if not request.is_open and finished:
        _notify_decided(request, actor, comment)
    return request


def _chosen_option(gate: Gate, option: str) -> str:
    option = (option or "").strip()
    if gate.options and option not in gate.options:
        named = ", ".join(gate.options)
        raise InvalidDecision(f"Choose how to approve: {named}." if not option else
                              f"`{option}` is not an option of this gate; choose one of: {named}.")
    if option and not gate.options:
        raise InvalidDecision("This gate has no options: approve or reject.")
    return option


def _filled_form(gate: Gate, request: ApprovalRequest, given: dict | None) -> dict | None:
    if not gate.form:
        if given:
            raise InvalidDecision("This gate has no form to fill in; approve or reject without values.")
        return None
    if given is not None and not isinstance(given, dict):
        raise InvalidDecision("Form values must be an object of field names and values.")
    values = {**gate.form_defaults, **form_so_far(request.step_run), **(given or {})}
    errors = form_errors(gate.form, values)
    if errors:
        raise InvalidFormValues(errors)
    return values


def form_so_far(step_run: StepRun) -> dict:
    """What the last approver of the step's gate filled in (a later sign-off starts from it)."""
    latest = Decision.objects.filter(request__step_run=step_run, request__kind=RequestKind.GATE,
                                     form_values__isnull=False).order_by("-decided_at", "-pk")
    return dict(latest.values_list("form_values", flat=True).first() or {})


def _sign_off_done(actor, request: ApprovalRequest, gate: Gate, *, option: str, form_values: dict | None) -> bool:
    """A group approved its sign-off. Open the next sign-off of the chain, or release the step;
    False while other groups of an `all_of` sign-off, or later sign-offs, still decide."""
    siblings = ApprovalRequest.objects.filter(step_run=request.step_run, kind=RequestKind.GATE, stage=request.stage,
                                              state=RequestState.PENDING).exclude(pk=request.pk)
    stage = gate.stages[min(request.stage, len(gate.stages) - 1)]
    if stage.mode == "any":
        _withdraw_siblings(request)
    elif siblings.exists():
        return False
    if request.stage + 1 < len(gate.stages):
        _open_stage(request.run, request.step_run, gate, request.stage + 1, timezone.now())
        return False
    engine.release_gate(request.step_run, actor=actor, decision=option or APPROVED, decision_input=form_values)
    return True


def _withdraw_siblings(request: ApprovalRequest) -> None:
    """Close the other open requests of the same gate: one rejection (or one group of an any_of) decided it."""
    now = timezone.now()
    for sibling in ApprovalRequest.objects.filter(step_run=request.step_run, kind=RequestKind.GATE,
                                                  state=RequestState.PENDING).exclude(pk=request.pk):
        sibling.state, sibling.decided_at = RequestState.WITHDRAWN, now
        sibling.save(update_fields=["state", "decided_at"])
        record(None, "approval.withdrawn", sibling, team=request.team, after={"decided_by_request": request.pk})


def required_role(request: ApprovalRequest, choice: str) -> str:
    return RISKY_SKIP_ROLE if choice == Verdict.SKIP and request.risky else CHOICE_ROLES[choice]


@transaction.atomic
def decide_checkpoint(actor, request: ApprovalRequest, choice: str, *, reason_code: str, comment: str,
                      params_override: dict | None = None, skip_output: Any = None,
                      on_behalf_of=None) -> ApprovalRequest:
    """Retry (optionally with some parameters replaced), skip (optionally with the output the
    downstream steps will see), compensate and abort, or abort a paused run's failed step."""
    comment = (comment or "").strip()
    request = _lock(request.pk)
    _require_open(request, RequestKind.CHECKPOINT)
    if choice not in CHECKPOINT_CHOICES:
        raise InvalidDecision("Choose retry, skip, compensate or abort.")
    refused = refusal(actor, request, choice, on_behalf_of)
    if refused:
        raise PermissionDenied(refused)
    self_approval = required_role(request, choice) == RISKY_SKIP_ROLE and bool(caused_by(request, actor))
    require_reason(reason_code, comment)
    if choice == Verdict.SKIP and skip_output is not None:
        _check_output(request.step_run, skip_output)
    approve_again = False
    if choice == Verdict.RETRY and params_override:
        ran_with = _check_params(request.step_run, params_override)
        # Edited parameters of a risky step are a new request to run it: approved again, by others.
        approve_again = request.risky and params_override != {key: value for key, value in ran_with.items()
                                                               if key in params_override}
    shown = suggestions_at_decision(request.step_run_id, choice)  # auditable AI: what it said, if followed
    _record_decision(actor, request, choice, reason_code=reason_code, comment=comment,
                     params_override=params_override if choice == Verdict.RETRY else None,
                     skip_output=skip_output if choice == Verdict.SKIP else None, self_approval=self_approval,
                     on_behalf_of=on_behalf_of, suggestions_shown=shown.shown, followed_suggestion=shown.followed)
    _close(actor, request, RequestState.DECIDED, choice)
    checkpoint_decided.send(sender=ApprovalRequest, request=request, choice=choice, actor=actor,
                            reason=ReasonCode(reason_code).label, comment=comment)
    try:
        if choice == Verdict.RETRY:
            engine.retry_step(actor, request.step_run, params_override or None, checkpoint=request.pk,
                              approve_again=approve_again)
        elif choice == Verdict.SKIP:
            engine.skip_step(actor, request.step_run, skip_output, checkpoint=request.pk)
        elif choice == Verdict.COMPENSATE:
            engine.compensate_and_abort(actor, request.run, checkpoint=request.pk)
        else:
            engine.abort_run(actor, request.run, checkpoint=request.pk)
    except engine.EngineError as exc:
        raise DecisionConflict(str(exc)) from None
    _notify_decided(request, actor, comment)
    return request


def require_reason(reason_code: str, comment: str) -> None:
    if reason_code not in ReasonCode.values:
        raise InvalidDecision("Pick a reason from the list, so later operators learn from this decision.")
    if not comment:
        raise InvalidDecision("Add a comment saying what you checked or changed.")


def open_checkpoints(run: Run) -> list[ApprovalRequest]:
    """The checkpoints of `run` waiting for a decision, oldest first (what its pages link to)."""
    return list(_open_checkpoints(run).select_related("step_run"))


def kept_approvals(run: Run) -> list[ApprovalRequest]:
    """The gates of a rerun released on an approval kept from the run it reruns (see open_gate)."""
    if run.rerun_of_id is None:
        return []
    return list(ApprovalRequest.objects.filter(run=run, state=RequestState.KEPT)
                .select_related("step_run", "kept_from").order_by("pk"))


def _open_checkpoints(run: Run) -> QuerySet:
    return ApprovalRequest.objects.filter(run=run, kind=RequestKind.CHECKPOINT, state=RequestState.PENDING) \
        .order_by("pk")


def open_checkpoint_of(step_run: StepRun) -> ApprovalRequest:
    """The checkpoint waiting for a decision on `step_run`; DecisionConflict when there is none."""
    request = ApprovalRequest.objects.filter(step_run=step_run, kind=RequestKind.CHECKPOINT,
                                             state=RequestState.PENDING).order_by("pk").first()
    if request is None:
        raise DecisionConflict(f"Step {step_run.step_id} of run {step_run.run_id} has no checkpoint waiting for a "
                               f"decision: only a failed step of a paused run can be retried or skipped.")
    return request


def open_gate_of(step_run: StepRun) -> ApprovalRequest | None:
    """The gate `step_run` waits on, if it waits for approval (what its step page links to)."""
    return ApprovalRequest.objects.filter(step_run=step_run, kind=RequestKind.GATE, state=RequestState.PENDING) \
        .order_by("pk").first()


def end_run(actor, run: Run, choice: str, *, reason_code: str = "", comment: str = "") -> None:
    """Abort (choice abort) or compensate and abort (compensate) `run` from its page or the runs
    API. A paused run is ended by a decision on its checkpoint, with a reason code and a comment;
    a running or waiting one by the engine at once."""
    if choice not in (Verdict.ABORT, Verdict.COMPENSATE):
        raise InvalidDecision("A run is ended by abort or compensate.")
    checkpoint = _open_checkpoints(run).first()
    if checkpoint is not None:
        decide_checkpoint(actor, checkpoint, choice, reason_code=reason_code, comment=comment)
        return
    try:
        if choice == Verdict.COMPENSATE:
            engine.compensate_and_abort(actor, run)
        else:
            engine.abort_run(actor, run)
    except engine.EngineError as exc:
        raise DecisionConflict(str(exc)) from None


def decide_step(actor, step_run: StepRun, choice: str, *, reason_code: str, comment: str,
                params_override: dict | None = None, skip_output: Any = None) -> ApprovalRequest:
    """A decision taken from a run's or a step's page or the runs API: the same decision, with
    the same rules, on the step's checkpoint."""
    return decide_checkpoint(actor, open_checkpoint_of(step_run), choice, reason_code=reason_code, comment=comment,
                             params_override=params_override, skip_output=skip_output)


def _check_params(step_run: StepRun, params_override: dict) -> dict:
    """The parameters the step last ran with, once `params_override` on top of them fits its type."""
    if not isinstance(params_override, dict):
        raise InvalidDecision("Edited parameters must be a JSON object of parameter names and values.")
    step_type = get_step_type(step_run.step_type)
    if step_type is None:
        raise InvalidDecision(f"Step type {step_run.step_type} is not installed, so its parameters cannot be "
                              f"checked: skip or abort instead.")
    ran_with = last_params(step_run)
    errors = params_errors(step_type, {**ran_with, **params_override})
    if errors:
        raise InvalidDecision("The edited parameters do not fit the step type: " + "; ".join(errors),
                              errors_by_field(step_type.params_schema, {**ran_with, **params_override}))
    return ran_with


def _check_output(step_run: StepRun, skip_output: Any) -> None:
    """A skipped step's stand-in output must have the shape its type declares, if it declares one."""
    step_type = get_step_type(step_run.step_type)
    if step_type is None or step_type.output_schema is None:
        return
    errors = errors_by_field(step_type.output_schema, skip_output)
    if errors:
        raise InvalidDecision("The output does not fit what the step type returns: " + "; ".join(errors.values()),
                              errors)


def last_params(step_run: StepRun) -> dict:
    """The parameters the step's latest attempt ran with (rendered)."""
    params = step_run.attempts.filter(kind=AttemptKind.STEP).order_by("-number").values_list("params", flat=True)
    return dict(params.first() or {})


def parse_json_field(text: str, label: str) -> Any:
    """JSON typed into a form; None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDecision(f"{label} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                              f"write it like {{\"name\": \"value\"}}.") from None


@dataclass
class BulkResult:
    request_id: int
    ok: bool
    message: str


# What a bulk decision may do: approve gates, or retry, skip or abort failed steps (not compensate:
# what it undoes differs per run, so it is decided one by one).
BULK_VERDICTS = (Verdict.APPROVE, Verdict.RETRY, Verdict.SKIP, Verdict.ABORT)
# Bulk verdicts that cannot be taken back: asked to be confirmed first, the risky steps named.
CONFIRMED_VERDICTS = (Verdict.SKIP, Verdict.ABORT)


def bulk_decide(actor, request_ids, verdict: str, *, comment: str = "", reason_code: str = "",
                confirmed: bool = False) -> list[BulkResult]:
    """Apply one verdict (approve a gate; retry, skip or abort a checkpoint) to several requests,
    each checked, decided and audited on its own; one refusal does not stop the others. Approving
    high-risk steps in bulk needs `confirmed` and a comment, skipping or aborting needs
    `confirmed` (ConfirmationNeeded, before anything is decided). The inbox's bulk action and an
    incident group's decision both come here."""
    if verdict not in BULK_VERDICTS:
        raise InvalidDecision("Bulk actions approve gates, or retry, skip or abort checkpoints; decide others one "
                              "by one.")
    if verdict == Verdict.APPROVE:
        high_risk = high_risk_gates(actor, request_ids)
        if high_risk and not (confirmed and comment.strip()):
            raise ConfirmationNeeded(high_risk)
    else:
        require_reason(reason_code, comment.strip())
        if verdict in CONFIRMED_VERDICTS and not confirmed:
            raise ConfirmationNeeded(risky_checkpoints(actor, request_ids), verdict, len(request_ids))
    results = []
    for request_id in request_ids:
        try:
            request = get_request_for_user(actor, request_id)
            on_behalf_of = acting_for(actor, request, verdict)
            if verdict == Verdict.APPROVE:
                request = decide_gate(actor, request, verdict, comment, on_behalf_of=on_behalf_of)
            else:
                request = decide_checkpoint(actor, request, verdict, reason_code=reason_code, comment=comment,
                                            on_behalf_of=on_behalf_of)
            results.append(BulkResult(request.pk, True, f"#{request.pk}: {what_happened(request)}"))
        except (ApprovalError, PermissionDenied) as exc:
            results.append(BulkResult(int(request_id), False, f"#{request_id}: {exc}"))
        except Http404:
            results.append(BulkResult(int(request_id), False, f"#{request_id}: not found in your teams"))
    return results


def high_risk_gates(actor, request_ids) -> list[ApprovalRequest]:
    """The gates among `request_ids` (of the teams `actor` sees) whose step type is high-risk."""
    gates = requests_for(actor).filter(pk__in=[int(pk) for pk in request_ids], kind=RequestKind.GATE).order_by("pk")
    return [gate for gate in gates if (step_type := get_step_type(gate.step_run.step_type)) is not None
            and step_type.risk == Risk.HIGH]


def risky_checkpoints(actor, request_ids) -> list[ApprovalRequest]:
    """The checkpoints among `request_ids` (of the teams `actor` sees) of risky steps (an approval
    gate or a high-risk type): skipping them needs an approver."""
    return list(requests_for(actor).filter(pk__in=[int(pk) for pk in request_ids], kind=RequestKind.CHECKPOINT,
                                           risky=True).order_by("pk"))


def what_happened(request: ApprovalRequest) -> str:
    """What a decision on `request` did, in a few words ("approved: run 12 resumed")."""
    request.run.refresh_from_db(fields=["state"])
    state = request.run.state
    moving = state in (RunState.QUEUED, RunState.RUNNING, RunState.WAITING)
    run = f"run #{request.run_id} {'resumed' if moving else request.run.get_state_display().lower()}"
    step = request.step_run.step_id
    if request.is_open:
        given = request.decisions.filter(verdict=Verdict.APPROVE).count()
        return f"{given} of {request.quorum} approvals given: step {step} waits for the others"
    if request.state == RequestState.APPROVED:
        return f"approved: step {step} queued, {run}"
    if request.state == RequestState.REJECTED:
        return f"rejected: step {step} failed, {run}"
    if request.state == RequestState.DECIDED:
        return f"{request.get_outcome_display().lower()}: {run}"
    return f"{request.get_state_display().lower()}: {run}"


# --- Expiry --------------------------------------------------------------------------------------


@dataclass
class ExpiryReport:
    escalated: int = 0
    expired: int = 0
    warned: int = 0
    reminded: int = 0
    released: int = 0

    @property
    def changed(self) -> bool:
        return any(asdict(self).values())

    def as_dict(self) -> dict:
        return asdict(self)


def expire_due(now=None) -> ExpiryReport:
    """Escalate or reject overdue gates, remind deciders of gates about to expire, and release
    waived or auto-approved gates whose on-commit release was lost."""
    now = now or timezone.now()
    report = ExpiryReport()
    overdue = ApprovalRequest.objects.filter(state=RequestState.PENDING, expires_at__lte=now) \
        .values_list("pk", flat=True)
    for request_id in list(overdue):
        with transaction.atomic():
            request = _lock(request_id)
            if request.state != RequestState.PENDING or request.expires_at is None or request.expires_at > now:
                continue
            if request.on_expiry == OnExpiry.ESCALATE and request.escalate_to and request.escalated_at is None:
                _escalate(request, now)
                report.escalated += 1
            else:
                _close(None, request, RequestState.EXPIRED, Verdict.REJECT)
                _withdraw_siblings(request)
                engine.reject_gate(request.step_run, "nobody decided before the approval expired")
                _notify_decided(request, None, "Nobody decided before the approval expired.")
                report.expired += 1
    for request_id in list(ApprovalRequest.objects.filter(state=RequestState.PENDING, warn_at__lte=now,
                                                          warned_at__isnull=True).values_list("pk", flat=True)):
        with transaction.atomic():
            # Compare-and-swap: only the task run that sets warned_at sends the reminder.
            if ApprovalRequest.objects.filter(pk=request_id, warned_at__isnull=True).update(warned_at=now):
                request = ApprovalRequest.objects.select_related("run", "step_run", "group", "team").get(pk=request_id)
                _notify_request(request, "approval.expiring", f"Approval expiring: {_title(request)}",
                                f"Step {request.step_run.step_id} of run {request.run_id} still needs "
                                f"{request.quorum} approval(s){_expiry_phrase(request)}.")
                report.warned += 1
    # A late beat may find several of a request's reminders due: one message says it.
    for request_id in sorted({reminder.request_id for reminder in reminders.claim_due(now)}):
        request = ApprovalRequest.objects.select_related("run", "step_run", "group", "team").get(pk=request_id)
        left = _duration(request.expires_at - now)
        _notify_request(request, "approval.reminder", f"Reminder, {left} left: {_title(request)}",
                        f"Step {request.step_run.step_id} of run {request.run_id} still needs {request.quorum} "
                        f"approval(s){_expiry_phrase(request)}, in {left}.")
        report.reminded += 1
    lost_releases = ApprovalRequest.objects.filter(state__in=UNATTENDED_STATES,
                                                   decided_at__lte=now - WAIVED_RELEASE_GRACE,
                                                   step_run__state=StepState.WAITING_APPROVAL)
    for request_id in list(lost_releases.values_list("pk", flat=True)):
        _release_unattended(request_id)
        report.released += 1
    return report


def _escalate(request: ApprovalRequest, now) -> None:
    before = {"group": request.group.slug if request.group else None}
    request.group, request.escalated_at = request.escalate_to, now
    request.expires_at = now + timedelta(seconds=request.timeout_seconds)
    if request.warn_at is not None:
        request.warn_at = request.expires_at - timedelta(seconds=request.timeout_seconds * WARN_AT_SHARE_LEFT)
    request.warned_at = None
    reminders.reschedule(request)
    request.due_at = _earliest(request.expires_at, request.run.version.plan.deadline(request.run))
    request.save(update_fields=["group", "escalated_at", "expires_at", "warn_at", "warned_at", "due_at"])
    record(None, "approval.escalated", request, team=request.team, before=before,
           after={"group": request.group.slug, "expires_at": request.expires_at})
    _notify_request(request, "approval.escalated", f"Approval escalated to you: {_title(request)}",
                    f"Nobody decided in time, so step {request.step_run.step_id} of run {request.run_id} now waits "
                    f"for {request.group.slug}{_expiry_phrase(request)}.")


# --- Waivers, auto-approval rules and channels (platform admins) ----------------------------------------


@transaction.atomic
def grant_waiver(actor, *, team: Team, step_type: str, reason: str) -> RiskWaiver:
    require_platform_admin(actor)
    if not reason.strip():
        raise InvalidDecision("Say why this team may run the step type without approval.")
    waiver, _ = RiskWaiver.objects.update_or_create(team=team, step_type=step_type,
                                                    defaults={"reason": reason.strip(), "granted_by": actor})
    record(actor, "risk_waiver.granted", waiver, team=team, after={"step_type": step_type, "reason": reason})
    return waiver


@transaction.atomic
def revoke_waiver(actor, waiver_id: int) -> None:
    require_platform_admin(actor)
    waiver = RiskWaiver.objects.select_related("team").get(pk=waiver_id)
    record(actor, "risk_waiver.revoked", waiver, team=waiver.team, before={"step_type": waiver.step_type})
    waiver.delete()


@transaction.atomic
def forbid_auto_approval(actor, *, step_type: str, reason: str) -> AutoApprovalBan:
    """Steps of `step_type` are approved by a person from now on, whatever their `auto_approve` says."""
    require_platform_admin(actor)
    if not reason.strip():
        raise InvalidDecision("Say why a person must always decide steps of this type.")
    ban, _ = AutoApprovalBan.objects.update_or_create(step_type=step_type,
                                                      defaults={"reason": reason.strip(), "forbidden_by": actor})
    record(actor, "auto_approval.forbidden", ban, after={"step_type": step_type, "reason": reason.strip()})
    return ban


@transaction.atomic
def allow_auto_approval(actor, ban_id: int) -> None:
    require_platform_admin(actor)
    ban = AutoApprovalBan.objects.get(pk=ban_id)
    record(actor, "auto_approval.allowed", ban, before={"step_type": ban.step_type, "reason": ban.reason})
    ban.delete()


# --- Reading ---------------------------------------------------------------------------------------


def requests_for(user) -> QuerySet:
    """Every request of the teams `user` may see."""
    return scope_to_user(ApprovalRequest.objects.select_related(
        "run", "run__workflow", "run__version", "run__started_by", "step_run", "group", "team", "escalate_to"), user)


def waiting_checkpoints_for(user) -> QuerySet:
    """The checkpoints waiting for a decision in the teams `user` sees, newest first, with only
    what a list of failures shows (their run, workflow, step and team): incident groups read
    hundreds at once."""
    return scope_to_user(ApprovalRequest.objects.filter(kind=RequestKind.CHECKPOINT, state=RequestState.PENDING)
                         .select_related("run__workflow", "step_run", "team").only(
        "run_id", "step_run_id", "team_id", "risky", "error_signature", "created_at", "team__name",
        "run__state", "run__team_id", "run__version_id", "run__trigger", "run__trigger_detail", "run__workflow_id",
        "run__workflow__name", "step_run__run_id", "step_run__step_id", "step_run__position", "step_run__state",
        "step_run__finished_at", "step_run__error_type", "step_run__error_message"), user).order_by("-pk")


def get_request_for_user(user, pk) -> ApprovalRequest:
    """Request `pk` if `user` sees its team (else 404)."""
    return get_for_user(requests_for(user), user, pk)


def inbox_for(user) -> QuerySet:
    """The open requests `user` may decide, most urgent first (due date, then age): exactly those
    where `refusal` allows some verdict, in their own name or for the people whose delegation they
    hold now. The inbox page, its badge and the API all read this."""
    decidable = _decidable_by(user)
    held_delegations = delegation.held_by(user)
    for held in held_delegations:
        # The delegator's requests, minus what separation of duties keeps from the delegate: gates
        # they caused, and checkpoints they caused that the delegator may only skip as an approver.
        delegator_operates = team_ids_with_role(held.delegator, Role.OPERATOR)
        kept_from_delegate = _caused_by_q(user) & (
            Q(kind=RequestKind.GATE) & ~Q(group__allow_self_approval=True)
            | Q(kind=RequestKind.CHECKPOINT) & (Q(pk__isnull=True) if delegator_operates is None
                                                else ~Q(team__in=delegator_operates)))
        decidable |= (_decidable_by(held.delegator) & (Q(team_id=held.team_id) if held.team_id else Q())
                      & ~kept_from_delegate)
    undecidable = Q(expires_at__lte=timezone.now())  # expired, waiting for the expiry task
    mine = requests_for(user).filter(state=RequestState.PENDING).exclude(undecidable).filter(decidable)
    if held_delegations:
        # A request a delegate decided in their own name may still be the delegator's to decide;
        # without a delegation, _decidable_by already left out what the person decided.
        mine = mine.exclude(Exists(Decision.objects.filter(request=OuterRef("pk"), person=user)))
    return mine.order_by(F("due_at").asc(nulls_last=True), "created_at", "pk")


def _caused_by_q(person) -> Q:
    return Q(Exists(RequestCause.objects.filter(request=OuterRef("pk"), person=person)))


def _decidable_by(person) -> Q:
    """Requests `person` may decide in their own name and whose say they (or a delegate) did not give yet."""
    approver_teams = team_ids_with_role(person, Role.APPROVER)
    operator_teams = team_ids_with_role(person, Role.OPERATOR)
    in_group = ApproverGroup.members.through.objects.filter(approvergroup_id=OuterRef("group_id"), user_id=person.pk)
    counted = Decision.objects.filter(Q(person=person) | Q(on_behalf_of=person), request=OuterRef("pk"))
    gate_deciders = Exists(in_group) | Q(group__isnull=True) & _in_teams(approver_teams)
    # Operators take every checkpoint choice; an approver only skips a risky step they did not cause.
    # (An empty Q in an OR would drop the condition, so a platform admin's "every team" is spelt out.)
    checkpoint_deciders = Q(pk__isnull=False) if operator_teams is None else (
        Q(team__in=operator_teams) | Q(risky=True) & _in_teams(approver_teams) & ~_caused_by_q(person))
    return (Q(kind=RequestKind.GATE) & gate_deciders & (~_caused_by_q(person) | Q(group__allow_self_approval=True))
            | Q(kind=RequestKind.CHECKPOINT) & checkpoint_deciders) & ~Exists(counted)


def _in_teams(team_ids: set[int] | None) -> Q:
    return Q() if team_ids is None else Q(team__in=team_ids)


def inbox_count(user) -> int:
    return inbox_for(user).count() if user.is_authenticated else 0


# The navigation's badge shows the inbox count on every page, and counting is the inbox's full
# many-table query: it is cached per person for BADGE_SECONDS in Django's cache (per process
# unless CACHES says otherwise). A person's own decision forgets their count in the process that
# recorded it; requests opened or decided by others, and other processes' caches, catch up within
# BADGE_SECONDS. The inbox page itself counts exactly, and its count refreshes the badge.
BADGE_SECONDS = 5


def _badge_key(user) -> str:
    # With the moment the person joined: an id can come back after a rollback (SQLite, tests),
    # and a count must never be shown to another person.
    return f"approvals:inbox-badge:{user.pk}:{user.date_joined.timestamp()}"


def badge_count(user) -> int:
    """The inbox count for the navigation's badge, at most BADGE_SECONDS old."""
    key = _badge_key(user)
    count = cache.get(key)
    if count is None:
        count = inbox_count(user)
        cache.set(key, count, BADGE_SECONDS)
    return count


def remember_badge(user, count: int) -> None:
    """The inbox page's own count (unfiltered), for the badge: the page shows both."""
    cache.set(_badge_key(user), count, BADGE_SECONDS)


def forget_badge(user) -> None:
    cache.delete(_badge_key(user))


def history_for(user) -> QuerySet:
    """Closed requests of the teams `user` sees, latest first."""
    return requests_for(user).exclude(state=RequestState.PENDING).order_by("-decided_at", "-pk")


def deciders(request: ApprovalRequest) -> QuerySet:
    """Who may decide `request` (for notifications and reminders), with the delegates of those
    away, not counting those who caused it nor anyone whose say was given."""
    if request.kind == RequestKind.GATE and request.group is not None:
        people = request.group.members.all()
    else:
        role = Role.APPROVER if request.kind == RequestKind.GATE else Role.OPERATOR
        people = User.objects.filter(pk__in=Membership.objects.filter(team_id=request.team_id, role=role)
                                     .values("user_id"))
    given = request.decisions.all()

    def undecided(people: QuerySet) -> QuerySet:
        if request.kind == RequestKind.GATE and not _self_approval_allowed(request):
            people = people.exclude(pk__in=request.causes.values("person_id"))
        # (NOT IN over a column with NULLs matches nothing: only the decisions taken on behalf.)
        return people.exclude(pk__in=given.values("person_id")) \
            .exclude(pk__in=given.filter(on_behalf_of__isnull=False).values("on_behalf_of_id"))

    people = undecided(people)
    with_delegates = User.objects.filter(Q(pk__in=people.values("pk"))
                                         | Q(pk__in=delegation.delegates_of(people.values("pk"), request.team_id)))
    return undecided(with_delegates).filter(is_active=True)


# --- Notification texts ------------------------------------------------------------------------------


def _title(request: ApprovalRequest) -> str:
    return f"{request.run.workflow.name} / {request.step_run.step_id} (run {request.run_id})"


def _duration(left: timedelta) -> str:
    minutes = max(1, round(left.total_seconds() / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{round(minutes / 60)} hours"


def _expiry_phrase(request: ApprovalRequest) -> str:
    if request.expires_at is None:
        return ""
    return f" before {request.expires_at:%Y-%m-%d %H:%M} UTC"


def _context(request: ApprovalRequest) -> dict:
    return {"team_id": request.team_id, "team": request.team.slug, "request_id": request.pk,
            "run_id": request.run_id, "step": request.step_run.step_id, "kind": request.kind,
            "url": _request_url(request)}


def _request_url(request: ApprovalRequest) -> str:
    try:
        return absolute_url(reverse("approvals:detail", args=[request.pk]))
    except NoReverseMatch:  # the pages are not mounted (a worker-only deployment)
        return ""


def _notify_request(request: ApprovalRequest, event_kind: str, subject: str, body: str) -> None:
    """Tell the deciders; each mail carries that person's own decision link, a chat its channel's."""
    context = {**_context(request), "decide_url": links.url_for(request)}
    notify(event_kind, subject, body, list(deciders(request)), context,
           personal_url=lambda person: links.url_for(request, person))


def _notify_decided(request: ApprovalRequest, actor, comment: str) -> None:
    """Tell whoever started the run (and the other deciders) how the request ended."""
    by = actor.display_name if actor is not None else "Flowdeck"
    people = [request.run.started_by] if request.run.started_by_id and request.run.started_by != actor else []
    notify("approval.decided", f"{request.get_state_display()}: {_title(request)}",
           f"{by} decided: {request.get_outcome_display().lower() or request.get_state_display().lower()}."
           + (f"\nComment: {comment}" if comment else ""), people, _context(request))


def _describe(request: ApprovalRequest) -> dict:
    return {"kind": request.kind, "run": request.run_id, "step": request.step_run.step_id,
            "group": request.group.slug if request.group else None, "quorum": request.quorum, "stage": request.stage,
            "expires_at": request.expires_at, "on_expiry": request.on_expiry, "state": request.state}
