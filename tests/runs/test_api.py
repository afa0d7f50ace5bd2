"""The runs REST API: listing with filters, a run with its steps and attempts, starting runs with
checked inputs, and the operator's actions, scoped like the pages."""

import pytest

from apps.runs import engine
from apps.runs.models import Run, RunState, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

INPUTS = {"period": {"type": "string", "required": True, "default": None, "description": ""},
          "rows": {"type": "integer", "required": False, "default": 10, "description": ""}}


@pytest.fixture
def version(team):
    return make_version(team, [step("extract"), step("load", "test.fail", needs=["extract"], on_failure="pause")],
                       name="billing-close", inputs=INPUTS)


@pytest.fixture
def paused_run(version, operator, drive):
    return drive(engine.start_run(operator, version, inputs={"period": "2026-11"}))


def test_list_is_scoped_and_filtered(api_for, paused_run, team, other_team, operator, outsider, viewer):
    engine.start_run(outsider, make_version(other_team, [step("only")], name="theirs"))
    finished = engine.start_run(operator, make_version(team, [step("only")], name="other"))
    engine.cancel_run(operator, finished)
    api = api_for(viewer)
    everything = api.get("/api/v1/runs").json()
    assert sorted(r["id"] for r in everything["results"]) == sorted([paused_run.pk, finished.pk])
    paused = api.get("/api/v1/runs", {"state": "paused"}).json()["results"]
    assert [r["id"] for r in paused] == [paused_run.pk] and paused[0]["workflow_name"] == "billing-close"
    by_workflow = api.get("/api/v1/runs", {"workflow": finished.workflow_id}).json()["results"]
    assert [r["id"] for r in by_workflow] == [finished.pk]
    assert api.get("/api/v1/runs", {"team": "people-ops"}).json()["results"] == []


def test_run_detail_has_step_runs_and_attempts(api_for, paused_run, viewer):
    body = api_for(viewer).get(f"/api/v1/runs/{paused_run.pk}").json()
    assert body["state"] == "paused" and body["team"] == "billing" and body["version"] == 1
    load = next(s for s in body["step_runs"] if s["step_id"] == "load")
    assert load["state"] == "failed" and load["attempts"][0]["error_message"] == "failed on purpose"
    assert load["attempts"][0]["error_signature"]


def test_outsider_gets_404_and_viewer_403(api_for, paused_run, outsider, viewer):
    assert api_for(outsider).get(f"/api/v1/runs/{paused_run.pk}").status_code == 404
    assert api_for(outsider).post(f"/api/v1/runs/{paused_run.pk}/cancel").status_code == 404
    assert api_for(viewer).post(f"/api/v1/runs/{paused_run.pk}/cancel").status_code == 403
    step_run = paused_run.step_runs.get(step_id="load")
    assert api_for(viewer).post(f"/api/v1/step-runs/{step_run.pk}/skip").status_code == 403
    assert api_for(outsider).post(f"/api/v1/step-runs/{step_run.pk}/retry").status_code == 404
    paused_run.refresh_from_db()
    assert paused_run.state == RunState.PAUSED


def test_start_run_with_good_inputs(api_for, version, operator):
    response = api_for(operator).post(f"/api/v1/workflows/{version.workflow_id}/runs",
                                      {"inputs": {"period": "2026-11"}}, format="json")
    assert response.status_code == 201
    run = Run.objects.get(pk=response.json()["id"])
    assert run.inputs == {"period": "2026-11", "rows": 10} and run.trigger == "api" and run.started_by == operator
    assert {s["step_id"] for s in response.json()["step_runs"]} == {"extract", "load"}


def test_start_run_answers_the_run_as_reading_it_back_would(api_for, version, operator):
    api = api_for(operator)
    started = api.post(f"/api/v1/workflows/{version.workflow_id}/runs", {"inputs": {"period": "2026-11"}},
                       format="json").json()
    assert started["state"] == RunState.RUNNING and started["workflow_name"] == "billing-close"
    assert [(s["step_id"], s["state"], len(s["attempts"])) for s in started["step_runs"]] == [
        ("extract", StepState.QUEUED, 1), ("load", StepState.PENDING, 0)]
    assert started == api.get(f"/api/v1/runs/{started['id']}").json()


def test_start_run_with_bad_inputs_answers_400_naming_each_field(api_for, version, operator):
    response = api_for(operator).post(f"/api/v1/workflows/{version.workflow_id}/runs",
                                      {"inputs": {"rows": "many", "colour": "red"}}, format="json")
    assert response.status_code == 400
    errors = response.json()["inputs"]
    assert set(errors) == {"rows", "colour", "period"}
    assert errors["period"].startswith("`period` is required")
    assert "must be" in errors["rows"]
    assert not Run.objects.exists()


def test_start_run_needs_the_operator_role(api_for, version, viewer, outsider):
    url = f"/api/v1/workflows/{version.workflow_id}/runs"
    assert api_for(viewer).post(url, {"inputs": {"period": "x"}}, format="json").status_code == 403
    assert api_for(outsider).post(url, {"inputs": {"period": "x"}}, format="json").status_code == 404
    assert not Run.objects.exists()


def test_cancel_then_cancel_again_is_409_with_the_reason(api_for, team, operator):
    run = engine.start_run(operator, make_version(team, [step("only")], name="queued"))
    api = api_for(operator)
    first = api.post(f"/api/v1/runs/{run.pk}/cancel")
    assert first.status_code == 200 and first.json()["state"] == "cancelled"
    again = api.post(f"/api/v1/runs/{run.pk}/cancel")
    assert again.status_code == 409 and "there is nothing to cancel" in again.json()["detail"]


def test_a_paused_run_is_cancelled_only_through_its_checkpoint(api_for, paused_run, operator):
    response = api_for(operator).post(f"/api/v1/runs/{paused_run.pk}/cancel")
    assert response.status_code == 409 and "decide at its checkpoint instead" in response.json()["detail"]
    paused_run.refresh_from_db()
    assert paused_run.state == RunState.PAUSED


REASON = {"reason_code": "unrecoverable", "comment": "the ledger is closed"}


def test_abort_then_rerun_creates_a_run_keeping_succeeded_steps(api_for, paused_run, operator):
    api = api_for(operator)
    assert api.post(f"/api/v1/runs/{paused_run.pk}/abort", REASON, format="json").json()["state"] == "failed"
    response = api.post(f"/api/v1/runs/{paused_run.pk}/rerun")
    assert response.status_code == 201 and response.json()["rerun_of"] == paused_run.pk
    assert api.post(f"/api/v1/runs/{paused_run.pk}/compensate-and-abort").status_code == 409


def test_retry_with_params_override_and_skip_with_output(api_for, paused_run, operator, drive):
    api = api_for(operator)
    load = paused_run.step_runs.get(step_id="load")
    retried = api.post(f"/api/v1/step-runs/{load.pk}/retry", {"params_override": {"message": "again"}, **REASON},
                       format="json")
    assert retried.status_code == 200
    load.refresh_from_db()
    assert load.params_override == {"message": "again"} and load.state == StepState.QUEUED
    drive(paused_run)
    skipped = api.post(f"/api/v1/step-runs/{load.pk}/skip", {"output": {"rows": 0}, **REASON}, format="json")
    assert skipped.status_code == 200
    load.refresh_from_db()
    assert load.state == StepState.SKIPPED and load.output == {"rows": 0}
    assert api.post(f"/api/v1/step-runs/{load.pk}/skip", REASON, format="json").status_code == 409


def test_retry_override_must_be_an_object(api_for, paused_run, operator):
    load = paused_run.step_runs.get(step_id="load")
    response = api_for(operator).post(f"/api/v1/step-runs/{load.pk}/retry", {"params_override": [1]}, format="json")
    assert response.status_code == 400 and "params_override" in response.json()


def test_a_run_lists_the_actions_the_person_may_take_now(api_for, paused_run, operator, viewer):
    assert api_for(viewer).get(f"/api/v1/runs/{paused_run.pk}").json()["actions"] == []
    assert api_for(operator).get(f"/api/v1/runs/{paused_run.pk}").json()["actions"] == ["abort", "compensate"]
    ended = api_for(operator).post(f"/api/v1/runs/{paused_run.pk}/abort", REASON, format="json").json()
    assert ended["state"] == "failed" and ended["actions"] == ["rerun"]
