"""Reminders at the times a gate sets (`approval: {remind: [1h, 10m]}`): each sent once, at its
time, to the deciders and the delegates of those away."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.approvals import delegation, services
from apps.approvals.models import ApprovalRequest
from apps.runs import engine
from apps.workflows.spec.validate import load_spec
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def _spec(approval: str) -> str:
    return f"name: payroll\nsteps:\n  - id: pay\n    type: test.echo\n    approval: {approval}\n"


def test_remind_is_read_into_seconds_before_expiry_latest_first(approver_group):
    result = load_spec(_spec("{group: billing-approvers, timeout: 2h, remind: [10m, 1h]}"))
    assert not result.errors, result.errors
    assert result.spec["steps"][0]["approval"]["remind"] == [3600, 600]


@pytest.mark.parametrize(("approval", "path", "message"), [
    ("{group: billing-approvers, remind: [10m]}", "steps[0].approval.remind", "it never does"),
    ("{group: billing-approvers, timeout: 1h, remind: [10m, 2h]}", "steps[0].approval.remind[1]",
     "`2h` before expiry is not after the request opens"),
])
def test_a_reminder_that_cannot_happen_is_refused_with_its_field(approver_group, approval, path, message):
    errors = load_spec(_spec(approval)).errors
    assert [(error.path, error.line) for error in errors] == [(path, 5)]
    assert message in errors[0].message


def test_a_reminder_is_sent_once_at_its_time(team, author, operator, approver_group, second_approver, viewer, drive,
                                             on_commit, eager_tasks, mailoutbox):
    delegation.create_delegation(second_approver, delegate=viewer, starts_at=timezone.now() - timedelta(minutes=1),
                                 ends_at=timezone.now() + timedelta(days=1))
    approval = {"group": approver_group.slug, "quorum": 1, "timeout": 2 * 3600, "escalate_to": None,
                "on_expiry": "reject", "remind": [3600, 600]}
    run = drive(engine.start_run(operator, make_version(team, [step("pay", approval=approval)], author=author)))
    request = ApprovalRequest.objects.get(run=run)
    mailoutbox.clear()
    with on_commit():
        assert services.expire_due(request.expires_at - timedelta(minutes=61)).reminded == 0
    assert mailoutbox == []
    with on_commit():
        assert services.expire_due(request.expires_at - timedelta(minutes=59)).reminded == 1
    # The deciders, and the delegate of the one away.
    assert sorted(mail.to[0] for mail in mailoutbox) == [
        "abe-approver@example.com", "amy-approver@example.com", "vic-viewer@example.com"]
    assert all(mail.subject == f"Reminder, 59 minutes left: wf / pay (run {run.pk})" for mail in mailoutbox)
    with on_commit():  # the beat again, at the same moment: nothing more
        assert services.expire_due(request.expires_at - timedelta(minutes=59)).reminded == 0
    assert len(mailoutbox) == 3
    with on_commit():
        assert services.expire_due(request.expires_at - timedelta(minutes=9)).reminded == 1
    assert len(mailoutbox) == 6 and "9 minutes left" in mailoutbox[-1].subject
    assert request.warn_at is None  # the gate's own reminders replace the default one
