"""A worker child killed with SIGKILL in the middle of a step loses no run and repeats no effect."""

import os
import signal

import pytest

from apps.runs import engine
from apps.runs.models import EffectLedger, StepAttempt
from tests.real_worker import sweep_until_succeeded, wait_for_effect
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_killed_worker_child_mid_step_still_finishes_the_run_with_one_effect(worker, wait_for, team, operator,
                                                                            settings):
    settings.FLOWDECK_STALE_AFTER_SECONDS = 5
    version = make_version(team, [step("pay", "test.effect", params={"target": "acct-42", "seconds": 3}),
                                  step("after", needs=["pay"])])
    run = engine.start_run(operator, version)
    wait_for_effect(run)
    attempt = StepAttempt.objects.get(step_run__run=run, step_run__step_id="pay")
    os.kill(int(attempt.worker.rpartition(":")[2]), signal.SIGKILL)

    # The redelivered message takes the attempt over; the sweeper is the safety net when the
    # message itself was lost with the worker.
    run = sweep_until_succeeded(run)

    pay = run.step_runs.get(step_id="pay")
    attempt = pay.attempts.get()
    assert attempt.deliveries == 2 and attempt.state == "succeeded"
    assert pay.output == {"applied": False}  # the second delivery found the effect in the ledger
    assert EffectLedger.objects.filter(step_run=pay, kind="write", target="acct-42").count() == 1
    assert run.step_runs.get(step_id="after").state == "succeeded"
