"""Inbound webhooks: signature check, replay window, rate limit, and the start of a run.

A sender signs `f"{timestamp}.{body}"` with the endpoint's secret (HMAC-SHA256) and sends
`X-Flowdeck-Signature: t=<unix seconds>,v1=<hex digest>`. A signature older (or further ahead)
than the replay window is refused, so a captured request cannot be replayed later; inside the
window the same signed request, like a repeated `Idempotency-Key`, starts no second run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog import secrets as secret_box
from apps.runs import engine
from apps.triggers import services
from apps.triggers.models import TriggerKind, TriggerSource, WebhookEndpoint
from apps.workflows.spec import validate_inputs

SIGNATURE_HEADER = "X-Flowdeck-Signature"
REPLAY_WINDOW_SECONDS = 300


def max_body_bytes() -> int:
    return settings.FLOWDECK_WEBHOOK_MAX_BYTES


def rate_per_minute() -> int:
    return settings.FLOWDECK_WEBHOOK_RATE_PER_MINUTE


@dataclass
class WebhookRefused(Exception):
    status: int
    message: str
    errors: list[dict] = field(default_factory=list)
    retry_after: int | None = None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender puts in X-Flowdeck-Signature (used by senders' docs and tests)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(endpoint: WebhookEndpoint, body: bytes, header: str, now: float | None = None) -> None:
    parts = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        raise WebhookRefused(401, f"Sign the request: send {SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256 "
                                  f"of '<t>.<body>' with the webhook's secret>.")
    age = (time.time() if now is None else now) - int(parts["t"])
    if abs(age) > REPLAY_WINDOW_SECONDS:
        raise WebhookRefused(401, f"The signature's timestamp is {int(abs(age))}s away from now; requests are "
                                  f"accepted for {REPLAY_WINDOW_SECONDS}s. Sign each request when you send it "
                                  f"and check the sender's clock.")
    secret = secret_box.decrypt(endpoint.encrypted_signing_secret)
    expected = sign(secret, body, int(parts["t"])).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise WebhookRefused(401, "The signature does not match the body: sign the exact bytes you send with "
                                  "the webhook's current secret.")


def _take_token(endpoint_id: int) -> None:
    """One request from the workflow's token bucket (refilled at the per-minute rate)."""
    capacity = rate_per_minute()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        now = timezone.now()
        elapsed = (now - endpoint.bucket_updated_at).total_seconds()
        tokens = capacity if endpoint.bucket_tokens is None else \
            min(capacity, endpoint.bucket_tokens + elapsed * capacity / 60)
        if tokens < 1:
            endpoint.bucket_tokens, endpoint.bucket_updated_at = tokens, now
            endpoint.save(update_fields=["bucket_tokens", "bucket_updated_at"])
            raise WebhookRefused(429, f"This workflow accepts {capacity} webhook requests a minute; retry later.",
                                 retry_after=max(1, int((1 - tokens) * 60 / capacity) + 1))
        endpoint.bucket_tokens, endpoint.bucket_updated_at = tokens - 1, now
        endpoint.save(update_fields=["bucket_tokens", "bucket_updated_at"])


@dataclass
class Accepted:
    event: object
    duplicate: bool

    @property
    def run(self):
        return self.event.run


def receive(token: str, body: bytes, headers) -> Accepted:
    """Check and act on one webhook request; raises WebhookRefused saying what to fix."""
    endpoint = WebhookEndpoint.objects.select_related("workflow__current_version", "workflow__team") \
        .filter(token=token, active=True).first()
    binding = endpoint and endpoint.workflow.trigger_bindings.filter(kind=TriggerKind.WEBHOOK).first()
    if binding is None:
        raise WebhookRefused(404, "No workflow listens at this URL: copy the URL from the workflow's triggers page.")
    if len(body) > max_body_bytes():
        raise WebhookRefused(413, f"The body is {len(body)} bytes; the limit is {max_body_bytes()}. "
                                  f"Send a reference to large data instead of the data.")
    verify_signature(endpoint, body, headers.get(SIGNATURE_HEADER, ""))
    _take_token(endpoint.pk)
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRefused(400, f"The body is not JSON ({exc}); send a JSON object of the workflow's inputs.")
    if not isinstance(payload, dict):
        raise WebhookRefused(400, 'The body must be a JSON object, such as {"period": "2026-11"}.')
    # Without an Idempotency-Key, the signed request itself is the key: a replay inside the window repeats it.
    key = headers.get("Idempotency-Key") or "sig:" + hashlib.sha256(headers[SIGNATURE_HEADER].encode()).hexdigest()
    workflow = endpoint.workflow
    batch = binding.config.get("batch")
    if batch:
        event, created = services.add_to_batch(workflow, TriggerSource.WEBHOOK, key, payload, batch)
        return Accepted(event, duplicate=not created)
    values, errors = validate_inputs(workflow.current_version.spec, payload)
    if errors:
        raise WebhookRefused(400, "The body does not fit the workflow's inputs: " + "; ".join(
            f"{error.path}: {error.message}" for error in errors),
            errors=[{"field": error.path, "message": error.message, "hint": error.hint} for error in errors])
    try:
        started = services.start_once(workflow, TriggerSource.WEBHOOK, key, inputs=values, payload=payload)
    except engine.InvalidInputs as exc:
        raise WebhookRefused(400, str(exc)) from None
    return Accepted(started.event, duplicate=not started.created)
