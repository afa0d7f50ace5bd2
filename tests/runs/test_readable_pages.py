"""Runs people can read: the run page's Gantt and JSON viewer, human durations, records only where
a step reports them, the step page's parameters and log viewer, and why a run is queued."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.platform import liveness
from apps.platform.models import ProcessKind
from apps.runs import engine
from apps.runs.models import RunState, StepAttempt
from apps.runs.templatetags.readable import human_duration
from apps.runs.timeline import progress_bar
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

INPUTS = {"period": {"type": "string", "required": True, "default": None, "description": ""},
          "amount": {"type": "number", "required": False, "default": 1, "description": ""}}
LANE = re.compile(r'<g class="gantt-lane state-(\w+)" role="listitem" aria-label="([^"]+)"')


@pytest.fixture
def finished_run(team, operator, drive):
    version = make_version(team, [
        step("extract", "test.flaky", params={"succeed_on": 2, "period": "{{ inputs.period }}"},
             retries={"count": 1, "delay": 0}),
        step("load", "test.effect", needs=["extract"], params={"target": "ledger"}),
    ], name="month-close", inputs=INPUTS)
    run = drive(engine.start_run(operator, version, inputs={"period": "2026-11", "amount": 120.0}))
    assert run.state == RunState.SUCCEEDED
    return run


def test_run_page_draws_a_gantt_lane_per_attempt_and_shows_inputs_as_json(client_for, viewer, finished_run):
    page = client_for(viewer).get(reverse("runs:detail", args=[finished_run.pk])).text
    lanes = LANE.findall(page)
    assert [label.split(":")[0] for _, label in lanes] == \
        ["extract · attempt 1", "extract · attempt 2", "load · attempt 1"]
    assert [state for state, _ in lanes] == ["failed", "succeeded", "succeeded"]
    assert page.count('class="seg-running"') == 3
    assert 'aria-label="Inputs of run"' in page
    assert '<span class="json-key">period</span>: <span class="json-string">&quot;2026-11&quot;</span>' in page
    assert '<span class="json-key">amount</span>: <span class="json-number">120.0</span>' in page
    assert "{&#x27;period&#x27;" not in page and "{'period'" not in page


def test_durations_read_in_human_units(client_for, viewer, finished_run):
    start = finished_run.created_at
    finished_run.__class__.objects.filter(pk=finished_run.pk).update(
        started_at=start + timedelta(seconds=3), finished_at=start + timedelta(seconds=28))
    StepAttempt.objects.filter(step_run__run=finished_run, step_run__step_id="load").update(duration_ms=252_000)
    client = client_for(viewer)
    run_page = client.get(reverse("runs:detail", args=[finished_run.pk])).text
    assert "<dt>Duration</dt><dd>25 s</dd>" in run_page
    assert "3.0 s" in run_page  # queue wait
    step_page = client.get(reverse("runs:step", args=[finished_run.pk, "load"])).text
    assert "4 min 12 s (latest attempt)" in step_page and "252000 ms" not in step_page
    assert [human_duration(s) for s in (0.85, 2.5, 25.003, 252, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == \
        ["850 ms", "2.5 s", "25 s", "4 min 12 s", "3 h 5 min", "2 d 4 h"]


def test_records_show_only_for_a_step_that_reports_them(client_for, viewer, finished_run):
    client = client_for(viewer)
    silent = client.get(reverse("runs:step", args=[finished_run.pk, "extract"])).text
    assert "<dt>Records</dt>" not in silent and "0 in" not in silent
    reporting = client.get(reverse("runs:step", args=[finished_run.pk, "load"])).text
    assert "<dt>Records</dt><dd>1 in · 1 out · 0 rejected</dd>" in reporting


def test_step_page_shows_rendered_parameters_and_a_readable_traceback(client_for, viewer, finished_run):
    client = client_for(viewer)
    url = reverse("runs:step", args=[finished_run.pk, "extract"])
    page = client.get(url).text
    assert 'aria-label="Parameters of the latest attempt"' in page
    assert '<span class="json-key">period</span>: <span class="json-string">&quot;2026-11&quot;</span>' in page
    traceback = re.search(r"<summary>Traceback</summary><pre>(.*?)</pre>", page, re.DOTALL).group(1)
    assert "\n" in traceback and "\\n" not in traceback and "flaky failure on attempt 1" in traceback
    assert str(settings.BASE_DIR) not in page and "&lt;flowdeck&gt;/apps/runs/testing_steps.py" in traceback
    found = client.get(url, {"q": "attempt 1", "level": "error"}).text
    assert found.count('<li class="level-error">') == 1
    assert "No log lines match" in client.get(url, {"q": "no such words"}).text


def test_a_queued_run_says_it_waits_for_the_concurrency_limit_and_a_queued_step_for_a_worker(
        client_for, team, operator, viewer):
    version = make_version(team, [step("only", queue="etl")], name="limited", concurrency=1)
    first = engine.start_run(operator, version)
    second = engine.start_run(operator, version)
    client = client_for(viewer)
    assert "only: no worker consumes queue etl" in client.get(reverse("runs:detail", args=[first.pk])).text
    liveness.record_heartbeat(ProcessKind.WORKER, "worker@etl-host", queues=["etl"], concurrency=1, busy=1)
    assert "only: no free worker on queue etl" in client.get(reverse("runs:detail", args=[first.pk])).text
    waiting = client.get(reverse("runs:detail", args=[second.pk])).text
    assert "Concurrency limit: limited allows 1 run at once and 1 is active" in waiting


def test_progress_bar_reads_the_pairs_steps_report():
    assert progress_bar({"chunks_done": 3, "chunks_total": 12, "phase": "mapping"})["percent"] == 25
    assert progress_bar({"waited_seconds": 12.0, "of_seconds": 25})["text"] == "waited seconds: 12 of 25"
    assert progress_bar({"left": 3.2}) is None and progress_bar(None) is None


def test_run_bars_and_timeline_use_the_stored_times(client_for, viewer, finished_run):
    attempt = StepAttempt.objects.filter(step_run__run=finished_run, step_run__step_id="extract", number=2).get()
    StepAttempt.objects.filter(pk=attempt.pk).update(not_before=attempt.queued_at + timedelta(seconds=30),
                                                     started_at=attempt.queued_at + timedelta(seconds=31),
                                                     ended_at=timezone.now() + timedelta(seconds=40))
    page = client_for(viewer).get(reverse("runs:detail", args=[finished_run.pk])).text
    lane = {label.split(":")[0]: label for _, label in LANE.findall(page)}["extract · attempt 2"]
    assert "retry wait 30 s" in lane and "queued 1.0 s" in lane
