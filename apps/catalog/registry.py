"""The step type registry and the contract between the engine and a step's code.

A step type is a plain Python callable `run(ctx: StepContext) -> JSON-able output`, registered
with `@step_type(...)` and described by a JSON Schema for its parameters. The engine builds the
StepContext for one attempt; the step reads its rendered parameters from it, logs through it,
reports metrics, side effects and datasets through it, and raises `PermanentStepError` for
failures that retrying cannot fix (a 4xx answer, a failed quality gate).
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from jsonschema import Draft202012Validator


class Risk:
    LOW = "low"
    HIGH = "high"


class StepError(Exception):
    """A step failed; the engine may retry it according to the step's `retries`."""

    permanent = False


class PermanentStepError(StepError):
    """A step failed in a way that retrying cannot fix: never retried."""

    permanent = True


class StepContext(Protocol):
    """What a step's code can see and do during one attempt (implemented by apps.runs.context.AttemptContext)."""

    params: dict[str, Any]
    run_id: int
    step_id: str
    attempt: int
    idempotency_key: str  # stable across redeliveries of the same attempt

    def log(self, message: str, level: str = "info", **fields: Any) -> None: ...
    def heartbeat(self, progress: dict[str, Any] | None = None) -> None: ...
    def add_metrics(self, *, records_in: int = 0, records_out: int = 0, records_rejected: int = 0) -> None: ...
    def record_effect(self, kind: str, target: str, detail: dict[str, Any] | None = None) -> bool:
        """Note a side effect in the ledger; False when this idempotency key already did it."""
    def record_dataset(self, direction: str, uri: str) -> None: ...
    def artifact_path(self, filename: str) -> str: ...


@dataclass(frozen=True)
class StepType:
    name: str
    run: Callable[[StepContext], Any]
    params_schema: dict[str, Any]
    summary: str
    doc: str = ""
    risk: str = Risk.LOW
    queue: str = "steps"
    timeout_seconds: int = 300
    example: dict[str, Any] = field(default_factory=dict)
    # True when the step types's own code makes a repeat harmless (it uses the idempotency key).
    idempotent: bool = False


_REGISTRY: dict[str, StepType] = {}


def step_type(name: str, *, params_schema: dict, summary: str, doc: str = "", risk: str = Risk.LOW,
              queue: str = "steps", timeout_seconds: int = 300, example: dict | None = None,
              idempotent: bool = False):
    """Register the decorated callable as step type `name`."""

    def register(run: Callable[[StepContext], Any]) -> Callable[[StepContext], Any]:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"step type {name!r} is registered twice")
        _REGISTRY[name] = StepType(
            name=name, run=run, params_schema=params_schema, summary=summary, doc=doc or (run.__doc__ or ""),
            risk=risk, queue=queue, timeout_seconds=timeout_seconds, example=example or {}, idempotent=idempotent,
        )
        return run

    return register


def get_step_type(name: str) -> StepType | None:
    _load_builtins()
    return _REGISTRY.get(name)


def all_step_types() -> list[StepType]:
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda t: t.name)


def _load_builtins() -> None:
    # Importing the modules runs their @step_type decorators (once; imports are cached).
    from apps.catalog import builtins  # noqa: F401


def with_defaults(step: StepType, params: dict) -> dict:
    """`params` with the schema's top-level defaults filled in for what was not given."""
    return schema_defaults(step.params_schema, params)


def schema_defaults(schema: dict | None, given: dict) -> dict:
    """`given` with the defaults of `schema`'s properties filled in for what it lacks (copies: a
    step that changes its `options` must not change the registered schema)."""
    properties = (schema or {}).get("properties") or {}
    return {**{name: copy.deepcopy(prop["default"]) for name, prop in properties.items() if "default" in prop},
            **given}


def checked_params(ctx: StepContext, type_name: str) -> dict[str, Any]:
    """The step's parameters with the schema's top-level defaults filled in, refused
    (permanently) when they break the type's schema."""
    step = get_step_type(type_name)
    errors = params_errors(step, ctx.params)
    if errors:
        raise PermanentStepError(f"{type_name} parameters are invalid: " + "; ".join(errors))
    return with_defaults(step, ctx.params)


def params_errors(step: StepType, params: Any) -> list[str]:
    """Every way `params` breaks the step type's schema, each naming the parameter; empty when they fit."""
    validator = Draft202012Validator(step.params_schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or 'with'}: {e.message}" for e in errors]
