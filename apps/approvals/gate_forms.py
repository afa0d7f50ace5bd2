"""A gate's `form` and `options` on the decision form: one control per form field (text, number,
true/false, a choice, a date), one approve button per option, and a submitted form back into
JSON values. Whether the values fit the form is the spec's rule, checked by `decide_gate`.

Controls are named `form-<field>`; an option's button sends `verdict=approve:<option>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import form_so_far, gate_for

PREFIX = "form-"


@dataclass(frozen=True)
class GateField:
    name: str
    label: str
    kind: str  # "text", "integer", "number", "boolean", "choice" or "date"
    help: str
    required: bool
    text: str  # what the control shows: what was typed, else the value so far, else the default
    choices: tuple = ()
    error: str = ""

    @property
    def input_type(self) -> str:
        return {"integer": "number", "number": "number", "date": "date"}.get(self.kind, "text")

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"


@dataclass(frozen=True)
class GateOption:
    name: str

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class GateControls:
    fields: list[GateField]
    options: list[GateOption]


def gate_controls(request: ApprovalRequest, submitted: Mapping | None = None,
                  errors: Mapping[str, str] | None = None) -> GateControls:
    """The controls of `request`'s gate, showing `submitted` (after a refusal) when given."""
    gate = gate_for(request.run, request.step_run)
    form = gate.form or {}
    values = {**gate.form_defaults, **form_so_far(request.step_run)} if form else {}
    fields = []
    for name, field in (form.get("properties") or {}).items():
        kind = _kind(field)
        text = submitted.get(PREFIX + name, "") if submitted is not None else _as_text(values.get(name))
        fields.append(GateField(name=name, label=field.get("title") or name.replace("_", " ").capitalize(),
                                kind=kind, help=field.get("description", ""), required=name in form.get("required", ()),
                                text=text, choices=tuple(field.get("enum", ())), error=(errors or {}).get(name, "")))
    return GateControls(fields=fields, options=[GateOption(option) for option in gate.options])


def submitted_values(request: ApprovalRequest, submitted: Mapping) -> dict[str, Any] | None:
    """The typed values of a posted decision form (None when the gate has no form). A blank field
    is left out (the value so far or the default applies); text that is not a number stays text,
    so the form's check names the field."""
    form = gate_for(request.run, request.step_run).form
    if not form:
        return None
    values: dict[str, Any] = {}
    for name, field in form["properties"].items():
        text = (submitted.get(PREFIX + name) or "").strip()
        if text:
            values[name] = _typed(_kind(field), text, field)
    return values


def _kind(field: dict) -> str:
    if "enum" in field:
        return "choice"
    if field.get("format") == "date":
        return "date"
    return {"integer": "integer", "number": "number", "boolean": "boolean"}.get(field.get("type"), "text")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _typed(kind: str, text: str, field: dict) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    if kind == "choice":
        return next((choice for choice in field["enum"] if str(choice) == text), text)
    return text
