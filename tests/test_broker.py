"""The embedded broker never lets a consumer see a half-written message."""

import os

from kombu import Connection


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
