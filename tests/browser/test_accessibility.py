"""Every main page passes axe-core's WCAG 2 A and AA rules (labels, names, contrast among them)
in the light and the dark colour scheme, on a laptop-sized and a phone-sized screen."""

import json
import re

import pytest

from tests.browser.conftest import AXE_SCRIPT
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ADMIN_PAGES = ["/", "/workflows/", "/workflows/{workflow}/", "/workflows/{workflow}/edit/", "/workflows/new/",
               "/catalog/", "/catalog/types/http.request/", "/catalog/types/example.convert_amounts/",
               "/catalog/connections/", "/catalog/connections/new/",
               "/runs/", "/runs/{run}/", "/runs/{run}/steps/load/", "/runs/dashboard/",
               "/incidents/", "/incidents/groups/{group}/", "/knowledge/runbooks/", "/platform/", "/platform/workers/", "/platform/step-types/",
               "/platform/people/", "/platform/search/?q=ledger", "/audit/", "/approvals/history/"]
APPROVER_PAGES = ["/approvals/", "/approvals/{request}/"]


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE_SCRIPT))
    found = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
                          ".then(r => r.violations.map(v => ({id: v.id, help: v.help,"
                          " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))", AXE_TAGS)
    return [f"{v['id']}: {v['help']} at {json.dumps(v['nodes'])}" for v in found]


@pytest.fixture
def console_data(team, author, operator, approver, approver_group, platform_admin, drive):
    from apps.approvals.models import ApprovalRequest
    from apps.runs import engine
    from apps.workflows.services import save_version

    workflow = save_version(author, team=team, source=(
        "name: ledger-close\ndescription: Closes the ledger.\nsteps:\n  - id: extract\n    type: echo\n"
        "    with: {message: hi}\n  - id: pay\n    type: echo\n    needs: extract\n    approval: billing-approvers\n")).workflow
    failing = make_version(team, [step("load", "test.fail", on_failure="pause", params={"message": "ledger locked"})],
                           name="ledger-load", author=author)
    paused = drive(engine.start_run(operator, failing))
    gated = drive(engine.start_run(operator, workflow.current_version))
    from apps.incidents.groups import group_key

    checkpoint = ApprovalRequest.objects.get(run=paused, kind="checkpoint")
    return {"workflow": workflow.pk, "run": paused.pk,
            "request": ApprovalRequest.objects.filter(run=gated).values_list("pk", flat=True).first(),
            "group": group_key(failing.workflow_id, "load", checkpoint.error_signature)}


LAPTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def _screenshot_name(path: str, scheme: str, screen: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
    return f"page-{slug}-{scheme}-{screen}"


@pytest.mark.parametrize("scheme,screen", [("light", "laptop"), ("dark", "laptop"), ("light", "phone")])
def test_main_pages_have_no_accessibility_violations(open_page, live_server, console_data, platform_admin, approver,
                                                      scheme, screen, screenshot):
    problems = {}
    for user, paths in ((platform_admin, ADMIN_PAGES), (approver, APPROVER_PAGES), (None, ["/accounts/login/"])):
        page = open_page(user, color_scheme=scheme, viewport=PHONE if screen == "phone" else LAPTOP)
        for path in paths:
            page.goto(live_server.url + path.format(**console_data))
            page.wait_for_load_state("networkidle")
            screenshot(page, _screenshot_name(path, scheme, screen))
            if found := violations(page):
                problems[path] = found
    assert not problems, "\n".join(f"{path}: {v}" for path, found in problems.items() for v in found)
