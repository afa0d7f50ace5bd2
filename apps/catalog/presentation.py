"""How a step type is shown to people: its parameter table from the JSON Schema and its example
as YAML ready to paste into a workflow (used by the pages and the API alike)."""

from dataclasses import dataclass
from typing import Any

import yaml

from apps.catalog.registry import StepType


@dataclass(frozen=True)
class ParameterRow:
    name: str
    type: str
    required: bool
    default: Any
    description: str
    has_default: bool


def _type_label(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(str(choice) for choice in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {_type_label(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of name → {_type_label(schema['additionalProperties'])}"
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives and not kind:
        return " or ".join(dict.fromkeys(_type_label(alternative) for alternative in alternatives))
    return kind or "any"


def parameter_rows(schema: dict, prefix: str = "", parent_required: bool = True) -> list[ParameterRow]:
    """One row per parameter, nested objects flattened as `source.file`; alternatives say "one of"."""
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        full_name = f"{prefix}{name}"
        is_required = parent_required and name in required
        rows.append(ParameterRow(full_name, _type_label(prop), is_required, prop.get("default"),
                                 prop.get("description", ""), "default" in prop))
        if prop.get("properties"):
            rows.extend(parameter_rows(prop, f"{full_name}.", is_required))
        for alternative in prop.get("oneOf", ()):
            if alternative.get("properties"):
                rows.extend(parameter_rows(alternative, f"{full_name}.", False))
    return rows


def example_yaml(step: StepType, step_id: str | None = None) -> str:
    """The example as one `steps:` entry."""
    entry = {"id": step_id or step.name.replace(".", "-"), "type": step.name, "with": step.example}
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=100)
