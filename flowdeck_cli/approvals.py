"""`flowdeck approvals`: the inbox (what you may decide), the history, and a decision on a gate
(approve, reject) or a checkpoint (retry, skip, compensate, abort), through the same API and
rules as the console's inbox."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from flowdeck_cli.app import JsonOutput, command, connect
from flowdeck_cli.output import cell, out, print_json, state, table, when

approvals = typer.Typer(no_args_is_help=True, help="List and decide approval gates and failure checkpoints.")
VERDICTS = ("approve", "reject", "retry", "skip", "compensate", "abort")


@command(approvals, "list")
def list_requests(
    ctx: typer.Context,
    history: Annotated[bool, typer.Option("--history", help="Closed requests instead of your inbox.")] = False,
    kind: Annotated[Literal["gate", "checkpoint"] | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json_output: JsonOutput = False,
) -> None:
    """Your inbox: the requests you may decide, the most urgent first."""
    requests = list(connect(ctx).pages("approvals", limit, scope="history" if history else "", kind=kind))
    if json_output:
        print_json(requests)
        return
    table(
        ["ID", "KIND", "STATE", "WORKFLOW", "RUN", "STEP", "GROUP", "DUE", "ERROR"],
        [
            [
                str(request["id"]),
                cell(request["kind"]),
                state(request["state"]),
                cell(f"{request['team']}/{request['workflow']}"),
                str(request["run"]),
                cell(request["step"]),
                cell(request["group"]),
                when(request["due_at"] or request["expires_at"]),
                cell(f"{request['error_type']}: {request['error_message']}" if request["error_type"] else ""),
            ]
            for request in requests
        ],
    )


@command(approvals, "decide")
def decide(
    ctx: typer.Context,
    request_id: int,
    verdict: Annotated[
        Literal[VERDICTS],
        typer.Argument(help="approve or reject a gate; retry, skip, compensate or abort a checkpoint."),
    ],
    comment: Annotated[
        str, typer.Option("--comment", "-c", help="Why (needed to reject, and for every checkpoint decision).")
    ] = "",
    reason: Annotated[
        str, typer.Option("--reason", help="A checkpoint's reason code (see `flowdeck retry --help`).")
    ] = "",
    json_output: JsonOutput = False,
) -> None:
    """Decide one request."""
    _, request = connect(ctx).post(
        f"approvals/{request_id}/decide", {"verdict": verdict, "comment": comment, "reason_code": reason}
    )
    if json_output:
        print_json(request)
    else:
        out.print(
            f"Request {request['id']} ({request['kind']} of {cell(request['step'])} in run {request['run']}): "
            f"{state(request['state'])}{' → ' + cell(request['outcome']) if request['outcome'] else ''}."
        )
