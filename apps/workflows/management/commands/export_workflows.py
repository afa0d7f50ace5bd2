"""`manage.py export_workflows --team SLUG DIR`: write each workflow's current YAML to DIR/<name>.yaml.

The files are exactly the YAML of the current versions, so committing DIR to a repository and
linking it as the team's Git source gives the same workflows (the first sync finds them unchanged).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.workflows.models import Workflow


class Command(BaseCommand):
    help = "Write the current YAML of a team's workflows to a folder, one file per workflow."

    def add_arguments(self, parser):
        parser.add_argument("dir", metavar="DIR")
        parser.add_argument("--team", required=True, help="Slug of the team whose workflows to export.")

    def handle(self, *args, dir, team, **options):
        owner = Team.objects.filter(slug=team).first()
        if owner is None:
            raise CommandError(f"No team {team!r}. Teams: {', '.join(Team.objects.values_list('slug', flat=True)) or 'none yet'}.")
        folder = Path(dir)
        folder.mkdir(parents=True, exist_ok=True)
        workflows = Workflow.objects.filter(team=owner, current_version__isnull=False).select_related("current_version")
        for workflow in workflows:
            (folder / f"{workflow.name}.yaml").write_text(workflow.current_version.source, encoding="utf-8")
            self.stdout.write(f"{folder / workflow.name}.yaml: v{workflow.current_version.number}")
        self.stdout.write(f"Exported {len(workflows)} workflow(s) of {owner.slug} to {folder}.")
