"""The workflow editor's panels: graph and dry run of the YAML being written, the catalog's
"add to steps", and the form mode built from a step type's parameter schema."""

import json
import textwrap

import pytest
from django.urls import reverse

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types)
from apps.workflows.editor import dry_run, put_step, spec_graph
from apps.workflows.spec import load_spec

SPEC = textwrap.dedent("""\
    name: month-end
    steps:
      # pull the ledger
      - id: extract
        type: test.echo
      - id: check
        type: test.echo
        needs: extract
      - id: report
        type: test.echo
        needs: extract
      - id: pay
        type: test.risky
        needs: [check, report]
        approval: billing-approvers
    sla:
      max_duration: 1h
""")


def test_dry_run_orders_steps_in_parallel_stages_and_names_the_approvals(approver_group):
    plan = dry_run(load_spec(SPEC).spec)
    assert [[row.step_id for row in level] for level in plan.levels] == [["extract"], ["check", "report"], ["pay"]]
    assert [row.step_id for row in plan.approvals] == ["pay"]
    assert plan.expected_seconds is None


def test_dry_run_expects_the_longest_chain_of_median_past_durations(author, team, drive, approver_group):
    from apps.runs import engine
    from apps.runs.models import StepAttempt
    from apps.workflows.services import save_version

    version = save_version(author, team=team, source=SPEC.replace("type: test.risky", "type: test.echo")
                           .replace("    approval: billing-approvers\n", ""))
    for durations in ({"extract": 1000, "check": 5000, "report": 2000, "pay": 1000},
                      {"extract": 3000, "check": 7000, "report": 2000, "pay": 1000}):
        run = drive(engine.start_run(author, version))
        for step_id, ms in durations.items():
            StepAttempt.objects.filter(step_run__run=run, step_run__step_id=step_id).update(duration_ms=ms)
    plan = dry_run(version.spec, version.workflow)
    # Medians: extract 2 s, check 6 s, report 2 s, pay 1 s; the longest chain is extract → check → pay.
    assert plan.expected_seconds == pytest.approx(9.0)
    assert {row.step_id: row.expected_seconds for level in plan.levels for row in level}["check"] == pytest.approx(6.0)


def test_graph_lays_out_every_step_and_dependency(approver_group):
    graph = spec_graph(load_spec(SPEC).spec)
    assert [node.step_id for node in graph.nodes] == ["extract", "check", "report", "pay"]
    assert len(graph.lines) == 4
    tops = {node.step_id: node.y for node in graph.nodes}
    assert tops["extract"] < tops["check"] == tops["report"] < tops["pay"]
    assert {node.step_id: node.state for node in graph.nodes}["pay"] == "waiting_approval"


def test_added_step_lands_after_the_last_step_indented_like_the_others(approver_group):
    added = put_step(SPEC, {"id": "notify", "type": "test.echo", "with": {"message": "done"}})
    assert "    approval: billing-approvers\n  - id: notify\n    type: test.echo\n    with:\n      message: done\nsla:\n" \
        in added.source
    assert "# pull the ledger" in added.source
    assert added.source.splitlines()[added.first_line - 1] == "  - id: notify"
    assert load_spec(added.source).ok


def test_preview_shows_graph_and_dry_run_or_asks_to_fix_problems_first(client_for, author, approver_group):
    client = client_for(author)
    page = client.post(reverse("workflows:editor_preview"), {"source": SPEC}, HTTP_HX_REQUEST="true").content.decode()
    assert "<svg" in page and "Stage 2" in page and "needs approval of billing-approvers" in page
    broken = client.post(reverse("workflows:editor_preview"), {"source": "name: x\nsteps: []\n"}).content.decode()
    assert "Fix the 1 problem listed above" in broken and "<svg" not in broken


def test_editor_panels_are_for_authors_only(client_for, viewer):
    client = client_for(viewer)
    assert client.post(reverse("workflows:editor_preview"), {"source": SPEC}).status_code == 403
    assert client.get(reverse("workflows:editor_step_form"), {"type": "http.request"}).status_code == 403
    assert client.post(reverse("workflows:editor_add_step"), {"type": "http.request"}).status_code == 403


def test_catalog_button_adds_the_example_step_with_an_unused_id(client_for, author, approver_group):
    response = client_for(author).post(reverse("workflows:editor_add_step"), {"type": "test.echo", "source": SPEC})
    event = json.loads(response["HX-Trigger"])["fd:step-added"]
    assert response.status_code == 204
    assert event["step"] == "test-echo" and "  - id: test-echo\n    type: test.echo\n" in event["source"]
    again = client_for(author).post(reverse("workflows:editor_add_step"), {"type": "test.echo", "source": event["source"]})
    assert json.loads(again["HX-Trigger"])["fd:step-added"]["step"] == "test-echo-2"


def test_form_mode_builds_fields_from_the_schema_and_adds_a_valid_step(client_for, author, approver_group):
    client = client_for(author)
    form = client.get(reverse("workflows:editor_step_form"), {"type": "http.request"}).content.decode()
    assert 'name="param-url"' in form and 'name="param-method"' in form and '<label for="sf-p-url">' in form
    response = client.post(reverse("workflows:editor_add_step"), {
        "type": "http.request", "mode": "form", "step_id": "fetch", "needs": ["extract", "check"], "source": SPEC,
        "retries": "3", "timeout": "5m", "when": "steps.check.output.ok", "on_failure": "pause", "approval": "billing-approvers",
        "param-url": "https://example.com/ledger", "param-method": "GET"})
    source = json.loads(response["HX-Trigger"])["fd:step-added"]["source"]
    result = load_spec(source)
    assert result.ok, result.errors
    fetch = next(step for step in result.spec["steps"] if step["id"] == "fetch")
    assert fetch["needs"] == ["extract", "check"] and fetch["with"]["url"] == "https://example.com/ledger"
    assert (fetch["retries"]["count"], fetch["timeout"], fetch["when"], fetch["on_failure"], fetch["approval"]["group"]) \
        == (3, 300, "steps.check.output.ok", "pause", "billing-approvers")
    # The author writes lists of needs in brackets; the new step does too.
    assert "    needs: [extract, check]\n" in source


def test_form_mode_says_what_to_type_when_a_number_is_not_one(client_for, author):
    page = client_for(author).post(reverse("workflows:editor_add_step"), {
        "type": "http.request", "mode": "form", "step_id": "fetch", "source": SPEC,
        "param-url": "https://example.com", "param-timeout": "soon"}).content.decode()
    assert "timeout: type a number, for example 30." in page


def test_edit_page_shows_editor_graph_catalog_and_form_mode(client_for, author, team, approver_group):
    from apps.workflows.services import save_version

    workflow = save_version(author, team=team, source=SPEC).workflow
    page = client_for(author).get(reverse("workflows:edit", args=[workflow.pk])).content.decode()
    assert "codemirror/lib/codemirror.js" in page and "workflows/editor.js" in page
    assert "Dry run" in page and "<svg" in page and "Add http.request to steps" in page
    assert 'id="sf-type"' in page
    detail = client_for(author).get(reverse("workflows:detail", args=[workflow.pk])).content.decode()
    assert 'href="#step-pay"' in detail and 'id="step-pay"' in detail


def test_form_mode_edits_a_step_in_place_keeping_comments_and_the_authors_list_style(client_for, author,
                                                                                     approver_group):
    source = SPEC.replace("needs: [check, report]", "needs:\n      - check\n      - report") \
        .replace("  - id: check", "  - id: check  # the ledger balances")
    client = client_for(author)
    form = client.get(reverse("workflows:editor_step_form"), {"edit": "pay", "source": source},
                      HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="sf-edit").content.decode()
    assert 'value="check" selected' in form and 'value="billing-approvers"' in form and 'name="edit" value="pay"' in form
    response = client.post(reverse("workflows:editor_add_step"), {
        "type": "test.risky", "mode": "form", "edit": "pay", "step_id": "pay", "needs": ["check", "report", "extract"],
        "retries": "2", "timeout": "", "when": "", "on_failure": "", "approval": "billing-approvers", "source": source})
    changed = json.loads(response["HX-Trigger"])["fd:step-added"]
    assert changed["changed"] and changed["line"] == 12
    assert "  # pull the ledger\n" in changed["source"] and "  - id: check  # the ledger balances\n" in changed["source"]
    assert "    needs:\n      - check\n      - report\n      - extract\n    approval: billing-approvers\n    retries: 2\n" \
        in changed["source"]
    assert changed["source"].endswith("sla:\n  max_duration: 1h\n")
    assert load_spec(changed["source"]).ok


def test_dry_run_with_inputs_shows_the_steps_a_condition_skips(client_for, author, approver_group):
    source = textwrap.dedent("""\
        name: refunds
        inputs:
          amount: {type: number, default: 10}
        steps:
          - id: check
            type: test.echo
          - id: big
            type: test.echo
            needs: check
            when: inputs.amount > 100
          - id: after-big
            type: test.echo
            needs: big
          - id: by-output
            type: test.echo
            needs: check
            when: steps.check.output.ok
    """)
    client = client_for(author)
    small = client.post(reverse("workflows:editor_preview"), {"source": source, "dry_run_inputs": "1",
                                                              "input-amount": "50"}).content.decode()
    assert "With these inputs 2 steps are skipped: <code>big</code>, <code>after-big</code>." in small
    assert 'name="input-amount" value="50"' in small
    large = client.post(reverse("workflows:editor_preview"), {"source": source, "dry_run_inputs": "1",
                                                              "input-amount": "500"}).content.decode()
    assert "no condition skips a step" in large
    wrong = client.post(reverse("workflows:editor_preview"), {"source": source, "dry_run_inputs": "1",
                                                              "input-amount": "lots"}).content.decode()
    assert "`amount` must be a number" in wrong and "With these inputs" not in wrong


def test_graph_boxes_name_conditions_retries_timeouts_and_approvals(approver_group):
    source = SPEC.replace("    needs: extract\n  - id: report",
                          "    needs: extract\n    when: inputs.x\n    retries: 3\n    timeout: 5m\n  - id: report")
    labels = {node.step_id: node.state_label for node in spec_graph(load_spec(source.replace(
        "name: month-end\n", "name: month-end\ninputs:\n  x: {type: boolean, default: true}\n")).spec).nodes}
    assert labels["check"] == "if … · ↻3 · ⏱5m" and labels["pay"] == "approval" and labels["extract"] == "test.echo"


def test_form_mode_retries_only_transient_failures_when_ticked_and_keeps_the_backoff(client_for, author,
                                                                                    approver_group):
    source = SPEC.replace("  - id: check", "  - id: check\n    retries: {count: 1, backoff: exponential}", 1)
    client = client_for(author)
    fields = {"type": "test.echo", "mode": "form", "edit": "check", "step_id": "check", "timeout": "", "when": "",
              "on_failure": "", "approval": ""}
    ticked = json.loads(client.post(reverse("workflows:editor_add_step"), {
        **fields, "retries": "3", "retry_when": "transient", "source": source})["HX-Trigger"])["fd:step-added"]
    check = next(s for s in load_spec(ticked["source"]).spec["steps"] if s["id"] == "check")
    assert (check["retries"]["count"], check["retries"]["when"], check["retries"]["backoff"]) == \
        (3, "transient", "exponential")
    form = client.get(reverse("workflows:editor_step_form"), {"edit": "check", "source": ticked["source"]},
                      HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="sf-edit").content.decode()
    assert 'value="transient" checked' in form

    unticked = json.loads(client.post(reverse("workflows:editor_add_step"), {
        **fields, "retries": "3", "source": ticked["source"]})["HX-Trigger"])["fd:step-added"]
    check = next(s for s in load_spec(unticked["source"]).spec["steps"] if s["id"] == "check")
    assert "when" not in check["retries"] and check["retries"]["backoff"] == "exponential"
