"""How results are shown: Rich tables for people, the API's JSON for scripts (--json), and
messages on stderr so that stdout stays parseable."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "paused": "red",
    "waiting": "yellow",
    "waiting_approval": "yellow",
    "running": "blue",
    "queued": "cyan",
    "compensating": "magenta",
    "pending": "dim",
    "skipped": "dim",
    "compensated": "magenta",
    "decided": "green",
    "approved": "green",
    "rejected": "red",
    "expired": "yellow",
    "withdrawn": "dim",
}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def state(text: str) -> str:
    style = STATE_STYLES.get(text)
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def when(moment: str | None) -> str:
    """An API timestamp in the reader's local time, to the second."""
    return datetime.fromisoformat(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def seconds(value: float) -> str:
    """A duration as people read it: "4.2 s", "3 min 12 s", "2 h 5 min"."""
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


def between(start: str | None, end: str | None) -> str:
    if not start:
        return ""
    finish = datetime.fromisoformat(end) if end else datetime.now().astimezone()
    return seconds((finish - datetime.fromisoformat(start)).total_seconds())


def table(columns: list[str], rows: list[list[str]], *, title: str | None = None) -> None:
    """Cells are Rich markup: escape text that comes from the server (`cell`)."""
    shown = Table(*columns, title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for row in rows:
        shown.add_row(*row)
    out.print(shown)


def cell(value: Any) -> str:
    return "" if value is None else escape(str(value))
