"""`after` triggers: a workflow starts when another ends so, with its outputs as `upstream`."""

from apps.runs import engine
from apps.runs.models import Run, RunState, Trigger
from apps.triggers import services
from tests.runs.factories import step
from tests.triggers.conftest import declared


def test_downstream_starts_with_the_upstream_outputs(make_workflow, drive, operator):
    upstream = make_workflow([], name="nightly-etl", steps=[step("extract", params={"rows": 12})])
    downstream = make_workflow([{"after": {"workflow": "nightly-etl", "status": "succeeded"}}], name="report",
                               inputs=declared(upstream="object"))
    finished = drive(engine.start_run(operator, upstream.current_version))
    assert finished.state == RunState.SUCCEEDED
    started = Run.objects.get(workflow=downstream)
    assert started.trigger == Trigger.UPSTREAM
    assert started.inputs["upstream"]["run_id"] == finished.pk
    assert started.inputs["upstream"]["outputs"] == {"extract": {"rows": 12}}


def test_downstream_waits_for_the_status_it_names(make_workflow, drive, operator):
    upstream = make_workflow([], name="nightly-etl", steps=[step("boom", "test.fail")])
    on_success = make_workflow([{"after": {"workflow": "nightly-etl", "status": "succeeded"}}], name="report")
    on_failure = make_workflow([{"after": {"workflow": "nightly-etl", "status": "failed"}}], name="cleanup")
    assert drive(engine.start_run(operator, upstream.current_version)).state == RunState.FAILED
    assert not Run.objects.filter(workflow=on_success).exists()
    assert Run.objects.filter(workflow=on_failure).count() == 1


def test_other_teams_start_after_it_only_when_shared(make_workflow, drive, operator, other_team, author):
    upstream = make_workflow([], name="nightly-etl")
    theirs = make_workflow([{"after": {"workflow": "nightly-etl", "status": "succeeded"}}], name="payroll",
                           owner=other_team)
    drive(engine.start_run(operator, upstream.current_version))
    assert not Run.objects.filter(workflow=theirs).exists()
    services.share_upstream(author, upstream, other_team)
    drive(engine.start_run(operator, upstream.current_version))
    assert Run.objects.filter(workflow=theirs).count() == 1
