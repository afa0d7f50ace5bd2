"""Restarting the broker in the middle of a run loses no run, repeats no step, stops no worker.

The tests start their own Redis (a throwaway server on a free port, keeping nothing on disk, as
the machine's Redis is configured) and their own worker on it, kill Redis while steps run, and
start an empty one in its place: the messages being worked on and anything queued are gone.
The steps finish, their successors' messages go to the new server (or, if they were lost too,
the sweeper re-sends them, run here as beat would), and the runs succeed with each step once.
"""

import time

import pytest

from apps.runs import engine
from apps.runs.models import AttemptState, EffectLedger, RunState, StepAttempt, StepState
from tests.real_worker import start_worker, stop_worker, sweep_until_succeeded, wait_for_effect, worker_env
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_on(redis_broker, tmp_path, monkeypatch):
    """A worker on the throwaway Redis, and this process publishing there too."""
    from apps.celery import app

    url = f"redis://127.0.0.1:{redis_broker.port}/0"
    keys = ("broker_url", "broker_transport", "broker_transport_options")
    previous = {key: app.conf[key] for key in keys}
    # Celery reads the broker's URL from this variable before its own settings (the services pass sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    # The embedded default names its own transport class and folders: none of that applies here.
    app.conf.update(broker_url=url, broker_transport="apps.broker:RedisTransport",
                    broker_transport_options={"visibility_timeout": 3600})
    app._after_fork()  # drop the producer pool built for the previous broker
    process = start_worker(worker_env({"CELERY_BROKER_URL": url}), tmp_path, "restart")
    yield process
    stop_worker(process)
    monkeypatch.undo()
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


def pool_children(worker) -> set[int]:
    return {int(pid) for pid in open(f"/proc/{worker.pid}/task/{worker.pid}/children").read().split()}


def wait_until_connected(worker, times: int) -> None:
    """Wait for the worker's `times`-th "Connected to" line (its start counts as the first)."""
    deadline = time.monotonic() + 20
    while worker.logfile.read_text().count("Connected to ") < times:
        assert worker.poll() is None, f"the worker stopped:\n{worker.logfile.read_text()[-4000:]}"
        assert time.monotonic() < deadline, "the worker did not reconnect to the restarted Redis"
        time.sleep(0.05)


def test_workers_keep_consuming_through_ten_redis_restarts(redis_broker, worker_on, team, operator, wait_for):
    # One step in flight leaves the worker a free slot, so a BRPOP is pending on the socket Redis
    # drops: the case where kombu let the worker's late ack of that step crash it (see apps/broker.py).
    version = make_version(team, [step("pay", "test.effect", params={"target": "acct-7", "seconds": 0.8})])
    children = pool_children(worker_on)
    assert len(children) == 2
    runs = []
    for restart in range(10):
        runs.append(run := engine.start_run(operator, version))
        deadline = time.monotonic() + 20
        while not StepAttempt.objects.filter(step_run__run=run, state=AttemptState.RUNNING).exists():
            assert worker_on.poll() is None, (f"the worker stopped after {restart} restart(s):\n"
                                              f"{worker_on.logfile.read_text()[-4000:]}")
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.02)
        redis_broker.kill()
        redis_broker.start()  # empty: every message it held is gone
        wait_until_connected(worker_on, times=restart + 2)
        wait_for(run, RunState.SUCCEEDED, timeout=20)

    after = engine.start_run(operator, version)
    wait_for(after, RunState.SUCCEEDED, timeout=15)  # the worker still takes new messages
    assert worker_on.poll() is None and pool_children(worker_on) == children, "a worker process died"
    for run in runs + [after]:
        pay = run.step_runs.get()
        assert StepAttempt.objects.filter(step_run=pay, state=AttemptState.SUCCEEDED).count() == 1
        assert EffectLedger.objects.filter(step_run=pay).count() == 1
