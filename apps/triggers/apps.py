from django.apps import AppConfig
from django.db.models.signals import post_migrate

# The tick fires due schedule slots, closes timed-out batches and paces backfills.
PERIODIC_TASKS = {
    "flowdeck: trigger tick": ("flowdeck.triggers.tick", 30, "Starts due schedule slots, closes micro-batches "
                                                            "whose window ended and paces backfills."),
    "flowdeck: scan landing files": ("flowdeck.triggers.scan_landing", 30, "Starts runs for landed files that "
                                                                           "stopped growing or have their marker."),
}


class TriggersConfig(AppConfig):
    name = "apps.triggers"
    label = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from apps.triggers import receivers  # noqa: F401  (connects the signal receivers)

        post_migrate.connect(register_periodic_tasks, sender=self)


def register_periodic_tasks(**kwargs) -> None:
    """Schedule the trigger tasks in django-celery-beat (kept in step on every migrate)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, (task, seconds, description) in PERIODIC_TASKS.items():
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(name=name, defaults={
            "task": task, "interval": every, "queue": "default", "enabled": True, "description": description,
        })
