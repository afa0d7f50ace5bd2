"""Exception-only alerts: unusual record counts, paused runs; deduplicated; pages and thresholds."""

import pytest

from apps.monitoring import services
from apps.monitoring.models import Alert, AlertKind, AlertState, MonitorSettings
from apps.runs import engine
from tests.runs.factories import decide, step


@pytest.fixture
def counted(make_workflow, drive, operator):
    """A workflow with six normal runs of about a thousand records; `run(rows)` adds one."""

    def run(rows):
        workflow = make_workflow([], name="usage", steps=[step("load", "test.rows", params={"rows": rows})])
        return drive(engine.start_run(operator, workflow.current_version))

    for rows in (1000, 1010, 990, 1005, 995, 1002):
        run(rows)
    return run


def records_alerts():
    return Alert.objects.filter(kind=AlertKind.ANOMALY, detail__metric="records_out")


def test_unusually_small_record_count_raises_one_alert(counted, notified):
    assert not records_alerts().exists()
    small = counted(3)
    alert = records_alerts().get()
    assert alert.run == small and alert.state == AlertState.OPEN
    assert "record count 3 is unusually lower" in alert.title
    assert [call[0] for call in notified].count("alert.anomaly") >= 1
    counted(4)  # the same exception again: counted on the open alert, nobody is told twice
    alert.refresh_from_db()
    assert records_alerts().count() == 1 and alert.occurrences == 2


def test_normal_record_count_raises_nothing(counted, notified):
    counted(1001)
    assert not records_alerts().exists()


def test_threshold_and_checks_are_per_workflow(counted, author):
    workflow = counted(1000).workflow
    services.save_settings(author, workflow, check_records=False)
    counted(3)
    assert not records_alerts().exists()


def test_paused_run_opens_an_alert_that_closes_when_it_moves_on(make_workflow, drive, operator, notified):
    workflow = make_workflow([], steps=[step("load", "test.fail", on_failure="pause")])
    run = drive(engine.start_run(operator, workflow.current_version))
    alert = Alert.objects.get(kind=AlertKind.RUN_PAUSED)
    assert alert.run == run and alert.state == AlertState.OPEN
    decide(operator, run, "abort")
    alert.refresh_from_db()
    assert alert.state == AlertState.CLOSED


def test_alerts_page_lists_open_alerts_of_your_teams_only(make_workflow, drive, operator, client_for, outsider,
                                                           viewer):
    workflow = make_workflow([], steps=[step("load", "test.fail", on_failure="pause")])
    drive(engine.start_run(operator, workflow.current_version))
    assert "paused" in client_for(viewer).get("/monitoring/alerts/").content.decode()
    page = client_for(outsider).get("/monitoring/alerts/").content.decode()
    assert "No open alerts" in page


def test_operator_closes_an_alert_viewer_cannot(make_workflow, drive, operator, client_for, viewer):
    workflow = make_workflow([], steps=[step("load", "test.fail", on_failure="pause")])
    drive(engine.start_run(operator, workflow.current_version))
    alert = Alert.objects.get()
    assert client_for(viewer).post(f"/monitoring/alerts/{alert.pk}/close/").status_code == 403
    response = client_for(operator).post(f"/monitoring/alerts/{alert.pk}/close/", follow=True)
    assert "Alert closed" in response.content.decode()
    alert.refresh_from_db()
    assert alert.state == AlertState.CLOSED


def test_author_edits_thresholds_on_the_settings_page(make_workflow, client_for, author, viewer):
    workflow = make_workflow([])
    url = f"/monitoring/workflows/{workflow.pk}/"
    form = {"history_runs": 30, "min_history": 10, "threshold": 5, "check_duration": "on", "check_records": "on"}
    assert client_for(viewer).post(url, form).status_code == 403
    assert "Only authors" in client_for(viewer).get(url).content.decode()
    response = client_for(author).post(url, form, follow=True)
    assert "Monitor thresholds saved" in response.content.decode()
    assert MonitorSettings.objects.get(workflow=workflow).threshold == 5
    bad = client_for(author).post(url, {**form, "threshold": 0, "min_history": 40})
    text = bad.content.decode()
    assert "Use a positive number" in text and "Must not be more than" in text


def test_approval_nearing_expiry_alerts_its_approvers_once(make_workflow, drive, operator, approver_group, notified):
    from apps.approvals.models import ApprovalRequest

    workflow = make_workflow([], steps=[step("approve", approval={
        "group": "billing-approvers", "quorum": 1, "timeout": 1800, "escalate_to": None, "on_expiry": "reject"})])
    drive(engine.start_run(operator, workflow.current_version))
    assert ApprovalRequest.objects.filter(expires_at__isnull=False).exists()
    assert services.alert_expiring_approvals() == 1
    assert services.alert_expiring_approvals() == 0  # still the same open alert
    (kind, _, people), = [call for call in notified if call[0] == "alert.approval_expiring"]
    assert {"abe-approver", "amy-approver"} <= set(people)


def test_steps_waiting_on_a_queue_no_live_worker_consumes_alert_the_team_until_one_does(
        make_workflow, operator, notified, settings):
    from django.utils import timezone

    from apps.platform.health import workers_check
    from apps.platform.liveness import record_heartbeat
    from apps.runs.models import StepAttempt

    settings.FLOWDECK_WORKER_STALE_SECONDS = 6
    record_heartbeat("worker", "w1@host", queues=["steps", "default"], concurrency=2)
    workflow = make_workflow([], name="etl", steps=[step("extract", queue="etl")])
    run = engine.start_run(operator, workflow.current_version)
    waited = timezone.now() - timezone.timedelta(seconds=10)
    StepAttempt.objects.filter(step_run__run=run).update(queued_at=waited, not_before=waited)

    assert services.alert_queues_without_consumer() == 1
    assert services.alert_queues_without_consumer() == 0  # the same alert, counted again
    alert = Alert.objects.get(kind=AlertKind.NO_CONSUMER, state=AlertState.OPEN)
    assert alert.team == run.team and alert.occurrences == 2
    assert alert.title == "Queue etl has 1 waiting step and no worker consumes it"
    check = workers_check()
    assert not check.ok
    assert check.summary == "1 worker up, 0 of 2 processes busy. No live worker consumes etl (1 waiting)."

    record_heartbeat("worker", "w2@host", queues=["etl"], concurrency=1)
    services.alert_queues_without_consumer()
    alert.refresh_from_db()
    assert alert.state == AlertState.CLOSED


def test_comparing_with_history_reads_each_runs_records_once(counted):
    """The history's figures were read at their own ends: comparing the next run reads only its own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    latest = counted(1000)
    with CaptureQueriesContext(connection) as queries:
        assert services.find_anomalies(latest, services.settings_for(latest.workflow)) == []
    sums = [query["sql"] for query in queries.captured_queries if "SUM(" in query["sql"]]
    assert sums == []  # every run compared was read when it ended
    services._records_of_succeeded.clear()  # a fresh process: the history is read once, in one query
    with CaptureQueriesContext(connection) as queries:
        services.find_anomalies(latest, services.settings_for(latest.workflow))
    assert len([query for query in queries.captured_queries if "SUM(" in query["sql"]]) == 1
