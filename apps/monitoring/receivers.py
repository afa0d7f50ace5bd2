"""Monitoring reacts to the engine's signals. Inside the engine's transaction: a paused run opens
an alert, a resumed one closes it. After commit (run_ended): an ended run settles its SLA and is
compared with its workflow's history. Messages go out only after commit (`apps.notifications`),
and lineage events too."""

from django.db import transaction
from django.dispatch import receiver

from apps.monitoring import lineage, services, tasks
from apps.runs.models import Run
from apps.runs.signals import run_ended, run_state_changed, runs_purging


@receiver(run_state_changed, sender=Run, dispatch_uid="monitoring.on_run_state_changed")
def on_run_state_changed(sender, run: Run, before, after, actor, **kwargs) -> None:
    services.on_run_state_changed(run, before, after)
    event_type = lineage.event_type_for(after)
    if event_type:
        transaction.on_commit(lambda: tasks.emit_lineage.delay(run.pk, event_type))


@receiver(run_ended, sender=Run, dispatch_uid="monitoring.on_run_ended")
def on_run_ended(sender, run: Run, **kwargs) -> None:
    services.on_run_ended(run)


@receiver(runs_purging, sender=Run, dispatch_uid="monitoring.on_runs_purging")
def on_runs_purging(sender, run_ids, **kwargs) -> None:
    services.forget_runs(run_ids)
