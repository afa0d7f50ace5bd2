"""Redis behind Sentinel fails over in the middle of a run: the run finishes, each step once, and
the workers carry on with the new master.

The test starts its own Redis master, a replica of it and one sentinel watching them (throwaway
servers on free ports, keeping nothing on disk), a worker and this process both on
`sentinel://` (CELERY_BROKER_SENTINEL_MASTER names the group). It kills the master while a step
runs; the sentinel promotes the replica, and every connection finds the new master by asking
the sentinel again. A message the old master held and the replica had not yet copied may be
gone; the sweeper (run here as beat would) re-sends its attempt.
"""

import os
import shutil
import subprocess
import time

import pytest
from django.db import connection

from apps.runs import engine
from apps.runs.models import AttemptState, EffectLedger, RunState, StepAttempt, StepState
from tests.real_worker import start_worker, stop_worker, sweep_until_succeeded, worker_env
from tests.runs.factories import make_version, step
from tests.throwaway_redis import free_port

pytestmark = [
    pytest.mark.e2e, pytest.mark.django_db(transaction=True),
    # The broker's failover is under test, not the database: once, in the PostgreSQL + Redis pass.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="runs in the PostgreSQL + Redis pass"),
]

GROUP = "flowdeck-test"


def _redis_server(*args: str) -> subprocess.Popen:
    return subprocess.Popen([shutil.which("redis-server"), *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def sentinel(tmp_path):
    """(sentinel port, master server, replica port): a master, its replica and one sentinel."""
    import redis

    if not shutil.which("redis-server"):
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    # The replica writes the copy it syncs from to its folder: the test's, not the working tree.
    plain = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path))
    config = tmp_path / "sentinel.conf"  # the sentinel rewrites its file as it learns
    config.write_text(f"port {sentinel_port}\nbind 127.0.0.1\n"
                      f"sentinel monitor {GROUP} 127.0.0.1 {master_port} 1\n"
                      f"sentinel down-after-milliseconds {GROUP} 1000\n"
                      f"sentinel failover-timeout {GROUP} 5000\n")
    servers = [_redis_server("--port", str(master_port), *plain)]
    try:
        servers.append(_redis_server("--port", str(replica_port), *plain, "--replicaof", "127.0.0.1", str(master_port)))
        replica = redis.Redis(port=replica_port, socket_timeout=1)
        _wait_until(lambda: replica.info("replication")["master_link_status"] == "up", "the replica never synced")
        servers.append(_redis_server(str(config), "--sentinel", "--dir", str(tmp_path)))
        watcher = redis.Redis(port=sentinel_port, socket_timeout=1)
        _wait_until(lambda: watcher.sentinel_slaves(GROUP), "the sentinel never saw the replica")
        yield sentinel_port, servers[0], replica_port
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def worker_on_sentinel(sentinel, tmp_path, monkeypatch):
    """A worker on the sentinel's group, and this process publishing there too."""
    from apps.celery import app

    url = f"sentinel://127.0.0.1:{sentinel[0]}"
    keys = ("broker_url", "broker_transport", "broker_transport_options")
    previous = {key: app.conf[key] for key in keys}
    # Celery reads the broker's URL from this variable before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf.update(broker_url=url, broker_transport="apps.broker:RedisSentinelTransport",
                    broker_transport_options={"visibility_timeout": 3600, "master_name": GROUP})
    app._after_fork()  # drop the producer pool built for the previous broker
    process = start_worker(worker_env({"CELERY_BROKER_SENTINEL_MASTER": GROUP}), tmp_path, "sentinel")
    yield process
    stop_worker(process)
    monkeypatch.undo()
    app.conf.update(previous)
    app._after_fork()


def test_a_sentinel_failover_mid_step_loses_no_run_and_repeats_no_step(sentinel, worker_on_sentinel, team,
                                                                        operator, settings, wait_for):
    import redis

    settings.FLOWDECK_STALE_AFTER_SECONDS = 5
    _, master, replica_port = sentinel
    version = make_version(team, [step("pay", "test.effect", params={"target": "acct-9", "seconds": 3}),
                                  step("after", needs=["pay"])])
    run = engine.start_run(operator, version)
    _wait_until(lambda: EffectLedger.objects.filter(step_run__run=run).exists(), "the step never started", 30)

    master.kill()
    master.wait(timeout=10)
    promoted = redis.Redis(port=replica_port, socket_timeout=1)
    _wait_until(lambda: promoted.info("replication")["role"] == "master", "the sentinel never promoted the replica")

    run = sweep_until_succeeded(run, timeout=60)
    for step_run in run.step_runs.all():
        assert step_run.state == StepState.SUCCEEDED
        assert StepAttempt.objects.filter(step_run=step_run, state=AttemptState.SUCCEEDED).count() == 1
    assert EffectLedger.objects.filter(step_run__run=run, target="acct-9").count() == 1

    # The worker consumes from the new master: a new run goes through without the sweeper.
    after = engine.start_run(operator, make_version(team, [step("pay", "test.effect", params={"target": "acct-10"})],
                                                    name="after-failover"))
    wait_for(after, RunState.SUCCEEDED, timeout=30)
    assert worker_on_sentinel.poll() is None
