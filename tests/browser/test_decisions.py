"""Deciding in Chromium: an approver decides a gate on a phone without scrolling to find the form;
an operator retries a checkpoint with its prefilled parameter form, edited. The engine is played
in this process (`drive`), so no worker is needed; the screenshots go in the README."""

import pytest
from playwright.sync_api import expect

from apps.approvals.models import ApprovalRequest, RequestState
from apps.runs import engine
from apps.runs.models import RunState
from tests.approvals import steps  # noqa: F401  (registers test.approvals.strict)
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def test_an_approver_decides_a_gate_on_a_phone_without_scrolling(
        open_page, screenshot, live_server, team, author, operator, approver, approver_group, drive):
    approval = {"group": approver_group.slug, "quorum": 1, "timeout": 4 * 3600, "escalate_to": None,
                "on_expiry": "reject"}
    version = make_version(team, [
        step("prepare", params={"invoices": 3}),
        step("pay", needs=["prepare"], approval=approval, params={
            "memo": "Pay suppliers for {{ inputs.period }}", "invoices": "{{ steps.prepare.output.invoices }}"}),
    ], name="pay-suppliers", author=author,
        inputs={"period": {"type": "string", "required": True, "default": None, "description": ""}})
    run = drive(engine.start_run(operator, version, inputs={"period": "2026-11"}))
    gate = ApprovalRequest.objects.get(run=run, kind="gate")

    page = open_page(approver, viewport=PHONE)
    page.goto(f"{live_server.url}/approvals/{gate.pk}/")
    expect(page.locator(".summary pre.params")).to_contain_text("Pay suppliers for 2026-11")
    box = page.locator(f"#request-{gate.pk}-decide form").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert page.evaluate("window.scrollY") == 0
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, f"decide-gate-phone-{scheme}")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".outcome")).to_contain_text(f"approved: step pay queued, run #{run.pk} resumed")
    assert ApprovalRequest.objects.get(pk=gate.pk).state == RequestState.APPROVED


def test_an_operator_retries_a_checkpoint_with_an_edited_prefilled_form(
        open_page, screenshot, live_server, team, author, operator, drive):
    version = make_version(team, [
        step("load", "test.approvals.strict", params={"succeed": False, "rows": 3}, on_failure="pause"),
        step("report", needs=["load"], params={"rows": "{{ steps.load.output.rows }}"}),
    ], name="ledger-load", author=author)
    run = drive(engine.start_run(operator, version))
    checkpoint = ApprovalRequest.objects.get(run=run, kind="checkpoint")

    page = open_page(operator)
    page.goto(f"{live_server.url}/approvals/{checkpoint.pk}/")
    retry = page.locator("fieldset.for-retry")
    rows = retry.get_by_label("rows", exact=True)
    expect(rows).to_be_hidden()  # retry's fields appear once retry is chosen
    page.get_by_role("radio", name="Retry").check()
    expect(rows).to_have_value("3")
    rows.fill("5")
    retry.get_by_label("succeed").select_option("true")
    page.get_by_label("Reason", exact=True).select_option("params_fixed")
    page.get_by_label("Comment", exact=True).fill("The ledger is ready now; loading 5 rows.")
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, f"retry-checkpoint-form-{scheme}")
    page.get_by_role("button", name="Record decision").click()
    expect(page.locator(".outcome")).to_contain_text(f"retry: run #{run.pk} resumed")
    assert checkpoint.decisions.get().params_override == {"succeed": True, "rows": 5}
    assert drive(run).state == RunState.SUCCEEDED
