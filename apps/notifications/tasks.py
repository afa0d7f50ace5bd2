"""Celery tasks that deliver notifications: one mail per person, one signed POST per channel.

Tasks take primary keys or plain data, re-read what they need, and tolerate redelivery: a
webhook may be posted twice after a lost ack, which is why payloads carry the event's ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time

import httpx
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mass_mail

from apps.catalog.secrets import decrypt
from apps.logging import get_logger
from apps.notifications.models import NotificationChannel

logger = get_logger("flowdeck.notifications")
SIGNATURE_HEADER = "X-Flowdeck-Signature"
TIMESTAMP_HEADER = "X-Flowdeck-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 10
WEBHOOK_MAX_RETRIES = 8
WEBHOOK_BACKOFF_CAP_SECONDS = 900


class WebhookUnavailable(Exception):
    """The channel did not take the message this time (network error, 5xx, 408, 429)."""


@shared_task(name="flowdeck.notifications.send_mail", ignore_result=True,
             autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=WEBHOOK_BACKOFF_CAP_SECONDS,
             max_retries=5)
def send_notification_mail(subject: str, body: str, emails: list[str]) -> None:
    # One message per person: recipients do not see each other's addresses.
    send_mass_mail([(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in emails])


@shared_task(name="flowdeck.notifications.deliver_webhook", bind=True, ignore_result=True,
             max_retries=WEBHOOK_MAX_RETRIES)
def deliver_webhook(self, channel_id: int, payload: dict) -> None:
    channel = NotificationChannel.objects.filter(pk=channel_id, enabled=True).first()
    if channel is None:
        return
    try:
        post_signed(channel, payload)
    except WebhookUnavailable as exc:
        delay = min(WEBHOOK_BACKOFF_CAP_SECONDS, 5 * 2 ** self.request.retries)
        logger.warning("webhook delivery failed; retrying", channel=channel.name, error=str(exc),
                       retry=self.request.retries + 1, delay_seconds=delay)
        raise self.retry(exc=exc, countdown=delay / 2 + random.uniform(0, delay / 2))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `<timestamp>.<body>`; the timestamp lets receivers refuse replays."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post_signed(channel: NotificationChannel, payload: dict) -> None:
    """POST `payload` to the channel, signed with its secret. Raises WebhookUnavailable when
    trying again later may help; a 4xx answer is logged and dropped (retrying cannot fix it)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
               SIGNATURE_HEADER: sign(decrypt(channel.secret_encrypted), timestamp, body)}
    # The URL is set only by platform admins (who also own the outbound allow-list), so it is
    # trusted like the mail server is.
    try:
        response = httpx.post(channel.url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise WebhookUnavailable(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise WebhookUnavailable(f"answered {response.status_code}")
    if response.status_code >= 400:
        logger.error("webhook refused the notification; check the channel's URL and secret",
                     channel=channel.name, status=response.status_code)
