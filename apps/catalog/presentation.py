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
    form: str = ""  # for a parameter with alternative shapes: which one ("form 1 of 2")


def _type_label(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(str(choice) for choice in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        item = _type_label(schema.get("items", {}))
        return f"list of ({item})" if " or " in item else f"list of {item}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of name → {_type_label(schema['additionalProperties'])}"
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives and not kind:
        return " or ".join(dict.fromkeys(_type_label(alternative) for alternative in alternatives))
    return kind or "any"


def parameter_rows(schema: dict, prefix: str = "", parent_required: bool = True, form: str = "") -> list[ParameterRow]:
    """One row per parameter, nested objects flattened as `source.file`; alternative shapes say which form."""
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        full_name = f"{prefix}{name}"
        is_required = parent_required and name in required
        rows.append(ParameterRow(full_name, _type_label(prop), is_required, prop.get("default"),
                                 prop.get("description", ""), "default" in prop, form))
        if prop.get("properties"):
            rows.extend(parameter_rows(prop, f"{full_name}.", is_required, form))
        alternatives = prop.get("oneOf", ())
        for number, alternative in enumerate(alternatives, start=1):
            rows.extend(parameter_rows(alternative, f"{full_name}.", is_required,
                                       f"form {number} of {len(alternatives)}"))
    return rows


def example_yaml(step: StepType, step_id: str | None = None) -> str:
    """The example as one `steps:` entry."""
    entry = {"id": step_id or step.name.replace(".", "-"), "type": step.name, "with": step.example}
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=100)
