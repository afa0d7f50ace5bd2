"""`manage.py run_workflow`: starts a run with typed inputs, follows it with --wait, and exits
non-zero when the run does not succeed. Attempts run eagerly in this process once committed."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.celery import app
from apps.runs.models import Run, RunState
from tests.runs.factories import make_version, step

INPUTS = {"period": {"type": "string", "required": True, "default": None, "description": ""},
          "rows": {"type": "integer", "required": False, "default": 10, "description": ""}}


@pytest.fixture
def eager():
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def run_command(*args):
    out = StringIO()
    call_command("run_workflow", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_starts_a_run_with_typed_inputs(team):
    make_version(team, [step("extract", params={"rows": "{{ inputs.rows }}"})], name="close", inputs=INPUTS)
    out = run_command("close", "--team", "billing", "--input", "period=2026-11", "--input", "rows=25")
    run = Run.objects.get()
    assert f"Started run {run.pk} of billing/close" in out
    assert run.inputs == {"period": "2026-11", "rows": 25} and run.started_by is None


@pytest.mark.django_db
def test_bad_inputs_name_each_field_and_start_nothing(team):
    make_version(team, [step("extract")], name="close", inputs=INPUTS)
    with pytest.raises(CommandError) as refused:
        run_command("close", "--input", "rows=many")
    assert "period: `period` is required" in str(refused.value) and "rows: `rows` must be" in str(refused.value)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_unknown_or_ambiguous_workflow_says_what_to_do(team, other_team):
    with pytest.raises(CommandError, match="No workflow named 'close'"):
        run_command("close")
    make_version(team, [step("a")], name="close")
    make_version(other_team, [step("a")], name="close")
    with pytest.raises(CommandError, match="add --team SLUG"):
        run_command("close")


@pytest.mark.django_db(transaction=True)
def test_wait_shows_progress_and_succeeds(team, eager):
    make_version(team, [step("a"), step("b", needs=["a"])], name="chain")
    out = run_command("chain", "--wait", "--interval", "0.05")
    assert "2/2 steps done" in out and "succeeded." in out
    assert Run.objects.get().state == RunState.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_wait_exits_non_zero_when_the_run_fails(team, eager):
    make_version(team, [step("a", "test.fail", params={"permanent": True, "message": "HTTP 400"})], name="broken")
    with pytest.raises(CommandError, match=r"Run \d+ failed: Step a failed: PermanentStepError: HTTP 400"):
        run_command("broken", "--wait", "--interval", "0.05")
