"""A queue trigger consumes only through connections its workflow's team may use: another team's
RabbitMQ queue or Redis stream reads exactly like a missing connection."""

import pytest

from apps.catalog.models import Connection
from apps.triggers.consumers import QueueConfigError, consume, queue_connection
from apps.triggers.models import TriggerBinding, TriggerEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_binding(make_workflow):
    def bind(connection_name):
        workflow = make_workflow([{"queue": {"connection": connection_name, "queue": "invoices", "batch": None}}])
        return TriggerBinding.objects.get(workflow=workflow, kind="queue")

    return bind


def test_a_queue_trigger_cannot_consume_another_teams_queue(queue_binding, other_team):
    Connection.objects.create(name="their-rabbit", kind="rabbitmq", url="amqp://guest@127.0.0.1:1//", team=other_team)
    binding = queue_binding("their-rabbit")
    with pytest.raises(QueueConfigError, match="that team Billing may use"):
        consume(binding, once=True)
    assert not TriggerEvent.objects.exists()


def test_a_queue_trigger_uses_its_own_teams_or_a_shared_connection(queue_binding, team, other_team):
    own = Connection.objects.create(name="our-redis", kind="redis", url="redis://127.0.0.1:1/0", team=team)
    shared = Connection.objects.create(name="shared-rabbit", kind="rabbitmq", url="amqp://guest@127.0.0.1:1//",
                                       team=other_team)
    shared.shared_with.add(team)
    assert queue_connection(queue_binding("our-redis")) == own
    assert queue_connection(queue_binding("shared-rabbit")) == shared
