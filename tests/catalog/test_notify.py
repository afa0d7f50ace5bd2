"""notify sends by email and webhook, and never twice for the same idempotency key."""

import pytest
from django.core import mail

from apps.catalog.registry import PermanentStepError

from .fakes import run_step

pytestmark = pytest.mark.django_db

PARAMS = {"to": ["oncall@example.com", "lead@example.com"], "subject": "Invoices sent", "message": "42 invoices."}


def test_email_is_sent_to_every_recipient(settings):
    output, _ = run_step("notify", PARAMS)
    assert output == {"email": "sent", "webhook": "not asked"}
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["lead@example.com", "oncall@example.com"]
    assert mail.outbox[0].subject == "Invoices sent" and mail.outbox[0].body == "42 invoices."


def test_redelivered_attempt_sends_nothing_twice():
    ledger = set()
    run_step("notify", PARAMS, ledger=ledger, idempotency_key="run-3-notify-1")
    output, _ = run_step("notify", PARAMS, ledger=ledger, idempotency_key="run-3-notify-1")
    assert output["email"] == "already sent"
    assert len(mail.outbox) == 1


def test_a_new_attempt_sends_again():
    ledger = set()
    run_step("notify", PARAMS, ledger=ledger, idempotency_key="run-3-notify-1")
    run_step("notify", PARAMS, ledger=ledger, idempotency_key="run-3-notify-2", attempt=2)
    assert len(mail.outbox) == 2


def test_webhook_is_posted_once_to_an_allowed_host(http_server, allow_local):
    ledger = set()
    params = {"webhook_url": f"{http_server.url}/hooks/ops", "message": "Run paused", "subject": "payroll"}
    output, _ = run_step("notify", params, ledger=ledger)
    assert output == {"email": "not asked", "webhook": "sent"}
    run_step("notify", params, ledger=ledger)
    assert len(http_server.requests) == 1
    assert http_server.requests[0]["body"] == '{"text":"Run paused","subject":"payroll"}'


def test_webhook_to_a_host_off_the_allow_list_is_refused(http_server):
    with pytest.raises(PermanentStepError, match="allow-list"):
        run_step("notify", {"webhook_url": f"{http_server.url}/hooks", "message": "hi"})
    assert http_server.requests == []


def test_a_recipient_or_webhook_is_required():
    with pytest.raises(PermanentStepError, match="parameters are invalid"):
        run_step("notify", {"message": "to nobody"})


def test_malformed_address_is_refused_before_sending():
    with pytest.raises(PermanentStepError, match="Not email addresses: oncall"):
        run_step("notify", {"to": ["oncall", "lead@example.com"], "message": "hi"})
    assert mail.outbox == []
