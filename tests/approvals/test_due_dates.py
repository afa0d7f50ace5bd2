"""A request is due when its run's SLA says, computed in one place (the version's plan): the
inbox orders by the same deadline the SLA monitor alerts on, `finish_by` included."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import inbox_for
from apps.runs import engine
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def _gated(team, author, approver_group, *, name, sla):
    approval = {"group": approver_group.slug, "quorum": 1, "timeout": None, "escalate_to": None,
                "on_expiry": "reject"}
    return make_version(team, [step("pay", approval=approval)], name=name, author=author, sla=sla)


def test_a_gate_is_due_by_the_sla_finish_by_when_that_comes_first(team, author, operator, approver, approver_group,
                                                                  drive):
    soon = (timezone.now() + timedelta(hours=1)).astimezone(timezone.get_current_timezone())
    finish_by = {"max_duration": 7 * 24 * 3600, "finish_by": f"{soon:%H:%M}", "timezone": "UTC"}
    late = {"max_duration": 3 * 3600, "finish_by": None, "timezone": None}
    first = drive(engine.start_run(operator, _gated(team, author, approver_group, name="late", sla=late)))
    second = drive(engine.start_run(operator, _gated(team, author, approver_group, name="soon", sla=finish_by)))
    late_gate, soon_gate = (ApprovalRequest.objects.get(run=run, kind="gate") for run in (first, second))
    assert soon_gate.due_at == second.version.plan.deadline(second)
    assert soon_gate.due_at.astimezone(timezone.get_current_timezone()).strftime("%H:%M") == f"{soon:%H:%M}"
    assert late_gate.due_at == first.started_at + timedelta(hours=3)
    assert list(inbox_for(approver).values_list("pk", flat=True)) == [soon_gate.pk, late_gate.pk]


def test_a_run_without_an_sla_has_no_deadline(team, author, operator, approver_group, drive):
    run = drive(engine.start_run(operator, _gated(team, author, approver_group, name="free", sla=None)))
    assert run.version.plan.deadline(run) is None
    assert ApprovalRequest.objects.get(run=run).due_at is None
