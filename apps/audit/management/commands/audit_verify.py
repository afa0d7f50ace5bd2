"""`manage.py audit_verify`: recompute the audit chain; exit 1 naming the first broken event."""

from django.core.management.base import BaseCommand, CommandError

from apps.audit.log import verify_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and name the first broken event, if any."

    def handle(self, *args, **options):
        verdict = verify_chain()
        if not verdict.ok:
            raise CommandError(
                f"Audit chain broken at event #{verdict.first_broken_sequence}: {verdict.reason}. "
                f"{verdict.events_checked} events before it verified."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verdict.events_checked} events verified."))
