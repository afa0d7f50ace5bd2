"""A fan-out queues its successors together: one attempt each, with its own idempotency key and
message, in as many statements for forty successors as for four; a successor that cannot start
stops the run as it would have one at a time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs import engine, tasks
from apps.runs.models import AttemptState, RunState, StepAttempt, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def _fan_out(team, width: int, name: str, params: dict | None = None):
    """A root, `width` parallel steps (the second with `params`) and a fan-in."""
    parallel = [step(f"p{i}", "test.noop", needs=["root"], params=params if i == 1 else None) for i in range(width)]
    return make_version(team, [step("root", "test.noop"), *parallel,
                               step("join", "test.noop", needs=[f"p{i}" for i in range(width)])], name=name)


def _finish_root(run, monkeypatch) -> tuple[int, list[int]]:
    """Carry out the root's attempt; the statements its finish took and the attempts it sent."""
    sent = []
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kwargs: sent.append(attempt_id))
    root = StepAttempt.objects.get(step_run__run=run, step_run__step_id="root")
    claimed = engine.claim_attempt(root.pk, engine.worker_identity())
    outcome = tasks.execute(claimed)
    with CaptureQueriesContext(connection) as statements:
        assert engine.finish_attempt(claimed, outcome)
    return len(statements), sent


def test_a_wide_fan_out_is_queued_in_as_many_statements_as_a_narrow_one(team, monkeypatch):
    narrow = engine.start_run(None, _fan_out(team, 4, "narrow"))
    wide = engine.start_run(None, _fan_out(team, 40, "wide"))
    narrow_statements, _ = _finish_root(narrow, monkeypatch)
    wide_statements, sent = _finish_root(wide, monkeypatch)
    assert wide_statements == narrow_statements
    attempts = StepAttempt.objects.filter(step_run__run=wide, state=AttemptState.QUEUED).exclude(
        step_run__step_id="root")
    assert sorted(attempts.values_list("pk", flat=True)) == sorted(sent)
    assert sorted(attempts.values_list("idempotency_key", flat=True)) == sorted(
        f"{wide.pk}:p{i}:1" for i in range(40))
    assert set(wide.step_runs.exclude(step_id__in=["root", "join"]).values_list("state", "attempt")) == {
        (StepState.QUEUED, 1)}


def test_a_successor_that_cannot_start_cancels_the_ones_queued_before_it(team, monkeypatch):
    run = engine.start_run(None, _fan_out(team, 3, "broken", params={"x": "{{ inputs.missing }}"}))
    _finish_root(run, monkeypatch)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert dict(run.step_runs.values_list("step_id", "state")) == {
        "root": StepState.SUCCEEDED, "p0": StepState.CANCELLED, "p1": StepState.FAILED, "p2": StepState.CANCELLED,
        "join": StepState.CANCELLED}
    assert not StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).exists()
