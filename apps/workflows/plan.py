"""The typed view of a version's normalized spec: its inputs, SLA, triggers, concurrency and
steps (with their dependents and template references). `WorkflowVersion.plan` is the only reader
of a version's spec outside the spec package.

Versions are immutable, so a Plan is built once per version per process and cached; the engine
asks for it on every step end without touching the spec JSON again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.apps import apps

from apps.workflows.spec.normalize import DEFAULT_RETRIES
from apps.workflows.spec.templating import template_references, template_sources


class OnFailure:
    FAIL = "fail"
    CONTINUE = "continue"
    PAUSE = "pause"


class RetryWhen:
    ALWAYS = "always"  # any failure that is not permanent
    TRANSIENT = "transient"  # only what apps.knowledge.transience classes as passing trouble


class OnReject:
    FAIL = "fail"  # the step fails, and its `on_failure` applies
    SKIP = "skip"  # the step is skipped, and so is what needs it
    CONTINUE = "continue"  # the step is skipped; what needs it runs and reads `decision == "rejected"`


APPROVED, REJECTED = "approved", "rejected"


@dataclass(frozen=True)
class Approvers:
    group: str | None  # None: any approver of the team
    quorum: int


@dataclass(frozen=True)
class GateStage:
    """One sign-off of a chain: every group of it (`all`) or any one of them (`any`) approves."""

    mode: str  # "all" or "any"
    approvers: tuple[Approvers, ...]

    @property
    def label(self) -> str:
        names = [approvers.group or "the team's approvers" for approvers in self.approvers]
        return (" or " if self.mode == "any" else " and ").join(names)


@dataclass(frozen=True)
class Gate:
    """What a person decides on a step before it runs: the sign-off stages in order, the form
    they fill in, the named options they choose from, what a rejection does, and when nobody
    needs to decide at all."""

    stages: tuple[GateStage, ...]
    timeout: int | None = None
    escalate_to: str | None = None
    on_expiry: str = "reject"
    form: dict | None = None  # a small JSON Schema of an object
    on_reject: str = OnReject.FAIL
    options: tuple[str, ...] = ()
    auto_approve: str | None = None
    reapprove: str = "on_change"  # in a rerun: keep an approval of unchanged parameters, or ask again always
    remind: tuple[int, ...] = ()  # seconds before expiry to remind the deciders, latest first

    @property
    def outcomes(self) -> tuple[str, ...]:
        """What downstream steps may read in `steps.<id>.decision`."""
        return (*(self.options or (APPROVED,)), REJECTED)

    @property
    def form_defaults(self) -> dict:
        return {name: field["default"] for name, field in ((self.form or {}).get("properties") or {}).items()
                if "default" in field}


def gate_of(approval: dict | None) -> Gate:
    """The gate of a normalized `approval` block (None: a high-risk step without one, decided by
    the team's approvers). Versions saved before stages existed name one `group` and `quorum`."""
    approval = approval or {}
    stages = approval.get("stages") or [{"mode": "all", "groups": [
        {"group": approval.get("group"), "quorum": approval.get("quorum") or 1}]}]
    return Gate(
        stages=tuple(GateStage(stage["mode"], tuple(Approvers(g["group"], g["quorum"]) for g in stage["groups"]))
                     for stage in stages),
        timeout=approval.get("timeout"), escalate_to=approval.get("escalate_to"),
        on_expiry=approval.get("on_expiry") or "reject", form=approval.get("form"),
        on_reject=approval.get("on_reject") or OnReject.FAIL, options=tuple(approval.get("options") or ()),
        auto_approve=approval.get("auto_approve"), reapprove=approval.get("reapprove") or "on_change",
        remind=tuple(approval.get("remind") or ()),
    )


@dataclass(frozen=True)
class StepPlan:
    id: str
    position: int
    type: str
    params: Any
    needs: tuple[str, ...]
    dependents: tuple[str, ...]
    when: str | None
    retries: dict
    timeout: int | None
    on_failure: str
    queue: str | None
    approval: dict | None
    # Its typed `approval` (None without one; a high-risk type is gated all the same).
    gate: Gate | None
    compensate: dict | None
    # Step ids its templates and condition read; None when a template reads `steps` as a whole.
    reads_steps: frozenset[str] | None
    # The positions of its needs as (first, last) runs, so a fan-in over hundreds of steps is
    # queried by a range or two instead of hundreds of ids.
    needs_at: tuple[tuple[int, int], ...]
    # The step as written (normalized): what "the step changed between versions" compares.
    definition: dict = field(compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    version_id: int
    name: str
    inputs: dict
    concurrency: int | None
    steps: dict[str, StepPlan]  # in spec order
    sla: dict | None = None
    # (kind, body) of each trigger, in spec order.
    triggers: tuple[tuple[str, dict], ...] = ()
    # The only step no other step needs, when there is one: every step leads to it, so once it
    # has succeeded every step has settled (the engine ends the run without counting them).
    last_step: str | None = None

    @property
    def roots(self) -> list[str]:
        return [step.id for step in self.steps.values() if not step.needs]

    def deadline(self, run) -> datetime | None:
        """When `run` must be done by its SLA: the earliest of its start + `max_duration` and the
        first `finish_by` after it was created (in the SLA's time zone); None without an SLA."""
        sla = self.sla or {}
        candidates = []
        if sla.get("max_duration"):
            candidates.append((run.started_at or run.created_at) + timedelta(seconds=sla["max_duration"]))
        if sla.get("finish_by"):
            zone = ZoneInfo(sla.get("timezone") or "UTC")
            created = run.created_at.astimezone(zone)
            hour, minute = map(int, sla["finish_by"].split(":"))
            due = datetime.combine(created.date(), time(hour, minute), zone)
            candidates.append(due if due >= created else datetime.combine(created.date() + timedelta(days=1),
                                                                          time(hour, minute), zone))
        return min(candidates) if candidates else None


def build_plan(version_id: int, spec: dict) -> Plan:
    dependents: dict[str, list[str]] = {step["id"]: [] for step in spec["steps"]}
    for step in spec["steps"]:
        for need in step.get("needs") or []:
            dependents[need].append(step["id"])
    positions = {step["id"]: position for position, step in enumerate(spec["steps"])}
    steps = {}
    for position, step in enumerate(spec["steps"]):
        steps[step["id"]] = StepPlan(
            id=step["id"],
            position=position,
            type=step["type"],
            params=step.get("with") or {},
            needs=tuple(step.get("needs") or ()),
            dependents=tuple(dependents[step["id"]]),
            when=step.get("when"),
            retries={**DEFAULT_RETRIES, "when": RetryWhen.ALWAYS, **(step.get("retries") or {})},
            timeout=step.get("timeout"),
            on_failure=step.get("on_failure") or OnFailure.FAIL,
            queue=step.get("queue"),
            approval=step.get("approval"),
            gate=gate_of(step["approval"]) if step.get("approval") else None,
            compensate=step.get("compensate"),
            reads_steps=_steps_read(step),
            needs_at=_runs(sorted(positions[need] for need in step.get("needs") or ())),
            definition=step,
        )
    sinks = [step_id for step_id, step in steps.items() if not step.dependents]
    return Plan(version_id=version_id, name=spec.get("name", ""), inputs=spec.get("inputs") or {},
                concurrency=spec.get("concurrency"), steps=steps, sla=spec.get("sla"),
                triggers=tuple(next(iter(trigger.items())) for trigger in spec.get("triggers") or ()),
                last_step=sinks[0] if len(sinks) == 1 else None)


def _runs(numbers: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted numbers as (first, last) runs of consecutive ones: [1, 2, 3, 7] -> ((1, 3), (7, 7))."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return tuple((first, last) for first, last in runs)


def _steps_read(step: dict) -> frozenset[str] | None:
    sources = [(source, False) for _, source in template_sources(step.get("with") or {})]
    if step.get("compensate"):
        sources += [(source, False) for _, source in template_sources(step["compensate"].get("with") or {})]
    for expression in (step.get("when"), (step.get("approval") or {}).get("auto_approve")):
        if expression:
            sources.append((expression, True))
    names: set[str] = set()
    for source, expression in sources:
        for reference in template_references(source, expression=expression):
            if reference.root != "steps":
                continue
            if reference.name is None:
                return None
            names.add(reference.name)
    return frozenset(names)


# Versions never change: a process builds each one's plan once. Bounded, oldest first out.
_plans: dict[int, Plan] = {}
_PLANS_KEPT = 512


def plan_for(version_id: int, spec: dict | None = None) -> Plan:
    """The plan of version `version_id`, from `spec` when the caller holds it (else one query)."""
    plan = _plans.get(version_id)
    if plan is None:
        if spec is None:
            # Through the app registry: models imports this module for WorkflowVersion.plan.
            spec = apps.get_model("workflows", "WorkflowVersion").objects.values_list("spec", flat=True) \
                .get(pk=version_id)
        plan = _plans[version_id] = build_plan(version_id, spec)
        if len(_plans) > _PLANS_KEPT:
            _plans.pop(next(iter(_plans)))
    return plan


def load_plans(version_ids) -> None:
    """Build the plans of those of `version_ids` this process has not built yet, in one query (a
    page about many runs would otherwise read one spec at a time)."""
    missing = set(version_ids) - set(_plans) - {None}
    if missing:
        for version_id, spec in apps.get_model("workflows", "WorkflowVersion").objects \
                .filter(pk__in=missing).values_list("pk", "spec")[:_PLANS_KEPT]:
            plan_for(version_id, spec)


def step_definitions(versions, step_id: str):
    """(number, author id, the step's definition or None) of each version in the queryset
    `versions`, in its order: one query, and no plan built for versions only compared."""
    for number, spec, author_id in versions.values_list("number", "spec", "created_by_id"):
        yield number, author_id, next((step for step in spec["steps"] if step["id"] == step_id), None)


def forget_plans() -> None:
    """Drop cached plans (tests reuse version ids after a rollback)."""
    _plans.clear()
