"""`manage.py import_incidents FILE`: bring incident history from another tool (JSONL or CSV)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.incidents.importer import import_history


class Command(BaseCommand):
    help = "Import past incidents from JSONL or CSV; bad rows are reported by line number and skipped."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        if not file.is_file():
            raise CommandError(f"{file} does not exist; pass the path of a .jsonl or .csv file.")
        report = import_history(file)
        for line, message in report.errors:
            self.stderr.write(f"{file.name}:{line}: skipped: {message}")
        self.stdout.write(self.style.SUCCESS(
            f"Imported {len(report.imported)} incidents, skipped {len(report.errors)} bad rows"
            f" and {report.skipped_duplicates} already imported."))
