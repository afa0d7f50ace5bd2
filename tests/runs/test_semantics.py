"""Run semantics, driven in-process: needs, when, templates, retries, failure policies, gates."""

import pytest

from apps.approvals.services import DecisionConflict
from apps.audit.models import AuditEvent
from apps.runs import engine
from apps.runs.models import AttemptKind, RunState, SkipReason, StepAttempt, StepState, Trigger
from tests.runs.factories import decide, make_version, step

pytestmark = pytest.mark.django_db


def states(run):
    return dict(run.step_runs.values_list("step_id", "state"))


def test_outputs_flow_through_templates_along_a_chain(team, operator, drive):
    version = make_version(team, [
        step("extract", params={"rows": "{{ inputs.rows }}"}),
        step("load", needs=["extract"], params={"count": "{{ steps.extract.output.rows * 2 }}",
                                                "label": "run {{ run.id }} of {{ run.workflow }}"}),
    ], inputs={"rows": {"type": "integer", "required": True, "default": None, "description": ""}})
    run = drive(engine.start_run(operator, version, inputs={"rows": 21}, trigger=Trigger.API))
    assert run.state == RunState.SUCCEEDED
    load = run.step_runs.get(step_id="load")
    assert load.output == {"count": 42, "label": f"run {run.pk} of wf"}
    assert run.started_by == operator and run.team == team and run.trigger == Trigger.API


def test_fan_out_and_fan_in_wait_for_every_branch(team, operator, drive):
    version = make_version(team, [
        step("start"), step("a", needs=["start"]), step("b", needs=["start"]),
        step("join", needs=["a", "b"], params={"seen": "{{ [steps.a.state, steps.b.state] }}"}),
    ])
    run = engine.start_run(operator, version)
    assert states(run) == {"start": "queued", "a": "pending", "b": "pending", "join": "pending"}
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="join").output == {"seen": ["succeeded", "succeeded"]}


def test_false_condition_skips_the_step_and_what_only_depends_on_it(team, operator, drive):
    version = make_version(team, [
        step("check", params={"ok": False}),
        step("notify", needs=["check"], when="steps.check.output.ok"),
        step("after_notify", needs=["notify"]),
        step("report", needs=["check", "notify"]),
    ])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED
    assert states(run) == {"check": "succeeded", "notify": "skipped", "after_notify": "skipped",
                           "report": "succeeded"}
    assert run.step_runs.get(step_id="after_notify").skip_reason == SkipReason.UPSTREAM_SKIPPED


def test_missing_required_input_is_refused_with_its_name(team, operator):
    version = make_version(team, [step("a")], inputs={
        "period": {"type": "string", "required": True, "default": None, "description": ""}})
    with pytest.raises(engine.InvalidInputs, match="period"):
        engine.start_run(operator, version, inputs={})


def test_flaky_step_is_retried_until_it_succeeds(team, operator, drive):
    version = make_version(team, [step("flaky", "test.flaky", params={"succeed_on": 3},
                                       retries={"count": 3, "backoff": "exponential", "delay": 1})])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED
    flaky = run.step_runs.get()
    assert flaky.attempt == 3 and flaky.output == {"attempt": 3}
    assert list(flaky.attempts.values_list("state", flat=True)) == ["failed", "failed", "succeeded"]
    assert flaky.attempts.first().error_signature == "StepError: flaky failure on attempt <n>"


def test_permanent_error_is_not_retried(team, operator, drive):
    version = make_version(team, [step("boom", "test.fail", params={"permanent": True}, retries={"count": 5})])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.FAILED
    assert run.step_runs.get().attempts.count() == 1
    assert "boom failed: PermanentStepError" in run.failure_summary


def test_backoff_grows_and_is_capped():
    policy = {"delay": 2, "backoff": "exponential", "max_delay": 10, "jitter": False}
    assert [engine.retry_delay(policy, n) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]
    assert 1 <= engine.retry_delay({**policy, "jitter": True}, 1) <= 2


def test_continue_lets_the_run_finish_and_dependents_run(team, operator, drive):
    version = make_version(team, [
        step("optional", "test.fail", on_failure="continue"),
        step("after", needs=["optional"], params={"upstream": "{{ steps.optional.state }}"}),
    ])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="after").output == {"upstream": "failed"}


def test_pause_then_retry_with_new_params_finishes_the_run(team, operator, drive):
    version = make_version(team, [step("load", "test.fail", on_failure="pause", params={"message": "disk full"}),
                                  step("after", needs=["load"])])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.PAUSED and "disk full" in run.failure_summary
    load = run.step_runs.get(step_id="load")
    with pytest.raises(DecisionConflict, match="only a failed step of a paused run"):
        decide(operator, run.step_runs.get(step_id="after"), "skip")
    # The override turns the failing type's message into one that still fails: retry twice.
    decide(operator, load, "retry", params_override={"message": "still full"})
    run = drive(run)
    assert run.state == RunState.PAUSED
    assert load.attempts.last().error_message == "still full"
    decide(operator, load, "skip", skip_output={"rows": 0})
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert states(run) == {"load": "skipped", "after": "succeeded"}
    assert AuditEvent.objects.filter(action="step.retried", actor=operator).exists()


def test_retry_step_runs_the_step_again(team, operator, drive):
    version = make_version(team, [step("flaky", "test.flaky", on_failure="pause", params={"succeed_on": 2})])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.PAUSED
    decide(operator, run.step_runs.get(), "retry")
    assert drive(run).state == RunState.SUCCEEDED


def test_failure_compensates_completed_steps_in_reverse_order(team, operator, drive):
    def undoable(step_id, needs=()):
        return step(step_id, needs=needs, compensate={"type": "test.undo", "with": {"target": step_id}})

    version = make_version(team, [undoable("reserve"), undoable("charge", ["reserve"]),
                                  step("ship", "test.fail", needs=["charge"])])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.FAILED
    assert states(run) == {"reserve": "compensated", "charge": "compensated", "ship": "failed"}
    undone = StepAttempt.objects.filter(step_run__run=run, kind=AttemptKind.COMPENSATION).order_by("ended_at")
    assert [a.output["undone"] for a in undone] == ["charge", "reserve"]


def test_compensate_and_abort_undoes_a_paused_run(team, operator, drive):
    version = make_version(team, [
        step("reserve", compensate={"type": "test.undo", "with": {"target": "{{ steps.reserve.output.id }}"}},
             params={"id": "R-1"}),
        step("charge", "test.fail", needs=["reserve"], on_failure="pause"),
    ])
    run = drive(engine.start_run(operator, version))
    decide(operator, run, "compensate")
    run = drive(run)
    assert run.state == RunState.FAILED and "Aborted with compensation by otto-operator" in run.failure_summary
    assert run.step_runs.get(step_id="reserve").effects.get(kind="undo").target == "R-1"
    with pytest.raises(engine.TransitionNotAllowed):
        engine.abort_run(operator, run)


def test_abort_ends_a_paused_run_failed_without_compensation(team, operator, drive):
    version = make_version(team, [step("a", compensate={"type": "test.undo", "with": {"target": "a"}}),
                                  step("b", "test.fail", needs=["a"], on_failure="pause")])
    run = drive(engine.start_run(operator, version))
    decide(operator, run, "abort")
    run.refresh_from_db()
    assert run.state == RunState.FAILED and states(run)["a"] == "succeeded"


def test_approval_gate_waits_then_runs_when_released(team, operator, approver, drive):
    version = make_version(team, [step("pay", approval={"group": "billing-approvers", "quorum": 1}),
                                  step("risky", "test.risky", needs=["pay"])])
    received = []
    from apps.runs.signals import step_waiting_approval

    step_waiting_approval.connect(lambda **kw: received.append(kw["step_run"].step_id), weak=False,
                                  dispatch_uid="test-gate")
    try:
        run = drive(engine.start_run(operator, version))
        assert run.state == RunState.WAITING and states(run)["pay"] == StepState.WAITING_APPROVAL
        engine.release_gate(run.step_runs.get(step_id="pay"), actor=approver)
        run = drive(run)
        assert run.state == RunState.WAITING and states(run)["risky"] == StepState.WAITING_APPROVAL
        engine.reject_gate(run.step_runs.get(step_id="risky"), "not today", actor=approver)
        run.refresh_from_db()
    finally:
        step_waiting_approval.disconnect(dispatch_uid="test-gate")
    assert received == ["pay", "risky"]
    assert run.state == RunState.FAILED and "Rejected: not today" in run.failure_summary
    with pytest.raises(engine.TransitionNotAllowed):
        engine.release_gate(run.step_runs.get(step_id="risky"))


def test_approved_step_whose_parameters_cannot_render_fails_and_stays_failed(team, operator, approver, drive):
    version = make_version(team, [step("pay", params={"amount": "{{ inputs.missing }}"},
                                       approval={"group": "billing-approvers", "quorum": 1})])
    run = drive(engine.start_run(operator, version))
    assert states(run)["pay"] == StepState.WAITING_APPROVAL
    assert engine.release_gate(run.step_runs.get(step_id="pay"), actor=approver) is None
    run.refresh_from_db()
    pay = run.step_runs.get(step_id="pay")
    assert pay.state == StepState.FAILED and pay.error_type == "TemplateError"
    assert "cannot start" in pay.error_message and run.state == RunState.FAILED


def test_concurrency_keeps_extra_runs_queued_until_one_ends(team, operator, drive):
    version = make_version(team, [step("a")], concurrency=1)
    first = engine.start_run(operator, version)
    second = engine.start_run(operator, version)
    second.refresh_from_db()
    assert (first.state, second.state) == (RunState.RUNNING, RunState.QUEUED)
    drive(first)
    second.refresh_from_db()
    assert second.state == RunState.RUNNING
    assert drive(second).state == RunState.SUCCEEDED


def test_cancel_stops_the_run_and_discards_a_late_result(team, operator, drive):
    version = make_version(team, [step("a"), step("b", needs=["a"])])
    run = engine.start_run(operator, version)
    attempt = StepAttempt.objects.get(step_run__run=run)
    claimed = engine.claim_attempt(attempt.pk, "host:1")
    engine.cancel_run(operator, run)
    assert engine.finish_attempt(claimed, engine.AttemptOutcome(output={})) is False
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and states(run) == {"a": "cancelled", "b": "cancelled"}
    with pytest.raises(engine.TransitionNotAllowed, match="already cancelled"):
        engine.cancel_run(operator, run)


def test_rerun_from_failure_keeps_what_succeeded(team, operator, drive, tmp_path):
    version = make_version(team, [step("extract", params={"rows": 7}),
                                  step("load", "test.fail_once", needs=["extract"],
                                       params={"marker": str(tmp_path / "marker")})])
    failed = drive(engine.start_run(operator, version))
    assert failed.state == RunState.FAILED
    rerun = engine.rerun_from_failure(operator, failed)
    rerun = drive(rerun)
    assert rerun.state == RunState.SUCCEEDED and rerun.rerun_of == failed
    extract = rerun.step_runs.get(step_id="extract")
    assert extract.reused_from.run == failed and extract.attempts.count() == 0
    assert extract.output == {"rows": 7}
    with pytest.raises(engine.TransitionNotAllowed):
        engine.rerun_from_failure(operator, rerun)


def test_bad_template_fails_the_step_with_the_reason(team, operator, drive):
    version = make_version(team, [step("a", params={"x": "{{ inputs.missing }}"})])
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.FAILED
    assert run.step_runs.get().error_type == "TemplateError"


def test_unknown_step_type_fails_with_what_to_do(team, operator, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("a", "no.such.type")])))
    assert run.state == RunState.FAILED and "ask a platform admin" in run.failure_summary


def test_run_transitions_are_audited(team, operator, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("a")])))
    actions = list(AuditEvent.objects.filter(team=team).order_by("sequence").values_list("action", flat=True))
    assert actions == ["run.created", "run.running", "step.succeeded", "run.succeeded"]
