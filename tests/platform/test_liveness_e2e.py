"""The platform pages tell the truth with a real worker and beat: while every process of the
worker runs a long step (so it does not answer the broker's broadcast in time), the Health and
Workers pages still say both are up, from the heartbeats they write; a killed worker is reported
down once its heartbeat is stale, and a stopped beat as stopped."""

import os
import signal
import time

import pytest
from django.urls import reverse

from apps.platform.models import ProcessHeartbeat, ProcessKind
from apps.runs import engine
from apps.runs.models import AttemptState, StepAttempt
from tests.real_worker import start_beat, start_worker, stop_worker
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_until(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def row_of(report: str, cell: str) -> str:
    """The table row of `report` whose header cell is `cell`."""
    return report.split(f"<th scope=\"row\">{cell}</th>")[1].split("</tr>")[0]


def test_pages_report_a_busy_worker_and_beat_up_and_a_killed_worker_down(worker, team, operator, platform_admin,
                                                                        client_for, tmp_path, settings):
    settings.FLOWDECK_WORKER_STALE_SECONDS = 2
    queue = f"liveness-{os.getpid()}"
    busy = start_worker(worker.env, tmp_path, "liveness", queues=(queue,))
    beat = start_beat(worker.env, tmp_path)
    try:
        name = f"liveness-{os.getpid()}@{os.uname().nodename}"
        version = make_version(team, [step(f"long{i}", "test.sleep", params={"seconds": 6}, queue=queue)
                                      for i in range(2)])
        engine.start_run(operator, version)
        wait_until(lambda: ProcessHeartbeat.objects.filter(kind=ProcessKind.WORKER, name=name, busy=2).exists(),
                   "both processes of the worker run a step")
        wait_until(lambda: ProcessHeartbeat.objects.filter(kind=ProcessKind.BEAT).exists(), "beat writes its heartbeat")

        client = client_for(platform_admin)
        health = client.get(reverse("platform:overview")).content.decode()
        report = client.get(reverse("platform:workers"), HTTP_HX_REQUEST="true").content.decode()
        assert "Beat: healthy" in health and "Workers: healthy" in health
        assert '<strong class="worker-up">up</strong>' in row_of(report, name)
        assert "2 of 2 processes" in row_of(report, name)
        assert name in row_of(report, f"<code>{queue}</code>")
        # Both pages were read while the steps still ran.
        assert StepAttempt.objects.filter(queue=queue, state=AttemptState.RUNNING).count() == 2

        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
        killed_at = time.monotonic()
        wait_until(lambda: '<strong class="worker-down">down</strong>' in row_of(
            client.get(reverse("platform:workers"), HTTP_HX_REQUEST="true").content.decode(), name),
            "the killed worker is reported down", timeout=10)
        assert time.monotonic() - killed_at > 1, "reported down before its heartbeat could go stale"

        beat.send_signal(signal.SIGTERM)
        beat.wait(timeout=10)
        health = client.get(reverse("platform:overview")).content.decode()
        assert "Beat: needs attention" in health and " stopped " in health
    finally:
        stop_worker(busy)
        stop_worker(beat)
