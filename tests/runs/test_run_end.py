"""When a run ends: the success of its last step (the one every other step leads to) ends it at
once; a workflow with more than one last step ends only when all of them have settled."""

import pytest

from apps.runs import engine
from apps.runs.models import RunState, StepState
from apps.workflows.plan import plan_for
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def states(run):
    return dict(run.step_runs.values_list("step_id", "state"))


def test_a_run_succeeds_when_its_last_step_succeeds_after_a_branch_failed_with_continue(team, operator, drive):
    version = make_version(team, [
        step("start"), step("flaky", "test.fail", needs=["start"], on_failure="continue"),
        step("steady", needs=["start"]), step("report", needs=["flaky", "steady"]),
    ])
    assert plan_for(version.pk).last_step == "report"
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED and run.finished_at is not None and run.failure_summary == ""
    assert states(run) == {"start": StepState.SUCCEEDED, "flaky": StepState.FAILED, "steady": StepState.SUCCEEDED,
                           "report": StepState.SUCCEEDED}


def test_a_run_with_two_last_steps_goes_on_when_the_first_of_them_succeeds(team, operator, drive):
    version = make_version(team, [step("start"), step("left", needs=["start"]), step("right", needs=["start"])])
    assert plan_for(version.pk).last_step is None
    run = drive(engine.start_run(operator, version), limit=2)
    assert run.state == RunState.RUNNING and run.finished_at is None
    assert states(run) == {"start": StepState.SUCCEEDED, "left": StepState.SUCCEEDED, "right": StepState.QUEUED}
    run = drive(run)
    assert run.state == RunState.SUCCEEDED


def test_a_run_whose_last_step_fails_does_not_succeed(team, operator, drive):
    version = make_version(team, [step("start"), step("finish", "test.fail", needs=["start"])])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.FAILED and "finish failed" in run.failure_summary
