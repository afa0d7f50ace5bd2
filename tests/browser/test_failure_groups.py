"""A failure group in Chromium: the incidents list shows one row for five runs failing with one
error and two runs that failed after an upstream run; the operator opens the group, retries all,
confirms, and reads the result per member. The engine is played in this process (`drive`);
the screenshots (light, dark, 390 px) go in the README."""

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Membership
from apps.approvals.models import ApprovalRequest, RequestState
from apps.runs import engine
from apps.runs.models import Trigger
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def test_an_operator_retries_a_group_of_five_at_once(open_page, screenshot, live_server, team, other_team, author,
                                                    operator, drive):
    Membership.objects.create(user=operator, team=other_team, role="viewer")
    payroll = make_version(team, [step("load_payslips", "test.echo"),
                                  step("check_payslips", "test.fail", needs=["load_payslips"], on_failure="pause",
                                       params={"message": "KeyError: net_pay"})], name="payroll-run", author=author)
    for _ in range(5):
        drive(engine.start_run(operator, payroll))
    # Two runs started after a failed upstream run (an `after:` trigger): one of them another team's.
    upstream = drive(engine.start_run(operator, make_version(
        team, [step("close", "test.fail", params={"message": "ledger is locked by another close"})],
        name="ledger-close", author=author)))
    after = {"trigger": Trigger.UPSTREAM, "trigger_detail": {"upstream_run": upstream.pk}}
    drive(engine.start_run(None, make_version(team, [step("post", "test.fail", on_failure="pause", params={
        "message": "no ledger rows"})], name="invoice-post"), **after))
    drive(engine.start_run(None, make_version(other_team, [step("sync", "test.fail", on_failure="pause", params={
        "message": "ledger empty"})], name="people-sync"), **after))

    page = open_page(operator)
    page.goto(f"{live_server.url}/incidents/")
    rows = page.locator("li.failure-group")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("5 runs · payroll-run check_payslips · StepError: KeyError: net_pay")
    expect(rows.nth(1)).to_contain_text("2 runs · after ledger-close close · StepError: ledger is locked")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, f"incident-groups-list-{scheme}")
    page.emulate_media(color_scheme="light")
    rows.first.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("5 runs failing from one cause")
    page.get_by_role("radio", name="Retry all").check()
    page.get_by_label("Reason").select_option("data_fixed")
    page.get_by_label("Comment (what you checked or changed)").fill("net_pay is back in the payslip export.")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, f"incident-group-{scheme}")
    page.get_by_role("button", name="Decide for 5 failed steps…").click()
    expect(page.locator("h1")).to_have_text("Confirm: retry 5 failed steps")
    page.get_by_label("Retry all 5").check()
    screenshot(page, "incident-group-confirm-dark")
    page.get_by_role("button", name="Retry 5 failed steps").click()
    expect(page.locator(".group-results li.result-ok")).to_have_count(5)
    assert set(ApprovalRequest.objects.filter(run__workflow__name="payroll-run").values_list(
        "state", "outcome")) == {(RequestState.DECIDED, "retry")}

    phone = open_page(operator, viewport=PHONE)
    phone.goto(f"{live_server.url}/incidents/")
    phone.locator("li.failure-group").first.get_by_role("link").click()
    expect(phone.locator("h1")).to_have_text("2 runs failing from one cause")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for scheme in ("light", "dark"):
        phone.emulate_media(color_scheme=scheme)
        screenshot(phone, f"incident-group-phone-{scheme}")
    phone.get_by_role("radio", name="Retry all").check()
    phone.get_by_label("Reason").select_option("data_fixed")
    phone.get_by_label("Comment (what you checked or changed)").fill("The ledger close finished.")
    phone.get_by_role("button", name="Decide for 2 failed steps…").click()
    phone.get_by_label("Retry all 2").check()
    phone.get_by_role("button", name="Retry 2 failed steps").click()
    expect(phone.locator(".group-results li.result-ok")).to_have_count(1)
    expect(phone.locator(".group-results li.result-refused")).to_contain_text(
        "Only people with the operator role in People Ops can retry this step")
    phone.emulate_media(color_scheme="light")
    screenshot(phone, "incident-group-results-phone-light")
