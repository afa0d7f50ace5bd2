"""Monitoring reacts to run state changes inside the engine's transaction: a paused run opens
an alert, an ended run settles its SLA and is compared with its workflow's history. Messages
go out only after commit (`apps.approvals.notify`), and lineage events too."""

from django.dispatch import receiver

from apps.monitoring import lineage, services
from apps.runs.models import Run
from apps.runs.signals import run_state_changed


@receiver(run_state_changed, sender=Run, dispatch_uid="monitoring.on_run_state_changed")
def on_run_state_changed(sender, run: Run, before, after, actor, **kwargs) -> None:
    services.on_run_state_changed(run, before, after)
    lineage.emit_on_commit(run, after)
