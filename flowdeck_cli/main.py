"""The `flowdeck` console script (pyproject.toml): the command group with every command."""

import typer

from flowdeck_cli import approvals, runs, workflows  # noqa: F401  (each registers its commands)
from flowdeck_cli.app import JsonOutput, app, command, connect
from flowdeck_cli.output import cell, out, print_json

app.add_typer(approvals.approvals, name="approvals")


@command()
def whoami(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Who the token belongs to, and their roles: a check that the configuration works."""
    api = connect(ctx)
    me = api.get("me")
    if json_output:
        print_json(me)
        return
    roles = ", ".join(f"{membership['role']} in {membership['team']}" for membership in me["memberships"])
    out.print(
        f"{cell(me['username'])} on {api.url}: {cell(roles) or 'no team'}"
        f"{' (platform admin)' if me['is_platform_admin'] else ''}"
    )


def main() -> None:
    app(prog_name="flowdeck")
