"""A request's page opens with what a decision would do: the parameters exactly as the step will
receive them (secrets redacted), who asked, the expiry and the quorum so far, the changes since
the last approved run, and the form; the evidence follows."""

import json
import re

import pytest
from django.urls import reverse

from apps.approvals import services
from apps.approvals.models import ApprovalRequest
from apps.runs import engine
from apps.runs.models import AttemptKind, StepAttempt, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

INPUTS = {name: {"type": "string", "required": True, "default": None, "description": ""}
          for name in ("period", "api_token")}


@pytest.fixture
def templated_gate(team, author, operator, approver_group, drive):
    """`templated_gate(period)`: a run whose gated `pay` step renders inputs and an upstream output."""
    approval = {"group": approver_group.slug, "quorum": 2, "timeout": 3600, "escalate_to": None,
                "on_expiry": "reject"}
    version = make_version(team, [
        step("prepare", params={"rows": 3, "period": "{{ inputs.period }}"}),
        step("pay", needs=["prepare"], approval=approval, params={
            "memo": "Post journal for {{ inputs.period }}", "rows": "{{ steps.prepare.output.rows }}",
            "api_token": "{{ inputs.api_token }}"}),
    ], name="ledger", inputs=INPUTS, author=author)

    def start(period="2026-11"):
        run = drive(engine.start_run(operator, version, inputs={"period": period, "api_token": "s3cr3t-value"}))
        return ApprovalRequest.objects.get(run=run, kind="gate")

    return start


def _shown_params(text: str) -> dict:
    found = re.search(r'<pre class="json params"[^>]*>(.*?)</pre>', text, re.S)
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_the_gate_page_shows_the_parameters_the_step_then_receives(
        templated_gate, approver, second_approver, client_for, drive):
    gate = templated_gate()
    text = client_for(approver).get(reverse("approvals:detail", args=[gate.pk])).content.decode()
    shown = _shown_params(text)
    assert shown == {"memo": "Post journal for 2026-11", "rows": 3, "api_token": "[redacted]"}
    assert "{{" not in text.split('class="evidence-h"')[0]
    assert "s3cr3t-value" not in text
    assert "exactly as the step will receive them" in text
    assert "0 of 2 approvals from billing-approvers" in text and "then it is rejected" in text
    assert "otto-operator" in text or "Otto" in text  # who asked: the person who started the run

    services.decide_gate(approver, gate, "approve")
    services.decide_gate(second_approver, gate, "approve")
    received = StepAttempt.objects.get(step_run=gate.step_run, kind=AttemptKind.STEP).params
    assert {**received, "api_token": "[redacted]"} == shown and received["api_token"] == "s3cr3t-value"


def test_the_summary_and_the_form_come_before_the_evidence(templated_gate, approver, client_for):
    gate = templated_gate()
    text = client_for(approver).get(reverse("approvals:detail", args=[gate.pk])).content.decode()
    summary, evidence = text.split('class="evidence-h"')
    assert 'value="approve"' in summary and "approvals/_gate_form_fields" not in summary
    assert "<details" not in summary and evidence.count('<details class="evidence"') >= 3


def test_changes_since_the_last_approved_run_are_listed_value_by_value(
        templated_gate, approver, second_approver, client_for, drive):
    first = templated_gate("2026-10")
    services.decide_gate(approver, first, "approve")
    services.decide_gate(second_approver, first, "approve")
    drive(first.run)
    second = templated_gate("2026-11")
    text = client_for(approver).get(reverse("approvals:detail", args=[second.pk])).content.decode()
    changes = text.split('<table class="changes">')[1].split("</table>")[0]
    assert "parameter <code>memo</code>" in changes and "input <code>period</code>" in changes
    assert '<del class="diff-del"><code>&quot;Post journal for 2026-10&quot;</code></del>' in changes
    assert '<ins class="diff-add"><code>&quot;Post journal for 2026-11&quot;</code></ins>' in changes
    assert "rows" not in changes and "api_token" not in changes  # unchanged values are not listed
    assert f"2 values</a> since v1 (run #{first.run_id})" in text and "The version is the same: v1." in text


def test_a_waiting_gates_step_page_links_to_its_request(templated_gate, operator, client_for):
    gate = templated_gate()
    assert gate.step_run.state == StepState.WAITING_APPROVAL
    text = client_for(operator).get(reverse("runs:step", args=[gate.run_id, "pay"])).content.decode()
    assert "the step starts when the steps it needs have finished" not in text
    assert "waits for approval" in text and f'href="/approvals/{gate.pk}/"' in text


def test_copy_reads_as_written(waiting_gate, approver, client_for):
    gate = waiting_gate()
    client = client_for(approver)
    client.post(reverse("approvals:decide", args=[gate.pk]), {"verdict": "approve"})
    text = client.get(reverse("approvals:detail", args=[gate.pk])).content.decode()
    assert ".." not in re.sub(r"<[^>]+>", "", text.split("<main")[1]).replace("…", "")
    assert "Approved approve" not in text and "(approve)" not in text
    history = client.get(reverse("approvals:history")).content.decode()
    assert '<span class="badge state-approved">Approved</span></td>' in history
    with pytest.raises(services.InvalidDecision, match=rf"Request {gate.pk} is an approval gate;"):
        services.decide_checkpoint(approver, gate, "retry", reason_code="other", comment="x")


def test_the_page_reads_a_bounded_number_of_queries(templated_gate, approver, client_for,
                                                    django_assert_max_num_queries):
    gate = templated_gate()
    client = client_for(approver)
    client.get(reverse("approvals:detail", args=[gate.pk]))
    with django_assert_max_num_queries(14):  # 12 today: session, user, roles, request, decisions, ...
        client.get(reverse("approvals:detail", args=[gate.pk]))
