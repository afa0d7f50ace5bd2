"""Delegation while away: the delegate decides in their own name on behalf of the delegator,
sees the delegator's requests, stays bound by separation of duties, and counts once."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.approvals import delegation, services
from apps.approvals.models import Decision, Delegation, RequestState
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _delegate(delegator, delegate, *, hours=8, team=None):
    now = timezone.now()
    return delegation.create_delegation(delegator, delegate=delegate, starts_at=now - timedelta(minutes=1),
                                        ends_at=now + timedelta(hours=hours), team=team, note="on leave")


def test_a_delegate_cannot_approve_a_run_they_started(waiting_gate, approver, operator, client_for):
    request = waiting_gate()  # otto-operator started the run
    _delegate(approver, operator)
    assert request.pk not in set(services.inbox_for(operator).values_list("pk", flat=True))
    response = client_for(operator).post(reverse("approvals:decide", args=[request.pk]), {"verdict": "approve"})
    assert response.status_code == 403
    assert "You started run" in response.content.decode()
    assert "not even on behalf of abe-approver" in response.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and not request.decisions.exists()


def test_a_delegates_decision_is_recorded_on_behalf_and_counts_once(waiting_gate, approver, second_approver, viewer,
                                                                   api_for):
    request = waiting_gate(quorum=2)
    _delegate(approver, viewer)
    assert request.pk in set(services.inbox_for(viewer).values_list("pk", flat=True))
    answer = api_for(viewer).post(reverse("api-approval-decide", args=[request.pk]), {"verdict": "approve"},
                                  format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["decisions"] == [{**answer.json()["decisions"][0], "person": "vic-viewer",
                                           "on_behalf_of": "abe-approver", "verdict": "approve"}]
    assert answer.json()["state"] == "pending"  # one of two
    # The delegator's say was given: they cannot give it again, nor does their inbox list it.
    assert request.pk not in set(services.inbox_for(approver).values_list("pk", flat=True))
    again = api_for(approver).post(reverse("api-approval-decide", args=[request.pk]), {"verdict": "approve"},
                                   format="json")
    assert again.status_code == 409
    assert "Your delegate already decided" in again.json()["detail"]
    assert request.decisions.count() == 1
    event = AuditEvent.objects.filter(action="approval.decision.approve").get()
    assert (event.actor.username, event.after["on_behalf_of"]) == ("vic-viewer", "abe-approver")
    services.decide_gate(second_approver, request, "approve")
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED


def test_a_member_of_the_group_holding_a_delegation_counts_once(waiting_gate, approver, second_approver):
    request = waiting_gate(quorum=2)
    _delegate(approver, second_approver)
    services.decide_gate(second_approver, request, "approve", on_behalf_of=services.acting_for(
        second_approver, request, "approve"))
    with pytest.raises(services.DecisionConflict):
        services.decide_gate(second_approver, request, "approve", on_behalf_of=approver)
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert list(Decision.objects.values_list("person__username", "on_behalf_of")) == [("amy-approver", None)]


def test_delegation_shows_on_both_inboxes_and_ends_on_time(waiting_gate, approver, viewer, client_for, monkeypatch):
    request = waiting_gate()
    held = _delegate(approver, viewer, hours=2)
    until = timezone.localtime(held.ends_at).strftime("%Y-%m-%d %H:%M")
    page = client_for(approver).get(reverse("approvals:inbox")).content.decode()
    assert "vic-viewer</strong> decides for you until " + until in page
    page = client_for(viewer).get(reverse("approvals:inbox")).content.decode()
    assert "ou decide for <strong>abe-approver</strong> until " + until in page
    assert f'id="request-{request.pk}"' in page

    later = held.ends_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    page = client_for(viewer).get(reverse("approvals:inbox")).content.decode()
    assert "decide for" not in page and f'id="request-{request.pk}"' not in page
    response = client_for(viewer).post(reverse("approvals:decide", args=[request.pk]), {"verdict": "approve"})
    assert response.status_code == 403
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and not request.decisions.exists()


def test_delegations_do_not_chain(approver, second_approver, viewer):
    _delegate(approver, viewer)
    with pytest.raises(delegation.DelegationRefused, match="delegations do not pass on"):
        _delegate(viewer, second_approver)  # vic decides for abe, so cannot hand that on
    with pytest.raises(delegation.DelegationRefused, match="has delegated their own decisions"):
        _delegate(second_approver, approver)  # abe is away themselves
    assert Delegation.objects.count() == 1


def test_a_delegation_is_created_and_ended_from_its_page_and_audited(approver, viewer, outsider, client_for):
    client = client_for(approver)
    start = timezone.localtime() - timedelta(minutes=1)
    response = client.post(reverse("approvals:delegations"), {
        "delegate": viewer.username, "starts_at": f"{start:%Y-%m-%dT%H:%M}",
        "ends_at": f"{start + timedelta(days=3):%Y-%m-%dT%H:%M}", "team": "", "note": "conference"})
    assert response.status_code == 302
    held = Delegation.objects.get()
    assert (held.delegator, held.delegate, held.note) == (approver, viewer, "conference")
    refused = client.post(reverse("approvals:delegations"), {
        "delegate": outsider.username, "starts_at": f"{start:%Y-%m-%dT%H:%M}",
        "ends_at": f"{start + timedelta(days=3):%Y-%m-%dT%H:%M}"})
    assert refused.status_code == 400  # not a colleague: not offered, and refused
    assert Delegation.objects.count() == 1
    client.post(reverse("approvals:end_delegation", args=[held.pk]))
    held.refresh_from_db()
    assert held.ended_at is not None
    audited = AuditEvent.objects.filter(action__startswith="delegation.").order_by("pk")
    assert list(audited.values_list("action", flat=True)) == ["delegation.created", "delegation.ended"]


def test_a_delegation_through_the_api(approver, viewer, team, api_for):
    api = api_for(approver)
    now = timezone.now()
    created = api.post(reverse("api-delegations"), {"delegate": viewer.username, "team": team.slug,
                                                    "starts_at": now.isoformat(),
                                                    "ends_at": (now + timedelta(days=1)).isoformat()}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["delegate"], created.json()["team"]) == ("vic-viewer", "billing")
    mine = api_for(viewer).get(reverse("api-delegations")).json()
    assert [held["delegator"] for held in mine] == ["abe-approver"]
    ended = api_for(viewer).post(reverse("api-delegation-end", args=[created.json()["id"]]))
    assert ended.status_code == 200 and ended.json()["ended_at"]
    to_self = api.post(reverse("api-delegations"), {"delegate": approver.username, "starts_at": now.isoformat(),
                                                    "ends_at": (now + timedelta(days=1)).isoformat()}, format="json")
    assert to_self.status_code == 400
    assert Delegation.objects.count() == 1
