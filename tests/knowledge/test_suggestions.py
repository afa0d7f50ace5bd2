import pytest

from apps.knowledge import indexing
from apps.knowledge.models import Feedback, Verdict
from apps.knowledge.runbooks import sync_runbooks
from apps.knowledge.suggest import suggest_for_failure
from tests.knowledge.conftest import resolved_incident

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]


@pytest.fixture
def history(team, other_team):
    sync_runbooks()
    return {
        "disk": resolved_incident(team, "Landing zone full on lz-01", "OSError Errno 28 No space left on device "
                                  "writing sales.csv", "disk-full", resolution="Purged archives older than 90 days"),
        "lock": resolved_incident(team, "Deadlock in orders merge", "ORA-00060 deadlock detected while waiting for "
                                  "resource", "lock-contention", resolution="Moved the stats job"),
        "secret": resolved_incident(other_team, "People-ops disk full", "No space left on device on hr-etl",
                                    "disk-full"),
    }


def test_suggestions_rank_the_right_cause_and_cite_incidents_and_runbooks(history, viewer, using_real_model):
    indexing.build_index()

    suggestions = suggest_for_failure("copy step failed: [Errno 28] No space left on device /data/landing",
                                      user=viewer)

    assert suggestions.hypotheses[0].category == "disk-full"
    assert 0 < suggestions.hypotheses[0].confidence <= 1
    assert abs(sum(h.confidence for h in suggestions.hypotheses) - 1) < 0.2
    assert any(c.url == f"/incidents/{history['disk'].pk}/" for c in suggestions.hypotheses[0].citations)
    assert suggestions.similar_incidents[0].id == history["disk"].pk
    assert suggestions.similar_incidents[0].resolution == "Purged archives older than 90 days"
    section = suggestions.runbook_sections[0]
    assert section.citation.url.startswith("/knowledge/runbooks/") and "#" in section.citation.url
    assert "disk" in section.title.lower()


def test_suggestions_never_cite_another_teams_incident(history, viewer, fake_encoder):
    indexing.build_index()
    suggestions = suggest_for_failure("No space left on device", user=viewer)
    assert history["secret"].pk not in {s.id for s in suggestions.similar_incidents}


def test_without_an_index_the_page_says_how_to_build_it(client_for, operator, team):
    from apps.incidents.services import open_incident

    incident = open_incident(operator, team=team, title="Export failed")
    page = client_for(operator).get(f"/incidents/{incident.pk}/").content.decode()
    assert "The knowledge index is not built yet" in page


def test_incident_page_shows_suggestions_and_htmx_feedback_is_stored(client_for, operator, team, history,
                                                                     fake_encoder):
    from apps.incidents.services import open_incident

    indexing.build_index()
    incident = open_incident(operator, team=team, title="Deadlock again", error_message="ORA-00060 deadlock detected")
    client = client_for(operator)
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Lock timeouts and deadlocks" in page
    assert f"/incidents/{history['lock'].pk}/" in page

    response = client.post(f"/knowledge/incidents/{incident.pk}/feedback/",
                           {"target_kind": "hypothesis", "target_ref": "lock-contention", "verdict": "root_cause"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    # The whole list is swapped in, the confirmed cause at its head (test_learning_shows.py).
    assert response["HX-Retarget"] == "#suggestions" and "Confirmed root cause" in response.content.decode()
    feedback = Feedback.objects.get(incident=incident)
    assert feedback.verdict == Verdict.ROOT_CAUSE and feedback.category_rank == 1


def test_confirming_a_neighbour_as_root_cause_changes_later_rankings(team, operator, fake_encoder):
    from apps.incidents.services import open_incident

    network = resolved_incident(team, "Export to partner failed", "upload timed out to partner endpoint", "network")
    dependency = resolved_incident(team, "Export to partner failed", "upload timed out to partner endpoint",
                                   "dependency-outage")
    indexing.build_index()
    query = "Export to partner failed: upload timed out to partner endpoint"
    before = [h.category for h in suggest_for_failure(query).hypotheses]
    loser = "network" if before.index("network") > before.index("dependency-outage") else "dependency-outage"
    confirmed = network if loser == "network" else dependency

    triaged = open_incident(operator, team=team, title="Export failed again")
    from apps.knowledge.services import give_feedback

    give_feedback(operator, triaged, target_kind="incident", target_ref=str(confirmed.pk), verdict="root_cause")

    after = [h.category for h in suggest_for_failure(query).hypotheses]
    assert after.index(loser) < before.index(loser)
    assert after[0] == loser


def test_admin_page_shows_index_and_top3_rate_to_platform_admins_only(client_for, operator, platform_admin, team,
                                                                      fake_encoder):
    resolved_incident(team, "x", "y", "dns")
    indexing.build_index()
    assert client_for(operator).get("/knowledge/admin/").status_code == 403
    page = client_for(platform_admin).get("/knowledge/admin/").content.decode()
    assert "Documents" in page and "Confirmed root cause in the top 3" in page


def test_runbooks_are_listed_searched_and_shown_with_section_anchors(client_for, viewer):
    sync_runbooks()
    client = client_for(viewer)
    assert "Landing zone or worker disk full" in client.get("/knowledge/runbooks/").content.decode()
    found = client.get("/knowledge/runbooks/?q=ORA-00060").content.decode()
    assert "Lock timeouts and deadlocks" in found
    from apps.knowledge.models import Runbook

    runbook = Runbook.objects.get(path="lock-timeouts-deadlocks.md")
    detail = client.get(f"/knowledge/runbooks/{runbook.pk}/").content.decode()
    assert 'id="symptoms"' in detail and "ORA-00060" in detail


def test_every_query_served_by_the_index_is_counted_for_metrics(history, viewer, fake_encoder, monkeypatch):
    from apps.knowledge import suggest

    counted = []
    monkeypatch.setattr(suggest, "count_index_query", lambda: counted.append(1))
    suggest_for_failure("No space left on device", user=viewer)
    assert counted == []  # no index yet: nothing was served from it

    indexing.build_index()
    suggest_for_failure("No space left on device", user=viewer)
    suggest.search_runbook_sections("disk full")
    assert len(counted) == 2
