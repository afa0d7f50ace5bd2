"""A checkpoint's decision is a form, not JSON boxes: the retry parameters come from the step
type's schema, prefilled with what the failed attempt used; the skip output is a form when the
type declares an output schema; a bad field is refused by name, with what was typed kept."""

import re

import pytest
from django.urls import reverse

from apps.approvals.models import ApprovalRequest, RequestState
from apps.runs import engine
from apps.runs.models import AttemptKind, RunState, StepState
from tests.approvals import steps  # noqa: F401  (registers test.approvals.strict)
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

REASON = {"reason_code": "params_fixed", "comment": "rows were wrong"}


@pytest.fixture
def checkpoint(team, author, operator, drive):
    version = make_version(team, [
        step("load", "test.approvals.strict", params={"succeed": False, "rows": 3}, on_failure="pause"),
        step("report", needs=["load"], params={"rows": "{{ steps.load.output.rows }}"}),
    ], name="ledger", author=author)
    run = drive(engine.start_run(operator, version))
    assert run.state == RunState.PAUSED
    return ApprovalRequest.objects.get(run=run, kind="checkpoint")


def _field(text: str, name: str) -> str:
    return re.search(rf'<(?:input|select|textarea)[^>]*name="{name}"[^>]*>(?:.*?</select>)?', text, re.S).group(0)


def test_retry_parameters_are_a_form_prefilled_with_what_the_attempt_used(checkpoint, operator, client_for):
    text = client_for(operator).get(reverse("approvals:detail", args=[checkpoint.pk])).content.decode()
    assert 'value="3"' in _field(text, "param-rows") and 'type="number"' in _field(text, "param-rows")
    assert '<option value="false" selected>' in _field(text, "param-succeed")
    assert 'name="params"' not in text  # no JSON box when the schema names the parameters
    assert 'name="output-rows"' in text and 'name="output"' not in text  # the type declares its output
    assert re.search(r'<label class="choice"><input type="radio" name="verdict" value="retry"[^>]*>\s*Retry', text)


def test_an_edited_retry_sends_only_what_changed(checkpoint, operator, client_for, drive):
    answer = client_for(operator).post(reverse("approvals:decide", args=[checkpoint.pk]), {
        "verdict": "retry", "param-succeed": "true", "param-rows": "3", **REASON})
    assert answer.status_code == 302
    decision = checkpoint.decisions.get()
    assert decision.params_override == {"succeed": True}
    run = drive(checkpoint.run)
    assert run.state == RunState.SUCCEEDED
    assert run.step_runs.get(step_id="load").attempts.filter(kind=AttemptKind.STEP).last().params == {
        "succeed": True, "rows": 3}


@pytest.mark.parametrize(("typed", "named"), [
    ({"param-rows": "three"}, "rows: type a whole number"),
    ({"param-rows": "-2"}, "rows: -2 is less than the minimum of 0"),
])
def test_a_bad_field_is_refused_by_name_and_what_was_typed_is_kept(checkpoint, operator, client_for, typed, named):
    answer = client_for(operator).post(reverse("approvals:decide", args=[checkpoint.pk]), {
        "verdict": "retry", "param-succeed": "true", **typed, **REASON})
    text = answer.content.decode()
    assert answer.status_code == 400 and "Not recorded." in text
    field = _field(text, "param-rows")
    assert f'value="{typed["param-rows"]}"' in field and 'aria-invalid="true"' in field
    assert re.search(rf'<p class="error" id="param-rows-{checkpoint.pk}-error">[^<]*{re.escape(named)}', text)
    assert '<option value="true" selected>' in _field(text, "param-succeed")
    assert 'value="retry" required checked' in text and "rows were wrong</textarea>" in text
    checkpoint.refresh_from_db()
    load = checkpoint.step_run
    load.refresh_from_db()
    assert checkpoint.state == RequestState.PENDING and not checkpoint.decisions.exists()
    assert load.state == StepState.FAILED and load.params_override is None


def test_skip_output_is_a_form_checked_against_the_output_schema(checkpoint, operator, client_for, drive):
    client = client_for(operator)
    refused = client.post(reverse("approvals:decide", args=[checkpoint.pk]), {
        "verdict": "skip", "output-rows": "-1", **REASON})
    assert refused.status_code == 400 and "rows: -1 is less than the minimum of 0" in refused.content.decode()
    assert not checkpoint.decisions.exists()
    client.post(reverse("approvals:decide", args=[checkpoint.pk]), {"verdict": "skip", "output-rows": "7", **REASON})
    run = drive(checkpoint.run)
    assert run.step_runs.get(step_id="report").output == {"rows": 7}
