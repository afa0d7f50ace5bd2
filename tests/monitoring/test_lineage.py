"""Lineage: a dataset page shows which runs wrote and read it; OpenLineage events when configured."""

import pytest

from apps.monitoring import lineage
from apps.runs import engine
from tests.runs.factories import step


@pytest.fixture
def produced(make_workflow, drive, operator):
    writer = make_workflow([], name="writer", steps=[
        step("load", "test.rows", params={"rows": 1, "writes": ["postgres://warehouse/ledger.entries"]})])
    reader = make_workflow([], name="reader", steps=[
        step("report", "test.rows", params={"rows": 1, "reads": ["postgres://warehouse/ledger.entries"]})])
    return drive(engine.start_run(operator, writer.current_version)), drive(engine.start_run(operator, reader.current_version))


def test_dataset_page_shows_the_runs_that_wrote_and_read_it(produced, client_for, viewer):
    wrote, read = produced
    client = client_for(viewer)
    listing = client.get("/monitoring/datasets/").content.decode()
    assert "postgres://warehouse/ledger.entries" in listing
    text = client.get("/monitoring/datasets/show/", {"uri": "postgres://warehouse/ledger.entries"}).content.decode()
    assert f"run {wrote.pk}" in text and f"run {read.pk}" in text
    assert "Written" in text and "Read" in text


def test_outsider_sees_no_usage_of_the_dataset(produced, client_for, outsider):
    text = client_for(outsider).get("/monitoring/datasets/show/",
                                    {"uri": "postgres://warehouse/ledger.entries"}).content.decode()
    assert "No run in your teams" in text


def test_openlineage_run_event_names_job_and_datasets(produced, settings, monkeypatch):
    wrote, _ = produced
    settings.FLOWDECK_OPENLINEAGE_URL = "http://lineage.example/api/v1/lineage"
    sent = []

    class Accepted:
        def raise_for_status(self):
            return None

    monkeypatch.setattr(lineage.httpx, "post", lambda url, json, timeout: sent.append((url, json)) or Accepted())
    assert lineage.send(wrote.pk, "COMPLETE")
    (url, event), = sent
    assert url == "http://lineage.example/api/v1/lineage"
    assert event["eventType"] == "COMPLETE" and event["job"] == {"namespace": "flowdeck/billing", "name": "writer"}
    assert event["outputs"] == [{"namespace": "postgres://warehouse", "name": "ledger.entries"}] and event["inputs"] == []


def test_no_lineage_events_are_queued_without_a_url(make_workflow, drive, operator, settings,
                                                    django_capture_on_commit_callbacks):
    settings.FLOWDECK_OPENLINEAGE_URL = ""
    workflow = make_workflow([], steps=[step("a")])
    with django_capture_on_commit_callbacks() as callbacks:
        drive(engine.start_run(operator, workflow.current_version))
    settings.FLOWDECK_OPENLINEAGE_URL = "http://lineage.example/"
    with django_capture_on_commit_callbacks() as with_url:
        drive(engine.start_run(operator, workflow.current_version))
    assert len(with_url) == len(callbacks) + 2  # START and COMPLETE
