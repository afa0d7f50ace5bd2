"""The platform pages tell the truth, in Chromium with a real worker and beat: while every process
of the worker runs a long step (so it does not answer the broker's broadcast in time), the Health
and Workers pages still say both are up, from the heartbeats they write; a killed worker is
reported down once its heartbeat is stale, and a stopped beat as stopped. The pages are saved
under var/screenshots/ (light, dark, 390 px wide)."""

import os
import signal
import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.platform.models import ProcessHeartbeat, ProcessKind
from apps.runs import engine
from apps.runs.models import AttemptState, StepAttempt
from tests.real_worker import start_beat, start_worker, stop_worker
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def wait_until(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def row_of(report: str, cell: str) -> str:
    """The table row of `report` whose header cell is `cell`."""
    return report.split(f"<th scope=\"row\">{cell}</th>")[1].split("</tr>")[0]


def test_pages_report_a_busy_worker_and_beat_up_and_a_killed_worker_down(
        worker, team, operator, platform_admin, client_for, open_page, screenshot, live_server, tmp_path, settings):
    settings.FLOWDECK_WORKER_STALE_SECONDS = 2
    queue = f"liveness-{os.getpid()}"
    beat, busy = start_beat(worker.env, tmp_path), None  # beat first: it starts up while the worker does
    try:
        busy = start_worker(worker.env, tmp_path, "liveness", queues=(queue,))
        name = f"liveness-{os.getpid()}@{os.uname().nodename}"
        version = make_version(team, [step(f"long{i}", "test.sleep", params={"seconds": 60}, queue=queue)
                                      for i in range(2)])
        engine.start_run(operator, version)
        wait_until(lambda: ProcessHeartbeat.objects.filter(kind=ProcessKind.WORKER, name=name, busy=2).exists(),
                   "both processes of the worker run a step")
        wait_until(lambda: ProcessHeartbeat.objects.filter(kind=ProcessKind.BEAT).exists(), "beat writes its heartbeat")

        page = open_page(platform_admin)
        for scheme, viewport, suffix in [("light", None, ""), ("dark", None, "-dark"), ("light", PHONE, "-390")]:
            page.emulate_media(color_scheme=scheme)
            page.set_viewport_size(viewport or {"width": 1280, "height": 900})
            page.goto(f"{live_server.url}{reverse('platform:overview')}")
            expect(page.get_by_text("Beat: healthy")).to_be_visible()
            expect(page.get_by_text("Workers: healthy")).to_be_visible()
            screenshot(page, f"platform-health{suffix}")
            page.goto(f"{live_server.url}{reverse('platform:workers')}")
            worker_row = page.locator("table[aria-labelledby=workers-h] tr").filter(has_text=name)
            expect(worker_row).to_contain_text("up")
            expect(worker_row).to_contain_text("2 of 2 processes")
            queue_row = page.locator("table[aria-labelledby=queues-h] tr").filter(has_text=queue)
            expect(queue_row).to_contain_text(name)
            screenshot(page, f"platform-workers{suffix}")
        # Every page was read while both steps still ran.
        assert StepAttempt.objects.filter(queue=queue, state=AttemptState.RUNNING).count() == 2

        client = client_for(platform_admin)
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
        if busy is not None:
            stop_worker(busy)
        stop_worker(beat)
