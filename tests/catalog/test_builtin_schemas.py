"""Every built-in step type documents itself: a valid schema, described parameters, a working example."""

import pytest
from jsonschema import Draft202012Validator

from apps.catalog.registry import all_step_types, params_errors

BUILTINS = ["approval.gate", "data.check", "echo", "fail", "flaky", "http.request", "notify", "sleep",
            "sql.execute", "sql.query", "wait"]


def _properties(schema: dict):
    for name, prop in schema.get("properties", {}).items():
        yield name, prop
        yield from _properties(prop)
        for alternative in prop.get("oneOf", []) + prop.get("anyOf", []):
            yield from _properties(alternative)
        if isinstance(prop.get("additionalProperties"), dict):
            yield from _properties(prop["additionalProperties"])


def test_every_builtin_is_registered():
    names = {t.name for t in all_step_types()}
    assert set(BUILTINS) <= names


@pytest.mark.parametrize("step", [t for t in all_step_types() if t.name in BUILTINS], ids=lambda t: t.name)
def test_builtin_is_fully_described(step):
    Draft202012Validator.check_schema(step.params_schema)
    assert step.params_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    if step.name != "echo":
        assert step.params_schema["additionalProperties"] is False
    for name, prop in _properties(step.params_schema):
        assert prop.get("description"), f"{step.name}: parameter {name} has no description"
    assert step.summary and "**Output:**" in step.doc and "**Errors:**" in step.doc
    assert step.queue == "steps" and step.timeout_seconds > 0
    assert step.example and params_errors(step, step.example) == []


def test_risky_types_are_high_risk():
    risks = {t.name: t.risk for t in all_step_types()}
    assert risks["approval.gate"] == risks["sql.execute"] == "high"
    assert risks["sql.query"] == risks["http.request"] == "low"
