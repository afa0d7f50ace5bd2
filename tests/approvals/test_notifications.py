"""Notifications by exception: mail to the people concerned, HMAC-signed webhooks to channels."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from apps.approvals import services
from apps.catalog.secrets import decrypt
from apps.notifications.models import NotificationChannel
from apps.notifications.services import notify, save_channel
from apps.runs import engine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db
SECRET = "channel-signing-secret"


class WebhookReceiver:
    """A local HTTP server that records each POST and whether its HMAC signature verifies;
    it answers `statuses` in turn (then 200)."""

    def __init__(self, statuses=()):
        self.received, self.statuses = [], list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Flowdeck-Timestamp"]
                expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                receiver.received.append({"payload": json.loads(body), "signature_ok": hmac.compare_digest(
                    expected, self.headers["X-Flowdeck-Signature"])})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(WebhookReceiver(statuses))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    from apps.notifications import tasks

    monkeypatch.setattr(tasks.random, "uniform", lambda low, high: 0)


def test_opened_gate_mails_its_approvers_but_not_who_caused_it(waiting_gate, approver_group, author, on_commit,
                                                              eager_tasks, mailoutbox):
    approver_group.members.add(author)
    with on_commit():
        waiting_gate()
    requested = [m for m in mailoutbox if m.subject.startswith("Approval needed")]
    assert sorted(m.to[0] for m in requested) == ["abe-approver@example.com", "amy-approver@example.com"]
    assert "/approvals/" in requested[0].body


def test_decision_mails_the_person_who_started_the_run(waiting_gate, approver, operator, on_commit, eager_tasks,
                                                      mailoutbox):
    request = waiting_gate()
    with on_commit():
        services.decide_gate(approver, request, "reject", "wrong amount")
    decided = [m for m in mailoutbox if m.subject.startswith("Rejected")]
    assert [m.to for m in decided] == [["otto-operator@example.com"]]
    assert "wrong amount" in decided[0].body


def test_checkpoint_mails_the_team_operators(team, author, operator, drive, on_commit, eager_tasks, mailoutbox):
    with on_commit():
        drive(engine.start_run(author, make_version(team, [step("load", "test.fail", on_failure="pause")])))
    assert [m.to for m in mailoutbox if m.subject.startswith("Run paused")] == [["otto-operator@example.com"]]


def test_waived_step_notifies_nobody(team, operator, approver, platform_admin, drive, on_commit, eager_tasks,
                                     mailoutbox):
    services.grant_waiver(platform_admin, team=team, step_type="test.risky", reason="sandbox")
    with on_commit():
        drive(engine.start_run(operator, make_version(team, [step("wire", "test.risky")])))
    assert mailoutbox == []


def test_webhook_channel_gets_a_signed_slack_payload(waiting_gate, platform_admin, receiver, on_commit,
                                                     eager_tasks):
    server = receiver()
    save_channel(platform_admin, name="ops-chat", url=server.url, secret=SECRET)
    with on_commit():
        request = waiting_gate()
    assert len(server.received) == 1
    delivered = server.received[0]
    assert delivered["signature_ok"]
    assert delivered["payload"]["event"] == "approval.requested"
    assert delivered["payload"]["text"].startswith("*Approval needed: payroll / pay")
    assert delivered["payload"]["context"]["request_id"] == request.pk


def test_webhook_is_retried_until_the_channel_takes_it(platform_admin, receiver, on_commit, eager_tasks):
    server = receiver(statuses=[503, 500])
    save_channel(platform_admin, name="flaky-chat", url=server.url, secret=SECRET)
    with on_commit():
        notify("alert.sla", "SLA missed", "payroll ran past 06:00", [], {"team_id": None})
    assert len(server.received) == 3 and all(r["signature_ok"] for r in server.received)


def test_channel_secret_is_stored_encrypted_and_filters_by_event(platform_admin, receiver, on_commit, eager_tasks):
    server = receiver()
    channel = save_channel(platform_admin, name="decisions", url=server.url, secret=SECRET,
                                    event_kinds=["approval.decided"])
    assert SECRET not in channel.secret_encrypted and decrypt(channel.secret_encrypted) == SECRET
    with on_commit():
        notify("approval.requested", "ignored", "not for this channel", [], {})
    assert server.received == []
    assert NotificationChannel.objects.count() == 1
