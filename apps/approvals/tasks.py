"""Celery tasks of the approvals app: expire overdue requests (beat sends it every 30 s)."""

from __future__ import annotations

from celery import shared_task

from apps.logging import get_logger

logger = get_logger("flowdeck.approvals")


@shared_task(name="flowdeck.approvals.expire_approvals", ignore_result=True)
def expire_approvals() -> None:
    from apps.approvals import services

    report = services.expire_due()
    if report.changed:
        logger.info("approval requests expired or escalated", **report.as_dict())
