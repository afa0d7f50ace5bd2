"""Templated parameters and `when` conditions, evaluated in Jinja2's immutable sandbox.

A step's parameters may hold `{{ ... }}` templates and its `when` is a bare expression. Both see
one context: `inputs` (the run's inputs), `steps.<id>.output` (outputs of finished upstream
steps) and `run` (id, workflow, started_at). Nothing else is reachable and nothing can be
changed: no `eval`, no attribute access to Python internals.

A parameter that is exactly one `{{ expression }}` keeps the expression's type (a number stays
a number, a list a list); any other template renders to a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

CONTEXT_ROOTS = ("inputs", "steps", "run")
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


# Steps render the same few templates over and over: compile each source once per process.
@lru_cache(maxsize=2048)
def _expression(source: str):
    return _env.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=2048)
def _template(source: str):
    return _env.from_string(source)


class TemplateEvaluationError(Exception):
    """A template or condition could not be evaluated at run time (names what and why)."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render_params(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside `value` (dicts and lists are walked) against `context`."""
    if isinstance(value, dict):
        return {key: render_params(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_params(item, context) for item in value]
    if not is_template(value):
        return value
    whole = _WHOLE_EXPRESSION.match(value)
    try:
        if whole and "{{" not in whole.group("expr") and "}}" not in whole.group("expr"):
            return _defined(_expression(whole.group("expr"))(**context))
        return _template(value).render(**context)
    except TemplateError as exc:
        raise TemplateEvaluationError(f"template {value!r} failed: {exc}") from exc


def evaluate_condition(expression: str, context: dict[str, Any]) -> bool:
    """The truth of a `when` expression such as `inputs.amount > 100 and steps.check.output.ok`."""
    try:
        return bool(_defined(_expression(expression)(**context)))
    except TemplateError as exc:
        raise TemplateEvaluationError(f"condition {expression!r} failed: {exc}") from exc


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


@dataclass(frozen=True)
class Reference:
    """A name a template reads: ("inputs", "period") or ("steps", "extract")."""

    root: str
    name: str | None


def template_references(source: str, *, expression: bool = False) -> list[Reference]:
    """The context names `source` reads. Raises jinja2.TemplateSyntaxError on bad syntax.

    Used by the validator to refuse references to unknown inputs and steps before anything runs.
    """
    if expression:
        tree = _env.parse("{{ " + source + " }}")
    else:
        tree = _env.parse(source)
    found: list[Reference] = []
    local_names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name not in local_names:
                found.append(Reference(node.name, None))
            continue
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.ctx == "load":
            key = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
            found.append(Reference(inner.name, key))
    # A bare root counted only when nothing more specific names it.
    specific = {r.root for r in found if r.name is not None}
    unique: list[Reference] = []
    for ref in found:
        if (ref.name is None and ref.root in specific) or ref in unique:
            continue
        unique.append(ref)
    return unique


def _constant(node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def template_sources(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Every templated string inside `value`, with its path (for locating errors)."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in template_sources(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in template_sources(item, (*path, index))]
    return [(path, value)] if is_template(value) else []
