"""Approval gates: a risky step waits for a quorum of distinct approvers who did not cause it."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import ApproverGroup
from apps.approvals import services
from apps.approvals.models import ApprovalRequest, RequestState, RiskWaiver
from apps.audit.models import AuditEvent
from apps.runs import engine
from apps.runs.models import RunState, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def step_state(request, step_id="pay"):
    return request.run.step_runs.get(step_id=step_id).state


def test_gated_step_waits_then_runs_after_approval(waiting_gate, approver, drive):
    request = waiting_gate()
    assert request.state == RequestState.PENDING and request.run.state == RunState.WAITING
    assert step_state(request) == StepState.WAITING_APPROVAL
    services.decide_gate(approver, request, "approve")
    assert step_state(request) == StepState.QUEUED
    run = drive(request.run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="report").output == {"paid": 10}
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert AuditEvent.objects.filter(action="approval.decision.approve", actor=approver).count() == 1


def test_person_who_started_the_run_cannot_approve(gated, approver, second_approver, drive):
    run = drive(engine.start_run(approver, gated()))
    request = ApprovalRequest.objects.get(run=run)
    with pytest.raises(PermissionDenied, match="started run"):
        services.decide_gate(approver, request, "approve")
    services.decide_gate(second_approver, request, "approve")
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED


def test_author_of_the_risky_step_cannot_approve(waiting_gate, approver_group, author, approver):
    approver_group.members.add(author)
    request = waiting_gate()
    with pytest.raises(PermissionDenied, match="wrote step pay in version 1"):
        services.decide_gate(author, request, "approve")
    assert request.decisions.count() == 0
    assert step_state(request) == StepState.WAITING_APPROVAL


def test_group_allowing_self_approval_lets_the_author_approve_and_says_so(waiting_gate, approver_group, author):
    approver_group.members.add(author)
    approver_group.allow_self_approval = True
    approver_group.save()
    request = waiting_gate()
    services.decide_gate(author, request, "approve")
    assert request.decisions.get().self_approval is True
    event = AuditEvent.objects.get(action="approval.decision.approve")
    assert event.after["self_approval"] is True


def test_quorum_of_two_needs_two_different_people(waiting_gate, approver, second_approver):
    request = waiting_gate(quorum=2)
    services.decide_gate(approver, request, "approve")
    assert step_state(request) == StepState.WAITING_APPROVAL
    with pytest.raises(services.DecisionConflict, match="already decided"):
        services.decide_gate(approver, request, "approve")
    assert request.decisions.count() == 1
    services.decide_gate(second_approver, request, "approve")
    assert step_state(request) == StepState.QUEUED
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED


def test_rejection_without_comment_is_refused(waiting_gate, approver):
    request = waiting_gate()
    with pytest.raises(services.InvalidDecision, match="needs a comment"):
        services.decide_gate(approver, request, "reject", "   ")
    assert request.decisions.count() == 0
    services.decide_gate(approver, request, "reject", "amount is wrong for this period")
    request.refresh_from_db()
    assert request.state == RequestState.REJECTED
    assert step_state(request) == StepState.FAILED
    assert request.run.step_runs.get(step_id="pay").error_type == "ApprovalRejected"


def test_deciding_an_already_decided_request_is_a_conflict(waiting_gate, approver, second_approver):
    request = waiting_gate()
    services.decide_gate(approver, request, "approve")
    with pytest.raises(services.DecisionConflict, match="already approved"):
        services.decide_gate(second_approver, request, "reject", "too late")


def test_expiry_escalates_then_rejects(waiting_gate, team, make_user, on_commit, eager_tasks, mailoutbox):
    lead = make_user("lee-lead")
    ApproverGroup.objects.create(slug="billing-leads", name="Billing leads", team=team).members.set([lead])
    request = waiting_gate(timeout=60, escalate_to="billing-leads")
    assert request.on_expiry == "escalate"
    opened = request.expires_at

    with on_commit():
        report = services.expire_due(now=opened + timedelta(seconds=1))
    assert report.escalated == 1
    request.refresh_from_db()
    assert request.group.slug == "billing-leads" and request.state == RequestState.PENDING
    assert request.expires_at > opened
    assert [m.to for m in mailoutbox if "escalated" in m.subject] == [["lee-lead@example.com"]]

    services.expire_due(now=request.expires_at + timedelta(seconds=1))
    request.refresh_from_db()
    assert request.state == RequestState.EXPIRED
    assert step_state(request) == StepState.FAILED
    request.run.refresh_from_db()
    assert request.run.state == RunState.FAILED
    assert AuditEvent.objects.filter(action__in=["approval.escalated", "approval.expired"]).count() == 2


def test_expire_approvals_command_rejects_overdue_requests(waiting_gate):
    request = waiting_gate(timeout=60)
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("expire_approvals")
    request.refresh_from_db()
    assert request.state == RequestState.EXPIRED


def test_expiry_is_scheduled_as_a_periodic_task():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="flowdeck.approvals.expire_approvals")
    assert task.enabled and task.interval is not None


def test_high_risk_step_type_is_gated_for_any_team_approver(team, operator, approver, drive):
    run = drive(engine.start_run(operator, make_version(team, [step("wire", "test.risky")])))
    request = ApprovalRequest.objects.get(run=run)
    assert request.group is None and request.risky
    services.decide_gate(approver, request, "approve")
    assert drive(run).state == RunState.SUCCEEDED


def test_waived_high_risk_type_runs_without_approval(team, operator, platform_admin, drive, on_commit):
    services.grant_waiver(platform_admin, team=team, step_type="test.risky", reason="sandbox team")
    with on_commit():
        run = engine.start_run(operator, make_version(team, [step("wire", "test.risky")]))
    assert ApprovalRequest.objects.get(run=run).state == RequestState.WAIVED
    assert drive(run).state == RunState.SUCCEEDED
    assert AuditEvent.objects.filter(action="risk_waiver.granted", actor=platform_admin).exists()


def test_only_platform_admins_grant_waivers(team, author):
    with pytest.raises(PermissionDenied):
        services.grant_waiver(author, team=team, step_type="test.risky", reason="please")
    assert not RiskWaiver.objects.exists()


def test_cancelled_run_withdraws_its_open_request(waiting_gate, operator):
    request = waiting_gate()
    engine.cancel_run(operator, request.run)
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN
