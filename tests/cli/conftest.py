"""The `flowdeck` command against pytest-django's live server, with a worker in a thread of the
test process so that runs move on while the command waits."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_thread(transactional_db, monkeypatch):
    """Every attempt the engine sends is run by one thread of this process once its transaction
    commits, as a Celery worker would run it; an error in a step's handling fails the test."""
    from django.db import connections, transaction

    from apps.runs import engine, tasks

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-worker")
    handled = []

    def run_attempt(attempt_id: int) -> None:
        try:
            tasks.run_attempt.run(attempt_id)
        finally:
            connections.close_all()

    def send_on_commit(attempt_id, queue, timeout, countdown=0):
        transaction.on_commit(lambda: handled.append(pool.submit(run_attempt, attempt_id)))

    monkeypatch.setattr(engine.attempts, "send_on_commit", send_on_commit)
    yield
    pool.shutdown(wait=True)
    for attempt in handled:
        attempt.result()


@pytest.fixture
def flowdeck(live_server, tmp_path):
    """`flowdeck(user, *args)`: the command with a fresh API token of `user` (None: no token) and
    an empty config folder, run by Typer's runner in this process (a new process costs a second
    on a busy machine); `process=True` runs `python -m flowdeck_cli` as a real process.
    Returns a CompletedProcess either way."""
    from typer.testing import CliRunner

    from apps.accounts.services import issue_token
    from flowdeck_cli.main import app

    def run(user, *args: str, url: str | None = None, process: bool = False) -> subprocess.CompletedProcess:
        env = {"FLOWDECK_URL": url or live_server.url, "FLOWDECK_TOKEN": issue_token(user, "cli test")[1] if user
               else "", "FLOWDECK_CONFIG": "", "FLOWDECK_TEAM": "", "XDG_CONFIG_HOME": str(tmp_path),
               "COLUMNS": "200"}
        if process:
            env = {**{key: value for key, value in os.environ.items() if not key.startswith("FLOWDECK_")}, **env}
            return subprocess.run([sys.executable, "-m", "flowdeck_cli", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
        result = CliRunner().invoke(app, list(args), env=env, prog_name="flowdeck")
        unexpected = "" if result.exception is None or isinstance(result.exception, SystemExit) \
            else f"\n{result.exception!r}"
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr + unexpected)

    return run
