"""The branches of a fan-out finish side by side, and the fan-in still starts exactly once.

A success that only settles one of a join's needs is recorded under the run's shared lock; the
finish that settles the last need (or fails, or ends the run) decides under the exclusive lock.
The concurrent cases need PostgreSQL's row locks (SQLite serializes every writer); CI runs them there.
"""

import threading

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.runs import engine, tasks
from apps.runs.models import AttemptState, Run, RunState, StepAttempt, StepState
from tests.runs.factories import decide, make_version, step

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                    reason="row locks need PostgreSQL (CI runs it there)")


def _fan(team, width: int, name: str, failing: int | None = None):
    """A root, `width` parallel steps (branch `failing` fails until its second attempt and pauses
    the run) and a join that needs them all."""
    branches = [step(f"p{i}", "test.flaky" if i == failing else "test.noop", needs=["root"], on_failure="pause",
                     params={"succeed_on": 2} if i == failing else None) for i in range(width)]
    return make_version(team, [step("root", "test.noop"), *branches,
                               step("join", "test.noop", needs=[f"p{i}" for i in range(width)])], name=name)


def _states(run) -> dict[str, str]:
    return dict(run.step_runs.values_list("step_id", "state"))


@pytest.mark.django_db
def test_a_wide_fan_out_with_one_failing_branch_pauses_and_its_retry_finishes_the_run(team, operator, drive):
    run = drive(engine.start_run(operator, _fan(team, 50, "fifty", failing=17)))

    assert run.state == RunState.PAUSED
    assert run.failure_summary.startswith("Step p17 failed")
    states = _states(run)
    assert states.pop("p17") == StepState.FAILED and states.pop("join") == StepState.PENDING
    assert set(states.values()) == {StepState.SUCCEEDED}
    assert AuditEvent.objects.filter(action="run.paused", object_id=str(run.pk)).count() == 1
    assert AuditEvent.objects.filter(action="step.succeeded", after__run=run.pk).count() == 50

    decide(operator, run.step_runs.get(step_id="p17"), "retry")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert StepAttempt.objects.filter(step_run__run=run, step_run__step_id="join").count() == 1


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The attempts the engine sends, kept from the broker: CI's session worker would take them."""
    sent = []
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kwargs: sent.append(attempt_id))
    return sent


def _claim_branches(run, sent: list[int]) -> tuple[list[engine.ClaimedAttempt], list[int]]:
    """Carry out the root, then claim every branch's attempt; the attempts sent from then on."""
    root = StepAttempt.objects.get(step_run__run=run, step_run__step_id="root")
    claimed = engine.claim_attempt(root.pk, "host-a:1")
    assert engine.finish_attempt(claimed, tasks.execute(claimed))
    branches = StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).order_by("pk")
    sent.clear()
    return [engine.claim_attempt(attempt.pk, f"host-a:{attempt.pk}") for attempt in branches], sent


def _finish_together(claimed: list[engine.ClaimedAttempt], outcome_of) -> list[bool]:
    """Finish every claimed attempt at once, one thread each; what each finish answered."""
    start = threading.Barrier(len(claimed))
    answers = [None] * len(claimed)

    def finish(index):
        try:
            start.wait(timeout=30)
            answers[index] = engine.finish_attempt(claimed[index], outcome_of(claimed[index]))
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(index,)) for index in range(len(claimed))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a finish hung"
    return answers


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_the_join_starts_exactly_once_when_the_last_branches_finish_together(team, sent, attempt):
    run = engine.start_run(None, _fan(team, 12, f"twelve{attempt}"))
    claimed, sent = _claim_branches(run, sent)

    assert _finish_together(claimed, lambda c: engine.AttemptOutcome(output={"branch": c.step_id})) == [True] * 12

    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    join = StepAttempt.objects.get(step_run__run=run, step_run__step_id="join")
    assert join.state == AttemptState.QUEUED and sent == [join.pk]
    assert run.step_runs.get(step_id="p3").output == {"branch": "p3"}
    assert AuditEvent.objects.filter(action="step.succeeded", after__run=run.pk).count() == 13


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_branch_failing_among_parallel_successes_pauses_the_run_once(team, sent):
    run = engine.start_run(None, _fan(team, 20, "twenty"))
    claimed, sent = _claim_branches(run, sent)

    def outcome(c):
        if c.step_id == "p7":
            return engine.AttemptOutcome(error_type="DiskFull", error_message="no space left", permanent=True)
        return engine.AttemptOutcome(output={})

    assert _finish_together(claimed, outcome) == [True] * 20

    run.refresh_from_db()
    assert run.state == RunState.PAUSED and run.failure_summary.startswith("Step p7 failed: DiskFull")
    states = _states(run)
    assert states.pop("p7") == StepState.FAILED and states.pop("join") == StepState.PENDING
    assert set(states.values()) == {StepState.SUCCEEDED}
    assert sent == [] and not StepAttempt.objects.filter(step_run__run=run, step_run__step_id="join").exists()
    assert AuditEvent.objects.filter(action="run.paused", object_id=str(run.pk)).count() == 1


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_branch_success_does_not_wait_while_another_branch_holds_the_run_for_its_own(team, sent):
    run = engine.start_run(None, _fan(team, 3, "three"))
    claimed, _ = _claim_branches(run, sent)
    finished = threading.Event()

    def worker_reports_success():
        try:
            engine.finish_attempt(claimed[0], engine.AttemptOutcome(output={}))
            finished.set()
        finally:
            connection.close()

    with transaction.atomic():
        # What a sibling's success holds while it is recorded: the run's row, shared.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {Run._meta.db_table} WHERE id = %s FOR SHARE", [run.pk])
        worker = threading.Thread(target=worker_reports_success)
        worker.start()
        assert finished.wait(timeout=10), "a branch's success waited for its sibling's"
    worker.join(timeout=30)
    assert run.step_runs.get(step_id="p0").state == StepState.SUCCEEDED
