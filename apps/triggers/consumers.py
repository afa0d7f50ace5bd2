"""Queue triggers: consuming RabbitMQ queues (or Redis lists through kombu's redis transport)
named by `queue` triggers, one run (or one batch event) per message.

A message is acknowledged only after its TriggerEvent and run are committed. If the consumer
dies in between, the broker redelivers the message; its message id finds the event already in
the ledger, so the redelivery starts nothing and is acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from kombu import Connection as BrokerConnection

from apps.catalog.models import Connection, ConnectionKind
from apps.logging import get_logger
from apps.triggers import services
from apps.triggers.models import TriggerBinding, TriggerKind, TriggerSource
from apps.workflows.spec import validate_inputs

logger = get_logger("flowdeck.triggers")
QUEUE_KINDS = (ConnectionKind.RABBITMQ, ConnectionKind.REDIS)


class QueueConfigError(Exception):
    """A queue trigger names a connection that cannot be used; the message says how to fix it."""


@dataclass
class ConsumeReport:
    messages: int = 0
    outcomes: Counter = field(default_factory=Counter)  # started / repeat / refused


def broker_url(connection_name: str) -> str:
    """The kombu URL of a catalog connection, with its secret as the password."""
    connection = Connection.objects.filter(name=connection_name).first()
    if connection is None or connection.kind not in QUEUE_KINDS:
        raise QueueConfigError(f"Queue triggers need a rabbitmq or redis connection named `{connection_name}`: "
                               f"ask a platform admin to add it in the catalog.")
    parts = urlsplit(connection.url)
    secret = connection.reveal_secret()
    if not secret:
        return connection.url
    netloc = f"{quote(parts.username or '', safe='')}:{quote(secret, safe='')}@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def message_id(message) -> str:
    """The broker's message id, else the body's hash (a producer without ids still dedups)."""
    found = message.properties.get("message_id") or (message.headers or {}).get("message-id")
    return str(found) if found else "sha256:" + hashlib.sha256(message.body if isinstance(message.body, bytes)
                                                               else str(message.body).encode()).hexdigest()


def _payload(message) -> dict | None:
    body = message.payload if message.content_type == "application/json" else message.body
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    return body if isinstance(body, dict) else None


def handle_message(binding: TriggerBinding, message) -> str:
    """Record one message (start its run or add it to a batch), then acknowledge it.
    Returns "started", "repeat" or "refused"."""
    workflow, key = binding.workflow, message_id(message)
    payload = _payload(message)
    batch = binding.config.get("batch")
    if payload is None:
        services.note_refused(workflow, TriggerSource.QUEUE, key, "The message body is not a JSON object; "
                                        "publish the workflow's inputs as a JSON object.")
        result = "refused"
    elif batch:
        _, created = services.add_to_batch(workflow, TriggerSource.QUEUE, key, payload, batch)
        result = "started" if created else "repeat"
    else:
        values, errors = validate_inputs(workflow.current_version.spec, payload)
        if errors:
            services.note_refused(workflow, TriggerSource.QUEUE, key, "; ".join(
                f"{error.path}: {error.message}" for error in errors), payload=payload)
            result = "refused"
        else:
            outcome = services.start_or_note(workflow, TriggerSource.QUEUE, key, inputs=values, payload=payload)
            result = "started" if outcome.created else "repeat"
    message.ack()
    return result


def consume(binding: TriggerBinding, *, once: bool, poll_seconds: float = 1.0, max_messages: int | None = None,
            ) -> ConsumeReport:
    """Consume the binding's queue: until it is empty (`once`), or for `poll_seconds` at most."""
    report = ConsumeReport()
    config = binding.config
    with BrokerConnection(broker_url(config["connection"]), connect_timeout=5) as conn:
        queue = conn.SimpleQueue(config["queue"])
        try:
            deadline = time.monotonic() + poll_seconds
            while max_messages is None or report.messages < max_messages:
                try:
                    message = queue.get(block=True, timeout=poll_seconds if once else max(
                        deadline - time.monotonic(), 0.05))
                except queue.Empty:
                    break
                report.messages += 1
                report.outcomes[handle_message(binding, message)] += 1
                if not once and time.monotonic() >= deadline:
                    break
        finally:
            queue.close()
    return report


def queue_bindings():
    return TriggerBinding.objects.select_related("workflow__current_version").filter(kind=TriggerKind.QUEUE)
