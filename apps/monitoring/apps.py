from django.apps import AppConfig

from apps.beat import schedule_every

EVALUATE_TASK_NAME = "flowdeck: evaluate SLAs and expiring approvals"


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from apps.monitoring import receivers  # noqa: F401  (connects the signal receivers)

        schedule_every(self, name=EVALUATE_TASK_NAME, task="flowdeck.monitoring.evaluate", seconds=60,
                       description="Marks runs at risk of missing their SLA, alerts on breaches and approvals "
                                   "about to expire, and queues where steps wait with no worker.")
