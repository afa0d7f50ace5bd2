"""Built-in step types for demos, tests and plain waiting: echo, sleep, wait, fail, flaky,
and the explicit approval gate."""

import time

from apps.catalog.registry import PermanentStepError, Risk, StepContext, StepError, checked_params, step_type

SCHEMA = "https://json-schema.org/draft/2020-12/schema"


@step_type(
    "echo",
    params_schema={
        "$schema": SCHEMA, "type": "object", "additionalProperties": True,
        "description": "Any parameters at all; they come back unchanged as the output.",
    },
    summary="Return the parameters as the output (for tests, demos and passing values along).",
    doc="""Returns its parameters, after templating, as its output. Useful to try a template, to pass
values to later steps under a clear name, and in tests.

**Output:** the parameters, exactly as rendered.

**Errors:** none.""",
    timeout_seconds=30,
    example={"period": "{{ inputs.period }}", "note": "values rendered from the run's inputs"},
    idempotent=True,
)
def echo(ctx: StepContext):
    return ctx.params


def _pause(ctx: StepContext, seconds: float) -> dict:
    # Heartbeat every second so the sweeper knows the worker is alive during a long pause.
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(1.0, seconds - elapsed))
        ctx.heartbeat({"waited_seconds": round(min(time.monotonic() - started, seconds), 1), "of_seconds": seconds})
    return {"waited_seconds": seconds}


def _seconds_schema(description: str) -> dict:
    return {
        "$schema": SCHEMA, "type": "object", "additionalProperties": False, "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600, "description": description}},
    }


@step_type(
    "sleep",
    params_schema=_seconds_schema("How long to sleep, in seconds (at most 3600)."),
    summary="Sleep for a number of seconds, heartbeating each second (tests and demos).",
    doc="""Sleeps, sending a heartbeat every second. Meant for tests and demos of timeouts, heartbeats
and worker loss; use `wait` in production workflows.

**Output:** `{"waited_seconds": <seconds>}`.

**Errors:** none; a step `timeout` shorter than `seconds` stops it.""",
    timeout_seconds=3700,
    example={"seconds": 5},
    idempotent=True,
)
def sleep(ctx: StepContext):
    return _pause(ctx, checked_params(ctx, "sleep")["seconds"])


@step_type(
    "wait",
    params_schema=_seconds_schema("How long to wait before the next steps may start, in seconds (at most 3600)."),
    summary="Wait a fixed time before the steps that need this one start.",
    doc="""Waits for `seconds`, for example to let a downstream system settle or to respect a rate limit
between two calls. It holds a worker slot while it waits (heartbeating each second), so keep it
short; for waiting on people use an `approval`, which holds no worker.

**Output:** `{"waited_seconds": <seconds>}`.

**Errors:** none; a step `timeout` shorter than `seconds` stops it.""",
    timeout_seconds=3700,
    example={"seconds": 120},
    idempotent=True,
)
def wait(ctx: StepContext):
    return _pause(ctx, checked_params(ctx, "wait")["seconds"])


@step_type(
    "fail",
    params_schema={
        "$schema": SCHEMA, "type": "object", "additionalProperties": False,
        "properties": {
            "message": {"type": "string", "description": "The error message to fail with.",
                        "default": "failed on purpose"},
            "permanent": {"type": "boolean", "default": False,
                          "description": "True: a permanent error, never retried. False: retried per `retries`."},
        },
    },
    summary="Always fail with the given message (tests and demos of retries and checkpoints).",
    doc="""Fails every time. Use it to try `retries`, `on_failure` and the failure checkpoint.

**Output:** none.

**Errors:** a retryable error with `message`, or a permanent one when `permanent` is true.""",
    timeout_seconds=30,
    example={"message": "ledger export is missing", "permanent": False},
    idempotent=True,
)
def fail(ctx: StepContext):
    params = checked_params(ctx, "fail")
    error = PermanentStepError if params["permanent"] else StepError
    raise error(params["message"])


@step_type(
    "flaky",
    params_schema={
        "$schema": SCHEMA, "type": "object", "additionalProperties": False, "required": ["fail_times"],
        "properties": {
            "fail_times": {"type": "integer", "minimum": 0, "maximum": 100,
                           "description": "How many attempts fail before one succeeds."},
            "message": {"type": "string", "default": "flaky failure",
                        "description": "The error message of the failing attempts."},
        },
    },
    summary="Fail the first attempts, then succeed (tests and demos of retries).",
    doc="""Attempts 1 to `fail_times` fail with a retryable error; the next attempt succeeds. With
`retries.count` at least `fail_times` the step ends up succeeding.

**Output:** `{"attempt": <the attempt that succeeded>}`.

**Errors:** a retryable error with `message` while the attempt number is at most `fail_times`.""",
    timeout_seconds=30,
    example={"fail_times": 2, "message": "upstream timed out"},
    idempotent=True,
)
def flaky(ctx: StepContext):
    params = checked_params(ctx, "flaky")
    if ctx.attempt <= params["fail_times"]:
        raise StepError(f"{params['message']} (attempt {ctx.attempt} of "
                        f"{params['fail_times']} planned failures)")
    return {"attempt": ctx.attempt}


@step_type(
    "approval.gate",
    params_schema={
        "$schema": SCHEMA, "type": "object", "additionalProperties": False,
        "properties": {"message": {"type": "string", "description": "What the approvers are asked to decide."}},
    },
    summary="An explicit approval point: the run waits here until approvers decide.",
    doc="""A high-risk step that does nothing itself: like every high-risk step, the engine holds it until
its `approval` is granted, so placing it in a workflow makes people decide before the steps that
need it start. Give it an `approval` with the group (and quorum) who decide.

**Output:** `{"approved": true}` once it runs (it only runs after approval).

**Errors:** none; a rejected approval stops the run before this step runs.""",
    risk=Risk.HIGH,
    timeout_seconds=30,
    example={"message": "Release the {{ inputs.period }} payments to the bank?"},
    idempotent=True,
)
def approval_gate(ctx: StepContext):
    return {"approved": True}
