"""`manage.py validate_workflow FILE...`: check workflow YAML files, as CI or an editor would.

Prints "file:line:col: path: message (hint)" for every error, "file: ok" for a valid file, and
exits 1 when any file has an error.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.workflows.spec import load_spec


class Command(BaseCommand):
    help = "Validate workflow YAML files; exit status 1 when any has an error."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, *args, files, **options):
        failed = 0
        for name in files:
            try:
                source = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.stderr.write(f"{name}:1:1: (file): cannot read it: {exc} (Check the path and that it is UTF-8 text.)")
                failed += 1
                continue
            result = load_spec(source)
            for error in result.errors:
                self.stdout.write(f"{name}:{error.line}:{error.column}: {error.path}: {error.message} ({error.hint})")
            if result.ok:
                self.stdout.write(f"{name}: ok")
            else:
                failed += 1
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) have errors.", returncode=1)
