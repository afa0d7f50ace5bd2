"""Crash safety without a worker: claims, redelivery, the ledger, the sweeper, outputs and logs."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.runs import engine
from apps.runs.apps import SWEEPER_TASK_NAME
from apps.runs.context import AttemptContext
from apps.runs.models import AttemptState, RunState, StepAttempt, StepState
from apps.runs.tasks import run_attempt
from tests.runs.factories import chain, make_version, step

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_broker_queues")]


def first_attempt(run):
    return StepAttempt.objects.filter(step_run__run=run).order_by("pk").first()


def test_only_one_worker_wins_the_claim(team, operator):
    run = engine.start_run(operator, make_version(team, [step("a")]))
    attempt = first_attempt(run)
    assert engine.claim_attempt(attempt.pk, "host-a:1") is not None
    assert engine.claim_attempt(attempt.pk, "host-b:2") is None
    attempt.refresh_from_db()
    assert attempt.worker == "host-a:1" and attempt.deliveries == 1


def test_redelivered_message_of_a_finished_attempt_does_nothing(team, operator, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("a", params={"n": 1})])))
    attempt = first_attempt(run)
    run_attempt.run(attempt.pk)
    attempt.refresh_from_db()
    assert attempt.deliveries == 1 and attempt.state == AttemptState.SUCCEEDED
    assert run.step_runs.get().attempts.count() == 1


def test_redelivery_takes_over_from_a_dead_worker_on_the_same_host(team, operator, drive):
    run = engine.start_run(operator, make_version(team, [step("a")]))
    attempt = first_attempt(run)
    host = engine.worker_identity().rpartition(":")[0]
    engine.claim_attempt(attempt.pk, f"{host}:999999999")  # a pid that cannot be alive
    run_attempt.run(attempt.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert first_attempt(run).deliveries == 2


def test_the_late_result_of_a_claim_taken_over_is_refused_even_under_the_same_worker_name(team, operator):
    """Each claim is its own fencing token: the name `host:pid` alone is not one (the threads of a
    thread pool share it, and so can two hosts with one hostname)."""
    run = engine.start_run(operator, make_version(team, [step("a"), step("b", needs=["a"])]))
    attempt = first_attempt(run)
    lost = engine.claim_attempt(attempt.pk, "host:1")
    assert engine.take_over({"host:1"}) == 1  # its worker went silent
    current = engine.claim_attempt(attempt.pk, "host:1")

    assert engine.heartbeat(lost) is False
    assert engine.finish_attempt(lost, engine.AttemptOutcome(output={"late": True})) is False
    attempt.refresh_from_db()
    assert (attempt.state, attempt.output, attempt.deliveries) == (AttemptState.RUNNING, None, 2)
    assert dict(run.step_runs.values_list("step_id", "state")) == {"a": StepState.RUNNING, "b": StepState.PENDING}

    assert engine.heartbeat(current) is True
    assert engine.finish_attempt(current, engine.AttemptOutcome(output={"current": True})) is True
    attempt.refresh_from_db()
    assert (attempt.state, attempt.output) == (AttemptState.SUCCEEDED, {"current": True})


def test_a_repeated_effect_is_detected_by_the_ledger(team, operator):
    run = engine.start_run(operator, make_version(team, [step("a", "test.effect", params={"target": "acct-1"})]))
    claimed = engine.claim_attempt(first_attempt(run).pk, "host:1")
    ctx = AttemptContext(claimed)
    assert ctx.record_effect("write", "acct-1") is True
    assert AttemptContext(claimed).record_effect("write", "acct-1") is False
    assert ctx.record_effect("write", "acct-2") is True


def test_sweeper_requeues_an_attempt_whose_worker_went_silent(team, operator, settings, drive):
    run = engine.start_run(operator, make_version(team, [step("a")]))
    attempt = first_attempt(run)
    engine.claim_attempt(attempt.pk, "gone-host:1")
    later = timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 1)
    assert engine.sweep(now=later).requeued == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.QUEUED and run.step_runs.get().state == StepState.QUEUED
    assert drive(run).state == RunState.SUCCEEDED


def test_sweeper_times_out_a_silent_attempt_past_its_hard_limit(team, operator, settings):
    run = engine.start_run(operator, make_version(team, [step("a", timeout=1)]))
    attempt = first_attempt(run)
    engine.claim_attempt(attempt.pk, "gone-host:1")
    later = timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 10)
    assert engine.sweep(now=later).timed_out == 1
    attempt.refresh_from_db()
    run.refresh_from_db()
    assert attempt.is_timeout and run.state == RunState.FAILED


def test_sweeper_resends_a_message_lost_before_any_worker_saw_it(team, operator, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kw: sent.append(attempt_id))
    run = engine.start_run(operator, make_version(team, [step("a")]))
    later = timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 1)
    assert engine.sweep(now=later).resent == 1
    assert sent == [first_attempt(run).pk] * 2  # the first send and the re-send
    assert engine.sweep(now=later).resent == 0  # not again until it is stale again


def test_sweep_runs_command_reports_what_it_did(team, operator, capsys):
    call_command("sweep_runs")
    assert "requeued 0, timed out 0, re-sent 0, runs started 0" in capsys.readouterr().out


def test_sweeper_is_scheduled_in_beat(settings):
    task = PeriodicTask.objects.get(name=SWEEPER_TASK_NAME)
    assert task.task == "flowdeck.runs.sweep_runs"
    assert task.interval.every == settings.FLOWDECK_SWEEP_INTERVAL_SECONDS


def test_large_output_is_stored_as_an_artifact(team, operator, settings, tmp_path, drive):
    settings.ARTIFACT_DIR = tmp_path
    run = drive(engine.start_run(operator, make_version(team, [step("a", "test.big", params={"bytes": 200_000})])))
    step_run = run.step_runs.get()
    assert step_run.output["bytes"] > settings.FLOWDECK_STEP_OUTPUT_MAX_BYTES
    assert (tmp_path / step_run.output["artifact"]).read_text().startswith('{"blob": "xxx')
    assert first_attempt(run).output_artifact == step_run.output["artifact"]


def test_log_lines_are_capped_per_attempt(team, operator, settings, drive):
    settings.FLOWDECK_STEP_LOG_MAX_LINES = 5
    run = drive(engine.start_run(operator, make_version(team, [step("a", "test.chatty", params={"lines": 8})])))
    attempt = first_attempt(run)
    assert attempt.log_lines.count() == 5 and attempt.log_lines_dropped == 3
    assert attempt.log_lines.first().fields == {"number": 0}


def test_metrics_and_duration_are_recorded(team, operator, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("a", "test.effect", params={"target": "t"})])))
    attempt = first_attempt(run)
    assert (attempt.records_in, attempt.records_out) == (1, 1)
    assert attempt.duration_ms is not None and attempt.worker


def test_query_count_per_step_stays_bounded(team, operator, drive):
    """Claiming and finishing a step in the middle of a chain costs a fixed, small number of queries."""
    run = engine.start_run(operator, make_version(team, chain(5)))
    for _ in range(2):
        run_attempt.run(StepAttempt.objects.get(step_run__run=run, state=AttemptState.QUEUED).pk)
    middle = StepAttempt.objects.get(step_run__run=run, state=AttemptState.QUEUED)
    with CaptureQueriesContext(connection) as queries:
        run_attempt.run(middle.pk)
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    # claim 3 + lock 1 + finish 2 + audit 3 + successor 3
    assert len(statements) <= 12, "\n".join(sql[:120] for sql in statements)
    assert StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).count() == 1


def test_the_sweeper_leaves_attempts_whose_messages_still_wait_in_the_broker(team, operator, monkeypatch):
    """Three attempts waited past the stale limit on one queue that still holds two messages:
    only the oldest, whose message must be lost, is sent again."""
    from apps.monitoring import broker_queues

    sent = []
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda attempt_id, *args, **kwargs: sent.append(attempt_id))
    runs = [engine.start_run(operator, make_version(team, [step("load", "test.noop")], name=f"wf{i}")) for i in range(3)]
    attempts = [StepAttempt.objects.get(step_run__run=run) for run in runs]
    monkeypatch.setattr(broker_queues, "message_counts", lambda queues, timeout=None: {queue: 2 for queue in queues})
    sent.clear()
    later = timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 5)
    assert engine.sweep(now=later).resent == 1
    assert sent == [attempts[0].pk]


def test_the_sweeper_sends_again_when_the_broker_cannot_say(team, operator, monkeypatch):
    from apps.monitoring import broker_queues

    def unavailable(queues, timeout=None):
        raise broker_queues.BrokerUnavailable("down")

    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda *args, **kwargs: None)
    for i in range(2):
        engine.start_run(operator, make_version(team, [step("load", "test.noop")], name=f"wf{i}"))
    monkeypatch.setattr(broker_queues, "message_counts", unavailable)
    later = timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 5)
    assert engine.sweep(now=later).resent == 2
