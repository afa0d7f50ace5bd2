"""Queue triggers on a Redis connection read a Redis stream through a consumer group, against
the real Redis of this machine (db 9, a fresh stream per test; required when CI=true)."""

import io
import time
import uuid

import pytest
import redis
from django.core.management import call_command

from apps.catalog.models import Connection
from apps.runs.models import Run
from apps.triggers.consumers import consume
from apps.triggers.models import TriggerBinding, TriggerEvent
from apps.triggers.streams import StreamReader, group_name
from tests.triggers.conftest import declared, require_broker

REDIS_URL = "redis://127.0.0.1:6379/9"
INPUTS = declared(invoice="string", amount="integer")


class ConsumerCrashed(Exception):
    pass


@pytest.fixture
def streams(db, team):
    """A client on the test database, and the catalog connection `events-redis` to it."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    require_broker("redis", client.ping)
    Connection.objects.create(name="events-redis", kind="redis", url=REDIS_URL, team=team)
    yield client
    client.close()


@pytest.fixture
def new_stream(streams):
    """`new_stream()`: a stream name no other test uses; the streams are deleted afterwards."""
    names = []

    def make():
        names.append(f"fd-test-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    if names:
        streams.delete(*names)


@pytest.fixture
def stream_workflow(make_workflow, new_stream):
    def make(*, stream=None, name="wf"):
        stream = stream or new_stream()
        workflow = make_workflow([{"queue": {"connection": "events-redis", "queue": stream, "batch": None}}],
                                 inputs=INPUTS, name=name)
        return workflow, stream, TriggerBinding.objects.get(workflow=workflow)

    return make


def pending(streams, stream, workflow) -> int:
    return streams.xpending(stream, group_name(workflow.pk))["pending"]


def test_each_entry_starts_one_run_with_its_fields_as_inputs(streams, stream_workflow):
    workflow, stream, _ = stream_workflow()
    streams.xadd(stream, {"invoice": "INV-1", "amount": "120"})
    streams.xadd(stream, {"invoice": "INV-2", "amount": "75"})
    call_command("consume_queue_triggers", "--once")
    runs = Run.objects.filter(workflow=workflow).order_by("pk")
    assert [run.inputs for run in runs] == [{"invoice": "INV-1", "amount": 120}, {"invoice": "INV-2", "amount": 75}]
    assert pending(streams, stream, workflow) == 0
    call_command("consume_queue_triggers", "--once")
    assert Run.objects.filter(workflow=workflow).count() == 2


def test_entries_written_before_the_trigger_existed_are_not_replayed(streams, new_stream, stream_workflow):
    stream = new_stream()
    streams.xadd(stream, {"invoice": "OLD-1", "amount": "1"})
    time.sleep(0.01)  # stream ids are milliseconds
    workflow, _, binding = stream_workflow(stream=stream)
    streams.xadd(stream, {"invoice": "NEW-1", "amount": "2"})
    consume(binding, once=True)
    assert [run.inputs["invoice"] for run in Run.objects.filter(workflow=workflow)] == ["NEW-1"]


def test_a_pending_entry_read_again_after_a_crash_starts_nothing_new(streams, stream_workflow, monkeypatch):
    workflow, stream, binding = stream_workflow()
    streams.xadd(stream, {"invoice": "INV-9", "amount": "9"})

    def crash(self, entry_id):
        raise ConsumerCrashed("killed between recording the run and acknowledging the entry")

    with monkeypatch.context() as patch:
        patch.setattr(StreamReader, "ack", crash)
        with pytest.raises(ConsumerCrashed):
            consume(binding, once=True)
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert pending(streams, stream, workflow) == 1
    report = consume(binding, once=True)  # the consumer reads its unacknowledged entry first
    assert report.messages == 1 and report.outcomes == {"repeat": 1}
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert pending(streams, stream, workflow) == 0
    assert consume(binding, once=True).messages == 0


def test_an_entry_held_by_a_crashed_consumer_is_claimed_and_run_once(streams, stream_workflow):
    workflow, stream, binding = stream_workflow()
    consume(binding, once=True)  # the group exists from the first consume
    group = group_name(workflow.pk)
    abandoned = streams.xadd(stream, {"invoice": "INV-ABANDONED", "amount": "1"})
    in_progress = streams.xadd(stream, {"invoice": "INV-IN-PROGRESS", "amount": "2"})
    streams.xreadgroup(group, "crashed-consumer", {stream: ">"})
    # Two minutes without an acknowledgement on the first entry; the second was read just now.
    streams.xclaim(stream, group, "crashed-consumer", min_idle_time=0, message_ids=[abandoned], idle=120_000)

    report = consume(binding, once=True)
    assert report.outcomes == {"started": 1}
    assert [run.inputs["invoice"] for run in Run.objects.filter(workflow=workflow)] == ["INV-ABANDONED"]
    still_held = streams.xpending_range(stream, group, min="-", max="+", count=10)
    assert [(entry["message_id"], entry["consumer"]) for entry in still_held] == [(in_progress, b"crashed-consumer")]
    assert consume(binding, once=True).messages == 0
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_an_entry_that_does_not_fit_the_inputs_is_noted_and_acknowledged(streams, stream_workflow):
    workflow, stream, binding = stream_workflow()
    streams.xadd(stream, {"invoice": "INV-3", "amount": "lots"})
    assert consume(binding, once=True).outcomes == {"refused": 1}
    event = TriggerEvent.objects.get(workflow=workflow)
    assert event.run is None and "`amount` must be a whole number" in event.error
    assert pending(streams, stream, workflow) == 0


def test_a_batching_stream_trigger_starts_one_run_per_max_items_entries(streams, new_stream, make_workflow):
    stream = new_stream()
    workflow = make_workflow([{"queue": {"connection": "events-redis", "queue": stream,
                                         "batch": {"max_items": 2, "max_wait": None}}}],
                             inputs=declared(events="array"))
    for n in range(3):
        streams.xadd(stream, {"n": str(n)})
    consume(TriggerBinding.objects.get(workflow=workflow), once=True)
    assert [run.inputs["events"] for run in Run.objects.filter(workflow=workflow)] == [[{"n": "0"}, {"n": "1"}]]
    assert pending(streams, stream, workflow) == 0


def test_a_key_that_is_not_a_stream_is_reported_and_the_other_queues_go_on(streams, stream_workflow, new_stream):
    list_key = new_stream()
    streams.rpush(list_key, '{"invoice": "INV-1", "amount": 1}')
    stream_workflow(stream=list_key, name="reads-a-list")
    workflow, stream, _ = stream_workflow(name="reads-a-stream")
    streams.xadd(stream, {"invoice": "INV-2", "amount": "2"})
    errors = io.StringIO()
    call_command("consume_queue_triggers", "--once", stderr=errors)
    assert f"`{list_key}` in Redis is not a stream" in errors.getvalue()
    assert [run.inputs["invoice"] for run in Run.objects.filter(workflow=workflow)] == ["INV-2"]


def test_polling_takes_entries_until_its_time_is_up(streams, stream_workflow):
    workflow, stream, binding = stream_workflow()
    streams.xadd(stream, {"invoice": "INV-5", "amount": "5"})
    began = time.monotonic()
    report = consume(binding, once=False, poll_seconds=0.3)
    assert report.outcomes == {"started": 1} and 0.25 <= time.monotonic() - began < 2
    assert Run.objects.get(workflow=workflow).inputs["invoice"] == "INV-5"


def test_an_entry_written_in_the_millisecond_the_trigger_was_bound_is_read(streams, new_stream):
    from datetime import datetime, timezone

    stream, bound = new_stream(), datetime(2026, 12, 4, 21, 40, 0, 123000, tzinfo=timezone.utc)
    millisecond = int(bound.timestamp() * 1000)
    streams.xadd(stream, {"n": "before"}, id=f"{millisecond - 1}-5")
    reader = StreamReader(streams, stream, "fd-test-group", "consumer")
    reader.ensure_group(bound)
    streams.xadd(stream, {"n": "same millisecond"}, id=f"{millisecond}-0")
    read = streams.xreadgroup("fd-test-group", "consumer", {stream: ">"})
    assert [entry[1] for entry in read[0][1]] == [{b"n": b"same millisecond"}]
