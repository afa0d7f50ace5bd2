"""A real Celery worker process (prefork, two children) against the test database.

One per test session, shared by every test that asks for `worker` (registered in
tests/conftest.py): a second one would compete for the same queues on a shared broker.

The worker gets the test database's URL, the test step types, fast heartbeats, and its own
broker: a temporary folder for the filesystem broker when CELERY_BROKER_URL is not set, else
that broker with its queues purged. With CI=true a broker that does not answer fails the run.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types here too)

QUEUES = ("steps", "default", "test-other")
ROOT = Path(__file__).resolve().parents[1]


def database_url(settings_dict) -> str:
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    return (f"postgres://{settings_dict['USER']}{password}@{settings_dict['HOST'] or '127.0.0.1'}:"
            f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")


def _use_broker(tmp_path_factory) -> dict:
    """Point this process's Celery app at the worker's broker; returns the worker's extra env."""
    from apps.celery import app

    if os.environ.get("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        folder = tmp_path_factory.mktemp("broker")
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir()
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        }
        # Earlier tests may have published already: drop the pools built on the old folders.
        app._after_fork()
        return {"FLOWDECK_BROKER_DIR": str(folder)}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2)
            for queue in QUEUES:
                conn.default_channel.queue_declare(queue=queue, durable=True)
                conn.default_channel.queue_purge(queue)
    except Exception as exc:  # noqa: BLE001  (any broker failure means the same: no worker)
        message = f"broker {app.conf.broker_url} does not answer: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {}


def start_worker(env: dict, logdir: Path, name: str, queues=QUEUES, prefix=()) -> subprocess.Popen:
    """A prefork worker (two children) with `env`, started and consuming, or the test fails.
    `prefix` is a command that runs it elsewhere and execs it (on a test host: tests/e2e/hosts.py)."""
    logfile = logdir / "worker.log"
    process = subprocess.Popen(
        [*prefix, str(Path(sys.executable).parent / "celery"), "-A", "apps", "worker", "--pool=prefork",
         "--concurrency=2", "-Q", ",".join(queues), "-n", f"{name}-{os.getpid()}@%h", "--without-gossip",
         "--without-mingle", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=logfile.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in (logfile.read_text() if logfile.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_worker(process)
            pytest.fail(f"the Celery worker did not start:\n{logfile.read_text() if logfile.exists() else ''}")
        time.sleep(0.2)
    process.logfile, process.env = logfile, env
    return process


def start_beat(env: dict, logdir: Path) -> subprocess.Popen:
    """Celery beat with `env`; it is up once it wrote its first heartbeat (the caller waits for it)."""
    logfile = logdir / "beat.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "apps", "beat", "--loglevel=INFO",
         "--schedule", str(logdir / "beat-schedule")],
        cwd=ROOT, env=env, stdout=logfile.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    process.logfile = logfile
    return process


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker_env(extra: dict) -> dict:
    """The environment of a test worker: the test database, test step types, fast heartbeats."""
    from django.db import connection

    return {
        **os.environ,
        **extra,
        "DATABASE_URL": database_url(connection.settings_dict),
        "FLOWDECK_TEST_STEP_TYPES": "1",
        "FLOWDECK_HEARTBEAT_SECONDS": "1",
        "FLOWDECK_STALE_AFTER_SECONDS": "5",
        "FLOWDECK_WORKER_HEARTBEAT_SECONDS": "0.5",
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "INFO",  # the worker's "ready." line is how we know it consumes
    }


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    process = start_worker(worker_env(_use_broker(tmp_path_factory)), tmp_path_factory.mktemp("worker"), "e2e")
    yield process
    stop_worker(process)


@pytest.fixture
def wait_for():
    """`wait_for(run, *states)`: poll until the run is in one of `states` (fails after `timeout`)."""

    def wait(run, *states, timeout=45):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.state in states:
                return run
            time.sleep(0.1)
        steps = dict(run.step_runs.values_list("step_id", "state"))
        pytest.fail(f"run {run.pk} stayed {run.state} (steps {steps}), expected {states}")

    return wait


def wait_for_effect(run, timeout: float = 30) -> None:
    """Poll until a step of `run` has recorded a side effect (it is in the middle of its work)."""
    from apps.runs.models import EffectLedger

    deadline = time.monotonic() + timeout
    while not EffectLedger.objects.filter(step_run__run=run).exists():
        assert time.monotonic() < deadline, "the step never applied its effect"
        time.sleep(0.05)


def sweep_until_succeeded(run, timeout: float = 60):
    """Run the sweeper as beat would (every half second here) until `run` succeeds."""
    from apps.runs import engine
    from apps.runs.models import RunState

    deadline = time.monotonic() + timeout
    run.refresh_from_db()
    while run.state != RunState.SUCCEEDED:
        assert time.monotonic() < deadline, (
            f"run stayed {run.state}: {dict(run.step_runs.values_list('step_id', 'state'))}")
        engine.sweep()
        time.sleep(0.5)
        run.refresh_from_db()
    return run
