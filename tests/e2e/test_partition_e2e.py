"""Workers on several hosts: a worker host cut off from the network in the middle of a step.

The test builds its own hosts (tests/e2e/hosts.py): the console (this process, with PostgreSQL,
the broker and a payments API that records every request it gets) and two worker hosts in
network namespaces, each running a real Celery worker under its own hostname. The first step
pays through the API; the API holds its answer to the first delivery, and while that worker
waits for it the test pulls its host's cable. The other worker finds the silent worker's
liveness record stale, takes the attempt over and calls the API again with the same
Idempotency-Key, and the run finishes. Then the cable goes back in, the API answers the cut-off
worker, and its late result is refused: its claim is no longer the attempt's (the fencing token
of apps.runs.engine.worker), so nothing is recorded twice.

PostgreSQL and a network broker only: on the embedded default the hosts would share a file.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from apps.audit.models import AuditEvent
from apps.catalog import services
from apps.platform import liveness
from apps.runs import engine
from apps.runs.models import AttemptState, EffectLedger, RunState, StepAttempt, StepState
from tests.e2e.hosts import TestHosts, network_namespaces_or_skip
from tests.real_worker import database_url, start_worker, stop_worker, worker_env
from tests.runs.factories import make_version, step

pytestmark = [
    pytest.mark.e2e, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql" or settings.CELERY_BROKER_URL.startswith("filesystem://"),
                       reason="hosts share PostgreSQL and a network broker (CI runs it there)"),
]

QUEUE = "partition"
BROKER_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672}


@pytest.fixture
def test_hosts():
    network_namespaces_or_skip()
    hosts = TestHosts()
    try:
        hosts.build()
        yield hosts
    finally:
        hosts.remove()


class PaymentsApi(ThreadingHTTPServer):
    """A payments API on the console: notes each request's Idempotency-Key and the address it came
    from, and answers with the delivery's number; its answer to the first waits for `release_first`."""

    daemon_threads = True

    def __init__(self, address: str):
        super().__init__((address, 0), _Payments)
        self.url = f"http://{address}:{self.server_address[1]}"
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        self.first_arrived, self.release_first = threading.Event(), threading.Event()


class _Payments(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api = self.server
        with api.lock:
            api.deliveries.append({"key": self.headers.get("Idempotency-Key"), "client": self.client_address[0]})
            number = len(api.deliveries)
        if number == 1:
            api.first_arrived.set()
            api.release_first.wait(60)
        body = json.dumps({"payment": "pay-1", "delivery": number}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def payments_api(test_hosts):
    api = PaymentsApi(test_hosts.console)
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield api
    api.release_first.set()
    api.shutdown()
    api.server_close()


def _via(url: str, host: str, default_port: int) -> str:
    """`url` with its host (and an implicit port) replaced by `host`, credentials kept."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials + '@' if credentials else ''}{host}:{parts.port or default_port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def workers(test_hosts, tmp_path):
    """A worker on each of two hosts, reaching PostgreSQL and the broker through the console."""
    db = connection.settings_dict
    test_hosts.relay.forward(5432, (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    broker = urlsplit(settings.CELERY_BROKER_URL)
    broker_port = broker.port or BROKER_PORTS[broker.scheme]
    test_hosts.relay.forward(broker_port, (broker.hostname, broker_port))
    env = {**worker_env({}),
           "DATABASE_URL": database_url({**db, "HOST": test_hosts.console}),
           "CELERY_BROKER_URL": _via(settings.CELERY_BROKER_URL, test_hosts.console, broker_port)}
    processes, failure = {}, None
    try:
        # Both at once: a worker takes seconds to start on two cores.
        with ThreadPoolExecutor(2) as pool:
            starting = {}
            for name in ("w1", "w2"):
                host = test_hosts.add_host(name)
                (tmp_path / name).mkdir()
                starting[name] = pool.submit(start_worker, env, tmp_path / name, f"partition-{name}",
                                             queues=(QUEUE,), prefix=host.command())
            for name, started in starting.items():
                try:
                    processes[name] = started.result()
                except BaseException as exc:  # pytest.fail's Failed too; the other worker is still stopped below
                    failure = failure or exc
        if failure:
            raise failure
        yield processes
    finally:
        for name in processes:
            test_hosts.plug_cable(test_hosts.hosts[name])  # a warm shutdown needs the database
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(stop_worker, processes.values()))


def wait_for_line(process, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.logfile.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the worker's log:\n{process.logfile.read_text()[-3000:]}"
        time.sleep(0.2)


def test_a_worker_host_cut_off_mid_step_is_taken_over_and_its_late_result_refused(
        test_hosts, payments_api, workers, team, operator, platform_admin, wait_for):
    services.add_allowed_host(platform_admin, pattern=test_hosts.console, allow_private=True, note="payments API")
    version = make_version(team, [
        step("pay", "http.request", queue=QUEUE, params={
            "method": "POST", "url": f"{payments_api.url}/payments", "json": {"amount": 120}, "timeout": 60}),
        step("book", "test.effect", needs=["pay"], queue=QUEUE, params={"target": "ledger-7"}),
    ])
    run = engine.start_run(operator, version)
    assert payments_api.first_arrived.wait(30), "no worker called the payments API"
    first_caller = payments_api.deliveries[0]["client"]
    cut = next(name for name, host in test_hosts.hosts.items() if host.address == first_caller)
    other = next(name for name in test_hosts.hosts if name != cut)
    cut_host, other_host = test_hosts.hosts[cut], test_hosts.hosts[other]
    test_hosts.pull_cable(cut_host)

    # The other host's worker takes the attempt over and the run goes on without the cut-off host.
    run = wait_for(run, RunState.SUCCEEDED, RunState.FAILED, timeout=40)
    assert run.state == RunState.SUCCEEDED
    finished_at = run.finished_at

    test_hosts.plug_cable(cut_host)
    payments_api.release_first.set()  # the cut-off worker gets its answer at last, and reports it
    wait_for_line(workers[cut], "attempt result discarded", timeout=40)

    key = StepAttempt.objects.get(step_run__run=run, step_run__step_id="pay").idempotency_key
    assert payments_api.deliveries == [{"key": key, "client": cut_host.address},
                                       {"key": key, "client": other_host.address}]
    run.refresh_from_db()
    assert (run.state, run.finished_at) == (RunState.SUCCEEDED, finished_at)
    pay = run.step_runs.get(step_id="pay")
    attempt = pay.attempts.get()
    assert (attempt.state, attempt.deliveries) == (AttemptState.SUCCEEDED, 2)
    assert attempt.worker.startswith(f"{other_host.name}:")
    assert pay.output["json"] == attempt.output["json"] == {"payment": "pay-1", "delivery": 2}
    actions = list(AuditEvent.objects.filter(object_type="runs.steprun", object_id=str(pay.pk))
                   .order_by("sequence").values_list("action", "after__lost_worker"))
    assert [action for action, _ in actions].count("step.succeeded") == 1
    [(_, lost_worker)] = [entry for entry in actions if entry[0] == "step.requeued"]
    assert lost_worker.startswith(f"{cut_host.name}:")
    book = run.step_runs.get(step_id="book")
    assert book.state == StepState.SUCCEEDED and book.attempts.count() == 1
    assert EffectLedger.objects.filter(step_run__run=run).count() == 1

    # The cut-off host is back, and so is its worker.
    assert workers[cut].poll() is None
    deadline = time.monotonic() + 10
    while not any(record.alive and record.host == cut_host.name for record in liveness.workers()):
        assert time.monotonic() < deadline, "the cut-off worker's liveness record stayed stale"
        time.sleep(0.2)
