"""The run page's Gantt and JSON viewer and the workflow page's history chart in Chromium, light and
dark, at 1280 and 390 px: drawn, without console errors; the Gantt scrolls inside its box on a phone.
Screenshots land in var/screenshots/ (run-with-gantt-*, workflow-history-*)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from apps.runs import engine
from apps.runs.models import Run
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INPUTS = {"period": {"type": "string", "required": True, "default": None, "description": ""}}


@pytest.fixture
def pages(team, operator, drive):
    version = make_version(team, [
        step("extract", "test.flaky", params={"succeed_on": 2}, retries={"count": 1, "delay": 0}),
        step("load", "test.effect", needs=["extract"], params={"target": "ledger", "period": "{{ inputs.period }}"}),
    ], name="month-close", inputs=INPUTS, sla={"max_duration": 40})
    start = timezone.now() - timedelta(days=20)
    for day in range(20):
        created = start + timedelta(days=day)
        Run.objects.create(workflow=version.workflow, version=version, team=team, inputs={"period": "2026-11"},
                           state="failed" if day % 6 == 5 else "succeeded", created_at=created, started_at=created,
                           finished_at=created + timedelta(seconds=20 + (day * 7) % 30))
    run = drive(engine.start_run(operator, version, inputs={"period": "2026-11"}))
    return {"run": reverse("runs:detail", args=[run.pk]), "step": reverse("runs:step", args=[run.pk, "extract"]),
            "workflow": reverse("workflows:detail", args=[version.workflow_id]),
            "dashboard": reverse("runs:dashboard") + f"?team={team.slug}"}


def test_run_gantt_and_workflow_chart_render_without_console_errors(open_page, screenshot, live_server, operator,
                                                                   pages):
    page = open_page(operator)  # one sign-in; the scheme and the width change in place
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + pages["run"])
            expect(page.locator(".gantt-lane")).to_have_count(3)
            expect(page.locator(".json-view").first).to_contain_text("2026-11")
            if width == 390:  # the timeline scrolls inside its box
                assert page.locator(".gantt-scroll").evaluate("box => box.scrollWidth > box.clientWidth")
            screenshot(page, f"run-with-gantt-{scheme}-{width}")

            page.goto(live_server.url + pages["workflow"])
            canvas = page.locator("canvas[data-chart='chart-duration-data']")
            expect(canvas).to_be_visible()
            assert canvas.evaluate("canvas => Boolean(window.Chart.getChart(canvas))")
            expect(page.locator(".run-bars.large a")).to_have_count(21)
            screenshot(page, f"workflow-history-{scheme}-{width}")

            page.goto(live_server.url + pages["step"])
            expect(page.locator(".log-view details summary").first).to_have_text("Traceback")
            screenshot(page, f"step-with-log-{scheme}-{width}")
    page.goto(live_server.url + pages["dashboard"])
    expect(page.locator("canvas[data-chart='chart-team-success-data']")).to_be_visible()
    screenshot(page, "team-dashboard-dark-390")
    assert errors == []
