from django.core.management.base import BaseCommand

from apps.monitoring import services


class Command(BaseCommand):
    help = "Evaluate the SLA of every unfinished run now and alert on approvals about to expire."

    def handle(self, *args, **options):
        evaluated = services.evaluate_open_slas()
        warned = services.alert_expiring_approvals()
        self.stdout.write(f"{evaluated} run(s) with an SLA evaluated; {warned} new expiring-approval alert(s).")
