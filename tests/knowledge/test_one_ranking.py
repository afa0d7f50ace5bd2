"""One ranking per failure, computed once and shown identically on the checkpoint, the incident
page, the inbox and the API; near-duplicates folded; no headline guess below the threshold; no
page waits for the model."""

import re

import pytest
from django.urls import reverse

from apps.approvals.models import ApprovalRequest
from apps.incidents.models import Incident
from apps.knowledge import indexing, suggest, tasks
from apps.knowledge.embedding import use_encoder
from apps.knowledge.suggest import suggest_for_failure
from apps.runs import engine
from tests.knowledge.conftest import resolved_incident
from tests.knowledge.fakes import HashingEncoder
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]
DEADLOCK = "ORA-00060 deadlock detected while waiting for resource on orders merge"


@pytest.fixture
def history(team):
    for _ in range(3):  # one recurring failure imported three times
        resolved_incident(team, "Deadlock in orders merge", DEADLOCK, "lock-contention", resolution="Moved the stats job")
    resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")


@pytest.fixture
def failed_checkpoint(team, operator, drive, history):
    version = make_version(team, [step("merge", "test.fail", params={"message": DEADLOCK}, on_failure="pause")],
                           name="orders")
    run = drive(engine.start_run(operator, version))
    return ApprovalRequest.objects.get(run=run, kind="checkpoint")


def hypotheses_shown(html: str) -> list[tuple[str, str]]:
    return re.findall(r"<strong>([^<]+)</strong> <span class=\"badge\" title=\"Calibrated[^\"]*\">(\d+)%", html)


def test_checkpoint_incident_page_inbox_and_api_show_one_ranking_computed_once(failed_checkpoint, client_for,
                                                                               operator, api_for, fake_encoder,
                                                                               monkeypatch):
    indexing.build_index()
    computed = []
    real = suggest_for_failure
    monkeypatch.setattr("apps.knowledge.incident_ranking.suggest_for_failure",
                        lambda *args, **kwargs: computed.append(1) or real(*args, **kwargs))
    monkeypatch.setattr(suggest, "HEADLINE_THRESHOLD", 0.0)  # a headline whatever the confidence
    client = client_for(operator)
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)

    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    checkpoint = client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk])).content.decode()
    api = api_for(operator).get(reverse("api-incident-suggestions", args=[incident.pk])).json()
    inbox = client.get(reverse("approvals:inbox")).content.decode()

    assert computed == [1]
    shown = hypotheses_shown(page)
    assert shown and shown == hypotheses_shown(checkpoint)
    assert shown == [(h["name"], str(round(h["confidence"] * 100))) for h in api["hypotheses"]]
    assert shown[0][0] == "Lock timeouts and deadlocks"
    assert f"Likely cause: {shown[0][0]} ({shown[0][1]}%)" in inbox


def test_near_duplicate_incidents_are_folded_into_one_entry_with_a_count(history, fake_encoder):
    indexing.build_index()
    similar = suggest_for_failure(DEADLOCK).similar_incidents
    titles = [s.title for s in similar]
    assert titles.count("Deadlock in orders merge") == 1
    assert similar[titles.index("Deadlock in orders merge")].count == 3


def test_below_the_threshold_the_assistant_says_it_is_not_sure_and_names_no_guess(failed_checkpoint, client_for,
                                                                                  operator, fake_encoder, monkeypatch):
    indexing.build_index()
    monkeypatch.setattr(suggest, "HEADLINE_THRESHOLD", 1.01)  # no confidence reaches it
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    page = client_for(operator).get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Not sure of the cause" in page and "Likely cause" not in page and not hypotheses_shown(page)
    assert "Deadlock in orders merge" in page and "×3" in page  # what it knows, still shown
    assert "Runbook sections" in page


def test_the_confidence_shown_is_calibrated_not_the_raw_softmax(history, fake_encoder, monkeypatch):
    from apps.knowledge.calibration import calibrated

    indexing.build_index()
    ranked = []
    real = suggest.score_categories
    monkeypatch.setattr(suggest, "score_categories", lambda *args, **kwargs: ranked.append(real(*args, **kwargs))
                        or ranked[-1])
    shown = suggest_for_failure(DEADLOCK).hypotheses
    raw = ranked[0]
    assert shown[0].confidence == pytest.approx(calibrated(raw[0].confidence, raw[1].confidence))
    assert shown[0].confidence != pytest.approx(raw[0].confidence)
    # The others share what is left in the ranking's proportions.
    assert shown[1].confidence == pytest.approx(raw[1].confidence * (1 - shown[0].confidence) / (1 - raw[0].confidence))


def test_without_the_model_loaded_the_page_waits_for_a_worker_not_for_the_model(failed_checkpoint, client_for,
                                                                                operator, monkeypatch,
                                                                                django_capture_on_commit_callbacks):
    with use_encoder(HashingEncoder()):
        indexing.build_index()
    requested = []
    monkeypatch.setattr(tasks.rank_incident, "delay", requested.append)
    incident = Incident.objects.get(run_id=failed_checkpoint.run_id)
    client = client_for(operator)
    with pytest.MonkeyPatch.context() as guard, django_capture_on_commit_callbacks(execute=True):
        guard.setattr("apps.knowledge.embedding.get_encoder", lambda: pytest.fail("a request loaded the model"))
        checkpoint = client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk])).content.decode()
    assert "Looking for similar incidents" in checkpoint
    assert f'hx-get="{reverse("approvals:suggestions", args=[failed_checkpoint.pk])}"' in checkpoint
    assert requested == [incident.pk]

    with use_encoder(HashingEncoder()):
        tasks.rank_incident(incident.pk)  # what the worker does
    polled = client.get(reverse("approvals:suggestions", args=[failed_checkpoint.pk])).content.decode()
    assert "Looking for similar incidents" not in polled and "Deadlock in orders merge" in polled
