"""Checkpoints: a paused run's failed step waits for an operator's choice, each choice with its
own permission, a reason code and a comment."""

import pytest
from django.core.exceptions import PermissionDenied

from apps.approvals import services
from apps.approvals.models import ApprovalRequest, RequestState
from apps.audit.models import AuditEvent
from apps.runs import engine
from apps.runs.models import RunState, StepState
from tests.approvals import steps  # noqa: F401  (registers test.approvals.strict)
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def paused(team, author, operator, drive):
    """`paused(steps)`: a run of `steps` driven until it pauses; returns its checkpoint."""

    def start(steps, name="ledger"):
        run = drive(engine.start_run(operator, make_version(team, steps, name=name, author=author)))
        assert run.state == RunState.PAUSED
        return ApprovalRequest.objects.get(run=run, kind="checkpoint", state=RequestState.PENDING)

    return start


def strict_then_report():
    return [step("load", "test.approvals.strict", params={"succeed": False, "rows": 4}, on_failure="pause"),
            step("report", needs=["load"], params={"rows": "{{ steps.load.output.rows }}"})]


def test_failed_step_with_pause_opens_a_checkpoint_with_its_error(paused):
    request = paused(strict_then_report())
    assert request.error_type == "StepError"
    assert "upstream ledger not ready" in request.error_message
    assert request.error_signature == "StepError: upstream ledger not ready (batch <n>)"


def test_retry_with_edited_parameters_lets_the_run_succeed(paused, operator, drive):
    request = paused(strict_then_report())
    services.decide_checkpoint(operator, request, "retry", reason_code="data_fixed", comment="ledger loaded",
                               params_override={"succeed": True})
    run = drive(request.run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="report").output == {"rows": 4}
    event = AuditEvent.objects.get(action="approval.decision.retry")
    assert event.actor == operator and event.after["params_override"] == {"succeed": True}


def test_edited_parameters_that_break_the_schema_are_refused(paused, operator):
    request = paused(strict_then_report())
    with pytest.raises(services.InvalidDecision, match="succeed: 'yes' is not of type 'boolean'"):
        services.decide_checkpoint(operator, request, "retry", reason_code="params_fixed", comment="try",
                                   params_override={"succeed": "yes"})
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and request.run.state == RunState.PAUSED


def test_skip_with_output_feeds_the_downstream_steps(paused, operator, drive):
    request = paused(strict_then_report())
    services.decide_checkpoint(operator, request, "skip", reason_code="not_needed", comment="loaded by hand",
                               skip_output={"rows": 7})
    run = drive(request.run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="load").state == StepState.SKIPPED
    assert run.step_runs.get(step_id="report").output == {"rows": 7}


def test_decision_needs_a_reason_code_and_a_comment(paused, operator):
    request = paused(strict_then_report())
    with pytest.raises(services.InvalidDecision, match="Pick a reason"):
        services.decide_checkpoint(operator, request, "abort", reason_code="", comment="stop")
    with pytest.raises(services.InvalidDecision, match="Add a comment"):
        services.decide_checkpoint(operator, request, "abort", reason_code="unrecoverable", comment="")
    assert request.decisions.count() == 0


def test_viewer_and_outsider_may_not_decide(paused, viewer, outsider):
    request = paused(strict_then_report())
    for person in (viewer, outsider):
        with pytest.raises(PermissionDenied, match="operator role"):
            services.decide_checkpoint(person, request, "retry", reason_code="transient", comment="again")


def test_only_approvers_may_skip_a_risky_step(team, operator, approver, second_approver, approver_group, drive):
    version = make_version(team, [step("pay", "test.fail", on_failure="pause",
                                       approval={"group": approver_group.slug, "quorum": 1})])
    run = drive(engine.start_run(operator, version))
    services.decide_gate(approver, ApprovalRequest.objects.get(run=run, kind="gate"), "approve")
    assert drive(run).state == RunState.PAUSED
    request = ApprovalRequest.objects.get(run=run, kind="checkpoint")
    assert request.risky
    with pytest.raises(PermissionDenied, match="approver role"):
        services.decide_checkpoint(operator, request, "skip", reason_code="known_issue", comment="skip it")
    services.decide_checkpoint(second_approver, request, "skip", reason_code="known_issue", comment="paid by hand")
    assert drive(run).state == RunState.SUCCEEDED


def test_compensate_undoes_completed_steps_in_reverse_order(paused, operator, drive):
    from apps.approvals.presentation import compensation_preview

    undo = {"type": "test.undo", "with": {"target": "ledger"}}
    request = paused([
        step("first", "test.effect", params={"target": "a"}, compensate={"type": "test.undo", "with": {"target": "a"}}),
        step("second", "test.effect", needs=["first"], params={"target": "b"}, compensate=undo),
        step("note", needs=["second"]),
        step("load", "test.fail", needs=["note"], on_failure="pause"),
    ])
    preview = compensation_preview(request)
    assert [(p.step_id, p.compensate_type) for p in preview] == [
        ("note", None), ("second", "test.undo"), ("first", "test.undo")]
    services.decide_checkpoint(operator, request, "compensate", reason_code="unrecoverable", comment="roll back")
    run = drive(request.run)
    assert run.state == RunState.FAILED
    states = dict(run.step_runs.values_list("step_id", "state"))
    assert states["first"] == states["second"] == StepState.COMPENSATED


def test_abort_ends_the_run_failed(paused, operator):
    request = paused(strict_then_report())
    services.decide_checkpoint(operator, request, "abort", reason_code="unrecoverable", comment="bad batch")
    request.run.refresh_from_db()
    assert request.run.state == RunState.FAILED
    request.refresh_from_db()
    assert request.state == RequestState.DECIDED and request.outcome == "abort"


def test_past_decisions_for_the_same_error_are_shown(paused, operator, drive, client_for):
    first = paused(strict_then_report())
    services.decide_checkpoint(operator, first, "retry", reason_code="data_fixed", comment="reloaded the ledger",
                               params_override={"succeed": True})
    drive(first.run)
    second = paused(strict_then_report())
    page = client_for(operator).get(f"/approvals/{second.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "reloaded the ledger" in text and "Succeeded" in text
