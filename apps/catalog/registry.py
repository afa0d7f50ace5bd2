"""The step type registry and the contract between the engine and a step's code.

A step type is a plain Python callable `run(ctx: StepContext) -> JSON-able output`, registered
with `@step_type(...)` and described by a JSON Schema for its parameters. The engine builds the
StepContext for one attempt; the step reads its rendered parameters from it, logs through it,
reports metrics, side effects and datasets through it, and raises `PermanentStepError` for
failures that retrying cannot fix (a 4xx answer, a failed quality gate). A failure that
Flowdeck's own machinery understands carries a `Reason` and the details its fix needs, so the
assistant names it instead of guessing.

Types come from the built-ins (apps/catalog/builtins/) and from installed packages: each entry
point of the group `flowdeck.step_types` names a module whose `@step_type` decorators register
its types, tagged with the package's name and version. A package that cannot be loaded (its
import fails, a schema is not valid JSON Schema, a name is taken) registers none of its types
and is noted in `package_problems()`, which the catalog's system check reports; the rest load.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Protocol

from jsonschema import Draft202012Validator, SchemaError

from apps.logging import get_logger

logger = get_logger(__name__)

ENTRY_POINT_GROUP = "flowdeck.step_types"


class Risk:
    LOW = "low"
    HIGH = "high"


class Reason:
    """Machine-readable reasons of failures Flowdeck itself raises (stored on the attempt and the
    incident; apps.knowledge.known_causes says what each means and how to fix it)."""

    CONNECTION_MISSING = "connection_missing"
    HOST_NOT_ALLOWED = "host_not_allowed"
    INVALID_PARAMETERS = "invalid_parameters"
    SECRET_UNREADABLE = "secret_unreadable"
    DATA_FILE_MISSING = "data_file_missing"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    QUALITY_GATE_FAILED = "quality_gate_failed"
    HTTP_CLIENT_ERROR = "http_client_error"


class StepError(Exception):
    """A step failed; the engine may retry it according to the step's `retries`.

    `reason` (a Reason) and `detail` (what the fix needs: a connection's name, a host) are set when
    Flowdeck knows the cause; a step type's own failures leave them empty."""

    permanent = False

    def __init__(self, message: str = "", *, reason: str = "", **detail: Any):
        super().__init__(message)
        self.reason = reason
        self.detail = detail


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
    # A JSON Schema of the output, as documentation for the authors of the steps that read it; a
    # skipped step's stand-in output is then typed into a form (approvals) instead of JSON.
    output_schema: dict[str, Any] | None = None
    # The installed distribution that declared the type; None for Flowdeck's own.
    package: str | None = None
    version: str | None = None

    @property
    def source(self) -> str:
        return f"{self.package} {self.version}" if self.package else "built in"


@dataclass(frozen=True)
class PackageProblem:
    """Why an installed package's step types were not loaded."""

    package: str  # the distribution's name and version
    entry_point: str  # as declared: `name = module`
    reason: str


_REGISTRY: dict[str, StepType] = {}
_PROBLEMS: list[PackageProblem] = []
_LOAD_LOCK = threading.RLock()
_loaded = _loading = False
_declaring: tuple[str, str] | None = None  # (package, version) whose entry point is being loaded


def step_type(name: str, *, params_schema: dict, summary: str, doc: str = "", risk: str = Risk.LOW,
              queue: str = "steps", timeout_seconds: int = 300, example: dict | None = None,
              idempotent: bool = False, output_schema: dict | None = None):
    """Register the decorated callable as step type `name`."""

    def register(run: Callable[[StepContext], Any]) -> Callable[[StepContext], Any]:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"step type {name!r} is already registered ({_REGISTRY[name].source})")
        package, version = _declaring or (None, None)
        _REGISTRY[name] = StepType(
            name=name, run=run, params_schema=params_schema, summary=summary, doc=doc or (run.__doc__ or ""),
            risk=risk, queue=queue, timeout_seconds=timeout_seconds, example=example or {}, idempotent=idempotent,
            output_schema=output_schema, package=package, version=version,
        )
        return run

    return register


def get_step_type(name: str) -> StepType | None:
    load_step_types()
    return _REGISTRY.get(name)


def all_step_types() -> list[StepType]:
    load_step_types()
    return sorted(_REGISTRY.values(), key=lambda t: t.name)


def package_problems() -> list[PackageProblem]:
    load_step_types()
    return list(_PROBLEMS)


def load_step_types() -> None:
    """Register the built-in types, then those of every installed package; once per process
    (the catalog app calls it at start-up, so workers know every type and its tasks)."""
    global _loaded, _loading
    if _loaded:
        return
    with _LOAD_LOCK:
        # _loading: a module being imported here that asks for a type gets what is registered so far.
        if _loaded or _loading:
            return
        _loading = True
        try:
            from apps.catalog import builtins  # noqa: F401  (importing runs their @step_type decorators)

            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                _load_package(entry_point)
            _loaded = True
        finally:
            _loading = False


def _load_package(entry_point: EntryPoint) -> None:
    """Import one entry point's module; all of its types, or none of them and a noted problem."""
    global _declaring
    distribution = entry_point.dist
    package = distribution.name if distribution else entry_point.module
    version = distribution.version if distribution else "unknown version"
    before = set(_REGISTRY)
    _declaring = (package, version)
    try:
        entry_point.load()
        added = [name for name in _REGISTRY if name not in before]
        reasons = [reason for name in added for reason in _declaration_problems(_REGISTRY[name])]
        if not added:
            reasons.append(f"importing {entry_point.value} registered no step type (is @step_type used there?)")
    except Exception as exc:  # noqa: BLE001  (whatever a package's code raises is that package's problem)
        reasons = [f"{type(exc).__name__}: {exc}"]
    finally:
        _declaring = None
    if not reasons:
        return
    for name in set(_REGISTRY) - before:
        del _REGISTRY[name]
    problem = PackageProblem(f"{package} {version}", f"{entry_point.name} = {entry_point.value}", "; ".join(reasons))
    _PROBLEMS.append(problem)
    logger.error("step type package not loaded", package=problem.package, entry_point=problem.entry_point,
                 reason=problem.reason)


def _declaration_problems(step: StepType) -> list[str]:
    """What makes a declared type unusable: a schema that is not JSON Schema, an unknown risk."""
    reasons = []
    schemas = {"params_schema": step.params_schema}
    if step.output_schema is not None:
        schemas["output_schema"] = step.output_schema
    for label, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(part) for part in exc.absolute_path) or "the top level"
            reasons.append(f"{step.name}: {label} is not a valid JSON Schema at {where}: {exc.message}")
    if step.risk not in (Risk.LOW, Risk.HIGH):
        reasons.append(f"{step.name}: risk {step.risk!r} is neither {Risk.LOW!r} nor {Risk.HIGH!r}")
    return reasons


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
        raise PermanentStepError(f"{type_name} parameters are invalid: " + "; ".join(errors),
                                 reason=Reason.INVALID_PARAMETERS, errors=errors[:10])
    return with_defaults(step, ctx.params)


def params_errors(step: StepType, params: Any) -> list[str]:
    """Every way `params` breaks the step type's schema, each naming the parameter; empty when they fit."""
    validator = Draft202012Validator(step.params_schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or 'with'}: {e.message}" for e in errors]
