from django.apps import AppConfig
from django.db.models.signals import post_migrate

from apps.env import env_bool

SWEEPER_TASK_NAME = "flowdeck: sweep stale step attempts"


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        post_migrate.connect(register_sweeper, sender=self)
        from apps.runs import batch  # noqa: F401  (registers batch.map and its chunk task, in workers too)
        if env_bool("FLOWDECK_TEST_STEP_TYPES", False):
            from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)


def register_sweeper(**kwargs) -> None:
    """Schedule the sweeper in django-celery-beat every FLOWDECK_SWEEP_INTERVAL_SECONDS (kept in
    step with the setting on every migrate)."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=settings.FLOWDECK_SWEEP_INTERVAL_SECONDS,
                                                      period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=SWEEPER_TASK_NAME, defaults={
        "task": "flowdeck.runs.sweep_runs", "interval": every, "queue": "default", "enabled": True,
        "description": "Requeues step attempts whose worker went silent and re-sends lost messages.",
    })
