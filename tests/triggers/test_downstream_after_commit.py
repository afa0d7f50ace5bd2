"""Downstream starts wait for the upstream run's end to commit (run_ended), outside its lock, and
the tick catches up on a start lost to a crash between the commit and the receiver."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs import engine, signals, tasks
from apps.runs.models import AttemptState, Run, RunState, StepAttempt
from apps.triggers import services
from apps.triggers.models import TriggerEvent
from tests.runs.factories import step


@pytest.fixture
def upstream_and_report(make_workflow):
    upstream = make_workflow([], name="nightly-etl", steps=[step("extract", params={"rows": 3})])
    report = make_workflow([{"after": {"workflow": "nightly-etl", "status": "succeeded"}}], name="report")
    return upstream, report


def finish_without_commit(run, monkeypatch, django_capture_on_commit_callbacks):
    """Play the worker for `run` and return what it left for after its commits, not yet run."""
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda *args, **kwargs: None)
    with django_capture_on_commit_callbacks() as callbacks:
        while attempt := StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).first():
            tasks.run_attempt.run(attempt.pk)
    run.refresh_from_db()
    return callbacks


def test_the_downstream_run_starts_only_after_the_upstream_end_commits(
        upstream_and_report, operator, monkeypatch, django_capture_on_commit_callbacks):
    upstream, report = upstream_and_report
    run = engine.start_run(operator, upstream.current_version)
    callbacks = finish_without_commit(run, monkeypatch, django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED
    assert not Run.objects.filter(workflow=report).exists()
    for callback in callbacks:
        callback()
    assert Run.objects.filter(workflow=report).count() == 1
    assert TriggerEvent.objects.filter(workflow=report, dedup_key=f"run:{run.pk}").count() == 1


def test_a_failing_run_ended_receiver_does_not_stop_the_others(upstream_and_report, operator, drive, caplog):
    upstream, report = upstream_and_report

    def broken(sender, run, **kwargs):
        raise RuntimeError("receiver bug")

    signals.run_ended.connect(broken, dispatch_uid="test.broken")
    try:
        run = drive(engine.start_run(operator, upstream.current_version))
    finally:
        signals.run_ended.disconnect(dispatch_uid="test.broken")
    assert run.state == RunState.SUCCEEDED
    assert Run.objects.filter(workflow=report).count() == 1


def test_the_tick_starts_a_downstream_run_lost_after_the_commit_once(
        upstream_and_report, operator, monkeypatch, django_capture_on_commit_callbacks):
    upstream, report = upstream_and_report
    run = engine.start_run(operator, upstream.current_version)
    finish_without_commit(run, monkeypatch, django_capture_on_commit_callbacks)  # the receiver never runs
    assert not Run.objects.filter(workflow=report).exists()
    assert services.catch_up_downstream() == 1
    assert services.catch_up_downstream() == 0
    assert Run.objects.filter(workflow=report).count() == 1


def test_the_catch_up_leaves_runs_that_ended_long_ago(
        upstream_and_report, operator, monkeypatch, django_capture_on_commit_callbacks):
    upstream, report = upstream_and_report
    run = engine.start_run(operator, upstream.current_version)
    finish_without_commit(run, monkeypatch, django_capture_on_commit_callbacks)
    later = timezone.now() + services.DOWNSTREAM_CATCH_UP + timedelta(seconds=1)
    assert services.catch_up_downstream(now=later) == 0
    assert not Run.objects.filter(workflow=report).exists()
