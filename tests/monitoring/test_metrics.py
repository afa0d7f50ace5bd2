"""The Prometheus endpoint: bearer-protected, reading the database at scrape time."""

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest

from apps.runs import engine
from tests.real_worker import ROOT, database_url
from tests.runs.factories import step


@pytest.fixture
def scraped(settings, client):
    settings.FLOWDECK_METRICS_TOKEN = "scrape-me"

    def scrape():
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
        assert response.status_code == 200
        return response.content.decode()

    return scrape


def test_metrics_are_off_without_a_token_and_say_how_to_turn_them_on(client, settings, db):
    settings.FLOWDECK_METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == ("Metrics are off: set FLOWDECK_METRICS_TOKEN, then send "
                                         "Authorization: Bearer <that token>.\n")


def test_a_wrong_token_is_refused(client, settings, db):
    settings.FLOWDECK_METRICS_TOKEN = "scrape-me"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert response.status_code == 401 and "Bearer" in response["WWW-Authenticate"]
    assert response.content.decode() == "Send Authorization: Bearer <FLOWDECK_METRICS_TOKEN>.\n"
    assert "<html" not in client.get("/metrics").content.decode()


def test_scrape_reports_runs_step_durations_queues_approvals_and_slas(scraped, make_workflow, drive, operator,
                                                                      approver_group):
    done = make_workflow([], name="done", steps=[step("load", "test.rows", params={"rows": 5})])
    drive(engine.start_run(operator, done.current_version))
    gated = make_workflow([], name="gated", steps=[step("approve", approval={"group": "billing-approvers",
                                                                             "quorum": 1})])
    engine.start_run(operator, gated.current_version)
    queued = make_workflow([], name="queued", steps=[step("wait")])
    engine.start_run(operator, queued.current_version)
    text = scraped()
    assert 'flowdeck_runs{state="succeeded"} 1.0' in text
    assert 'flowdeck_runs{state="waiting"} 1.0' in text
    assert 'flowdeck_step_duration_seconds_count{step_type="test.rows"} 1.0' in text
    assert 'flowdeck_step_duration_seconds_bucket{le="+Inf",step_type="test.rows"} 1.0' in text
    assert 'flowdeck_queue_depth{queue="steps"} 1.0' in text
    assert "flowdeck_pending_approvals 1.0" in text
    assert "flowdeck_sla_breaches_total 0.0" in text
    assert "flowdeck_sla_at_risk 0.0" in text


# --- The knowledge index query counter ---------------------------------------------------------------


COUNT_IN_ANOTHER_PROCESS = ("import django; django.setup(); from apps.monitoring.counters import count_index_query; "
                            "[count_index_query() for _ in range(3)]")


def index_queries(text: str) -> float:
    return float(re.search(r"^flowdeck_index_queries_total (\S+)$", text, re.M).group(1))


@pytest.mark.django_db(transaction=True)
def test_index_queries_counted_by_other_processes_show_in_one_scrape(scraped):
    # Counts as every web and worker process does (test_index_query_metric.py goes through a real
    # knowledge query).
    from django.db import connection

    from apps.monitoring.counters import count_index_query

    before = index_queries(scraped())
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    workers = [subprocess.Popen([sys.executable, "-c", COUNT_IN_ANOTHER_PROCESS], cwd=ROOT, env=env)
               for _ in range(2)]
    count_index_query()
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    assert index_queries(scraped()) == before + 7


class CallerFailed(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_a_query_is_counted_when_the_callers_transaction_commits(scraped):
    from django.db import transaction

    from apps.monitoring.counters import count_index_query

    before = index_queries(scraped())
    with transaction.atomic():
        count_index_query()
        assert index_queries(scraped()) == before  # no counter row lock held while the caller works
    assert index_queries(scraped()) == before + 1
    with pytest.raises(CallerFailed), transaction.atomic():
        count_index_query()
        raise CallerFailed
    assert index_queries(scraped()) == before + 1


# --- Broker-side queue depths ------------------------------------------------------------------------


@contextmanager
def celery_conf(**values):
    """Celery's settings for the duration (its conf is not monkeypatch-able: keys are looked up)."""
    from apps.celery import app

    previous = {key: app.conf[key] for key in values}
    app.conf.update(values)
    try:
        yield
    finally:
        app.conf.update(previous)


@pytest.fixture
def broker_queue(monkeypatch, tmp_path):
    """A queue no one else uses, on this session's broker (a temporary folder for the filesystem
    broker); /metrics reports only it. Yields a function publishing n messages to it."""
    from kombu import Queue

    from apps.celery import app
    from apps.monitoring import metrics

    name = f"fd-metrics-{uuid.uuid4().hex[:8]}"
    options = app.conf.broker_transport_options
    if app.conf.broker_url.startswith("filesystem://"):
        folders = {sub: tmp_path / sub for sub in ("queue", "processed", "control")}
        for folder in folders.values():
            folder.mkdir()
        options = {**options, "data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
                   "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"])}
    monkeypatch.setattr(metrics, "known_queues", lambda: [name])

    def publish(n):
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            producer = conn.Producer()
            for _ in range(n):
                producer.publish({"n": 1}, routing_key=name, declare=[Queue(name)])

    with celery_conf(broker_transport_options=options):
        yield name, publish
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(name)


def test_scrape_reports_messages_waiting_in_the_broker(scraped, broker_queue, db):
    queue, publish = broker_queue
    text = scraped()
    assert "flowdeck_broker_up 1.0" in text
    assert f'flowdeck_broker_queue_messages{{queue="{queue}"}} 0.0' in text  # never declared yet: empty
    publish(3)
    assert f'flowdeck_broker_queue_messages{{queue="{queue}"}} 3.0' in scraped()


def test_a_broker_that_does_not_answer_is_reported_down_without_hanging(scraped, monkeypatch, settings, db):
    from apps.monitoring import broker_queues

    # A listening socket that never answers: the connection is accepted by the kernel, then silence.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}//"
    monkeypatch.setattr(broker_queues, "BROKER_TIMEOUT_SECONDS", 0.5)
    settings.CELERY_BROKER_URL = url
    started = time.monotonic()
    try:
        with celery_conf(broker_url=url, broker_read_url=url, broker_transport=None, broker_transport_options={}):
            text = scraped()
    finally:
        silent.close()
    assert time.monotonic() - started < 3
    assert "flowdeck_broker_up 0.0" in text and "flowdeck_broker_queue_messages" not in text
    assert 'flowdeck_runs{state="succeeded"}' in text  # the database's series are still served
