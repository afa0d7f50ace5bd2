"""`manage.py expire_approvals`: what the periodic task does, run once by hand or from cron."""

from django.core.management.base import BaseCommand

from apps.approvals import services


class Command(BaseCommand):
    help = "Escalate or reject approval requests past their timeout, and send expiry reminders."

    def handle(self, *args, **options):
        report = services.expire_due()
        self.stdout.write(f"escalated {report.escalated}, expired {report.expired}, reminded {report.warned}, "
                          f"released waived gates {report.released}")
