"""Periodic monitoring work (scheduled by django-celery-beat, see apps.py)."""

from celery import shared_task

from apps.monitoring import lineage, services


@shared_task(name="flowdeck.monitoring.evaluate", ignore_result=True)
def evaluate() -> None:
    services.evaluate_open_slas()
    services.alert_expiring_approvals()
    services.alert_queues_without_consumer()


@shared_task(name="flowdeck.monitoring.emit_lineage", ignore_result=True)
def emit_lineage(run_id: int, event_type: str) -> None:
    lineage.send(run_id, event_type)
