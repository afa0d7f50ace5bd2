"""Learning that shows: a confirmed root cause heads the incident's own list at once, on every
page, and is a label for the next fit; each checkpoint decision keeps what the assistant showed
and whether it was followed; the knowledge page shows both rates week by week and the last
evaluation's figures."""

import re

import pytest
from django.urls import reverse

from apps.approvals import services as approvals
from apps.approvals.models import ApprovalRequest
from apps.incidents.models import Incident, RootCauseCategory
from apps.knowledge import indexing, learning, suggest
from apps.knowledge.models import EvaluationResult, Feedback
from apps.knowledge.runbooks import sync_runbooks
from apps.runs import engine
from tests.knowledge.conftest import resolved_incident
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]
DEADLOCK = "ORA-00060 deadlock detected while waiting for resource on orders merge"


@pytest.fixture
def failed_checkpoint(team, operator, drive, fake_encoder, monkeypatch):
    for _ in range(2):
        resolved_incident(team, "Deadlock in orders merge", DEADLOCK, "lock-contention")
    resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")
    indexing.build_index()
    monkeypatch.setattr(suggest, "HEADLINE_THRESHOLD", 0.0)  # a headline guess whatever its confidence
    version = make_version(team, [step("merge", "test.fail", params={"message": DEADLOCK}, on_failure="pause")],
                           name="orders")
    run = drive(engine.start_run(operator, version))
    return ApprovalRequest.objects.get(run=run, kind="checkpoint")


def listed(html: str) -> list[str]:
    """The hypotheses' names in the order the page lists them."""
    section = html[html.index('<ol class="hypotheses">'):html.index("</ol>")]
    return re.findall(r"<strong>([^<]+)</strong>", section)


def test_a_confirmed_cause_moves_to_the_top_at_once_on_every_page(failed_checkpoint, client_for, operator, api_for,
                                                                  monkeypatch):
    client = client_for(operator)
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    before = listed(client.get(reverse("incidents:detail", args=[incident.pk])).content.decode())
    assert before[0] == "Lock timeouts and deadlocks" and len(before) > 2
    computed = []
    monkeypatch.setattr("apps.knowledge.incident_ranking.suggest_for_failure",
                        lambda *args, **kwargs: computed.append(1))
    third = RootCauseCategory.objects.get(name=before[2])

    answer = client.post(reverse("knowledge:feedback", args=[incident.pk]), {
        "target_kind": "hypothesis", "target_ref": third.slug, "verdict": "root_cause"}, HTTP_HX_REQUEST="true")

    # The answer replaces the whole list, with the confirmed cause first and the model's number kept.
    assert answer["HX-Retarget"] == "#suggestions" and answer["HX-Reswap"] == "outerHTML"
    swapped = answer.content.decode()
    assert listed(swapped) == [third.name] + [name for name in before if name != third.name]
    assert "Confirmed root cause" in swapped and "(the assistant gave it " in swapped
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    checkpoint = client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk])).content.decode()
    api = api_for(operator).get(reverse("api-incident-suggestions", args=[incident.pk])).json()
    inbox = client.get(reverse("approvals:inbox")).content.decode()
    assert listed(page)[0] == listed(checkpoint)[0] == third.name
    assert (api["confirmed"], api["hypotheses"][0]["category"]) == (third.slug, third.slug)
    assert f"Confirmed cause</span> {third.name}" in inbox
    assert computed == []  # shown from the stored ranking: no model, no recomputation


def test_a_cause_the_model_had_not_ranked_is_added_on_top_and_the_next_fit_takes_it_as_a_label(
        failed_checkpoint, client_for, operator):
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    client = client_for(operator)
    shown = listed(client.get(reverse("incidents:detail", args=[incident.pk])).content.decode())
    unranked = RootCauseCategory.objects.exclude(name__in=shown).first()
    client.post(reverse("knowledge:feedback", args=[incident.pk]), {
        "target_kind": "hypothesis", "target_ref": unranked.slug, "verdict": "root_cause"})
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert listed(page)[:2] == [unranked.name, shown[0]] and "(the assistant had not suggested it)" in page
    assert Feedback.objects.get(incident=incident).headline == "lock-contention"  # the guess it was shown
    sample = learning._sample(indexing.reader().get())
    assert (incident, unranked.slug) in sample


def _decide(checkpoint, operator, choice):
    approvals.decide_checkpoint(operator, checkpoint, choice, reason_code="other", comment="checked the logs")
    return checkpoint.decisions.get()


def test_a_decision_keeps_the_ranking_shown_and_whether_it_followed_it(failed_checkpoint, client_for, operator,
                                                                      api_for):
    client = client_for(operator)
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk]))  # what the decider saw
    client.post(reverse("knowledge:feedback", args=[incident.pk]), {
        "target_kind": "hypothesis", "target_ref": "lock-contention", "verdict": "root_cause"})

    decision = _decide(failed_checkpoint, operator, "retry")

    shown = decision.suggestions_shown
    assert shown["snapshot"] == incident.suggestion_snapshot.pk and shown["incident"] == incident.pk
    assert shown["headline"]["category"] == "lock-contention" and 0 < shown["headline"]["confidence"] <= 1
    assert shown["hypotheses"][0]["category"] == "lock-contention" and shown["known_cause"] is None
    assert decision.followed_suggestion is True and shown["confirmed"] == "lock-contention"
    api = api_for(operator).get(reverse("api-approval", args=[failed_checkpoint.pk])).json()
    assert api["decisions"][0]["followed_suggestion"] is True
    assert api["decisions"][0]["suggestions_shown"]["headline"]["category"] == "lock-contention"
    page = client.get(reverse("approvals:detail", args=[failed_checkpoint.pk])).content.decode()
    assert "Assistant showed:</span> likely cause Lock timeouts and deadlocks" in page and "· followed" in page


def test_without_a_confirmed_cause_following_a_guess_cannot_be_told(failed_checkpoint, client_for, operator):
    client_for(operator).get(reverse("approvals:suggestions", args=[failed_checkpoint.pk]))
    decision = _decide(failed_checkpoint, operator, "skip")
    assert decision.suggestions_shown["headline"]["category"] == "lock-contention"
    assert decision.followed_suggestion is None


@pytest.fixture
def missing_connection(team, operator, drive):
    sync_runbooks()
    version = make_version(team, [step("load", "sql.query", params={"connection": "warehouse", "sql": "SELECT 1"},
                                       on_failure="pause")], name="nightly-etl")
    return ApprovalRequest.objects.get(run=drive(engine.start_run(operator, version)), kind="checkpoint")


@pytest.mark.parametrize(("choice", "followed"), [("retry", True), ("abort", False)])
def test_after_a_known_cause_a_retry_follows_it_and_an_abort_does_not(missing_connection, client_for, operator,
                                                                       choice, followed):
    client_for(operator).get(reverse("approvals:suggestions", args=[missing_connection.pk]))
    decision = _decide(missing_connection, operator, choice)
    assert decision.suggestions_shown["known_cause"]["reason"] == "connection_missing"
    assert decision.followed_suggestion is followed


def test_the_knowledge_page_shows_the_rates_week_by_week_and_the_last_evaluation(failed_checkpoint, client_for,
                                                                                 operator, make_user):
    client = client_for(operator)
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk]))
    client.post(reverse("knowledge:feedback", args=[incident.pk]), {
        "target_kind": "hypothesis", "target_ref": "lock-contention", "verdict": "root_cause"})
    _decide(failed_checkpoint, operator, "retry")
    EvaluationResult.objects.create(dataset="dev_set.jsonl", mode="hybrid", folds=5, incidents=120, top1=0.812,
                                    top3=0.954, mrr=0.88, same_category_in_top5=0.9, baseline_top1=0.1, ece=0.041,
                                    threshold=0.58, headline_precision=0.871, coverage=0.655)

    page = client_for(make_user("ada-admin", platform_admin=True)).get(reverse("knowledge:admin")).content.decode()

    this_week = page[page.index('<table class="stacked practice">'):].split("</tr>")[1]
    assert "<strong>100%</strong> <span class=\"muted\">(1 of 1)</span>" in this_week  # headline confirmed
    assert this_week.count("(1 of 1)") == 2  # and the decision that followed it
    last = page[page.index('id="last-eval-h"'):]
    for figure in ("0.812", "0.954", "0.041", "0.871", "0.655"):
        assert f"<td>{figure}" in last


def test_a_ranking_with_numpy_confidences_is_stored_as_json(failed_checkpoint, monkeypatch):
    import numpy as np

    from apps.knowledge.incident_ranking import ranking_for

    # The real calibration answers numpy numbers below its cap (a HashingEncoder's guesses reach the cap).
    monkeypatch.setattr(suggest, "calibrated", lambda top, second: np.float64(0.7))
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    ranking = ranking_for(incident, compute=True)
    stored = incident.suggestion_snapshot.suggestions
    assert ranking.sure is True and stored["sure"] is True and stored["hypotheses"][0]["confidence"] == 0.7
