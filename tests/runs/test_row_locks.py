"""A worker's result that arrives while a person changes the run waits for them, then obeys.

The engine sends the run lock and the attempt's end as one statement on PostgreSQL; this shows
the lock is still taken first (the result waits) and that the attempt is re-checked after the
wait (a cancelled attempt's result is discarded). Only PostgreSQL has these row locks (SQLite
serializes every writer); CI always runs it there.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from apps.runs import engine
from apps.runs.models import AttemptState, Run, RunState, StepAttempt, StepState
from tests.runs.factories import make_version, step

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (CI runs it there)"),
]


@pytest.fixture
def claimed_load(team, operator, monkeypatch):
    """A run of load -> report whose `load` a worker has claimed; sends are recorded."""
    sent = []
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kwargs: sent.append(attempt_id))
    run = engine.start_run(operator, make_version(team, [step("load"), step("report", needs=["load"])]))
    attempt = StepAttempt.objects.get(step_run__run=run, step_run__step_id="load")
    return run, attempt, engine.claim_attempt(attempt.pk, "host-a:1"), sent


def report_success_while_the_run_is_held(claimed, hold) -> dict:
    """A worker thread reports success while this thread holds the run's row lock and calls
    `hold()` (after checking the worker waits); returns what finish_attempt answered."""
    finished = {}

    def worker_reports_success():
        try:
            finished["kept"] = engine.finish_attempt(claimed, engine.AttemptOutcome(output={"rows": 3}))
        finally:
            connection.close()

    with transaction.atomic():
        Run.objects.select_for_update().get(pk=claimed.run_id)  # a person's action holds the run
        worker = threading.Thread(target=worker_reports_success)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the result must wait for the run's lock"
        hold()
    worker.join(timeout=30)
    return finished


def test_a_result_waits_for_a_cancel_in_progress_and_is_then_discarded(claimed_load, operator):
    run, attempt, claimed, _ = claimed_load
    finished = report_success_while_the_run_is_held(claimed, lambda: engine.cancel_run(operator, run))

    assert finished == {"kept": False}
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.CANCELLED and attempt.output is None
    assert set(run.step_runs.values_list("state", flat=True)) == {StepState.CANCELLED}


def test_a_result_that_waited_for_an_unrelated_change_still_moves_the_run_on(claimed_load):
    run, _, claimed, sent = claimed_load
    finished = report_success_while_the_run_is_held(claimed, lambda: None)

    assert finished == {"kept": True}
    load, report = run.step_runs.order_by("position")
    assert (load.state, load.output) == (StepState.SUCCEEDED, {"rows": 3})
    assert report.state == StepState.QUEUED and len(sent) == 2
