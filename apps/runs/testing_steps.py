"""Step types for the engine's tests and benchmarks (names start with "test.").

Imported only when FLOWDECK_TEST_STEP_TYPES=1 (by the runs app, in web and worker processes) or
directly by the test suite, so production never registers them.
"""

import time
from pathlib import Path

from apps.catalog.registry import PermanentStepError, Risk, StepError, step_type

_ANY = {"type": "object"}


@step_type("test.noop", params_schema=_ANY, summary="Does nothing (benchmarks).")
def noop(ctx):
    return None


@step_type("test.echo", params_schema=_ANY, summary="Returns its parameters as its output.")
def echo(ctx):
    ctx.log("echo", keys=sorted(ctx.params))
    return ctx.params


@step_type("test.sleep", params_schema=_ANY, summary="Sleeps `seconds`, beating every 0.2 s.")
def sleep(ctx):
    deadline = time.monotonic() + float(ctx.params.get("seconds", 1))
    while time.monotonic() < deadline:
        time.sleep(0.2)
        ctx.heartbeat({"left": round(deadline - time.monotonic(), 1)})
    return {"slept": ctx.params.get("seconds", 1)}


@step_type("test.fail", params_schema=_ANY, summary="Fails with `message`; permanently when `permanent`.")
def fail(ctx):
    error = PermanentStepError if ctx.params.get("permanent") else StepError
    raise error(ctx.params.get("message", "failed on purpose"))


@step_type("test.flaky", params_schema=_ANY, summary="Fails until attempt `succeed_on`.")
def flaky(ctx):
    if ctx.attempt < int(ctx.params.get("succeed_on", 2)):
        raise StepError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


@step_type("test.effect", params_schema=_ANY, idempotent=True,
           summary="Applies an effect on `target` once per idempotency key, then sleeps `seconds`.")
def effect(ctx):
    applied = ctx.record_effect("write", ctx.params["target"], {"amount": ctx.params.get("amount", 1)})
    ctx.log("effect applied" if applied else "effect already applied by an earlier delivery")
    ctx.add_metrics(records_in=1, records_out=1 if applied else 0)
    deadline = time.monotonic() + float(ctx.params.get("seconds", 0))
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return {"applied": applied}


@step_type("test.undo", params_schema=_ANY, summary="Records an `undo` effect on `target` (compensations).")
def undo(ctx):
    ctx.record_effect("undo", ctx.params["target"])
    return {"undone": ctx.params["target"]}


@step_type("test.big", params_schema=_ANY, summary="Returns an output of `bytes` bytes.")
def big(ctx):
    return {"blob": "x" * int(ctx.params.get("bytes", 100_000))}


@step_type("test.chatty", params_schema=_ANY, summary="Writes `lines` log lines.")
def chatty(ctx):
    for number in range(int(ctx.params.get("lines", 10))):
        ctx.log(f"line {number}", number=number)
    return {"lines": ctx.params.get("lines", 10)}


@step_type("test.risky", params_schema=_ANY, risk=Risk.HIGH, summary="A high-risk step: always gated.")
def risky(ctx):
    return {"done": True}


@step_type("test.other_queue", params_schema=_ANY, queue="test-other", summary="Runs on the test-other queue.")
def other_queue(ctx):
    return {"queue": "test-other"}


@step_type("test.fail_once", params_schema=_ANY, summary="Fails the first time it sees file `marker` missing.")
def fail_once(ctx):
    marker = Path(ctx.params["marker"])
    if not marker.exists():
        marker.write_text(ctx.idempotency_key)
        raise StepError(f"first try fails (marker {marker.name} created)")
    return {"recovered": True}
