"""How triggers react to the rest of the platform: a new current version re-syncs the
workflow's trigger bindings; a run that ends starts the workflows waiting `after` it and lets
its backfill start the next slot."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.runs.models import FINISHED_RUN_STATES, Run, Trigger
from apps.runs.signals import run_state_changed
from apps.triggers import services
from apps.workflows.models import Workflow


@receiver(post_save, sender=Workflow, dispatch_uid="triggers.sync_on_new_version")
def sync_on_new_version(sender, instance: Workflow, update_fields=None, **kwargs) -> None:
    if update_fields is None or "current_version" in update_fields:
        services.sync_triggers(instance)


@receiver(run_state_changed, sender=Run, dispatch_uid="triggers.on_run_finished")
def on_run_finished(sender, run: Run, before, after, actor, **kwargs) -> None:
    if after not in FINISHED_RUN_STATES:
        return
    # Inside the engine's transaction: the downstream run exists exactly when the upstream end does.
    services.start_downstream(run)
    backfill_id = run.trigger_detail.get("backfill") if run.trigger == Trigger.BACKFILL else None
    if backfill_id:
        transaction.on_commit(lambda: services.advance_backfill(backfill_id))
