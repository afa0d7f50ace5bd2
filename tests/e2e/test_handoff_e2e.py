"""A worker runs the steps its own step made ready, without a broker round trip each.

The successor is committed as queued like any other attempt, so everything that protects a
queued attempt still holds: its own timeout is enforced, and if the worker dies while running it
the sweeper gives it to another worker with the same idempotency key.
"""

import os
import signal
import time

import pytest

from apps.runs import engine
from apps.runs.models import EffectLedger, RunState, StepAttempt, StepState
from tests.real_worker import sweep_until_succeeded, wait_for_effect
from tests.runs.factories import chain, make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DONE = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.PAUSED)


def messages_received(worker) -> int:
    return worker.logfile.read_text().count("flowdeck.runs.run_attempt[")


def test_a_chain_runs_on_the_worker_that_started_it_with_one_message(worker, wait_for, team, operator):
    before = messages_received(worker)
    run = wait_for(engine.start_run(operator, make_version(team, chain(6))), *DONE)
    assert run.state == RunState.SUCCEEDED
    attempts = StepAttempt.objects.filter(step_run__run=run)
    assert attempts.count() == 6 and {a.deliveries for a in attempts} == {1}
    assert len({a.worker for a in attempts}) == 1
    time.sleep(0.5)  # the worker logs a task's end just after the run's last commit
    assert messages_received(worker) - before == 2  # "received" and "succeeded" of the first step only


def test_a_kept_step_still_times_out_on_its_own_timeout(worker, wait_for, team, operator):
    version = make_version(team, [step("first", "test.noop"),
                                  step("slow", "test.sleep", needs=["first"], params={"seconds": 20}, timeout=1)])
    run = wait_for(engine.start_run(operator, version), *DONE)
    first, slow = (StepAttempt.objects.get(step_run__run=run, step_run__step_id=sid) for sid in ("first", "slow"))
    assert slow.worker == first.worker  # it was kept, not sent through the broker
    assert run.state == RunState.FAILED and slow.is_timeout and slow.duration_ms < 5000


def test_a_worker_killed_in_a_kept_step_loses_nothing(worker, wait_for, team, operator, settings):
    settings.FLOWDECK_STALE_AFTER_SECONDS = 5
    version = make_version(team, [step("warm", "test.noop"),
                                  step("pay", "test.effect", needs=["warm"], params={"target": "acct-9", "seconds": 3}),
                                  step("after", needs=["pay"])])
    run = engine.start_run(operator, version)
    wait_for_effect(run)
    warm, pay = (StepAttempt.objects.get(step_run__run=run, step_run__step_id=sid) for sid in ("warm", "pay"))
    assert pay.worker == warm.worker
    os.kill(int(pay.worker.rpartition(":")[2]), signal.SIGKILL)

    # No message names the kept attempt: the sweeper finds it silent.
    run = sweep_until_succeeded(run)
    pay_run = run.step_runs.get(step_id="pay")
    assert pay_run.state == StepState.SUCCEEDED and pay_run.attempts.get().deliveries == 2
    assert EffectLedger.objects.filter(step_run=pay_run, target="acct-9").count() == 1
