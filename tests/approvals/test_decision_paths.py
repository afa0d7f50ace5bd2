"""Every path that changes a paused or failed step goes through the checkpoint's decision function.

The route test is generated from the URL configuration: each route is posted to (as a person who
holds every role, on a paused run whose risky step failed) with a body that would retry, skip or
end it, and the engine's step actions record whether they were reached through
`apps.approvals.services.decide_checkpoint`. A new route that calls the engine directly fails it.
"""

import inspect
import json
import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.accounts.models import Membership
from apps.approvals import services
from apps.approvals.models import ApprovalRequest, Decision, RequestState
from apps.runs import engine
from apps.runs.models import AttemptKind, RunState, StepAttempt, StepState
from tests.approvals import steps  # noqa: F401  (registers test.approvals.strict)
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

REASON = {"reason_code": "other", "comment": "checked the ledger"}
STEP_ACTIONS = ("retry_step", "skip_step", "abort_run", "compensate_and_abort")


@pytest.fixture
def risky_checkpoint(team, author, operator, approver, approver_group, drive):
    """A run started by `operator` whose gated `pay` step was approved, ran and failed: its checkpoint."""
    approval = {"group": approver_group.slug, "quorum": 1, "timeout": None, "escalate_to": None,
                "on_expiry": "reject"}
    version = make_version(team, [
        step("pay", "test.approvals.strict", params={"succeed": False, "rows": 3}, approval=approval,
             on_failure="pause"),
        step("report", needs=["pay"], params={"rows": "{{ steps.pay.output.rows }}"}),
    ], name="payroll", author=author)
    run = drive(engine.start_run(operator, version))
    services.decide_gate(approver, ApprovalRequest.objects.get(run=run, kind="gate"), "approve")
    run = drive(run)
    assert run.state == RunState.PAUSED
    return ApprovalRequest.objects.get(run=run, kind="checkpoint", state=RequestState.PENDING)


def _unchanged(checkpoint) -> None:
    checkpoint.refresh_from_db()
    pay = checkpoint.step_run
    pay.refresh_from_db()
    assert checkpoint.state == RequestState.PENDING and not checkpoint.decisions.exists()
    assert pay.state == StepState.FAILED and pay.params_override is None and pay.output is None
    assert checkpoint.run.step_runs.get(step_id="report").state == StepState.PENDING
    checkpoint.run.refresh_from_db()
    assert checkpoint.run.state == RunState.PAUSED


# --- The findings, one by one ---------------------------------------------------------------------

def test_the_operator_who_started_the_run_cannot_skip_a_risky_step_through_the_api(api_for, operator,
                                                                                    risky_checkpoint):
    pay = risky_checkpoint.step_run
    response = api_for(operator).post(reverse("api-step-skip", args=[pay.pk]),
                                      {"output": {"rows": 999}, **REASON}, format="json")
    assert response.status_code == 403 and "approver role" in response.json()["detail"]
    _unchanged(risky_checkpoint)


def test_skip_and_retry_through_the_api_need_a_reason_and_a_comment(api_for, make_user, team, risky_checkpoint):
    deputy = make_user("dora-deputy")
    Membership.objects.bulk_create([Membership(user=deputy, team=team, role=role) for role in ("operator", "approver")])
    api, pay = api_for(deputy), risky_checkpoint.step_run
    skipped = api.post(reverse("api-step-skip", args=[pay.pk]), {"output": {"rows": 0}}, format="json")
    assert skipped.status_code == 400 and "Pick a reason" in skipped.json()["detail"]
    retried = api.post(reverse("api-step-retry", args=[pay.pk]), {"reason_code": "transient"}, format="json")
    assert retried.status_code == 400 and "Add a comment" in retried.json()["detail"]
    _unchanged(risky_checkpoint)


def test_retry_parameters_that_do_not_fit_the_step_type_are_refused(api_for, make_user, team, risky_checkpoint):
    deputy = make_user("dora-deputy")
    Membership.objects.create(user=deputy, team=team, role="operator")
    response = api_for(deputy).post(reverse("api-step-retry", args=[risky_checkpoint.step_run.pk]),
                                    {"params_override": {"succeed": "yes", "drop_table": True}, **REASON},
                                    format="json")
    assert response.status_code == 400 and "do not fit the step type" in response.json()["detail"]
    _unchanged(risky_checkpoint)


def test_edited_parameters_of_a_risky_step_wait_for_a_new_approval_by_someone_else(
        api_for, make_user, team, approver, second_approver, risky_checkpoint, drive):
    editor = make_user("eve-editor")
    Membership.objects.create(user=editor, team=team, role="operator")
    response = api_for(editor).post(reverse("api-step-retry", args=[risky_checkpoint.step_run.pk]),
                                    {"params_override": {"succeed": True}, **REASON}, format="json")
    assert response.status_code == 200
    pay = risky_checkpoint.step_run
    pay.refresh_from_db()
    assert pay.state == StepState.WAITING_APPROVAL
    assert not StepAttempt.objects.filter(step_run=pay, kind=AttemptKind.STEP, state="queued").exists()
    gate = ApprovalRequest.objects.get(step_run=pay, kind="gate", state=RequestState.PENDING)
    assert gate.causes.get(person=editor).reason.startswith("edited the parameters of step pay")
    Membership.objects.create(user=editor, team=team, role="approver")
    gate.group.members.add(editor)
    with pytest.raises(PermissionDenied, match="separation of duties"):
        services.decide_gate(editor, gate, "approve")
    services.decide_gate(second_approver, gate, "approve")
    run = drive(risky_checkpoint.run)
    assert run.state == RunState.SUCCEEDED
    assert pay.attempts.filter(kind=AttemptKind.STEP).order_by("number").last().params == {"succeed": True, "rows": 3}


def test_a_retry_with_the_approved_parameters_runs_without_a_new_approval(client_for, operator, risky_checkpoint):
    response = client_for(operator).post(reverse("approvals:decide", args=[risky_checkpoint.pk]),
                                         {"verdict": "retry", "param-succeed": "false", **REASON})
    assert response.status_code == 302
    risky_checkpoint.step_run.refresh_from_db()
    assert risky_checkpoint.step_run.state == StepState.QUEUED
    assert not ApprovalRequest.objects.filter(step_run=risky_checkpoint.step_run, state=RequestState.PENDING).exists()


def test_an_expired_gate_cannot_be_approved_even_before_the_expiry_task_runs(api_for, approver, waiting_gate):
    gate = waiting_gate(timeout=60)
    ApprovalRequest.objects.filter(pk=gate.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    gate.refresh_from_db()
    response = api_for(approver).post(reverse("api-approval-decide", args=[gate.pk]), {"verdict": "approve"},
                                      format="json")
    assert response.status_code == 409
    assert f"Request {gate.pk} expired at" in response.json()["detail"]
    assert response.json()["expires_at"] == gate.expires_at.isoformat()
    gate.refresh_from_db()
    assert gate.state == RequestState.PENDING and not gate.decisions.exists()
    assert gate.step_run.state == StepState.WAITING_APPROVAL
    assert not services.inbox_for(approver).filter(pk=gate.pk).exists()


def test_the_inbox_and_the_page_refuse_an_expired_gate_the_same_way(client_for, approver, waiting_gate):
    gate = waiting_gate(timeout=60)
    ApprovalRequest.objects.filter(pk=gate.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_for(approver).post(reverse("approvals:decide", args=[gate.pk]), {"verdict": "approve"})
    assert response.status_code == 409 and "can no longer be decided" in response.text
    assert not Decision.objects.filter(request=gate).exists()


# --- Generated from the URL configuration -------------------------------------------------------------

def _routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _urls(route: str, ids: list[int], step_id: str) -> list[str]:
    """Every URL of `route` with its parameters filled from the ids of the objects under test."""
    if route.startswith("^") or "(?P" in route:
        return []  # the admin's catch-all patterns: their concrete routes are listed too
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    ints = [name for name in names if name != "step_id"]
    urls = []
    for value in ids if ints else [None]:
        url = re.sub(r"<(?:\w+:)?step_id>", step_id, route)
        url = re.sub(r"<(?:\w+:)?\w+>", str(value), url)
        urls.append("/" + url)
    return urls


def test_no_route_reaches_the_engines_step_actions_except_through_a_checkpoint_decision(
        monkeypatch, make_user, team, risky_checkpoint):
    reached: list[tuple[str, str, bool]] = []
    current = {"url": ""}
    for name in STEP_ACTIONS:
        original = getattr(engine, name)

        def watched(*args, _original=original, _name=name, **kwargs):
            decided = any(frame.function == "decide_checkpoint" and frame.filename.endswith("approvals/services.py")
                          for frame in inspect.stack())
            reached.append((current["url"], _name, decided))
            return _original(*args, **kwargs)

        monkeypatch.setattr(engine, name, watched)
    everyone = make_user("root-of-all", platform_admin=True)
    everyone.is_staff = everyone.is_superuser = True
    everyone.save()
    Membership.objects.bulk_create([Membership(user=everyone, team=team, role=role)
                                    for role in ("author", "operator", "approver")])
    client = Client(raise_request_exception=False)
    pay = risky_checkpoint.step_run
    ids = sorted({risky_checkpoint.run_id, pay.pk, risky_checkpoint.pk})
    form = {"verdict": "skip", "output": '{"rows": 999}', "params": '{"succeed": true}',
            "params_override": '{"succeed": true}', "ids": [str(risky_checkpoint.pk)], **REASON}
    body = {"verdict": "skip", "output": {"rows": 999}, "skip_output": {"rows": 999},
            "params_override": {"succeed": True}, "ids": [risky_checkpoint.pk], **REASON}
    posted = 0
    for route in _routes():
        for url in _urls(route, ids, pay.step_id):
            current["url"] = url
            with transaction.atomic():
                client.force_login(everyone)  # again each time: one of the routes signs out
                if url.startswith("/api/"):
                    client.post(url, json.dumps(body), content_type="application/json")
                else:
                    client.post(url, form)
                posted += 1
                checkpoint = ApprovalRequest.objects.get(pk=risky_checkpoint.pk)
                pay.refresh_from_db()
                if pay.state != StepState.FAILED or checkpoint.state != RequestState.PENDING:
                    assert checkpoint.decisions.exists(), f"{url} changed step pay without a decision"
                transaction.set_rollback(True)
    assert posted > 150
    bypasses = sorted({(url, name) for url, name, decided in reached if not decided})
    assert not bypasses, f"routes that reach the engine's step actions directly: {bypasses}"
    decided_by = {url for url, _, decided in reached if decided}
    # The positive control: the paths meant to decide do reach the engine, through the decision.
    assert reverse("approvals:decide", args=[risky_checkpoint.pk]) in decided_by
    assert reverse("api-step-skip", args=[pay.pk]) in decided_by
    assert reverse("runs:abort", args=[risky_checkpoint.run_id]) in decided_by
