"""Deciding from a notification: the mail's signed link opens a small decision page that still
needs the person signed in, follows every rule of the inbox, and works once, before it expires."""

import re
import time
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from apps.approvals import links
from apps.approvals.models import RequestState
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _path(url: str) -> str:
    return urlsplit(url).path


@pytest.fixture
def mailed_link(waiting_gate, approver, on_commit, eager_tasks, mailoutbox):
    """The decision link the approver's mail carries, and the gate it is for."""
    with on_commit():
        request = waiting_gate()
    mail = next(mail for mail in mailoutbox if mail.to == [approver.email])
    return _path(re.search(r"Decide: (\S+)", mail.body).group(1)), request


def test_each_decider_gets_their_own_link(mailed_link, approver, second_approver, mailoutbox):
    path, request = mailed_link
    link = links.read(path.rstrip("/").rsplit("/", 1)[1])
    assert (link.request_id, link.recipient_id) == (request.pk, approver.pk)
    other = next(mail for mail in mailoutbox if mail.to == [second_approver.email])
    other_link = links.read(re.search(r"Decide: (\S+)", other.body).group(1).rstrip("/").rsplit("/", 1)[1])
    assert (other_link.request_id, other_link.recipient_id) == (request.pk, second_approver.pk)


def test_a_link_without_a_session_signs_in_first_and_then_decides(mailed_link, approver, client):
    path, request = mailed_link
    response = client.get(path)
    assert response.status_code == 302
    login = reverse("accounts:login")
    assert response["Location"].startswith(login) and "next=" in response["Location"]
    signed_in = client.post(response["Location"], {"username": approver.username, "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == path
    page = client.get(path)
    assert page.status_code == 200
    assert b'value="approve"' in page.content and b"payroll / <code>pay</code>" in page.content
    decided = client.post(path, {"verdict": "approve"})
    assert decided.status_code == 200
    assert "You decided <strong>approve</strong>" in decided.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert list(request.decisions.values_list("person__username", flat=True)) == ["abe-approver"]


def test_a_used_link_is_refused_and_changes_nothing(waiting_gate, approver, second_approver, client_for):
    request = waiting_gate(quorum=2)
    path = _path(links.url_for(request, approver))
    client = client_for(approver)
    assert client.post(path, {"verdict": "approve"}).status_code == 200
    # Even someone who may decide cannot reuse it.
    again = client_for(second_approver).post(path, {"verdict": "approve"})
    assert again.status_code == 410
    assert "This link was already used" in again.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and request.decisions.count() == 1


def test_an_expired_link_is_refused_and_changes_nothing(waiting_gate, approver, client_for):
    request = waiting_gate()
    signed_at = time.time() - links.LINK_MAX_AGE.total_seconds() - 60
    with mock.patch("time.time", return_value=signed_at):
        path = _path(links.url_for(request, approver))
    for response in (client_for(approver).get(path), client_for(approver).post(path, {"verdict": "approve"})):
        assert response.status_code == 410
        assert "This link has expired" in response.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and not request.decisions.exists()


def test_a_tampered_link_is_refused(waiting_gate, approver, client_for):
    path = _path(links.url_for(waiting_gate(), approver))
    response = client_for(approver).get(path[:-6] + "AAAAA/")
    assert response.status_code == 404 and "This link is not valid" in response.content.decode()


def test_someone_who_is_not_a_decider_cannot_use_another_persons_link(waiting_gate, approver, viewer, outsider,
                                                                     client_for):
    request = waiting_gate()
    path = _path(links.url_for(request, approver))
    refused = client_for(viewer).post(path, {"verdict": "approve"})
    assert refused.status_code == 403 and "This link is not for you" in refused.content.decode()
    assert client_for(outsider).post(path, {"verdict": "approve"}).status_code == 404
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and not request.decisions.exists()
    # Refusals did not use the link up: its recipient still decides through it.
    assert client_for(approver).post(path, {"verdict": "approve"}).status_code == 200


def test_the_link_follows_the_inbox_rules(waiting_gate, author, approver, client_for):
    request = waiting_gate()
    path = _path(links.url_for(request, approver))
    page = client_for(approver).post(path, {"verdict": "reject", "comment": ""})
    assert page.status_code == 400 and "A rejection needs a comment" in page.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert client_for(approver).post(path, {"verdict": "reject", "comment": "wrong amount"}).status_code == 200
    request.refresh_from_db()
    assert request.state == RequestState.REJECTED


def test_a_gate_with_options_and_a_form_is_decided_through_the_link(team, author, operator, approver, approver_group,
                                                                    drive, client_for):
    from apps.approvals.models import ApprovalRequest
    from apps.runs import engine
    from tests.runs.factories import make_version, step

    approval = {"group": approver_group.slug, "quorum": 1, "timeout": None, "escalate_to": None,
                "on_expiry": "reject", "options": ["pay_now", "pay_next_cycle"],
                "form": {"type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "string"}}}}
    run = drive(engine.start_run(operator, make_version(team, [step("pay", approval=approval)], author=author)))
    request = ApprovalRequest.objects.get(run=run)
    path = _path(links.url_for(request, approver))
    page = client_for(approver).get(path).content.decode()
    assert 'value="approve:pay_now"' in page and 'name="form-ticket"' in page and 'value="approve"' not in page
    refused = client_for(approver).post(path, {"verdict": "approve:pay_now"})
    assert refused.status_code == 400 and "ticket" in refused.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert client_for(approver).post(path, {"verdict": "approve:pay_now", "form-ticket": "FIN-7"}).status_code == 200
    decision = request.decisions.get()
    assert (decision.option, decision.form_values) == ("pay_now", {"ticket": "FIN-7"})


def test_a_chat_channels_link_names_nobody_and_still_needs_a_decider(waiting_gate, approver, viewer, client_for):
    from apps.notifications.services import webhook_payload

    request = waiting_gate()
    context = {"request_id": request.pk, "decide_url": links.url_for(request)}
    chat = webhook_payload("approval.requested", "Approval needed", "Step pay waits.", context)["text"]
    path = _path(chat.split("|Decide>")[0].rsplit("<", 1)[1])
    assert links.read(path.rstrip("/").rsplit("/", 1)[1]).recipient_id is None
    assert client_for(viewer).get(path).status_code == 403
    assert client_for(approver).post(path, {"verdict": "approve"}).status_code == 200
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
