"""The embedded broker never lets a consumer see a half-written message; on Redis, a lost
connection's channel never stops the worker."""

import os
import socket

import pytest
from kombu import Connection, Consumer, Queue


def test_message_appears_in_the_queue_folder_only_once_complete(tmp_path, monkeypatch):
    folders = {name: tmp_path / name for name in ("queue", "control", "processed")}
    for folder in folders.values():
        folder.mkdir()
    seen_at_rename = []
    real_replace = os.replace

    def watching_replace(source, target):
        # What a polling consumer could list at the moment the message is published.
        seen_at_rename.append(([n for n in os.listdir(folders["queue"]) if n.endswith(".msg")],
                               os.path.getsize(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", watching_replace)
    options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
               "control_folder": str(folders["control"]), "processed_folder": str(folders["processed"])}
    with Connection("filesystem://", transport="apps.broker:Transport", transport_options=options) as conn:
        queue = conn.SimpleQueue("orders")
        queue.put({"order": 42})
        assert seen_at_rename == [([], seen_at_rename[0][1])] and seen_at_rename[0][1] > 0
        message = queue.get(timeout=1)
        message.ack()
        queue.close()
    assert message.payload == {"order": 42}
    assert os.listdir(folders["queue"]) == []


def test_late_ack_and_requeue_on_the_channel_of_a_lost_redis_give_up_with_a_warning(redis_broker, caplog):
    # The worker's case: a step message is being worked on and a BRPOP is pending when Redis goes;
    # celery collects the connection, the consumer's channel is closed, and only then the step ends.
    conn = Connection(f"redis://127.0.0.1:{redis_broker.port}/0", transport="apps.broker:RedisTransport")
    channel = conn.channel()
    queue = Queue("steps", channel=channel)
    queue.declare()
    producer = conn.Producer(channel)
    for number in (1, 2):
        producer.publish({"attempt": number}, routing_key="steps")
    received = []
    Consumer(channel, [queue], callbacks=[lambda body, message: received.append(message)], prefetch_count=3).consume()
    while len(received) < 2:
        conn.drain_events(timeout=1)
    with pytest.raises(socket.timeout):
        conn.drain_events(timeout=0.1)  # leaves a BRPOP pending, as a worker with a free slot has
    redis_broker.kill()
    conn.collect()
    channel.close()

    received[0].ack()
    received[1].requeue()

    given_up = [r.getMessage() for r in caplog.records if r.name == "flowdeck.broker"]
    assert [m.split(" message ")[0] for m in given_up[1:]] == ["could not acknowledge", "could not requeue"]
    assert "could not put 2 unacknowledged message(s) back" in given_up[0]
