"""Notifications by exception: email to people and signed webhooks to the channels that platform
admins configure. Approvals and monitoring call `notify()`.

Nothing is sent from inside a transaction: `notify()` decides who gets what, then hands the
delivery to Celery tasks once the caller's transaction commits, so a slow mail server or a dead
webhook never holds the engine's row locks and a rolled-back change announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction

from apps.accounts.access import require_platform_admin
from apps.accounts.models import Team
from apps.audit.log import record
from apps.catalog.secrets import encrypt
from apps.notifications import tasks
from apps.notifications.models import NotificationChannel


class InvalidChannel(ValueError):
    """A channel that could not be delivered to as configured; nothing was saved."""


def notify(event_kind: str, subject: str, body: str, recipients: Iterable, context: dict | None = None, *,
           personal_url: Callable[[object], str] | None = None) -> None:
    """Tell `recipients` (users or email addresses) and every enabled channel that wants
    `event_kind` for `context["team_id"]`. `context` (JSON-able: ids, `url`, `decide_url`) goes
    into the webhook payload. `personal_url(user)`, when given, is a link made for that one
    person (a signed decision link): each of them gets their own mail with it. Delivery happens
    after commit, by Celery tasks retried with backoff."""
    context = context or {}
    recipients = list(recipients)
    emails = sorted({address for address in map(_address, recipients) if address})
    channel_ids = [channel.pk for channel in NotificationChannel.objects.filter(enabled=True)
                   if channel.wants(event_kind, context.get("team_id"))]
    if not emails and not channel_ids:
        return
    payload = webhook_payload(event_kind, subject, body, context)
    mail_body = f"{body}\n\n{context['url']}" if context.get("url") else body
    personal = {}
    if personal_url is not None:
        for person in recipients:
            if not isinstance(person, str) and _address(person):
                personal[_address(person)] = f"{body}\n\nDecide: {personal_url(person)}" + (
                    f"\nEverything about it: {context['url']}" if context.get("url") else "")

    def enqueue() -> None:
        shared = [email for email in emails if email not in personal]
        if shared:
            tasks.send_notification_mail.delay(subject, mail_body, shared)
        for email, text in sorted(personal.items()):
            tasks.send_notification_mail.delay(subject, text, [email])
        for channel_id in channel_ids:
            tasks.deliver_webhook.delay(channel_id, payload)

    transaction.on_commit(enqueue)


def _address(recipient) -> str:
    return recipient if isinstance(recipient, str) else (getattr(recipient, "email", "") or "")


def webhook_payload(event_kind: str, subject: str, body: str, context: dict) -> dict:
    """Slack-compatible: `text` is what a chat shows; the rest is for machines."""
    link = f"\n<{context['decide_url']}|Decide>" if context.get("decide_url") else ""
    link += f"\n<{context['url']}|Open in Flowdeck>" if context.get("url") else ""
    return {"text": f"*{subject}*\n{body}{link}", "event": event_kind, "subject": subject, "context": context}


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


@transaction.atomic
def save_channel(actor, *, name: str, url: str, secret: str = "", team: Team | None = None,
                 event_kinds=(), enabled: bool = True) -> NotificationChannel:
    """Create or update a webhook channel; an empty `secret` keeps the stored one."""
    require_platform_admin(actor)
    channel = NotificationChannel.objects.filter(name=name).first() or NotificationChannel(name=name)
    if not secret and not channel.secret_encrypted:
        raise InvalidChannel("Give the channel a signing secret: receivers check every message's HMAC with it.")
    channel.url, channel.team, channel.event_kinds, channel.enabled = url, team, list(event_kinds), enabled
    if secret:
        channel.secret_encrypted = encrypt(secret)
    channel.save()
    record(actor, "notification_channel.saved", channel, team=team, after={
        "name": name, "url": url, "event_kinds": list(event_kinds), "enabled": enabled, "secret_changed": bool(secret)})
    return channel
