"""A worker child killed with SIGKILL in the middle of a step loses no run and repeats no effect."""

import os
import signal
import time

import pytest

from apps.runs import engine
from apps.runs.models import EffectLedger, RunState, StepAttempt
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_killed_worker_child_mid_step_still_finishes_the_run_with_one_effect(worker, wait_for, team, operator,
                                                                            settings):
    settings.FLOWDECK_STALE_AFTER_SECONDS = 5
    version = make_version(team, [step("pay", "test.effect", params={"target": "acct-42", "seconds": 3}),
                                  step("after", needs=["pay"])])
    run = engine.start_run(operator, version)
    deadline = time.monotonic() + 30
    while not EffectLedger.objects.filter(step_run__run=run).exists():
        assert time.monotonic() < deadline, "the step never applied its effect"
        time.sleep(0.05)
    attempt = StepAttempt.objects.get(step_run__run=run, step_run__step_id="pay")
    os.kill(int(attempt.worker.rpartition(":")[2]), signal.SIGKILL)

    # The redelivered message takes the attempt over; the sweeper (run here as beat would) is the
    # safety net when the message itself was lost with the worker.
    deadline = time.monotonic() + 60
    while run.state != RunState.SUCCEEDED:
        assert time.monotonic() < deadline, f"run stayed {run.state}"
        engine.sweep()
        time.sleep(0.5)
        run.refresh_from_db()

    pay = run.step_runs.get(step_id="pay")
    attempt = pay.attempts.get()
    assert attempt.deliveries == 2 and attempt.state == "succeeded"
    assert pay.output == {"applied": False}  # the second delivery found the effect in the ledger
    assert EffectLedger.objects.filter(step_run=pay, kind="write", target="acct-42").count() == 1
    assert run.step_runs.get(step_id="after").state == "succeeded"
