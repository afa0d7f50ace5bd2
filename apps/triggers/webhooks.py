"""Inbound webhooks: body limit, signature check, replay window, rate limit, and the start of a run.

A sender signs `f"{timestamp}.{body}"` with the endpoint's secret (HMAC-SHA256) and sends
`X-Flowdeck-Signature: t=<unix seconds>,v1=<hex digest>`. A signature older (or further ahead)
than the replay window is refused, so a captured request cannot be replayed later; inside the
window the same signed request, like a repeated `Idempotency-Key`, starts no second run. A key
reused for a different body is refused (422) rather than silently dropping the new payload.

The endpoint is public, so whatever a request holds must end in a JSON refusal that says what
to fix, never in a server error: the body is read only up to the limit, and every header is
parsed strictly before anything is computed from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog import secrets as secret_box
from apps.runs import engine
from apps.triggers import services
from apps.triggers.models import TriggerEvent, TriggerKind, TriggerSource, WebhookEndpoint

SIGNATURE_HEADER = "X-Flowdeck-Signature"
REPLAY_WINDOW_SECONDS = 300
# A valid header is about 80 characters; a longer one is refused before it is split.
SIGNATURE_MAX_CHARS = 512
IDEMPOTENCY_KEY_MAX_CHARS = 255
# ASCII digits only: `str.isdigit()` also accepts "²" and other digits that int() refuses.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


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
    # The event that already holds this request's idempotency key, when the refusal is about it.
    first: TriggerEvent | None = None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender puts in X-Flowdeck-Signature (used by senders' docs and tests)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _unsigned(reason: str) -> WebhookRefused:
    return WebhookRefused(401, f"Sign the request ({reason}): send {SIGNATURE_HEADER}: t=<unix seconds>,"
                               f"v1=<64 hex digits: HMAC-SHA256 of '<t>.<body>' with the webhook's secret>.")


def parse_signature(header: str) -> tuple[int, str]:
    """The timestamp and digest of a signature header; WebhookRefused(401) for anything else."""
    if not header:
        raise _unsigned("the header is missing")
    if len(header) > SIGNATURE_MAX_CHARS:
        raise _unsigned(f"the header is {len(header)} characters, more than {SIGNATURE_MAX_CHARS}")
    values = {}
    for part in header.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name not in ("t", "v1"):
            raise _unsigned("the header has exactly two parts, t=... and v1=..., separated by a comma")
        if name in values:
            raise _unsigned(f"`{name}` is given twice")
        values[name] = value.strip()
    if set(values) != {"t", "v1"}:
        raise _unsigned(f"`{'t' if 'v1' in values else 'v1'}` is missing")
    if not _TIMESTAMP.fullmatch(values["t"]):
        raise _unsigned("`t` must be the time of signing in whole unix seconds")
    if not _DIGEST.fullmatch(values["v1"]):
        raise _unsigned("`v1` must be 64 hexadecimal digits")
    return int(values["t"]), values["v1"].lower()


def verify_signature(endpoint: WebhookEndpoint, body: bytes, header: str, now: float | None = None) -> None:
    timestamp, digest = parse_signature(header)
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > REPLAY_WINDOW_SECONDS:
        raise WebhookRefused(401, f"The signature's timestamp is {int(abs(age))}s away from now; requests are "
                                  f"accepted for {REPLAY_WINDOW_SECONDS}s. Sign each request when you send it "
                                  f"and check the sender's clock.")
    secret = secret_box.decrypt(endpoint.encrypted_signing_secret)
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, digest):
        raise WebhookRefused(401, "The signature does not match the body: sign the exact bytes you send with "
                                  "the webhook's current secret.")


def read_body(request) -> bytes:
    """The request's body, or WebhookRefused(413) before more than the limit is held in memory:
    a declared Content-Length over it is refused unread, and at most limit + 1 bytes are read.
    Reading the stream bypasses DATA_UPLOAD_MAX_MEMORY_SIZE, so this limit applies at any size."""
    limit = max_body_bytes()
    declared = request.META.get("CONTENT_LENGTH") or ""
    # More than 18 digits is too large whatever they say, and int() of thousands of digits fails.
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _too_large(int(declared) if len(declared) <= 18 else None, limit)
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _too_large(None, limit)
    return body


def _too_large(size: int | None, limit: int) -> WebhookRefused:
    return WebhookRefused(413, f"The body is {f'{size} bytes' if size is not None else f'over {limit} bytes'}; "
                               f"the limit is {limit}. Send a reference to large data instead of the data.")


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
    event: TriggerEvent
    duplicate: bool


def _payload(body: bytes) -> dict:
    """The body as a JSON object that every database can store (no NaN, infinities, NUL or lone surrogates)."""
    try:
        payload = json.loads(body or b"{}", parse_constant=_not_a_number, parse_float=_finite)
    except RecursionError:
        raise WebhookRefused(400, "The body is nested too deeply to read: send a flatter JSON object.") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise WebhookRefused(400, f"The body is not JSON ({exc}); send a JSON object of the workflow's inputs.") \
            from None
    if not isinstance(payload, dict):
        raise WebhookRefused(400, 'The body must be a JSON object, such as {"period": "2026-11"}.')
    if problem := _unstorable_text(payload):
        raise WebhookRefused(400, f"The body holds {problem}, which the database cannot store: remove it.")
    return payload


def _unstorable_text(payload: dict) -> str:
    """What in the payload's text PostgreSQL's jsonb refuses, or "" (a loop, not recursion: the
    payload may be nested as deeply as the JSON parser allows)."""
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            if "\x00" in value:
                return "a NUL character (\\u0000)"
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "half of a UTF-16 surrogate pair (such as \\ud800 alone)"
    return ""


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]}... is too large")
    return number


def _idempotency_key(headers) -> str:
    key = headers.get("Idempotency-Key") or ""
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise WebhookRefused(400, f"The Idempotency-Key is {len(key)} characters; use at most "
                                  f"{IDEMPOTENCY_KEY_MAX_CHARS}, such as the id of the event you send.")
    # Without one, the signed request itself is the key: a replay inside the window repeats it.
    return key or "sig:" + hashlib.sha256(headers[SIGNATURE_HEADER].encode()).hexdigest()


def _same_request(event: TriggerEvent, key: str, payload: dict) -> None:
    """A repeated key is a retry of the first request only with the same body (compared as JSON,
    so spacing and key order do not matter); anything else would silently drop the new payload."""
    if event.payload == payload:
        return
    if event.run_id:
        started = f"started run {event.run_id}"
    elif event.batch_id:
        started = f"joined batch {event.batch_id}, whose run has not started yet"
    else:
        started = f"was recorded as event {event.pk}"
    raise WebhookRefused(422, f"Idempotency-Key {key!r} was first used at {event.received_at:%Y-%m-%d %H:%M:%S} "
                              f"UTC with a different body, which {started}. Send a new key for a new request, "
                              f"or resend the first body unchanged to get its run.", first=event)


def receive(token: str, body: bytes, headers) -> Accepted:
    """Check and act on one webhook request; raises WebhookRefused saying what to fix."""
    endpoint = WebhookEndpoint.objects.select_related("workflow__current_version", "workflow__team") \
        .filter(token=token, active=True).first()
    binding = endpoint and endpoint.workflow.trigger_bindings.filter(kind=TriggerKind.WEBHOOK).first()
    if binding is None:
        raise WebhookRefused(404, "No workflow listens at this URL: copy the URL from the workflow's triggers page.")
    verify_signature(endpoint, body, headers.get(SIGNATURE_HEADER, ""))
    _take_token(endpoint.pk)
    payload = _payload(body)
    key = _idempotency_key(headers)
    workflow = endpoint.workflow
    batch = binding.config.get("batch")
    if batch:
        event, created = services.add_to_batch(workflow, TriggerSource.WEBHOOK, key, payload, batch)
        if not created:
            _same_request(event, key, payload)
        return Accepted(event, duplicate=not created)
    try:
        started = services.start_once(workflow, TriggerSource.WEBHOOK, key, inputs=payload, payload=payload)
    except engine.InvalidInputs as invalid:
        raise WebhookRefused(400, f"The body does not fit the workflow's inputs: {invalid}", errors=[
            {"field": name if name == "inputs" else f"inputs.{name}", "message": message}
            for name, message in invalid.errors.items()]) from None
    if not started.created:
        _same_request(started.event, key, payload)
    return Accepted(started.event, duplicate=not started.created)
