"""The first failure, not the cascade: open failures grouped by the failure that caused them.

A failure here is a checkpoint waiting for a decision (a failed step of a paused run: the thing
an operator retries, skips or aborts). Its *root failure* is found by walking its causes upward:

- in its own run, a failed step among the steps it needs, directly or through others (that step
  failed with `on_failure: continue` and let it run on missing or partial data); the earliest;
- across runs, the upstream run that started its run (an `after:` trigger) when that run did
  not succeed and has a failed step; then that run's own causes, at most MAX_DEPTH runs up.

A failure without a failed cause is its own root. Failures whose roots have the same workflow,
step and error signature form one group (the rule an open incident gathers its occurrences by),
named by a digest of the three: five runs failing with one signature are one group, and so are
the downstream runs that failed after them. A group is decided once through the approvals
app's bulk decision, which checks, decides and audits each member on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

from apps.accounts.access import visible_team_ids
from apps.approvals.models import ApprovalRequest, RequestState, Verdict
from apps.approvals.services import BulkResult, bulk_decide, requests_for, waiting_checkpoints_for
from apps.incidents.access import visible_incidents
from apps.runs.models import AttemptKind, Run, RunState, StepAttempt, StepRun, StepState, Trigger
from apps.runs.signatures import error_signature
from apps.workflows.plan import load_plans, plan_for

# Open failures read per person: far more than any real cascade; bounds the pages that show groups.
MAX_FAILURES = 500
# Upstream runs followed from a failure (a chain of `after:` triggers).
MAX_DEPTH = 5
GROUP_VERDICTS = (Verdict.RETRY, Verdict.SKIP, Verdict.ABORT)
# How long home's largest groups are kept while the same checkpoints wait (largest_failure_groups):
# what moves a failure between groups without a checkpoint decided or added is rare (another
# team's upstream run retried), and each server process groups anew for every person.
LARGEST_GROUPS_SECONDS = 120


@dataclass(frozen=True)
class RootFailure:
    """A failed step where a cascade starts."""

    run_id: int
    team_id: int
    workflow_id: int
    workflow: str
    step_id: str
    step_run_id: int
    signature: str
    failed_at: datetime | None

    @cached_property  # grouping hundreds of failures asks each root its key several times
    def key(self) -> str:
        return group_key(self.workflow_id, self.step_id, self.signature)


@dataclass
class Member:
    """A checkpoint of the group, and how its failure follows from the root ("" when it is one)."""

    checkpoint: ApprovalRequest
    root: RootFailure
    cause: str

    @property
    def failed_at(self) -> datetime | None:
        return self.checkpoint.step_run.finished_at or self.checkpoint.created_at


@dataclass
class FailureGroup:
    key: str
    root: RootFailure  # the earliest of its members' roots
    root_visible: bool  # False when the root is another team's run the person does not see
    members: list[Member] = field(default_factory=list)
    incident_id: int | None = None  # the root failure's incident, when the person sees it
    incident_ids: set[int] = field(default_factory=set)  # every incident its failures opened or joined

    @property
    def runs(self) -> int:
        return len({member.checkpoint.run_id for member in self.members})

    @property
    def first_at(self) -> datetime | None:
        moments = [moment for moment in [self.root.failed_at, *(m.failed_at for m in self.members)] if moment]
        return min(moments) if moments else None

    @property
    def first_label(self) -> str:
        """When it started, as the list says it: "09:14" today, "Dec 3 09:14" before."""
        if self.first_at is None:
            return ""
        first, today = timezone.localtime(self.first_at), timezone.localdate()
        return f"{first:%H:%M}" if first.date() == today else f"{first:%b} {first.day} {first:%H:%M}"

    @property
    def risky(self) -> list[ApprovalRequest]:
        return [member.checkpoint for member in self.members if member.checkpoint.risky]

    @property
    def checkpoint_ids(self) -> list[int]:
        return [member.checkpoint.pk for member in self.members]

    @property
    def downstream(self) -> int:
        """Members whose failure follows from another failure (the cascade, not the first failure)."""
        return sum(1 for member in self.members if member.cause)


def group_key(workflow_id: int, step_id: str, signature: str) -> str:
    return hashlib.sha256(f"{workflow_id}\x00{step_id}\x00{signature}".encode()).hexdigest()[:16]


def failure_groups(user) -> list[FailureGroup]:
    """The open failures `user` sees, one group per root failure, the largest first."""
    checkpoints = list(waiting_checkpoints_for(user)[:MAX_FAILURES])
    return _grouped(user, checkpoints)


def largest_failure_groups(user, top: int) -> list[FailureGroup]:
    """The `top` largest of `failure_groups(user)`, kept per person while the same checkpoints wait.

    Home shows them on every visit, and grouping costs ~55 ms for a platform admin (10,000 open
    checkpoints at 10M step runs). The key holds the waiting checkpoints' count and newest id: ids
    only grow and a decided request never waits again, so a failure decided or added shows at
    once; what else moves a failure between groups (its upstream run retried) shows within
    LARGEST_GROUPS_SECONDS."""
    waiting = waiting_checkpoints_for(user).order_by().aggregate(count=Count("pk"), newest=Max("pk"))
    key = (f"incidents:largest-groups:{user.pk}:{user.date_joined.timestamp()}:{top}:{waiting['count']}:"
           f"{waiting['newest']}")
    groups = cache.get(key)
    if groups is None:
        groups = failure_groups(user)[:top]
        cache.set(key, groups, LARGEST_GROUPS_SECONDS)
    return groups


def failure_group(user, key: str) -> FailureGroup | None:
    return next((group for group in failure_groups(user) if group.key == key), None)


def decide_group(actor, key: str, verdict: str, *, reason_code: str, comment: str, confirmed: bool = False,
                 ids=None) -> list[BulkResult]:
    """Retry, skip or abort the group's failures at once, through the approvals app's bulk
    decision: each member checked (role, separation of duties, state), decided and audited on its
    own. `ids` are the members the person saw and confirmed; one decided meanwhile is refused
    as decided, one that left the group (its cause changed) is refused as such."""
    from apps.approvals.services import InvalidDecision

    if verdict not in GROUP_VERDICTS:
        raise InvalidDecision("A group is retried, skipped or aborted; compensate its runs one by one.")
    group = failure_group(actor, key)
    members = set(group.checkpoint_ids) if group else set()
    chosen = list(dict.fromkeys(int(pk) for pk in ids)) if ids else sorted(members)
    waiting = set(requests_for(actor).filter(pk__in=chosen, state=RequestState.PENDING).values_list("pk", flat=True))
    strays = {pk for pk in chosen if pk in waiting and pk not in members}
    decided = bulk_decide(actor, [pk for pk in chosen if pk not in strays], verdict, comment=comment,
                          reason_code=reason_code, confirmed=confirmed)
    results = {result.request_id: result for result in decided}
    for pk in strays:
        results[pk] = BulkResult(pk, False, f"#{pk}: no longer in this group (its failure's cause changed); decide it "
                                            f"on its own page")
    return [results[pk] for pk in chosen]


# --- Finding roots ------------------------------------------------------------------------------


class _Runs:
    """Runs and their failed steps, loaded a level at a time (each level: two queries)."""

    def __init__(self):
        self.runs: dict[int, Run] = {}
        self.failed: dict[int, dict[str, StepRun]] = {}

    def load(self, run_ids) -> None:
        wanted = set(run_ids) - set(self.runs)
        if not wanted:
            return
        for run in Run.objects.filter(pk__in=wanted).select_related("workflow").only(
                "state", "team_id", "version_id", "trigger", "trigger_detail", "workflow__name"):
            self.runs[run.pk] = run
            self.failed[run.pk] = {}
        self.load_failed(wanted)

    def load_failed(self, run_ids, known: list[StepRun] = ()) -> None:
        """The failed steps of `run_ids`; those in `known` (the checkpoints' own, already loaded)
        are not read again: most paused runs have no other failed step, and the rest come back."""
        rows = StepRun.objects.filter(run_id__in=run_ids, state=StepState.FAILED).exclude(
            pk__in=[row.pk for row in known]).only(
            "run_id", "step_id", "position", "error_type", "error_message", "finished_at")
        for row in [*known, *rows]:
            if row.state == StepState.FAILED:
                self.failed.setdefault(row.run_id, {})[row.step_id] = row


def _first_failed_upstream(run: Run, step_id: str, failed: dict[str, StepRun]) -> StepRun | None:
    """The earliest failed step among those `step_id` needs in its run, directly or not."""
    steps = plan_for(run.version_id).steps
    seen, queue, found = set(), list(steps[step_id].needs) if step_id in steps else [], []
    while queue:
        need = queue.pop()
        if need in seen or need not in steps:
            continue
        seen.add(need)
        if need in failed:
            found.append(failed[need])
        queue.extend(steps[need].needs)
    return min(found, key=_failure_order) if found else None


def _failure_order(row: StepRun):
    return (row.finished_at or timezone.now(), row.position)


def _upstream_run_id(run: Run) -> int | None:
    if run.trigger != Trigger.UPSTREAM:
        return None
    upstream = (run.trigger_detail or {}).get("upstream_run")
    return upstream if isinstance(upstream, int) else None


def _roots(checkpoints: list[ApprovalRequest]) -> list[tuple[Run, StepRun, str]]:
    """(run, failed step, cause) of each checkpoint's root failure, in order."""
    known = _Runs()
    for checkpoint in checkpoints:
        known.runs.setdefault(checkpoint.run_id, checkpoint.run)
    known.load_failed({checkpoint.run_id for checkpoint in checkpoints},
                      known=[checkpoint.step_run for checkpoint in checkpoints])
    load_plans({checkpoint.run.version_id for checkpoint in checkpoints})
    found = []
    for checkpoint in checkpoints:
        run, row = checkpoint.run, checkpoint.step_run
        before = _first_failed_upstream(run, row.step_id, known.failed.get(run.pk, {}))
        cause = f"step {before.step_id} failed before it" if before else ""
        row = before or row
        found.append([run, row, cause])
    # Up the `after:` chains, one level of upstream runs at a time for every failure together.
    for _ in range(MAX_DEPTH):
        upstream_ids = {_upstream_run_id(run) for run, _, _ in found} - {None}
        known.load(upstream_ids)
        moved = False
        for entry in found:
            upstream = known.runs.get(_upstream_run_id(entry[0]) or 0)
            failed = known.failed.get(upstream.pk, {}) if upstream else {}
            if upstream is None or upstream.state == RunState.SUCCEEDED or not failed:
                continue
            first = min(failed.values(), key=_failure_order)
            entry[:] = [upstream, first, f"upstream run #{upstream.pk} ({upstream.workflow.name}) failed at "
                                         f"{first.step_id}"]
            moved = True
        if not moved:
            break
    return [tuple(entry) for entry in found]


def _signatures(checkpoints: list[ApprovalRequest], rows: list[StepRun]) -> dict[int, str]:
    """Each failed step's error signature: its checkpoint's, else its last attempt's."""
    signatures = {checkpoint.step_run_id: checkpoint.error_signature for checkpoint in checkpoints
                  if checkpoint.error_signature}
    missing = {row.pk for row in rows} - set(signatures)
    attempts = StepAttempt.objects.filter(step_run_id__in=missing, kind=AttemptKind.STEP).exclude(error_signature="") \
        .order_by("step_run_id", "number").values_list("step_run_id", "error_signature")
    signatures.update(dict(attempts))  # the last attempt of each step wins
    for row in rows:
        signatures.setdefault(row.pk, error_signature(row.error_type, row.error_message))
    return signatures


def _grouped(user, checkpoints: list[ApprovalRequest]) -> list[FailureGroup]:
    roots = _roots(checkpoints)
    signatures = _signatures(checkpoints, [row for _, row, _ in roots])
    visible = visible_team_ids(user)
    groups: dict[str, FailureGroup] = {}
    for checkpoint, (run, row, cause) in zip(checkpoints, roots):
        root = RootFailure(run_id=run.pk, team_id=run.team_id, workflow_id=run.workflow_id, workflow=run.workflow.name,
                           step_id=row.step_id, step_run_id=row.pk, signature=signatures[row.pk],
                           failed_at=row.finished_at)
        group = groups.get(root.key)
        if group is None:
            group = groups[root.key] = FailureGroup(root.key, root, visible is None or root.team_id in visible)
        elif (root.failed_at or timezone.now()) < (group.root.failed_at or timezone.now()):
            group.root = root
        group.members.append(Member(checkpoint, root, cause))
    _attach_incidents(user, groups.values())
    for group in groups.values():
        group.members.sort(key=lambda member: (member.failed_at or timezone.now(), member.checkpoint.pk))
    return sorted(groups.values(), key=lambda group: (-group.runs, group.first_at or timezone.now()))


def _attach_incidents(user, groups) -> None:
    """The incidents the groups' failures opened or joined, and each root failure's, when `user` sees them."""
    groups = list(groups)
    by_step_run = {}
    for group in groups:
        for member in group.members:
            by_step_run[member.root.step_run_id] = by_step_run[member.checkpoint.step_run_id] = group
    if not by_step_run:
        return
    roots = {member.root.step_run_id for group in groups for member in group.members}
    found = visible_incidents(user).filter(occurrence_log__step_run_id__in=list(by_step_run)) \
        .order_by("pk").values_list("occurrence_log__step_run_id", "pk")
    for step_run_id, incident_id in found:
        group = by_step_run[step_run_id]
        group.incident_ids.add(incident_id)
        if step_run_id in roots and (group.incident_id is None or step_run_id == group.root.step_run_id):
            group.incident_id = incident_id
