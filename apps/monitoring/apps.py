from django.apps import AppConfig
from django.db.models.signals import post_migrate

EVALUATE_TASK_NAME = "flowdeck: evaluate SLAs and expiring approvals"
EVALUATE_EVERY_SECONDS = 60


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from apps.monitoring import receivers  # noqa: F401  (connects the signal receivers)

        post_migrate.connect(register_evaluation, sender=self)


def register_evaluation(**kwargs) -> None:
    """Schedule the SLA evaluation in django-celery-beat (kept in step on every migrate)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=EVALUATE_EVERY_SECONDS, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=EVALUATE_TASK_NAME, defaults={
        "task": "flowdeck.monitoring.evaluate", "interval": every, "queue": "default", "enabled": True,
        "description": "Marks runs at risk of missing their SLA, alerts on breaches and approvals about to expire.",
    })
