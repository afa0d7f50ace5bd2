"""Queue triggers: one run (or one batch event) per message on the queue a `queue` trigger
names. A `rabbitmq` connection is consumed through kombu; a `redis` connection is a Redis
stream read through a consumer group (`apps.triggers.streams`).

A message is acknowledged only after its TriggerEvent and run are committed. If the consumer
dies in between, the message is delivered again (RabbitMQ redelivers it; a Redis stream keeps
it pending until another consumer claims it); its key (the message id, or the stream entry id)
finds the event already in the ledger, so the redelivery starts nothing and is acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import kombu.exceptions
import redis
from kombu import Connection as BrokerConnection

from apps.catalog.models import Connection, ConnectionKind
from apps.triggers import services
from apps.triggers.models import TriggerBinding, TriggerKind, TriggerSource
from apps.triggers.streams import StreamEntry, StreamReader, consumer_name, group_name
from apps.workflows.spec import validate_inputs

QUEUE_KINDS = (ConnectionKind.RABBITMQ, ConnectionKind.REDIS)
# What a broker that is down or unreachable raises; the command goes on with the other queues.
BROKER_DOWN = (OSError, kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError)


class QueueConfigError(Exception):
    """A queue trigger names a connection that cannot be used; the message says how to fix it."""


@dataclass
class ConsumeReport:
    messages: int = 0
    outcomes: Counter = field(default_factory=Counter)  # started / repeat / refused


def queue_connection(connection_name: str) -> Connection:
    connection = Connection.objects.filter(name=connection_name).first()
    if connection is None or connection.kind not in QUEUE_KINDS:
        raise QueueConfigError(f"Queue triggers need a rabbitmq or redis connection named `{connection_name}`: "
                               f"ask a platform admin to add it in the catalog.")
    return connection


def broker_url(connection_name: str) -> str:
    """The URL of a catalog connection, with its secret as the password."""
    connection = queue_connection(connection_name)
    parts = urlsplit(connection.url)
    secret = connection.reveal_secret()
    if not secret:
        return connection.url
    netloc = f"{quote(parts.username or '', safe='')}:{quote(secret, safe='')}@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def consume(binding: TriggerBinding, *, once: bool, poll_seconds: float = 1.0) -> ConsumeReport:
    """Consume the binding's queue: until it is empty (`once`), or for `poll_seconds` at most."""
    if queue_connection(binding.config["connection"]).kind == ConnectionKind.REDIS:
        return _consume_stream(binding, once=once, poll_seconds=poll_seconds)
    return _consume_rabbitmq(binding, once=once, poll_seconds=poll_seconds)


def queue_bindings():
    return TriggerBinding.objects.select_related("workflow__current_version").filter(kind=TriggerKind.QUEUE)


def record_message(binding: TriggerBinding, key: str, payload: dict, inputs: dict | None = None) -> str:
    """Start the run of one message (or add it to a batch), or note why its inputs do not fit.
    `inputs` defaults to the payload. Returns "started", "repeat" or "refused"."""
    workflow = binding.workflow
    batch = binding.config.get("batch")
    if batch:
        _, created = services.add_to_batch(workflow, TriggerSource.QUEUE, key, payload, batch)
        return "started" if created else "repeat"
    values, errors = validate_inputs(workflow.current_version.spec, payload if inputs is None else inputs)
    if errors:
        services.note_refused(workflow, TriggerSource.QUEUE, key, "; ".join(
            f"{error.path}: {error.message}" for error in errors), payload=payload)
        return "refused"
    outcome = services.start_or_note(workflow, TriggerSource.QUEUE, key, inputs=values, payload=payload)
    return "started" if outcome.created else "repeat"


def refuse_message(binding: TriggerBinding, key: str, reason: str) -> str:
    services.note_refused(binding.workflow, TriggerSource.QUEUE, key, reason)
    return "refused"


# --- RabbitMQ (kombu) -----------------------------------------------------------------------------


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
    """Record one kombu message, then acknowledge it."""
    key, payload = message_id(message), _payload(message)
    if payload is None:
        result = refuse_message(binding, key, "The message body is not a JSON object; publish the workflow's "
                                              "inputs as a JSON object.")
    else:
        result = record_message(binding, key, payload)
    message.ack()
    return result


def _consume_rabbitmq(binding: TriggerBinding, *, once: bool, poll_seconds: float) -> ConsumeReport:
    report = ConsumeReport()
    config = binding.config
    with BrokerConnection(broker_url(config["connection"]), connect_timeout=5) as conn:
        queue = conn.SimpleQueue(config["queue"])
        try:
            deadline = time.monotonic() + poll_seconds
            while True:
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


# --- Redis streams --------------------------------------------------------------------------------


def stream_inputs(spec: dict, fields: dict[str, str]) -> dict:
    """A stream entry's fields as run inputs. Fields are text, so a field for an input declared
    as a number, boolean, list or mapping is read as JSON (`42`, `true`, `["a"]`); a value that
    is not JSON is left as text for the input check to refuse with its usual message."""
    declared = spec.get("inputs") or {}
    inputs = {}
    for name, text in fields.items():
        if declared.get(name, {}).get("type", "string") == "string":
            inputs[name] = text
            continue
        try:
            inputs[name] = json.loads(text)
        except ValueError:
            inputs[name] = text
    return inputs


def handle_entry(binding: TriggerBinding, reader: StreamReader, entry: StreamEntry) -> str:
    """Record one stream entry, then acknowledge it."""
    key = f"redis:{reader.stream}:{entry.entry_id}"
    if entry.fields is None:
        result = refuse_message(binding, key, "The entry's fields are not UTF-8 text; write each input as a text "
                                              "field, numbers and lists as JSON text.")
    else:
        inputs = stream_inputs(binding.workflow.current_version.spec, entry.fields)
        result = record_message(binding, key, entry.fields, inputs)
    reader.ack(entry.entry_id)
    return result


def _consume_stream(binding: TriggerBinding, *, once: bool, poll_seconds: float) -> ConsumeReport:
    report = ConsumeReport()
    client = redis.Redis.from_url(broker_url(binding.config["connection"]), socket_connect_timeout=5,
                                  socket_timeout=poll_seconds + 10)
    try:
        reader = StreamReader(client, binding.config["queue"], group_name(binding.workflow_id), consumer_name())
        try:
            reader.ensure_group(since=binding.created_at)
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise QueueConfigError(f"`{reader.stream}` in Redis is not a stream (a list from before queue triggers "
                                   f"read streams?): have producers XADD to a stream, and delete or rename the "
                                   f"old key.") from exc
        deadline = time.monotonic() + poll_seconds
        for entry in reader.backlog():
            report.messages += 1
            report.outcomes[handle_entry(binding, reader, entry)] += 1
        while True:
            # Draining (`once`) never waits; polling waits for new entries until the deadline.
            wait_ms = None if once else int((deadline - time.monotonic()) * 1000)
            if wait_ms is not None and wait_ms <= 0:
                break
            entries = reader.new_entries(block_ms=wait_ms)
            if not entries:
                break
            for entry in entries:
                report.messages += 1
                report.outcomes[handle_entry(binding, reader, entry)] += 1
    finally:
        client.close()
    return report
