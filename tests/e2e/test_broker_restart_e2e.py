"""Restarting the broker in the middle of a run loses no run and repeats no step.

The test starts its own Redis (a throwaway server on a free port, keeping nothing on disk, as
the machine's Redis is configured) and its own worker on it, kills Redis while a step runs, and
starts an empty one in its place: the message being worked on and anything queued are gone.
The step finishes, its successor's message goes to the new server (or, if it was lost too, the
sweeper re-sends it, run here as beat would), and the run succeeds with each step once.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from apps.runs import engine
from apps.runs.models import AttemptState, EffectLedger, StepAttempt, StepState
from tests.real_worker import start_worker, stop_worker, sweep_until_succeeded, wait_for_effect, worker_env
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayRedis:
    def __init__(self, port: int):
        self.port = port
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "the throwaway Redis did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def redis_broker():
    if not shutil.which("redis-server"):
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = ThrowawayRedis(free_port())
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture
def worker_on(redis_broker, tmp_path):
    """A worker on the throwaway Redis, and this process publishing there too."""
    from apps.celery import app

    url = f"redis://127.0.0.1:{redis_broker.port}/0"
    keys = ("broker_url", "broker_transport", "broker_transport_options")
    previous = {key: app.conf[key] for key in keys}
    # The embedded default names its own transport class and folders: none of that applies here.
    app.conf.update(broker_url=url, broker_transport="apps.broker:RedisTransport",
                    broker_transport_options={"visibility_timeout": 3600})
    app._after_fork()  # drop the producer pool built for the previous broker
    process = start_worker(worker_env({"CELERY_BROKER_URL": url}), tmp_path, "restart")
    yield process
    stop_worker(process)
    app.conf.update(previous)
    app._after_fork()


def test_broker_restarted_mid_step_loses_no_run_and_repeats_no_step(redis_broker, worker_on, team, operator,
                                                                     settings):
    settings.FLOWDECK_STALE_AFTER_SECONDS = 5
    version = make_version(team, [step("pay", "test.effect", params={"target": "acct-7", "seconds": 3}),
                                  step("after", needs=["pay"])])
    run = engine.start_run(operator, version)
    wait_for_effect(run)

    redis_broker.kill()
    redis_broker.start()  # empty: every message it held is gone

    run = sweep_until_succeeded(run, timeout=90)

    for step_run in run.step_runs.all():
        assert step_run.state == StepState.SUCCEEDED
        assert StepAttempt.objects.filter(step_run=step_run, state=AttemptState.SUCCEEDED).count() == 1
    assert EffectLedger.objects.filter(step_run__run=run, target="acct-7").count() == 1
