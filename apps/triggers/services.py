"""Domain functions of the triggers app: the only code that writes its rows and starts runs
on behalf of schedules, webhooks, files, queues, batches, upstream workflows and backfills.

Every trigger's start goes through `start_once`: it inserts the TriggerEvent for a dedup key and starts
the run in the same transaction, so a key seen before returns the run it started and a failed
start leaves no event behind. Runs are started through `apps.runs.engine.start_run` only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.log import record
from apps.catalog import secrets as secret_box
from apps.runs import engine
from apps.runs.models import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    Run,
    RunState,
    Trigger,
)
from apps.triggers.models import (
    Backfill,
    BatchState,
    BusinessCalendar,
    CatchUp,
    EventBatch,
    TriggerBinding,
    TriggerEvent,
    TriggerKind,
    TriggerSource,
    UpstreamShare,
    WebhookEndpoint,
)
from apps.triggers.schedules import CalendarRule, SlotRule
from apps.workflows.models import Workflow
from apps.workflows.services import lock_workflow

RUN_TRIGGER = {
    TriggerSource.SCHEDULE: Trigger.SCHEDULE,
    TriggerSource.WEBHOOK: Trigger.WEBHOOK,
    TriggerSource.FILE: Trigger.FILE,
    TriggerSource.QUEUE: Trigger.QUEUE,
    TriggerSource.UPSTREAM: Trigger.UPSTREAM,
    TriggerSource.BACKFILL: Trigger.BACKFILL,
}
# A slot older than this when the tick sees it was missed (the platform was down), not just late.
MISSED_AFTER = timedelta(minutes=5)


class TriggerError(Exception):
    """A trigger request that cannot be carried out; the message says what to do."""


@dataclass
class Started:
    event: TriggerEvent
    created: bool

    @property
    def run(self) -> Run | None:
        return self.event.run


# --- Keeping bindings in step with the current version ---------------------------------------------


def _match_name(kind: str, config: dict) -> str:
    return {TriggerKind.AFTER: config.get("workflow", ""), TriggerKind.QUEUE: config.get("connection", "")} \
        .get(kind, "")


@transaction.atomic
def sync_triggers(workflow: Workflow) -> list[TriggerBinding]:
    """Make the workflow's bindings match its current version's `triggers`. An unchanged
    schedule keeps its place in time, so saving a version neither repeats nor skips slots."""
    wanted = list(workflow.current_version.plan.triggers) if workflow.current_version_id else []
    existing = {binding.position: binding for binding in TriggerBinding.objects.select_for_update()
                .filter(workflow=workflow)}
    bindings, changed = [], bool(existing) and len(existing) > len(wanted)
    for position, (kind, config) in enumerate(wanted):
        binding = existing.pop(position, None)
        if binding is not None and (binding.kind, binding.config) == (kind, config):
            bindings.append(binding)
            continue
        # A changed schedule stays paused if it was: the person who paused it resumes it.
        paused = {"paused_at": binding.paused_at, "paused_by": binding.paused_by} \
            if binding is not None and binding.kind == kind == TriggerKind.SCHEDULE else {}
        if binding is not None:
            binding.delete()
        bindings.append(TriggerBinding.objects.create(workflow=workflow, position=position, kind=kind,
                                                      config=config, match_name=_match_name(kind, config), **paused))
        changed = True
    for stale in existing.values():
        stale.delete()
    if any(binding.kind == TriggerKind.WEBHOOK for binding in bindings):
        ensure_webhook(workflow)
    if changed:
        record(None, "triggers.synced", workflow, after={"triggers": [b.kind for b in bindings]})
    return bindings


def ensure_webhook(workflow: Workflow) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(workflow=workflow).first()
    if endpoint is None:
        endpoint, _ = rotate_webhook_secret(None, workflow)
    return endpoint


@transaction.atomic
def rotate_webhook_secret(actor, workflow: Workflow) -> tuple[WebhookEndpoint, str]:
    """A new URL token and signing secret; returns the secret, shown once to the author."""
    signing_secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint, created = WebhookEndpoint.objects.update_or_create(workflow=workflow, defaults={
        "token": secrets.token_urlsafe(24), "encrypted_signing_secret": secret_box.encrypt(signing_secret),
    })
    record(actor, "webhook.created" if created else "webhook.secret_rotated", endpoint, team=workflow.team)
    return endpoint, signing_secret


# --- Starting a run exactly once per event ---------------------------------------------------------


def offered_inputs(workflow: Workflow, offered: dict) -> dict:
    """The values a trigger offers (file path, upstream outputs, batch events…) that the workflow
    declares as inputs; a workflow takes only what it asks for."""
    declared = workflow.current_version.plan.inputs
    return {name: value for name, value in offered.items() if name in declared}


@transaction.atomic
def start_once(workflow: Workflow, source: str, dedup_key: str, *, inputs: dict, payload: dict | None = None,
               detail: dict | None = None, slot_at: datetime | None = None) -> Started:
    """Start one run of the workflow's current version for the event `dedup_key`, unless that
    event was seen before. Raises engine.InvalidInputs (nothing recorded) when inputs do not fit."""
    try:
        with transaction.atomic():
            event = TriggerEvent.objects.create(workflow=workflow, source=source, dedup_key=dedup_key[:300],
                                                payload=payload or {}, slot_at=slot_at)
    except IntegrityError:
        return Started(TriggerEvent.objects.select_related("run").get(
            workflow=workflow, source=source, dedup_key=dedup_key[:300]), created=False)
    event.run = engine.start_run(None, workflow.current_version, inputs=inputs, trigger=RUN_TRIGGER[source],
                                 trigger_detail={"event": event.pk, "key": dedup_key, **(detail or {})})
    event.save(update_fields=["run"])
    return Started(event, created=True)


# --- Schedules ----------------------------------------------------------------------------------


def slot_rule(config: dict) -> SlotRule:
    calendar = CalendarRule.parse(config.get("calendar"))
    holidays = frozenset()
    if calendar is not None:
        found = BusinessCalendar.objects.filter(slug=calendar.slug).first()
        if found is None:
            raise TriggerError(f"The schedule follows calendar `{calendar.slug}`, which does not exist: "
                               f"use one of {', '.join(BusinessCalendar.objects.values_list('slug', flat=True))}.")
        holidays = frozenset(found.holidays.values_list("date", flat=True))
    return SlotRule(config["cron"], config.get("timezone") or "UTC", config.get("calendar"), holidays)


def next_run_times(workflow: Workflow, n: int = 5, *, now: datetime | None = None) -> list[dict]:
    """The next `n` scheduled starts over the workflow's schedules that are not paused:
    [{at, local, timezone, cron}]."""
    now = now or timezone.now()
    upcoming = []
    for binding in workflow.trigger_bindings.filter(kind=TriggerKind.SCHEDULE, paused_at__isnull=True):
        rule = slot_rule(binding.config)
        upcoming += [{"at": at, "local": at.astimezone(rule.zone), "timezone": str(rule.zone),
                      "cron": binding.config["cron"]} for at in rule.next_slots(now, n)]
    return sorted(upcoming, key=lambda slot: slot["at"])[:n]


@dataclass
class ScheduleStatus:
    schedules: int
    paused: int
    paused_at: datetime | None = None
    paused_by: str = ""
    next_at: datetime | None = None

    @property
    def all_paused(self) -> bool:
        return bool(self.schedules) and self.paused == self.schedules


def schedule_status(workflow: Workflow) -> ScheduleStatus:
    bindings = list(workflow.trigger_bindings.filter(kind=TriggerKind.SCHEDULE).select_related("paused_by"))
    paused = [binding for binding in bindings if binding.paused_at]
    last = max(paused, key=lambda binding: binding.paused_at, default=None)
    return ScheduleStatus(len(bindings), len(paused), last.paused_at if last else None,
                          last.paused_by.display_name if last and last.paused_by else "")


def next_starts(workflow_ids: list[int], now: datetime | None = None) -> dict[int, ScheduleStatus]:
    """Each scheduled workflow's status and next start (None while paused, or when its calendar is
    missing), for a list page: one query for the page's schedules."""
    now = now or timezone.now()
    found: dict[int, ScheduleStatus] = {}
    for binding in TriggerBinding.objects.filter(workflow_id__in=workflow_ids, kind=TriggerKind.SCHEDULE):
        status = found.setdefault(binding.workflow_id, ScheduleStatus(0, 0))
        status.schedules += 1
        if binding.paused_at:
            status.paused += 1
            continue
        try:
            upcoming = slot_rule(binding.config).next_slots(now, 1)
        except TriggerError:
            continue
        if upcoming and (status.next_at is None or upcoming[0] < status.next_at):
            status.next_at = upcoming[0]
    return found


@transaction.atomic
def set_schedules_paused(actor, workflow: Workflow, paused: bool) -> ScheduleStatus:
    """Pause or resume every schedule of the workflow (audited). A resumed schedule goes on from
    now: the slots that fell in the pause are not started afterwards."""
    bindings = list(TriggerBinding.objects.select_for_update().filter(workflow=workflow, kind=TriggerKind.SCHEDULE))
    if not bindings:
        raise TriggerError("This workflow has no schedule to pause: add a `schedule` trigger (cron and time zone) "
                           "to its YAML first.")
    now = timezone.now()
    changed = [binding for binding in bindings if (binding.paused_at is not None) != paused]
    for binding in changed:
        binding.paused_at, binding.paused_by = (now, actor) if paused else (None, None)
        if not paused:
            binding.handled_until = max(binding.handled_until, now)
        binding.save(update_fields=["paused_at", "paused_by", "handled_until"])
    if changed:
        record(actor, "schedule.paused" if paused else "schedule.resumed", workflow, team=workflow.team,
               after={"schedules": [binding.config.get("cron") for binding in changed]})
    return schedule_status(workflow)


def fire_due_schedules(now: datetime | None = None) -> int:
    """Start the runs of every schedule slot that came due; returns how many started."""
    now = now or timezone.now()
    started = 0
    for binding_id in TriggerBinding.objects.filter(kind=TriggerKind.SCHEDULE, paused_at__isnull=True) \
            .values_list("pk", flat=True):
        started += _fire_schedule(binding_id, now)
    return started


@transaction.atomic
def _fire_schedule(binding_id: int, now: datetime) -> int:
    binding = TriggerBinding.objects.select_for_update(of=("self",)).select_related("workflow__current_version") \
        .filter(pk=binding_id).first()
    if binding is None or binding.paused_at is not None:  # paused since it was listed
        return 0
    due = slot_rule(binding.config).slots_between(binding.handled_until, now)
    if not due:
        return 0
    on_time = [slot for slot in due if now - slot <= MISSED_AFTER]
    missed = [slot for slot in due if now - slot > MISSED_AFTER]
    policy = binding.config.get("catch_up") or CatchUp.SKIP
    chosen = {CatchUp.SKIP: [], CatchUp.ONCE: missed[-1:], CatchUp.EACH: missed}[policy] + on_time
    if missed and policy != CatchUp.EACH:
        record(None, "schedule.slots_missed", binding.workflow, after={
            "missed": len(missed), "catch_up": policy, "first": missed[0].isoformat(), "last": missed[-1].isoformat()})
    started = 0
    for slot in chosen:
        result = _start_slot(binding.workflow, TriggerSource.SCHEDULE, f"{binding.position}@{slot.isoformat()}", slot,
                             detail={"missed": slot in missed})
        started += result.created
    binding.handled_until = due[-1]
    binding.save(update_fields=["handled_until"])
    return started


def _start_slot(workflow: Workflow, source: str, key: str, slot: datetime, detail: dict | None = None) -> Started:
    return start_or_note(workflow, source, key, inputs=offered_inputs(workflow, {"scheduled_for": slot.isoformat()}),
                         slot_at=slot, detail={"slot": slot.isoformat(), **(detail or {})})


def start_or_note(workflow: Workflow, source: str, key: str, *, inputs: dict, **extra) -> Started:
    """`start_once`, but inputs that do not fit are noted on the event instead of raised, for
    triggers nobody waits on (schedules, files, queues): the event shows why no run started and
    its key is not tried again."""
    try:
        return start_once(workflow, source, key, inputs=inputs, **extra)
    except engine.InvalidInputs as exc:
        return note_refused(workflow, source, key, str(exc), payload=extra.get("payload"), slot_at=extra.get("slot_at"))


@transaction.atomic
def note_refused(workflow: Workflow, source: str, key: str, error: str, *, payload: dict | None = None,
                 slot_at: datetime | None = None) -> Started:
    event, created = TriggerEvent.objects.get_or_create(
        workflow=workflow, source=source, dedup_key=key[:300],
        defaults={"slot_at": slot_at, "payload": payload or {}, "error": error})
    if created:
        record(None, "trigger.refused", workflow, after={"source": source, "key": key, "error": error})
    return Started(event, created=False)


# --- Micro-batches ------------------------------------------------------------------------------


def add_to_batch(workflow: Workflow, source: str, dedup_key: str, payload: dict,
                 batch_config: dict) -> tuple[TriggerEvent, bool]:
    """Record an event of a batching trigger (False: its key was seen before) and close its
    batch when it holds `max_items` events. The workflow's row is locked, so events and closes of
    one workflow queue one after another and every event lands in exactly one batch."""
    with transaction.atomic():
        lock_workflow(workflow.pk)
        event, created = TriggerEvent.objects.get_or_create(workflow=workflow, source=source,
                                                            dedup_key=dedup_key[:300], defaults={"payload": payload})
        if not created:
            return event, False
        batch = EventBatch.objects.filter(workflow=workflow, source=source, state=BatchState.OPEN).first()
        if batch is None:
            max_wait = batch_config.get("max_wait")
            closes_at = timezone.now() + timedelta(seconds=max_wait) if max_wait else None
            batch = EventBatch.objects.create(workflow=workflow, source=source, max_items=batch_config.get("max_items"),
                                              closes_at=closes_at)
        event.batch = batch
        event.save(update_fields=["batch"])
        if batch.max_items and batch.events.count() >= batch.max_items:
            _close_batch(batch, "max_items")
            event.run = batch.run
        return event, True


def close_due_batches(now: datetime | None = None) -> int:
    """Close the batches whose `max_wait` has passed; returns how many runs started."""
    now = now or timezone.now()
    closed = 0
    for batch_id in EventBatch.objects.filter(state=BatchState.OPEN, closes_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            batch = EventBatch.objects.select_related("workflow").get(pk=batch_id)
            lock_workflow(batch.workflow_id)
            batch.refresh_from_db()
            if batch.state == BatchState.OPEN:
                _close_batch(batch, "max_wait")
                closed += 1
    return closed


def _close_batch(batch: EventBatch, reason: str) -> None:
    events = list(batch.events.order_by("received_at", "pk"))
    batch.state, batch.closed_at, batch.close_reason = BatchState.CLOSED, timezone.now(), reason
    workflow = batch.workflow
    inputs = offered_inputs(workflow, {"events": [event.payload for event in events]})
    try:
        batch.run = engine.start_run(None, workflow.current_version, inputs=inputs, trigger=RUN_TRIGGER[batch.source],
                                     trigger_detail={"batch": batch.pk, "events": len(events), "closed_by": reason})
    except engine.InvalidInputs as exc:
        # Closed all the same, or every tick would try it again: its events say why no run started.
        batch.save(update_fields=["state", "closed_at", "close_reason"])
        TriggerEvent.objects.filter(batch=batch).update(error=f"The batch's run was not started: {exc}")
        record(None, "batch.refused", batch, team=workflow.team, after={"events": len(events), "error": str(exc)})
        return
    batch.save(update_fields=["state", "closed_at", "close_reason", "run"])
    TriggerEvent.objects.filter(batch=batch).update(run=batch.run)
    record(None, "batch.closed", batch, team=workflow.team, after={"events": len(events), "reason": reason,
                                                                   "run": batch.run.pk})


def detach_runs(run_ids: list[int]) -> None:
    """Retention removes these finished runs; the ledger's events and batches stay, without them."""
    TriggerEvent.objects.filter(run_id__in=run_ids).update(run=None)
    EventBatch.objects.filter(run_id__in=run_ids).update(run=None)


def events_of_run(run: Run):
    """The trigger events a run was started for (one, or every event of its batch)."""
    return TriggerEvent.objects.filter(run=run).order_by("received_at", "pk")


# --- Upstream workflows ---------------------------------------------------------------------------

AFTER_STATUSES = {RunState.SUCCEEDED: {"succeeded", "finished"}, RunState.FAILED: {"failed", "finished"},
                  RunState.CANCELLED: {"finished"}}


def start_downstream(upstream_run: Run) -> list[Run]:
    """Start the workflows whose `after` trigger waits for this run's workflow ending this way."""
    statuses = AFTER_STATUSES.get(upstream_run.state, set())
    upstream = upstream_run.workflow
    bindings = list(TriggerBinding.objects.select_related("workflow__current_version")
                    .filter(kind=TriggerKind.AFTER, match_name=upstream.name))
    if not bindings:  # most runs: nothing waits for them, so no shares to read
        return []
    shared_with = set(UpstreamShare.objects.filter(workflow=upstream).values_list("team_id", flat=True))
    started = []
    for binding in bindings:
        downstream = binding.workflow
        if binding.config.get("status", "succeeded") not in statuses:
            continue
        if downstream.team_id != upstream.team_id and downstream.team_id not in shared_with:
            continue
        outputs = dict(upstream_run.step_runs.values_list("step_id", "output"))
        inputs = offered_inputs(downstream, {"upstream": {"run_id": upstream_run.pk, "workflow": upstream.name,
                                                          "status": upstream_run.state, "outputs": outputs}})
        result = start_or_note(downstream, TriggerSource.UPSTREAM, f"run:{upstream_run.pk}", inputs=inputs,
                               detail={"upstream_run": upstream_run.pk, "upstream_workflow": str(upstream)})
        if result.created and result.run is not None:
            started.append(result.run)
    return started


DOWNSTREAM_CATCH_UP = timedelta(minutes=5)


def catch_up_downstream(now: datetime | None = None) -> int:
    """Start what the run_ended receiver lost to a crash right after its run committed: runs
    that ended in the last few minutes, of workflows others wait `after`, with no upstream event
    yet. Starts stay once each (the event's key), so racing the receiver is harmless."""
    now = now or timezone.now()
    waited_on = set(TriggerBinding.objects.filter(kind=TriggerKind.AFTER).values_list("match_name", flat=True))
    if not waited_on:
        return 0
    ended = list(Run.objects.select_related("workflow").filter(
        workflow__name__in=waited_on, state__in=FINISHED_RUN_STATES, finished_at__gte=now - DOWNSTREAM_CATCH_UP))
    noted = set(TriggerEvent.objects.filter(source=TriggerSource.UPSTREAM,
                                            dedup_key__in=[f"run:{run.pk}" for run in ended])
                .values_list("dedup_key", flat=True))
    return sum(len(start_downstream(run)) for run in ended if f"run:{run.pk}" not in noted)


@transaction.atomic
def share_upstream(actor, workflow: Workflow, team) -> UpstreamShare:
    share, created = UpstreamShare.objects.get_or_create(workflow=workflow, team=team,
                                                         defaults={"created_by": actor})
    if created:
        record(actor, "upstream.shared", share, team=workflow.team, after={"workflow": workflow.name,
                                                                           "team": team.slug})
    return share


# --- Backfills ----------------------------------------------------------------------------------


@transaction.atomic
def create_backfill(actor, workflow: Workflow, start: datetime, end: datetime) -> Backfill:
    """Plan one run per slot of the workflow's first schedule in [start, end]; they start as the
    workflow's concurrency allows (`advance_backfills`)."""
    binding = workflow.trigger_bindings.filter(kind=TriggerKind.SCHEDULE).first()
    if binding is None:
        raise TriggerError("This workflow has no schedule trigger, so it has no slots to backfill: "
                           "add a `schedule` trigger first.")
    if end <= start:
        raise TriggerError("The end of the range must be after its start.")
    slots = slot_rule(binding.config).slots_between(start - timedelta(microseconds=1), end, limit=1001)
    if not slots:
        raise TriggerError("No schedule slot falls in that range: widen the range.")
    if len(slots) > 1000:
        raise TriggerError("That range holds more than 1000 slots: split it into smaller backfills.")
    backfill = Backfill.objects.create(workflow=workflow, team=workflow.team, start=start, end=end, created_by=actor)
    TriggerEvent.objects.bulk_create([
        TriggerEvent(workflow=workflow, source=TriggerSource.BACKFILL, dedup_key=f"{backfill.pk}@{slot.isoformat()}",
                     slot_at=slot, backfill=backfill, payload={"scheduled_for": slot.isoformat()})
        for slot in slots])
    record(actor, "backfill.created", backfill, after={"slots": len(slots), "start": start.isoformat(),
                                                       "end": end.isoformat()})
    transaction.on_commit(lambda: advance_backfill(backfill.pk))
    return backfill


def backfill_progress(backfill: Backfill) -> dict:
    slots = backfill.slots.all()
    counts = {"total": slots.count(), "waiting": slots.filter(run__isnull=True, error="").count(),
              "active": slots.filter(run__state__in=[*ACTIVE_RUN_STATES, RunState.QUEUED]).count()}
    for state in FINISHED_RUN_STATES:
        counts[state] = slots.filter(run__state=state).count()
    counts["done"] = sum(counts[state] for state in FINISHED_RUN_STATES)
    return counts


@transaction.atomic
def advance_backfill(backfill_id: int) -> int:
    """Start the next slots of a running backfill while fewer than the workflow's concurrency
    (1 when unset, so a backfill never floods the workers) of its runs are unfinished."""
    backfill = Backfill.objects.select_for_update(of=("self",)).select_related("workflow__current_version") \
        .filter(pk=backfill_id).first()
    if backfill is None or backfill.state != Backfill.State.RUNNING:
        return 0
    limit = backfill.workflow.current_version.plan.concurrency or 1
    unfinished = backfill.slots.filter(run__isnull=False).exclude(run__state__in=FINISHED_RUN_STATES).count()
    started = 0
    for event in backfill.slots.filter(run__isnull=True, error="").order_by("slot_at")[:max(limit - unfinished, 0)]:
        inputs = offered_inputs(backfill.workflow, event.payload)
        try:
            event.run = engine.start_run(None, backfill.workflow.current_version, inputs=inputs,
                                         trigger=Trigger.BACKFILL, trigger_detail={
                                             "backfill": backfill.pk, "slot": event.slot_at.isoformat()})
        except engine.InvalidInputs as exc:
            event.error = str(exc)
            event.save(update_fields=["error"])
            continue
        event.save(update_fields=["run"])
        started += 1
    if not backfill.slots.filter(run__isnull=True, error="").exists() and not \
            backfill.slots.filter(run__isnull=False).exclude(run__state__in=FINISHED_RUN_STATES).exists():
        backfill.state = Backfill.State.FINISHED
        backfill.save(update_fields=["state"])
        record(None, "backfill.finished", backfill, after=backfill_progress(backfill))
    return started


@transaction.atomic
def cancel_backfill(actor, backfill: Backfill) -> Backfill:
    backfill = Backfill.objects.select_for_update().get(pk=backfill.pk)
    if backfill.state != Backfill.State.RUNNING:
        raise TriggerError(f"This backfill is already {backfill.get_state_display().lower()}; nothing to cancel.")
    backfill.state = Backfill.State.CANCELLED
    backfill.save(update_fields=["state"])
    backfill.slots.filter(run__isnull=True, error="").update(error="Cancelled with its backfill.")
    # A paused run is left to its checkpoint: only a decision there ends it.
    for run in Run.objects.filter(trigger_events__backfill=backfill) \
            .exclude(state__in=[*FINISHED_RUN_STATES, RunState.PAUSED]):
        engine.cancel_run(actor, run)
    record(actor, "backfill.cancelled", backfill, after=backfill_progress(backfill))
    return backfill
