"""The `notify` step type: an email and/or a webhook post, sent at most once per attempt."""

import re

import httpx
from django.conf import settings
from django.core.mail import send_mail

from apps.catalog.netpolicy import HostRefused, checked_client
from apps.catalog.registry import PermanentStepError, Reason, StepContext, StepError, checked_params, step_type

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

PARAMS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "anyOf": [{"required": ["to"]}, {"required": ["webhook_url"]}],
    "properties": {
        # Addresses are checked when the step runs: in a workflow they are often templates.
        "to": {"type": "array", "items": {"type": "string", "format": "email"},
               "minItems": 1, "maxItems": 50, "description": "Email addresses to send the message to."},
        "subject": {"type": "string", "maxLength": 200, "default": "Flowdeck notification",
                    "description": "The email subject."},
        "message": {"type": "string", "minLength": 1, "description": "The text of the notification."},
        "webhook_url": {"type": "string",
                        "description": "A chat or incident webhook to POST {\"text\": message, \"subject\": ...} to; "
                                       "its host must be on the allow-list."},
    },
}

DOC = """Sends a message by email (through the platform's mail settings) and/or posts it to a webhook
(JSON `{"text": ..., "subject": ...}`, to an allow-listed host). Give `to`, `webhook_url` or both.

Each send is noted in the run's effect ledger under the attempt's idempotency key, so when a
worker is lost and the attempt is delivered again, nothing is sent twice.

**Output:** `{"email": "sent" | "already sent" | "not asked", "webhook": ...}`.

**Errors:**
- a refused webhook host, a 4xx answer, invalid parameters: permanent;
- a mail server or network failure, a 5xx answer: retryable (a retry is a new attempt and sends again)."""


def _send_email(ctx: StepContext, params: dict) -> str:
    recipients = sorted(set(params["to"]))
    malformed = [address for address in recipients if not _EMAIL.match(address)]
    if malformed:
        raise PermanentStepError(f"Not email addresses: {', '.join(malformed)}. Fix `to` in the step.")
    subject = params["subject"]
    if not ctx.record_effect("email", ",".join(recipients), {"subject": subject}):
        return "already sent"
    try:
        send_mail(subject, params["message"], settings.DEFAULT_FROM_EMAIL, recipients)
    except OSError as exc:
        raise StepError(f"Could not send the email: {exc}") from None
    return "sent"


def _post_webhook(ctx: StepContext, params: dict) -> str:
    url = params["webhook_url"]
    if not ctx.record_effect("webhook", url):
        return "already sent"
    payload = {"text": params["message"], "subject": params["subject"]}
    try:
        with checked_client(url, timeout=15) as client:
            response = client.post(url, json=payload, headers={"Idempotency-Key": ctx.idempotency_key})
    except HostRefused as exc:
        raise PermanentStepError(str(exc), reason=Reason.HOST_NOT_ALLOWED, host=exc.host) from None
    except httpx.HTTPError as exc:
        raise StepError(f"Could not post to the webhook: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise StepError(f"The webhook answered {response.status_code}; retry later.")
    if response.status_code >= 400:
        raise PermanentStepError(f"The webhook refused the message with {response.status_code}: check its URL.",
                                 reason=Reason.HTTP_CLIENT_ERROR, status=response.status_code)
    return "sent"


@step_type("notify", params_schema=PARAMS_SCHEMA, doc=DOC, timeout_seconds=60,
           summary="Send a message by email and/or webhook, never twice for the same attempt.",
           example={"to": ["billing-oncall@example.com"], "subject": "Invoices for {{ inputs.period }} are out",
                    "message": "{{ steps.export.output.row_count }} invoices were sent."},
           idempotent=True)
def notify(ctx: StepContext):
    params = checked_params(ctx, "notify")
    return {
        "email": _send_email(ctx, params) if params.get("to") else "not asked",
        "webhook": _post_webhook(ctx, params) if params.get("webhook_url") else "not asked",
    }
