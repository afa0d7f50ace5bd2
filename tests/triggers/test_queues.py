"""Queue triggers on RabbitMQ (through kombu) against the real broker of this machine
(required when CI=true). Redis connections are streams: see test_redis_streams.py."""

import uuid

import kombu.message
import pytest
from django.core.management import call_command
from kombu import Connection as BrokerConnection

from apps.catalog.models import Connection
from apps.runs.models import Run
from apps.triggers.consumers import broker_url, consume
from apps.triggers.models import TriggerBinding, TriggerEvent
from tests.triggers.conftest import declared, require_broker


class ConsumerCrashed(Exception):
    pass


@pytest.fixture
def broker(db, team):
    connection = Connection.objects.create(name="events-rabbitmq", kind="rabbitmq", url="amqp://guest@127.0.0.1:5672//",
                                           team=team)
    connection.set_secret("guest")
    connection.save()

    def answers():
        with BrokerConnection(broker_url(connection), connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)

    require_broker("rabbitmq", answers)
    return connection


@pytest.fixture
def queue_workflow(make_workflow, broker):
    queue = f"fd-test-{uuid.uuid4().hex[:10]}"
    workflow = make_workflow([{"queue": {"connection": broker.name, "queue": queue, "batch": None}}],
                             inputs=declared(invoice="string"))
    yield workflow, queue
    with BrokerConnection(broker_url(broker)) as conn:
        simple = conn.SimpleQueue(queue)
        simple.clear()
        simple.close()


def publish(connection_name, queue, body, message_id):
    with BrokerConnection(broker_url(Connection.objects.get(name=connection_name))) as conn:
        simple = conn.SimpleQueue(queue)
        simple.put(body, serializer="json", message_id=message_id, headers={"message-id": message_id})
        simple.close()


def test_each_message_starts_one_run_with_its_body_as_inputs(queue_workflow, broker):
    workflow, queue = queue_workflow
    publish(broker.name, queue, {"invoice": "INV-1"}, "m-1")
    publish(broker.name, queue, {"invoice": "INV-2"}, "m-2")
    call_command("consume_queue_triggers", "--once")
    assert sorted(run.inputs["invoice"] for run in Run.objects.filter(workflow=workflow)) == ["INV-1", "INV-2"]


def test_a_message_redelivered_after_a_crash_starts_nothing_new(queue_workflow, broker, monkeypatch):
    workflow, queue = queue_workflow
    publish(broker.name, queue, {"invoice": "INV-9"}, "m-9")
    binding = TriggerBinding.objects.get(workflow=workflow)

    def crash(self, *args, **kwargs):
        raise ConsumerCrashed("killed between recording the run and acknowledging the message")

    with monkeypatch.context() as patch:
        patch.setattr(kombu.message.Message, "ack", crash)
        with pytest.raises(ConsumerCrashed):
            consume(binding, once=True)
    assert Run.objects.filter(workflow=workflow).count() == 1
    report = consume(binding, once=True)  # the broker hands the unacknowledged message over again
    assert report.messages == 1 and report.outcomes == {"repeat": 1}
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert consume(binding, once=True).messages == 0  # acknowledged this time


def test_a_message_that_does_not_fit_the_inputs_is_noted_not_retried(queue_workflow, broker):
    workflow, queue = queue_workflow
    publish(broker.name, queue, {"invoice": 42}, "m-bad")
    report = consume(TriggerBinding.objects.get(workflow=workflow), once=True)
    assert report.outcomes == {"refused": 1}
    event = TriggerEvent.objects.get(workflow=workflow)
    assert event.run is None and "`invoice` must be text" in event.error
