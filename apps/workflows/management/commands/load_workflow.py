"""`manage.py load_workflow FILE --team SLUG [--user USERNAME] [--message M]`: save YAML as a version.

Creates the workflow on first load, adds a version when the file changed, and does nothing
when it did not. Without --user the change is recorded as made by the system, with full rights.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team, User
from apps.workflows import services


class Command(BaseCommand):
    help = "Create a workflow from a YAML file, or add a version when the file changed."

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("--team", required=True, help="Slug of the team that owns the workflow.")
        parser.add_argument("--user", help="Username recorded as the author (needs the author role in the team).")
        parser.add_argument("--message", default="", help="What changed, for the version list.")

    def handle(self, *args, file, team, user, message, **options):
        try:
            source = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        owner = Team.objects.filter(slug=team).first()
        if owner is None:
            raise CommandError(f"No team {team!r}. Teams: {', '.join(Team.objects.values_list('slug', flat=True)) or 'none yet'}.")
        actor = None
        if user:
            actor = User.objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user {user!r}.")
        try:
            version = services.save_version(actor, team=owner, source=source, message=message)
        except services.SpecInvalid as invalid:
            for error in invalid.errors:
                self.stderr.write(f"{file}:{error.line}:{error.column}: {error.path}: {error.message} ({error.hint})")
            raise CommandError(f"{file} was not loaded: fix the {len(invalid.errors)} error(s) above.") from None
        except services.NotAnAuthor as denied:
            raise CommandError(str(denied)) from None
        self.stdout.write(f"{file}: {version.workflow.team.slug}/{version.workflow.name} is at version {version.number}")
