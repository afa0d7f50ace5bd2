"""The main journey in Chromium, with a real worker: an author writes a workflow in the editor
(a risky step needing approval, a step that fails once and pauses the run), sees a validation
error at its line and fixes it, saves and starts a run; an approver approves it from the inbox;
the failing step pauses the run; an operator opens the checkpoint, sees the suggestions,
retries, and the run succeeds. Each page is saved under var/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from apps.runs.models import Run, RunState

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Generous: on a busy machine the worker and the browser share the CPU with everything else.
RUN_TIMEOUT = 120
YAML = """name: pay-suppliers
description: Pays the approved supplier invoices and uploads the bank file.
steps:
  - id: prepare
    type: test.echo
    with:
      invoices: 3
  - id: pay
    type: test.risky
    needs: prepare
    approval: billing-approvers
  - id: upload
    type: test.fail_onse
    needs: pay
    on_failure: pause
    with:
      marker: {marker}
"""


def test_author_approver_and_operator_take_a_run_from_yaml_to_success(
        open_page, screenshot, worker, wait_for, live_server, author, approver, operator, approver_group, tmp_path):
    # The author writes the YAML; the misspelt step type is reported at its line.
    page = open_page(author)
    page.get_by_role("link", name="Workflows").first.click()
    page.get_by_role("link", name=re.compile("New workflow")).click()
    editor = page.locator(".CodeMirror")
    expect(editor).to_be_visible()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(YAML.format(marker=tmp_path / "upload-marker"))
    problem = page.locator("#spec-errors li[data-line='13']")
    expect(problem).to_contain_text("test.fail_onse")
    expect(page.locator(".fd-problem-marker")).to_have_count(1)
    expect(page.locator(".fd-problem-line")).to_have_count(1)
    screenshot(page, "01-editor-with-a-problem")

    problem.get_by_role("button", name=re.compile("Line 13")).click()
    page.keyboard.press("Shift+End")
    page.keyboard.insert_text("test.fail_once")
    expect(page.locator("#spec-errors")).to_contain_text("No problems found")
    expect(page.locator("#editor-preview svg")).to_be_visible()
    expect(page.locator("#editor-preview")).to_contain_text("needs approval of billing-approvers")
    expect(page.locator(".fd-problem-marker")).to_have_count(0)
    screenshot(page, "02-editor-graph-and-dry-run")

    page.get_by_label("What changed (optional)").fill("First version")
    page.get_by_role("button", name="Save version").click()
    expect(page.get_by_role("heading", name="pay-suppliers")).to_be_visible()
    expect(page.locator(".spec-graph svg")).to_be_visible()
    screenshot(page, "03-workflow-with-graph")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/"))
    run = Run.objects.get()
    wait_for(run, RunState.WAITING, timeout=RUN_TIMEOUT)

    # The approver approves from the inbox.
    page = open_page(approver)
    page.get_by_role("link", name=re.compile("Inbox")).click()
    item = page.locator(".inbox-item").filter(has_text="pay-suppliers")
    item.get_by_text("Context and decision").click()
    screenshot(page, "04-inbox")
    item.get_by_role("button", name="Approve").click()
    expect(item).to_contain_text("Approve")
    run = wait_for(run, RunState.PAUSED, timeout=RUN_TIMEOUT)
    assert run.step_runs.get(step_id="upload").state == "failed"

    # The operator opens the checkpoint from home, reads the suggestions and retries.
    page = open_page(operator)
    expect(page.locator("#approvals-h")).to_contain_text("Waiting for your decision (1)")
    screenshot(page, "05-home-for-the-operator")
    page.get_by_role("link", name=re.compile("Failure checkpoint: upload of pay-suppliers")).click()
    expect(page.get_by_role("heading", name="Suggested root causes")).to_be_visible()
    screenshot(page, "06-checkpoint-with-suggestions")
    page.get_by_role("radio", name="Retry").check()
    page.get_by_label("Reason", exact=True).select_option("transient")
    page.get_by_label("Comment", exact=True).fill("The first upload hit a stale marker; retrying.")
    page.get_by_role("button", name="Record decision").click()
    run = wait_for(run, RunState.SUCCEEDED, RunState.FAILED, timeout=RUN_TIMEOUT)
    assert run.state == RunState.SUCCEEDED

    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("main")).to_contain_text("Succeeded")
    screenshot(page, "07-run-succeeded")
