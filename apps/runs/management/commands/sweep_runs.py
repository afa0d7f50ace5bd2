"""`manage.py sweep_runs`: run the stale-attempt sweeper once (beat runs it periodically)."""

from django.core.management.base import BaseCommand

from apps.runs.engine import sweep


class Command(BaseCommand):
    help = "Requeue step attempts whose worker went silent, re-send lost messages, start queued runs."

    def handle(self, *args, **options):
        report = sweep()
        self.stdout.write(f"requeued {report.requeued}, timed out {report.timed_out}, re-sent {report.resent}, "
                          f"runs started {report.runs_started}")
