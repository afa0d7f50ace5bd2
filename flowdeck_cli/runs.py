"""Runs from the command line: start one (and wait for it), list, show and wait for runs, follow
a step's logs, and retry or skip a failed step (a decision on its checkpoint, as in the console,
with a reason code and a comment)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from flowdeck_cli.app import JsonOutput, PollSeconds, command, connect, pairs
from flowdeck_cli.client import Api
from flowdeck_cli.exits import Exit, Failure
from flowdeck_cli.output import between, cell, err, out, print_json, state, table, when

# The API's states (apps/runs/models.py): a step in one of these may still change.
ACTIVE_STEP_STATES = ("pending", "waiting_approval", "queued", "running")
RUN_STATES = ("queued", "running", "waiting", "paused", "succeeded", "failed", "cancelled", "compensating")
TRIGGERS = ("manual", "api", "schedule", "webhook", "file", "upstream", "backfill", "queue")
# Where --wait stops, and how the command then ends.
RUN_OUTCOMES = {
    "succeeded": Exit.OK,
    "failed": Exit.RUN_FAILED,
    "cancelled": Exit.RUN_FAILED,
    "paused": Exit.RUN_PAUSED,
}

Wait = Annotated[
    bool,
    typer.Option(
        "--wait", help="Wait until the run finishes, or pauses at a checkpoint, showing its steps as they change."
    ),
]
Timeout = Annotated[float | None, typer.Option(help="With --wait: give up after this many seconds (exit 10).")]
ReasonCode = Annotated[
    str,
    typer.Option(
        "--reason",
        help="Why (a reason code: transient, data_fixed, params_fixed, known_issue, not_needed, unrecoverable, other).",
    ),
]
Comment = Annotated[str, typer.Option("--comment", "-c", help="What you checked or changed.")]


def find_workflow(api: Api, name: str, team: str = "") -> dict:
    """A workflow by id, by name, or by TEAM/NAME when the name is in several of your teams."""
    if name.isdigit():
        return api.get(f"workflows/{name}")
    named_team, _, bare = name.rpartition("/")
    team = named_team or team
    found = [
        workflow for workflow in api.pages("workflows", limit=500, search=bare, team=team) if workflow["name"] == bare
    ]
    if not found:
        raise Failure(Exit.NOT_FOUND, f"No workflow {name!r} in {f'team {team}' if team else 'your teams'}.")
    if len(found) > 1:
        teams = ", ".join(f"{workflow['team']}/{bare}" for workflow in found)
        raise Failure(Exit.USAGE, f"{bare!r} is in several of your teams: say which, one of {teams}.")
    return found[0]


def _step_line(step: dict) -> str:
    took = between(step["started_at"], step["finished_at"]) if step["finished_at"] else ""
    error = f"  {step['error_type']}: {step['error_message']}" if step["state"] == "failed" else ""
    attempt = f"  attempt {step['attempt']}" if step["attempt"] > 1 else ""
    return f"  {cell(step['step_id'])}  {state(step['state'])}{attempt}{'  ' + took if took else ''}{cell(error)}"


def wait_for(api: Api, run_id: int, *, timeout: float | None, poll: float) -> dict:
    """The run once it has finished or paused; its steps are shown on stderr as they change."""
    deadline = time.monotonic() + timeout if timeout else None
    shown: dict[str, str] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"run {run_id}", total=None)
        while True:
            run = api.get(f"runs/{run_id}")
            for step in run["step_runs"]:
                if shown.get(step["step_id"], "pending") != step["state"]:
                    progress.console.print(_step_line(step))
                shown[step["step_id"]] = step["state"]
            progress.update(
                task,
                description=f"run {run_id} {run['state']}",
                total=len(run["step_runs"]),
                completed=sum(step["state"] not in ACTIVE_STEP_STATES for step in run["step_runs"]),
            )
            if run["state"] in RUN_OUTCOMES:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise Failure(
                    Exit.WAIT_TIMEOUT,
                    f"Run {run_id} is still {run['state']} after {timeout:g} s; `flowdeck wait {run_id}` waits again.",
                )
            time.sleep(poll)


def show_run(run: dict) -> None:
    out.print(
        f"Run {run['id']}  {cell(run['team'])}/{cell(run['workflow_name'])} version {run['version']}  "
        f"{state(run['state'])}  started by {cell(run['started_by'] or run['trigger'])} at "
        f"{when(run['created_at'])}"
    )
    rows = [
        [
            cell(step["step_id"]),
            state(step["state"]),
            str(step["attempt"]),
            between(step["started_at"], step["finished_at"]),
            cell(f"{step['error_type']}: {step['error_message']}" if step["error_type"] else ""),
        ]
        for step in run.get("step_runs", [])
    ]
    if rows:
        table(["STEP", "STATE", "ATTEMPT", "TOOK", "ERROR"], rows)
    if run["failure_summary"]:
        out.print(cell(run["failure_summary"]))


def finish(run: dict, json_output: bool) -> None:
    """Print the run, and end the command as its state says (RUN_OUTCOMES)."""
    print_json(run) if json_output else show_run(run)
    outcome = RUN_OUTCOMES.get(run["state"], Exit.OK)
    if outcome == Exit.RUN_FAILED:
        raise Failure(outcome, f"Run {run['id']} {run['state']}.")
    if outcome == Exit.RUN_PAUSED:
        failed = ", ".join(step["step_id"] for step in run["step_runs"] if step["state"] == "failed")
        raise Failure(
            outcome,
            f"Run {run['id']} is paused: {failed} failed. Decide with `flowdeck retry "
            f"{run['id']} STEP` or `flowdeck skip {run['id']} STEP`, or abort it in the console.",
        )


@command(name="run")
def start(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="The workflow's name, TEAM/NAME, or id.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input: name=text, or name:=json for numbers, booleans, lists."),
    ] = None,
    team: Annotated[str, typer.Option(help="The team whose workflow it is, when the name is in several.")] = "",
    wait: Wait = False,
    timeout: Timeout = None,
    poll: PollSeconds = 1.0,
    json_output: JsonOutput = False,
) -> None:
    """Start a run of a workflow's current version."""
    api = connect(ctx)
    found = find_workflow(api, workflow, team)
    status, run = api.post(f"workflows/{found['id']}/runs", {"inputs": pairs(inputs or [], "--input")}, accept=(400,))
    if status == 400:
        problems = run.get("inputs", run)
        raise Failure(
            Exit.VALIDATION_FAILED,
            f"The inputs do not fit {found['team']}/{found['name']}.",
            details=[f"  {name}: {message}" for name, message in problems.items()],
        )
    err.print(
        f"Started run {run['id']} of {cell(run['team'])}/{cell(run['workflow_name'])} version "
        f"{run['version']}: {api.url}/runs/{run['id']}/"
    )
    finish(wait_for(api, run["id"], timeout=timeout, poll=poll) if wait else run, json_output)


@command(name="wait")
def wait_run(
    ctx: typer.Context, run_id: int, timeout: Timeout = None, poll: PollSeconds = 1.0, json_output: JsonOutput = False
) -> None:
    """Wait for a run to finish or pause; exit as `run --wait` does."""
    finish(wait_for(connect(ctx), run_id, timeout=timeout, poll=poll), json_output)


@command()
def show(ctx: typer.Context, run_id: int, json_output: JsonOutput = False) -> None:
    """A run and its steps."""
    run = connect(ctx).get(f"runs/{run_id}")
    print_json(run) if json_output else show_run(run)


@command(name="runs")
def list_runs(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Option(help="Only this workflow's runs (name, TEAM/NAME or id).")] = "",
    run_state: Annotated[Literal[RUN_STATES] | None, typer.Option("--state")] = None,
    team: Annotated[str, typer.Option(help="Only this team's runs (its slug).")] = "",
    trigger: Annotated[Literal[TRIGGERS] | None, typer.Option()] = None,
    since: Annotated[str, typer.Option(help="Created on or after this day (YYYY-MM-DD).")] = "",
    until: Annotated[str, typer.Option(help="Created on or before this day (YYYY-MM-DD).")] = "",
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
    json_output: JsonOutput = False,
) -> None:
    """List runs, newest first."""
    api = connect(ctx)
    workflow_id = find_workflow(api, workflow, team)["id"] if workflow else ""
    runs = list(
        api.pages(
            "runs", limit, workflow=workflow_id, state=run_state, team=team, trigger=trigger, since=since, until=until
        )
    )
    if json_output:
        print_json(runs)
        return
    table(
        ["ID", "WORKFLOW", "VERSION", "STATE", "TRIGGER", "STARTED BY", "CREATED", "TOOK"],
        [
            [
                str(run["id"]),
                cell(f"{run['team']}/{run['workflow_name']}"),
                str(run["version"]),
                state(run["state"]),
                cell(run["trigger"]),
                cell(run["started_by"]),
                when(run["created_at"]),
                between(run["started_at"], run["finished_at"]),
            ]
            for run in runs
        ],
    )


@command()
def logs(
    ctx: typer.Context,
    run_id: int,
    step: Annotated[str, typer.Argument(help="The step's id in the workflow.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the step finishes.")
    ] = False,
    level: Annotated[
        Literal["info", "warning", "error"] | None, typer.Option(help="Only this level and the ones above.")
    ] = None,
    poll: PollSeconds = 1.0,
    json_output: JsonOutput = False,
) -> None:
    """Print a step's log lines (--json: one JSON object a line)."""
    api = connect(ctx)
    after = 0
    while True:
        answer = api.get(f"runs/{run_id}/steps/{step}/logs", after=after, level=level)
        for line in answer["lines"]:
            after = line["id"]
            if json_output:
                print(json.dumps(line, ensure_ascii=False), flush=True)
                continue
            fields = (
                "  " + " ".join(f"{key}={json.dumps(value)}" for key, value in line["fields"].items())
                if line["fields"]
                else ""
            )
            out.print(
                f"{when(line['at'])}  #{line['attempt']}  {state(line['level']):7}  "
                f"{cell(line['message'])}[dim]{cell(fields)}[/]"
            )
        if answer["more"]:
            continue
        if not follow or answer["state"] not in ACTIVE_STEP_STATES:
            return
        time.sleep(poll)


def _step_run(api: Api, run_id: int, step: str) -> dict:
    for step_run in api.get(f"runs/{run_id}")["step_runs"]:
        if step_run["step_id"] == step:
            return step_run
    raise Failure(Exit.NOT_FOUND, f"Run {run_id} has no step {step!r}.")


@command()
def retry(
    ctx: typer.Context,
    run_id: int,
    step: str,
    reason: ReasonCode,
    comment: Comment,
    params: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter to replace: name=text or name:=json.")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = None,
    poll: PollSeconds = 1.0,
    json_output: JsonOutput = False,
) -> None:
    """Decide a failed step's checkpoint: run it again (optionally with some parameters replaced)."""
    api = connect(ctx)
    _, run = api.post(
        f"step-runs/{_step_run(api, run_id, step)['id']}/retry",
        {"reason_code": reason, "comment": comment, "params_override": pairs(params or [], "--param") or None},
    )
    err.print(f"Retrying {step} of run {run_id}.")
    finish(wait_for(api, run_id, timeout=timeout, poll=poll) if wait else run, json_output)


@command()
def skip(
    ctx: typer.Context,
    run_id: int,
    step: str,
    reason: ReasonCode,
    comment: Comment,
    output: Annotated[str, typer.Option(help="The output (JSON) the steps after it will see.")] = "",
    wait: Wait = False,
    timeout: Timeout = None,
    poll: PollSeconds = 1.0,
    json_output: JsonOutput = False,
) -> None:
    """Decide a failed step's checkpoint: skip it and go on."""
    try:
        skipped_output = json.loads(output) if output else None
    except ValueError as error:
        raise Failure(Exit.USAGE, f"--output is not JSON: {error}.") from None
    api = connect(ctx)
    _, run = api.post(
        f"step-runs/{_step_run(api, run_id, step)['id']}/skip",
        {"reason_code": reason, "comment": comment, "output": skipped_output},
    )
    err.print(f"Skipped {step} of run {run_id}.")
    finish(wait_for(api, run_id, timeout=timeout, poll=poll) if wait else run, json_output)
