from django.apps import AppConfig

from apps.beat import schedule_every

SWEEPER_TASK_NAME = "flowdeck: sweep stale step attempts"
RETENTION_TASK_NAME = "flowdeck: purge old runs"


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from django.conf import settings

        schedule_every(self, name=SWEEPER_TASK_NAME, task="flowdeck.runs.sweep_runs",
                       seconds=settings.FLOWDECK_SWEEP_INTERVAL_SECONDS,
                       description="Requeues step attempts whose worker went silent and re-sends lost messages.")
        schedule_every(self, name=RETENTION_TASK_NAME, task="flowdeck.runs.purge", seconds=24 * 3600,
                       description="Removes finished runs older than FLOWDECK_RUN_RETENTION_DAYS (0: keeps them).")
        from django.db.models.signals import post_save

        from apps.runs import signals, tracing

        signals.run_ended.connect(tracing.record_run, dispatch_uid="runs.trace_run")
        post_save.connect(tracing.record_approval_wait, sender="approvals.ApprovalRequest",
                          dispatch_uid="runs.trace_approval_wait")
        if settings.FLOWDECK_TEST_STEP_TYPES:
            from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)

