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

import io
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from apps.catalog.presentation import ParameterRow, parameter_rows
from apps.catalog.registry import Risk, StepType, all_step_types, get_step_type
from apps.runs.graph import StepGraph, step_graph
from apps.workflows.plan import OnReject, RetryWhen, gate_of

# --- Graph ------------------------------------------------------------------------------------


def needs_approval(step: dict) -> bool:
    """A step waits for a person when its spec asks for approval or its type is high-risk."""
    step_type = get_step_type(step["type"])
    return bool(step.get("approval")) or (step_type is not None and step_type.risk == Risk.HIGH)


def gate_summary(step: dict) -> str:
    """Who signs off, in order, and what the gate can decide: "finance, then legal · pay_now |
    pay_next_cycle | rejected (then continue)"; "" for a step without its own `approval`."""
    if not step.get("approval"):
        return ""
    gate = gate_of(step["approval"])
    parts = [", then ".join(stage.label for stage in gate.stages)]
    if gate.options or gate.on_reject != OnReject.FAIL:
        rejected = "rejected" + ("" if gate.on_reject == OnReject.FAIL else f" (then {gate.on_reject})")
        parts.append(" | ".join([*(gate.options or ("approved",)), rejected]))
    if gate.form:
        parts.append("asks for " + ", ".join(gate.form["properties"]))
    if gate.auto_approve:
        parts.append(f"approved automatically when {gate.auto_approve}")
    return " · ".join(parts)


@dataclass(frozen=True)
class _PlannedStep:
    """Stands in for a StepRun in the run graph's layout: a step that has not run yet. Its
    second line names what the step does beyond running once: a condition, retries, a timeout,
    an approval."""

    step_type: str
    gated: bool
    options: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        return "waiting_approval" if self.gated else "pending"

    def get_state_display(self) -> str:
        return " · ".join(self.options) or self.step_type


def step_options(step: dict) -> tuple[str, ...]:
    """Short labels of a normalized step's options, as its graph box shows them."""
    options = []
    if step.get("when"):
        options.append("if …")
    if (step.get("retries") or {}).get("count"):
        options.append(f"↻{step['retries']['count']}")
    if step.get("timeout"):
        options.append(f"⏱{_short_duration(step['timeout'])}")
    if needs_approval(step):
        stages = len(gate_of(step["approval"]).stages) if step.get("approval") else 1
        options.append(f"{stages} sign-offs" if stages > 1 else "approval")
    return tuple(options)


def _short_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def version_graph(version) -> StepGraph:
    """The graph of a saved version, from its plan."""
    return spec_graph({"steps": [step.definition for step in version.plan.steps.values()]})


def spec_graph(spec: dict) -> StepGraph:
    steps = spec["steps"]
    planned = {step["id"]: _PlannedStep(step["type"], needs_approval(step), step_options(step)) for step in steps}
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
    approval_group: str | None  # who signs off (in order, for a chain): gate_summary()
    expected_seconds: float | None  # None: this step has never run in this workflow
    skip: str = ""  # why a run with the dry run's inputs would skip it; "" when it would run


@dataclass
class DryRun:
    levels: list[list[PlannedStepRow]]
    expected_seconds: float | None  # along the longest chain; None when no step has history
    steps_without_history: list[str] = field(default_factory=list)
    inputs_checked: bool = False  # conditions were evaluated against inputs
    input_errors: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> list[PlannedStepRow]:
        return [row for level in self.levels for row in level if row.skip]

    @property
    def approvals(self) -> list[PlannedStepRow]:
        return [row for level in self.levels for row in level if row.approval]


def dry_run(spec: dict, workflow=None, inputs: dict | None = None) -> DryRun:
    """What running `spec` would do, in order; durations from `workflow`'s past runs when given.

    With `inputs` (typed values, as a run would get them), each condition that reads only the
    inputs is evaluated, and the steps it would skip, and those whose needs are all skipped
    (as the engine skips them), are marked."""
    durations = _median_durations(workflow)
    skips, input_errors = _skips(spec, inputs) if inputs is not None else ({}, {})
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
            approval=needs_approval(step), approval_group=gate_summary(step) or None,
            expected_seconds=durations.get(step_id), skip=skips.get(step_id, "")))
    known = [step_id for step_id in steps if step_id in durations]
    return DryRun(levels=[rows[number] for number in sorted(rows)],
                  expected_seconds=max(finish.values(), default=0.0) if known else None,
                  steps_without_history=[step_id for step_id in steps if step_id not in durations],
                  inputs_checked=inputs is not None and not input_errors, input_errors=input_errors)


def _skips(spec: dict, provided: dict) -> tuple[dict[str, str], dict[str, str]]:
    """Why each step would be skipped with `provided` inputs, or the inputs' problems."""
    from apps.workflows.spec import validate_inputs
    from apps.workflows.spec.templating import TemplateEvaluationError, evaluate_condition, template_references

    values, errors = validate_inputs(spec, provided)
    if errors:
        return {}, {error.path.removeprefix("inputs."): error.message for error in errors}
    context = {"inputs": values, "steps": {}, "run": {"id": 0, "workflow": spec["name"], "started_at": ""}}
    skips: dict[str, str] = {}
    for step in spec["steps"]:  # in spec order, which validation keeps after every need
        if step["needs"] and all(need in skips for need in step["needs"]):
            skips[step["id"]] = "every step it needs is skipped"
        elif step.get("when") and all(ref.root == "inputs" for ref in template_references(step["when"], expression=True)):
            try:
                if not evaluate_condition(step["when"], context, step_id=step["id"]):
                    skips[step["id"]] = f"its condition is false for these inputs: {step['when']}"
            except TemplateEvaluationError as problem:
                skips[step["id"]] = f"its condition fails: {problem}"
    return skips, {}


def preview(source: str, workflow=None, inputs: dict | None = None) -> dict[str, Any]:
    """The editor's live panel for `source`: its graph and dry run, or how many problems block them."""
    from apps.workflows.spec import load_spec

    result = load_spec(source)
    if not result.ok:
        return {"ok": False, "error_count": len(result.errors)}
    return {"ok": True, "graph": spec_graph(result.spec), "dry_run": dry_run(result.spec, workflow, inputs),
            "inputs": result.spec.get("inputs", {})}


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


def options_from_form(fields: list[FormField], submitted) -> dict[str, Any]:
    """The step options and parameters from a submitted form-mode form, for `put_step`: a blank
    option is None (left out, or removed from the step being edited)."""
    params = params_from_form(fields, submitted)
    retries = submitted.get("retries", "").strip()
    if retries and not retries.isdigit():
        raise FormValueError("retries: type a whole number of retries, for example 3.")
    timeout = submitted.get("timeout", "").strip()
    if timeout and not re.fullmatch(r"[0-9]+[smhd]?", timeout):
        raise FormValueError('timeout: type seconds or a number with a unit, such as "30s", "5m" or "2h".')
    return {
        "id": submitted.get("step_id", "").strip(),
        "needs": [need for need in submitted.getlist("needs") if need] or None,
        "when": submitted.get("when", "").strip() or None,
        "with": {form_field.name: params.get(form_field.name) for form_field in fields},
        # A count alone reads as "retry any failure"; the full form when only transient ones.
        "retries": ({"count": int(retries), "when": RetryWhen.TRANSIENT}
                    if submitted.get("retry_when") == RetryWhen.TRANSIENT else int(retries)) if retries else None,
        "timeout": (int(timeout) if timeout.isdigit() else timeout) or None,
        "on_failure": submitted.get("on_failure", "") or None,
        "approval": submitted.get("approval", "").strip() or None,
    }


def form_values(written: dict | None, step: StepType | None, fields: list[FormField]) -> dict[str, Any]:
    """What form mode shows: the options of the step as `written` in the YAML, or a new step's."""
    if written is None:
        return {"step_id": default_step_id(step.name) if step else "", "needs": []}
    needs = written.get("needs") or []
    approval = written.get("approval")
    retries = written.get("retries")
    params = written.get("with") if isinstance(written.get("with"), dict) else {}
    values = {
        "step_id": written.get("id", ""), "needs": [needs] if isinstance(needs, str) else list(needs),
        "when": written.get("when") or "", "timeout": written.get("timeout") or "",
        "retries": retries.get("count", "") if isinstance(retries, dict) else "" if retries is None else retries,
        "retry_when": retries.get("when", "") if isinstance(retries, dict) else "",
        "on_failure": written.get("on_failure") or "",
        "approval": approval.get("group", "") if isinstance(approval, dict) else approval or "",
    }
    for form_field in fields:
        value = params.get(form_field.name)
        values[f"param-{form_field.name}"] = "\n".join(map(str, value)) if isinstance(value, list) else value
    return values


def submitted_values(submitted) -> dict[str, Any]:
    """A submitted form-mode form shown again with its problem."""
    return {key: submitted.get(key) for key in submitted} | {"needs": submitted.getlist("needs")}


def _number(form_field: FormField, text: str) -> int | float:
    try:
        return int(text) if form_field.kind == "integer" else float(text) if "." in text else int(text)
    except ValueError:
        whole = "a whole number" if form_field.kind == "integer" else "a number"
        raise FormValueError(f"{form_field.name}: type {whole}, for example 30.") from None


# --- Changing the YAML text in place -------------------------------------------------------------

# The step options form mode edits, in the order a new step writes them.
STEP_OPTIONS = ("id", "type", "needs", "when", "with", "retries", "timeout", "on_failure", "approval")
_STEP_ID = re.compile(r"^\s*-?\s*id:\s*['\"]?([\w.-]+)")


def existing_step_ids(source: str) -> list[str]:
    """The step ids in `source` as written, in order (also while the YAML does not parse)."""
    return [match.group(1) for line in source.splitlines() if (match := _STEP_ID.match(line))]


def unique_step_id(source: str, wanted: str) -> str:
    taken = set(existing_step_ids(source))
    candidate, number = wanted, 2
    while candidate in taken:
        candidate, number = f"{wanted}-{number}", number + 1
    return candidate


@dataclass(frozen=True)
class AddedStep:
    source: str
    first_line: int  # 1-based line of the step, for the editor to scroll to


def _round_trip(source: str):
    """The YAML loaded for a round trip, and a dumper indenting as the author does."""
    try:
        data, indent, sequence_offset = load_yaml_guess_indent(source or "{}")
    except YAMLError as problem:
        raise FormValueError(f"The YAML does not parse ({problem.problem or problem}): fix it, then use the form.") \
            from None
    # `indent` is the sequence's (dash to item); a mapping indents by what is left after the dash.
    sequence, offset = indent or 2, sequence_offset or 0
    dumper = YAML()
    dumper.width = 100
    dumper.indent(mapping=sequence - offset if sequence > offset else sequence, sequence=sequence, offset=offset)
    return dumper, data if isinstance(data, CommentedMap) else CommentedMap()


def find_step(source: str, step_id: str) -> dict | None:
    """The step `step_id` as written in `source` (None when absent or the YAML does not parse)."""
    try:
        _, data = _round_trip(source)
    except FormValueError:
        return None
    steps = data.get("steps")
    return next((s for s in steps if isinstance(s, dict) and s.get("id") == step_id), None) \
        if isinstance(steps, list) else None


def put_step(source: str, values: dict[str, Any], *, replacing: str | None = None) -> AddedStep:
    """`source` with one step added at the end of `steps:` or, with `replacing`, that step changed.

    A round trip (ruamel.yaml) keeps the author's comments, key order, quotes and indentation;
    new lists follow the style the other steps use (`needs: [a, b]` or one item per line). A value
    of None removes that option; `with` changes only the parameters it names.
    """
    dumper, data = _round_trip(source)
    steps = data.get("steps")
    if not isinstance(steps, list):
        steps = data["steps"] = CommentedSeq()
    flow = _authors_list_style(steps)
    if replacing is None:
        step, index = CommentedMap(), len(steps)
        steps.append(step)
    else:
        index = next((i for i, s in enumerate(steps) if isinstance(s, dict) and s.get("id") == replacing), None)
        if index is None:
            raise FormValueError(f"There is no step {replacing!r} in the YAML any more: pick it again.")
        step = steps[index]
    for key in STEP_OPTIONS:
        if key not in values:
            continue
        value = values[key]
        if key == "with":
            _merge_params(step, value)
        elif value is None:
            step.pop(key, None)
        elif key == "needs":
            step[key] = _styled_needs(value, flow)
        elif key == "approval" and isinstance(step.get("approval"), dict):
            step["approval"]["group"] = value  # the full form keeps its quorum, timeout and escalation
        elif key == "retries" and isinstance(step.get("retries"), dict):
            # The full form keeps its backoff and delays; `when` follows the form's checkbox.
            count, when = (value["count"], value["when"]) if isinstance(value, dict) else (value, None)
            step["retries"]["count"] = count
            if when:
                step["retries"]["when"] = when
            else:
                step["retries"].pop("when", None)
        else:
            step[key] = value
    text = io.StringIO()
    dumper.dump(data, text)
    written = text.getvalue()
    _, reread = _round_trip(written)
    return AddedStep(source=written, first_line=reread["steps"][index].lc.line + 1)


def _authors_list_style(steps: list) -> dict[str, bool]:
    """How the author writes `needs`: in brackets (flow) or not, and a single need as a bare string."""
    written = [s.get("needs") for s in steps if isinstance(s, dict) and s.get("needs") is not None]
    lists = [n for n in written if isinstance(n, CommentedSeq)]
    return {"flow": any(n.fa.flow_style() for n in lists) or not lists,
            "bare_single": any(isinstance(n, str) for n in written) or not written}


def _styled_needs(needs: list[str], style: dict[str, bool]):
    if len(needs) == 1 and style["bare_single"]:
        return needs[0]
    styled = CommentedSeq(needs)
    if style["flow"]:
        styled.fa.set_flow_style()
    else:
        styled.fa.set_block_style()
    return styled


def _merge_params(step: CommentedMap, params: dict[str, Any] | None) -> None:
    current = step.get("with")
    if not isinstance(current, dict):
        current = CommentedMap()
    for name, value in (params or {}).items():
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    if current:
        step["with"] = current
    else:
        step.pop("with", None)
