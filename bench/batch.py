"""batch.map benchmark: 1,000,000 invoice records (BENCH_RECORDS) through `normalize_invoice`.

(a) a single-process loop doing the same work (read the CSV, apply the function, write the kept
records and the rejects as JSON lines), then (b) a `batch.map` step on two real worker processes
(BENCH_WORKERS, one prefork child each), timed from the run's creation to its end. Every 200th
record is malformed, so the ledger must come out as exactly records - records/200 succeeded and
records/200 rejected; the benchmark fails if it does not. The CSV is generated once under
FLOWDECK_DATA_ROOT/bench and reused. Uses its own database (var/bench-batch.sqlite3, or
<name>_bench on PostgreSQL) and broker folder.

    .venv/bin/python -m bench.batch
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench.engine import ROOT, VAR, bench_database_url, machine, start_workers, stop_workers

BAD_EVERY = 200
CHUNK_SIZE = 20_000


def prepare_environment() -> None:
    VAR.mkdir(exist_ok=True)
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        os.environ["DATABASE_URL"] = bench_database_url()
    else:
        (VAR / "bench-batch.sqlite3").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{VAR / 'bench-batch.sqlite3'}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ.get("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        broker = VAR / "bench-batch-broker"
        shutil.rmtree(broker, ignore_errors=True)
        os.environ["FLOWDECK_BROKER_DIR"] = str(broker)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")


def dataset(records: int) -> Path:
    """The invoices CSV under the data root, written once per size."""
    from django.conf import settings

    path = Path(settings.FLOWDECK_DATA_ROOT) / "bench" / f"invoices-{records}.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_suffix(".tmp")
    with draft.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["invoice_id", "customer_id", "amount", "currency", "issued_on"])
        for number in range(1, records + 1):
            amount = "n/a" if number % BAD_EVERY == 0 else f"{number % 9973 + 1}.{number % 100:02d}"
            writer.writerow([f"INV-{number:08d}", f"C{number % 4099:05d}", amount, ("eur", "gbp", "usd")[number % 3],
                             f"2026-{number % 12 + 1:02d}-{number % 28 + 1:02d}"])
    draft.replace(path)
    return path


def single_process_loop(path: Path) -> tuple[float, int, int]:
    """The same work in one loop: seconds, records kept, records rejected."""
    from apps.catalog.builtins.batch_functions import RecordRejected, get_record_function

    apply = get_record_function("normalize_invoice").apply
    kept = rejected = 0
    folder = VAR / "bench" / "batch-loop"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with path.open(newline="") as source, (folder / "records.jsonl").open("w") as out, \
            (folder / "rejects.jsonl").open("w") as rejects:
        for number, record in enumerate(csv.DictReader(source), start=1):
            try:
                out.write(json.dumps(apply(record, {})) + "\n")
                kept += 1
            except RecordRejected as reason:
                rejects.write(json.dumps({"record": number, "reason": str(reason), "data": record}) + "\n")
                rejected += 1
    return time.monotonic() - started, kept, rejected


def run_batch_map(team, path: Path):
    from django.conf import settings

    from apps.runs import engine
    from apps.runs.models import FINISHED_RUN_STATES, RunState
    from tests.runs.factories import make_version, step

    relative = str(path.relative_to(settings.FLOWDECK_DATA_ROOT))
    version = make_version(team, [step("map", "batch.map", params={
        "source": {"file": relative}, "function": "normalize_invoice", "chunk_size": CHUNK_SIZE})], name="batch")
    run = engine.start_run(None, version)
    deadline = time.monotonic() + 3600
    while run.state not in (*FINISHED_RUN_STATES, RunState.PAUSED):
        if time.monotonic() > deadline:
            raise SystemExit(f"batch.map did not finish in an hour (state {run.state})")
        time.sleep(0.2)
        run.refresh_from_db()
    step_run = run.step_runs.get(step_id="map")
    if run.state != RunState.SUCCEEDED:
        raise SystemExit(f"batch.map {run.state}: {step_run.error_type}: {step_run.error_message}")
    return (run.finished_at - run.created_at).total_seconds(), step_run.output


def main() -> None:
    prepare_environment()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts.models import Team

    records = int(os.environ.get("BENCH_RECORDS", "1000000"))
    expected_rejects = records // BAD_EVERY
    path = dataset(records)
    loop_seconds, kept, rejected = single_process_loop(path)
    if (kept, rejected) != (records - expected_rejects, expected_rejects):
        raise SystemExit(f"the single-process loop kept {kept} and rejected {rejected}: the data is not as generated")
    team = Team.objects.create(slug="bench", name="Bench")
    worker_count = int(os.environ.get("BENCH_WORKERS", "2"))
    workers = start_workers(worker_count, label="bench-batch", include="apps.catalog.builtins.batch")
    try:
        map_seconds, output = run_batch_map(team, path)
    finally:
        stop_workers(workers)
    ledger = (output["records_in"], output["succeeded"], output["rejected"])
    if ledger != (records, records - expected_rejects, expected_rejects):
        raise SystemExit(f"the batch.map ledger is off: in/succeeded/rejected = {ledger}")
    print(f"machine: {machine()}")
    print(f"dataset: {records:,} CSV records ({path.stat().st_size / 1e6:.0f} MB), every {BAD_EVERY}th malformed")
    print(f"(a) single-process loop: {loop_seconds:.1f} s, {records / loop_seconds:,.0f} records/s")
    print(f"(b) batch.map on {worker_count} workers, chunks of {CHUNK_SIZE:,}: {map_seconds:.1f} s, "
          f"{records / map_seconds:,.0f} records/s (split, map, merge and ledger included)")
    print(f"ledger: {output['records_in']:,} in = {output['succeeded']:,} succeeded + {output['rejected']:,} rejected "
          f"({output['chunks']} chunks)")
    print(f"speed-up (a)/(b): {loop_seconds / map_seconds:.2f}x")


if __name__ == "__main__":
    main()
