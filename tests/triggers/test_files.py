"""File arrival: a landed file starts one run once complete, never twice, also after a restart."""

import hashlib
import os

import pytest
from django.core.management import call_command

from apps.runs.models import Run, RunState, Trigger
from apps.triggers.landing import scan_landing
from apps.triggers.models import FileSeen
from tests.triggers.conftest import declared

FILE_INPUTS = declared(path="string", size="integer", sha256="string")


@pytest.fixture
def landing(tmp_path, settings):
    settings.FLOWDECK_LANDING_ROOT = tmp_path
    (tmp_path / "usage").mkdir()
    return tmp_path


@pytest.fixture
def usage_workflow(make_workflow):
    return make_workflow([{"file": {"path": "usage/*.csv", "marker": None}}], inputs=FILE_INPUTS)


def test_a_still_growing_file_waits_until_it_stops_growing(landing, usage_workflow):
    target = landing / "usage" / "nov.csv"
    target.write_text("a,b\n")
    assert scan_landing().incomplete == 1
    with target.open("a") as handle:
        handle.write("1,2\n")
    assert scan_landing().incomplete == 1  # it grew since the last scan
    assert not Run.objects.filter(workflow=usage_workflow).exists()
    report = scan_landing()  # unchanged across two scans: complete
    assert report.started == 1
    run = Run.objects.get(workflow=usage_workflow)
    assert run.trigger == Trigger.FILE
    assert run.inputs == {"path": "usage/nov.csv", "size": 8,
                          "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()}


def test_two_files_arriving_together_start_one_run_each(landing, usage_workflow):
    for name in ("a.csv", "b.csv"):
        (landing / "usage" / name).write_text(name)
    (landing / "usage" / "notes.txt").write_text("ignored: does not match")
    scan_landing()
    scan_landing()
    scan_landing()
    runs = Run.objects.filter(workflow=usage_workflow)
    assert sorted(run.inputs["path"] for run in runs) == ["usage/a.csv", "usage/b.csv"]


def test_a_file_starts_no_second_run_after_a_restart(landing, usage_workflow):
    (landing / "usage" / "a.csv").write_text("x")
    scan_landing()
    scan_landing()
    # A restart forgets nothing: the ledger is in the database, not in the scanner.
    call_command("scan_landing")
    assert Run.objects.filter(workflow=usage_workflow).count() == 1


def test_a_replaced_file_is_a_new_file(landing, usage_workflow):
    target = landing / "usage" / "a.csv"
    target.write_text("first")
    scan_landing()
    scan_landing()
    target.write_text("second!")
    os.utime(target, ns=(1, 1))
    scan_landing()
    scan_landing()
    assert Run.objects.filter(workflow=usage_workflow).count() == 2


def test_a_marker_file_releases_files_at_once(landing, make_workflow):
    workflow = make_workflow([{"file": {"path": "usage/*.csv", "marker": "usage/READY"}}], inputs=FILE_INPUTS)
    (landing / "usage" / "a.csv").write_text("x")
    scan_landing()
    scan_landing()
    assert not Run.objects.filter(workflow=workflow).exists()  # stable, but no marker yet
    (landing / "usage" / "READY").write_text("")
    assert scan_landing().started == 1


def test_a_symlink_out_of_the_landing_root_is_ignored(landing, usage_workflow, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("nope")
    (landing / "usage" / "link.csv").symlink_to(outside)
    scan_landing()
    scan_landing()
    assert not FileSeen.objects.exists()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_landed_file_run_is_carried_out_by_a_real_worker(worker, wait_for, landing, make_workflow):
    from tests.runs.factories import step

    workflow = make_workflow([{"file": {"path": "usage/*.csv", "marker": None}}], inputs=FILE_INPUTS,
                             steps=[step("load", params={"file": "{{ inputs.path }}", "bytes": "{{ inputs.size }}"})])
    (landing / "usage" / "dec.csv").write_text("1,2,3\n")
    call_command("scan_landing")
    call_command("scan_landing")
    run = wait_for(Run.objects.get(workflow=workflow), RunState.SUCCEEDED, RunState.FAILED)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="load").output == {"file": "usage/dec.csv", "bytes": 6}
