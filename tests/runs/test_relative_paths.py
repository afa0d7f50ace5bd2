"""Errors people read (the step's error, its log, the step page) name files relative to their
root (the data root, the artifact folder), never by the server's absolute path."""

from pathlib import Path

import pytest
from django.urls import reverse

from apps.catalog.builtins import batch
from apps.catalog.builtins.batch_functions import register_test_functions
from apps.catalog.registry import get_step_type, step_type
from apps.paths import scrub
from apps.runs import engine
from apps.runs.models import RunState, StepLogLine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

if get_step_type("test.reads_data_file") is None:
    @step_type("test.reads_data_file", params_schema={"type": "object"},
               summary="Opens `path` under the data root, as a step with its own file handling would.")
    def reads_data_file(ctx):
        from django.conf import settings

        return {"text": (Path(settings.FLOWDECK_DATA_ROOT) / ctx.params["path"]).read_text()}


@pytest.fixture(autouse=True)
def roots(settings, tmp_path):
    settings.FLOWDECK_DATA_ROOT = tmp_path / "srv" / "data"
    settings.ARTIFACT_DIR = tmp_path / "srv" / "artifacts"
    settings.FLOWDECK_DATA_ROOT.mkdir(parents=True)
    register_test_functions()
    return tmp_path / "srv"


@pytest.fixture(autouse=True)
def chunks_stay_here(monkeypatch):
    monkeypatch.setattr(batch, "_send_chunk", lambda attempt_id, index, folder, queue: None)


def failed_step(team, operator, drive, step_type_name, params, **options):
    version = make_version(team, [step("s", step_type_name, params=params, **options)])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.FAILED
    return run, run.step_runs.get(step_id="s")


def assert_no_absolute_root(client_for, operator, run, step_run, roots):
    seen = [step_run.error_message, *StepLogLine.objects.filter(attempt__step_run=step_run)
            .values_list("message", flat=True)]
    seen += [str(fields) for fields in StepLogLine.objects.filter(attempt__step_run=step_run)
             .values_list("fields", flat=True)]
    page = client_for(operator).get(reverse("runs:step", args=[run.pk, step_run.step_id]))
    assert page.status_code == 200
    seen.append(page.content.decode())
    assert all(str(roots) not in text for text in seen), [text for text in seen if str(roots) in text][:1]


@pytest.mark.parametrize(("params", "says"), [
    ({"source": {"file": "missing.csv"}, "function": "identity"},
     "source.file 'missing.csv' does not exist under the data root"),
    ({"source": {"file": "../../etc/passwd.csv"}, "function": "identity"},
     "is outside the data root: give a path relative to it (FLOWDECK_DATA_ROOT)"),
])
def test_batch_map_names_its_source_relative_to_the_data_root(team, operator, drive, client_for, roots, params, says):
    run, step_run = failed_step(team, operator, drive, "batch.map", params)
    assert says in step_run.error_message
    assert_no_absolute_root(client_for, operator, run, step_run, roots)


@pytest.mark.parametrize(("source", "says"), [
    ({"file": "../outside.csv"}, "is outside the data folder: give a path relative to it (FLOWDECK_DATA_ROOT)"),
    ({"file": "exports/invoices.txt"}, "'exports/invoices.txt' is neither .csv nor .jsonl"),
])
def test_data_check_names_its_file_relative_to_the_data_root(team, operator, drive, client_for, roots, source, says):
    run, step_run = failed_step(team, operator, drive, "data.check", {"source": source, "checks": {"min_rows": 1}})
    assert says in step_run.error_message
    assert_no_absolute_root(client_for, operator, run, step_run, roots)


def test_an_os_error_of_a_step_names_the_root_instead_of_its_path(team, operator, drive, client_for, roots):
    run, step_run = failed_step(team, operator, drive, "test.reads_data_file", {"path": "invoices/2026-11.csv"})
    assert step_run.error_message.endswith("No such file or directory: '<the data root>/invoices/2026-11.csv'")
    assert_no_absolute_root(client_for, operator, run, step_run, roots)


def test_a_broken_chunk_names_artifact_paths_relative_to_the_artifact_folder(team, operator, drive, client_for,
                                                                             roots, settings):
    (Path(settings.FLOWDECK_DATA_ROOT) / "ids.csv").write_text("id\n1\n2\n")
    # The marker's folder does not exist, so writing it breaks the chunk with an OSError naming its path.
    marker = Path(settings.ARTIFACT_DIR) / "no-such-folder" / "marker"
    run, step_run = failed_step(team, operator, drive, "batch.map", {
        "source": {"file": "ids.csv"}, "function": "test.fail_once", "chunk_retries": 1,
        "options": {"fail_on": 1, "marker": str(marker)}})
    assert "'<the artifact folder>/no-such-folder/marker'" in step_run.error_message
    assert_no_absolute_root(client_for, operator, run, step_run, roots)


def test_scrub_names_each_root_and_leaves_lookalike_paths(settings, roots):
    data = str(Path(settings.FLOWDECK_DATA_ROOT).resolve())
    assert scrub(f"cannot open '{data}/a.csv' or {data}") == "cannot open '<the data root>/a.csv' or <the data root>"
    assert scrub(f"{data}2/a.csv") == f"{data}2/a.csv"
