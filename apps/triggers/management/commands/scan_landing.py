from django.core.management.base import BaseCommand

from apps.triggers.landing import landing_root, scan_landing


class Command(BaseCommand):
    help = "Scan the landing root once and start runs for files that are complete (see `file` triggers)."

    def handle(self, *args, **options):
        report = scan_landing()
        self.stdout.write(f"{landing_root()}: {report.seen} matching file(s), {report.incomplete} not complete yet, "
                          f"{report.started} run(s) started.")
