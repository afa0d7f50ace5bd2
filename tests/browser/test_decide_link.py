"""Deciding from a notification's link on a phone: the link sends a signed-out person to sign in
and back, the decision form is on the first screen at 390x844, and approving says what happened.
Screenshots (light, dark) land in var/screenshots/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.approvals import links
from tests.browser.test_accessibility import PHONE, violations
from tests.conftest import PASSWORD
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def gate_link(team, author, operator, approver, approver_group, drive):
    from apps.approvals.models import ApprovalRequest
    from apps.runs import engine

    approval = {"group": approver_group.slug, "quorum": 2, "timeout": 4 * 3600, "escalate_to": None,
                "on_expiry": "reject", "remind": [3600]}
    version = make_version(team, [step("pay", params={"amount": 1250, "currency": "EUR", "period": "2026-11"},
                                       approval=approval)], name="supplier-payout", author=author)
    request = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, version)))
    return links.url_for(request, approver).split("/approvals/", 1)[1]


def test_a_phone_decides_from_the_link_after_signing_in(open_page, live_server, approver, gate_link, screenshot):
    path = f"{live_server.url}/approvals/{gate_link}"
    for scheme in ("dark", "light"):
        page = open_page(None, color_scheme=scheme, viewport=PHONE)
        page.goto(path)
        page.get_by_label("Username").fill(approver.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(path)
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_be_visible()
        assert approve.bounding_box()["y"] + approve.bounding_box()["height"] <= PHONE["height"]
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        assert not violations(page)
        screenshot(page, f"decide-link-phone-{scheme}")
    approve.click()
    expect(page.get_by_role("status")).to_contain_text("You decided approve")
    expect(page.get_by_role("status")).to_contain_text("1 of 2 approvals")
    screenshot(page, "decide-link-phone-decided-light")


def test_a_delegation_is_made_on_a_phone_and_shown_on_the_inbox(open_page, live_server, approver, viewer,
                                                                 screenshot):
    page = open_page(approver, viewport=PHONE)
    page.goto(f"{live_server.url}/approvals/")
    page.get_by_role("link", name="Away? Delegate your decisions").click()
    page.get_by_label("Delegate").select_option(viewer.username)
    back = (timezone.localtime() + timedelta(days=10)).replace(hour=18, minute=0)
    page.get_by_label("Until").fill(f"{back:%Y-%m-%dT%H:%M}")
    page.get_by_label("Note").fill("On leave")
    page.get_by_role("button", name="Delegate").click()
    expect(page.locator(".delegation").first).to_contain_text("vic-viewer decides for you")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "delegations-phone-light")
    page.goto(f"{live_server.url}/approvals/")
    expect(page.locator(".delegations-banner")).to_contain_text(f"vic-viewer decides for you until {back:%Y-%m-%d} 18:00")
    screenshot(page, "inbox-delegation-phone-light")
