"""Micro-batches: one run per batch, closed at `max_items` events or after `max_wait`, every
event in exactly one run."""

import importlib
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.runs.models import Run
from apps.triggers import services
from apps.triggers.models import BatchState, EventBatch, TriggerEvent, TriggerSource
from tests.triggers.conftest import declared


@pytest.fixture
def batching(make_workflow):
    def make(max_items, max_wait):
        return make_workflow([{"webhook": {"batch": {"max_items": max_items, "max_wait": max_wait}}}],
                             inputs=declared(events="array"))

    return make


def add(workflow, n, config):
    return services.add_to_batch(workflow, TriggerSource.WEBHOOK, f"e{n}", {"n": n}, config)


def test_batch_closed_at_max_items_starts_one_run_over_its_events(batching):
    workflow = batching(3, None)
    config = {"max_items": 3, "max_wait": None}
    for n in range(7):
        add(workflow, n, config)
    runs = Run.objects.filter(workflow=workflow).order_by("pk")
    assert [run.inputs["events"] for run in runs] == [[{"n": 0}, {"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}, {"n": 5}]]
    assert EventBatch.objects.get(state=BatchState.OPEN).events.count() == 1
    assert add(workflow, 2, config)[1] is False  # a repeated event key is not added again


def test_batch_closed_when_max_wait_has_passed(batching):
    workflow = batching(100, 600)
    config = {"max_items": 100, "max_wait": 600}
    add(workflow, 1, config)
    add(workflow, 2, config)
    assert services.close_due_batches() == 0
    assert services.close_due_batches(timezone.now() + timedelta(seconds=601)) == 1
    run = Run.objects.get(workflow=workflow)
    assert run.inputs["events"] == [{"n": 1}, {"n": 2}]
    assert EventBatch.objects.get().close_reason == "max_wait"
    add(workflow, 3, config)  # a later event opens a new batch
    assert EventBatch.objects.filter(state=BatchState.OPEN).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_events_and_closes_lose_nothing_and_count_nothing_twice(batching, drive):
    # `drive` keeps the started runs' steps out of the broker; only the trigger rows matter here.
    workflow = batching(7, 1)
    config = {"max_items": 7, "max_wait": 1}
    errors = []

    def producer(offset):
        try:
            for n in range(offset, offset + 25):
                add(workflow, n, config)
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    def closer():
        try:
            for _ in range(20):
                services.close_due_batches(timezone.now() + timedelta(seconds=2))
        finally:
            connection.close()

    threads = [threading.Thread(target=producer, args=(i * 100,)) for i in range(4)] + [threading.Thread(target=closer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    services.close_due_batches(timezone.now() + timedelta(seconds=2))
    assert errors == []
    counted = [event["n"] for run in Run.objects.filter(workflow=workflow) for event in run.inputs["events"]]
    assert sorted(counted) == sorted(n for i in range(4) for n in range(i * 100, i * 100 + 25))
    assert not TriggerEvent.objects.filter(workflow=workflow, run__isnull=True).exists()
    assert all(len(run.inputs["events"]) <= 7 for run in Run.objects.filter(workflow=workflow))


def test_run_page_partial_lists_the_events_of_its_batch(batching, client_for, viewer, outsider):
    workflow = batching(2, None)
    add(workflow, 1, {"max_items": 2})
    add(workflow, 2, {"max_items": 2})
    run = Run.objects.get(workflow=workflow)
    text = client_for(viewer).get(f"/triggers/runs/{run.pk}/events/").content.decode()
    assert "<code>e1</code>" in text and "<code>e2</code>" in text
    assert client_for(outsider).get(f"/triggers/runs/{run.pk}/events/").status_code == 404


def test_bindings_saved_with_the_old_batch_names_are_migrated(make_workflow):
    from django.apps import apps

    migration = importlib.import_module("apps.triggers.migrations.0003_batch_max_items_max_wait")
    workflow = make_workflow([{"queue": {"connection": "events", "queue": "q", "batch": {"size": 5, "window": 60}}}])
    migration.forwards(apps, None)
    binding = workflow.trigger_bindings.get()
    assert binding.config["batch"] == {"max_items": 5, "max_wait": 60}
