"""Approvals tests drive the engine in this process (steps run when `drive(run)` plays the
worker) and run on-commit work at once, so notifications land in mail.outbox."""

import pytest

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)


@pytest.fixture
def eager_tasks(monkeypatch):
    """Notification tasks (mail, webhooks) run in this process as soon as they are sent.

    Patched per task rather than through Celery's global `task_always_eager`, which would leak
    into the real worker of the end-to-end tests."""
    from apps.notifications import tasks

    for task in (tasks.send_notification_mail, tasks.deliver_webhook):
        monkeypatch.setattr(task, "delay", lambda *args, _task=task, **kwargs: _task.apply(args=args, kwargs=kwargs))


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """`with on_commit(): ...` runs the block's on-commit callbacks when it ends."""

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    return run


@pytest.fixture
def gated(team, author, approver_group):
    """A version whose `pay` step needs `quorum` approvals of billing-approvers."""
    from tests.runs.factories import make_version, step

    def build(*, quorum=1, timeout=None, escalate_to=None, on_expiry=None, name="payroll", after=True):
        approval = {"group": approver_group.slug, "quorum": quorum, "timeout": timeout, "escalate_to": escalate_to,
                    "on_expiry": on_expiry or ("escalate" if escalate_to else "reject")}
        steps = [step("prepare", params={"rows": 3}), step("pay", needs=["prepare"], approval=approval,
                                                           params={"amount": 10})]
        if after:
            steps.append(step("report", needs=["pay"], params={"paid": "{{ steps.pay.output.amount }}"}))
        return make_version(team, steps, name=name, author=author)

    return build


@pytest.fixture
def waiting_gate(gated, operator, drive):
    """`waiting_gate(**gated_options)`: a run whose `pay` step waits for approval; returns its request."""
    from apps.approvals.models import ApprovalRequest
    from apps.runs import engine

    def start(**options):
        run = drive(engine.start_run(operator, gated(**options)))
        return ApprovalRequest.objects.get(run=run, kind="gate")

    return start
