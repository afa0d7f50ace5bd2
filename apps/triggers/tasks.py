"""Celery tasks of the triggers app, scheduled by django-celery-beat (see apps.py). Each is
safe to run twice at once: the ledger and row locks make every start happen once."""

from celery import shared_task

from apps.logging import get_logger
from apps.triggers import landing, services
from apps.triggers.models import Backfill

logger = get_logger("flowdeck.triggers")


@shared_task(name="flowdeck.triggers.tick", ignore_result=True)
def tick() -> None:
    started = services.fire_due_schedules()
    closed = services.close_due_batches()
    started += services.catch_up_downstream()
    for backfill_id in Backfill.objects.filter(state=Backfill.State.RUNNING).values_list("pk", flat=True):
        services.advance_backfill(backfill_id)
    if started or closed:
        logger.info("triggers fired", schedule_runs=started, batches_closed=closed)


@shared_task(name="flowdeck.triggers.scan_landing", ignore_result=True)
def scan_landing() -> None:
    report = landing.scan_landing()
    if report.started:
        logger.info("landing files started runs", started=report.started, incomplete=report.incomplete)
