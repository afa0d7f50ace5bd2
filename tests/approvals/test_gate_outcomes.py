"""What a gate collects and decides: a form filled in by the approver, named options and
`on_reject` that downstream `when` conditions branch on, sign-off chains, and auto-approval."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from apps.accounts.models import ApproverGroup
from apps.approvals import services
from apps.approvals.models import ApprovalRequest, AutoApprovalBan, RequestState
from apps.audit.models import AuditEvent
from apps.runs import engine
from apps.runs.models import RunState, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

PAY_FORM = {"type": "object", "required": ["pay_date", "amount"], "properties": {
    "pay_date": {"type": "string", "format": "date"},
    "amount": {"type": "number", "minimum": 0},
    "method": {"type": "string", "enum": ["wire", "ach"], "default": "wire"},
}}


def gated_run(team, author, operator, drive, approval, downstream, inputs=None, input_values=None):
    """A run whose `review` gate (with `approval`) waits after `prepare`, followed by `downstream` steps."""
    steps = [step("prepare"), step("review", needs=["prepare"], approval=approval), *downstream]
    version = make_version(team, steps, name="payments", author=author, inputs=inputs)
    return drive(engine.start_run(operator, version, inputs=input_values or {}))


def states(run):
    return dict(run.step_runs.values_list("step_id", "state"))


def test_form_values_reach_a_downstream_step(team, author, operator, approver, approver_group, drive):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1, "form": PAY_FORM},
                    [step("pay", needs=["review"], params={"on": "{{ steps.review.output.pay_date }}",
                                                          "amount": "{{ steps.review.output.amount }}",
                                                          "by": "{{ steps.review.output.method }}"})])
    request = ApprovalRequest.objects.get(run=run)
    services.decide_gate(approver, request, "approve", form_values={"pay_date": "2026-12-31", "amount": 120.5})
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="pay").output == {"on": "2026-12-31", "amount": 120.5, "by": "wire"}
    event = AuditEvent.objects.get(action="approval.decision.approve")
    assert event.after["form_values"] == {"pay_date": "2026-12-31", "amount": 120.5, "method": "wire"}


def test_a_bad_form_value_is_refused_with_the_field_named_and_nothing_changes(
        team, author, operator, approver, approver_group, drive, api_for):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1, "form": PAY_FORM},
                    [step("pay", needs=["review"])])
    request = ApprovalRequest.objects.get(run=run)
    answer = api_for(approver).post(reverse("api-approval-decide", args=[request.pk]),
                                    {"verdict": "approve", "form": {"pay_date": "2026-13-01", "amount": -1}},
                                    format="json")
    assert answer.status_code == 400
    assert answer.json()["fields"] == {"pay_date": "must be a date such as 2026-12-31",
                                       "amount": "is too small: it must be at least 0"}
    with pytest.raises(services.InvalidFormValues) as refused:
        services.decide_gate(approver, request, "approve", form_values={"pay_date": "2026-12-01"})
    assert refused.value.fields == {"amount": "is required"}
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and request.decisions.count() == 0
    assert states(run)["review"] == StepState.WAITING_APPROVAL


def test_the_page_shows_the_form_keeps_what_was_typed_and_names_the_bad_field(
        team, author, operator, approver, approver_group, drive, client_for):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1, "form": PAY_FORM,
                                                    "options": ["pay_now", "pay_next_cycle"]},
                    [step("pay", needs=["review"])])
    request = ApprovalRequest.objects.get(run=run)
    client = client_for(approver)
    page = client.get(reverse("approvals:detail", args=[request.pk])).content.decode()
    assert 'name="form-pay_date"' in page and 'type="date"' in page
    assert 'value="approve:pay_now"' in page and 'value="approve"' not in page  # options replace Approve
    answer = client.post(reverse("approvals:decide", args=[request.pk]),
                         {"verdict": "approve:pay_now", "form-pay_date": "2026-12-31", "form-amount": "lots"})
    assert answer.status_code == 400
    text = answer.content.decode()
    assert "Amount must be a number, not text" in text and 'value="lots"' in text
    assert request.decisions.count() == 0
    client.post(reverse("approvals:decide", args=[request.pk]),
                {"verdict": "approve:pay_now", "form-pay_date": "2026-12-31", "form-amount": "99"})
    decision = request.decisions.get()
    assert (decision.option, decision.form_values) == ("pay_now", {"pay_date": "2026-12-31", "amount": 99,
                                                                    "method": "wire"})


def test_on_reject_continue_takes_the_other_branch(team, author, operator, approver, approver_group, drive):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1,
                                                    "on_reject": "continue"},
                    [step("pay", needs=["review"], when='steps.review.decision == "approved"'),
                     step("tell_vendor", needs=["review"], when='steps.review.decision == "rejected"')])
    services.decide_gate(approver, ApprovalRequest.objects.get(run=run), "reject", "the invoice is a duplicate")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert states(run) == {"prepare": StepState.SUCCEEDED, "review": StepState.SKIPPED,
                           "pay": StepState.SKIPPED, "tell_vendor": StepState.SUCCEEDED}
    assert run.step_runs.get(step_id="review").skip_reason == "rejected_continue"


def test_on_reject_skip_skips_what_needs_the_gate(team, author, operator, approver, approver_group, drive):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1, "on_reject": "skip"},
                    [step("pay", needs=["review"])])
    services.decide_gate(approver, ApprovalRequest.objects.get(run=run), "reject", "not this month")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED
    assert states(run)["pay"] == StepState.SKIPPED


def test_a_named_option_drives_a_when(team, author, operator, approver, approver_group, drive):
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1,
                                                    "options": ["pay_now", "pay_next_cycle"]},
                    [step("pay", needs=["review"], when='steps.review.decision == "pay_now"'),
                     step("schedule", needs=["review"], when='steps.review.decision == "pay_next_cycle"')])
    request = ApprovalRequest.objects.get(run=run)
    with pytest.raises(services.InvalidDecision, match="Choose how to approve: pay_now, pay_next_cycle"):
        services.decide_gate(approver, request, "approve")
    services.decide_gate(approver, request, "approve", option="pay_next_cycle")
    run = drive(run)
    assert states(run) == {"prepare": StepState.SUCCEEDED, "review": StepState.SUCCEEDED,
                           "pay": StepState.SKIPPED, "schedule": StepState.SUCCEEDED}


@pytest.fixture
def chain(team, author, operator, approver, second_approver, make_user, drive):
    """finance (approver, second_approver) then legal (second_approver, lena): returns the run."""
    from apps.accounts.models import Membership

    lena = make_user("lena-legal")
    Membership.objects.create(user=lena, team=team, role="approver")
    finance = ApproverGroup.objects.create(slug="finance", name="Finance", team=team)
    finance.members.set([approver, second_approver])
    legal = ApproverGroup.objects.create(slug="legal", name="Legal", team=team)
    legal.members.set([second_approver, lena])
    stages = [{"mode": "all", "groups": [{"group": "finance", "quorum": 1}]},
              {"mode": "all", "groups": [{"group": "legal", "quorum": 1}]}]
    run = gated_run(team, author, operator, drive, {"stages": stages}, [step("pay", needs=["review"])])
    return run, lena


def test_a_two_stage_chain_needs_both_stages_in_order(chain, approver, second_approver, drive):
    run, lena = chain
    first = ApprovalRequest.objects.get(run=run)
    assert (first.group.slug, first.stage) == ("finance", 0)
    with pytest.raises(PermissionDenied, match="Only members of finance"):
        services.decide_gate(lena, first, "approve")  # legal cannot decide the first stage
    services.decide_gate(approver, first, "approve")
    second = ApprovalRequest.objects.get(run=run, stage=1)
    assert second.group.slug == "legal" and second.state == RequestState.PENDING
    assert states(run)["review"] == StepState.WAITING_APPROVAL and run.step_runs.get(step_id="pay").attempt == 0
    services.decide_gate(lena, second, "approve")
    run = drive(run)
    assert run.state == RunState.SUCCEEDED


def test_separation_of_duties_holds_per_stage(chain, second_approver):
    run, lena = chain
    first = ApprovalRequest.objects.get(run=run)
    services.decide_gate(second_approver, first, "approve")
    second = ApprovalRequest.objects.get(run=run, stage=1)
    with pytest.raises(PermissionDenied, match="approved stage 1 of this step"):
        services.decide_gate(second_approver, second, "approve")  # a member of both groups signs off once
    assert second.decisions.count() == 0
    assert second not in services.inbox_for(second_approver)
    assert second in services.inbox_for(lena)


def test_auto_approve_records_an_automatic_decision(team, author, operator, approver_group, drive, on_commit):
    inputs = {"amount": {"type": "number", "required": True, "default": None, "description": ""}}
    with on_commit():  # the automatic approval releases the step once the run's start commits
        run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1,
                                                        "auto_approve": "inputs.amount < 1000"},
                        [step("pay", needs=["review"])], inputs=inputs, input_values={"amount": 250})
    request = ApprovalRequest.objects.get(run=run)
    assert request.state == RequestState.AUTO_APPROVED and request.decisions.count() == 0
    event = AuditEvent.objects.get(action="approval.auto_approved")
    assert event.actor is None
    assert event.after["expression"] == "inputs.amount < 1000" and event.after["values"] == {"inputs.amount": 250}
    run = drive(run)
    assert run.state == RunState.SUCCEEDED and run.step_runs.get(step_id="review").decision == "approved"


def test_auto_approve_is_refused_at_run_time_for_a_forbidden_type(team, author, operator, approver_group, drive):
    AutoApprovalBan.objects.create(step_type="test.echo", reason="moves money")
    inputs = {"amount": {"type": "number", "required": True, "default": None, "description": ""}}
    run = gated_run(team, author, operator, drive, {"group": approver_group.slug, "quorum": 1,
                                                    "auto_approve": "inputs.amount < 1000"},
                    [step("pay", needs=["review"])], inputs=inputs, input_values={"amount": 250})
    request = ApprovalRequest.objects.get(run=run)
    assert request.state == RequestState.PENDING  # a person decides
    refused = AuditEvent.objects.get(action="approval.auto_approve_refused")
    assert refused.after["reason"] == "moves money" and refused.after["values"] == {"inputs.amount": 250}
    assert not AuditEvent.objects.filter(action="approval.auto_approved").exists()


def test_a_stage_approved_on_your_behalf_bars_you_from_the_next(chain, second_approver, viewer):
    from datetime import timedelta

    from django.utils import timezone

    from apps.approvals import delegation

    run, lena = chain
    now = timezone.now()
    delegation.create_delegation(second_approver, delegate=viewer, starts_at=now - timedelta(minutes=1),
                                 ends_at=now + timedelta(hours=2), team=None, note="away")
    services.decide_gate(viewer, ApprovalRequest.objects.get(run=run), "approve", on_behalf_of=second_approver)
    second = ApprovalRequest.objects.get(run=run, stage=1)
    with pytest.raises(PermissionDenied, match="approved on their behalf"):
        services.decide_gate(second_approver, second, "approve")
    assert second.decisions.count() == 0
    services.decide_gate(lena, second, "approve")
