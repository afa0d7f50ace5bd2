"""Poison messages: a RabbitMQ message or Redis stream entry whose handling keeps failing is
given back and counted, set aside as a dead letter after FLOWDECK_TRIGGER_MAX_DELIVERIES
deliveries (acknowledged, alerted), and replayed by an operator once the cause is fixed. Against
the real RabbitMQ and Redis of this machine (required when CI=true)."""

import json

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.monitoring.models import Alert, AlertKind, AlertState
from apps.runs.models import Run
from apps.triggers import services
from apps.triggers.consumers import consume
from apps.triggers.models import DeadLetter, DeadLetterState, QueueDelivery, TriggerBinding
from tests.triggers.test_queues import broker, publish, queue_workflow  # noqa: F401  (fixtures)
from tests.triggers.test_redis_streams import new_stream, pending, stream_workflow, streams  # noqa: F401

LIMIT = 3


class ConsumerKilled(BaseException):
    """Stands for the process dying mid-message: nothing in the consumer catches it."""


@pytest.fixture
def poison(monkeypatch, settings):
    """Recording a message whose invoice is POISON raises until `poison.cure()`; `poison.kill()`
    makes it kill the consumer instead."""
    settings.FLOWDECK_TRIGGER_MAX_DELIVERIES = LIMIT
    real = services.start_or_note

    class Poison:
        failure = ValueError("invoice POISON has no customer")

        def cure(self):
            self.failure = None

        def kill(self):
            self.failure = ConsumerKilled()

    state = Poison()

    def start_or_note(workflow, source, key, *, inputs=None, payload=None, **kwargs):
        if state.failure is not None and (inputs or {}).get("invoice") == "POISON":
            raise state.failure
        return real(workflow, source, key, inputs=inputs, payload=payload, **kwargs)

    monkeypatch.setattr(services, "start_or_note", start_or_note)
    return state


def invoices(workflow):
    return sorted(run.inputs["invoice"] for run in Run.objects.filter(workflow=workflow))


def test_a_rabbitmq_message_failing_on_every_delivery_is_set_aside_and_alerted(queue_workflow, broker, poison):
    workflow, queue = queue_workflow
    publish(broker.name, queue, {"invoice": "POISON"}, "m-poison")
    publish(broker.name, queue, {"invoice": "INV-1"}, "m-1")
    binding = TriggerBinding.objects.get(workflow=workflow)
    # Given back and retried the next round, not at once: two rounds fail, the third sets it aside.
    assert [dict(consume(binding, once=True).outcomes) for _ in range(2)] == [{"failed": 1}, {"failed": 1}]
    assert consume(binding, once=True).outcomes == {"set_aside": 1, "started": 1}
    letter = DeadLetter.objects.get(workflow=workflow)
    assert letter.state == DeadLetterState.SET_ASIDE and letter.deliveries == LIMIT and letter.source == "rabbitmq"
    assert json.loads(letter.body) == {"invoice": "POISON"} and letter.message_key == "m-poison"
    assert "ValueError: invoice POISON has no customer" in letter.error
    assert invoices(workflow) == ["INV-1"]
    assert consume(binding, once=True).messages == 0  # acknowledged: off the queue for good
    alert = Alert.objects.get(kind=AlertKind.DEAD_LETTER, state=AlertState.OPEN)
    assert alert.team == workflow.team and alert.detail["dead_letter"] == letter.pk
    assert AuditEvent.objects.filter(action="dead_letter.set_aside", object_id=str(letter.pk)).exists()
    assert not QueueDelivery.objects.exists()


def test_a_redis_entry_failing_on_every_delivery_is_set_aside_without_holding_up_others(streams, stream_workflow,
                                                                                       poison):
    workflow, stream, binding = stream_workflow()
    streams.xadd(stream, {"invoice": "POISON", "amount": "1"})
    streams.xadd(stream, {"invoice": "INV-2", "amount": "2"})
    assert consume(binding, once=True).outcomes == {"failed": 1, "started": 1}
    assert pending(streams, stream, workflow) == 1  # left pending in the group, read again next round
    assert consume(binding, once=True).outcomes == {"failed": 1}
    assert consume(binding, once=True).outcomes == {"set_aside": 1}
    assert pending(streams, stream, workflow) == 0
    letter = DeadLetter.objects.get(workflow=workflow)
    assert letter.source == "redis" and letter.deliveries == LIMIT and letter.queue == stream
    assert json.loads(letter.body) == {"invoice": "POISON", "amount": "1"}
    assert invoices(workflow) == ["INV-2"]


def test_an_entry_that_kills_its_consumer_every_time_is_set_aside_unhandled(streams, stream_workflow, poison):
    workflow, stream, binding = stream_workflow()
    poison.kill()
    streams.xadd(stream, {"invoice": "POISON", "amount": "1"})
    for _ in range(LIMIT):
        with pytest.raises(ConsumerKilled):
            consume(binding, once=True)
    assert consume(binding, once=True).outcomes == {"set_aside": 1}
    letter = DeadLetter.objects.get(workflow=workflow)
    assert letter.deliveries == LIMIT + 1 and "stopped" in letter.error
    assert pending(streams, stream, workflow) == 0 and invoices(workflow) == []


def test_a_message_that_recovers_before_the_limit_starts_its_run_and_leaves_no_count(streams, stream_workflow,
                                                                                     poison):
    workflow, stream, binding = stream_workflow()
    streams.xadd(stream, {"invoice": "POISON", "amount": "1"})
    assert consume(binding, once=True).outcomes == {"failed": 1}
    poison.cure()
    assert consume(binding, once=True).outcomes == {"started": 1}
    assert invoices(workflow) == ["POISON"] and not DeadLetter.objects.exists() and not QueueDelivery.objects.exists()


@pytest.fixture
def set_aside(queue_workflow, broker, poison):
    workflow, queue = queue_workflow
    publish(broker.name, queue, {"invoice": "POISON"}, "m-poison")
    binding = TriggerBinding.objects.get(workflow=workflow)
    for _ in range(LIMIT):
        consume(binding, once=True)
    return DeadLetter.objects.get(workflow=workflow)


def test_an_operator_replays_a_set_aside_message_once_the_cause_is_fixed(set_aside, poison, api_for, operator):
    api, url = api_for(operator), f"/api/v1/dead-letters/{set_aside.pk}/replay"
    failed = api.post(url)
    assert failed.status_code == 409 and "failed again" in failed.json()["detail"]
    assert DeadLetter.objects.get(pk=set_aside.pk).state == DeadLetterState.SET_ASIDE
    poison.cure()
    replayed = api.post(url)
    assert replayed.status_code == 200, replayed.content
    assert replayed.json()["state"] == "replayed" and replayed.json()["replay_outcome"] == "started"
    assert invoices(set_aside.workflow) == ["POISON"]
    assert api.post(url).status_code == 409  # replayed once
    assert AuditEvent.objects.filter(action="dead_letter.replayed", actor=operator,
                                     object_id=str(set_aside.pk)).exists()
    listed = api.get(f"/api/v1/workflows/{set_aside.workflow_id}/dead-letters").json()["results"]
    assert [(row["id"], row["state"], row["replayed_by"]) for row in listed] == [
        (set_aside.pk, "replayed", operator.username)]


def test_a_viewer_cannot_replay_and_other_teams_do_not_see_dead_letters(set_aside, api_for, viewer, outsider):
    url = f"/api/v1/dead-letters/{set_aside.pk}/replay"
    assert api_for(viewer).get(f"/api/v1/workflows/{set_aside.workflow_id}/dead-letters").status_code == 200
    assert api_for(viewer).post(url).status_code == 403
    assert api_for(outsider).post(url).status_code == 404
    assert api_for(outsider).get(f"/api/v1/workflows/{set_aside.workflow_id}/dead-letters").status_code == 404


def test_the_trigger_page_lists_set_aside_messages_with_a_replay_button(set_aside, poison, client_for, operator,
                                                                        viewer):
    page_url = reverse("triggers:workflow", args=[set_aside.workflow_id])
    page = client_for(operator).get(page_url).content.decode()
    assert "Queue messages set aside" in page and "m-poison" in page and "invoice POISON has no customer" in page
    assert reverse("triggers:dead_letter_replay", args=[set_aside.pk]) in page
    assert reverse("triggers:dead_letter_replay", args=[set_aside.pk]) not in client_for(viewer).get(page_url) \
        .content.decode()
    poison.cure()
    after = client_for(operator).post(reverse("triggers:dead_letter_replay", args=[set_aside.pk]), follow=True)
    assert "Message replayed: started" in after.content.decode()
    assert "Queue messages set aside" not in after.content.decode()  # the started run is among the events now


def test_openapi_documents_dead_letters_and_the_other_trigger_endpoints(client_for, operator):
    paths = set(client_for(operator).get("/api/schema/", {"format": "json"}).json()["paths"])
    assert {"/api/v1/workflows/{id}/dead-letters", "/api/v1/dead-letters/{id}/replay",
            "/api/v1/workflows/{id}/next-runs", "/api/v1/workflows/{id}/backfills", "/api/v1/backfills/{id}",
            "/api/v1/backfills/{id}/cancel", "/api/v1/runs/{id}/trigger-events"} <= paths


def test_an_api_path_with_a_trailing_slash_is_sent_on_keeping_the_method(api_for, set_aside, operator):
    api = api_for(operator)
    moved = api.post(f"/api/v1/dead-letters/{set_aside.pk}/replay/?why=old-client")
    assert moved.status_code == 308 and moved["Location"] == f"/api/v1/dead-letters/{set_aside.pk}/replay?why=old-client"
    set_aside.refresh_from_db()
    assert set_aside.state == "set_aside"  # the redirect itself changes nothing
    assert api.get("/api/v1/approvals/").status_code == 308
