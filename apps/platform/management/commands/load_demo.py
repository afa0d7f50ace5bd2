"""`manage.py load_demo`: teams, people, approver groups, the stand-ins for outside systems
(apps/platform/demo/: a local database, data files, Flowdeck's own demo services, and the
connections to them), workflows, a few weeks of run history and incident history.

Reads fixtures/demo.yaml. Idempotent: loading twice changes nothing, so `make run` can call it
every time. `--list-logins` prints who can sign in and with which roles, and loads nothing.
"""

import os
from pathlib import Path

import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts import services as accounts
from apps.accounts.models import ApproverGroup, Team, User
from apps.platform.demo import history, stand_ins
from apps.workflows.models import Workflow

FIXTURES = Path(settings.BASE_DIR) / "fixtures"


class Command(BaseCommand):
    help = "Load the demo teams, people, workflows and incident history (safe to run twice)."

    def add_arguments(self, parser):
        parser.add_argument("--list-logins", action="store_true", help="Print the demo logins and exit.")
        parser.add_argument("--no-incidents", action="store_true", help="Skip the incident history.")

    def handle(self, *args, **options):
        demo = yaml.safe_load((FIXTURES / "demo.yaml").read_text())
        password = os.environ.get("FLOWDECK_DEMO_PASSWORD", "flowdeck")
        if options["list_logins"]:
            for person in demo["people"]:
                roles = "platform admin" if person.get("platform_admin") else "; ".join(
                    f"{team}: {', '.join(r)}" for team, r in person.get("roles", {}).items())
                self.stdout.write(f"    {person['username']:<8} {roles}")
            self.stdout.write(f"  Password for each: {password}")
            return
        with transaction.atomic():
            teams = self._teams(demo["teams"])
            people = self._people(demo["people"], teams, password)
            self._groups(demo["approver_groups"], teams, people)
            stand_ins.install(demo["connections"], teams, people["admin"])
        self._workflows(demo["workflows"], teams, people)
        workflows = {workflow.name: workflow for workflow in Workflow.objects.filter(team__in=teams.values())
                     .select_related("current_version")}
        loaded = history.load(demo["history"], workflows, people)
        if loaded:
            self.stdout.write(f"Loaded {loaded} past runs.")
        if not options["no_incidents"]:
            self._incidents()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))

    def _teams(self, rows):
        teams = {}
        for row in rows:
            team = Team.objects.filter(slug=row["slug"]).first()
            teams[row["slug"]] = team or accounts.create_team(None, **row)
        return teams

    def _people(self, rows, teams, password):
        people = {}
        for row in rows:
            first, _, last = row["name"].partition(" ")
            user, created = User.objects.get_or_create(username=row["username"], defaults={
                "first_name": first, "last_name": last, "email": f"{row['username']}@example.com",
                "is_platform_admin": row.get("platform_admin", False),
                "is_staff": row.get("platform_admin", False), "is_superuser": row.get("platform_admin", False),
            })
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            for team_slug, roles in row.get("roles", {}).items():
                for role in roles:
                    accounts.grant_role(None, user=user, team=teams[team_slug], role=role)
            people[row["username"]] = user
        return people

    def _groups(self, rows, teams, people):
        for row in rows:
            if not ApproverGroup.objects.filter(slug=row["slug"]).exists():
                accounts.create_approver_group(None, slug=row["slug"], name=row["name"], team=teams[row["team"]],
                                               members=[people[m] for m in row["members"]])

    def _workflows(self, per_team, teams, people):
        from apps.workflows.services import SpecInvalid, save_version

        for team_slug, entry in per_team.items():
            for filename in entry["files"]:
                source = (FIXTURES / "workflows" / filename).read_text()
                try:
                    save_version(people[entry["author"]], team=teams[team_slug], source=source,
                                 message="Demo workflow")
                except SpecInvalid as exc:
                    raise CommandError(f"fixtures/workflows/{filename} is invalid: {exc}") from exc

    def _incidents(self):
        try:
            from apps.incidents.demo import load_demo_incidents
        except ImportError:
            return
        count = len(load_demo_incidents().imported)
        if count:
            self.stdout.write(f"Loaded {count} demo incidents; building the knowledge index (about a minute).")
            # Suggestions need the index; built once here, then kept up to date incrementally.
            call_command("build_index", stdout=self.stdout)
