"""The audit app's periodic work (scheduled by django-celery-beat, see apps.py)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from apps.audit.retention import purge_events
from apps.logging import get_logger

logger = get_logger("flowdeck.audit")


@shared_task(name="flowdeck.audit.purge", ignore_result=True)
def purge() -> None:
    if settings.FLOWDECK_AUDIT_RETENTION_DAYS:
        report = purge_events(timedelta(days=settings.FLOWDECK_AUDIT_RETENTION_DAYS))
        logger.info("old audit events purged", chains=len(report.through), removed=report.removed)
