"""batch.map driven in-process: chunking, the completeness ledger, rejects, chunk retries and a
chunk whose worker went silent. The chunk messages are captured, so this process's parent step
runs every chunk itself (tests/e2e/test_batch_map.py spreads them over real workers)."""

import json
import os
import time
from pathlib import Path

import pytest

from apps.catalog.builtins import batch
from apps.catalog.builtins.batch_functions import register_test_functions
from apps.catalog.models import Connection
from apps.runs import engine
from apps.runs.models import RunState, StepAttempt, StepLogLine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

INVOICE_HEADER = "invoice_id,customer_id,amount,currency,issued_on\n"


@pytest.fixture(autouse=True)
def folders(settings, tmp_path):
    settings.FLOWDECK_DATA_ROOT = tmp_path / "data"
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    settings.FLOWDECK_DATA_ROOT.mkdir()
    register_test_functions()
    return settings


@pytest.fixture
def sent(monkeypatch):
    """Chunk indexes the parent sent to the workers, in order."""
    messages = []
    monkeypatch.setattr(batch, "_send_chunk", lambda attempt_id, index, folder, queue: messages.append(index))
    return messages


def write(settings, name, text):
    path = Path(settings.FLOWDECK_DATA_ROOT) / name
    path.write_text(text)
    return name


def run_batch(team, operator, drive, **params):
    version = make_version(team, [step("map", "batch.map", params=params)])
    run = drive(engine.start_run(operator, version))
    return run, run.step_runs.get(step_id="map")


def artifact_lines(settings, relative):
    return [json.loads(line) for line in (Path(settings.ARTIFACT_DIR) / relative).read_text().splitlines()]


def invoices(count, bad_every=0):
    rows = []
    for number in range(1, count + 1):
        amount = "abc" if bad_every and number % bad_every == 0 else f"{number}.50"
        rows.append(f"INV-{number},C{number % 7},{amount},eur,2026-11-{number % 28 + 1:02d}\n")
    return INVOICE_HEADER + "".join(rows)


def test_csv_is_cut_into_chunks_of_chunk_size_records_and_each_is_sent(folders, team, operator, drive, sent):
    # A quoted field spanning lines is one record, not two.
    text = "id,note\n" + "".join(f'{n},"line one\nline two of {n}"\n' for n in range(1, 26))
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "notes.csv", text)},
                              function="identity", chunk_size=10)
    assert run.state == RunState.SUCCEEDED
    assert sent == [0, 1, 2]
    manifest = json.loads((Path(folders.ARTIFACT_DIR) / step_run.output["output"]).with_name("batch")
                          .joinpath("manifest.json").read_text())
    assert [(c["first_record"], c["records"]) for c in manifest["chunks"]] == [(1, 10), (11, 10), (21, 5)]
    records = artifact_lines(folders, step_run.output["output"])
    assert [r["id"] for r in records] == [str(n) for n in range(1, 26)]
    assert records[24]["note"] == "line one\nline two of 25"


def test_ledger_balances_with_rejects_written_with_their_reasons(folders, team, operator, drive, sent):
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "inv.csv", invoices(95, 10))},
                              function="normalize_invoice", chunk_size=20)
    assert run.state == RunState.SUCCEEDED
    output = step_run.output
    assert (output["records_in"], output["succeeded"], output["rejected"]) == (95, 86, 9)
    assert output["ledger"] == "balanced" and output["chunks"] == 5
    rejects = artifact_lines(folders, output["rejects"])
    assert [r["record"] for r in rejects] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert rejects[0]["reason"] == "`amount` 'abc' is not a number"
    assert rejects[0]["data"]["invoice_id"] == "INV-10"
    kept = artifact_lines(folders, output["output"])
    assert len(kept) == 86 and kept[0] == {"invoice_id": "INV-1", "customer_id": "C1", "amount_cents": 150,
                                           "currency": "EUR", "issued_on": "2026-11-02"}
    attempt = StepAttempt.objects.get(step_run=step_run)
    assert (attempt.records_in, attempt.records_out, attempt.records_rejected) == (95, 86, 9)
    step_run.refresh_from_db()
    assert step_run.progress["chunks_done"] == 5 and step_run.progress["records_done"] == 95


def test_unreadable_jsonl_lines_are_rejects_and_blank_lines_are_not_records(folders, team, operator, drive, sent):
    text = '{"name": "Ann", "email": "ANN@example.com"}\n\n{broken\n[1, 2]\n{"name": "Bo", "email": "bo@"}\n'
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "people.jsonl", text)},
                              function="clean_contact", chunk_size=2)
    assert run.state == RunState.SUCCEEDED
    assert (step_run.output["records_in"], step_run.output["succeeded"], step_run.output["rejected"]) == (4, 1, 3)
    reasons = [r["reason"] for r in artifact_lines(folders, step_run.output["rejects"])]
    assert reasons[0].startswith("record 2 is not JSON")
    assert reasons[1] == "record 3 is not a JSON object"
    assert reasons[2] == "`email` 'bo@' is not an email address"


def test_a_chunk_that_breaks_is_tried_again_and_the_ledger_stays_exact(folders, team, operator, drive, sent, tmp_path):
    text = "id\n" + "".join(f"{n}\n" for n in range(1, 31))
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "ids.csv", text)},
                              function="test.fail_once", options={"fail_on": 15, "marker": str(tmp_path / "m")},
                              chunk_size=10, chunk_retries=1)
    assert run.state == RunState.SUCCEEDED
    assert step_run.output["succeeded"] == 30 and step_run.output["rejected"] == 0
    assert sorted(sent) == [0, 1, 1, 2]
    retried = StepLogLine.objects.get(attempt__step_run=step_run, level="warning")
    assert retried.message.startswith("Chunk 1 broke (RuntimeError: chunk broke on purpose at record 15)")
    assert [r["id"] for r in artifact_lines(folders, step_run.output["output"])] == [str(n) for n in range(1, 31)]


def test_a_chunk_that_keeps_breaking_fails_the_step_naming_its_records(folders, team, operator, drive, sent, tmp_path):
    text = "id\n" + "".join(f"{n}\n" for n in range(1, 31))
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "ids.csv", text)},
                              function="test.fail_once", options={"fail_on": 15, "marker": str(tmp_path / "m")},
                              chunk_size=10, chunk_retries=0)
    assert run.state == RunState.FAILED
    step_run.refresh_from_db()
    assert step_run.error_message.startswith("Chunk 1 (records 11 to 20) broke 1 times, last with RuntimeError")


def test_a_chunk_held_by_a_silent_worker_is_taken_over(folders, team, operator, drive, monkeypatch, settings):
    settings.FLOWDECK_STALE_AFTER_SECONDS = 30

    died = []

    def claimed_by_a_worker_that_dies(attempt_id, index, folder, queue):
        if index == 0 and not died:
            died.append(index)
            claim = Path(folder) / "chunk-00000.claim"
            claim.write_text("dead-host:123 abcd")
            os.utime(claim, (time.time() - 120, time.time() - 120))

    monkeypatch.setattr(batch, "_send_chunk", claimed_by_a_worker_that_dies)
    text = "id\n" + "".join(f"{n}\n" for n in range(1, 21))
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "ids.csv", text)},
                              function="identity", chunk_size=10)
    assert run.state == RunState.SUCCEEDED and step_run.output["succeeded"] == 20
    warning = StepLogLine.objects.get(attempt__step_run=step_run, level="warning")
    assert "Chunk 0 was held by a worker that stopped answering" in warning.message
    assert warning.fields["holder"] == "dead-host:123 abcd"


def test_a_folder_left_by_another_run_with_the_same_ids_is_not_reused(folders, team, operator, drive, sent):
    text = "id\n" + "".join(f"{n}\n" for n in range(1, 6))
    version = make_version(team, [step("map", "batch.map", params={
        "source": {"file": write(folders, "ids.csv", text)}, "function": "identity"})])
    run = engine.start_run(operator, version)
    # As after the database was reset while the artifacts stayed: same run id, another batch.
    stale = Path(folders.ARTIFACT_DIR) / "runs" / str(run.pk) / "map" / "1" / "batch"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"identity": "another run", "records": 1, "chunks": []}))
    (stale / "ledger.json").write_text("{}")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="map").output["records_in"] == 5


def test_rows_of_a_sql_query_are_mapped(folders, team, operator, drive, sent, tmp_path):
    import sqlite3

    database = tmp_path / "crm.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE contacts (name TEXT, email TEXT, phone TEXT)")
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?)",
                       [(f" Person  {n} ", f"P{n}@Example.com", "+44 20 7946 0000") for n in range(7)]
                       + [("Nobody", "not-an-email", "")])
    Connection.objects.create(name="crm", kind="sql", url=f"sqlite:///{database}", team=team)
    run, step_run = run_batch(team, operator, drive, source={"connection": "crm", "sql": "SELECT * FROM contacts"},
                              function="clean_contact", chunk_size=3)
    assert run.state == RunState.SUCCEEDED
    assert (step_run.output["records_in"], step_run.output["succeeded"], step_run.output["rejected"]) == (8, 7, 1)
    assert artifact_lines(folders, step_run.output["output"])[0] == {
        "name": "Person 0", "email": "p0@example.com", "phone": "+442079460000"}


def test_more_rejects_than_allowed_fails_the_step_pointing_at_the_rejects(folders, team, operator, drive, sent):
    run, step_run = run_batch(team, operator, drive, source={"file": write(folders, "inv.csv", invoices(20, 5))},
                              function="normalize_invoice", max_rejected=3)
    step_run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert step_run.error_message.startswith("4 records were rejected, more than max_rejected=3")
    assert "rejects.jsonl" in step_run.error_message


@pytest.mark.parametrize(("params", "message"), [
    ({"source": {"file": "missing.csv"}, "function": "identity"}, "source.file 'missing.csv' does not exist"),
    ({"source": {"file": "../../etc/passwd.csv"}, "function": "identity"}, "is outside the data root"),
    ({"source": {"file": "x.csv"}, "function": "no_such_function"}, "There is no record function 'no_such_function'"),
])
def test_bad_sources_and_functions_fail_at_once_saying_what_to_fix(folders, team, operator, drive, sent, params,
                                                                   message):
    run, step_run = run_batch(team, operator, drive, **params)
    step_run.refresh_from_db()
    assert run.state == RunState.FAILED and message in step_run.error_message
    assert StepAttempt.objects.filter(step_run=step_run).count() == 1


@pytest.mark.parametrize(("bad", "message"), [
    ({"max_records": "lots"}, "batch.map parameters are invalid: max_records: 'lots' is not of type 'integer'"),
    ({"max_records": 5}, "The dataset holds more than max_records=5 records"),
])
def test_a_bad_max_records_fails_permanently_saying_why(folders, team, operator, drive, sent, bad, message):
    params = {"source": {"file": write(folders, "inv.csv", INVOICE_HEADER + invoices(20))},
              "function": "normalize_invoice", **bad}
    version = make_version(team, [step("map", "batch.map", params=params, retries={"count": 2})])
    run = drive(engine.start_run(operator, version))
    step_run = run.step_runs.get(step_id="map")
    assert run.state == RunState.FAILED and message in step_run.error_message
    assert StepAttempt.objects.filter(step_run=step_run).count() == 1  # permanent: the retries are not used
    assert sent == []
