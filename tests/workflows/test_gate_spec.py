"""A gate's form, options, on_reject, sign-off stages and auto_approve in the spec: normalized
for the engine, refused with a line and a fix when wrong, and shown by the graph and the dry run."""

import pytest

from apps.accounts.models import ApproverGroup
from apps.workflows.editor import dry_run, spec_graph
from apps.workflows.plan import build_plan
from apps.workflows.spec import load_spec
from tests.workflows.conftest import spec_text

pytestmark = pytest.mark.django_db

GATE = """
    name: vendor-payments
    inputs:
      amount: {type: number}
    steps:
      - id: review
        type: test.spec_echo
        approval:
          stages:
            - group: finance
            - any_of: [legal, {group: treasury, quorum: 1}]
          form:
            required: [pay_date]
            properties:
              pay_date: {type: string, format: date}
              method: {type: string, enum: [wire, ach], default: wire}
          options: [pay_now, pay_next_cycle]
          on_reject: continue
      - id: pay
        type: test.spec_echo
        needs: review
        when: steps.review.decision == "DECISION"
        with:
          paid_on: "{{ steps.review.output.pay_date }}"
"""


@pytest.fixture
def groups(team, approver, second_approver):
    for slug in ("finance", "legal", "treasury"):
        ApproverGroup.objects.create(slug=slug, name=slug, team=team).members.set([approver, second_approver])


def _source(decision: str) -> str:
    return spec_text(GATE).replace("DECISION", decision)


def test_a_gate_with_stages_form_and_options_is_normalized_and_planned(groups):
    result = load_spec(_source("pay_now"))
    assert result.ok, result.errors
    gate = build_plan(1, result.spec).steps["review"].gate
    assert [stage.label for stage in gate.stages] == ["finance", "legal or treasury"]
    assert gate.outcomes == ("pay_now", "pay_next_cycle", "rejected")
    assert gate.on_reject == "continue" and gate.form_defaults == {"method": "wire"}
    summary = dry_run(result.spec).levels[0][0].approval_group
    assert summary == ("finance, then legal or treasury · pay_now | pay_next_cycle | rejected (then continue) · "
                       "asks for pay_date, method")
    graph_labels = {node.step_id: node.state_label for node in spec_graph(result.spec).nodes}
    assert graph_labels["review"] == "2 sign-offs"


def test_an_unknown_option_in_a_when_is_refused_with_its_line_and_a_suggestion(groups):
    result = load_spec(_source("pay_nwo"))
    errors = {error.path: error for error in result.errors}
    error = errors["steps[1].when"]
    assert error.line == 21  # the `when:` line
    assert error.message == "step `review` never decides `pay_nwo`: its decisions are pay_now, pay_next_cycle, rejected"
    assert error.hint == "Did you mean `pay_now`?"


def test_reading_the_decision_of_a_step_without_approval_is_refused(groups):
    result = load_spec(spec_text("""
        name: plain
        steps:
          - id: load
            type: test.spec_echo
          - id: report
            type: test.spec_echo
            needs: load
            when: steps.load.decision == "approved"
    """))
    assert [(e.path, e.message) for e in result.errors] == [
        ("steps[1].when", "step `load` has no decision: it does not wait for approval")]


def test_form_and_option_mistakes_are_named_at_their_field(groups):
    result = load_spec(spec_text("""
        name: mistakes
        steps:
          - id: review
            type: test.spec_echo
            approval:
              group: finance
              any_of: [legal]
              options: [approved]
              form:
                required: [pay_dat]
                properties:
                  pay_date: {type: string, format: date, default: "tomorrow"}
    """))
    found = {error.path: error.message for error in result.errors}
    assert found == {
        "steps[0].approval.any_of": "`group` and `any_of` both say who decides",
        "steps[0].approval.options[0]": "`approved` is not a name an option can have",
        "steps[0].approval.form.required[0]": "`pay_dat` is not a field of this form",
        "steps[0].approval.form.properties.pay_date.default": "the default must be a date such as 2026-12-31",
    }


def test_auto_approve_is_refused_at_save_time_once_an_admin_forbids_it_for_the_type(groups, platform_admin, client):
    source = spec_text("""
        name: small-payments
        inputs:
          amount: {type: number}
        steps:
          - id: pay
            type: test.spec_echo
            approval: {group: finance, auto_approve: inputs.amount < 1000}
    """)
    assert load_spec(source).ok
    platform_admin.is_staff = platform_admin.is_superuser = True
    platform_admin.save()
    client.force_login(platform_admin)
    answer = client.post("/admin/approvals/autoapprovalban/add/", {"step_type": "test.spec_echo",
                                                                    "reason": "it moves money"})
    assert answer.status_code == 302
    [error] = load_spec(source).errors
    assert (error.path, error.line) == ("steps[0].approval.auto_approve", 7)
    assert error.message == "step type `test.spec_echo` may not be approved automatically: it moves money"
