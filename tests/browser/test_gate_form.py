"""An approver decides a gate with a form and named options in Chromium, on a phone: a bad value
is named at its field and what was typed stays; the chosen option and the values are recorded.
Screenshots (light, dark, 390 px wide) land in var/screenshots/."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.approvals.models import ApprovalRequest
from apps.runs import engine
from apps.runs.models import StepState
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
FORM = {"type": "object", "required": ["pay_date", "amount"], "properties": {
    "pay_date": {"type": "string", "format": "date", "title": "Pay on"},
    "amount": {"type": "number", "minimum": 0, "description": "As on the invoice, in EUR."},
    "method": {"type": "string", "enum": ["wire", "ach"], "default": "wire"},
}}


def test_an_approver_fills_the_form_and_chooses_an_option_on_a_phone(
        open_page, screenshot, live_server, team, author, operator, approver, approver_group, drive):
    approval = {"group": approver_group.slug, "quorum": 1, "form": FORM, "options": ["pay_now", "pay_next_cycle"]}
    version = make_version(team, [step("prepare"), step("review", needs=["prepare"], approval=approval),
                                  step("pay", needs=["review"], when='steps.review.decision == "pay_now"')],
                           name="vendor-payments", author=author)
    run = drive(engine.start_run(operator, version))
    request = ApprovalRequest.objects.get(run=run)
    url = live_server.url + reverse("approvals:detail", args=[request.pk])

    page = open_page(approver)
    page.goto(url)
    screenshot(page, "gate-form-light")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "gate-form-dark")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(PHONE)
    page.get_by_label("Pay on").fill("2026-12-31")
    page.get_by_label("Amount").fill("-5")
    page.get_by_role("button", name="Pay now").click()
    error = page.locator(".decide .error")
    expect(error).to_have_text("Amount is too small: it must be at least 0")
    expect(page.get_by_label("Amount")).to_have_value("-5")
    screenshot(page, "gate-form-phone-refused")
    assert request.decisions.count() == 0

    page.get_by_label("Amount").fill("120")
    page.get_by_role("button", name="Pay now").click()
    expect(page.locator(".decide")).to_contain_text("approved")
    decision = request.decisions.get()
    assert (decision.option, decision.form_values) == ("pay_now", {"pay_date": "2026-12-31", "amount": 120,
                                                                    "method": "wire"})
    assert run.step_runs.get(step_id="review").state == StepState.QUEUED
