"""The `flowdeck` command against a live console: exit codes scripts rely on (0, run failed, run
paused, validation failed, not allowed, not found, usage, unreachable), --json that parses, and
decisions that go through the checkpoint and gate rules with their reason code and comment."""

import json
import socket

import pytest

from apps.approvals.models import ApprovalRequest, Decision
from apps.runs.models import Run, RunState
from apps.workflows import services
from apps.workflows.models import Workflow
from flowdeck_cli.exits import Exit

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_YAML = """name: nightly-close
description: Closes the day's books.
inputs:
  period:
    type: string
  rows:
    type: integer
    default: 10
steps:
  - id: extract
    type: test.echo
    with:
      period: "{{ inputs.period }}"
      rows: "{{ inputs.rows }}"
  - id: load
    type: test.echo
    needs: extract
"""
BAD_YAML = """name: nightly-close
steps:
  - id: extract
    type: test.echo
  - id: load
    type: test.nosuchtype
    needs: extract
"""


def save(author, team, source: str):
    return services.save_version(author, team=team, source=source)


def failing(name: str, on_failure: str) -> str:
    return f"""name: {name}
steps:
  - id: pay
    type: test.flaky
    on_failure: {on_failure}
    with:
      succeed_on: 2
"""


def test_deploy_then_run_wait_exits_0_and_prints_json(flowdeck, worker_thread, author, operator, tmp_path):
    file = tmp_path / "nightly-close.yaml"
    file.write_text(GOOD_YAML)
    deployed = flowdeck(author, "deploy", str(file), "-m", "first cut")
    assert deployed.returncode == Exit.OK, deployed.stderr
    assert "Deployed billing/nightly-close as version 1." in deployed.stdout

    ran = flowdeck(operator, "run", "nightly-close", "-i", "period=2026-11", "-i", "rows:=3", "--wait", "--poll",
                   "0.1", "--json", process=True)
    assert ran.returncode == Exit.OK, ran.stderr
    run = json.loads(ran.stdout)
    assert run["state"] == "succeeded" and run["inputs"] == {"period": "2026-11", "rows": 3}
    assert [(step["step_id"], step["state"]) for step in run["step_runs"]] == [("extract", "succeeded"),
                                                                              ("load", "succeeded")]
    assert "extract  succeeded" in ran.stderr  # the progress, step by step, on stderr
    assert Run.objects.get(pk=run["id"]).state == RunState.SUCCEEDED

    logs = flowdeck(operator, "logs", str(run["id"]), "extract", "--json")
    assert logs.returncode == Exit.OK, logs.stderr
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    assert [(line["attempt"], line["message"], line["fields"]) for line in lines] == [(1, "echo", {"keys": ["period",
                                                                                                            "rows"]})]
    listed = flowdeck(operator, "runs", "--workflow", "nightly-close", "--state", "succeeded", "--json")
    assert [listed_run["id"] for listed_run in json.loads(listed.stdout)] == [run["id"]]


def test_run_wait_exits_with_the_run_failed_code_when_the_run_fails(flowdeck, worker_thread, author, operator, team):
    save(author, team, failing("pay-suppliers", "fail"))
    ran = flowdeck(operator, "run", "pay-suppliers", "--wait", "--poll", "0.1")
    assert ran.returncode == Exit.RUN_FAILED, ran.stderr
    assert "flaky failure on attempt 1" in ran.stdout and "Run" in ran.stderr and "failed." in ran.stderr
    assert Run.objects.get().state == RunState.FAILED


def test_a_paused_run_exits_paused_then_a_retry_through_its_checkpoint_succeeds(flowdeck, worker_thread, author,
                                                                                  operator, team):
    save(author, team, failing("pay-suppliers", "pause"))
    paused = flowdeck(operator, "run", "pay-suppliers", "--wait", "--poll", "0.1")
    assert paused.returncode == Exit.RUN_PAUSED, paused.stderr
    run = Run.objects.get()
    assert run.state == RunState.PAUSED and f"flowdeck retry {run.pk} STEP" in paused.stderr

    unexplained = flowdeck(operator, "retry", str(run.pk), "pay", "--reason", "transient", "--comment", " ")
    assert unexplained.returncode == Exit.VALIDATION_FAILED and "Add a comment" in unexplained.stderr
    run.refresh_from_db()
    assert run.state == RunState.PAUSED and not Decision.objects.exists()

    retried = flowdeck(operator, "retry", str(run.pk), "pay", "--reason", "transient", "-c", "The bank was down.",
                       "--wait", "--poll", "0.1", "--json")
    assert retried.returncode == Exit.OK, retried.stderr
    assert json.loads(retried.stdout)["state"] == "succeeded"
    decision = Decision.objects.get()
    assert (decision.verdict, decision.reason_code, decision.comment, decision.person) == (
        "retry", "transient", "The bank was down.", operator)


def test_an_invalid_file_exits_with_the_validation_code_and_names_line_and_field(flowdeck, author, tmp_path):
    file = tmp_path / "nightly-close.yaml"
    file.write_text(BAD_YAML)
    checked = flowdeck(author, "validate", str(file))
    assert checked.returncode == Exit.VALIDATION_FAILED
    assert f"{file}:6:11: steps[1].type: " in checked.stderr and "test.nosuchtype" in checked.stderr
    assert "fix: " in checked.stderr

    deployed = flowdeck(author, "deploy", str(file), "--json")
    assert deployed.returncode == Exit.VALIDATION_FAILED
    assert json.loads(deployed.stdout)["errors"][0]["line"] == 6
    assert not Workflow.objects.exists()


def test_refusals_exit_with_their_own_codes(flowdeck, author, viewer, outsider, team):
    save(author, team, GOOD_YAML)
    refused = flowdeck(viewer, "run", "nightly-close", "-i", "period=2026-11")
    assert refused.returncode == Exit.NOT_ALLOWED and "operator role" in refused.stderr
    hidden = flowdeck(outsider, "run", "nightly-close", "-i", "period=2026-11")
    assert hidden.returncode == Exit.NOT_FOUND and "No workflow 'nightly-close'" in hidden.stderr
    bad_inputs = flowdeck(author, "run", "nightly-close", "-i", "rows:=[1")
    assert bad_inputs.returncode == Exit.USAGE and "is not JSON" in bad_inputs.stderr
    assert not Run.objects.exists()


def test_no_token_is_a_usage_error_and_a_closed_port_is_unreachable(flowdeck, author):
    missing = flowdeck(None, "runs")
    assert missing.returncode == Exit.USAGE and "FLOWDECK_TOKEN" in missing.stderr
    with socket.socket() as probe:  # a port nothing listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = flowdeck(author, "runs", url=closed)
    assert unreachable.returncode == Exit.UNREACHABLE and "Cannot reach the console" in unreachable.stderr


def test_an_approver_decides_a_gate_from_the_inbox(flowdeck, worker_thread, author, approver, operator, team,
                                                   approver_group):
    save(author, team, """name: pay-suppliers
steps:
  - id: pay
    type: test.echo
    approval: billing-approvers
""")
    started = flowdeck(operator, "run", "pay-suppliers")
    assert started.returncode == Exit.OK, started.stderr
    run = Run.objects.get()
    waited = flowdeck(operator, "wait", str(run.pk), "--timeout", "0.2", "--poll", "0.05")
    assert waited.returncode == Exit.WAIT_TIMEOUT and "still waiting" in waited.stderr
    inbox = json.loads(flowdeck(approver, "approvals", "list", "--json").stdout)
    assert [(request["kind"], request["step"], request["state"]) for request in inbox] == [("gate", "pay", "pending")]
    decided = flowdeck(approver, "approvals", "decide", str(inbox[0]["id"]), "approve", "-c", "Invoices checked.")
    assert decided.returncode == Exit.OK, decided.stderr
    assert ApprovalRequest.objects.get().state == "approved"
    assert "approved" in decided.stdout


def test_logs_follow_a_step_from_pending_until_it_finishes(flowdeck, worker_thread, author, operator, team):
    save(author, team, """name: load-ledger
steps:
  - id: settle
    type: test.sleep
    with:
      seconds: 0.5
  - id: write
    type: test.effect
    needs: settle
    with:
      target: ledger
""")
    assert flowdeck(operator, "run", "load-ledger").returncode == Exit.OK
    followed = flowdeck(operator, "logs", str(Run.objects.get().pk), "write", "--follow", "--poll", "0.05")
    assert followed.returncode == Exit.OK, followed.stderr
    assert "effect applied" in followed.stdout
    assert Run.objects.get().step_runs.get(step_id="write").state == "succeeded"
