"""batch.map with a real Celery worker (two prefork children): chunks spread over both processes,
progress is visible while it runs, and the ledger comes out exact."""

import json
import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.runs import engine
from apps.runs.models import RunState, StepLogLine
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def invoices():
    path = Path(settings.FLOWDECK_DATA_ROOT) / "e2e" / f"invoices-{os.getpid()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["id,invoice_id,customer_id,amount,currency,issued_on"]
    rows += [f"{n},INV-{n},C{n % 9},{'oops' if n % 50 == 0 else f'{n}.25'},gbp,2026-11-{n % 28 + 1:02d}"
             for n in range(1, 4001)]
    path.write_text("\n".join(rows) + "\n")
    yield str(path.relative_to(settings.FLOWDECK_DATA_ROOT))
    path.unlink()


def test_chunks_run_on_both_worker_processes_with_an_exact_ledger(worker, wait_for, team, operator, invoices):
    version = make_version(team, [step("map", "batch.map", params={
        "source": {"file": invoices}, "function": "test.slow", "options": {"seconds": 0.001}, "chunk_size": 200})])
    run = engine.start_run(operator, version)
    step_run = run.step_runs.get(step_id="map")
    seen_progress = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        step_run.refresh_from_db()
        if step_run.progress and step_run.progress.get("phase") == "mapping":
            seen_progress.append(step_run.progress["chunks_done"])
        if step_run.state in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    run = wait_for(run, RunState.SUCCEEDED, RunState.FAILED, RunState.PAUSED)
    step_run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, step_run.error_message
    assert (step_run.output["records_in"], step_run.output["succeeded"], step_run.output["rejected"]) == (4000, 4000, 0)
    assert any(0 < done < 20 for done in seen_progress), seen_progress
    ledger_line = StepLogLine.objects.get(attempt__step_run=step_run, message__startswith="Ledger balanced")
    assert len(ledger_line.fields["workers"]) == 2


def test_rejects_are_counted_and_written_by_real_workers(worker, wait_for, team, operator, invoices):
    version = make_version(team, [step("map", "batch.map", params={
        "source": {"file": invoices}, "function": "normalize_invoice", "chunk_size": 500})], name="normalize")
    run = wait_for(engine.start_run(operator, version), RunState.SUCCEEDED, RunState.FAILED, RunState.PAUSED)
    output = run.step_runs.get(step_id="map").output
    assert run.state == RunState.SUCCEEDED
    assert (output["records_in"], output["succeeded"], output["rejected"]) == (4000, 3920, 80)
    rejects = (Path(settings.ARTIFACT_DIR) / output["rejects"]).read_text().splitlines()
    assert [json.loads(line)["record"] for line in rejects][:3] == [50, 100, 150]
