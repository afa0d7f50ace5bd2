"""`manage.py run_workflow NAME [--team SLUG] [--input k=v ...] [--wait]`: start a run from a shell.

Values are read as JSON when they parse (`--input rows=10`, `--input dry_run=true`) and as text
otherwise (`--input period=2026-11`). With --wait it prints progress (steps done / total and the
states of unfinished steps) until the run ends or pauses for a decision, and exits non-zero
unless the run succeeded.
Runs started here are started by the system (no person), like those of a scheduler.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from apps.runs.engine import InvalidInputs
from apps.runs.models import RunState, StepState, Trigger
from apps.runs.services import start_workflow_run
from apps.workflows.models import Workflow

DONE_STEP_STATES = (StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED, StepState.CANCELLED,
                    StepState.COMPENSATED)


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


class Command(BaseCommand):
    help = "Start a run of a workflow's current version, optionally waiting for it to finish."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The workflow's name.")
        parser.add_argument("--team", help="The team's slug (needed when several teams have a workflow of that name).")
        parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                            help="An input value; repeat for each input. JSON values (numbers, true) are typed.")
        parser.add_argument("--wait", action="store_true", help="Show progress until the run ends; exit 1 unless "
                                                                "it succeeded.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between progress lines (--wait).")
        parser.add_argument("--timeout", type=float, default=0, help="Give up waiting after this many seconds "
                                                                     "(0: never); exits 2.")

    def handle(self, *args, name, team, input, wait, interval, timeout, **options):
        workflow = self._workflow(name, team)
        inputs = {}
        for item in input:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--input {item!r} is not NAME=VALUE, for example --input period=2026-11.")
            inputs[key] = _value(text)
        try:
            run = start_workflow_run(None, workflow, inputs, trigger=Trigger.MANUAL)
        except InvalidInputs as invalid:
            raise CommandError("The run was not started:\n" + "\n".join(
                f"  {field}: {message}" for field, message in invalid.errors.items())) from None
        self.stdout.write(f"Started run {run.pk} of {workflow.team.slug}/{workflow.name} "
                          f"(version {run.version.number}, {run.state}).")
        if wait:
            self._follow(run, interval, timeout)

    def _workflow(self, name: str, team: str | None) -> Workflow:
        workflows = Workflow.objects.select_related("team", "current_version").filter(name=name)
        if team:
            workflows = workflows.filter(team__slug=team)
        found = list(workflows[:2])
        if not found:
            raise CommandError(f"No workflow named {name!r}{f' in team {team!r}' if team else ''}: check the name "
                               f"with the Workflows page or `manage.py load_workflow`.")
        if len(found) > 1:
            teams = ", ".join(workflows.values_list("team__slug", flat=True))
            raise CommandError(f"Several teams have a workflow named {name!r} ({teams}): add --team SLUG.")
        return found[0]

    def _follow(self, run, interval: float, timeout: float) -> None:
        started = time.monotonic()
        last = ""
        while True:
            run.refresh_from_db()
            states = list(run.step_runs.values_list("step_id", "state", "progress"))
            done = sum(state in DONE_STEP_STATES for _, state, _ in states)
            current = ", ".join(f"{step_id} {state}" + (f" {_progress(progress)}" if progress else "")
                                for step_id, state, progress in states if state not in DONE_STEP_STATES)
            line = f"[{run.state}] {done}/{len(states)} steps done" + (f"; {current}" if current else "")
            if line != last:
                self.stdout.write(line)
                last = line
            # A paused run waits for a person: the command's part is over.
            if run.is_finished or run.state == RunState.PAUSED:
                break
            if timeout and time.monotonic() - started > timeout:
                self.stderr.write(f"Still {run.state} after {timeout:g}s; stopped waiting (the run goes on).")
                raise SystemExit(2)
            time.sleep(interval)
        if run.state != RunState.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.state}: {run.failure_summary or 'see its page for details'}")
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk} succeeded."))


def _progress(progress: dict) -> str:
    if "chunks_total" in progress:
        return f"({progress.get('chunks_done', 0)}/{progress['chunks_total']} chunks, " \
               f"{progress.get('records_done', 0)} records)"
    return ""
