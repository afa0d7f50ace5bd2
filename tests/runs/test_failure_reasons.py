"""The engine names the failures it sees itself: a step stopped at its timeout, a worker lost past it."""

import dataclasses
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from apps.catalog.registry import Reason, get_step_type
from apps.runs import engine, tasks
from apps.runs.models import StepAttempt
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def test_a_step_stopped_at_its_timeout_is_a_timeout(team, operator, drive, monkeypatch):
    def stopped(ctx):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "get_step_type", lambda name: dataclasses.replace(get_step_type(name), run=stopped))
    run = drive(engine.start_run(operator, make_version(team, [step("a", timeout=7)])))
    attempt = StepAttempt.objects.get(step_run__run=run)
    assert (attempt.error_reason, attempt.error_detail) == (Reason.TIMEOUT, {"timeout_seconds": 7})


def test_a_silent_worker_past_the_hard_limit_is_a_lost_worker(team, operator, settings):
    run = engine.start_run(operator, make_version(team, [step("a", timeout=1)]))
    attempt = StepAttempt.objects.get(step_run__run=run)
    engine.claim_attempt(attempt.pk, "gone-host:1")
    engine.sweep(now=timezone.now() + timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS + 10))
    attempt.refresh_from_db()
    assert (attempt.error_reason, attempt.error_detail) == (Reason.WORKER_LOST, {"worker": "gone-host:1"})
