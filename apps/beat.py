"""Periodic tasks kept in django-celery-beat. Each app declares its own in `AppConfig.ready()`
through `schedule_every()`; they are written (or brought in step) after every migrate."""

from django.db.models.signals import post_migrate


def schedule_every(app_config, *, name: str, task: str, seconds: int, description: str) -> None:
    """Run Celery task `task` every `seconds` on the default queue, registered after migrate."""

    def register(**kwargs) -> None:
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(name=name, defaults={
            "task": task, "interval": every, "queue": "default", "enabled": True, "description": description,
        })

    post_migrate.connect(register, sender=app_config, weak=False, dispatch_uid=f"beat:{name}")
