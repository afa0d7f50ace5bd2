"""The approvals app: approval gates, failure checkpoints, decisions and the inbox."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate

EXPIRY_TASK_NAME = "flowdeck: expire approval requests"
EXPIRY_INTERVAL_SECONDS = 30


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from apps.approvals import receivers
        from apps.runs import signals

        signals.step_waiting_approval.connect(receivers.on_step_waiting_approval,
                                              dispatch_uid="approvals.open_gate")
        signals.step_failed.connect(receivers.on_step_failed, dispatch_uid="approvals.open_checkpoint")
        signals.run_state_changed.connect(receivers.on_run_state_changed, dispatch_uid="approvals.withdraw_stale")
        post_migrate.connect(register_expiry_task, sender=self)


def register_expiry_task(**kwargs) -> None:
    """Schedule `expire_approvals` in django-celery-beat (kept in step on every migrate)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=EXPIRY_INTERVAL_SECONDS, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=EXPIRY_TASK_NAME, defaults={
        "task": "flowdeck.approvals.expire_approvals", "interval": every, "queue": "default", "enabled": True,
        "description": "Escalates or rejects approval requests past their timeout and sends expiry reminders.",
    })
