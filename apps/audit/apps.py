from django.apps import AppConfig

from apps.beat import schedule_every


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from apps.audit import checks  # noqa: F401  (registers the system checks)

        schedule_every(self, name="flowdeck: purge old audit events", task="flowdeck.audit.purge", seconds=24 * 3600,
                       description="Removes audit events older than FLOWDECK_AUDIT_RETENTION_DAYS (0: keeps them) "
                                   "behind a signed checkpoint, so the chain still verifies.")
