from django.apps import AppConfig

from apps.beat import schedule_every

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

        for name, (task, seconds, description) in PERIODIC_TASKS.items():
            schedule_every(self, name=name, task=task, seconds=seconds, description=description)
