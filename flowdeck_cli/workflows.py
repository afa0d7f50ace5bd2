"""`flowdeck validate` and `flowdeck deploy`: a workflow's YAML checked by the server (the same
checks as the editor's), and saved as a new version of the workflow its `name` names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowdeck_cli.app import JsonOutput, command, connect
from flowdeck_cli.exits import Exit, Failure
from flowdeck_cli.output import out, print_json

WorkflowFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The workflow's YAML file.")
]


def error_lines(file: Path, errors: list[dict]) -> list[str]:
    """One line per error as compilers print them (file:line:column: field: message), then its fix."""
    lines = []
    for error in errors:
        where = ":".join(str(part) for part in (file, error["line"], error["column"]) if part is not None)
        lines.append(f"{where}: {error['path'] or '(file)'}: {error['message']}")
        if error.get("hint"):
            lines.append(f"    fix: {error['hint']}")
    return lines


def _refused(file: Path, errors: list[dict]) -> Failure:
    return Failure(
        Exit.VALIDATION_FAILED,
        f"{file} has {len(errors)} problem{'s' if len(errors) != 1 else ''}.",
        details=error_lines(file, errors),
    )


@command()
def validate(ctx: typer.Context, file: WorkflowFile, json_output: JsonOutput = False) -> None:
    """Check a workflow file against the server without saving it (exit 5 when it has problems)."""
    _, result = connect(ctx).post("workflows/validate", {"source": file.read_text()})
    if json_output:
        print_json(result)
    if not result["ok"]:
        raise _refused(file, result["errors"])
    if not json_output:
        out.print(f"{file}: valid ({len(result['spec']['steps'])} steps).")


@command()
def deploy(
    ctx: typer.Context,
    file: WorkflowFile,
    team: Annotated[
        str,
        typer.Option(
            help="Slug of the team that owns it (default: FLOWDECK_TEAM, the "
            "config file's team, or your one team as an author)."
        ),
    ] = "",
    message: Annotated[str, typer.Option("--message", "-m", help="What changed, for the version list.")] = "",
    json_output: JsonOutput = False,
) -> None:
    """Save a workflow file as a new version (or a new workflow); unchanged YAML saves nothing."""
    api = connect(ctx)
    team = team or api.settings.team or _only_authoring_team(api)
    status, body = api.post("workflows", {"source": file.read_text(), "team": team, "message": message}, accept=(400,))
    if status == 400 and "errors" in body:
        if json_output:
            print_json(body)
        raise _refused(file, body["errors"])
    if status == 400:
        raise Failure(Exit.VALIDATION_FAILED, "; ".join(" ".join(messages) for messages in body.values()))
    if json_output:
        print_json(body)
    elif status == 201:
        out.print(f"Deployed {team}/{body['spec']['name']} as version {body['number']}.")
    else:
        out.print(f"Unchanged: {team}/{body['spec']['name']} version {body['number']} already has this YAML.")


def _only_authoring_team(api) -> str:
    teams = sorted(
        {membership["team"] for membership in api.get("me")["memberships"] if membership["role"] == "author"}
    )
    if len(teams) != 1:
        choices = f"one of {', '.join(teams)}" if teams else "a team where you are an author"
        raise Failure(Exit.USAGE, f"Say which team owns it: --team with {choices} (or FLOWDECK_TEAM).")
    return teams[0]
