"""SLAs: a run predicted to miss its deadline is marked at risk before it does, the approvers
holding it up are told, and a breach opens an incident and an alert."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.incidents.models import Incident
from apps.monitoring import services
from apps.monitoring.models import Alert, AlertKind, AlertState, SlaState
from apps.runs import engine
from apps.runs.models import RunState, StepAttempt
from tests.runs.factories import step

GATED = [step("extract"), step("approve", needs=["extract"], approval={"group": "billing-approvers", "quorum": 1}),
         step("load", needs=["approve"])]


@pytest.fixture
def slow_history(make_workflow, drive, operator, approver_group):
    """Five past runs of a workflow with a 10-minute SLA whose `load` step took 15 minutes."""
    workflow = make_workflow([], name="ledger", steps=GATED, sla={"max_duration": 600, "finish_by": None,
                                                                   "timezone": "UTC"})
    for _ in range(5):
        run = drive(engine.start_run(operator, workflow.current_version))
        engine.release_gate(run.step_runs.get(step_id="approve"))
        drive(run)
    StepAttempt.objects.filter(step_run__step_id="load").update(duration_ms=900_000)
    return workflow


def test_run_is_marked_at_risk_before_it_breaches(slow_history, drive, operator, notified):
    run = drive(engine.start_run(operator, slow_history.current_version))
    assert run.state == RunState.WAITING
    status = services.evaluate_sla(run)
    assert status.state == SlaState.AT_RISK
    assert status.predicted_finish > status.deadline > timezone.now()  # flagged while there is still time
    alert = Alert.objects.get(kind=AlertKind.SLA_AT_RISK)
    assert alert.state == AlertState.OPEN and alert.run == run
    # The approvers whose decision holds the run are among those told.
    (kind, _, people), = [call for call in notified if call[0] == "alert.sla_at_risk"]
    assert {"abe-approver", "amy-approver"} <= set(people)
    assert not Incident.objects.exists()


def test_breach_opens_an_incident_and_replaces_the_at_risk_alert(slow_history, drive, operator, notified):
    run = drive(engine.start_run(operator, slow_history.current_version))
    services.evaluate_sla(run)
    status = services.evaluate_sla(run, now=timezone.now() + timedelta(minutes=11))
    assert status.state == SlaState.BREACHED and status.breached_at is not None
    assert Alert.objects.get(kind=AlertKind.SLA_AT_RISK).state == AlertState.CLOSED
    assert Alert.objects.get(kind=AlertKind.SLA_BREACH).state == AlertState.OPEN
    incident = Incident.objects.get()
    assert incident.team == run.team and f"run {run.pk}" in incident.title
    services.evaluate_sla(run, now=timezone.now() + timedelta(minutes=12))
    assert Incident.objects.count() == 1 and Alert.objects.filter(kind=AlertKind.SLA_BREACH).count() == 1


def test_a_run_on_track_raises_nothing_and_its_time_is_split(make_workflow, drive, operator, notified):
    workflow = make_workflow([], name="quick", steps=[step("a"), step("b", needs=["a"])],
                             sla={"max_duration": 3600, "finish_by": None, "timezone": "UTC"})
    run = engine.start_run(operator, workflow.current_version)
    status = services.evaluate_sla(run)
    assert status.state == SlaState.ON_TRACK and not Alert.objects.exists() and notified == []
    drive(run)
    status.refresh_from_db()
    assert status.state == SlaState.MET  # settled by the engine's run-finished signal
    assert status.waiting_for_people_seconds == 0


def test_finish_by_deadline_is_the_next_such_time_in_the_sla_zone(make_workflow, operator):
    workflow = make_workflow([], sla={"max_duration": None, "finish_by": "06:00", "timezone": "Europe/Berlin"})
    run = engine.start_run(operator, workflow.current_version)
    deadline = workflow.current_version.plan.deadline(run)
    local = deadline.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (6, 0) and timedelta(0) < deadline - run.created_at <= timedelta(days=1)


def test_run_page_partial_shows_the_sla(slow_history, drive, operator, client_for, viewer, notified):
    run = drive(engine.start_run(operator, slow_history.current_version))
    services.evaluate_sla(run)
    text = client_for(viewer).get(f"/monitoring/runs/{run.pk}/sla/").content.decode()
    assert "At risk" in text and "waiting for people" in text
