"""A step's log lines over the API: read forward from a cursor, filtered by level, scoped like
the step's page (404 outside the team, or for a step the run does not have)."""

import pytest
from django.urls import reverse

from apps.runs import engine
from apps.runs.models import StepLogLine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(team, operator, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("extract", params={"rows": 2})])))
    attempt = run.step_runs.get(step_id="extract").attempts.get()
    StepLogLine.objects.create(attempt=attempt, level="warning", message="2 rows were late")
    StepLogLine.objects.create(attempt=attempt, level="error", message="1 row was rejected", fields={"row": 7})
    return run


def test_lines_are_read_forward_from_the_last_one_seen(api_for, finished_run, viewer):
    api, url = api_for(viewer), reverse("api-step-logs", args=[finished_run.pk, "extract"])
    everything = api.get(url).json()
    assert everything["state"] == "succeeded" and everything["more"] is False
    assert [(line["attempt"], line["level"], line["message"]) for line in everything["lines"]] == [
        (1, "info", "echo"), (1, "warning", "2 rows were late"), (1, "error", "1 row was rejected")]
    after_first = api.get(url, {"after": everything["lines"][0]["id"]}).json()["lines"]
    assert [line["message"] for line in after_first] == ["2 rows were late", "1 row was rejected"]
    assert api.get(url, {"after": everything["lines"][-1]["id"]}).json()["lines"] == []
    errors = api.get(url, {"level": "error"}).json()["lines"]
    assert [(line["message"], line["fields"]) for line in errors] == [("1 row was rejected", {"row": 7})]


def test_outsiders_and_unknown_steps_get_404(api_for, finished_run, outsider, viewer):
    assert api_for(outsider).get(reverse("api-step-logs", args=[finished_run.pk, "extract"])).status_code == 404
    missing = api_for(viewer).get(reverse("api-step-logs", args=[finished_run.pk, "nope"]))
    assert missing.status_code == 404 and "has no step 'nope'" in missing.json()["detail"]
