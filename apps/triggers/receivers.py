"""How triggers react to the rest of the platform: a new current version re-syncs the
workflow's trigger bindings; a run that has ended (after commit) starts the workflows waiting
`after` it and lets its backfill start the next slot."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.runs.models import Run, Trigger
from apps.runs.signals import run_ended, runs_purging
from apps.triggers import services
from apps.workflows.models import Workflow


@receiver(post_save, sender=Workflow, dispatch_uid="triggers.sync_on_new_version")
def sync_on_new_version(sender, instance: Workflow, update_fields=None, **kwargs) -> None:
    if update_fields is None or "current_version" in update_fields:
        services.sync_triggers(instance)


@receiver(run_ended, sender=Run, dispatch_uid="triggers.on_run_ended")
def on_run_ended(sender, run: Run, **kwargs) -> None:
    # After commit, outside the upstream run's lock: starts are idempotent (one event per
    # upstream run and downstream workflow), and the tick catches up on any lost to a crash.
    services.start_downstream(run)
    backfill_id = run.trigger_detail.get("backfill") if run.trigger == Trigger.BACKFILL else None
    if backfill_id:
        services.advance_backfill(backfill_id)


@receiver(runs_purging, sender=Run, dispatch_uid="triggers.on_runs_purging")
def on_runs_purging(sender, run_ids, **kwargs) -> None:
    # The ledger keeps its events (a slot or message key must not start again); they lose the run.
    services.detach_runs(run_ids)
