"""Backfills: one run per slot in a range, paced by concurrency, shown and cancelled as a whole."""

from datetime import datetime, timezone as dt_timezone

import pytest

from apps.runs.models import Run, RunState, Trigger
from apps.triggers import services
from apps.triggers.models import Backfill
from tests.triggers.conftest import declared

UTC = dt_timezone.utc


@pytest.fixture
def daily(make_workflow, schedule):
    return make_workflow([schedule("0 6 * * *")], inputs=declared(scheduled_for="string"), concurrency=2)


def test_backfill_runs_every_slot_two_at_a_time(daily, operator, drive, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        backfill = services.create_backfill(operator, daily, datetime(2026, 11, 1, tzinfo=UTC),
                                            datetime(2026, 11, 5, 23, tzinfo=UTC))
    assert backfill.slots.count() == 5
    started = Run.objects.filter(workflow=daily)
    assert started.count() == 2 and {run.trigger for run in started} == {Trigger.BACKFILL}
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            for run in Run.objects.filter(workflow=daily).exclude(state=RunState.SUCCEEDED):
                drive(run)
    backfill.refresh_from_db()
    assert backfill.state == Backfill.State.FINISHED
    assert sorted(run.inputs["scheduled_for"][:10] for run in Run.objects.filter(workflow=daily)) == [
        "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]


def test_cancelling_a_backfill_stops_it_as_a_whole(daily, operator, client_for, drive,
                                                   django_capture_on_commit_callbacks):
    # `drive` keeps the started runs' steps out of the broker.
    with django_capture_on_commit_callbacks(execute=True):
        backfill = services.create_backfill(operator, daily, datetime(2026, 11, 1, tzinfo=UTC),
                                            datetime(2026, 11, 5, 23, tzinfo=UTC))
    response = client_for(operator).post(f"/triggers/backfills/{backfill.pk}/cancel/", follow=True)
    assert "Backfill cancelled" in response.content.decode()
    backfill.refresh_from_db()
    assert backfill.state == Backfill.State.CANCELLED
    assert set(Run.objects.filter(workflow=daily).values_list("state", flat=True)) == {RunState.CANCELLED}
    assert services.backfill_progress(backfill)["waiting"] == 0


def test_backfill_page_shows_progress(daily, operator, client_for, viewer):
    backfill = services.create_backfill(operator, daily, datetime(2026, 11, 1, tzinfo=UTC),
                                        datetime(2026, 11, 2, 23, tzinfo=UTC))
    text = client_for(viewer).get(f"/triggers/backfills/{backfill.pk}/").content.decode()
    assert "0 of 2 runs finished" in text
    assert "Cancel the whole backfill" not in text  # a viewer cannot cancel


def test_operator_starts_a_backfill_from_the_triggers_page(daily, operator, client_for):
    response = client_for(operator).post(f"/triggers/workflows/{daily.pk}/backfills/",
                                         {"start": "2026-11-01", "end": "2026-11-03", "timezone": "UTC"}, follow=True)
    assert "Backfill started: 3 run(s)" in response.content.decode()


def test_backfill_without_a_schedule_says_what_to_do(make_workflow, operator, client_for):
    workflow = make_workflow([])
    response = client_for(operator).post(f"/triggers/workflows/{workflow.pk}/backfills/",
                                         {"start": "2026-11-01", "end": "2026-11-03"}, follow=True)
    assert "add a `schedule` trigger first" in response.content.decode()


def test_viewer_cannot_start_a_backfill(daily, viewer, client_for):
    response = client_for(viewer).post(f"/triggers/workflows/{daily.pk}/backfills/",
                                       {"start": "2026-11-01", "end": "2026-11-03"})
    assert response.status_code == 403 and not Backfill.objects.exists()


def test_backfill_api_creates_and_reports_progress(daily, operator, api_for):
    api = api_for(operator)
    created = api.post(f"/api/v1/workflows/{daily.pk}/backfills",
                       {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T23:00:00Z"}, format="json")
    assert created.status_code == 201 and created.json()["progress"]["total"] == 2
    cancelled = api.post(f"/api/v1/backfills/{created.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert api.post(f"/api/v1/backfills/{created.json()['id']}/cancel").status_code == 409
