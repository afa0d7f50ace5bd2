"""The inbox lists exactly what the person may decide, and the badge, the page and the API agree;
bulk approvals of high-risk steps are confirmed with a comment first."""

import re

import pytest
from django.urls import reverse

from apps.approvals import services
from apps.approvals.models import CHECKPOINT_CHOICES, ApprovalRequest, RequestKind, RequestState, Verdict
from apps.runs import engine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_requests(team, author, operator, waiting_gate, drive):
    """A gate of billing-approvers, a plain checkpoint, and a high-risk gate any team approver decides."""
    gate = waiting_gate()
    paused = make_version(team, [step("load", "test.fail", on_failure="pause")], name="export", author=author)
    checkpoint = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, paused)), kind="checkpoint")
    risky = make_version(team, [step("wire", "test.risky")], name="wire-transfer", author=author)
    risky_gate = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, risky)), kind="gate")
    return gate, checkpoint, risky_gate


def _decidable(user) -> set[int]:
    """What `refusal`, the rule every decision applies, lets `user` decide."""
    found = set()
    for request in services.requests_for(user).filter(state=RequestState.PENDING):
        choices = (Verdict.APPROVE, Verdict.REJECT) if request.kind == RequestKind.GATE else CHECKPOINT_CHOICES
        if any(not services.refusal(user, request, choice) for choice in choices):
            found.add(request.pk)
    return found


def test_the_inbox_lists_only_what_the_person_may_decide(
        mixed_requests, approver, second_approver, operator, author, viewer, platform_admin):
    gate, checkpoint, risky_gate = mixed_requests
    assert {r.pk for r in services.inbox_for(approver)} == {gate.pk, risky_gate.pk}  # not the checkpoint
    assert {r.pk for r in services.inbox_for(operator)} == {checkpoint.pk}  # started the gated runs
    for person in (approver, second_approver, operator, author, viewer, platform_admin):
        assert {r.pk for r in services.inbox_for(person)} == _decidable(person), person.username


def test_badge_page_and_api_agree(mixed_requests, approver, client_for, api_for):
    page = client_for(approver).get(reverse("approvals:inbox")).content.decode()
    badge = re.search(r'aria-label="(\d+) waiting for you"', page).group(1)
    listed = re.findall(r'<li class="card inbox-item" id="request-(\d+)"', page)
    api = api_for(approver).get(reverse("api-approvals")).json()
    api_ids = sorted(str(item["id"]) for item in (api["results"] if isinstance(api, dict) else api))
    assert badge == "2" and "2 requests waiting for you" in page
    assert sorted(listed) == api_ids and len(api_ids) == 2


def test_the_inbox_filters_by_workflow_and_age(mixed_requests, approver, client_for):
    gate, _, risky_gate = mixed_requests
    client = client_for(approver)
    only = client.get(reverse("approvals:inbox"), {"workflow": risky_gate.run.workflow_id}).content.decode()
    assert f'id="request-{risky_gate.pk}"' in only and f'id="request-{gate.pk}"' not in only
    ApprovalRequest.objects.filter(pk=gate.pk).update(created_at=gate.created_at.replace(year=2020))
    old = client.get(reverse("approvals:inbox"), {"age": "1w"}).content.decode()
    assert f'id="request-{gate.pk}"' in old and f'id="request-{risky_gate.pk}"' not in old


def test_bulk_approval_of_a_high_risk_step_asks_for_confirmation_and_a_comment(mixed_requests, approver,
                                                                               client_for):
    gate, _, risky_gate = mixed_requests
    client = client_for(approver)
    asked = client.post(reverse("approvals:bulk"), {"ids": [gate.pk, risky_gate.pk], "verdict": "approve"})
    text = asked.content.decode()
    assert asked.status_code == 200 and "Confirm before approving high-risk steps" in text
    assert f"#{risky_gate.pk}</a> wire-transfer / <code>wire</code>" in text
    assert not ApprovalRequest.objects.filter(pk__in=[gate.pk, risky_gate.pk]).exclude(
        state=RequestState.PENDING).exists()
    no_comment = client.post(reverse("approvals:bulk"), {"ids": [gate.pk, risky_gate.pk], "verdict": "approve",
                                                         "confirm": "yes"})
    assert "needs a comment" in no_comment.content.decode()
    assert ApprovalRequest.objects.get(pk=risky_gate.pk).state == RequestState.PENDING
    done = client.post(reverse("approvals:bulk"), {"ids": [gate.pk, risky_gate.pk], "verdict": "approve",
                                                   "confirm": "yes", "comment": "checked the wire"}, follow=True)
    assert f"approved: step wire queued, run #{risky_gate.run_id} resumed" in done.content.decode()
    assert ApprovalRequest.objects.get(pk=risky_gate.pk).state == RequestState.APPROVED
