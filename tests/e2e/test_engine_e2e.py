"""The engine with a real Celery worker process: every semantic of a run, end to end."""

import pytest

from apps.runs import engine
from apps.runs.models import AttemptKind, RunState, StepAttempt, StepState
from tests.runs.factories import decide, make_version, step

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DONE = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.PAUSED)


def states(run):
    return dict(run.step_runs.values_list("step_id", "state"))


def test_sequence_parallel_fan_in_when_and_templates(worker, wait_for, team, operator):
    version = make_version(team, [
        step("extract", params={"rows": "{{ inputs.rows }}"}),
        step("left", needs=["extract"], params={"half": "{{ steps.extract.output.rows // 2 }}"}),
        step("right", "test.other_queue", needs=["extract"]),
        step("skipped", needs=["extract"], when="inputs.rows > 100"),
        step("join", needs=["left", "right", "skipped"],
             params={"total": "{{ steps.left.output.half }}", "queue": "{{ steps.right.output.queue }}"}),
    ], inputs={"rows": {"type": "integer", "required": True, "default": None, "description": ""}})
    run = wait_for(engine.start_run(operator, version, inputs={"rows": 10}), *DONE)
    assert run.state == RunState.SUCCEEDED
    assert states(run)["skipped"] == StepState.SKIPPED
    assert run.step_runs.get(step_id="join").output == {"total": 5, "queue": "test-other"}
    left, right = run.step_runs.get(step_id="left"), run.step_runs.get(step_id="right")
    assert left.attempts.get().queue == "steps" and right.attempts.get().queue == "test-other"


def test_retries_back_off_then_succeed(worker, wait_for, team, operator):
    version = make_version(team, [step("flaky", "test.flaky", params={"succeed_on": 3},
                                       retries={"count": 3, "backoff": "exponential", "delay": 1})])
    run = wait_for(engine.start_run(operator, version), *DONE)
    assert run.state == RunState.SUCCEEDED
    first, second, third = StepAttempt.objects.filter(step_run__run=run).order_by("number")
    assert (first.state, second.state, third.state) == ("failed", "failed", "succeeded")
    assert (second.started_at - first.ended_at).total_seconds() >= 0.9
    assert (third.started_at - second.ended_at).total_seconds() >= 1.9


def test_permanent_error_is_not_retried(worker, wait_for, team, operator):
    version = make_version(team, [step("bad", "test.fail", params={"permanent": True, "message": "HTTP 400"},
                                       retries={"count": 3, "delay": 1})])
    run = wait_for(engine.start_run(operator, version), *DONE)
    assert run.state == RunState.FAILED
    attempt = StepAttempt.objects.get(step_run__run=run)
    assert attempt.error_type == "PermanentStepError" and attempt.error_message == "HTTP 400"


def test_timeout_is_recorded(worker, wait_for, team, operator):
    version = make_version(team, [step("slow", "test.sleep", params={"seconds": 10}, timeout=1)])
    run = wait_for(engine.start_run(operator, version), *DONE)
    attempt = StepAttempt.objects.get(step_run__run=run)
    assert run.state == RunState.FAILED and attempt.is_timeout
    assert "timeout of 1s" in attempt.error_message and attempt.duration_ms < 5000


def test_continue_fail_and_pause_then_retry_and_skip(worker, wait_for, team, operator, tmp_path):
    tolerant = make_version(team, [step("optional", "test.fail", on_failure="continue"),
                                   step("after", needs=["optional"])], name="tolerant")
    assert wait_for(engine.start_run(operator, tolerant), *DONE).state == RunState.SUCCEEDED

    strict = make_version(team, [step("must", "test.fail"), step("after", needs=["must"])], name="strict")
    failed = wait_for(engine.start_run(operator, strict), *DONE)
    assert failed.state == RunState.FAILED and states(failed)["after"] == StepState.CANCELLED

    pausing = make_version(team, [step("load", "test.fail_once", on_failure="pause",
                                       params={"marker": str(tmp_path / "marker")}),
                                  step("after", needs=["load"])], name="pausing")
    run = wait_for(engine.start_run(operator, pausing), *DONE)
    assert run.state == RunState.PAUSED
    decide(operator, run.step_runs.get(step_id="load"), "retry")
    assert wait_for(run, RunState.SUCCEEDED, RunState.FAILED).state == RunState.SUCCEEDED

    skippable = make_version(team, [step("load", "test.fail", on_failure="pause"),
                                    step("after", needs=["load"], params={"rows": "{{ steps.load.output.rows }}"})],
                             name="skippable")
    run = wait_for(engine.start_run(operator, skippable), *DONE)
    decide(operator, run.step_runs.get(step_id="load"), "skip", skip_output={"rows": 0})
    run = wait_for(run, RunState.SUCCEEDED, RunState.FAILED)
    assert run.state == RunState.SUCCEEDED and run.step_runs.get(step_id="after").output == {"rows": 0}


def test_compensation_runs_in_reverse_order_of_completion(worker, wait_for, team, operator):
    def undoable(step_id, needs=()):
        return step(step_id, needs=needs, compensate={"type": "test.undo", "with": {"target": step_id}})

    version = make_version(team, [undoable("first"), undoable("second", ["first"]), undoable("third", ["second"]),
                                  step("boom", "test.fail", needs=["third"])])
    run = wait_for(engine.start_run(operator, version), RunState.FAILED, timeout=60)
    undone = StepAttempt.objects.filter(step_run__run=run, kind=AttemptKind.COMPENSATION).order_by("started_at")
    assert [a.params["target"] for a in undone] == ["third", "second", "first"]
    assert states(run) == {"first": "compensated", "second": "compensated", "third": "compensated",
                           "boom": "failed"}


def test_concurrency_limit_queues_the_second_run(worker, wait_for, team, operator):
    version = make_version(team, [step("slow", "test.sleep", params={"seconds": 1})], concurrency=1)
    first, second = engine.start_run(operator, version), engine.start_run(operator, version)
    second.refresh_from_db()
    assert second.state == RunState.QUEUED
    first, second = wait_for(first, *DONE), wait_for(second, *DONE)
    assert first.state == second.state == RunState.SUCCEEDED
    assert second.started_at >= first.finished_at


def test_cancel_stops_a_running_step(worker, wait_for, team, operator):
    version = make_version(team, [step("slow", "test.sleep", params={"seconds": 20}), step("after", needs=["slow"])])
    run = engine.start_run(operator, version)
    wait_for_step_running(run.step_runs.get(step_id="slow"))
    engine.cancel_run(operator, run)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and states(run) == {"slow": "cancelled", "after": "cancelled"}
    attempt = StepAttempt.objects.get(step_run__run=run)
    assert attempt.state == "cancelled"


def test_rerun_from_failure_keeps_outputs_of_what_succeeded(worker, wait_for, team, operator, tmp_path):
    version = make_version(team, [step("extract", params={"rows": 3}),
                                  step("load", "test.fail_once", needs=["extract"],
                                       params={"marker": str(tmp_path / "marker")})])
    failed = wait_for(engine.start_run(operator, version), *DONE)
    assert failed.state == RunState.FAILED
    rerun = wait_for(engine.rerun_from_failure(operator, failed), *DONE)
    assert rerun.state == RunState.SUCCEEDED and rerun.rerun_of == failed
    extract = rerun.step_runs.get(step_id="extract")
    assert extract.output == {"rows": 3} and not extract.attempts.exists()


def wait_for_step_running(step_run, timeout=30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step_run.refresh_from_db()
        if step_run.state == StepState.RUNNING:
            return step_run
        time.sleep(0.05)
    pytest.fail(f"step {step_run.step_id} never started running (it is {step_run.state})")
