"""Engine tests drive attempts in this process: `drive(run)` plays the worker for every queued
attempt (claim, run the step, finish) until nothing is left, without a broker."""

import pytest

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)
from apps.runs.plan import forget_plans


@pytest.fixture(autouse=True)
def fresh_plans():
    # Version ids come back after a rollback on SQLite; cached plans must not outlive a test.
    forget_plans()
    yield
    forget_plans()


@pytest.fixture
def drive(monkeypatch):
    from apps.runs import engine, tasks
    from apps.runs.models import AttemptState, StepAttempt

    monkeypatch.setattr(engine, "_send_on_commit", lambda *args, **kwargs: None)

    def play(run, *, limit=500):
        for _ in range(limit):
            attempt = StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).order_by("pk").first()
            if attempt is None:
                break
            tasks.run_attempt.run(attempt.pk)
        run.refresh_from_db()
        return run

    return play
