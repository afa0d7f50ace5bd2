"""What the spec language reports back: located errors and the result of loading a spec.

Every error names where it is (line and column, 1-based, and a path such as
"steps[2].retries.count", with 0-based list indexes), what is wrong, and one sentence saying
how to fix it. Errors about run inputs (not about the YAML) carry no line or column.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

Path = tuple  # keys (str) and list indexes (int), from the document root


def format_path(path: Path) -> str:
    """("steps", 2, "retries", "count") -> "steps[2].retries.count"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(document)"


@dataclass(frozen=True)
class SpecError:
    line: int | None
    column: int | None
    path: str
    message: str
    hint: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}: " if self.line is not None else ""
        return f"{where}{self.path}: {self.message} ({self.hint})"


@dataclass
class SpecResult:
    spec: dict[str, Any] | None = None
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.spec is not None
