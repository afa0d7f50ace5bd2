"""Domain functions of the monitoring app: the only code that writes SLA statuses, monitor
settings and alerts.

- `evaluate_sla(run)` predicts when a run will finish from the median durations of its
  remaining steps in past runs and how long their approvals usually wait, and marks it at risk
  before its deadline passes; a breach opens an incident. `evaluate_open_slas()` runs it for
  every unfinished run with an SLA (periodic task).
- `check_anomalies(run)` compares a finished run's duration and record count with the
  workflow's recent history (median and MAD) and alerts when it is unusual.
- `raise_alert` / `close_alert`: alerts are deduplicated by key while open and sent through
  `apps.notifications` to the people who can act; a person acknowledges (`acknowledge_alert`)
  or resolves (`resolve_alert`) one by hand.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import ApproverGroup, Membership, Role
from apps.audit.log import record
from apps.audit.models import AuditEvent
from apps.logging import get_logger
from apps.monitoring.models import (
    Alert,
    AlertKind,
    AlertState,
    MonitorSettings,
    SlaState,
    SlaStatus,
)
from apps.runs.models import (
    ACTIVE_RUN_STATES,
    AttemptKind,
    AttemptState,
    Run,
    RunState,
    StepAttempt,
    StepRun,
    StepState,
)
from apps.workflows.plan import plan_for

logger = get_logger("flowdeck.monitoring")
# How many past successful attempts (per step) and approvals inform a prediction.
HISTORY_DEPTH = 50
UNFINISHED_RUN_STATES = (RunState.QUEUED, *ACTIVE_RUN_STATES)
SETTLED_STEP_STATES = (StepState.SUCCEEDED, StepState.SKIPPED, StepState.CANCELLED, StepState.COMPENSATED)
# Gate waits: from the engine's audit trail, so predictions need nothing from the approvals app.
GATE_OPENED, GATE_CLOSED = "step.waiting_approval", ("step.released", "step.failed")
APPROVAL_EXPIRY_WARNING = timedelta(hours=1)


# --- Alerts -------------------------------------------------------------------------------------


def raise_alert(*, team, kind: str, dedup_key: str, title: str, workflow=None, run=None, detail: dict | None = None,
                recipients=()) -> tuple[Alert, bool]:
    """Open an alert, or count a repeat of the one open with the same key (no second message)."""
    now = timezone.now()
    with transaction.atomic():
        existing = Alert.objects.select_for_update().filter(dedup_key=dedup_key, state=AlertState.OPEN).first()
        if existing is not None:
            existing.occurrences += 1
            existing.last_seen_at = now
            existing.detail = detail or existing.detail
            existing.save(update_fields=["occurrences", "last_seen_at", "detail"])
            return existing, False
        try:
            with transaction.atomic():
                alert = Alert.objects.create(team=team, kind=kind, dedup_key=dedup_key, title=title[:300],
                                             workflow=workflow, run=run, detail=detail or {})
        except IntegrityError:  # opened at the same moment elsewhere: that one counts
            return Alert.objects.get(dedup_key=dedup_key, state=AlertState.OPEN), False
        record(None, "alert.opened", alert, after={"kind": kind, "title": alert.title, "key": dedup_key})
    _notify(alert, recipients)
    return alert, True


class AlertError(Exception):
    """A change the alert's state does not allow; pages and the API answer 409 with the message."""


def close_alert(dedup_key: str, actor=None, reason: str = "") -> Alert | None:
    """Close the open alert with this key, if any (the condition it reported has gone)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(dedup_key=dedup_key, state=AlertState.OPEN).first()
        return _close(alert, actor, reason) if alert is not None else None


def resolve_alert(actor, alert_pk: int, reason: str = "") -> Alert:
    """A person closes an alert; if the problem happens again, a new alert opens."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_pk)
        if alert.state != AlertState.OPEN:
            raise AlertError(f"This alert was already closed at {alert.closed_at:%Y-%m-%d %H:%M %Z}.")
        return _close(alert, actor, reason or "resolved by hand")


def acknowledge_alert(actor, alert_pk: int) -> Alert:
    """A person says they are on it: the alert stays open, showing who and since when."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_pk)
        if alert.state != AlertState.OPEN:
            raise AlertError("This alert is closed: there is nothing left to acknowledge.")
        if alert.acknowledged_at is not None:
            raise AlertError(f"{alert.acknowledged_by or 'Someone'} already acknowledged this alert at "
                             f"{alert.acknowledged_at:%Y-%m-%d %H:%M %Z}.")
        alert.acknowledged_at, alert.acknowledged_by = timezone.now(), actor
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
        record(actor, "alert.acknowledged", alert)
        return alert


def _close(alert: Alert, actor, reason: str) -> Alert:
    alert.state, alert.closed_at = AlertState.CLOSED, timezone.now()
    alert.save(update_fields=["state", "closed_at"])
    record(actor, "alert.closed", alert, after={"reason": reason})
    return alert


def _team_operators(team):
    return [m.user for m in Membership.objects.select_related("user").filter(team=team, role=Role.OPERATOR)]


def _notify(alert: Alert, recipients) -> None:
    from apps.notifications.services import absolute_url, notify

    people = {*recipients, *_team_operators(alert.team)}
    url = absolute_url(f"/monitoring/alerts/{alert.pk}/")
    body = "\n".join([alert.title, *(f"{key}: {value}" for key, value in alert.detail.items())])
    notify(f"alert.{alert.kind}", f"[Flowdeck] {alert.get_kind_display()}: {alert.title}", body, people,
           {"team_id": alert.team_id, "alert_id": alert.pk, "run_id": alert.run_id, "url": url})
    logger.warning("alert raised", kind=alert.kind, key=alert.dedup_key, recipients=len(people))


# --- SLA ------------------------------------------------------------------------------------------


@dataclass
class History:
    """Medians from a workflow's past runs, per step id, in seconds."""

    duration: dict[str, float]
    approval_wait: dict[str, float]


def step_history(workflow_id: int, exclude_run_id: int | None = None) -> History:
    attempts = (StepAttempt.objects.filter(step_run__run__workflow_id=workflow_id, kind=AttemptKind.STEP,
                                           state=AttemptState.SUCCEEDED, duration_ms__isnull=False)
                .exclude(step_run__run_id=exclude_run_id).order_by("-ended_at")
                .values_list("step_run__step_id", "duration_ms")[: HISTORY_DEPTH * 20])
    durations = defaultdict(list)
    for step_id, duration_ms in attempts:
        if len(durations[step_id]) < HISTORY_DEPTH:
            durations[step_id].append(duration_ms / 1000)
    step_runs = dict(StepRun.objects.filter(run__workflow_id=workflow_id).exclude(run_id=exclude_run_id)
                     .order_by("-pk").values_list("pk", "step_id")[: HISTORY_DEPTH * 20])
    waits = defaultdict(list)
    for step_run_id, spans in _gate_spans(step_runs, closed_only=True).items():
        waits[step_runs[step_run_id]] += [(end - start).total_seconds() for start, end in spans]
    return History({k: statistics.median(v) for k, v in durations.items()},
                   {k: statistics.median(v) for k, v in waits.items() if v})


def _gate_spans(step_run_ids, *, closed_only: bool, now: datetime | None = None) -> dict[int, list]:
    """(opened, closed) times of every approval wait of these step runs, from the audit trail."""
    events = (AuditEvent.objects.filter(object_type="runs.steprun", object_id__in=[str(pk) for pk in step_run_ids],
                                        action__in=[GATE_OPENED, *GATE_CLOSED])
              .order_by("sequence").values_list("object_id", "action", "occurred_at"))
    opened, spans = {}, defaultdict(list)
    for object_id, action, at in events:
        if action == GATE_OPENED:
            opened[int(object_id)] = at
        elif int(object_id) in opened:
            spans[int(object_id)].append((opened.pop(int(object_id)), at))
    if not closed_only:
        for step_run_id, start in opened.items():
            spans[step_run_id].append((start, now or timezone.now()))
    return spans


@dataclass
class Prediction:
    remaining_seconds: float
    remaining_wait_seconds: float
    waited_seconds: float


def predict(run: Run, plan_steps: dict, history: History, now: datetime) -> Prediction:
    """Time left along the longest chain of unfinished steps, each taking its median duration
    (less what it already ran) plus, for a gated step, its median approval wait."""
    rows = {row.step_id: row for row in run.step_runs.all()}
    spans = _gate_spans([row.pk for row in rows.values()], closed_only=False, now=now)
    running_since = dict(StepAttempt.objects.filter(step_run__run=run, state=AttemptState.RUNNING)
                         .values_list("step_run__step_id", "started_at"))
    waited_total = sum((end - start).total_seconds() for pk in spans for start, end in spans[pk])

    finish: dict[str, tuple[float, float]] = {}

    def chain(step_id: str) -> tuple[float, float]:
        if step_id not in finish:
            step, row = plan_steps[step_id], rows.get(step_id)
            before = max((chain(need) for need in step.needs), default=(0.0, 0.0))
            own, wait = 0.0, 0.0
            if row is not None and row.state not in SETTLED_STEP_STATES:
                own = history.duration.get(step_id, 0.0)
                if row.state == StepState.RUNNING and running_since.get(step_id):
                    own = max(own - (now - running_since[step_id]).total_seconds(), 0.0)
                gated = bool(step.approval) or row.state == StepState.WAITING_APPROVAL
                if gated and row.state in (StepState.PENDING, StepState.WAITING_APPROVAL):
                    waited = sum((end - start).total_seconds() for start, end in spans.get(row.pk, []))
                    wait = max(history.approval_wait.get(step_id, 0.0) - waited, 0.0)
            finish[step_id] = (before[0] + own + wait, before[1] + wait)
        return finish[step_id]

    longest = max((chain(step_id) for step_id in plan_steps), default=(0.0, 0.0))
    return Prediction(longest[0], longest[1], waited_total)


def evaluate_sla(run: Run, now: datetime | None = None) -> SlaStatus | None:
    """Update the run's SLA status; alert (and tell the approvers holding it up) when it turns
    at risk, open an incident when it is breached. None when the workflow has no SLA."""
    now = now or timezone.now()
    plan = run.version.plan
    deadline = plan.deadline(run)
    if deadline is None:
        return None
    prediction = predict(run, plan.steps, step_history(run.workflow_id, exclude_run_id=run.pk), now)
    elapsed = ((run.finished_at or now) - (run.started_at or run.created_at)).total_seconds()
    if run.is_finished:
        predicted = run.finished_at
        state = SlaState.BREACHED if run.finished_at > deadline else SlaState.MET
    else:
        predicted = now + timedelta(seconds=prediction.remaining_seconds)
        state = SlaState.BREACHED if now > deadline else SlaState.AT_RISK if predicted > deadline \
            else SlaState.ON_TRACK
    with transaction.atomic():
        status, _ = SlaStatus.objects.select_for_update().get_or_create(
            run=run, defaults={"team_id": run.team_id, "deadline": deadline})
        before = status.state
        status.state, status.deadline, status.predicted_finish, status.evaluated_at = state, deadline, predicted, now
        status.waiting_for_people_seconds = int(prediction.waited_seconds)
        status.running_seconds = max(int(elapsed - prediction.waited_seconds), 0)
        status.predicted_wait_seconds = int(prediction.remaining_wait_seconds)
        if state == SlaState.AT_RISK and status.at_risk_since is None:
            status.at_risk_since = now
        if state == SlaState.BREACHED and status.breached_at is None:
            status.breached_at = now
        status.save()
        if before != state:
            record(None, f"sla.{state}", run, after={"deadline": deadline.isoformat(),
                                                     "predicted_finish": predicted and predicted.isoformat()})
            _announce_sla(run, status, before)
    return status


def _announce_sla(run: Run, status: SlaStatus, before: str) -> None:
    workflow = run.workflow
    detail = {"run": run.pk, "deadline": status.deadline.isoformat(),
              "predicted_finish": status.predicted_finish and status.predicted_finish.isoformat(),
              "waiting_for_people_seconds": status.waiting_for_people_seconds,
              "predicted_wait_seconds": status.predicted_wait_seconds}
    if status.state == SlaState.AT_RISK:
        raise_alert(team=run.team, kind=AlertKind.SLA_AT_RISK, dedup_key=f"sla_at_risk:{run.pk}", workflow=workflow,
                    run=run, detail=detail, recipients=approvers_holding_up(run),
                    title=f"Run {run.pk} of {workflow.name} will likely miss its SLA "
                          f"(due {status.deadline:%Y-%m-%d %H:%M %Z})")
    elif status.state == SlaState.BREACHED:
        close_alert(f"sla_at_risk:{run.pk}", reason="breached")
        alert, created = raise_alert(team=run.team, kind=AlertKind.SLA_BREACH, dedup_key=f"sla_breach:{run.pk}",
                                     workflow=workflow, run=run, detail=detail, recipients=approvers_holding_up(run),
                                     title=f"Run {run.pk} of {workflow.name} missed its SLA "
                                           f"(due {status.deadline:%Y-%m-%d %H:%M %Z})")
        if created:
            _open_breach_incident(run, status)
    elif before == SlaState.AT_RISK:
        close_alert(f"sla_at_risk:{run.pk}", reason=status.state)


def approvers_holding_up(run: Run) -> list:
    """The members of the approver groups of the run's steps that wait for approval."""
    steps = run.version.plan.steps
    slugs = {approvers.group for step_id in
             run.step_runs.filter(state=StepState.WAITING_APPROVAL).values_list("step_id", flat=True)
             if steps[step_id].gate for stage in steps[step_id].gate.stages for approvers in stage.approvers}
    people = []
    for group in ApproverGroup.objects.filter(slug__in=slugs - {None}).prefetch_related("members"):
        people += list(group.members.all())
    return people


def _open_breach_incident(run: Run, status: SlaStatus) -> None:
    from apps.incidents.services import open_incident

    open_incident(None, team=run.team, title=f"SLA breached: run {run.pk} of {run.workflow.name}",
                  description=f"The run was due by {status.deadline:%Y-%m-%d %H:%M %Z}. It had waited "
                              f"{status.waiting_for_people_seconds}s for people and run {status.running_seconds}s.")


def evaluate_open_slas(now: datetime | None = None) -> int:
    """Evaluate every unfinished run whose version has an SLA; returns how many."""
    evaluated = 0
    for run in Run.objects.select_related("version", "workflow", "team").filter(state__in=UNFINISHED_RUN_STATES):
        if run.version.plan.sla:
            evaluate_sla(run, now)
            evaluated += 1
    return evaluated


# --- Anomalies ------------------------------------------------------------------------------------


def settings_for(workflow) -> MonitorSettings:
    return MonitorSettings.objects.filter(workflow=workflow).first() or MonitorSettings(workflow=workflow)


@transaction.atomic
def save_settings(actor, workflow, **values) -> MonitorSettings:
    current = settings_for(workflow)
    before = {field: getattr(current, field) for field in values}
    for field, value in values.items():
        setattr(current, field, value)
    current.updated_at = timezone.now()
    current.save()
    record(actor, "monitor.settings_changed", current, team=workflow.team, before=before, after=values)
    return current


def run_metrics(runs: list[Run]) -> dict[int, dict[str, float]]:
    """Duration and records written (by successful step attempts) of each succeeded run, in at most
    one query: a succeeded run's figures never change, so each process keeps the ones it read and
    a run's end sums the records of that run alone, not of its whole history again."""
    missing = {run.pk: run.finished_at for run in runs if (run.pk, run.finished_at) not in _records_of_succeeded}
    if missing:
        records = dict(StepAttempt.objects.filter(step_run__run__in=list(missing), kind=AttemptKind.STEP,
                                                  state=AttemptState.SUCCEEDED)
                       .values_list("step_run__run_id").annotate(total=Sum("records_out"))
                       .values_list("step_run__run_id", "total"))
        if len(_records_of_succeeded) + len(missing) > _RECORDS_KEPT:
            _records_of_succeeded.clear()
        _records_of_succeeded.update({(pk, finished): float(records.get(pk) or 0) for pk, finished in missing.items()})
    return {run.pk: {"duration_seconds": (run.finished_at - run.started_at).total_seconds(),
                     "records_out": _records_of_succeeded[(run.pk, run.finished_at)]} for run in runs}


# (run id, finished at) -> records written, for succeeded runs this process compared (the end time
# keeps a test database's reused ids apart); bounded: cleared when full.
_records_of_succeeded: dict[tuple, float] = {}
_RECORDS_KEPT = 20_000


@dataclass
class Anomaly:
    metric: str
    value: float
    median: float
    mad: float
    score: float


def find_anomalies(run: Run, monitor: MonitorSettings) -> list[Anomaly]:
    past = list(Run.objects.filter(workflow_id=run.workflow_id, state=RunState.SUCCEEDED, started_at__isnull=False,
                                   finished_at__isnull=False).exclude(pk=run.pk)
                .only("started_at", "finished_at").order_by("-finished_at")[: monitor.history_runs])
    if len(past) < monitor.min_history:
        return []
    metrics = run_metrics([*past, run])
    current = metrics.pop(run.pk)
    checked = [m for m, on in (("duration_seconds", monitor.check_duration), ("records_out", monitor.check_records))
               if on]
    found = []
    for metric in checked:
        values = [m[metric] for m in metrics.values()]
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values)
        # A perfectly steady history has MAD 0: measure against 5% of the median instead.
        scale = max(mad, 0.05 * abs(median), 1e-9)
        score = 0.6745 * (current[metric] - median) / scale
        if abs(score) > monitor.threshold:
            found.append(Anomaly(metric, current[metric], median, mad, round(score, 2)))
    return found


def check_anomalies(run: Run) -> list[Alert]:
    monitor = settings_for(run.workflow)
    alerts = []
    for anomaly in find_anomalies(run, monitor):
        direction = "higher" if anomaly.score > 0 else "lower"
        label = {"duration_seconds": "duration", "records_out": "record count"}[anomaly.metric]
        alert, _ = raise_alert(
            team=run.team, kind=AlertKind.ANOMALY, dedup_key=f"anomaly:{run.workflow_id}:{anomaly.metric}",
            workflow=run.workflow, run=run,
            title=f"Run {run.pk} of {run.workflow.name}: {label} {anomaly.value:g} is unusually {direction} "
                  f"(median {anomaly.median:g})",
            detail={"run": run.pk, "metric": anomaly.metric, "value": anomaly.value, "median": anomaly.median,
                    "mad": anomaly.mad, "score": anomaly.score, "threshold": monitor.threshold})
        alerts.append(alert)
    return alerts


# --- Paused runs and expiring approvals -----------------------------------------------------------


def on_run_state_changed(run: Run, before: str, after: str) -> None:
    if after == RunState.PAUSED:
        raise_alert(team=run.team, kind=AlertKind.RUN_PAUSED, dedup_key=f"run_paused:{run.pk}", workflow=run.workflow,
                    run=run, title=f"Run {run.pk} of {run.workflow.name} paused: {run.failure_summary or 'a step failed'}",
                    detail={"run": run.pk, "summary": run.failure_summary})
    elif before == RunState.PAUSED:
        close_alert(f"run_paused:{run.pk}", reason=f"run {after}")


def on_run_ended(run: Run) -> None:
    """After commit: settle the run's SLA and compare it with its workflow's history (both read
    many rows, so they do not hold the run's lock; alerts dedup by key, so a repeat is harmless)."""
    if plan_for(run.version_id).sla:  # the cached plan: no read of the version's row at every run's end
        evaluate_sla(run)
    if run.state == RunState.SUCCEEDED and run.started_at:
        check_anomalies(run)


def forget_runs(run_ids: list[int]) -> None:
    """Retention removes these finished runs: their SLA records go, their alerts stay (detached)."""
    SlaStatus.objects.filter(run_id__in=run_ids).delete()
    Alert.objects.filter(run_id__in=run_ids).update(run=None)


def alert_expiring_approvals(now: datetime | None = None) -> int:
    from apps.approvals.models import ApprovalRequest, RequestState

    now = now or timezone.now()
    expiring = ApprovalRequest.objects.select_related("run__workflow", "team", "group", "step_run") \
        .filter(state=RequestState.PENDING, expires_at__isnull=False, expires_at__lte=now + APPROVAL_EXPIRY_WARNING)
    raised = 0
    for request in expiring:
        members = list(request.group.members.all()) if request.group else []
        _, created = raise_alert(
            team=request.team, kind=AlertKind.APPROVAL_EXPIRING, dedup_key=f"approval_expiring:{request.pk}",
            workflow=request.run.workflow, run=request.run, recipients=members,
            title=f"Approval of {request.step_run.step_id} in run {request.run_id} expires "
                  f"at {request.expires_at:%Y-%m-%d %H:%M %Z}",
            detail={"request": request.pk, "expires_at": request.expires_at.isoformat()})
        raised += created
    open_keys = Alert.objects.filter(kind=AlertKind.APPROVAL_EXPIRING, state=AlertState.OPEN) \
        .values_list("dedup_key", flat=True)
    still_pending = {f"approval_expiring:{pk}" for pk in ApprovalRequest.objects.filter(
        state=RequestState.PENDING).values_list("pk", flat=True)}
    for key in set(open_keys) - still_pending:
        close_alert(key, reason="decided or expired")
    return raised


def alert_queues_without_consumer(now: datetime | None = None) -> int:
    """Alert each team whose steps wait in a queue that no live worker consumes (from the
    workers' liveness records); close the alert once a worker consumes it or nothing waits."""
    from apps.accounts.models import Team
    from apps.platform.liveness import queues_without_consumer

    stranded = queues_without_consumer(now)
    teams = Team.objects.in_bulk({team_id for waiting in stranded.values() for team_id in waiting})
    raised, still_stranded = 0, set()
    for queue, waiting in stranded.items():
        for team_id, count in waiting.items():
            key = f"no_consumer:{queue}:{team_id}"
            still_stranded.add(key)
            _, created = raise_alert(
                team=teams[team_id], kind=AlertKind.NO_CONSUMER, dedup_key=key,
                title=f"Queue {queue} has {count} waiting step{'s' if count != 1 else ''} and no worker consumes it",
                detail={"queue": queue, "waiting": count,
                        "fix": f"start a worker with -Q {queue}, or route the steps to a consumed queue"})
            raised += created
    for key in set(Alert.objects.filter(kind=AlertKind.NO_CONSUMER, state=AlertState.OPEN)
                   .values_list("dedup_key", flat=True)) - still_stranded:
        close_alert(key, reason="a worker consumes the queue, or nothing waits in it")
    return raised
