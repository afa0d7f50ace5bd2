"""History at a glance: the workflow page's and the list's last runs, success rate and percentiles
computed from known runs, the charts' data tables, the team dashboard, and pausing schedules."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.runs.history import percentile
from apps.runs.models import Run, RunState
from apps.triggers import services as triggers
from apps.triggers.models import TriggerBinding
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

SCHEDULE = {"schedule": {"cron": "0 6 * * *", "timezone": "Europe/London", "calendar": None, "catch_up": "skip"}}


@pytest.fixture
def workflow_with_history(team):
    version = make_version(team, [step("only")], name="nightly-close", sla={"max_duration": 25}, triggers=[SCHEDULE])
    start = timezone.now() - timedelta(days=2)
    # Three successes of 10, 20 and 30 s, one failure of 5 s, and an old success outside the 30 days.
    for index, (state, seconds) in enumerate([("succeeded", 10), ("failed", 5), ("succeeded", 30),
                                              ("succeeded", 20)]):
        created = start + timedelta(hours=index)
        Run.objects.create(workflow=version.workflow, version=version, team=team, state=state, created_at=created,
                           started_at=created, finished_at=created + timedelta(seconds=seconds))
    old = timezone.now() - timedelta(days=60)
    Run.objects.create(workflow=version.workflow, version=version, team=team, state=RunState.FAILED, created_at=old,
                       started_at=old, finished_at=old + timedelta(seconds=1))
    triggers.sync_triggers(version.workflow)
    return version.workflow


def test_workflow_page_shows_rates_percentiles_and_the_charts_data_table(client_for, viewer, workflow_with_history):
    page = client_for(viewer).get(reverse("workflows:detail", args=[workflow_with_history.pk])).text
    assert re.search(r"Success rate <small>\(30 days\)</small></dt><dd>75% <small class=\"muted\">3 of 4</small>", page)
    assert "<dt>p50 duration</dt><dd>20 s</dd>" in page and "<dt>p95 duration</dt><dd>30 s</dd>" in page
    table = re.search(r'data-chart-table="duration">(.*?)</table>', page, re.DOTALL).group(1)
    assert re.findall(r"<td>([^<]+)</td><td>(\w+)</td>", table) == [
        ("1.0 s", "Failed"), ("10 s", "Succeeded"), ("5.0 s", "Failed"), ("30 s", "Succeeded"), ("20 s", "Succeeded")]
    assert "dashed line: SLA 25 s" in page and 'id="chart-duration-data"' in page
    assert page.count('role="listitem" href="/runs/') == 5  # the last-run bars
    assert "Next scheduled runs" in page and "Pause schedule" not in page  # a viewer sees no toggle


def test_workflows_list_and_team_dashboard_show_each_workflows_history(client_for, viewer, team,
                                                                      workflow_with_history):
    client = client_for(viewer)
    listing = client.get(reverse("workflows:list")).text
    assert 'aria-label="Last runs of nightly-close, oldest first"' in listing
    assert "<td>75%</td>" in listing and "<td>20 s / 30 s</td>" in listing
    assert '<span class="schedule-toggle"><time datetime=' in listing and "Pause the schedule" not in listing
    dashboard = client.get(reverse("runs:dashboard"), {"team": team.slug}).text
    assert 'data-chart-table="team-success"' in dashboard and "75% <small" in dashboard
    assert client.get(reverse("runs:dashboard"), {"team": "people-ops"}).status_code == 404


def test_the_api_gives_what_the_workflow_page_and_the_dashboard_show(api_for, viewer, team, workflow_with_history):
    api = api_for(viewer)
    answer = api.get(reverse("api-workflow-history", args=[workflow_with_history.pk])).json()
    assert (answer["success_rate"], answer["p50_seconds"], answer["p95_seconds"]) == (75, 20.0, 30.0)
    assert [run["state"] for run in answer["last_runs"]][-4:] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert answer["charts"][0]["threshold"] == 25
    dashboard = api.get(reverse("api-team-dashboard", args=[team.slug]))
    assert dashboard.status_code == 200 and [chart["key"] for chart in dashboard.json()["charts"]] == \
        ["team-runs", "team-success", "team-duration"]
    assert api.get(reverse("api-team-dashboard", args=["people-ops"])).status_code == 404


def test_percentile_is_a_value_that_occurred():
    assert percentile([30, 10, 20], 0.5) == 20 and percentile([30, 10, 20], 0.95) == 30
    assert percentile(list(range(1, 101)), 0.95) == 95 and percentile([], 0.5) is None


def test_an_operator_pauses_and_resumes_the_schedule_and_each_is_audited(client_for, operator,
                                                                         workflow_with_history):
    client = client_for(operator)
    url = reverse("triggers:schedules_paused", args=[workflow_with_history.pk])
    page = client.post(url, {"paused": "true"}, follow=True).text
    binding = TriggerBinding.objects.get(workflow=workflow_with_history)
    assert binding.paused_at is not None and binding.paused_by == operator
    assert "Resume schedule" in page and "Next scheduled runs" not in page
    assert triggers.fire_due_schedules(timezone.now() + timedelta(days=3)) == 0
    listing = client.get(reverse("workflows:list")).text
    assert '<span class="badge state-paused">paused</span>' in listing
    assert 'aria-label="Resume the schedule of nightly-close"' in listing
    client.post(url, {"paused": "false"})
    binding.refresh_from_db()
    assert binding.paused_at is None and binding.handled_until >= timezone.now() - timedelta(minutes=1)
    assert list(AuditEvent.objects.filter(action__startswith="schedule.").order_by("pk")
                .values_list("action", "actor")) == [("schedule.paused", operator.pk), ("schedule.resumed", operator.pk)]


def test_a_viewer_may_not_pause_a_schedule_on_the_page_or_the_api(client_for, api_for, viewer, workflow_with_history):
    page = client_for(viewer).post(reverse("triggers:schedules_paused", args=[workflow_with_history.pk]),
                                   {"paused": "true"})
    api = api_for(viewer).post(reverse("api-workflow-schedules-pause", args=[workflow_with_history.pk]))
    assert page.status_code == 403 and api.status_code == 403
    assert TriggerBinding.objects.get(workflow=workflow_with_history).paused_at is None
    assert not AuditEvent.objects.filter(action__startswith="schedule.").exists()


def test_the_api_pauses_and_resumes_schedules(api_for, operator, workflow_with_history):
    api = api_for(operator)
    paused = api.post(reverse("api-workflow-schedules-pause", args=[workflow_with_history.pk]))
    assert paused.status_code == 200 and paused.json()["paused"] == 1
    resumed = api.post(reverse("api-workflow-schedules-resume", args=[workflow_with_history.pk]))
    assert resumed.status_code == 200 and resumed.json()["paused"] == 0
