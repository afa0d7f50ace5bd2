"""A workflow's declared inputs read from an HTML form (fields named `input-<name>`): the start
page and the editor's dry run type their values the same way before `validate_inputs` checks them."""

import json
from typing import Any

FORM_TYPE_NAMES = {"integer": "a whole number", "number": "a number", "object": "a JSON object",
                   "array": "a JSON list"}


def inputs_from_form(declared: dict[str, dict], form) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values from the form's text, and the fields that could not be read; an empty field
    counts as not given (its default applies, or it is reported missing)."""
    provided, errors = {}, {}
    for name, definition in declared.items():
        text = form.get(f"input-{name}", "").strip()
        kind = definition["type"]
        if text == "":
            continue
        try:
            if kind == "integer":
                provided[name] = int(text)
            elif kind == "number":
                provided[name] = float(text)
            elif kind == "boolean":
                provided[name] = text == "true"
            elif kind in ("object", "array"):
                provided[name] = json.loads(text)
            else:
                provided[name] = text
        except ValueError:
            errors[name] = f"`{name}` must be {FORM_TYPE_NAMES[kind]}: change the value."
    return provided, errors
