"""Notifications by exception: email to people and signed webhooks to the channels that platform
admins configure. Other apps (monitoring alerts) reuse `notify()`.

Nothing is sent from inside a transaction: `notify()` decides who gets what, then hands the
delivery to Celery tasks once the caller's transaction commits, so a slow mail server or a dead
webhook never holds the engine's row locks and a rolled-back change announces nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

from django.conf import settings
from django.db import transaction

from apps.approvals.models import NotificationChannel

SIGNATURE_HEADER = "X-Flowdeck-Signature"
TIMESTAMP_HEADER = "X-Flowdeck-Timestamp"


def notify(event_kind: str, subject: str, body: str, recipients: Iterable, context: dict | None = None) -> None:
    """Tell `recipients` (users or email addresses) and every enabled channel that wants
    `event_kind` for `context["team_id"]`. `context` (JSON-able: ids, `url`) goes into the
    webhook payload. Delivery happens after commit, by Celery tasks retried with backoff."""
    from apps.approvals import tasks

    context = context or {}
    emails = sorted({address for address in map(_address, recipients) if address})
    channel_ids = [channel.pk for channel in NotificationChannel.objects.filter(enabled=True)
                   if channel.wants(event_kind, context.get("team_id"))]
    if not emails and not channel_ids:
        return
    payload = webhook_payload(event_kind, subject, body, context)
    mail_body = f"{body}\n\n{context['url']}" if context.get("url") else body

    def enqueue() -> None:
        if emails:
            tasks.send_notification_mail.delay(subject, mail_body, emails)
        for channel_id in channel_ids:
            tasks.deliver_webhook.delay(channel_id, payload)

    transaction.on_commit(enqueue)


def _address(recipient) -> str:
    return recipient if isinstance(recipient, str) else (getattr(recipient, "email", "") or "")


def webhook_payload(event_kind: str, subject: str, body: str, context: dict) -> dict:
    """Slack-compatible: `text` is what a chat shows; the rest is for machines."""
    link = f"\n<{context['url']}|Open in Flowdeck>" if context.get("url") else ""
    return {"text": f"*{subject}*\n{body}{link}", "event": event_kind, "subject": subject, "context": context}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `<timestamp>.<body>`; the timestamp lets receivers refuse replays."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"
