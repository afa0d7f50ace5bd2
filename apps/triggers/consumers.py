"""Queue triggers: one run (or one batch event) per message on the queue a `queue` trigger
names. A `rabbitmq` connection is consumed through kombu; a `redis` connection is a Redis
stream read through a consumer group (`apps.triggers.streams`).

A message is acknowledged only after its TriggerEvent and run are committed. If the consumer
dies in between, the message is delivered again (RabbitMQ redelivers it; a Redis stream keeps
it pending until another consumer claims it); its key (the message id, or the stream entry id)
finds the event already in the ledger, so the redelivery starts nothing and is acknowledged.

A message whose handling raises is given back (RabbitMQ requeues it, and this queue waits for
the next round; a Redis entry stays pending and is read again next round) and counted; after
FLOWDECK_TRIGGER_MAX_DELIVERIES deliveries it is set aside as a dead letter and acknowledged
(`apps.triggers.dead_letters`), so one poison message neither loops forever nor blocks its queue.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import kombu.exceptions
import redis
from django.conf import settings
from kombu import Connection as BrokerConnection

from apps.catalog.models import Connection, ConnectionKind
from apps.logging import get_logger
from apps.triggers import dead_letters, messages
from apps.triggers.models import TriggerBinding, TriggerKind
from apps.triggers.streams import StreamEntry, StreamReader, consumer_name, group_name

QUEUE_KINDS = (ConnectionKind.RABBITMQ, ConnectionKind.REDIS)
# What a broker that is down or unreachable raises; the command goes on with the other queues.
BROKER_DOWN = (OSError, kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError)
SET_ASIDE, FAILED = "set_aside", "failed"
logger = get_logger("flowdeck.triggers")


class QueueConfigError(Exception):
    """A queue trigger names a connection that cannot be used; the message says how to fix it."""


@dataclass
class ConsumeReport:
    messages: int = 0
    outcomes: Counter = field(default_factory=Counter)  # started / repeat / refused / failed / set_aside


@dataclass
class Delivery:
    """One message as the broker handed it over, and what settling it takes."""

    source: str  # the connection kind
    key: str
    body: str
    payload: dict | None
    redelivered: bool
    ack: Callable[[], None]
    give_back: Callable[[], None]


def queue_connection(binding: TriggerBinding) -> Connection:
    """The binding's queue connection, among those its workflow's team may use (another team's
    queue reads exactly like a missing one)."""
    name = binding.config["connection"]
    connection = Connection.objects.usable_by(binding.workflow.team_id).filter(name=name).first()
    if connection is None or connection.kind not in QUEUE_KINDS:
        raise QueueConfigError(f"Queue triggers need a rabbitmq or redis connection named `{name}` that team "
                               f"{binding.workflow.team.name} may use: ask a platform admin to add it or share it "
                               f"in the catalog.")
    return connection


def broker_url(connection: Connection) -> str:
    """The URL of a catalog connection, with its secret as the password."""
    parts = urlsplit(connection.url)
    secret = connection.reveal_secret()
    if not secret:
        return connection.url
    netloc = f"{quote(parts.username or '', safe='')}:{quote(secret, safe='')}@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def consume(binding: TriggerBinding, *, once: bool, poll_seconds: float = 1.0) -> ConsumeReport:
    """Consume the binding's queue: until it is empty (`once`), or for `poll_seconds` at most."""
    connection = queue_connection(binding)
    consumer = _consume_stream if connection.kind == ConnectionKind.REDIS else _consume_rabbitmq
    return consumer(binding, broker_url(connection), once=once, poll_seconds=poll_seconds)


def queue_bindings():
    return TriggerBinding.objects.select_related("workflow__current_version").filter(kind=TriggerKind.QUEUE)


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


def settle(binding: TriggerBinding, delivery: Delivery) -> str:
    """Record one delivered message and acknowledge it. When recording raises, give it back to be
    delivered again, or set it aside once it has been delivered FLOWDECK_TRIGGER_MAX_DELIVERIES times."""
    limit, workflow = settings.FLOWDECK_TRIGGER_MAX_DELIVERIES, binding.workflow
    deliveries = dead_letters.count_delivery(workflow, delivery.key) if delivery.redelivered else 1
    if deliveries > limit:
        # Past the limit with its last failure never noted: it stopped its consumer every time.
        error = dead_letters.last_error(workflow, delivery.key) or \
            "The consumer stopped (crashed or was killed) while handling it, on every delivery."
        return _set_aside(binding, delivery, error, deliveries)
    try:
        outcome = messages.record_body(binding, delivery.source, delivery.key, delivery.payload)
    except BROKER_DOWN:
        raise
    except Exception as exc:  # noqa: BLE001  (any failure of a message's handling counts the same)
        error = f"{type(exc).__name__}: {exc}"
        logger.warning("queue message failed", workflow=str(workflow), message=delivery.key,
                       deliveries=deliveries, error=error)
        if deliveries >= limit:
            return _set_aside(binding, delivery, error, deliveries)
        dead_letters.note_failure(workflow, delivery.key, error)
        delivery.give_back()
        return FAILED
    if delivery.redelivered:
        dead_letters.settled(workflow, delivery.key)
    delivery.ack()
    return outcome


def _set_aside(binding: TriggerBinding, delivery: Delivery, error: str, deliveries: int) -> str:
    dead_letters.set_aside(binding, source=delivery.source, message_key=delivery.key, body=delivery.body,
                           payload=delivery.payload, error=error, deliveries=deliveries)
    delivery.ack()
    return SET_ASIDE


def rabbitmq_delivery(message) -> Delivery:
    body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
    # Classic queues only flag a redelivery; how many there were is counted in QueueDelivery.
    redelivered = bool(message.delivery_info.get("redelivered"))
    return Delivery(ConnectionKind.RABBITMQ, message_id(message), body, _payload(message), redelivered,
                    ack=message.ack, give_back=message.requeue)


def _consume_rabbitmq(binding: TriggerBinding, url: str, *, once: bool, poll_seconds: float) -> ConsumeReport:
    report = ConsumeReport()
    config = binding.config
    with BrokerConnection(url, connect_timeout=5) as conn:
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
                outcome = settle(binding, rabbitmq_delivery(message))
                report.outcomes[outcome] += 1
                # A message given back is next in line again: retry it next round, not at once.
                if outcome == FAILED or (not once and time.monotonic() >= deadline):
                    break
        finally:
            queue.close()
    return report


# --- Redis streams --------------------------------------------------------------------------------


def stream_delivery(reader: StreamReader, entry: StreamEntry, *, redelivered: bool) -> Delivery:
    return Delivery(ConnectionKind.REDIS, f"redis:{reader.stream}:{entry.entry_id}",
                    json.dumps(entry.fields) if entry.fields is not None else "(not UTF-8 text)", entry.fields,
                    redelivered, ack=lambda: reader.ack(entry.entry_id),
                    # Left pending in the group: the next round reads it again from the backlog.
                    give_back=lambda: None)


def _consume_stream(binding: TriggerBinding, url: str, *, once: bool, poll_seconds: float) -> ConsumeReport:
    report = ConsumeReport()
    client = redis.Redis.from_url(url, socket_connect_timeout=5,
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
            report.outcomes[settle(binding, stream_delivery(reader, entry, redelivered=True))] += 1
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
                report.outcomes[settle(binding, stream_delivery(reader, entry, redelivered=False))] += 1
    finally:
        client.close()
    return report
