"""Templated parameters and `when` conditions, evaluated in Jinja2's immutable sandbox.

A step's parameters may hold `{{ ... }}` templates and its `when` is a bare expression. Both see
one context: `inputs` (the run's inputs), `steps.<id>.output` (outputs of finished upstream
steps, with what a gate's approver filled in), `steps.<id>.decision` (a gate's "approved",
"rejected" or named option) and `run` (id, workflow, started_at). Nothing else is reachable and nothing can be
changed: no `eval`, no attribute access to Python internals.

A parameter that is exactly one `{{ expression }}` keeps the expression's type (a number stays
a number, a list a list); any other template renders to a string.

Each template runs within limits of size, loop iterations and time (sandbox.py): at render time
always, and at validation (`limit_problems`) for the parts that read nothing from the context.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.environment import TemplateExpression

from apps.workflows.spec.errors import Path, format_path
from apps.workflows.spec.sandbox import HINTS, BoundedSandbox, Limits, TemplateLimitError, run_bounded, size_of

CONTEXT_ROOTS = ("inputs", "steps", "run")
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)
_EXCERPT_CHARS = 80

_env = BoundedSandbox(undefined=StrictUndefined, autoescape=False)


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


def render_params(value: Any, context: dict[str, Any], *, step_id: str | None = None) -> Any:
    """Render every template inside `value` (dicts and lists are walked) against `context`.

    Each template has its own size and loop limits; together they have the size and time limits
    too. Errors name the field, such as "params.message", after "step `<step_id>`, " when given.
    """
    return _render(value, context, ("params",), _Evaluation(step_id))


def evaluate_condition(expression: str, context: dict[str, Any], *, step_id: str | None = None) -> bool:
    """The truth of a `when` expression such as `inputs.amount > 100 and steps.check.output.ok`."""
    return _Evaluation(step_id).run(lambda budget: bool(_defined(_expression(expression)(**context))),
                                    expression, ("when",))


def _render(value: Any, context: dict, path: Path, evaluation: _Evaluation) -> Any:
    if isinstance(value, dict):
        return {key: _render(item, context, (*path, key), evaluation) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context, (*path, index), evaluation) for index, item in enumerate(value)]
    if not is_template(value):
        return value
    whole = _WHOLE_EXPRESSION.match(value)
    if whole and "{{" not in whole.group("expr") and "}}" not in whole.group("expr"):
        expression = whole.group("expr")
        result = evaluation.run(lambda budget: _defined(_expression(expression)(**context)), value, path)
    else:
        result = evaluation.run(lambda budget: _rendered(_template(value), context, budget), value, path)
    evaluation.add(result, path)
    return result


def _rendered(template, context: dict, budget) -> str:
    text = template.render(**context)
    budget.allow(len(text), "its text")
    return text


class _Evaluation:
    """The templates of one step (or one condition): they share a deadline and, together, the size limit."""

    def __init__(self, step_id: str | None):
        self.step_id, self.limits = step_id, Limits.from_settings()
        self.deadline = time.monotonic() + self.limits.max_seconds
        self.built = 0

    def run(self, function, source: str, path: Path) -> Any:
        """`function` run within the limits; whatever it raises becomes a TemplateEvaluationError naming
        the step and field. Any exception counts: `1 / 0` or `'a' + 1` is the template's mistake."""
        try:
            return run_bounded(function, self.limits, self.deadline)
        except TemplateLimitError as exc:
            raise TemplateEvaluationError(f"{self.where(path)}: the template {exc}. {HINTS[exc.setting]}") from exc
        except Exception as exc:
            excerpt = source if len(source) <= _EXCERPT_CHARS else source[:_EXCERPT_CHARS] + "..."
            raise TemplateEvaluationError(f"{self.where(path)}: {excerpt!r} failed: {type(exc).__name__}: "
                                          f"{exc}") from exc

    def add(self, result: Any, path: Path) -> None:
        # Each template within the limit could still, a thousand fields over, build a gigabyte.
        self.built += size_of(result, self.limits.max_bytes)
        if self.built > self.limits.max_bytes:
            raise TemplateEvaluationError(
                f"{self.where(path)}: the step's templates together build more than {self.limits.max_bytes:,} "
                f"characters, the limit (FLOWDECK_TEMPLATE_MAX_BYTES). {HINTS['FLOWDECK_TEMPLATE_MAX_BYTES']}")

    def where(self, path: Path) -> str:
        return (f"step `{self.step_id}`, " if self.step_id else "") + format_path(path)


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


def decision_reads(source: str, *, expression: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """(step id, the texts it is compared with) of each `steps.<id>.decision` that `source` reads, so
    the validator can name a decision the gate never takes. Raises jinja2.TemplateSyntaxError."""
    tree = _env.parse("{{ " + source + " }}" if expression else source)
    compared: dict[int, list[str]] = {}
    for compare in tree.find_all(nodes.Compare):
        operands = [compare.expr, *(operand.expr for operand in compare.ops)]
        for operand in operands:
            if _decision_step(operand) is not None:
                compared[id(operand)] = [text for other in operands for text in _texts(other)]
    return [(step_id, tuple(compared.get(id(node), ()))) for node in tree.find_all((nodes.Getattr, nodes.Getitem))
            if (step_id := _decision_step(node)) is not None]


def _decision_step(node) -> str | None:
    """`x` when `node` reads `steps.x.decision` (or `steps["x"]["decision"]`)."""
    named = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg) \
        if isinstance(node, nodes.Getitem) else None
    inner = getattr(node, "node", None)
    if named != "decision" or not isinstance(inner, (nodes.Getattr, nodes.Getitem)):
        return None
    if not (isinstance(inner.node, nodes.Name) and inner.node.name == "steps"):
        return None
    return inner.attr if isinstance(inner, nodes.Getattr) else _constant(inner.arg)


def _texts(node) -> list[str]:
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return [text for item in node.items for text in _texts(item)]
    return [node.value] if isinstance(node, nodes.Const) and isinstance(node.value, str) else []


def expression_values(expression: str, context: dict[str, Any]) -> dict[str, Any]:
    """The values a condition read, by name ("inputs.amount": 500): what an audit shows next to it."""
    values: dict[str, Any] = {}
    for reference in template_references(expression, expression=True):
        scope = context.get(reference.root)
        if isinstance(scope, dict) and reference.name is not None:
            values[f"{reference.root}.{reference.name}"] = scope.get(reference.name)
    return values


def _constant(node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def template_sources(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Every templated string inside `value`, with its path (for locating errors)."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in template_sources(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in template_sources(item, (*path, index))]
    return [(path, value)] if is_template(value) else []


# --- Limits known before anything runs ---------------------------------------------------------

# Nodes an expression may hold and still mean the same whatever the context.
_CONSTANT_NODES = (nodes.Literal, nodes.Pair, nodes.Keyword, nodes.BinExpr, nodes.UnaryExpr, nodes.Concat,
                   nodes.Compare, nodes.Operand, nodes.CondExpr, nodes.Filter, nodes.Test, nodes.Call,
                   nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Name)
# Operations that can build more than they read; only expressions holding one are worth evaluating.
_AMPLIFIERS = (nodes.Mul, nodes.Pow, nodes.Mod, nodes.Add, nodes.Concat, nodes.Call, nodes.Filter)


@dataclass(frozen=True)
class LimitProblem:
    line: int  # within the template, 1-based
    message: str  # completes "the template ..."
    hint: str


def limit_problems(source: str, *, expression: bool = False) -> list[LimitProblem]:
    """The limits `source` is sure to exceed whatever it reads: each part that reads nothing from the
    context is evaluated within the limits, and loops over such parts are multiplied out. Raises
    jinja2.TemplateSyntaxError on bad syntax.
    """
    tree = _env.parse("{{ " + source + " }}" if expression else source)
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    limits = Limits.from_settings()
    deadline = time.monotonic() + limits.max_seconds
    problems: list[LimitProblem] = []

    def evaluate(expr: nodes.Expr) -> Any:
        try:
            return run_bounded(lambda budget: _constant_expression(expr)(), limits, deadline)
        except TemplateLimitError as exc:
            problems.append(LimitProblem(expr.lineno, str(exc), HINTS[exc.setting]))
            return None
        except Exception:
            return None  # `1 / 0` and the like fail the step when it runs, with the context in the message

    def visit(node: nodes.Node, iterations: int) -> None:
        if isinstance(node, nodes.For):
            length = None
            if _is_constant(node.iter, stored):
                items = evaluate(node.iter)
                length = len(items) if hasattr(items, "__len__") else None
            else:
                visit(node.iter, iterations)
            if length is not None and iterations * length > limits.max_iterations:
                problems.append(LimitProblem(node.lineno, f"loops {iterations * length:,} times, over the limit of "
                                             f"{limits.max_iterations:,} (FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS)",
                                             HINTS["FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS"]))
                iterations = 1  # reported once, not again for every loop inside
            for child in [*node.body, *node.else_, *([node.test] if node.test else [])]:
                visit(child, iterations * (length or 1))
            return
        if isinstance(node, nodes.Expr) and _is_constant(node, stored):
            if any(True for _ in node.find_all(_AMPLIFIERS)) or isinstance(node, _AMPLIFIERS):
                evaluate(node)
            return
        for child in node.iter_child_nodes():
            visit(child, iterations)

    visit(tree, 1)
    return problems


def _is_constant(expr: nodes.Node, stored: set[str]) -> bool:
    for node in (expr, *expr.find_all(nodes.Node)):
        if not isinstance(node, _CONSTANT_NODES):
            return False
        if isinstance(node, nodes.Name) and (node.name not in DEFAULT_NAMESPACE or node.name in stored):
            return False
    return True


def _constant_expression(expr: nodes.Expr) -> TemplateExpression:
    body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)]
    return TemplateExpression(_env.from_string(nodes.Template(body, lineno=1)), False)
