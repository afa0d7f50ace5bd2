"""A worker that dies is noticed from its liveness record within a few heartbeats, and its running
attempts go to live workers; a live worker's attempts are never taken over, however long they run."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.platform.liveness import take_over_from_dead_workers
from apps.platform.models import ProcessHeartbeat, ProcessKind
from apps.runs import engine
from apps.runs.models import AttemptState, StepAttempt, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def worker(name, pids, *, silent_for=0, stopped=False):
    now = timezone.now()
    return ProcessHeartbeat.objects.create(
        kind=ProcessKind.WORKER, name=name, host="node-a", pid=pids[0] - 1, pool_pids=pids, queues=["steps"],
        concurrency=len(pids), beat_at=now - timedelta(seconds=silent_for), stopped_at=now if stopped else None)


def running_on(team, operator, process, name):
    run = engine.start_run(operator, make_version(team, [step("load", "test.noop")], name=name))
    attempt = StepAttempt.objects.get(step_run__run=run)
    # As a worker's claim leaves it: running, heartbeat fresh, owned by that pool process.
    StepAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.RUNNING, worker=process,
                                                     started_at=timezone.now(), heartbeat_at=timezone.now())
    attempt.step_run.__class__.objects.filter(pk=attempt.step_run_id).update(state=StepState.RUNNING)
    return attempt


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda *args, **kwargs: None)


def test_a_silent_workers_attempts_are_taken_over_and_a_live_ones_are_not(team, operator, settings):
    worker("worker@dead", [101, 102], silent_for=settings.FLOWDECK_WORKER_STALE_SECONDS + 1)
    worker("worker@alive", [201])
    lost = running_on(team, operator, "node-a:101", "lost")
    busy = running_on(team, operator, "node-a:201", "busy")
    assert take_over_from_dead_workers() == 1
    lost.refresh_from_db()
    busy.refresh_from_db()
    assert (lost.state, lost.worker) == (AttemptState.QUEUED, "")
    assert busy.state == AttemptState.RUNNING and busy.worker == "node-a:201"
    assert AuditEvent.objects.get(action="step.requeued").after["lost_worker"] == "node-a:101"
    assert take_over_from_dead_workers() == 0  # nothing left to take over


def test_a_cleanly_stopped_workers_leftover_attempt_is_taken_over(team, operator):
    worker("worker@stopped", [301], stopped=True)
    attempt = running_on(team, operator, "node-a:301", "leftover")
    assert take_over_from_dead_workers() == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.QUEUED


def test_a_pid_a_live_worker_now_uses_again_is_left_alone(team, operator, settings):
    worker("worker@old", [401], silent_for=settings.FLOWDECK_WORKER_STALE_SECONDS + 1)
    worker("worker@new", [401])
    attempt = running_on(team, operator, "node-a:401", "reused")
    assert take_over_from_dead_workers() == 0
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.RUNNING


def test_the_sweeper_takes_over_too(team, operator, settings):
    worker("worker@dead", [501], silent_for=settings.FLOWDECK_WORKER_STALE_SECONDS + 1)
    attempt = running_on(team, operator, "node-a:501", "swept")
    assert engine.sweep().requeued == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.QUEUED
