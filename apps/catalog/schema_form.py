"""A step type's flat JSON Schema (its parameters, or its output) as form fields, and a submitted
form back into typed values, with an error per field that says what to type instead.

Top-level properties become controls: text, whole number, number, true/false, a choice among
`enum`, or JSON for objects, arrays and anything without one simple type. A blank field counts as
not given. Values under secret-looking names are never put into a form (`SECRET_KEY_PATTERN`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from apps.logging import SECRET_KEY_PATTERN

SIMPLE_KINDS = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean"}
KIND_NAMES = {"integer": "a whole number, for example 30", "number": "a number, for example 2.5",
              "boolean": "true or false", "json": "JSON, for example {\"key\": \"value\"} or [1, 2]"}


@dataclass(frozen=True)
class SchemaField:
    name: str
    kind: str  # "text", "integer", "number", "boolean", "choice" or "json"
    help: str
    required: bool
    text: str  # what the control shows: the current value, or what was typed
    choices: tuple = ()
    secret: bool = False
    error: str = ""

    @property
    def input_type(self) -> str:
        return {"integer": "number", "number": "number"}.get(self.kind, "password" if self.secret else "text")

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"


def has_fields(schema: dict | None) -> bool:
    return bool(schema and schema.get("properties"))


def schema_fields(schema: dict, values: Mapping, *, submitted: Mapping | None = None, prefix: str,
                  errors: Mapping[str, str] | None = None) -> list[SchemaField]:
    """One field per top-level property, showing what was typed (`submitted`, after a refusal) or
    else the value in `values`."""
    required = set(schema.get("required", ()))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        secret = bool(SECRET_KEY_PATTERN.search(name))
        if submitted is not None:
            text = submitted.get(prefix + name, "")
        else:
            text = "" if secret else _as_text(values.get(name), kind)
        fields.append(SchemaField(name=name, kind=kind, help=prop.get("description", ""), required=name in required,
                                  text=text, choices=tuple(prop.get("enum", ())), secret=secret,
                                  error=(errors or {}).get(name, "")))
    return fields


def values_from_form(schema: dict, submitted: Mapping, *, prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values of the non-blank fields, and why each unreadable field cannot be used."""
    values, errors = {}, {}
    for name, prop in schema.get("properties", {}).items():
        text = (submitted.get(prefix + name) or "").strip()
        if not text:
            continue
        kind = _kind(prop)
        try:
            values[name] = _typed(kind, text, prop)
        except ValueError:
            errors[name] = f"{name}: type {KIND_NAMES[kind]}."
    return values, errors


def errors_by_field(schema: dict, value: Any) -> dict[str, str]:
    """Every way `value` breaks `schema`, keyed by the top-level property it concerns ("" for the
    whole value), each message naming the field."""
    found: dict[str, str] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = list(error.absolute_path)
        key = str(path[0]) if path else ""
        found.setdefault(key, f"{'.'.join(str(p) for p in path) or 'the value'}: {error.message}")
    return found


def _kind(prop: dict) -> str:
    if "enum" in prop:
        return "choice"
    declared = prop.get("type")
    if isinstance(declared, list):
        # ["string", "null"] is a string that may be left out; two real types need JSON to say which.
        real = [name for name in declared if name != "null"]
        declared = real[0] if len(real) == 1 else None
    return SIMPLE_KINDS.get(declared, "json")


def _as_text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "json" or isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _typed(kind: str, text: str, prop: dict) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError(text)
        return text == "true"
    if kind == "choice":
        # The choice as declared (a number stays a number); an unknown one is left for the schema to refuse.
        return next((choice for choice in prop["enum"] if str(choice) == text), text)
    if kind == "json":
        return json.loads(text)
    return text
