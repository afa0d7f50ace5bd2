"""The `flowdeck` command group, its global options, and how a command ends: every command is
registered with `command()`, which turns a `Failure` into its message and its exit code."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from flowdeck_cli.client import Api
from flowdeck_cli.config import load_settings
from flowdeck_cli.exits import Exit, Failure
from flowdeck_cli.output import err

app = typer.Typer(
    name="flowdeck",
    no_args_is_help=True,
    add_completion=False,
    help="Validate and deploy workflows, start and watch runs, and decide approvals on a Flowdeck console. "
    "Configure with FLOWDECK_URL and FLOWDECK_TOKEN, or ~/.config/flowdeck/config.toml.",
)

JsonOutput = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
PollSeconds = Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between two looks at the run.")]


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="The console's URL (default: FLOWDECK_URL, the config file, then http://127.0.0.1:8000)."),
    ] = None,
) -> None:
    ctx.obj = {"url": url}


def command(group: typer.Typer = app, name: str | None = None):
    """Register a command whose `Failure` prints "error: ..." on stderr and exits with its code."""

    def register(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Failure as failure:
                for line in failure.details:
                    err.print(escape(line))
                err.print(f"[red]error:[/] {escape(failure.message)}")
                raise typer.Exit(failure.code) from None

        return group.command(name)(run)

    return register


def connect(ctx: typer.Context) -> Api:
    return Api(load_settings(ctx.find_root().obj["url"]))


def pairs(given: list[str], option: str) -> dict[str, Any]:
    """`name=text` as a string and `name:=json` as JSON (HTTPie's convention), so that a value
    is never guessed: `-i period=2026-11`, `-i limit:=100`, `-i dry_run:=true`."""
    values: dict[str, Any] = {}
    for item in given:
        name, equals, value = item.partition("=")
        if not equals or not name.rstrip(":"):
            raise Failure(Exit.USAGE, f"{option} {item!r}: write name=text or name:=json.")
        if name.endswith(":"):
            name = name[:-1]
            try:
                value = json.loads(value)
            except ValueError as error:
                raise Failure(Exit.USAGE, f"{option} {item!r}: {value!r} is not JSON ({error}).") from None
        values[name] = value
    return values
