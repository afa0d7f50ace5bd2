"""The Prometheus endpoint: bearer-protected, reading the database at scrape time."""

import pytest

from apps.runs import engine
from tests.runs.factories import step


@pytest.fixture
def scraped(settings, client):
    settings.FLOWDECK_METRICS_TOKEN = "scrape-me"

    def scrape():
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
        assert response.status_code == 200
        return response.content.decode()

    return scrape


def test_metrics_are_off_without_a_token(client, settings, db):
    settings.FLOWDECK_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_a_wrong_token_is_refused(client, settings, db):
    settings.FLOWDECK_METRICS_TOKEN = "scrape-me"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert response.status_code == 401 and "Bearer" in response["WWW-Authenticate"]


def test_scrape_reports_runs_step_durations_queues_approvals_and_slas(scraped, make_workflow, drive, operator,
                                                                      approver_group):
    done = make_workflow([], name="done", steps=[step("load", "test.rows", params={"rows": 5})])
    drive(engine.start_run(operator, done.current_version))
    gated = make_workflow([], name="gated", steps=[step("approve", approval={"group": "billing-approvers",
                                                                             "quorum": 1})])
    engine.start_run(operator, gated.current_version)
    queued = make_workflow([], name="queued", steps=[step("wait")])
    engine.start_run(operator, queued.current_version)
    text = scraped()
    assert 'flowdeck_runs{state="succeeded"} 1.0' in text
    assert 'flowdeck_runs{state="waiting"} 1.0' in text
    assert 'flowdeck_step_duration_seconds_count{step_type="test.rows"} 1.0' in text
    assert 'flowdeck_step_duration_seconds_bucket{le="+Inf",step_type="test.rows"} 1.0' in text
    assert 'flowdeck_queue_depth{queue="steps"} 1.0' in text
    assert "flowdeck_pending_approvals 1.0" in text
    assert "flowdeck_sla_breaches_total 0.0" in text
    assert "flowdeck_sla_at_risk 0.0" in text
