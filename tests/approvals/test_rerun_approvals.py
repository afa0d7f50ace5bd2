"""A rerun from a failed step keeps the approvals already given for gated steps whose version and
rendered parameters did not change, asks again where they did, and always with `reapprove: always`."""

import pytest

from apps.approvals import services
from apps.approvals.models import ApprovalRequest, RequestState
from apps.audit.models import AuditEvent
from apps.runs import engine
from apps.runs.models import RunState, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved_then_failed(team, operator, approver, approver_group, drive):
    """`build(params, **approval)`: a run whose `pay` step was approved, then failed (run failed)."""

    def build(params, **approval):
        gate = {"group": approver_group.slug, "quorum": 1, "timeout": None, "escalate_to": None,
                "on_expiry": "reject", **approval}
        version = make_version(team, [step("prepare", params={"rows": 3}),
                                      step("pay", "test.fail", needs=["prepare"], approval=gate, params=params)],
                               name="payroll", inputs={"amount": {"type": "number", "required": True}})
        run = drive(engine.start_run(operator, version, inputs={"amount": 120}))
        services.decide_gate(approver, ApprovalRequest.objects.get(run=run, kind="gate"), "approve", "checked")
        run = drive(run)
        assert run.state == RunState.FAILED
        return run

    return build


def rerun(operator, drive, failed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        again = engine.rerun_from_failure(operator, failed)
        drive(again)
    return drive(again)


def test_an_unchanged_step_keeps_its_approval(approved_then_failed, operator, drive,
                                              django_capture_on_commit_callbacks):
    failed = approved_then_failed({"amount": "{{ inputs.amount }}", "message": "bank down"})
    again = rerun(operator, drive, failed, django_capture_on_commit_callbacks)
    request = ApprovalRequest.objects.get(run=again, kind="gate")
    assert request.state == RequestState.KEPT
    assert request.kept_from == ApprovalRequest.objects.get(run=failed, kind="gate")
    pay = again.step_runs.get(step_id="pay")
    assert pay.state == StepState.FAILED and pay.attempts.count() == 1  # it ran: nobody was asked
    kept = AuditEvent.objects.get(action="approval.kept")
    assert kept.after["earlier_run"] == failed.pk and kept.after["reason"] == "same version and rendered parameters"
    assert not services.inbox_for(request.run.started_by).filter(run=again).exists()


def test_the_run_page_says_which_approval_was_kept_and_why(approved_then_failed, operator, drive, client_for,
                                                           django_capture_on_commit_callbacks):
    failed = approved_then_failed({"amount": "{{ inputs.amount }}"})
    again = rerun(operator, drive, failed, django_capture_on_commit_callbacks)
    page = client_for(operator).get(f"/runs/{again.pk}/").content.decode()
    assert f"ran on the approval given in run <a href=\"/runs/{failed.pk}/\">#{failed.pk}</a>" in page
    assert "its version and rendered parameters are unchanged" in page


def test_changed_parameters_are_asked_for_again(approved_then_failed, operator, approver, drive,
                                                django_capture_on_commit_callbacks):
    failed = approved_then_failed({"reference": "payroll-{{ run.id }}"})
    again = rerun(operator, drive, failed, django_capture_on_commit_callbacks)
    request = ApprovalRequest.objects.get(run=again, kind="gate")
    assert request.state == RequestState.PENDING
    assert again.step_runs.get(step_id="pay").state == StepState.WAITING_APPROVAL
    assert services.inbox_for(approver).filter(pk=request.pk).exists()
    assert AuditEvent.objects.filter(action="approval.asked_again", after__earlier_run=failed.pk).exists()


def test_reapprove_always_asks_again(approved_then_failed, operator, drive, django_capture_on_commit_callbacks):
    failed = approved_then_failed({"amount": "{{ inputs.amount }}"}, reapprove="always")
    again = rerun(operator, drive, failed, django_capture_on_commit_callbacks)
    assert ApprovalRequest.objects.get(run=again, kind="gate").state == RequestState.PENDING
    assert not AuditEvent.objects.filter(action="approval.kept").exists()
