"""Off the request path: a server process loads the model and the index when it starts (in the
background, not in manage.py or tests), a page ranks only once they are in memory, and a query's
vector is kept by content hash so the same text never reaches the model twice."""

import gc

import numpy as np
import pytest

from apps.knowledge import embedding, indexing, warmup
from apps.knowledge.embedding import encode_query, encoder_loaded, use_encoder
from tests.knowledge.conftest import resolved_incident
from tests.knowledge.fakes import HashingEncoder


class CountingEncoder(HashingEncoder):
    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return super().encode(texts)


def test_the_same_query_is_answered_from_the_cache_without_the_model(monkeypatch):
    with use_encoder(CountingEncoder()) as encoder:
        first = encode_query("ORA-00060 deadlock detected on orders merge")
        again = encode_query("ORA-00060 deadlock detected on orders merge")
        assert len(encoder.calls) == 1 and np.array_equal(first, again)
        assert not again.flags.writeable  # shared between callers: nobody may change it
        encode_query("No space left on device")
        assert len(encoder.calls) == 2

        monkeypatch.setattr(embedding, "QUERY_CACHE_SIZE", 2)
        encode_query("a third failure")  # the least recently used (the deadlock) makes room
        encode_query("ORA-00060 deadlock detected on orders merge")
        assert len(encoder.calls) == 4


@pytest.fixture
def fresh_warm_up(monkeypatch, settings):
    settings.FLOWDECK_KNOWLEDGE_WARMUP = True
    monkeypatch.setattr(warmup, "_state", {"started": False, "done": False, "seconds": None, "reloading": False})
    # The process's model, as SentenceTransformerEncoder() would load it (a small one here).
    monkeypatch.setattr(embedding, "SentenceTransformerEncoder", CountingEncoder)
    with use_encoder(None):
        yield
    gc.unfreeze()  # the rest of the test session collects as usual


@pytest.mark.django_db
def test_a_server_process_loads_the_model_and_index_at_start_without_a_request(team, fresh_warm_up):
    assert not warmup.status()["started"]  # Django's start-up (this test process) warmed nothing
    with use_encoder(HashingEncoder()):
        resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")
        indexing.build_index()
    assert not encoder_loaded() and not indexing.reader().is_current()

    warmup.start_warm_up().join(timeout=30)  # what gunicorn's post_worker_init starts

    assert encoder_loaded() and indexing.reader().is_current()
    assert warmup.status()["done"] and warmup.status()["seconds"] is not None
    assert warmup.ready_to_rank()
    assert warmup.start_warm_up() is None  # once per process
    # What was loaded no longer costs a full collection a walk through it.
    loaded = indexing.reader().get()
    assert gc.get_freeze_count() > 0 and not any(tracked is loaded for tracked in gc.get_objects())


@pytest.mark.django_db
def test_a_newer_index_is_loaded_in_the_background_while_pages_wait_for_a_worker(team, fresh_warm_up, monkeypatch):
    with use_encoder(HashingEncoder()):
        resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")
        indexing.build_index()
    warmup.start_warm_up().join(timeout=30)
    with use_encoder(HashingEncoder()):
        indexing.build_index()  # another process rebuilt it
    reloads = []
    real = warmup.threading.Thread
    monkeypatch.setattr(warmup.threading, "Thread", lambda **kwargs: reloads.append(real(**kwargs)) or reloads[-1])

    assert not warmup.ready_to_rank()  # a page would ask a worker instead of loading it itself
    reloads[0].join(timeout=30)
    assert indexing.reader().is_current() and warmup.ready_to_rank()
