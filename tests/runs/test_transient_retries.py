"""`retries: {when: transient}`: only passing trouble is retried; anything else pauses at the
checkpoint at once, and each choice is recorded on the attempt with its evidence."""

import pytest

from apps.audit.models import AuditEvent
from apps.knowledge import suggest
from apps.knowledge.suggest import Citation, Hypothesis, Suggestions
from apps.runs import engine
from apps.runs.models import RunState, StepAttempt, StepState
from apps.workflows.spec.validate import load_spec
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db

TRANSIENT = {"count": 2, "when": "transient"}
TIMED_OUT = "GET https://api.example.com/rates timed out after 5s (ConnectTimeout)."


def failing(team, message, retries=TRANSIENT, *, type_="test.fail", params=None):
    return make_version(team, [step("fetch", type_, params=params or {"message": message}, retries=retries,
                                    on_failure="pause")])


def attempts(run):
    return list(StepAttempt.objects.filter(step_run__run=run).order_by("number"))


def test_a_network_timeout_is_retried_and_each_retry_says_why(team, operator, drive, client):
    run = drive(engine.start_run(operator, failing(team, TIMED_OUT)))

    tried = attempts(run)
    assert len(tried) == 3 and run.state == RunState.PAUSED
    for attempt in tried[:2]:
        verdict = attempt.retry_verdict
        assert (verdict["category"], verdict["source"], verdict["retried"]) == ("network", "rule", True)
        assert "timed out" in verdict["evidence"][0]["label"]
    assert tried[2].retry_verdict is None  # no retry left to give: nothing was decided
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/steps/fetch/").content.decode()
    assert page.count("Retried</strong>: Network failure") == 2


def test_a_missing_connection_pauses_at_once_with_the_known_cause(team, operator, drive, client):
    run = drive(engine.start_run(operator, failing(team, "", type_="sql.query",
                                                   params={"connection": "warehouse", "sql": "SELECT 1"})))

    (attempt,) = attempts(run)
    assert run.state == RunState.PAUSED and run.step_runs.get().state == StepState.FAILED
    verdict = attempt.retry_verdict
    assert (verdict["source"], verdict["category"], verdict["retried"]) == ("known cause", "config-change", False)
    assert "warehouse" in verdict["evidence"][0]["label"]
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/steps/fetch/").content.decode()
    assert "Not retried</strong> (retries only transient failures)" in page


def test_an_unrecognised_failure_is_not_retried_and_the_withheld_retry_is_audited(team, operator, drive):
    run = drive(engine.start_run(operator, failing(team, "KeyError: 'net_pay'")))

    (attempt,) = attempts(run)
    assert run.state == RunState.PAUSED
    assert (attempt.retry_verdict["retried"], attempt.retry_verdict["confidence"]) == (False, None)
    withheld = AuditEvent.objects.get(action="step.retry_withheld")
    assert withheld.after["attempt"] == 1 and withheld.after["source"] == attempt.retry_verdict["source"]
    assert not AuditEvent.objects.filter(action="step.retry_scheduled").exists()


def test_without_when_every_failure_is_retried_as_before(team, operator, drive):
    run = drive(engine.start_run(operator, failing(team, "KeyError: 'net_pay'", retries={"count": 2})))

    assert [a.retry_verdict for a in attempts(run)] == [None, None, None]
    assert AuditEvent.objects.filter(action="step.retry_scheduled").count() == 2


def _ranked(category, name, confidence, sure):
    def ranked(text, error_signature=None, **kwargs):
        return Suggestions(hypotheses=[Hypothesis(category, name, confidence, [Citation("Incident #7: API throttled",
                                                                                        "/incidents/7/")])],
                           sure=sure)
    return ranked


@pytest.mark.parametrize("sure, retried", [(True, True), (False, False)])
def test_the_assistant_decides_only_with_a_headline_guess(team, operator, drive, monkeypatch, sure, retried):
    monkeypatch.setattr(suggest, "suggest_for_failure", _ranked("rate-limited", "Rate limited by an API", 0.8, sure))
    run = drive(engine.start_run(operator, failing(team, "quota of partner feed used up")))

    first = attempts(run)[0].retry_verdict
    assert (first["source"], first["category"], first["retried"]) == ("assistant", "rate-limited", retried)
    assert first["confidence"] == (0.8 if sure else None)
    assert first["evidence"][-1] == {"label": "Incident #7: API throttled", "url": "/incidents/7/"}
    assert len(attempts(run)) == (3 if retried else 1)


def test_a_workflow_default_applies_and_a_bad_value_is_refused_with_the_field_named():
    steps = "steps:\n  - id: fetch\n    type: test.echo\n"
    result = load_spec("name: wf\ndefaults:\n  retries: {count: 3, when: transient}\n" + steps)
    assert result.ok and result.spec["steps"][0]["retries"]["when"] == "transient"

    refused = load_spec("name: wf\n" + steps + "    retries: {count: 3, when: sometimes}\n")
    assert not refused.ok and refused.errors[0].path == "steps[0].retries.when"
