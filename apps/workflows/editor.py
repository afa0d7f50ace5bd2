"""What the workflow editor shows beside the YAML, computed from a spec without running it.

- `spec_graph(spec)` (`version_graph(version)` for a saved one, from its plan): the steps as the
  run page's grandalf layout (apps.runs.graph), each box
  marked by whether it needs a person's approval;
- `dry_run(spec, workflow)`: the order the steps would run in (topological levels: one level
  runs in parallel), which steps wait for approval, and the expected duration from the
  workflow's past runs (median step durations, along the longest chain);
- `catalog_entries()` and `step_form_fields(step_type)`: the catalog panel and the form mode,
  both ending in `append_step(source, entry)`, which adds one step to the YAML text as written
  (comments and layout kept) so the author sees exactly what was added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from apps.catalog.presentation import ParameterRow, parameter_rows
from apps.catalog.registry import Risk, StepType, all_step_types, get_step_type
from apps.runs.graph import StepGraph, step_graph

# --- Graph ------------------------------------------------------------------------------------


def needs_approval(step: dict) -> bool:
    """A step waits for a person when its spec asks for approval or its type is high-risk."""
    step_type = get_step_type(step["type"])
    return bool(step.get("approval")) or (step_type is not None and step_type.risk == Risk.HIGH)


@dataclass(frozen=True)
class _PlannedStep:
    """Stands in for a StepRun in the run graph's layout: a step that has not run yet."""

    step_type: str
    gated: bool

    @property
    def state(self) -> str:
        return "waiting_approval" if self.gated else "pending"

    def get_state_display(self) -> str:
        return "needs approval" if self.gated else self.step_type


def version_graph(version) -> StepGraph:
    """The graph of a saved version, from its plan."""
    return spec_graph({"steps": [step.definition for step in version.plan.steps.values()]})


def spec_graph(spec: dict) -> StepGraph:
    steps = spec["steps"]
    planned = {step["id"]: _PlannedStep(step["type"], needs_approval(step)) for step in steps}
    return step_graph([(step["id"], tuple(step["needs"])) for step in steps], planned)


# --- Dry run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStepRow:
    step_id: str
    step_type: str
    level: int
    needs: list[str]
    condition: str | None
    approval: bool
    approval_group: str | None
    expected_seconds: float | None  # None: this step has never run in this workflow


@dataclass
class DryRun:
    levels: list[list[PlannedStepRow]]
    expected_seconds: float | None  # along the longest chain; None when no step has history
    steps_without_history: list[str] = field(default_factory=list)

    @property
    def approvals(self) -> list[PlannedStepRow]:
        return [row for level in self.levels for row in level if row.approval]


def dry_run(spec: dict, workflow=None) -> DryRun:
    """What running `spec` would do, in order; durations from `workflow`'s past runs when given."""
    durations = _median_durations(workflow)
    steps = {step["id"]: step for step in spec["steps"]}
    level: dict[str, int] = {}
    finish: dict[str, float] = {}

    def place(step_id: str) -> int:
        # The spec was validated: every need exists and there is no cycle.
        if step_id not in level:
            needs = steps[step_id]["needs"]
            level[step_id] = 1 + max((place(need) for need in needs), default=0)
            finish[step_id] = max((finish[need] for need in needs), default=0.0) + durations.get(step_id, 0.0)
        return level[step_id]

    rows: dict[int, list[PlannedStepRow]] = {}
    for step_id, step in steps.items():
        number = place(step_id)
        rows.setdefault(number, []).append(PlannedStepRow(
            step_id=step_id, step_type=step["type"], level=number, needs=step["needs"], condition=step.get("when"),
            approval=needs_approval(step), approval_group=(step.get("approval") or {}).get("group"),
            expected_seconds=durations.get(step_id)))
    known = [step_id for step_id in steps if step_id in durations]
    return DryRun(levels=[rows[number] for number in sorted(rows)],
                  expected_seconds=max(finish.values(), default=0.0) if known else None,
                  steps_without_history=[step_id for step_id in steps if step_id not in durations])


def preview(source: str, workflow=None) -> dict[str, Any]:
    """The editor's live panel for `source`: its graph and dry run, or how many problems block them."""
    from apps.workflows.spec import load_spec

    result = load_spec(source)
    if not result.ok:
        return {"ok": False, "error_count": len(result.errors)}
    return {"ok": True, "graph": spec_graph(result.spec), "dry_run": dry_run(result.spec, workflow)}


def _median_durations(workflow) -> dict[str, float]:
    if workflow is None or workflow.pk is None:
        return {}
    from apps.monitoring.services import step_history

    return step_history(workflow.pk).duration


# --- Catalog panel and form mode ---------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    step: StepType
    parameters: list[ParameterRow]
    snippet: str


def catalog_entries() -> list[CatalogEntry]:
    return [CatalogEntry(step, parameter_rows(step.params_schema), entry_yaml(example_entry(step)))
            for step in all_step_types()]


def example_entry(step: StepType, step_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": step_id or default_step_id(step.name), "type": step.name}
    if step.example:
        entry["with"] = step.example
    return entry


def default_step_id(type_name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", type_name.lower()).strip("-")


def entry_yaml(entry: dict[str, Any]) -> str:
    """One `steps:` entry as YAML, at column 0."""
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=100)


@dataclass(frozen=True)
class FormField:
    """One parameter of a step type as a form control (form mode)."""

    name: str
    kind: str  # "text", "number", "integer", "boolean", "choice" or "lines"
    label: str
    help: str
    required: bool
    choices: tuple = ()
    default: Any = None


def step_form_fields(step: StepType) -> tuple[list[FormField], list[str]]:
    """The form for a step type's top-level parameters, and the names of those too complex for a
    form (objects, mixed shapes), which the author writes in YAML afterwards."""
    schema = step.params_schema
    required = set(schema.get("required", ()))
    fields, yaml_only = [], []
    for name, prop in schema.get("properties", {}).items():
        kind = _field_kind(prop)
        if kind is None:
            yaml_only.append(name)
            continue
        fields.append(FormField(name=name, kind=kind, label=name, help=prop.get("description", ""),
                                required=name in required, choices=tuple(prop.get("enum", ())),
                                default=prop.get("default")))
    return fields, yaml_only


def _field_kind(prop: dict) -> str | None:
    if "enum" in prop:
        return "choice"
    kind = prop.get("type")
    if kind == "array" and prop.get("items", {}).get("type") == "string":
        return "lines"
    return {"string": "text", "number": "number", "integer": "integer", "boolean": "boolean"}.get(kind)


class FormValueError(ValueError):
    """A form-mode value cannot be used; the message names the field and what to type instead."""


def params_from_form(fields: list[FormField], submitted) -> dict[str, Any]:
    """The `with:` mapping from a submitted form-mode form; blank fields are left out."""
    params: dict[str, Any] = {}
    for form_field in fields:
        key = f"param-{form_field.name}"
        if form_field.kind == "boolean":
            if key in submitted:
                params[form_field.name] = True
            continue
        text = submitted.get(key, "").strip()
        if not text:
            continue
        if form_field.kind == "lines":
            params[form_field.name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif form_field.kind in ("number", "integer"):
            params[form_field.name] = _number(form_field, text)
        elif form_field.kind == "choice":
            params[form_field.name] = next((c for c in form_field.choices if str(c) == text), text)
        else:
            params[form_field.name] = text
    return params


def _number(form_field: FormField, text: str) -> int | float:
    try:
        return int(text) if form_field.kind == "integer" else float(text) if "." in text else int(text)
    except ValueError:
        whole = "a whole number" if form_field.kind == "integer" else "a number"
        raise FormValueError(f"{form_field.name}: type {whole}, for example 30.") from None


# --- Adding a step to the YAML text ----------------------------------------------------------------

_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")
_STEP_ID = re.compile(r"^\s*-?\s*id:\s*['\"]?([\w.-]+)")


def existing_step_ids(source: str) -> set[str]:
    return {match.group(1) for line in source.splitlines() if (match := _STEP_ID.match(line))}


def unique_step_id(source: str, wanted: str) -> str:
    taken = existing_step_ids(source)
    candidate, number = wanted, 2
    while candidate in taken:
        candidate, number = f"{wanted}-{number}", number + 1
    return candidate


@dataclass(frozen=True)
class AddedStep:
    source: str
    first_line: int  # 1-based line of the new entry, for the editor to scroll to


def append_step(source: str, entry: dict[str, Any]) -> AddedStep:
    """`source` with `entry` added as the last item of its top-level `steps:` list (created when
    missing), indented like the items already there."""
    lines = source.rstrip("\n").splitlines() if source.strip() else []
    start = next((i for i, line in enumerate(lines) if re.match(r"^steps\s*:", line)), None)
    if start is None:
        lines += ["steps:"]
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL_KEY.match(lines[end]):
        end += 1
    # Back over trailing blank lines and comments so the new step sits right after the last one.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    indent = next((len(line) - len(line.lstrip()) for line in lines[start + 1:end] if line.lstrip().startswith("- ")),
                  2)
    snippet = [" " * indent + line for line in entry_yaml(entry).rstrip("\n").splitlines()]
    if lines[start].split(":", 1)[1].strip() == "[]":
        lines[start] = "steps:"
    new_lines = lines[:end] + snippet + lines[end:]
    return AddedStep(source="\n".join(new_lines) + "\n", first_line=end + 1)
